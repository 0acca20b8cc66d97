//! `ftp://` URLs (RFC 1738 §3.2), and `ftps://` for implicit FTPS.
//!
//! ```text
//! ftp://<user>:<password>@<host>:<port>/<cwd1>/<cwd2>/.../<cwdN>/<name>;type=<typecode>
//! ```
//!
//! * `ftps://` is the same URL for a server that speaks TLS from the first byte ("implicit FTPS", port
//!   990 by convention; RFC 4217 does not define it, but curl and most clients name it so). The scheme
//!   is [`FtpUrl::scheme`]; explicit FTPS (`AUTH TLS` on port 21) has no scheme of its own and is an
//!   `ftp://` URL with the client's own setting.
//! * User and password are optional; without a user the login is anonymous (RFC 1738 §3.2.1). Both are
//!   percent-decoded to bytes.
//! * The host is a domain name, an IPv4 address or a bracketed IPv6 literal (`[::1]`, RFC 3986 §3.2.2);
//!   the port defaults to 21 (990 for `ftps://`).
//! * The path is a list of `/`-separated segments, each percent-decoded to bytes **separately**: a `/`
//!   written as `%2F` is part of a segment, not a separator. RFC 1738 §3.2.2 maps the segments to FTP
//!   commands: one `CWD` per segment but the last, then `RETR` of the last (see [`FtpUrl::cwd_steps`] and
//!   [`FtpUrl::file_name`]). So `ftp://host/%2Fetc/motd` does `CWD /etc`, `RETR motd`, while
//!   `ftp://host/etc/motd` does `CWD etc`, `RETR motd` (relative to the login directory).
//! * `;type=a`, `;type=i` or `;type=d` ends the path: ASCII, image, or "list this directory".
//!
//! Decoded user names, passwords and segments may not contain CR, LF or NUL: they become command
//! arguments, and those bytes would end the command line early (a URL could otherwise smuggle commands).
//!
//! [`FtpUrl`]'s `Display` writes the URL back with every byte outside RFC 1738's unreserved set
//! percent-encoded, so `FtpUrl::parse(&url.to_string())` gives `url` again. Its `Debug` hides the password.
//!
//! ```
//! use ftp_proto::url::{FtpUrl, TypeCode, UrlHost};
//!
//! let url = FtpUrl::parse("ftp://alice:s%40cret@[2001:db8::1]:2121/pub/my%20file.txt;type=i")?;
//! assert_eq!(url.user(), Some(&b"alice"[..]));
//! assert_eq!(url.password(), Some(&b"s@cret"[..]));
//! assert_eq!(url.host(), &UrlHost::Ipv6("2001:db8::1".parse().unwrap()));
//! assert_eq!(url.port(), 2121);
//! assert_eq!(url.path_segments(), [b"pub".to_vec(), b"my file.txt".to_vec()]);
//! assert_eq!(url.typecode(), Some(TypeCode::Image));
//! assert_eq!(url.to_string(), "ftp://alice:s%40cret@[2001:db8::1]:2121/pub/my%20file.txt;type=i");
//! assert!(!format!("{url:?}").contains("cret"));
//! # Ok::<(), ftp_proto::url::UrlError>(())
//! ```

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::command::Pathname;

/// The default FTP control port (RFC 959 §3.2; RFC 1738 §3.2).
pub const DEFAULT_PORT: u16 = 21;

/// The default port of implicit FTPS (`ftps://`; IANA's `ftps`).
pub const DEFAULT_IMPLICIT_TLS_PORT: u16 = 990;

/// The scheme of an [`FtpUrl`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `ftp://`: plaintext FTP (a client may still upgrade with `AUTH TLS`).
    #[default]
    Ftp,
    /// `ftps://`: implicit FTPS, TLS from the first byte.
    Ftps,
}

impl Scheme {
    /// `ftp` or `ftps`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ftp => "ftp",
            Scheme::Ftps => "ftps",
        }
    }

    /// The port a URL of this scheme has when it names none: 21, or 990 for `ftps`.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Ftp => DEFAULT_PORT,
            Scheme::Ftps => DEFAULT_IMPLICIT_TLS_PORT,
        }
    }
}

