//! Data-connection addresses: the `PORT`/`PASV` and `EPRT`/`EPSV` forms.
//!
//! FTP tells the other side where to open the data connection in two textual forms:
//!
//! * **RFC 959 §4.1.2** (`PORT`, `227` reply to `PASV`): six decimal numbers `h1,h2,h3,h4,p1,p2`, the IPv4
//!   address octets followed by the port's high and low byte (`port = p1 * 256 + p2`). [`HostPort`] is that
//!   value: a [`SocketAddrV4`] that always round-trips through its text form.
//! * **RFC 2428** (`EPRT`, `229` reply to `EPSV`): `<d><net-prt><d><net-addr><d><tcp-port><d>` where `<d>` is a
//!   delimiter byte chosen by the sender and `net-prt` is `1` (IPv4) or `2` (IPv6); see [`parse_eprt`],
//!   [`format_eprt`], [`parse_epsv_reply`] and [`epsv_reply_text`].
//!
//! Parsing commands (`PORT`, `EPRT`) is strict: a server should reject anything odd with `501` (or `522` for
//! an unknown network protocol, see [`HostPortError::UnsupportedProtocol`]). Parsing replies (`227`, `229`)
//! is lenient where real servers differ, as RFC 1123 §4.1.2.6 asks of clients.
//!
//! These functions check syntax only. Policy belongs to the caller: a server should refuse a `PORT`/`EPRT`
//! whose address differs from the client's control-connection address (the "FTP bounce" attack, RFC 2577)
//! and may refuse privileged ports; a client should consider ignoring the address of a `227` reply behind NAT.
//!
//! ```
//! use ftp_proto::hostport::{HostPort, parse_eprt, format_eprt};
//! use std::net::Ipv4Addr;
//!
//! let hp = HostPort::parse(b"192,168,1,15,9,47")?;
//! assert_eq!((hp.ip(), hp.port()), (Ipv4Addr::new(192, 168, 1, 15), 2351));
//! assert_eq!(hp.pasv_reply_text(), "Entering Passive Mode (192,168,1,15,9,47).");
//!
//! let addr = parse_eprt(b"|1|132.235.1.2|6275|")?;
//! assert_eq!(format_eprt(addr), "|1|132.235.1.2|6275|");
//! # Ok::<(), ftp_proto::hostport::HostPortError>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::decimal;

/// Why a host-port text could not be parsed.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum HostPortError {
    /// The text does not have the required shape (wrong number of fields, empty field, stray byte, bad
    /// delimiter, unparsable address). A server answers `501`.
    #[error("malformed host-port argument")]
    Malformed,
    /// A number is syntactically fine but outside its range: an octet above 255, or an `EPRT`/`EPSV` port
    /// of 0 or above 65535. A server answers `501`.
    #[error("number out of range in host-port argument")]
    OutOfRange,
    /// `EPRT` named a network protocol other than 1 (IPv4) or 2 (IPv6). A server answers `522` with
    /// [`UNSUPPORTED_PROTOCOL_TEXT`] (RFC 2428 §2).
    #[error("unsupported network protocol {0} (supported: 1, 2)")]
    UnsupportedProtocol(u32),
    /// `EPRT` named one protocol but gave an address of the other family.
    #[error("address family does not match the network protocol")]
    FamilyMismatch,
}

/// The `522` reply text RFC 2428 §2 asks for when `EPRT` names a protocol the server does not support:
/// it lists the supported protocol numbers in parentheses so the client can retry.
pub const UNSUPPORTED_PROTOCOL_TEXT: &str = "Network protocol not supported, use (1,2)";

