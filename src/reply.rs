//! Replies: codes, the reply value, its encoder and a streaming parser (RFC 959 §4.2, §5.4).
//!
//! Every FTP reply starts with a three-digit [`ReplyCode`] whose first digit says how the command went
//! ([`ReplyKind`]) and whose second digit says what it is about ([`ReplyCategory`]) (RFC 959 §4.2.1).
//!
//! A [`Reply`] is one code and one or more lines of text. On the wire (RFC 959 §4.2):
//!
//! * a single-line reply is `ddd SP text CRLF`;
//! * a multi-line reply is `ddd-first CRLF`, any number of inner lines, then `ddd SP last CRLF` with the same
//!   code. An inner line that begins with a digit could be taken for the end line, so the encoder pads it
//!   with one leading space, as §4.2 asks of servers.
//!
//! Text is bytes (RFC 959 is 7-bit Telnet NVT, RFC 2640 allows UTF-8; neither is enforced here). A CR or LF
//! inside a line must never reach the wire as such, or a peer could inject a forged reply. The encoder
//! therefore writes **LF as NUL**, and **CR as CR NUL** (the Telnet form of a bare CR, which RFC 2640
//! prescribes for a CR inside a pathname). For a `257` pathname both are reversible because a pathname cannot contain
//! NUL; [`parse_quoted_pathname`] undoes them.
//!
//! [`ReplyParser`] is the client side: a streaming, chunking-independent parser with explicit memory bounds
//! ([`ReplyParserLimits`]) that resynchronises after errors.
//!
//! ```
//! use ftp_proto::reply::{Reply, ReplyCode, ReplyParser, ReplyParserLimits};
//!
//! let reply = Reply::multiline(ReplyCode::SYSTEM_STATUS, ["Extensions supported:", "SIZE", "End"]);
//! let wire = reply.to_bytes();
//! assert_eq!(wire, b"211-Extensions supported:\r\nSIZE\r\n211 End\r\n");
//!
//! let mut parser = ReplyParser::new(ReplyParserLimits::default());
//! let (consumed, outcome) = parser.parse(&wire);
//! assert_eq!(consumed, wire.len());
//! assert_eq!(outcome, Some(Ok(reply)));
//! ```

use std::fmt;

/// A reply code, always in `100..=599`.
///
/// The associated constants name every code a server in this crate sends (RFC 959 §4.2.2 and §5.4, plus
/// RFC 2228, RFC 2428 and RFC 1639 additions). RFC 2228's protected replies (`631`..`633`) are outside the
/// range and not representable.
///
/// ```
/// use ftp_proto::reply::{ReplyCode, ReplyKind, ReplyCategory};
/// let code = ReplyCode::new(550).unwrap();
/// assert_eq!(code, ReplyCode::FILE_UNAVAILABLE_PERMANENT);
/// assert_eq!(code.kind(), ReplyKind::PermanentNegative);
/// assert_eq!(code.category(), ReplyCategory::FileSystem);
/// assert_eq!(code.to_string(), "550");
/// assert!(ReplyCode::new(600).is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ReplyCode(u16);

/// How a command went: the first digit of a [`ReplyCode`] (RFC 959 §4.2.1).
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReplyKind {
    /// `1yz`: action started; expect another reply before sending a new command.
    PositivePreliminary,
    /// `2yz`: action completed.
    PositiveCompletion,
    /// `3yz`: command accepted, more information needed (e.g. a password).
    PositiveIntermediate,
    /// `4yz`: not done, but the error is temporary; retrying may work.
    TransientNegative,
    /// `5yz`: not done, and retrying the same command will not help.
    PermanentNegative,
}

/// What a reply is about: the second digit of a [`ReplyCode`] (RFC 959 §4.2.1).
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReplyCategory {
    /// `x0z`: syntax, unimplemented or superfluous commands.
    Syntax,
    /// `x1z`: replies to requests for information (status, help).
    Information,
    /// `x2z`: the control and data connections.
    Connections,
    /// `x3z`: login and accounting (RFC 2228 also uses it for security exchanges).
    Authentication,
    /// `x4z`: unspecified by RFC 959.
    Unspecified,
    /// `x5z`: the file system.
    FileSystem,
    /// `x6z`..`x9z`: not defined by any RFC; carries the digit.
    Unknown(u8),
}

impl ReplyCode {
    /// The code, if it is in `100..=599`.
    pub const fn new(code: u16) -> Option<ReplyCode> {
        if code >= 100 && code <= 599 {
            Some(ReplyCode(code))
        } else {
            None
        }
    }

    /// The numeric value.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The three ASCII digits of the code, as sent on the wire.
    pub const fn digits(self) -> [u8; 3] {
        // Each quotient is below 10 by the range invariant, so the casts cannot truncate.
        [
            b'0' + (self.0 / 100) as u8,
            b'0' + (self.0 / 10 % 10) as u8,
            b'0' + (self.0 % 10) as u8,
        ]
    }