/// Why a string is not an `ftp://` URL this module accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// There is no `scheme://` at the start.
    #[error("not a URL: expected ftp:// or ftps://")]
    MissingScheme,
    /// The scheme is neither `ftp` nor `ftps`.
    #[error("unsupported scheme {0:?}: expected ftp or ftps")]
    UnsupportedScheme(String),
    /// A space, control character or non-ASCII character appears unencoded.
    #[error("character not allowed in a URL (percent-encode it)")]
    InvalidCharacter,
    /// A `%` not followed by two hexadecimal digits.
    #[error("invalid percent-encoding")]
    InvalidPercentEncoding,
    /// A decoded user, password or path segment contains CR, LF or NUL.
    #[error("CR, LF or NUL in a user, password or path segment")]
    ForbiddenByte,
    /// The host is empty.
    #[error("missing host")]
    MissingHost,
    /// The host is not a domain name, an IPv4 address or a bracketed IPv6 address.
    #[error("invalid host")]
    InvalidHost,
    /// The port is not a number in 1..=65535.
    #[error("invalid port")]
    InvalidPort,
    /// `;type=` is followed by something other than `a`, `i` or `d`.
    #[error("invalid typecode (expected a, i or d)")]
    InvalidTypecode,
}

/// The host of a URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UrlHost {
    /// A domain name, as written.
    Name(String),
    /// An IPv4 address in dotted-decimal form.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (written in brackets in the URL).
    Ipv6(Ipv6Addr),
}

/// Writes the host as in a URL: IPv6 in brackets.
impl fmt::Display for UrlHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlHost::Name(name) => f.write_str(name),
            UrlHost::Ipv4(ip) => write!(f, "{ip}"),
            UrlHost::Ipv6(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// The `;type=` code of an FTP URL (RFC 1738 §3.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TypeCode {
    /// `a`: transfer as ASCII text (`TYPE A`).
    Ascii,
    /// `i`: transfer as binary (`TYPE I`).
    Image,
    /// `d`: the path names a directory; list it (`NLST`).
    Directory,
}

impl TypeCode {
    fn letter(self) -> char {
        match self {
            TypeCode::Ascii => 'a',
            TypeCode::Image => 'i',
            TypeCode::Directory => 'd',
        }
    }
}

/// A parsed `ftp://` or `ftps://` URL. See the [module documentation](self).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FtpUrl {
    scheme: Scheme,
    user: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
    host: UrlHost,
    port: u16,
    segments: Vec<Vec<u8>>,
    typecode: Option<TypeCode>,
}