/// An IPv4 address and TCP port in the RFC 959 `h1,h2,h3,h4,p1,p2` form used by `PORT` and `227`.
///
/// Every value round-trips: `HostPort::parse(hp.to_string().as_bytes()) == Ok(hp)`. Port 0 is representable
/// (it is syntactically valid); refusing it is the caller's policy.
///
/// ```
/// use ftp_proto::hostport::HostPort;
/// use std::net::Ipv4Addr;
///
/// let hp = HostPort::new(Ipv4Addr::new(10, 0, 0, 1), 1025);
/// assert_eq!(hp.to_string(), "10,0,0,1,4,1");
/// assert_eq!(HostPort::parse_pasv_reply(b"Entering Passive Mode 10,0,0,1,4,1"), Ok(hp));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    addr: SocketAddrV4,
}

impl HostPort {
    /// The host-port for `ip:port`.
    pub const fn new(ip: Ipv4Addr, port: u16) -> Self {
        HostPort {
            addr: SocketAddrV4::new(ip, port),
        }
    }

    /// The IPv4 address (`h1.h2.h3.h4`).
    pub fn ip(&self) -> Ipv4Addr {
        *self.addr.ip()
    }

    /// The TCP port (`p1 * 256 + p2`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address as a standard socket address.
    pub fn socket_addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// Strictly parses a `PORT` argument `h1,h2,h3,h4,p1,p2`: exactly six comma-separated decimal numbers in
    /// `0..=255`, nothing else (no spaces, signs or empty fields). Leading zeros are accepted (`010` is 10).
    ///
    /// ```
    /// use ftp_proto::hostport::{HostPort, HostPortError};
    /// assert_eq!(HostPort::parse(b"192,168,1,15,9,47").map(|hp| hp.port()), Ok(2351));
    /// assert_eq!(HostPort::parse(b"300,1,1,1,1,1"), Err(HostPortError::OutOfRange));
    /// assert_eq!(HostPort::parse(b"1,2,3,4,5"), Err(HostPortError::Malformed));
    /// ```
    pub fn parse(arg: &[u8]) -> Result<HostPort, HostPortError> {
        let mut fields = [0u8; 6];
        let mut parts = arg.split(|&b| b == b',');
        for field in fields.iter_mut() {
            let part = parts.next().ok_or(HostPortError::Malformed)?;
            *field = parse_octet(part)?;
        }
        if parts.next().is_some() {
            return Err(HostPortError::Malformed);
        }
        Ok(HostPort::from_fields(fields))
    }

    /// Leniently parses the text of a `227` reply, as RFC 1123 §4.1.2.6 asks: the six numbers may appear
    /// anywhere, with or without parentheses. The scan starts at the first digit; if the numbers starting
    /// there do not form a valid `h1,h2,h3,h4,p1,p2` (for example because the caller passed the whole line
    /// including the `227` code), the scan retries at the next run of digits. Spaces around the commas are
    /// tolerated; whatever follows the sixth number (`)`, `.`, nothing) is ignored unless it is another comma.
    /// A retry never starts inside a comma-separated list, so `(1,2,3,4,5,6,7)` is rejected rather than read
    /// from its second number.
    ///
    /// Cost is linear in the text length: each run of digits is examined by at most six attempts.
    ///
    /// ```
    /// use ftp_proto::hostport::HostPort;
    /// let hp = HostPort::parse_pasv_reply(b"Entering Passive Mode (67,208,93,232,245,123).")?;
    /// assert_eq!(hp.socket_addr().to_string(), "67.208.93.232:62843");
    /// # Ok::<(), ftp_proto::hostport::HostPortError>(())
    /// ```
    pub fn parse_pasv_reply(text: &[u8]) -> Result<HostPort, HostPortError> {
        let mut first_error = None;
        let mut pos = 0;
        while let Some(start) = next_pasv_candidate(text, pos) {
            let candidate = text.get(start..).unwrap_or_default();
            match parse_pasv_numbers(candidate) {
                Ok(hp) => return Ok(hp),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            // Skip the digit run we just tried, so the next attempt starts at a different number.
            pos = start + candidate.iter().take_while(|b| b.is_ascii_digit()).count();
        }
        Err(first_error.unwrap_or(HostPortError::Malformed))
    }

    /// The text of the `227` reply for this address, always with parentheses (RFC 959 §4.2 example form):
    /// `Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
    pub fn pasv_reply_text(&self) -> String {
        format!("Entering Passive Mode ({self}).")
    }

    fn from_fields([h1, h2, h3, h4, p1, p2]: [u8; 6]) -> HostPort {
        HostPort::new(Ipv4Addr::new(h1, h2, h3, h4), u16::from_be_bytes([p1, p2]))
    }
}

/// Formats the `PORT` argument `h1,h2,h3,h4,p1,p2`.
impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [h1, h2, h3, h4] = self.ip().octets();
        let [p1, p2] = self.port().to_be_bytes();
        write!(f, "{h1},{h2},{h3},{h4},{p1},{p2}")
    }
}

