//! `Timestamp::parse_ftp` on arbitrary bytes.
//!
//! Oracles: a parsed time-val agrees with its digits (civil fields, fraction), `to_ftp_string` parses back
//! to the same whole second, `to_ftp_string_exact` to the same value, and the civil and Unix-seconds
//! conversions invert each other.
#![no_main]

use ftp_proto::time::Timestamp;
use libfuzzer_sys::fuzz_target;

/// The decimal value of an all-digit field.
fn number(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

fuzz_target!(|text: &[u8]| {
    let Some(t) = Timestamp::parse_ftp(text) else {
        return;
    };
    // Accepted text is `YYYYMMDDHHMMSS[.f{1,9}]`, all ASCII digits.
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
        None => (text, None),
    };
    assert_eq!(whole.len(), 14);
    assert!(whole.iter().all(u8::is_ascii_digit));
    let c = t.to_civil();
    let fields = [
        c.year as u32,
        c.month.into(),
        c.day.into(),
        c.hour.into(),
        c.minute.into(),
        c.second.into(),
    ];
    let digits = [
        &whole[0..4],
        &whole[4..6],
        &whole[6..8],
        &whole[8..10],
        &whole[10..12],
        &whole[12..14],
    ];
    for (field, digits) in fields.into_iter().zip(digits) {
        assert_eq!(field, number(digits), "civil field differs from its digits");
    }
    let nanos = match fraction {
        Some(f) => {
            assert!((1..=9).contains(&f.len()) && f.iter().all(u8::is_ascii_digit));
            number(f) * 10u32.pow(9 - f.len() as u32)
        }
        None => 0,
    };
    assert_eq!(t.subsec_nanos(), nanos);

    let text_back = t.to_ftp_string();
    let back = Timestamp::parse_ftp(text_back.as_bytes()).expect("to_ftp_string output parses");
    assert_eq!(back.unix_seconds(), t.unix_seconds(), "{text_back}");
    assert_eq!(back.subsec_nanos(), 0, "{text_back}");
    assert_eq!(back.to_ftp_string(), text_back);
    let exact = t.to_ftp_string_exact();
    assert_eq!(Timestamp::parse_ftp(exact.as_bytes()), Some(t), "{exact}");
    if fraction.is_none() {
        assert_eq!(text_back.as_bytes(), text, "canonical form changed");
    }

    assert_eq!(
        Timestamp::from_civil(c).map(|x| x.unix_seconds()),
        Some(t.unix_seconds())
    );
    assert_eq!(
        Timestamp::from_unix_seconds(t.unix_seconds()).map(|x| x.to_civil()),
        Some(c)
    );
    // Linux's SystemTime holds every year 0..=9999.
    let system = t.to_system_time().expect("representable on Linux");
    assert_eq!(
        Timestamp::from_system_time(system),
        Some(t),
        "SystemTime round trip"
    );
});