impl FtpUrl {
    /// Parses an `ftp://` or `ftps://` URL. The scheme is case-insensitive; a `#fragment` is ignored.
    ///
    /// ```
    /// use ftp_proto::url::{FtpUrl, Scheme, UrlError};
    /// assert_eq!(FtpUrl::parse("ftp://example.com").unwrap().port(), 21);
    /// let implicit = FtpUrl::parse("ftps://example.com/").unwrap();
    /// assert_eq!((implicit.scheme(), implicit.port()), (Scheme::Ftps, 990));
    /// assert_eq!(FtpUrl::parse("http://example.com"), Err(UrlError::UnsupportedScheme("http".into())));
    /// assert_eq!(FtpUrl::parse("ftp://example.com:99999/"), Err(UrlError::InvalidPort));
    /// assert_eq!(FtpUrl::parse("ftp://h/a%0D%0ADELE%20x"), Err(UrlError::ForbiddenByte));
    /// ```
    pub fn parse(input: &str) -> Result<FtpUrl, UrlError> {
        let (scheme, rest) = input.split_once("://").ok_or(UrlError::MissingScheme)?;
        let scheme = if scheme.eq_ignore_ascii_case("ftp") {
            Scheme::Ftp
        } else if scheme.eq_ignore_ascii_case("ftps") {
            Scheme::Ftps
        } else {
            if scheme.is_empty() || !scheme.bytes().all(is_scheme_byte) {
                return Err(UrlError::MissingScheme);
            }
            return Err(UrlError::UnsupportedScheme(scheme.to_ascii_lowercase()));
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        if !rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::InvalidCharacter);
        }
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, Some(path)),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                let user = Some(decode_argument(user)?).filter(|u| !u.is_empty());
                let password = password.map(decode_argument).transpose()?;
                (user, password)
            }
        };
        let (host, port) = parse_hostport(hostport)?;
        let port = port.unwrap_or(scheme.default_port());
        let (segments, typecode) = match path {
            None => (Vec::new(), None),
            Some(path) => parse_path(path)?,
        };
        Ok(FtpUrl {
            scheme,
            user,
            password,
            host,
            port,
            segments,
            typecode,
        })
    }

    /// The scheme: `ftp`, or `ftps` for implicit FTPS.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether the server speaks TLS from the first byte (`ftps://`).
    pub fn is_implicit_tls(&self) -> bool {
        self.scheme == Scheme::Ftps
    }

    /// The decoded user name; `None` for anonymous FTP.
    pub fn user(&self) -> Option<&[u8]> {
        self.user.as_deref()
    }

    /// The decoded password, if the URL has one.
    pub fn password(&self) -> Option<&[u8]> {
        self.password.as_deref()
    }

    /// Whether the login is anonymous (no user in the URL).
    pub fn is_anonymous(&self) -> bool {
        self.user.is_none()
    }

    /// The host.
    pub fn host(&self) -> &UrlHost {
        &self.host
    }

    /// The port (unless the URL gives one: 21, or 990 for `ftps://`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The decoded path segments, in order: `ftp://h/a/b` gives `a`, `b`; `ftp://h/dir/` gives `dir` and
    /// an empty last segment (no file: the directory itself); `ftp://h` gives none.
    pub fn path_segments(&self) -> &[Vec<u8>] {
        &self.segments
    }

    /// The `CWD` arguments that reach the directory of the last segment (RFC 1738 §3.2.2): every segment
    /// but the last. An empty first segment (`ftp://h//etc/motd`) becomes `CWD /`, following curl, since an
    /// empty `CWD` argument is not valid FTP; other empty segments (`a//b`) are skipped.
    ///
    /// ```
    /// use ftp_proto::url::FtpUrl;
    /// let steps = |s| -> Vec<Vec<u8>> {
    ///     FtpUrl::parse(s).unwrap().cwd_steps().into_iter().map(|p| p.into_bytes()).collect()
    /// };
    /// assert_eq!(steps("ftp://h/pub/linux/README"), [b"pub".to_vec(), b"linux".to_vec()]);
    /// assert_eq!(steps("ftp://h/%2Fetc/motd"), [b"/etc".to_vec()]);
    /// assert_eq!(steps("ftp://h//etc/motd"), [b"/".to_vec(), b"etc".to_vec()]);
    /// assert!(steps("ftp://h/motd").is_empty());
    /// ```
    pub fn cwd_steps(&self) -> Vec<Pathname> {
        let Some((_, directories)) = self.segments.split_last() else {
            return Vec::new();
        };
        directories
            .iter()
            .enumerate()
            .filter_map(|(i, segment)| match segment.is_empty() {
                true if i == 0 => Pathname::new("/").ok(),
                true => None,
                false => Pathname::new(segment.clone()).ok(),
            })
            .collect()
    }

    /// The last segment, if it is not empty: the file to retrieve (or, with `;type=d`, to list).
    pub fn file_name(&self) -> Option<Pathname> {
        self.segments
            .last()
            .filter(|name| !name.is_empty())
            .and_then(|name| Pathname::new(name.clone()).ok())
    }

    /// The `;type=` code, if given.
    pub fn typecode(&self) -> Option<TypeCode> {
        self.typecode
    }
}

