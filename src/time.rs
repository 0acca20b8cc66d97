//! Timestamps as FTP writes them, without a clock.
//!
//! RFC 3659 §2.3 defines the `time-val` used by MDTM, MFMT and the MLST `modify` fact:
//! `YYYYMMDDHHMMSS[.sss]`, always in UTC. Directory listings print civil dates too. This module converts
//! between seconds since the Unix epoch and that civil form with the proleptic Gregorian calendar (Howard
//! Hinnant's `days_from_civil` algorithm), so the crate needs no date dependency and never reads the clock:
//! every "now" comes from the caller.
//!
//! ```
//! use ftp_proto::time::Timestamp;
//!
//! let t = Timestamp::parse_ftp(b"20240229235959").unwrap();
//! assert_eq!(t.unix_seconds(), 1_709_251_199);
//! assert_eq!(t.to_ftp_string(), "20240229235959");
//! assert!(Timestamp::parse_ftp(b"20230229000000").is_none()); // 2023 is not a leap year
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::decimal::parse_u64;

/// A point in time: whole seconds since 1970-01-01T00:00:00Z plus a sub-second part.
///
/// The civil form covers years 0 to 9999, the range a 4-digit `YYYY` can express.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// The broken-down UTC form of a [`Timestamp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CivilTime {
    /// Year, 0..=9999.
    pub year: i32,
    /// Month of the year, 1..=12.
    pub month: u8,
    /// Day of the month, 1..=31.
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59 (leap seconds are not representable, as in POSIX time).
    pub second: u8,
}

/// The Unix seconds of 0000-01-01T00:00:00Z and of 9999-12-31T23:59:59Z: the 4-digit-year range.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

impl Timestamp {
    /// The Unix epoch.
    pub const UNIX_EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// A timestamp from whole seconds since the epoch; `None` outside years 0..=9999.
    pub const fn from_unix_seconds(secs: i64) -> Option<Timestamp> {
        if secs < MIN_SECS || secs > MAX_SECS {
            return None;
        }
        Some(Timestamp { secs, nanos: 0 })
    }

    /// Seconds since the epoch (negative before 1970).
    pub const fn unix_seconds(&self) -> i64 {
        self.secs
    }