    /// The code spelled by three ASCII digits, if they are digits and in range.
    pub const fn from_digits(digits: [u8; 3]) -> Option<ReplyCode> {
        let [a, b, c] = digits;
        if !a.is_ascii_digit() || !b.is_ascii_digit() || !c.is_ascii_digit() {
            return None;
        }
        ReplyCode::new((a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16)
    }

    /// The first digit, as a [`ReplyKind`].
    pub const fn kind(self) -> ReplyKind {
        match self.0 / 100 {
            1 => ReplyKind::PositivePreliminary,
            2 => ReplyKind::PositiveCompletion,
            3 => ReplyKind::PositiveIntermediate,
            4 => ReplyKind::TransientNegative,
            // 5, by the range invariant.
            _ => ReplyKind::PermanentNegative,
        }
    }

    /// The second digit, as a [`ReplyCategory`].
    pub const fn category(self) -> ReplyCategory {
        match self.0 / 10 % 10 {
            0 => ReplyCategory::Syntax,
            1 => ReplyCategory::Information,
            2 => ReplyCategory::Connections,
            3 => ReplyCategory::Authentication,
            4 => ReplyCategory::Unspecified,
            5 => ReplyCategory::FileSystem,
            // Below 10, so the cast cannot truncate.
            other => ReplyCategory::Unknown(other as u8),
        }
    }

    /// `1yz`.
    pub const fn is_positive_preliminary(self) -> bool {
        self.0 / 100 == 1
    }

    /// `2yz`.
    pub const fn is_positive_completion(self) -> bool {
        self.0 / 100 == 2
    }

    /// `3yz`.
    pub const fn is_positive_intermediate(self) -> bool {
        self.0 / 100 == 3
    }

    /// `4yz`.
    pub const fn is_transient_negative(self) -> bool {
        self.0 / 100 == 4
    }

    /// `5yz`.
    pub const fn is_permanent_negative(self) -> bool {
        self.0 / 100 == 5
    }

    /// `4yz` or `5yz`: the command failed.
    pub const fn is_negative(self) -> bool {
        self.0 >= 400
    }

    /// 110: restart marker reply (MARK yyyy = mmmm).
    pub const RESTART_MARKER: ReplyCode = ReplyCode(110);
    /// 120: service ready in nnn minutes.
    pub const SERVICE_READY_IN: ReplyCode = ReplyCode(120);
    /// 125: data connection already open; transfer starting.
    pub const DATA_CONNECTION_ALREADY_OPEN: ReplyCode = ReplyCode(125);
    /// 150: file status okay; about to open data connection.
    pub const FILE_STATUS_OK: ReplyCode = ReplyCode(150);
    /// 200: command okay.
    pub const COMMAND_OK: ReplyCode = ReplyCode(200);
    /// 202: command not implemented, superfluous at this site.
    pub const COMMAND_NOT_IMPLEMENTED_SUPERFLUOUS: ReplyCode = ReplyCode(202);
    /// 211: system status, or system help reply; also the `FEAT` reply (RFC 2389).
    pub const SYSTEM_STATUS: ReplyCode = ReplyCode(211);
    /// 212: directory status.
    pub const DIRECTORY_STATUS: ReplyCode = ReplyCode(212);
    /// 213: file status; also the `SIZE` and `MDTM` replies (RFC 3659).
    pub const FILE_STATUS: ReplyCode = ReplyCode(213);
    /// 214: help message.
    pub const HELP: ReplyCode = ReplyCode(214);
    /// 215: NAME system type (the `SYST` reply).
    pub const SYSTEM_TYPE: ReplyCode = ReplyCode(215);
    /// 220: service ready for new user.
    pub const SERVICE_READY: ReplyCode = ReplyCode(220);
    /// 221: service closing control connection.
    pub const CLOSING_CONTROL: ReplyCode = ReplyCode(221);
    /// 225: data connection open; no transfer in progress.
    pub const DATA_CONNECTION_OPEN: ReplyCode = ReplyCode(225);
    /// 226: closing data connection; requested file action successful.
    pub const CLOSING_DATA: ReplyCode = ReplyCode(226);
    /// 227: entering passive mode (h1,h2,h3,h4,p1,p2).
    pub const ENTERING_PASSIVE: ReplyCode = ReplyCode(227);
    /// 228: entering long passive mode (RFC 1639, `LPSV`).
    pub const ENTERING_LONG_PASSIVE: ReplyCode = ReplyCode(228);
    /// 229: entering extended passive mode (|||port|) (RFC 2428).
    pub const ENTERING_EXTENDED_PASSIVE: ReplyCode = ReplyCode(229);
    /// 230: user logged in, proceed.
    pub const LOGGED_IN: ReplyCode = ReplyCode(230);
    /// 232: user logged in, authorized by security data exchange (RFC 2228).
    pub const LOGGED_IN_SECURITY: ReplyCode = ReplyCode(232);
    /// 234: security data exchange complete (RFC 2228; the `AUTH TLS` acceptance of RFC 4217).
    pub const SECURITY_EXCHANGE_OK: ReplyCode = ReplyCode(234);
    /// 235: security data exchange completed successfully, with `ADAT=` data (RFC 2228).
    pub const SECURITY_EXCHANGE_DONE: ReplyCode = ReplyCode(235);
    /// 250: requested file action okay, completed.
    pub const FILE_ACTION_OK: ReplyCode = ReplyCode(250);
    /// 257: "PATHNAME" created (also the `PWD` reply).
    pub const PATHNAME_CREATED: ReplyCode = ReplyCode(257);
    /// 331: user name okay, need password.
    pub const NEED_PASSWORD: ReplyCode = ReplyCode(331);
    /// 332: need account for login.
    pub const NEED_ACCOUNT: ReplyCode = ReplyCode(332);
    /// 334: security mechanism accepted, `ADAT` data follows (RFC 2228).
    pub const SECURITY_MECHANISM_ACCEPTED: ReplyCode = ReplyCode(334);
    /// 335: security data acceptable, more required (RFC 2228).
    pub const SECURITY_DATA_MORE: ReplyCode = ReplyCode(335);
    /// 336: user name okay, need password; challenge follows (RFC 2228).
    pub const NEED_PASSWORD_CHALLENGE: ReplyCode = ReplyCode(336);
    /// 350: requested file action pending further information (`RNFR`, `REST`).
    pub const FILE_ACTION_PENDING: ReplyCode = ReplyCode(350);
    /// 421: service not available, closing control connection.
    pub const SERVICE_NOT_AVAILABLE: ReplyCode = ReplyCode(421);
    /// 425: can't open data connection.
    pub const CANT_OPEN_DATA: ReplyCode = ReplyCode(425);
    /// 426: connection closed; transfer aborted.
    pub const TRANSFER_ABORTED: ReplyCode = ReplyCode(426);
    /// 431: need some unavailable resource to process security (RFC 2228).
    pub const SECURITY_RESOURCE_UNAVAILABLE: ReplyCode = ReplyCode(431);
    /// 450: requested file action not taken; file unavailable (e.g. busy).
    pub const FILE_UNAVAILABLE: ReplyCode = ReplyCode(450);
    /// 451: requested action aborted: local error in processing.
    pub const LOCAL_ERROR: ReplyCode = ReplyCode(451);
    /// 452: requested action not taken: insufficient storage space in system.
    pub const INSUFFICIENT_STORAGE: ReplyCode = ReplyCode(452);
    /// 500: syntax error, command unrecognized (also: command line too long).
    pub const SYNTAX_ERROR: ReplyCode = ReplyCode(500);
    /// 501: syntax error in parameters or arguments.
    pub const SYNTAX_ERROR_ARGUMENTS: ReplyCode = ReplyCode(501);
    /// 502: command not implemented.
    pub const NOT_IMPLEMENTED: ReplyCode = ReplyCode(502);
    /// 503: bad sequence of commands.
    pub const BAD_SEQUENCE: ReplyCode = ReplyCode(503);
    /// 504: command not implemented for that parameter.
    pub const NOT_IMPLEMENTED_FOR_PARAMETER: ReplyCode = ReplyCode(504);
    /// 521: a data connection cannot be opened with the current `PROT` setting (RFC 4217).
    pub const PROT_SETTING_REFUSED: ReplyCode = ReplyCode(521);
    /// 522: network protocol not supported, use (1,2) (RFC 2428 `EPRT`).
    pub const EXTENDED_PORT_FAILURE: ReplyCode = ReplyCode(522);
    /// 530: not logged in.
    pub const NOT_LOGGED_IN: ReplyCode = ReplyCode(530);
    /// 532: need account for storing files.
    pub const NEED_ACCOUNT_FOR_STORING: ReplyCode = ReplyCode(532);
    /// 533: command protection level denied for policy reasons (RFC 2228).
    pub const PROTECTION_LEVEL_DENIED: ReplyCode = ReplyCode(533);
    /// 534: request denied for policy reasons (RFC 2228; e.g. TLS required, RFC 4217).
    pub const REQUEST_DENIED_POLICY: ReplyCode = ReplyCode(534);
    /// 535: failed security check (RFC 2228).
    pub const SECURITY_CHECK_FAILED: ReplyCode = ReplyCode(535);
    /// 536: requested `PROT` level not supported by mechanism (RFC 2228).
    pub const PROT_LEVEL_NOT_SUPPORTED: ReplyCode = ReplyCode(536);
    /// 537: command protection level not supported by security mechanism (RFC 2228).
    pub const COMMAND_PROTECTION_NOT_SUPPORTED: ReplyCode = ReplyCode(537);
    /// 550: requested action not taken; file unavailable (not found, no access).
    pub const FILE_UNAVAILABLE_PERMANENT: ReplyCode = ReplyCode(550);
    /// 551: requested action aborted: page type unknown.
    pub const PAGE_TYPE_UNKNOWN: ReplyCode = ReplyCode(551);
    /// 552: requested file action aborted: exceeded storage allocation.
    pub const EXCEEDED_STORAGE: ReplyCode = ReplyCode(552);
    /// 553: requested action not taken: file name not allowed.
    pub const FILE_NAME_NOT_ALLOWED: ReplyCode = ReplyCode(553);
}

/// Three digits, e.g. `226`.
impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<ReplyCode> for u16 {
    fn from(code: ReplyCode) -> u16 {
        code.0
    }
}

/// A reply: a code and one or more lines of text (bytes, without line terminators).
///
/// Lines are stored in one buffer, so building or parsing a reply costs one allocation for its text
/// (plus one for the line offsets of a multi-line reply), not one per line.
///
/// ```
/// use ftp_proto::reply::{Reply, ReplyCode};
/// let reply = Reply::new(ReplyCode::CLOSING_DATA, "Transfer complete.");
/// assert_eq!(reply.to_bytes(), b"226 Transfer complete.\r\n");
/// assert_eq!(reply.to_string(), "226 Transfer complete.");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reply {
    code: ReplyCode,
    /// All lines, concatenated.
    text: Vec<u8>,
    /// Where lines 2.. start in `text` (empty for a single-line reply), ascending.
    line_starts: Vec<usize>,
}

impl Reply {
    /// A single-line reply. `text` is kept as one line even if it contains CR or LF (see the module docs for
    /// how those are encoded); use [`Reply::multiline`] for several lines.
    pub fn new(code: ReplyCode, text: impl Into<Vec<u8>>) -> Reply {
        Reply {
            code,
            text: text.into(),
            line_starts: Vec::new(),
        }
    }

    /// A reply with the given lines. No lines gives one empty line; one line gives a single-line reply.
    pub fn multiline(
        code: ReplyCode,
        lines: impl IntoIterator<Item = impl Into<Vec<u8>>>,
    ) -> Reply {
        let mut reply = Reply::new(code, Vec::new());
        for (i, line) in lines.into_iter().enumerate() {
            let line = line.into();
            if i == 0 {
                reply.text = line;
            } else {
                reply.line_starts.push(reply.text.len());
                reply.text.extend_from_slice(&line);
            }
        }
        reply
    }