/// Writes the URL with every byte outside RFC 1738's unreserved set percent-encoded.
impl fmt::Display for FtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        if self.user.is_some() || self.password.is_some() {
            write_encoded(f, self.user.as_deref().unwrap_or_default())?;
            if let Some(password) = &self.password {
                f.write_str(":")?;
                write_encoded(f, password)?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        for segment in &self.segments {
            f.write_str("/")?;
            write_encoded(f, segment)?;
        }
        if let Some(code) = self.typecode {
            if self.segments.is_empty() {
                f.write_str("/")?;
            }
            write!(f, ";type={}", code.letter())?;
        }
        Ok(())
    }
}

/// Shows everything but the password.
impl fmt::Debug for FtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segments: Vec<_> = self
            .segments
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect();
        f.debug_struct("FtpUrl")
            .field("scheme", &self.scheme)
            .field("user", &self.user.as_deref().map(String::from_utf8_lossy))
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("segments", &segments)
            .field("typecode", &self.typecode)
            .finish()
    }
}

fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// RFC 1738 §2.2 unreserved characters: written as is; every other byte is percent-encoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"$-_.+!*'(),".contains(&b)
}

fn write_encoded(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for run in bytes.chunk_by(|a, b| is_unreserved(*a) == is_unreserved(*b)) {
        match run.first() {
            Some(&b) if is_unreserved(b) => {
                // Unreserved bytes are ASCII, so the run is valid UTF-8.
                f.write_str(std::str::from_utf8(run).unwrap_or_default())?;
            }
            _ => {
                for b in run {
                    write!(f, "%{b:02X}")?;
                }
            }
        }
    }
    Ok(())
}

/// Percent-decodes (RFC 1738 §2.2).
fn percent_decode(text: &str) -> Result<Vec<u8>, UrlError> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let high = bytes.next().and_then(hex_value);
        let low = bytes.next().and_then(hex_value);
        match (high, low) {
            (Some(high), Some(low)) => out.push(high << 4 | low),
            _ => return Err(UrlError::InvalidPercentEncoding),
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Decodes a user, password or segment, which must not contain CR, LF or NUL once decoded.
fn decode_argument(text: &str) -> Result<Vec<u8>, UrlError> {
    let bytes = percent_decode(text)?;
    if bytes.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(UrlError::ForbiddenByte);
    }
    Ok(bytes)
}

/// `host[:port]` or `[v6][:port]`; the port is `None` when not given (or empty).
fn parse_hostport(hostport: &str) -> Result<(UrlHost, Option<u16>), UrlError> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (literal, after) = bracketed.split_once(']').ok_or(UrlError::InvalidHost)?;
        let ip = literal
            .parse::<Ipv6Addr>()
            .map_err(|_| UrlError::InvalidHost)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(UrlError::InvalidHost)?),
        };
        (UrlHost::Ipv6(ip), port)
    } else {
        let (name, port) = match hostport.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (hostport, None),
        };
        (parse_host(name)?, port)
    };
    let port = match port {
        None | Some("") => None,
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => Some(
            digits
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or(UrlError::InvalidPort)?,
        ),
        Some(_) => return Err(UrlError::InvalidPort),
    };
    Ok((host, port))
}

/// A dotted-quad IPv4 address, or a domain name of letters, digits, hyphens and underscores.
fn parse_host(name: &str) -> Result<UrlHost, UrlError> {
    if name.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Ok(UrlHost::Ipv4(ip));
    }
    let valid = name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(UrlHost::Name(name.to_owned()))
    } else {
        Err(UrlError::InvalidHost)
    }
}