    /// The sub-second part in nanoseconds.
    pub const fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// Converts a [`SystemTime`]; `None` outside years 0..=9999.
    pub fn from_system_time(t: SystemTime) -> Option<Timestamp> {
        let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (i64::try_from(d.as_secs()).ok()?, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                let whole = i64::try_from(d.as_secs()).ok()?;
                // -1.25 s is stored as secs = -2, nanos = 0.75 s, so nanos stays non-negative.
                if d.subsec_nanos() == 0 {
                    (-whole, 0)
                } else {
                    (-whole - 1, 1_000_000_000 - d.subsec_nanos())
                }
            }
        };
        let mut t = Timestamp::from_unix_seconds(secs)?;
        t.nanos = nanos;
        Some(t)
    }

    /// Converts to a [`SystemTime`]; `None` where the platform's `SystemTime` cannot hold it (Windows
    /// starts in 1601, while an FTP time-val can name the year 0).
    pub fn to_system_time(&self) -> Option<SystemTime> {
        let nanos = Duration::from_nanos(u64::from(self.nanos));
        let whole = Duration::from_secs(self.secs.unsigned_abs());
        let base = if self.secs >= 0 {
            UNIX_EPOCH.checked_add(whole)?
        } else {
            UNIX_EPOCH.checked_sub(whole)?
        };
        base.checked_add(nanos)
    }

    /// A timestamp from a civil UTC date and time; `None` if any field is out of range (month 13,
    /// 31 April, 29 February of a common year, hour 24, ...).
    pub fn from_civil(c: CivilTime) -> Option<Timestamp> {
        if !(0..=9999).contains(&c.year)
            || !(1..=12).contains(&c.month)
            || c.day == 0
            || c.day > days_in_month(c.year, c.month)
            || c.hour > 23
            || c.minute > 59
            || c.second > 59
        {
            return None;
        }
        let days = days_from_civil(c.year, c.month, c.day);
        let secs = days * 86_400
            + i64::from(c.hour) * 3600
            + i64::from(c.minute) * 60
            + i64::from(c.second);
        Timestamp::from_unix_seconds(secs)
    }

    /// The civil UTC form.
    pub fn to_civil(&self) -> CivilTime {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // rem < 86_400, so each field below fits its type.
        CivilTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// Parses an RFC 3659 `time-val`: `YYYYMMDDHHMMSS` optionally followed by `.` and 1 to 9 digits of
    /// fraction. Every field is validated; anything else gives `None`.
    pub fn parse_ftp(text: &[u8]) -> Option<Timestamp> {
        let (whole, fraction) = match memchr::memchr(b'.', text) {
            Some(dot) => (text.get(..dot)?, Some(text.get(dot + 1..)?)),
            None => (text, None),
        };
        if whole.len() != 14 {
            return None;
        }
        let field = |range: std::ops::Range<usize>| parse_u64(whole.get(range)?);
        let civil = CivilTime {
            year: i32::try_from(field(0..4)?).ok()?,
            month: u8::try_from(field(4..6)?).ok()?,
            day: u8::try_from(field(6..8)?).ok()?,
            hour: u8::try_from(field(8..10)?).ok()?,
            minute: u8::try_from(field(10..12)?).ok()?,
            second: u8::try_from(field(12..14)?).ok()?,
        };
        let mut t = Timestamp::from_civil(civil)?;
        if let Some(fraction) = fraction {
            if fraction.is_empty() || fraction.len() > 9 {
                return None;
            }
            let scale = 10u32.pow(9 - fraction.len() as u32);
            t.nanos = u32::try_from(parse_u64(fraction)?).ok()? * scale;
        }
        Some(t)
    }

    /// The RFC 3659 `time-val` form in whole seconds, `YYYYMMDDHHMMSS`: what servers send in `MDTM`
    /// replies and `modify` facts, and the form every client parses.
    pub fn to_ftp_string(&self) -> String {
        let c = self.to_civil();
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// The exact `time-val`: [`Timestamp::to_ftp_string`] followed by the sub-second part, if any, with
    /// as many digits as it needs (up to 9). [`Timestamp::parse_ftp`] gives back the same value.
    pub fn to_ftp_string_exact(&self) -> String {
        let mut s = self.to_ftp_string();
        if self.nanos != 0 {
            let fraction = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(fraction.trim_end_matches('0'));
        }
        s
    }
}

impl fmt::Display for Timestamp {
    /// ISO 8601 form, e.g. `2024-02-29T23:59:59Z`, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.to_civil();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }
}

/// Three-letter English month names, as `ls -l` prints them.
pub const MONTH_ABBREVIATIONS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Whether `year` is a Gregorian leap year.
pub const fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1..=12) of `year`; 0 for an invalid month.
pub const fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a valid civil date (Hinnant, "chrono-Compatible Low-Level Date Algorithms").
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number; the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Timestamps are bounded to years 0..=9999, so the year fits in i32.
    (year as i32, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        let cases: &[(&[u8], i64)] = &[
            (b"19700101000000", 0),
            (b"20000301000000", 951_868_800),
            (b"19691231235959", -1),
            (b"00000101000000", MIN_SECS),
            (b"99991231235959", MAX_SECS),
            (b"20240229120000", 1_709_208_000),
        ];
        for (text, secs) in cases {
            let t = Timestamp::parse_ftp(text).unwrap();
            assert_eq!(t.unix_seconds(), *secs, "{}", String::from_utf8_lossy(text));
            assert_eq!(t.to_ftp_string().as_bytes(), *text);
        }
    }

    #[test]
    fn rejects_impossible_dates_and_bad_syntax() {
        for bad in [
            &b"20231301000000"[..],
            b"20230001000000",
            b"20230100000000",
            b"20230431000000",
            b"20230229000000",
            b"21000229000000",
            b"20230101240000",
            b"20230101006000",
            b"20230101000060",
            b"2023010100000",
            b"202301010000000",
            b"2023010100000a",
            b"+2023010100000",
            b"20230101000000.",
            b"20230101000000.1234567890",
            b"20230101000000.1x",
            b"",
            b"..............",
        ] {
            assert_eq!(
                Timestamp::parse_ftp(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Timestamp::parse_ftp(b"20000229000000").is_some());
    }

    #[test]
    fn fractions() {
        let t = Timestamp::parse_ftp(b"20240101000000.5").unwrap();
        assert_eq!(t.subsec_nanos(), 500_000_000);
        assert_eq!(t.to_ftp_string(), "20240101000000");
        assert_eq!(t.to_ftp_string_exact(), "20240101000000.5");
        let t = Timestamp::parse_ftp(b"20240101000000.123456789").unwrap();
        assert_eq!(t.subsec_nanos(), 123_456_789);
        assert_eq!(t.to_ftp_string_exact(), "20240101000000.123456789");
        let t = Timestamp::parse_ftp(b"20240101000000.0001").unwrap();
        assert_eq!(
            Timestamp::parse_ftp(t.to_ftp_string_exact().as_bytes()),
            Some(t)
        );
    }

    #[test]
    fn system_time_round_trip_before_epoch() {
        let t = UNIX_EPOCH - Duration::from_millis(1250);
        let ts = Timestamp::from_system_time(t).unwrap();
        assert_eq!(ts.unix_seconds(), -2);
        assert_eq!(ts.subsec_nanos(), 750_000_000);
        assert_eq!(ts.to_system_time(), Some(t));
    }

    proptest! {
        #[test]
        fn civil_round_trip(secs in MIN_SECS..=MAX_SECS) {
            let t = Timestamp::from_unix_seconds(secs).unwrap();
            prop_assert_eq!(Timestamp::from_civil(t.to_civil()), Some(t));
            prop_assert_eq!(Timestamp::parse_ftp(t.to_ftp_string().as_bytes()), Some(t));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Timestamp::parse_ftp(&bytes);
        }
    }
}