    /// The reply code.
    pub fn code(&self) -> ReplyCode {
        self.code
    }

    /// The lines of text, first to last (at least one, possibly empty). For a parsed reply, the first line
    /// excludes `ddd-`/`ddd `, the last excludes `ddd `, and inner lines are exactly as received.
    pub fn lines(&self) -> impl ExactSizeIterator<Item = &[u8]> + DoubleEndedIterator + Clone {
        (0..self.line_count()).map(move |i| self.line(i).unwrap_or_default())
    }

    /// Line `index` (0-based), if there is one.
    pub fn line(&self, index: usize) -> Option<&[u8]> {
        let start = match index.checked_sub(1) {
            None => 0,
            Some(i) => *self.line_starts.get(i)?,
        };
        let end = self
            .line_starts
            .get(index)
            .copied()
            .unwrap_or(self.text.len());
        self.text.get(start..end)
    }

    /// How many lines (at least 1).
    pub fn line_count(&self) -> usize {
        self.line_starts.len() + 1
    }

    /// The first line: the whole text of a single-line reply (e.g. the `227` or `257` text).
    pub fn first_line(&self) -> &[u8] {
        self.line(0).unwrap_or_default()
    }

    /// The last line.
    pub fn last_line(&self) -> &[u8] {
        self.line(self.line_starts.len()).unwrap_or_default()
    }

    /// True if the reply has more than one line.
    pub fn is_multiline(&self) -> bool {
        !self.line_starts.is_empty()
    }

    /// The lines joined with `\n`, invalid UTF-8 replaced (lossy).
    pub fn text_lossy(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + self.line_starts.len());
        for (i, line) in self.lines().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&String::from_utf8_lossy(line));
        }
        out
    }

    /// Appends the wire form to `out`: `ddd text\r\n`, or for several lines `ddd-first\r\n`, the inner lines
    /// (a leading space added to those starting with a digit), `ddd last\r\n`. Inside any line, LF is
    /// written as NUL and CR as CR NUL, so the reply can never be split or forged.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Exact when no CR needs escaping; close enough otherwise, and cheaper than counting.
        out.reserve(self.text.len() + 7 * self.line_count());
        let digits = self.code.digits();
        let last = self.line_starts.len();
        for (i, line) in self.lines().enumerate() {
            if i == last {
                out.extend_from_slice(&digits);
                out.push(b' ');
            } else if i == 0 {
                out.extend_from_slice(&digits);
                out.push(b'-');
            } else if starts_with_digit(line) {
                out.push(b' ');
            }
            push_escaped(out, line);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The number of bytes [`Reply::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        let last = self.line_starts.len();
        let prefixes: usize = self
            .lines()
            .enumerate()
            .map(|(i, line)| match i {
                _ if i == 0 || i == last => 4,
                _ => usize::from(starts_with_digit(line)),
            })
            .sum();
        let escaped_crs = memchr::memchr_iter(b'\r', &self.text).count();
        prefixes + self.text.len() + escaped_crs + 2 * self.line_count()
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }
}

/// Shows the text lossily decoded, lines as on the wire.
impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<_> = self.lines().map(String::from_utf8_lossy).collect();
        f.debug_struct("Reply")
            .field("code", &self.code.0)
            .field("lines", &lines)
            .finish()
    }
}

/// The reply as text for logs: the wire lines (with code, separator and padding) joined by `\n`, invalid
/// UTF-8 shown as `\xNN` and control characters escaped, so a hostile reply cannot forge log lines.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.line_starts.len();
        for (i, line) in self.lines().enumerate() {
            if i == last {
                write!(f, "{} ", self.code)?;
            } else if i == 0 {
                write!(f, "{}-", self.code)?;
            } else if starts_with_digit(line) {
                f.write_str(" ")?;
            }
            write_escaped(f, line)?;
            if i != last {
                f.write_str("\n")?;
            }
        }
        Ok(())
    }
}

fn starts_with_digit(line: &[u8]) -> bool {
    line.first().is_some_and(u8::is_ascii_digit)
}

/// Appends `line` with LF as NUL and CR as CR NUL.
fn push_escaped(out: &mut Vec<u8>, line: &[u8]) {
    let mut rest = line;
    while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
        let (head, tail) = rest.split_at_checked(i).unwrap_or((rest, b""));
        out.extend_from_slice(head);
        match tail.split_first() {
            Some((b'\r', after)) => {
                out.extend_from_slice(b"\r\0");
                rest = after;
            }
            Some((_, after)) => {
                out.push(0);
                rest = after;
            }
            None => rest = b"",
        }
    }
    out.extend_from_slice(rest);
}

fn write_escaped(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

/// Quotes a pathname for a `257` reply (RFC 959 Appendix II): wraps it in `"` and doubles every embedded
/// `"`. Put the result at the start of the reply text, e.g. `"/a ""b""" created`.
///
/// ```
/// use ftp_proto::reply::{quote_pathname, parse_quoted_pathname};
/// let quoted = quote_pathname(br#"/say "hi""#);
/// assert_eq!(quoted, br#""/say ""hi""""#);
/// assert_eq!(parse_quoted_pathname(&quoted).as_deref(), Some(&br#"/say "hi""#[..]));
/// ```
pub fn quote_pathname(path: &[u8]) -> Vec<u8> {
    let quotes = memchr::memchr_iter(b'"', path).count();
    let mut out = Vec::with_capacity(path.len() + quotes + 2);
    out.push(b'"');
    for part in path.split(|&b| b == b'"').enumerate() {
        if part.0 > 0 {
            out.extend_from_slice(b"\"\"");
        }
        out.extend_from_slice(part.1);
    }
    out.push(b'"');
    out
}

/// Takes the first quoted pathname from a `257` reply text (RFC 959 Appendix II), turning each `""` back
/// into `"`. Also undoes the encoder's line escapes (CR NUL becomes CR, any other NUL becomes LF), so a
/// pathname survives `quote_pathname`, [`Reply::encode`] and [`ReplyParser`] unchanged. `None` if there is
/// no opening or no closing quote.
pub fn parse_quoted_pathname(text: &[u8]) -> Option<Vec<u8>> {
    let open = memchr::memchr(b'"', text)?;
    let mut rest = text.get(open + 1..)?;
    let mut raw = Vec::new();
    loop {
        let close = memchr::memchr(b'"', rest)?;
        let (segment, tail) = rest.split_at_checked(close)?;
        raw.extend_from_slice(segment);
        // `tail` starts with the quote we found.
        match tail.get(1) {
            Some(b'"') => {
                raw.push(b'"');
                rest = tail.get(2..)?;
            }
            _ => return Some(unescape_line(&raw)),
        }
    }
}

/// Inverse of the encoder's escapes: CR NUL => CR, other NUL => LF.
fn unescape_line(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut prev_cr = false;
    for &b in bytes {
        match b {
            0 if prev_cr => {}
            0 => out.push(b'\n'),
            other => out.push(other),
        }
        prev_cr = b == b'\r';
    }
    out
}

/// Memory bounds for a [`ReplyParser`].
///
/// The parser holds at most `max(max_line_len, 4) + 1` bytes of an unfinished line and `max_reply_bytes`
/// of an unfinished reply's text (plus one `usize` per line for its offset), whatever the peer sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyParserLimits {
    /// The longest line accepted, in bytes, excluding the line terminator but including the `ddd-` prefix.
    /// Default 8192: reply lines are normally short, but a `257` line carries a whole pathname with its
    /// quotes doubled, and `PATH_MAX` is commonly 4096. Values below 4 act as 4 (the parser must see
    /// `ddd-` to classify a line).
    pub max_line_len: usize,
    /// The largest reply accepted, counted in wire bytes (all lines with their terminators).
    /// Default 1 MiB: `FEAT`, `HELP` and especially `STAT <path>` (a directory listing over the control
    /// connection) can be long, yet a server must not make the client hold an endless reply.
    pub max_reply_bytes: usize,
}

impl Default for ReplyParserLimits {
    fn default() -> Self {
        ReplyParserLimits {
            max_line_len: 8192,
            max_reply_bytes: 1024 * 1024,
        }
    }
}

/// Why bytes could not be parsed as a reply. After reporting one, [`ReplyParser`] resynchronises by itself.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line where a reply should start is not three digits followed by a space, a hyphen or the line end
    /// (this includes an empty line). The line is dropped.
    #[error(
        "malformed reply line: expected three digits then a space, a hyphen or the end of the line"
    )]
    Malformed,
    /// A reply line starts with three digits outside `100..=599`. The line is dropped.
    #[error("reply code {0} is outside 100..=599")]
    InvalidCode(u16),
    /// A line exceeded [`ReplyParserLimits::max_line_len`]. The line is dropped, and so is the rest of the
    /// multi-line reply it belonged to, up to and including its end line.
    #[error("reply line too long")]
    LineTooLong,
    /// A multi-line reply exceeded [`ReplyParserLimits::max_reply_bytes`]. The rest of it is dropped, up to
    /// and including its end line.
    #[error("reply too long")]
    ReplyTooLong,
}