/// The url-path after the `/` that ends the host: segments and the optional `;type=` code.
fn parse_path(path: &str) -> Result<(Vec<Vec<u8>>, Option<TypeCode>), UrlError> {
    let (path, typecode) = match path.rsplit_once(';') {
        Some((before, param))
            if param
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("type=")) =>
        {
            let code = match param
                .get(5..)
                .unwrap_or_default()
                .to_ascii_lowercase()
                .as_str()
            {
                "a" => TypeCode::Ascii,
                "i" => TypeCode::Image,
                "d" => TypeCode::Directory,
                _ => return Err(UrlError::InvalidTypecode),
            };
            (before, Some(code))
        }
        // RFC 1738 reserves `;` in segments, but a lenient reading keeps an unencoded one as data.
        _ => (path, None),
    };
    let segments = path
        .split('/')
        .map(decode_argument)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((segments, typecode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_of_valid_urls() {
        let url = FtpUrl::parse("ftp://ftp.example.com").unwrap();
        assert!(url.is_anonymous() && url.password().is_none());
        assert_eq!(url.host(), &UrlHost::Name("ftp.example.com".into()));
        assert_eq!((url.port(), url.path_segments().len()), (21, 0));
        assert!(url.file_name().is_none() && url.cwd_steps().is_empty());

        let url = FtpUrl::parse("FTP://bob@10.0.0.1:2121/").unwrap();
        assert_eq!(url.user(), Some(&b"bob"[..]));
        assert_eq!(url.host(), &UrlHost::Ipv4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(url.port(), 2121);
        assert_eq!(url.path_segments(), [Vec::<u8>::new()]);
        assert!(url.file_name().is_none());

        let url = FtpUrl::parse("ftp://[::1]/dir/;type=d").unwrap();
        assert_eq!(url.host(), &UrlHost::Ipv6(Ipv6Addr::LOCALHOST));
        assert_eq!(url.typecode(), Some(TypeCode::Directory));
        assert_eq!(url.path_segments(), [b"dir".to_vec(), Vec::new()]);

        // A user with an empty password, an '@' in the password, and a '#fragment'.
        let url = FtpUrl::parse("ftp://u:@h/f#frag").unwrap();
        assert_eq!(url.password(), Some(&b""[..]));
        let url = FtpUrl::parse("ftp://u:p@ss@h/f").unwrap();
        assert_eq!(
            (url.user(), url.password()),
            (Some(&b"u"[..]), Some(&b"p@ss"[..]))
        );

        // Percent-decoding happens per segment: %2F is data, not a separator; raw bytes survive.
        let url = FtpUrl::parse("ftp://h/a%2Fb/%FF%fe;TYPE=A").unwrap();
        assert_eq!(url.path_segments(), [b"a/b".to_vec(), vec![0xff, 0xfe]]);
        assert_eq!(url.typecode(), Some(TypeCode::Ascii));
        // An unencoded ';' that is not a typecode stays in the name.
        let url = FtpUrl::parse("ftp://h/a;b").unwrap();
        assert_eq!(url.path_segments(), [b"a;b".to_vec()]);
        // An empty port means the default one.
        assert_eq!(FtpUrl::parse("ftp://h:/").unwrap().port(), 21);
        assert_eq!(FtpUrl::parse("ftp://h").unwrap().scheme(), Scheme::Ftp);
    }

    #[test]
    fn ftps_is_implicit_tls_on_port_990() {
        let url = FtpUrl::parse("ftps://u:p@h/dir/f").unwrap();
        assert_eq!((url.scheme(), url.port()), (Scheme::Ftps, 990));
        assert!(url.is_implicit_tls());
        assert!(!FtpUrl::parse("ftp://h/").unwrap().is_implicit_tls());
        assert_eq!(url.path_segments(), [b"dir".to_vec(), b"f".to_vec()]);
        assert_eq!(FtpUrl::parse("FTPS://h:/").unwrap().port(), 990);
        let url = FtpUrl::parse("ftps://h:2990/").unwrap();
        assert_eq!((url.scheme(), url.port()), (Scheme::Ftps, 2990));
        // Each scheme leaves out its own default port, and only that one.
        assert_eq!(url.to_string(), "ftps://h:2990/");
        assert_eq!(
            FtpUrl::parse("ftps://h:990/x").unwrap().to_string(),
            "ftps://h/x"
        );
        assert_eq!(
            FtpUrl::parse("ftps://h:21/x").unwrap().to_string(),
            "ftps://h:21/x"
        );
        assert_eq!(
            FtpUrl::parse("ftp://h:990/x").unwrap().to_string(),
            "ftp://h:990/x"
        );
        assert!(format!("{:?}", FtpUrl::parse("ftps://h/").unwrap()).contains("Ftps"));
        assert_eq!(
            FtpUrl::parse("ftpes://h/"),
            Err(UrlError::UnsupportedScheme("ftpes".into()))
        );
    }

    #[test]
    fn table_of_errors() {
        use UrlError::*;
        let cases: &[(&str, UrlError)] = &[
            ("example.com/file", MissingScheme),
            ("://h", MissingScheme),
            ("sftp://h", UnsupportedScheme("sftp".into())),
            ("ftp://", MissingHost),
            ("ftp://u@/x", MissingHost),
            ("ftp://h:0", InvalidPort),
            ("ftp://h:65536", InvalidPort),
            ("ftp://h:-1", InvalidPort),
            ("ftp://h:21x", InvalidPort),
            ("ftp://[::1", InvalidHost),
            ("ftp://[::1]x", InvalidHost),
            ("ftp://[zz]/", InvalidHost),
            ("ftp://-h-/", InvalidHost),
            ("ftp://h..x/", InvalidHost),
            ("ftp://h%41/", InvalidHost),
            ("ftp://h/a b", InvalidCharacter),
            ("ftp://h/caf\u{e9}", InvalidCharacter),
            ("ftp://h/%4", InvalidPercentEncoding),
            ("ftp://h/%zz", InvalidPercentEncoding),
            ("ftp://u%00@h/", ForbiddenByte),
            ("ftp://h/x;type=q", InvalidTypecode),
            ("ftp://h/x;type=", InvalidTypecode),
        ];
        for (input, error) in cases {
            assert_eq!(FtpUrl::parse(input).as_ref(), Err(error), "{input}");
        }
    }

    #[test]
    fn display_encodes_reserved_bytes() {
        let url = FtpUrl::parse("ftp://a%3Ab:c%2Fd@h/x%3By/%2F").unwrap();
        assert_eq!(url.user(), Some(&b"a:b"[..]));
        assert_eq!(url.to_string(), "ftp://a%3Ab:c%2Fd@h/x%3By/%2F");
        let url = FtpUrl::parse("ftp://h:21/;type=i").unwrap();
        assert_eq!(url.to_string(), "ftp://h/;type=i");
    }

    fn url_strategy() -> impl Strategy<Value = FtpUrl> {
        let bytes = || {
            proptest::collection::vec(
                any::<u8>().prop_filter("no CR LF NUL", |b| !matches!(b, b'\r' | b'\n' | 0)),
                0..12,
            )
        };
        let host = prop_oneof![
            "[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z]{2,5}){0,2}".prop_map(UrlHost::Name),
            any::<[u8; 4]>().prop_map(|o| UrlHost::Ipv4(Ipv4Addr::from(o))),
            any::<[u16; 8]>().prop_map(|s| UrlHost::Ipv6(Ipv6Addr::from(s))),
        ];
        let scheme = prop_oneof![Just(Scheme::Ftp), Just(Scheme::Ftps)];
        let typecode = prop::option::of(prop_oneof![
            Just(TypeCode::Ascii),
            Just(TypeCode::Image),
            Just(TypeCode::Directory)
        ]);
        (
            scheme,
            prop::option::of(bytes().prop_filter("non-empty", |u| !u.is_empty())),
            prop::option::of(bytes()),
            host,
            1u16..,
            proptest::collection::vec(bytes(), 0..5),
            typecode,
        )
            .prop_map(
                |(scheme, user, password, host, port, mut segments, typecode)| {
                    // Without a user, a password is written after an empty user and read back as anonymous.
                    let password = user.as_ref().and(password);
                    if typecode.is_some() && segments.is_empty() {
                        segments.push(Vec::new());
                    }
                    FtpUrl {
                        scheme,
                        user,
                        password,
                        host,
                        port,
                        segments,
                        typecode,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(url in url_strategy()) {
            let text = url.to_string();
            prop_assert_eq!(FtpUrl::parse(&text), Ok(url), "{}", text);
        }

        #[test]
        fn arbitrary_input_never_panics(input in "(ftps?://)?[ -~]{0,40}") {
            if let Ok(url) = FtpUrl::parse(&input) {
                let again = FtpUrl::parse(&url.to_string());
                prop_assert_eq!(again, Ok(url));
            }
        }
    }
}
