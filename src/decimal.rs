//! ASCII decimal numbers: the one parser behind every number the codecs read (command arguments,
//! `EPRT` fields, timestamps, listing sizes, `SIZE` replies).

/// A non-empty run of ASCII digits (no sign, no spaces) as a `u64`; `None` on anything else or on
/// overflow. Leading zeros are allowed.
pub(crate) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// [`parse_u64`] into a narrower type; `None` if the number does not fit.
pub(crate) fn parse<T: TryFrom<u64>>(digits: &[u8]) -> Option<T> {
    T::try_from(parse_u64(digits)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_only_without_overflow() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"007"), Some(7));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"12 bytes"), None);
        assert_eq!(parse_u64(b"+12"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"1:"), None);
    }

    #[test]
    fn narrower_types_refuse_what_does_not_fit() {
        assert_eq!(parse::<u8>(b"255"), Some(255));
        assert_eq!(parse::<u8>(b"256"), None);
        assert_eq!(parse::<u32>(b"4294967296"), None);
        assert_eq!(parse::<u16>(b"00065535"), Some(65535));
    }
}