/// Where the parser is between lines.
#[derive(Debug)]
enum State {
    /// At a reply boundary.
    Idle,
    /// Inside a multi-line reply.
    Collecting {
        code: ReplyCode,
        text: Vec<u8>,
        line_starts: Vec<usize>,
        /// Wire bytes of the reply so far, checked against `max_reply_bytes`.
        wire_bytes: usize,
    },
    /// Inside a multi-line reply that failed: drop lines until its end line.
    Discarding { code: ReplyCode },
}

/// A streaming parser for the replies a server sends (the client side), RFC 959 §4.2.
///
/// * A line ends at LF; one CR before it is stripped (a bare LF is accepted).
/// * `ddd SP text` or exactly `ddd` is a single-line reply.
/// * `ddd-text` starts a multi-line reply, which ends at the first line that is the same code followed by a
///   space or by the line end. Inner lines are kept **verbatim** (including a space the sender added before
///   a leading digit, and lines with other codes or `ddd-`), because clients want the raw text.
/// * Telnet commands (IAC) are not interpreted; servers do not send them in replies in practice.
///
/// The result depends only on the bytes, never on how they were split into chunks. No byte is scanned
/// twice: only new input is searched for LF. Memory is bounded by [`ReplyParserLimits`]. On error the
/// parser reports the error once, drops the offending line (and, inside a multi-line reply, the rest of that
/// reply) and carries on with the next reply. At end of stream, [`ReplyParser::is_mid_reply`] tells whether
/// the last reply was truncated.
///
/// ```
/// use ftp_proto::reply::{ReplyCode, ReplyError, ReplyParser, ReplyParserLimits};
///
/// let mut parser = ReplyParser::new(ReplyParserLimits::default());
/// let mut input: &[u8] = b"220 Ready\r\nnonsense\r\n331 Password?\r\n";
/// let mut results = Vec::new();
/// while !input.is_empty() {
///     let (consumed, outcome) = parser.parse(input);
///     input = &input[consumed..];
///     results.extend(outcome);
/// }
/// assert_eq!(results.len(), 3);
/// assert_eq!(results[0].as_ref().map(|r| r.code()), Ok(ReplyCode::SERVICE_READY));
/// assert_eq!(results[1], Err(ReplyError::Malformed));
/// assert_eq!(results[2].as_ref().map(|r| r.code()), Ok(ReplyCode::NEED_PASSWORD));
/// assert!(!parser.is_mid_reply());
/// ```
#[derive(Debug)]
pub struct ReplyParser {
    limits: ReplyParserLimits,
    /// The current line's bytes received so far without their LF.
    partial: Vec<u8>,
    /// After a line was found too long before its end: drop bytes through the next LF.
    skip_to_line_end: bool,
    state: State,
}

/// Outcome of [`ReplyParser::parse`]: a reply, an error, or nothing yet.
type Outcome = Option<Result<Reply, ReplyError>>;

/// The smallest effective `max_line_len`: enough to see `ddd-`.
const MIN_LINE_LEN: usize = 4;

impl ReplyParser {
    /// A parser with the given bounds.
    pub fn new(limits: ReplyParserLimits) -> Self {
        ReplyParser {
            limits,
            partial: Vec::new(),
            skip_to_line_end: false,
            state: State::Idle,
        }
    }

    /// The bounds this parser enforces.
    pub fn limits(&self) -> ReplyParserLimits {
        self.limits
    }

    /// Consumes bytes from `input` until at most one reply (or error) completes. Returns how many bytes were
    /// consumed and the outcome. If the outcome is `None`, all of `input` was consumed (and buffered within
    /// the limits); otherwise the caller feeds the rest again:
    ///
    /// ```
    /// # use ftp_proto::reply::{ReplyParser, ReplyParserLimits};
    /// # let mut parser = ReplyParser::new(ReplyParserLimits::default());
    /// let mut input: &[u8] = b"150 Opening\r\n226 Done\r\n";
    /// while !input.is_empty() {
    ///     let (consumed, outcome) = parser.parse(input);
    ///     input = &input[consumed..];
    ///     if let Some(result) = outcome {
    ///         println!("{:?}", result);
    ///     }
    /// }
    /// ```
    pub fn parse(&mut self, input: &[u8]) -> (usize, Outcome) {
        let mut consumed = 0;
        while let Some(rest) = input.get(consumed..).filter(|rest| !rest.is_empty()) {
            let Some(lf) = memchr::memchr(b'\n', rest) else {
                let outcome = self.absorb_partial(rest).map(Err);
                return (input.len(), outcome);
            };
            let head = rest.get(..lf).unwrap_or_default();
            consumed += lf + 1;
            if let Some(outcome) = self.finish_line(head) {
                return (consumed, Some(outcome));
            }
        }
        (consumed, None)
    }

    /// True while the parser is inside a reply: bytes of an unfinished line or multi-line reply have been
    /// consumed (buffered or being discarded). At end of stream this means the last reply was truncated.
    pub fn is_mid_reply(&self) -> bool {
        !self.partial.is_empty() || self.skip_to_line_end || !matches!(self.state, State::Idle)
    }

    /// Bytes currently held for unfinished lines and replies (always within the limits).
    pub fn buffered_len(&self) -> usize {
        let reply = match &self.state {
            State::Collecting { text, .. } => text.len(),
            State::Idle | State::Discarding { .. } => 0,
        };
        self.partial.len() + reply
    }

    /// Forgets everything buffered, as after a reconnect.
    pub fn reset(&mut self) {
        self.partial.clear();
        self.skip_to_line_end = false;
        self.state = State::Idle;
    }

    fn max_line_len(&self) -> usize {
        self.limits.max_line_len.max(MIN_LINE_LEN)
    }

    /// Takes bytes of a line whose LF has not arrived yet.
    fn absorb_partial(&mut self, bytes: &[u8]) -> Option<ReplyError> {
        if self.skip_to_line_end {
            return None;
        }
        // One more byte than the limit may be a CR that the LF will make a terminator.
        let held = self.partial.len().saturating_add(bytes.len());
        if held > self.max_line_len().saturating_add(1) {
            let prefix = LinePrefix::of(&self.partial, bytes);
            self.partial.clear();
            self.skip_to_line_end = true;
            return self.line_too_long(prefix.as_line());
        }
        self.partial.extend_from_slice(bytes);
        None
    }

    /// Handles the end of a line: `head` is its last bytes before the LF.
    fn finish_line(&mut self, head: &[u8]) -> Outcome {
        if self.skip_to_line_end {
            self.skip_to_line_end = false;
            return None;
        }
        let raw_len = self.partial.len().saturating_add(head.len());
        let last_byte = head.last().or(self.partial.last());
        let content_len = raw_len.saturating_sub(usize::from(last_byte == Some(&b'\r')));
        let wire_len = raw_len.saturating_add(1);
        if content_len > self.max_line_len() {
            let prefix = LinePrefix::of(&self.partial, head);
            self.partial.clear();
            return self.line_too_long(prefix.as_line()).map(Err);
        }
        if self.partial.is_empty() {
            return self.complete_line(strip_cr(head), wire_len);
        }
        let mut line = std::mem::take(&mut self.partial);
        line.extend_from_slice(head);
        let outcome = self.complete_line(strip_cr(&line), wire_len);
        line.clear();
        self.partial = line;
        outcome
    }

    /// Handles a complete line (terminator removed) that is within the line limit.
    fn complete_line(&mut self, line: &[u8], wire_len: usize) -> Outcome {
        match &mut self.state {
            State::Idle => self.start_reply(line, wire_len),
            State::Collecting { .. } => self.continue_reply(line, wire_len),
            State::Discarding { code } => {
                if is_end_line(line, *code) {
                    self.state = State::Idle;
                }
                None
            }
        }
    }