impl From<SocketAddrV4> for HostPort {
    fn from(addr: SocketAddrV4) -> Self {
        HostPort { addr }
    }
}

impl From<HostPort> for SocketAddrV4 {
    fn from(hp: HostPort) -> Self {
        hp.addr
    }
}

impl From<HostPort> for SocketAddr {
    fn from(hp: HostPort) -> Self {
        SocketAddr::V4(hp.addr)
    }
}

/// Only IPv4 addresses have a `PORT`/`227` form; an IPv6 address gives [`HostPortError::FamilyMismatch`]
/// (use `EPRT`/`EPSV` for those).
impl TryFrom<SocketAddr> for HostPort {
    type Error = HostPortError;

    fn try_from(addr: SocketAddr) -> Result<Self, Self::Error> {
        match addr {
            SocketAddr::V4(v4) => Ok(HostPort::from(v4)),
            SocketAddr::V6(_) => Err(HostPortError::FamilyMismatch),
        }
    }
}

/// The network protocol field (`net-prt`) of `EPRT` (RFC 2428 §2), numbered as in the IANA address
/// family registry.
///
/// ```
/// use ftp_proto::hostport::NetworkProtocol;
/// assert_eq!(NetworkProtocol::from_number(2), Some(NetworkProtocol::V6));
/// assert_eq!(NetworkProtocol::V4.number(), 1);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkProtocol {
    /// IPv4, `net-prt` 1.
    V4,
    /// IPv6, `net-prt` 2.
    V6,
}

impl NetworkProtocol {
    /// The `net-prt` number: 1 for IPv4, 2 for IPv6.
    pub fn number(&self) -> u8 {
        match self {
            NetworkProtocol::V4 => 1,
            NetworkProtocol::V6 => 2,
        }
    }

    /// The protocol with this `net-prt` number, if supported.
    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            1 => Some(NetworkProtocol::V4),
            2 => Some(NetworkProtocol::V6),
            _ => None,
        }
    }

    /// The protocol of a socket address.
    pub fn of(addr: &SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(_) => NetworkProtocol::V4,
            SocketAddr::V6(_) => NetworkProtocol::V6,
        }
    }
}