    fn start_reply(&mut self, line: &[u8], wire_len: usize) -> Outcome {
        let (code, continues, text) = match parse_first_line(line) {
            Ok(parts) => parts,
            Err(e) => return Some(Err(e)),
        };
        if wire_len > self.limits.max_reply_bytes {
            if continues {
                self.state = State::Discarding { code };
            }
            return Some(Err(ReplyError::ReplyTooLong));
        }
        if !continues {
            return Some(Ok(Reply::new(code, text)));
        }
        self.state = State::Collecting {
            code,
            text: text.to_vec(),
            line_starts: Vec::new(),
            wire_bytes: wire_len,
        };
        None
    }

    fn continue_reply(&mut self, line: &[u8], wire_len: usize) -> Outcome {
        let max_reply_bytes = self.limits.max_reply_bytes;
        let State::Collecting {
            code,
            text,
            line_starts,
            wire_bytes,
        } = &mut self.state
        else {
            return None;
        };
        let code = *code;
        let is_end = is_end_line(line, code);
        *wire_bytes = wire_bytes.saturating_add(wire_len);
        if *wire_bytes > max_reply_bytes {
            self.state = if is_end {
                State::Idle
            } else {
                State::Discarding { code }
            };
            return Some(Err(ReplyError::ReplyTooLong));
        }
        line_starts.push(text.len());
        if !is_end {
            text.extend_from_slice(line);
            return None;
        }
        text.extend_from_slice(line.get(4..).unwrap_or_default());
        let reply = Reply {
            code,
            text: std::mem::take(text),
            line_starts: std::mem::take(line_starts),
        };
        self.state = State::Idle;
        Some(Ok(reply))
    }

    /// A line exceeded the limit; `prefix` is its first bytes (the whole line if it was shorter than 4).
    /// Decides what comes next from the prefix alone, so the outcome does not depend on chunking.
    fn line_too_long(&mut self, prefix: &[u8]) -> Option<ReplyError> {
        match &self.state {
            State::Idle => {
                if let Ok((code, true, _)) = parse_first_line(prefix) {
                    self.state = State::Discarding { code };
                }
                Some(ReplyError::LineTooLong)
            }
            State::Collecting { code, .. } => {
                let code = *code;
                self.state = if is_end_line(prefix, code) {
                    State::Idle
                } else {
                    State::Discarding { code }
                };
                Some(ReplyError::LineTooLong)
            }
            // Already reported for this reply; only watch for its end.
            State::Discarding { code } => {
                if is_end_line(prefix, *code) {
                    self.state = State::Idle;
                }
                None
            }
        }
    }
}

/// The first (up to) 4 bytes of a line split between the buffer and new input.
struct LinePrefix {
    bytes: [u8; MIN_LINE_LEN],
    len: usize,
}

impl LinePrefix {
    fn of(buffered: &[u8], more: &[u8]) -> Self {
        let mut prefix = LinePrefix {
            bytes: [0; MIN_LINE_LEN],
            len: 0,
        };
        for (slot, &b) in prefix.bytes.iter_mut().zip(buffered.iter().chain(more)) {
            *slot = b;
            prefix.len += 1;
        }
        prefix
    }