/// Strictly parses an `EPRT` argument `<d><net-prt><d><net-addr><d><tcp-port><d>` (RFC 2428 §2).
///
/// The delimiter `<d>` is the first byte and must be printable ASCII (33..=126, usually `|`). Nothing may
/// follow the final delimiter. The address is parsed with the standard library's strict parsers (dotted quad
/// for IPv4, RFC 4291 text for IPv6; no zone index). Errors are checked in this order: shape
/// ([`Malformed`](HostPortError::Malformed)), protocol
/// ([`UnsupportedProtocol`](HostPortError::UnsupportedProtocol), so a server can answer `522` even when it
/// could not read the address), address ([`FamilyMismatch`](HostPortError::FamilyMismatch) or `Malformed`),
/// port ([`OutOfRange`](HostPortError::OutOfRange) for 0 or above 65535).
///
/// ```
/// use ftp_proto::hostport::{parse_eprt, HostPortError};
/// assert_eq!(parse_eprt(b"|2|1080::8:800:200C:417A|5282|")?.port(), 5282);
/// assert_eq!(parse_eprt(b"|3|foo|21|"), Err(HostPortError::UnsupportedProtocol(3)));
/// # Ok::<(), HostPortError>(())
/// ```
pub fn parse_eprt(arg: &[u8]) -> Result<SocketAddr, HostPortError> {
    let (&delimiter, rest) = arg.split_first().ok_or(HostPortError::Malformed)?;
    if !is_rfc2428_delimiter(delimiter) {
        return Err(HostPortError::Malformed);
    }
    // After the first delimiter: "prt d addr d port d" splits into four pieces, the last one empty.
    let mut fields = rest.split(|&b| b == delimiter);
    let (Some(protocol), Some(address), Some(port), Some(b""), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(HostPortError::Malformed);
    };

    let protocol = decimal::parse::<u32>(protocol).ok_or(HostPortError::Malformed)?;
    let protocol = u8::try_from(protocol)
        .ok()
        .and_then(NetworkProtocol::from_number)
        .ok_or(HostPortError::UnsupportedProtocol(protocol))?;

    let ip = parse_ip(address)?;
    let port = parse_port(port)?;
    match (protocol, ip) {
        (NetworkProtocol::V4, IpAddr::V4(v4)) => Ok(SocketAddr::V4(SocketAddrV4::new(v4, port))),
        (NetworkProtocol::V6, IpAddr::V6(v6)) => {
            Ok(SocketAddr::V6(SocketAddrV6::new(v6, port, 0, 0)))
        }
        _ => Err(HostPortError::FamilyMismatch),
    }
}

/// Formats an `EPRT` argument with the `|` delimiter: `|1|a.b.c.d|port|` or `|2|v6-address|port|`.
///
/// The IPv6 flow label and scope id are not part of the form and are dropped. A port of 0 is formatted but
/// [`parse_eprt`] rejects it.
///
/// ```
/// use ftp_proto::hostport::format_eprt;
/// let addr = "[1080::8:800:200c:417a]:5282".parse().unwrap();
/// assert_eq!(format_eprt(addr), "|2|1080::8:800:200c:417a|5282|");
/// ```
pub fn format_eprt(addr: SocketAddr) -> String {
    let protocol = NetworkProtocol::of(&addr).number();
    format!("|{protocol}|{}|{}|", addr.ip(), addr.port())
}

/// Parses the text of a `229` reply, `Entering Extended Passive Mode (|||6446|)` (RFC 2428 §3), returning
/// the port (1..=65535).
///
/// Looks for `(` followed by `<d><d><d><port><d>)` where `<d>` is whatever printable byte follows the `(`;
/// the network-protocol and address fields must be empty, as RFC 2428 requires (the client reuses the
/// control connection's address). If one `(` does not start a valid form, later ones are tried, so
/// explanatory parentheses earlier in the text do no harm. Text after the `)` is ignored.
///
/// ```
/// use ftp_proto::hostport::parse_epsv_reply;
/// assert_eq!(parse_epsv_reply(b"Entering Extended Passive Mode (|||6446|)"), Ok(6446));
/// ```
pub fn parse_epsv_reply(text: &[u8]) -> Result<u16, HostPortError> {
    let mut first_error = None;
    let mut rest = text;
    while let Some(open) = memchr::memchr(b'(', rest) {
        let after_open = rest.get(open + 1..).unwrap_or_default();
        match parse_epsv_parenthesised(after_open) {
            Ok(port) => return Ok(port),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        rest = after_open;
    }
    Err(first_error.unwrap_or(HostPortError::Malformed))
}

/// The text of the `229` reply for `port`: `Entering Extended Passive Mode (|||port|)`.
pub fn epsv_reply_text(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Parses `<d><d><d><port><d>)` (the part after `(`).
fn parse_epsv_parenthesised(text: &[u8]) -> Result<u16, HostPortError> {
    let (&d, rest) = text.split_first().ok_or(HostPortError::Malformed)?;
    if !is_rfc2428_delimiter(d) {
        return Err(HostPortError::Malformed);
    }
    let rest = rest.strip_prefix(&[d, d]).ok_or(HostPortError::Malformed)?;
    let digits_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (digits, tail) = rest.split_at_checked(digits_len).unwrap_or((rest, b""));
    if !tail.starts_with(&[d, b')']) {
        return Err(HostPortError::Malformed);
    }
    parse_port(digits)
}

/// RFC 2428: the delimiter "MUST be one of the ASCII characters in range 33-126 inclusive".
fn is_rfc2428_delimiter(b: u8) -> bool {
    (33..=126).contains(&b)
}

/// A decimal field that must be all digits: empty or non-digit => `Malformed`, too big => `OutOfRange`.
fn parse_bounded(digits: &[u8], max: u32) -> Result<u32, HostPortError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HostPortError::Malformed);
    }
    match decimal::parse::<u32>(digits) {
        Some(n) if n <= max => Ok(n),
        _ => Err(HostPortError::OutOfRange),
    }
}

fn parse_octet(digits: &[u8]) -> Result<u8, HostPortError> {
    let n = parse_bounded(digits, u8::MAX.into())?;
    u8::try_from(n).map_err(|_| HostPortError::OutOfRange)
}

/// An `EPRT`/`EPSV` port: 1..=65535.
fn parse_port(digits: &[u8]) -> Result<u16, HostPortError> {
    let n = parse_bounded(digits, u16::MAX.into())?;
    match u16::try_from(n) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(HostPortError::OutOfRange),
    }
}

fn parse_ip(text: &[u8]) -> Result<IpAddr, HostPortError> {
    let text = std::str::from_utf8(text).map_err(|_| HostPortError::Malformed)?;
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Ok(IpAddr::V4(v4));
    }
    text.parse::<Ipv6Addr>()
        .map(IpAddr::V6)
        .map_err(|_| HostPortError::Malformed)
}

/// Where the next attempt to read `h1,...,p2` may start, at or after `from`: the first digit that begins a
/// run of digits and does not continue a comma-separated list (so that after `(1,2,3,4,5,6,7)` fails, no
/// attempt starts at `2`). `from` is 0 or just after a run of digits, which is what the scan assumes.
fn next_pasv_candidate(text: &[u8], from: usize) -> Option<usize> {
    // State of the bytes before `from`: a digit unless we are at the very start.
    let mut prev_is_digit = from > 0;
    let mut last_significant_is_digit = from > 0;
    // True after "<digits> ," (spaces allowed): a digit here continues a list.
    let mut in_list = false;
    for (i, &b) in text.iter().enumerate().skip(from) {
        if b.is_ascii_digit() {
            if !prev_is_digit && !in_list {
                return Some(i);
            }
            prev_is_digit = true;
            last_significant_is_digit = true;
            in_list = false;
            continue;
        }
        prev_is_digit = false;
        if b != b' ' {
            in_list = b == b',' && last_significant_is_digit;
            last_significant_is_digit = false;
        }
    }
    None
}

/// Parses six comma-separated numbers at the start of `text`, tolerating spaces around the commas.
fn parse_pasv_numbers(text: &[u8]) -> Result<HostPort, HostPortError> {
    let mut fields = [0u8; 6];
    let mut rest = text;
    for (i, field) in fields.iter_mut().enumerate() {
        if i > 0 {
            rest = skip_spaces(rest);
            rest = rest.strip_prefix(b",").ok_or(HostPortError::Malformed)?;
            rest = skip_spaces(rest);
        }
        let digits_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, tail) = rest.split_at_checked(digits_len).unwrap_or((rest, b""));
        *field = parse_octet(digits)?;
        rest = tail;
    }
    // A seventh number means this was not an h1..p2 sequence after all.
    if skip_spaces(rest).starts_with(b",") {
        return Err(HostPortError::Malformed);
    }
    Ok(HostPort::from_fields(fields))
}