    fn as_line(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits a reply's first line into code, whether it continues (`-`), and text.
fn parse_first_line(line: &[u8]) -> Result<(ReplyCode, bool, &[u8]), ReplyError> {
    let Some((&[a, b, c], rest)) = line.split_first_chunk::<3>() else {
        return Err(ReplyError::Malformed);
    };
    if !(a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit()) {
        return Err(ReplyError::Malformed);
    }
    let (continues, text) = match rest.split_first() {
        None => (false, rest),
        Some((b' ', text)) => (false, text),
        Some((b'-', text)) => (true, text),
        Some(_) => return Err(ReplyError::Malformed),
    };
    let code = ReplyCode::from_digits([a, b, c]).ok_or_else(|| {
        ReplyError::InvalidCode(
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
        )
    })?;
    Ok((code, continues, text))
}

/// The end line of a multi-line reply: the same code, then a space or the end of the line.
fn is_end_line(line: &[u8], code: ReplyCode) -> bool {
    match line.split_first_chunk::<3>() {
        Some((digits, rest)) => {
            *digits == code.digits() && matches!(rest.first(), None | Some(b' '))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(n: u16) -> ReplyCode {
        ReplyCode::new(n).unwrap()
    }

    /// Feeds `chunks` one after another and collects every outcome, checking the API contract on the way.
    fn parse_chunks<'a>(
        parser: &mut ReplyParser,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Vec<Result<Reply, ReplyError>> {
        let limit =
            parser.limits().max_line_len.max(MIN_LINE_LEN) + 1 + parser.limits().max_reply_bytes;
        let mut results = Vec::new();
        for chunk in chunks {
            let mut input = chunk;
            while !input.is_empty() {
                let (consumed, outcome) = parser.parse(input);
                assert!(consumed <= input.len());
                assert!(parser.buffered_len() <= limit, "buffer over its bound");
                match outcome {
                    Some(result) => results.push(result),
                    None => assert_eq!(consumed, input.len(), "no outcome but input left"),
                }
                input = &input[consumed..];
            }
        }
        results
    }

    fn parse_all(bytes: &[u8]) -> Vec<Result<Reply, ReplyError>> {
        let mut parser = ReplyParser::new(ReplyParserLimits::default());
        let results = parse_chunks(&mut parser, [bytes]);
        assert!(!parser.is_mid_reply());
        results
    }

    #[test]
    fn code_range() {
        assert_eq!(ReplyCode::new(99), None);
        assert_eq!(ReplyCode::new(0), None);
        assert_eq!(ReplyCode::new(600), None);
        assert_eq!(ReplyCode::new(100).map(ReplyCode::get), Some(100));
        assert_eq!(ReplyCode::new(599).map(ReplyCode::get), Some(599));
        assert_eq!(
            ReplyCode::from_digits(*b"226"),
            Some(ReplyCode::CLOSING_DATA)
        );
        assert_eq!(ReplyCode::from_digits(*b"099"), None);
        assert_eq!(ReplyCode::from_digits(*b"2a6"), None);
        assert_eq!(ReplyCode::CLOSING_DATA.digits(), *b"226");
        assert_eq!(code(100).digits(), *b"100");
        assert_eq!(code(599).to_string(), "599");
        assert_eq!(u16::from(code(421)), 421);
        assert!(ReplyCode::SYNTAX_ERROR > ReplyCode::COMMAND_OK);
    }

    #[test]
    fn code_classification() {
        use ReplyCategory::*;
        use ReplyKind::*;
        let table = [
            (110, PositivePreliminary, Information),
            (150, PositivePreliminary, FileSystem),
            (200, PositiveCompletion, Syntax),
            (226, PositiveCompletion, Connections),
            (230, PositiveCompletion, Authentication),
            (331, PositiveIntermediate, Authentication),
            (350, PositiveIntermediate, FileSystem),
            (421, TransientNegative, Connections),
            (451, TransientNegative, FileSystem),
            (500, PermanentNegative, Syntax),
            (540, PermanentNegative, Unspecified),
            (560, PermanentNegative, Unknown(6)),
            (599, PermanentNegative, Unknown(9)),
        ];
        for (n, kind, category) in table {
            let c = code(n);
            assert_eq!((c.kind(), c.category()), (kind, category), "{n}");
            assert_eq!(c.is_positive_preliminary(), kind == PositivePreliminary);
            assert_eq!(c.is_positive_completion(), kind == PositiveCompletion);
            assert_eq!(c.is_positive_intermediate(), kind == PositiveIntermediate);
            assert_eq!(c.is_transient_negative(), kind == TransientNegative);
            assert_eq!(c.is_permanent_negative(), kind == PermanentNegative);
            assert_eq!(
                c.is_negative(),
                kind == TransientNegative || kind == PermanentNegative
            );
        }
    }

    #[test]
    fn named_codes() {
        let table = [
            (ReplyCode::RESTART_MARKER, 110),
            (ReplyCode::SERVICE_READY_IN, 120),
            (ReplyCode::DATA_CONNECTION_ALREADY_OPEN, 125),
            (ReplyCode::FILE_STATUS_OK, 150),
            (ReplyCode::COMMAND_OK, 200),
            (ReplyCode::COMMAND_NOT_IMPLEMENTED_SUPERFLUOUS, 202),
            (ReplyCode::SYSTEM_STATUS, 211),
            (ReplyCode::DIRECTORY_STATUS, 212),
            (ReplyCode::FILE_STATUS, 213),
            (ReplyCode::HELP, 214),
            (ReplyCode::SYSTEM_TYPE, 215),
            (ReplyCode::SERVICE_READY, 220),
            (ReplyCode::CLOSING_CONTROL, 221),
            (ReplyCode::DATA_CONNECTION_OPEN, 225),
            (ReplyCode::CLOSING_DATA, 226),
            (ReplyCode::ENTERING_PASSIVE, 227),
            (ReplyCode::ENTERING_LONG_PASSIVE, 228),
            (ReplyCode::ENTERING_EXTENDED_PASSIVE, 229),
            (ReplyCode::LOGGED_IN, 230),
            (ReplyCode::LOGGED_IN_SECURITY, 232),
            (ReplyCode::SECURITY_EXCHANGE_OK, 234),
            (ReplyCode::SECURITY_EXCHANGE_DONE, 235),
            (ReplyCode::FILE_ACTION_OK, 250),
            (ReplyCode::PATHNAME_CREATED, 257),
            (ReplyCode::NEED_PASSWORD, 331),
            (ReplyCode::NEED_ACCOUNT, 332),
            (ReplyCode::SECURITY_MECHANISM_ACCEPTED, 334),
            (ReplyCode::SECURITY_DATA_MORE, 335),
            (ReplyCode::NEED_PASSWORD_CHALLENGE, 336),
            (ReplyCode::FILE_ACTION_PENDING, 350),
            (ReplyCode::SERVICE_NOT_AVAILABLE, 421),
            (ReplyCode::CANT_OPEN_DATA, 425),
            (ReplyCode::TRANSFER_ABORTED, 426),
            (ReplyCode::SECURITY_RESOURCE_UNAVAILABLE, 431),
            (ReplyCode::FILE_UNAVAILABLE, 450),
            (ReplyCode::LOCAL_ERROR, 451),
            (ReplyCode::INSUFFICIENT_STORAGE, 452),
            (ReplyCode::SYNTAX_ERROR, 500),
            (ReplyCode::SYNTAX_ERROR_ARGUMENTS, 501),
            (ReplyCode::NOT_IMPLEMENTED, 502),
            (ReplyCode::BAD_SEQUENCE, 503),
            (ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER, 504),
            (ReplyCode::EXTENDED_PORT_FAILURE, 522),
            (ReplyCode::NOT_LOGGED_IN, 530),
            (ReplyCode::NEED_ACCOUNT_FOR_STORING, 532),
            (ReplyCode::PROTECTION_LEVEL_DENIED, 533),
            (ReplyCode::REQUEST_DENIED_POLICY, 534),
            (ReplyCode::SECURITY_CHECK_FAILED, 535),
            (ReplyCode::PROT_LEVEL_NOT_SUPPORTED, 536),
            (ReplyCode::COMMAND_PROTECTION_NOT_SUPPORTED, 537),
            (ReplyCode::FILE_UNAVAILABLE_PERMANENT, 550),
            (ReplyCode::PAGE_TYPE_UNKNOWN, 551),
            (ReplyCode::EXCEEDED_STORAGE, 552),
            (ReplyCode::FILE_NAME_NOT_ALLOWED, 553),
        ];
        for (c, n) in table {
            assert_eq!(c.get(), n);
            assert_eq!(ReplyCode::new(n), Some(c));
        }
    }

    #[test]
    fn reply_accessors() {
        let single = Reply::new(ReplyCode::COMMAND_OK, "Command okay.");
        assert!(!single.is_multiline());
        assert_eq!(single.line_count(), 1);
        assert_eq!(single.first_line(), b"Command okay.");
        assert_eq!(single.last_line(), b"Command okay.");
        assert_eq!(single.line(1), None);

        let multi = Reply::multiline(ReplyCode::HELP, ["a", "", "c"]);
        assert!(multi.is_multiline());
        assert_eq!(
            multi.lines().collect::<Vec<_>>(),
            [&b"a"[..], &b""[..], &b"c"[..]]
        );
        assert_eq!(multi.lines().next_back(), Some(&b"c"[..]));
        assert_eq!(multi.first_line(), b"a");
        assert_eq!(multi.last_line(), b"c");
        assert_eq!(multi.text_lossy(), "a\n\nc");

        let empty = Reply::multiline(ReplyCode::COMMAND_OK, Vec::<Vec<u8>>::new());
        assert_eq!(empty, Reply::new(ReplyCode::COMMAND_OK, ""));
        assert_eq!(empty.to_bytes(), b"200 \r\n");
        assert_eq!(
            Reply::multiline(ReplyCode::COMMAND_OK, ["only"]),
            Reply::new(ReplyCode::COMMAND_OK, "only")
        );
        assert_eq!(
            Reply::new(ReplyCode::COMMAND_OK, b"bad \xff".to_vec()).text_lossy(),
            "bad \u{fffd}"
        );
    }

    #[test]
    fn encode_exact() {
        let cases: &[(Reply, &[u8])] = &[
            (
                Reply::new(ReplyCode::CLOSING_DATA, "Transfer complete."),
                b"226 Transfer complete.\r\n",
            ),
            (
                Reply::multiline(ReplyCode::SYSTEM_STATUS, ["Features:", " MDTM", " SIZE", "End"]),
                b"211-Features:\r\n MDTM\r\n SIZE\r\n211 End\r\n",
            ),
            (
                Reply::multiline(ReplyCode::HELP, ["first", "last"]),
                b"214-first\r\n214 last\r\n",
            ),
            // The padding rule: inner lines beginning with a digit get one leading space; first and last
            // lines never need it.
            (
                Reply::multiline(
                    code(123),
                    ["First line", "Second line", "234 A line beginning with numbers", "123 x", "The last line"],
                ),
                b"123-First line\r\nSecond line\r\n 234 A line beginning with numbers\r\n 123 x\r\n123 The last line\r\n",
            ),
            (
                Reply::multiline(code(211), ["1 first", "9", "2 last"]),
                b"211-1 first\r\n 9\r\n211 2 last\r\n",
            ),
            // CR and LF never reach the wire raw.
            (
                Reply::new(ReplyCode::PATHNAME_CREATED, "\"/a\nb\rc\r\n\" created"),
                b"257 \"/a\0b\r\0c\r\0\0\" created\r\n",
            ),
            (
                Reply::multiline(code(211), ["x\r\n211 forged", "\n", "y"]),
                b"211-x\r\x00\x00211 forged\r\n\0\r\n211 y\r\n",
            ),
        ];
        for (reply, wire) in cases {
            assert_eq!(
                reply.to_bytes(),
                *wire,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
            assert_eq!(reply.encoded_len(), wire.len());
            let mut out = b"prefix".to_vec();
            reply.encode(&mut out);
            assert_eq!(out.get(6..), Some(*wire));
        }
    }

    #[test]
    fn display_and_debug() {
        let reply = Reply::multiline(code(211), ["first", "2nd", "end\r\nforged"]);
        assert_eq!(reply.to_string(), "211-first\n 2nd\n211 end\\r\\nforged");
        assert_eq!(
            Reply::new(code(200), b"\xffok".to_vec()).to_string(),
            "200 \\xffok"
        );
        assert_eq!(
            format!("{:?}", Reply::new(code(200), "ok")),
            r#"Reply { code: 200, lines: ["ok"] }"#
        );
    }

    #[test]
    fn quoting() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/", b"\"/\""),
            (b"", b"\"\""),
            (b"/a\"b", b"\"/a\"\"b\""),
            (b"\"", b"\"\"\"\""),
            (b"/x\"\"y\"", b"\"/x\"\"\"\"y\"\"\""),
        ];
        for (path, quoted) in cases {
            assert_eq!(quote_pathname(path), *quoted);
            assert_eq!(parse_quoted_pathname(quoted).as_deref(), Some(*path));
        }
        assert_eq!(
            parse_quoted_pathname(b"\"/usr/dm\" created.").as_deref(),
            Some(&b"/usr/dm"[..])
        );
        assert_eq!(
            parse_quoted_pathname(b"MKD ok: \"/a \"\"q\"\"\" is new; \"other\"").as_deref(),
            Some(&b"/a \"q\""[..])
        );
        assert_eq!(parse_quoted_pathname(b"no quotes"), None);
        assert_eq!(parse_quoted_pathname(b"\"unterminated"), None);
        assert_eq!(parse_quoted_pathname(b"\"ends with doubled\"\""), None);
        // The encoder's escapes are undone.
        assert_eq!(
            parse_quoted_pathname(b"\"/a\0b\r\0c\"").as_deref(),
            Some(&b"/a\nb\rc"[..])
        );
    }

    #[test]
    fn parse_single_line_replies() {
        let table: &[(&[u8], u16, &[u8])] = &[
            (b"220 Service ready\r\n", 220, b"Service ready"),
            (b"220 Service ready\n", 220, b"Service ready"),
            (b"200\r\n", 200, b""),
            (b"200 \r\n", 200, b""),
            (b"200  two spaces \r\n", 200, b" two spaces "),
            (b"200 cr\rinside\r\r\n", 200, b"cr\rinside\r"),
            (b"257 \"/a\0b\" ok\r\n", 257, b"\"/a\0b\" ok"),
            (b"599 x\r\n", 599, b"x"),
            (b"100 x\r\n", 100, b"x"),
        ];
        for (wire, n, text) in table {
            assert_eq!(
                parse_all(wire),
                [Ok(Reply::new(code(*n), *text))],
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn parse_multi_line_replies() {
        // RFC 959 §4.2 example.
        let wire = b"123-First line\r\nSecond line\r\n  234 A line beginning with numbers\r\n123 The last line\r\n";
        assert_eq!(
            parse_all(wire),
            [Ok(Reply::multiline(
                code(123),
                [
                    &b"First line"[..],
                    b"Second line",
                    b"  234 A line beginning with numbers",
                    b"The last line"
                ]
            ))]
        );
        // Inner lines are verbatim, including other codes and `ddd-` with the same code.
        let wire =
            b"211-Features:\r\n MDTM\r\n211-not the end\r\n212 other code\r\n211x\r\n\r\n211 End\r\n";
        assert_eq!(
            parse_all(wire),
            [Ok(Reply::multiline(
                code(211),
                [
                    &b"Features:"[..],
                    b" MDTM",
                    b"211-not the end",
                    b"212 other code",
                    b"211x",
                    b"",
                    b"End"
                ]
            ))]
        );
        // An end line that is just the code; bare LFs.
        assert_eq!(
            parse_all(b"211-a\nb\n211\n"),
            [Ok(Reply::multiline(code(211), ["a", "b", ""]))]
        );
        // Two-line reply, then a single-line one.
        assert_eq!(
            parse_all(b"230-Welcome\r\n230 Logged in\r\n200 ok\r\n"),
            [
                Ok(Reply::multiline(code(230), ["Welcome", "Logged in"])),
                Ok(Reply::new(code(200), "ok")),
            ]
        );
    }

    #[test]
    fn parse_one_reply_per_call() {
        let mut parser = ReplyParser::new(ReplyParserLimits::default());
        let input = b"150 Opening\r\n226 Done\r\n22";
        let (n, outcome) = parser.parse(input);
        assert_eq!(n, 13);
        assert_eq!(outcome, Some(Ok(Reply::new(code(150), "Opening"))));
        assert!(!parser.is_mid_reply());
        let (m, outcome) = parser.parse(&input[n..]);
        assert_eq!(m, 10);
        assert_eq!(outcome, Some(Ok(Reply::new(code(226), "Done"))));
        let (k, outcome) = parser.parse(&input[n + m..]);
        assert_eq!((k, outcome), (2, None));
        assert!(parser.is_mid_reply());
        assert_eq!(parser.buffered_len(), 2);
        parser.reset();
        assert!(!parser.is_mid_reply());
        assert_eq!(parser.parse(b""), (0, None));
    }

    #[test]
    fn malformed_first_lines() {
        let table: &[(&[u8], ReplyError)] = &[
            (b"\r\n", ReplyError::Malformed),
            (b"\n", ReplyError::Malformed),
            (b"hello\r\n", ReplyError::Malformed),
            (b"20\r\n", ReplyError::Malformed),
            (b"20 x\r\n", ReplyError::Malformed),
            (b"2000 x\r\n", ReplyError::Malformed),
            (b"200x\r\n", ReplyError::Malformed),
            (b"200\tx\r\n", ReplyError::Malformed),
            (b" 200 x\r\n", ReplyError::Malformed),
            (b"-200 x\r\n", ReplyError::Malformed),
            (b"\xff\xfe\xfd x\r\n", ReplyError::Malformed),
            (b"600 x\r\n", ReplyError::InvalidCode(600)),
            (b"631 protected\r\n", ReplyError::InvalidCode(631)),
            (b"099 x\r\n", ReplyError::InvalidCode(99)),
            (b"000-x\r\n", ReplyError::InvalidCode(0)),
        ];
        for (wire, error) in table {
            let mut stream = wire.to_vec();
            stream.extend_from_slice(b"200 next\r\n");
            assert_eq!(
                parse_all(&stream),
                [Err(error.clone()), Ok(Reply::new(code(200), "next"))],
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn long_line_without_newline_is_bounded_and_resyncs() {
        let limits = ReplyParserLimits::default();
        let mut parser = ReplyParser::new(limits);
        let chunk = [b'x'; 4096];
        let mut errors = Vec::new();
        for _ in 0..(10 * 1024 * 1024 / chunk.len()) {
            let (n, outcome) = parser.parse(&chunk);
            assert_eq!(n, chunk.len());
            errors.extend(outcome);
            assert!(parser.buffered_len() <= limits.max_line_len + 1);
        }
        assert_eq!(errors, [Err(ReplyError::LineTooLong)]);
        assert!(parser.is_mid_reply());
        let results = parse_chunks(&mut parser, [&b"xx\r\n220 Ready\r\n"[..]]);
        assert_eq!(results, [Ok(Reply::new(code(220), "Ready"))]);
        assert!(!parser.is_mid_reply());
    }

    #[test]
    fn line_limit_is_exact() {
        let limits = ReplyParserLimits {
            max_line_len: 10,
            max_reply_bytes: 1000,
        };
        // Exactly 10 content bytes pass, with CRLF, bare LF, or split before the CR.
        for chunks in [
            vec![&b"200 abcdef\r\n"[..]],
            vec![b"200 abcdef\n"],
            vec![b"200 abcdef\r", b"\n"],
            vec![b"200 abc", b"def\r", b"\n"],
        ] {
            let mut parser = ReplyParser::new(limits);
            assert_eq!(
                parse_chunks(&mut parser, chunks),
                [Ok(Reply::new(code(200), "abcdef"))]
            );
        }
        // 11 bytes fail, however split.
        for chunks in [
            vec![&b"200 abcdefg\r\n200 ok\r\n"[..]],
            vec![b"200 abcdefg", b"\r\n200 ok\r\n"],
            vec![b"200 abcdefg\r", b"\n200 ok\r\n"],
            vec![b"200 abcdefg!", b"\r\n200 ok\r\n"],
        ] {
            let mut parser = ReplyParser::new(limits);
            assert_eq!(
                parse_chunks(&mut parser, chunks),
                [
                    Err(ReplyError::LineTooLong),
                    Ok(Reply::new(code(200), "ok"))
                ]
            );
        }
    }

    #[test]
    fn long_line_inside_multiline_drops_the_reply() {
        let limits = ReplyParserLimits {
            max_line_len: 16,
            max_reply_bytes: 1000,
        };
        let long = "y".repeat(100);
        // A long inner line: the rest of the reply is dropped through its end line.
        let stream = format!("211-a\r\n{long}\r\nb\r\n211 end\r\n200 ok\r\n");
        let mut parser = ReplyParser::new(limits);
        assert_eq!(
            parse_chunks(&mut parser, [stream.as_bytes()]),
            [
                Err(ReplyError::LineTooLong),
                Ok(Reply::new(code(200), "ok"))
            ]
        );
        // A long end line ends the reply; a long first line of a multi-line reply drops it all.
        let stream =
            format!("211-a\r\n211 {long}\r\n212-{long}\r\n212 x\r\n213 {long}\r\n212 ok\r\n");
        let mut parser = ReplyParser::new(limits);
        assert_eq!(
            parse_chunks(&mut parser, [stream.as_bytes()]),
            [
                Err(ReplyError::LineTooLong),
                Err(ReplyError::LineTooLong),
                Err(ReplyError::LineTooLong),
                Ok(Reply::new(code(212), "ok"))
            ]
        );
        // While discarding, further long lines are not reported again.
        let stream = format!("211-{long}\r\n{long}\r\n211 {long}\r\n200 ok\r\n");
        let mut parser = ReplyParser::new(limits);
        assert_eq!(
            parse_chunks(&mut parser, [stream.as_bytes()]),
            [
                Err(ReplyError::LineTooLong),
                Ok(Reply::new(code(200), "ok"))
            ]
        );
    }

    #[test]
    fn endless_multiline_reply_is_bounded_and_resyncs() {
        let limits = ReplyParserLimits {
            max_line_len: 100,
            max_reply_bytes: 64 * 1024,
        };
        let mut parser = ReplyParser::new(limits);
        let mut results = parse_chunks(&mut parser, [&b"211-start\r\n"[..]]);
        let inner = b"211-still going, not the end\r\n".repeat(100);
        for _ in 0..1000 {
            results.extend(parse_chunks(&mut parser, [&inner[..]]));
            assert!(parser.buffered_len() <= limits.max_reply_bytes);
            assert!(parser.is_mid_reply());
        }
        assert_eq!(results, [Err(ReplyError::ReplyTooLong)]);
        let results = parse_chunks(&mut parser, [&b"211 end\r\n221 Bye\r\n"[..]]);
        assert_eq!(results, [Ok(Reply::new(code(221), "Bye"))]);
    }

    #[test]
    fn reply_limit_counts_wire_bytes() {
        let limits = ReplyParserLimits {
            max_line_len: 100,
            max_reply_bytes: 20,
        };
        // 9 + 11 = 20 wire bytes: accepted.
        let mut parser = ReplyParser::new(limits);
        assert_eq!(
            parse_chunks(&mut parser, [&b"211-abc\r\n211 defgh\r\n"[..]]),
            [Ok(Reply::multiline(code(211), ["abc", "defgh"]))]
        );
        // 21 bytes: the end line pushes it over; the reply is over, so the next one parses.
        let mut parser = ReplyParser::new(limits);
        assert_eq!(
            parse_chunks(&mut parser, [&b"211-abc\r\n211 defghi\r\n200 ok\r\n"[..]]),
            [
                Err(ReplyError::ReplyTooLong),
                Ok(Reply::new(code(200), "ok"))
            ]
        );
        // A first line alone over the budget.
        let mut parser = ReplyParser::new(limits);
        assert_eq!(
            parse_chunks(
                &mut parser,
                [&b"200 aaaaaaaaaaaaaaaaaaaaaaa\r\n211-bbbbbbbbbbbbbbbbbbbbbbbbb\r\nx\r\n211 y\r\n200 ok\r\n"[..]]
            ),
            [
                Err(ReplyError::ReplyTooLong),
                Err(ReplyError::ReplyTooLong),
                Ok(Reply::new(code(200), "ok"))
            ]
        );
    }

    #[test]
    fn tiny_limits_do_not_panic() {
        for (max_line_len, max_reply_bytes) in [(0, 0), (1, 1), (3, 5), (4, 0)] {
            let limits = ReplyParserLimits {
                max_line_len,
                max_reply_bytes,
            };
            let stream = b"200 ok\r\n211-a\r\nb\r\n211\r\n211-\r\n211\r\n\r\n";
            let whole = parse_chunks(&mut ReplyParser::new(limits), [&stream[..]]);
            let bytewise = parse_chunks(&mut ReplyParser::new(limits), stream.chunks(1));
            assert_eq!(whole, bytewise);
            assert!(whole.iter().any(Result::is_err));
        }
    }

    /// The reply a peer reads back after `encode`: escapes applied to every line, padding to inner lines.
    fn as_received(reply: &Reply) -> Reply {
        let n = reply.line_count();
        let lines = reply.lines().enumerate().map(|(i, line)| {
            let mut out = Vec::new();
            if i != 0 && i + 1 != n && starts_with_digit(line) {
                out.push(b' ');
            }
            push_escaped(&mut out, line);
            out
        });
        Reply::multiline(reply.code(), lines)
    }

    fn any_code() -> impl Strategy<Value = ReplyCode> {
        (100u16..=599).prop_map(code)
    }

    fn any_line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "[ -~]{0,20}".prop_map(String::into_bytes),
            "[0-9]{3}[ -]?[ -~]{0,5}".prop_map(String::into_bytes),
            proptest::collection::vec(
                prop_oneof![
                    Just(b'\r'),
                    Just(b'\n'),
                    Just(b'2'),
                    Just(b' '),
                    any::<u8>()
                ],
                0..12
            ),
        ]
    }

    fn any_reply() -> impl Strategy<Value = Reply> {
        (any_code(), proptest::collection::vec(any_line(), 1..6))
            .prop_map(|(code, lines)| Reply::multiline(code, lines))
    }

    /// Pieces of a control-connection stream: encoded replies, plus the kinds of garbage a hostile or
    /// broken server sends.
    fn any_stream_piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => any_reply().prop_map(|r| r.to_bytes()),
            1 => "[ -~]{0,10}\r?\n".prop_map(String::into_bytes),
            1 => "[0-9]{3}[ -][a-z]{0,40}\r?\n".prop_map(String::into_bytes),
            1 => "211-[a-z]{0,30}\n(211-[a-z]{0,30}\n){0,5}".prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..30),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_parse(reply in any_reply()) {
            let wire = reply.to_bytes();
            prop_assert_eq!(wire.len(), reply.encoded_len());
            let mut parser = ReplyParser::new(ReplyParserLimits::default());
            let (consumed, outcome) = parser.parse(&wire);
            prop_assert_eq!(consumed, wire.len());
            prop_assert_eq!(outcome, Some(Ok(as_received(&reply))));
            prop_assert!(!parser.is_mid_reply());
        }

        #[test]
        fn encode_then_parse_is_identity_for_plain_lines(
            code in any_code(),
            lines in proptest::collection::vec("[a-zA-Z ][ -~]{0,20}", 1..6),
        ) {
            let reply = Reply::multiline(code, lines);
            let wire = reply.to_bytes();
            let mut parser = ReplyParser::new(ReplyParserLimits::default());
            prop_assert_eq!(parser.parse(&wire), (wire.len(), Some(Ok(reply))));
        }

        #[test]
        fn pathname_survives_the_wire(path in proptest::collection::vec(
            prop_oneof![Just(b'"'), Just(b'\r'), Just(b'\n'), Just(b'/'), 1u8..=255], 0..30)
        ) {
            let mut text = quote_pathname(&path);
            text.extend_from_slice(b" created");
            let wire = Reply::new(ReplyCode::PATHNAME_CREATED, text).to_bytes();
            let mut parser = ReplyParser::new(ReplyParserLimits::default());
            let (_, outcome) = parser.parse(&wire);
            let reply = outcome.unwrap().unwrap();
            prop_assert_eq!(parse_quoted_pathname(reply.first_line()), Some(path));
        }

        #[test]
        fn chunking_never_matters(
            pieces in proptest::collection::vec(any_stream_piece(), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
            max_line_len in 0usize..48,
            max_reply_bytes in 0usize..160,
        ) {
            let stream = pieces.concat();
            let limits = ReplyParserLimits { max_line_len, max_reply_bytes };
            let whole = parse_chunks(&mut ReplyParser::new(limits), [&stream[..]]);

            let bytewise = parse_chunks(&mut ReplyParser::new(limits), stream.chunks(1));
            prop_assert_eq!(&whole, &bytewise);

            let mut offsets: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            offsets.push(0);
            offsets.push(stream.len());
            offsets.sort_unstable();
            let chunks = offsets.windows(2).map(|w| &stream[w[0]..w[1]]);
            let split = parse_chunks(&mut ReplyParser::new(limits), chunks);
            prop_assert_eq!(&whole, &split);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let limits = ReplyParserLimits { max_line_len: 16, max_reply_bytes: 64 };
            let _ = parse_chunks(&mut ReplyParser::new(limits), [&bytes[..]]);
            let _ = parse_chunks(&mut ReplyParser::new(ReplyParserLimits::default()), [&bytes[..]]);
            let _ = parse_quoted_pathname(&bytes);
        }
    }
}