fn skip_spaces(text: &[u8]) -> &[u8] {
    let n = text.iter().take_while(|&&b| b == b' ').count();
    text.get(n..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hp(a: u8, b: u8, c: u8, d: u8, port: u16) -> HostPort {
        HostPort::new(Ipv4Addr::new(a, b, c, d), port)
    }

    #[test]
    fn port_argument_examples() {
        assert_eq!(
            HostPort::parse(b"192,168,1,15,9,47"),
            Ok(hp(192, 168, 1, 15, 2351))
        );
        assert_eq!(HostPort::parse(b"0,0,0,0,0,0"), Ok(hp(0, 0, 0, 0, 0)));
        assert_eq!(
            HostPort::parse(b"255,255,255,255,255,255"),
            Ok(hp(255, 255, 255, 255, 65535))
        );
        assert_eq!(
            HostPort::parse(b"010,000,1,2,0,21"),
            Ok(hp(10, 0, 1, 2, 21))
        );
    }

    #[test]
    fn port_argument_rejects() {
        use HostPortError::*;
        let cases: &[(&[u8], HostPortError)] = &[
            (b"300,1,1,1,1,1", OutOfRange),
            (b"1,1,1,1,1,256", OutOfRange),
            (b"99999999999999999999,1,1,1,1,1", OutOfRange),
            (b"1,2,3,4,5", Malformed),
            (b"1,2,3,4,5,6,7", Malformed),
            (b"-1,2,3,4,5,6", Malformed),
            (b"+1,2,3,4,5,6", Malformed),
            (b"", Malformed),
            (b"1,2,3,4,5,6,", Malformed),
            (b",1,2,3,4,5", Malformed),
            (b"1,,3,4,5,6", Malformed),
            (b"1, 2,3,4,5,6", Malformed),
            (b"1,2,3,4,5,6 ", Malformed),
            (b"1.2.3.4.5.6", Malformed),
            (b"a,b,c,d,e,f", Malformed),
            (b"1,2,3,4,5,\xff", Malformed),
        ];
        for (input, expected) in cases {
            assert_eq!(
                HostPort::parse(input),
                Err(expected.clone()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn display_and_conversions() {
        let x = hp(67, 208, 93, 232, 62843);
        assert_eq!(x.to_string(), "67,208,93,232,245,123");
        assert_eq!(
            x.pasv_reply_text(),
            "Entering Passive Mode (67,208,93,232,245,123)."
        );
        let sa: SocketAddrV4 = x.into();
        assert_eq!(sa.to_string(), "67.208.93.232:62843");
        assert_eq!(HostPort::from(sa), x);
        assert_eq!(HostPort::try_from(SocketAddr::V4(sa)), Ok(x));
        let v6: SocketAddr = "[::1]:21".parse().unwrap();
        assert_eq!(HostPort::try_from(v6), Err(HostPortError::FamilyMismatch));
    }

    #[test]
    fn pasv_reply_variants() {
        let expected = hp(67, 208, 93, 232, 62843);
        let ok: &[&[u8]] = &[
            b"Entering Passive Mode (67,208,93,232,245,123).",
            b"Entering Passive Mode (67,208,93,232,245,123)",
            b"Entering Passive Mode 67,208,93,232,245,123",
            b"Entering Passive Mode 67,208,93,232,245,123.",
            b"=67,208,93,232,245,123",
            b"Entering Passive Mode ( 67, 208 ,93 , 232,245 ,123 )",
            b"227 Entering Passive Mode (67,208,93,232,245,123).",
            b"Entering Passive Mode (EPSV is 2 better) 67,208,93,232,245,123",
            b"67,208,93,232,245,123",
            b"Entering Passive Mode,67,208,93,232,245,123",
        ];
        for text in ok {
            assert_eq!(
                HostPort::parse_pasv_reply(text),
                Ok(expected),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        assert_eq!(
            HostPort::parse_pasv_reply(b"227 Entering Passive Mode 10,0,0,1,4,1"),
            Ok(hp(10, 0, 0, 1, 1025))
        );
    }

    #[test]
    fn pasv_reply_rejects() {
        use HostPortError::*;
        let cases: &[(&[u8], HostPortError)] = &[
            (b"", Malformed),
            (b"Entering Passive Mode", Malformed),
            (b"Entering Passive Mode (1,2,3,4,5)", Malformed),
            (b"Entering Passive Mode (1,2,3,4,5,6,7)", Malformed),
            (b"Entering Passive Mode (300,2,3,4,5,6)", OutOfRange),
            (b"Entering Passive Mode (1,2,3,4,5,)", Malformed),
        ];
        for (input, expected) in cases {
            assert_eq!(
                HostPort::parse_pasv_reply(input),
                Err(expected.clone()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn eprt_rfc2428_examples() {
        assert_eq!(
            parse_eprt(b"|1|132.235.1.2|6275|"),
            Ok("132.235.1.2:6275".parse().unwrap())
        );
        assert_eq!(
            parse_eprt(b"|2|1080::8:800:200C:417A|5282|"),
            Ok("[1080::8:800:200c:417a]:5282".parse().unwrap())
        );
        // Any printable delimiter is allowed.
        assert_eq!(
            parse_eprt(b"!1!10.0.0.1!21!"),
            Ok("10.0.0.1:21".parse().unwrap())
        );
        assert_eq!(
            parse_eprt(b"~2~::ffff:1.2.3.4~65535~"),
            Ok("[::ffff:1.2.3.4]:65535".parse().unwrap())
        );
    }

    #[test]
    fn eprt_rejects() {
        use HostPortError::*;
        let cases: &[(&[u8], HostPortError)] = &[
            (b"|3|1.2.3.4|21|", UnsupportedProtocol(3)),
            (b"|0|1.2.3.4|21|", UnsupportedProtocol(0)),
            (b"|300|garbage|21|", UnsupportedProtocol(300)),
            (b"|99999999999|1.2.3.4|21|", Malformed),
            (b"|1|::1|21|", FamilyMismatch),
            (b"|2|1.2.3.4|21|", FamilyMismatch),
            (b"|1|1.2.3.4|0|", OutOfRange),
            (b"|1|1.2.3.4|70000|", OutOfRange),
            (b"|1|1.2.3.4|99999999999999999999|", OutOfRange),
            (b"|1|1.2.3.4|21", Malformed),
            (b"|1|1.2.3.4|21||", Malformed),
            (b"|1|1.2.3.4|21|x", Malformed),
            (b"1|1.2.3.4|21|", Malformed),
            (b"|1|1.2.3.4", Malformed),
            (b"", Malformed),
            (b"|", Malformed),
            (b"||||", Malformed),
            (b"|1||21|", Malformed),
            (b"|1|1.2.3.4||", Malformed),
            (b"|1|1.2.3.4|-1|", Malformed),
            (b"|1|1.2.3.4|+21|", Malformed),
            (b"|+1|1.2.3.4|21|", Malformed),
            (b"|1|1.2.3.256|21|", Malformed),
            (b"|1| 1.2.3.4|21|", Malformed),
            (b"\xa61\xa61.2.3.4\xa621\xa6", Malformed),
            (b" 1 1.2.3.4 21 ", Malformed),
            (b"\x7f1\x7f1.2.3.4\x7f21\x7f", Malformed),
            (b"|2|fe80::1%eth0|21|", Malformed),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_eprt(input),
                Err(expected.clone()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn eprt_format() {
        assert_eq!(
            format_eprt("132.235.1.2:6275".parse().unwrap()),
            "|1|132.235.1.2|6275|"
        );
        assert_eq!(format_eprt("[::1]:21".parse().unwrap()), "|2|::1|21|");
    }

    #[test]
    fn network_protocol_numbers() {
        for p in [NetworkProtocol::V4, NetworkProtocol::V6] {
            assert_eq!(NetworkProtocol::from_number(p.number()), Some(p));
        }
        assert_eq!(NetworkProtocol::from_number(0), None);
        assert_eq!(NetworkProtocol::from_number(3), None);
        assert_eq!(
            NetworkProtocol::of(&"[::1]:1".parse().unwrap()),
            NetworkProtocol::V6
        );
    }

    #[test]
    fn epsv_reply() {
        assert_eq!(
            parse_epsv_reply(b"Entering Extended Passive Mode (|||6446|)"),
            Ok(6446)
        );
        assert_eq!(parse_epsv_reply(b"(!!!1!)"), Ok(1));
        assert_eq!(parse_epsv_reply(b"EPSV ok (see RFC) (|||21|)."), Ok(21));
        assert_eq!(
            epsv_reply_text(6446),
            "Entering Extended Passive Mode (|||6446|)"
        );
        use HostPortError::*;
        let cases: &[(&[u8], HostPortError)] = &[
            (b"", Malformed),
            (b"Entering Extended Passive Mode", Malformed),
            (b"Entering Extended Passive Mode (|||0|)", OutOfRange),
            (b"Entering Extended Passive Mode (|||65536|)", OutOfRange),
            (b"Entering Extended Passive Mode (|||6446|", Malformed),
            (b"Entering Extended Passive Mode (|||6446)", Malformed),
            (b"Entering Extended Passive Mode (||||)", Malformed),
            (
                b"Entering Extended Passive Mode (|1|1.2.3.4|6446|)",
                Malformed,
            ),
            (b"Entering Extended Passive Mode (|!|6446|)", Malformed),
            (b"Entering Extended Passive Mode (   6446 )", Malformed),
            (b"(", Malformed),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_epsv_reply(input),
                Err(expected.clone()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    fn any_hostport() -> impl Strategy<Value = HostPort> {
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| HostPort::new(ip.into(), port))
    }

    fn any_eprt_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), 1..=u16::MAX)
                .prop_map(|(ip, port)| { SocketAddr::V4(SocketAddrV4::new(ip.into(), port)) }),
            (any::<[u16; 8]>(), 1..=u16::MAX).prop_map(|(ip, port)| {
                SocketAddr::V6(SocketAddrV6::new(ip.into(), port, 0, 0))
            }),
        ]
    }

    proptest! {
        #[test]
        fn port_round_trip(hp in any_hostport()) {
            prop_assert_eq!(HostPort::parse(hp.to_string().as_bytes()), Ok(hp));
        }

        #[test]
        fn pasv_round_trip(hp in any_hostport()) {
            prop_assert_eq!(HostPort::parse_pasv_reply(hp.pasv_reply_text().as_bytes()), Ok(hp));
        }

        #[test]
        fn eprt_round_trip(addr in any_eprt_addr()) {
            prop_assert_eq!(parse_eprt(format_eprt(addr).as_bytes()), Ok(addr));
        }

        #[test]
        fn epsv_round_trip(port in 1..=u16::MAX) {
            prop_assert_eq!(parse_epsv_reply(epsv_reply_text(port).as_bytes()), Ok(port));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = HostPort::parse(&bytes);
            let _ = HostPort::parse_pasv_reply(&bytes);
            let _ = parse_eprt(&bytes);
            let _ = parse_epsv_reply(&bytes);
        }

        #[test]
        fn structured_garbage_never_panics(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'|'), Just(b','), Just(b'('), Just(b')'), Just(b'1'), Just(b'9'),
                            Just(b'.'), Just(b':'), Just(b' '), any::<u8>()],
                0..48)
        ) {
            let _ = HostPort::parse(&bytes);
            let _ = HostPort::parse_pasv_reply(&bytes);
            let _ = parse_eprt(&bytes);
            let _ = parse_epsv_reply(&bytes);
        }
    }
}
