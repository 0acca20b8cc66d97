//! FTP commands: a typed [`Command`], its nom parser and its wire encoder.
//!
//! Covers every verb of RFC 959 §4.1, the RFC 1123 §4.1.3.1 `X` aliases (`XPWD`, `XCWD`, `XCUP`, `XMKD`,
//! `XRMD`), RFC 2228 security (`AUTH`, `ADAT`, `PBSZ`, `PROT`, `CCC`, `MIC`, `CONF`, `ENC`), RFC 2389 (`FEAT`,
//! `OPTS`), RFC 2428 (`EPRT`, `EPSV`), RFC 2640 (`LANG`), RFC 3659 (`SIZE`, `MDTM`, `MLST`, `MLSD`, `REST`),
//! RFC 7151 (`HOST`) and the de-facto `MFMT`. A verb nobody defined is kept as [`Command::Unknown`] so a
//! server can answer 500 or 502 as it sees fit.
//!
//! Parsing follows the RFC 959 §5.3 syntax: the verb is case-insensitive, **exactly one** space separates it
//! from the argument (so `RETR  a` names the file `" a"`), and an empty argument is no argument (`PASS ` with
//! nothing after is a valid empty password). The parser sees one line at a time, already framed by
//! [`crate::framing`], so it never has to wait for more input: a line is either a command or a
//! [`ParseError`], and each error maps to the reply code a server should send
//! ([`ParseError::reply_code`]).
//!
//! Arguments are validated into types that cannot hold a bad value: a [`Pathname`] or [`Text`] never
//! contains CR, LF or NUL (so encoding can never inject a second command), a [`Password`] hides itself from
//! `Debug`, and numbers are range-checked. [`Command::encode`] writes the wire form and, for every command
//! the parser produces, `parse(encode(c)) == c`.
//!
//! ```
//! use ftp_proto::command::{Command, TransferType};
//!
//! let cmd = Command::parse(b"type i").unwrap();
//! assert_eq!(cmd, Command::Type(TransferType::Image));
//!
//! let retr = Command::parse(b"RETR notes/read me.txt").unwrap();
//! assert_eq!(retr.to_bytes(), b"RETR notes/read me.txt\r\n");
//!
//! // A bad argument is a typed error carrying the reply code to send.
//! let err = Command::parse(b"REST lots").unwrap_err();
//! assert_eq!(err.reply_code().get(), 501);
//! ```

use std::fmt;
use std::net::SocketAddr;

use nom::branch::alt;
use nom::bytes::complete::{tag_no_case, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{all_consuming, eof, map_opt, opt, value};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::hostport::{self, HostPort, HostPortError, NetworkProtocol};
use crate::reply::ReplyCode;
use crate::time::Timestamp;

/// Bytes an argument may never contain: they would end the line or truncate C strings downstream.
fn is_forbidden(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | 0)
}

/// The error for a byte string that cannot be a command argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgumentError {
    /// The argument was empty; use `None` for "no argument".
    #[error("argument is empty")]
    Empty,
    /// The argument contained CR, LF or NUL.
    #[error("argument contains a CR, LF or NUL byte")]
    ForbiddenByte,
}

fn check_argument(bytes: &[u8]) -> Result<(), ArgumentError> {
    if bytes.is_empty() {
        Err(ArgumentError::Empty)
    } else if bytes.iter().copied().any(is_forbidden) {
        Err(ArgumentError::ForbiddenByte)
    } else {
        Ok(())
    }
}

/// Defines a byte-string newtype whose constructor enforces [`check_argument`].
macro_rules! argument_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Vec<u8>);

        impl $name {
            /// Wraps `bytes`; fails if they are empty or contain CR, LF or NUL.
            pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ArgumentError> {
                let bytes = bytes.into();
                check_argument(&bytes)?;
                Ok(Self(bytes))
            }

            /// A constant the crate knows to be valid (no CR, LF or NUL; not empty).
            #[allow(dead_code)]
            pub(crate) fn constant(text: &'static str) -> Self {
                debug_assert!(check_argument(text.as_bytes()).is_ok());
                Self(text.as_bytes().to_vec())
            }

            /// The raw bytes, exactly as on the wire.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The bytes as text, with invalid UTF-8 replaced (for display only).
            pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
                String::from_utf8_lossy(&self.0)
            }

            /// Takes the raw bytes.
            pub fn into_bytes(self) -> Vec<u8> {
                self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ArgumentError;
            fn try_from(s: &str) -> Result<Self, ArgumentError> {
                Self::new(s.as_bytes())
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = ArgumentError;
            fn try_from(s: &[u8]) -> Result<Self, ArgumentError> {
                Self::new(s)
            }
        }
    };
}

argument_type! {
    /// A pathname argument as the client sent it: raw bytes (RFC 959 does not require UTF-8), lossless,
    /// never empty, never containing CR, LF or NUL. It is not resolved: see [`crate::path`].
    Pathname
}

argument_type! {
    /// A free-text argument (user name, SITE command, HELP topic, ...): the same invariant as [`Pathname`].
    Text
}

argument_type! {
    /// A password. Its `Debug` form never shows the secret, so it cannot leak into logs.
    Password
}

impl fmt::Debug for Pathname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pathname({:?})", self.to_string_lossy())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Text({:?})", self.to_string_lossy())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

/// The data representation set by `TYPE` (RFC 959 §3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransferType {
    /// `TYPE A [N|T|C]`: text, CRLF line ends on the wire.
    Ascii(FormatControl),
    /// `TYPE E [N|T|C]`: EBCDIC text (parsed; servers normally answer 504).
    Ebcdic(FormatControl),
    /// `TYPE I`: binary, bytes pass unchanged.
    Image,
    /// `TYPE L n`: local byte size `n` (only `L 8` is the same as `I`).
    Local(u8),
}

impl TransferType {
    /// `TYPE A N`, what a connection starts with and returns to after `REIN` (RFC 959 §3.1.1.1: "The
    /// default representation type is ASCII Non-print").
    pub const DEFAULT: TransferType = TransferType::Ascii(FormatControl::NonPrint);
}

impl Default for TransferType {
    /// [`TransferType::DEFAULT`].
    fn default() -> Self {
        TransferType::DEFAULT
    }
}

/// The format-control parameter of `TYPE A` and `TYPE E`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FormatControl {
    /// `N`: non-print, the default.
    #[default]
    NonPrint,
    /// `T`: Telnet format effectors.
    Telnet,
    /// `C`: ASA carriage control.
    Asa,
}

/// The file structure set by `STRU` (RFC 959 §3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Structure {
    /// `F`: no record structure, the default and the only one most servers support.
    File,
    /// `R`: record structure.
    Record,
    /// `P`: page structure.
    Page,
}

/// The transmission mode set by `MODE` (RFC 959 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferMode {
    /// `S`: stream, the default.
    Stream,
    /// `B`: block.
    Block,
    /// `C`: compressed.
    Compressed,
}

/// The data-channel protection level set by `PROT` (RFC 2228 §3, RFC 4217 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtectionLevel {
    /// `C`: clear.
    Clear,
    /// `S`: safe (integrity).
    Safe,
    /// `E`: confidential.
    Confidential,
    /// `P`: private (integrity and confidentiality; what FTPS uses).
    Private,
}

/// The argument of `EPSV` (RFC 2428 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EpsvArg {
    /// No argument: any protocol, the one of the control connection.
    Any,
    /// `EPSV ALL`: from now on only EPSV; PORT, PASV and EPRT are refused.
    All,
    /// `EPSV 1` or `EPSV 2`: a passive address of that protocol.
    Protocol(NetworkProtocol),
}

/// The argument of `OPTS` (RFC 2389 §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OptsArg {
    /// `OPTS UTF8 ON` / `OPTS UTF8 OFF` (draft-ietf-ftpext-utf-8-option; Windows clients send it).
    Utf8(bool),
    /// `OPTS MLST fact;fact;` (RFC 3659 §7.9): the facts, possibly empty (CR, LF and NUL are left out when
    /// encoding).
    Mlst(Vec<u8>),
    /// Any other command's options, kept for the server to answer 501.
    Other {
        /// The command name as sent.
        command: Text,
        /// Its options, if any.
        options: Option<Text>,
    },
}

/// The arguments of `LIST`, `NLST` and `STAT`: `ls`-style options kept apart from the path.
///
/// Clients such as lftp and many GUI clients send `LIST -la` or `LIST -a /dir`; like vsftpd, ProFTPD and
/// pyftpdlib we read leading words of the form `-[A-Za-z0-9]+` as options. A relative path that itself begins
/// with `-` is therefore written with a `./` prefix ([`ListArgs::new`] does that for you), which names the
/// same file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ListArgs {
    options: Vec<u8>,
    path: Option<Pathname>,
}

impl ListArgs {
    /// Arguments with no options and the given path (`None`: the working directory).
    pub fn new(path: Option<Pathname>) -> ListArgs {
        let path = path.map(|p| {
            if p.as_bytes().first() == Some(&b'-') {
                let mut bytes = b"./".to_vec();
                bytes.extend_from_slice(p.as_bytes());
                Pathname(bytes)
            } else {
                p
            }
        });
        ListArgs {
            options: Vec::new(),
            path,
        }
    }

    /// Adds option letters (e.g. `b"la"`); bytes that are not ASCII letters or digits are dropped.
    pub fn with_options(mut self, letters: &[u8]) -> ListArgs {
        self.options
            .extend(letters.iter().copied().filter(u8::is_ascii_alphanumeric));
        self
    }

    /// The option letters in the order given, e.g. `b"la"` for `-la` or `-l -a`.
    pub fn options(&self) -> &[u8] {
        &self.options
    }

    /// Whether option `letter` was given (`-a` shows dot files).
    pub fn has_option(&self, letter: u8) -> bool {
        self.options.contains(&letter)
    }

    /// The path, if one was given.
    pub fn path(&self) -> Option<&Pathname> {
        self.path.as_ref()
    }
}

/// One FTP command, as a client sends it and a server receives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    // ---- RFC 959 access control (§4.1.1) ----
    /// `USER name`.
    User(Text),
    /// `PASS [password]`; `None` for an empty password.
    Pass(Option<Password>),
    /// `ACCT account`.
    Acct(Text),
    /// `CWD path` (also `XCWD`).
    Cwd(Pathname),
    /// `CDUP` (also `XCUP`).
    Cdup,
    /// `SMNT path`.
    Smnt(Pathname),
    /// `REIN`: reset the session to just after the greeting.
    Rein,
    /// `QUIT`.
    Quit,
    // ---- RFC 959 transfer parameters (§4.1.2) ----
    /// `PORT h1,h2,h3,h4,p1,p2`.
    Port(HostPort),
    /// `PASV`.
    Pasv,
    /// `TYPE`.
    Type(TransferType),
    /// `STRU`.
    Stru(Structure),
    /// `MODE`.
    Mode(TransferMode),
    // ---- RFC 959 service commands (§4.1.3) ----
    /// `RETR path`.
    Retr(Pathname),
    /// `STOR path`.
    Stor(Pathname),
    /// `STOU [path]`: store under a unique name (the path, if sent, is a hint).
    Stou(Option<Pathname>),
    /// `APPE path`.
    Appe(Pathname),
    /// `ALLO size [R record-size]`.
    Allo {
        /// Bytes to reserve.
        size: u64,
        /// Maximum record or page size, if given.
        record_size: Option<u64>,
    },
    /// `REST offset` (RFC 3659 §5: a byte offset in stream mode).
    Rest(u64),
    /// `RNFR path`.
    Rnfr(Pathname),
    /// `RNTO path`.
    Rnto(Pathname),
    /// `ABOR`.
    Abor,
    /// `DELE path`.
    Dele(Pathname),
    /// `RMD path` (also `XRMD`).
    Rmd(Pathname),
    /// `MKD path` (also `XMKD`).
    Mkd(Pathname),
    /// `PWD` (also `XPWD`).
    Pwd,
    /// `LIST [-options] [path]`.
    List(ListArgs),
    /// `NLST [-options] [path]`.
    Nlst(ListArgs),
    /// `SITE command`.
    Site(Text),
    /// `SYST`.
    Syst,
    /// `STAT [path]`: server status without a path, a listing over the control connection with one.
    Stat(Option<ListArgs>),
    /// `HELP [topic]`.
    Help(Option<Text>),
    /// `NOOP`.
    Noop,
    // ---- RFC 2228 security extensions ----
    /// `AUTH mechanism` (`TLS`, `SSL`, ...).
    Auth(Text),
    /// `ADAT base64-data`.
    Adat(Text),
    /// `PBSZ size`.
    Pbsz(u32),
    /// `PROT level`.
    Prot(ProtectionLevel),
    /// `CCC`: clear the command channel.
    Ccc,
    /// `MIC base64-data`.
    Mic(Text),
    /// `CONF base64-data`.
    Conf(Text),
    /// `ENC base64-data`.
    Enc(Text),
    // ---- Secure server-to-server transfers (de facto: glFTPd, FileZilla, Serv-U) ----
    /// `SSCN [ON|OFF]`: which side of the data connection's TLS handshake the server takes. `ON`: the
    /// TLS client (so that one server of a secure FXP pair sends the ClientHello); `OFF`: the TLS server,
    /// the default; no argument asks which.
    Sscn(Option<bool>),
    /// `CPSV`: `PASV`, with the server as the TLS client of the next data connection (the older way
    /// of asking what `SSCN ON` asks for every transfer).
    Cpsv,
    // ---- RFC 2389 ----
    /// `FEAT`.
    Feat,
    /// `OPTS command [options]`.
    Opts(OptsArg),
    // ---- RFC 2428 ----
    /// `EPRT |proto|address|port|`.
    Eprt(SocketAddr),
    /// `EPSV [1|2|ALL]`.
    Epsv(EpsvArg),
    // ---- RFC 2640 ----
    /// `LANG [tag]`.
    Lang(Option<Text>),
    // ---- RFC 3659 ----
    /// `SIZE path`.
    Size(Pathname),
    /// `MDTM path`.
    Mdtm(Pathname),
    /// `MLST [path]`.
    Mlst(Option<Pathname>),
    /// `MLSD [path]`.
    Mlsd(Option<Pathname>),
    // ---- RFC 7151 ----
    /// `HOST name`: a domain name or an IP literal, never with a port.
    Host(Text),
    // ---- de facto (draft-somers-ftp-mfxx) ----
    /// `MFMT time path`: set the modification time.
    Mfmt {
        /// The new modification time (UTC).
        time: Timestamp,
        /// The file.
        path: Pathname,
    },
    /// A verb this crate does not know, kept verbatim (upper-cased) for the server to refuse.
    Unknown {
        /// The verb, ASCII upper case. When encoding, anything but ASCII letters is left out.
        verb: String,
        /// The argument, if any.
        arg: Option<Text>,
    },
}

/// Why a command line could not be parsed. Every variant is the peer's fault and maps to a reply code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The line does not begin with an alphabetic verb (or the verb is absurdly long).
    #[error("syntax error, command unrecognized")]
    InvalidVerb,
    /// A command that needs an argument had none.
    #[error("{verb} needs an argument")]
    MissingArgument {
        /// The verb, upper case.
        verb: &'static str,
    },
    /// A command that takes no argument had one.
    #[error("{verb} takes no argument")]
    UnexpectedArgument {
        /// The verb, upper case.
        verb: &'static str,
    },
    /// The argument does not have the form the command requires.
    #[error("invalid argument to {verb}")]
    InvalidArgument {
        /// The verb, upper case.
        verb: &'static str,
    },
    /// The argument contained CR or NUL.
    #[error("argument to {verb} contains a CR or NUL byte")]
    ForbiddenByte {
        /// The verb, upper case.
        verb: &'static str,
    },
    /// `EPRT` or `EPSV` named a network protocol other than 1 (IPv4) and 2 (IPv6).
    #[error("network protocol not supported, use (1,2)")]
    UnsupportedNetworkProtocol {
        /// The verb, upper case.
        verb: &'static str,
    },
}

impl ParseError {
    /// The reply code a server answers this error with: 500 for a line that is not a command, 522 for an
    /// unknown network protocol (RFC 2428), 501 for every other argument error.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            ParseError::InvalidVerb => ReplyCode::SYNTAX_ERROR,
            ParseError::UnsupportedNetworkProtocol { .. } => ReplyCode::EXTENDED_PORT_FAILURE,
            _ => ReplyCode::SYNTAX_ERROR_ARGUMENTS,
        }
    }

    /// The verb of the line that failed, when it was recognised.
    pub fn verb(&self) -> Option<&'static str> {
        match self {
            ParseError::InvalidVerb => None,
            ParseError::MissingArgument { verb }
            | ParseError::UnexpectedArgument { verb }
            | ParseError::InvalidArgument { verb }
            | ParseError::ForbiddenByte { verb }
            | ParseError::UnsupportedNetworkProtocol { verb } => Some(verb),
        }
    }
}

/// The longest verb we accept; real verbs have 3 or 4 letters, so anything past this is noise.
const MAX_VERB_LEN: usize = 16;

/// What the crate knows of one verb. [`VERBS`] is the one list of them: the parser, [`known_verbs`],
/// `HELP`, and the server's login and transfer-time gating all read it, so adding a command is one row
/// here plus its arm in the parser and in [`Command::verb`] (the `every_verb_parses` test keeps those
/// in step with the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verb {
    /// The canonical name (`PWD`, not `XPWD`).
    pub name: &'static str,
    /// Other wire names that mean the same command (the RFC 775 `X` forms).
    pub aliases: &'static [&'static str],
    /// Whether it works before login: RFC 959 §5.4's login sequence, the security extensions (RFC 2228,
    /// 4217) and the feature negotiation clients use before logging in (RFC 2389, 2640, 7151).
    pub before_login: bool,
    /// Whether it may be sent while a transfer runs (RFC 959 §4.1.3: `ABOR`, `STAT`, `QUIT`); the server
    /// queues anything else until the transfer ends.
    pub during_transfer: bool,
    /// The line a server lists in its `FEAT` reply (RFC 2389) for this verb, if it is an extension
    /// announced there. `MLST`'s line names the facts, so a server builds it itself.
    pub feat: Option<&'static str>,
    /// The syntax `HELP verb` shows, in the RFCs' notation.
    pub syntax: &'static str,
}

impl Verb {
    /// Whether `wire` (any case) names this verb or one of its aliases.
    pub fn is_named(&self, wire: &[u8]) -> bool {
        wire.eq_ignore_ascii_case(self.name.as_bytes())
            || self
                .aliases
                .iter()
                .any(|alias| wire.eq_ignore_ascii_case(alias.as_bytes()))
    }

    /// The verb `wire` names (any case, aliases included), if the crate knows it.
    pub fn lookup(wire: &[u8]) -> Option<&'static Verb> {
        VERBS.iter().find(|verb| verb.is_named(wire))
    }
}

/// Every verb this crate parses, in RFC order.
pub const VERBS: &[Verb] = &[
    Verb {
        name: "USER",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "USER <SP> <username>",
    },
    Verb {
        name: "PASS",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "PASS [<SP> <password>]",
    },
    Verb {
        name: "ACCT",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "ACCT <SP> <account-information>",
    },
    Verb {
        name: "CWD",
        aliases: &["XCWD"],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "CWD <SP> <pathname>",
    },
    Verb {
        name: "CDUP",
        aliases: &["XCUP"],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "CDUP",
    },
    Verb {
        name: "SMNT",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "SMNT <SP> <pathname>",
    },
    Verb {
        name: "REIN",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "REIN",
    },
    Verb {
        name: "QUIT",
        aliases: &[],
        before_login: true,
        during_transfer: true,
        feat: None,
        syntax: "QUIT",
    },
    Verb {
        name: "PORT",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "PORT <SP> h1,h2,h3,h4,p1,p2",
    },
    Verb {
        name: "PASV",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: Some("PASV"),
        syntax: "PASV",
    },
    Verb {
        name: "TYPE",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "TYPE <SP> A [N] | I | L 8",
    },
    Verb {
        name: "STRU",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "STRU <SP> F",
    },
    Verb {
        name: "MODE",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "MODE <SP> S",
    },
    Verb {
        name: "RETR",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "RETR <SP> <pathname>",
    },
    Verb {
        name: "STOR",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "STOR <SP> <pathname>",
    },
    Verb {
        name: "STOU",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "STOU [<SP> <pathname>]",
    },
    Verb {
        name: "APPE",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "APPE <SP> <pathname>",
    },
    Verb {
        name: "ALLO",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "ALLO <SP> <decimal-integer> [<SP> R <SP> <decimal-integer>]",
    },
    Verb {
        name: "REST",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: Some("REST STREAM"),
        syntax: "REST <SP> <offset>",
    },
    Verb {
        name: "RNFR",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "RNFR <SP> <pathname>",
    },
    Verb {
        name: "RNTO",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "RNTO <SP> <pathname>",
    },
    Verb {
        name: "ABOR",
        aliases: &[],
        before_login: true,
        during_transfer: true,
        feat: None,
        syntax: "ABOR",
    },
    Verb {
        name: "DELE",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "DELE <SP> <pathname>",
    },
    Verb {
        name: "RMD",
        aliases: &["XRMD"],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "RMD <SP> <pathname>",
    },
    Verb {
        name: "MKD",
        aliases: &["XMKD"],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "MKD <SP> <pathname>",
    },
    Verb {
        name: "PWD",
        aliases: &["XPWD"],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "PWD",
    },
    Verb {
        name: "LIST",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "LIST [<SP> <pathname>]",
    },
    Verb {
        name: "NLST",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "NLST [<SP> <pathname>]",
    },
    Verb {
        name: "SITE",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "SITE <SP> <string>",
    },
    Verb {
        name: "SYST",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "SYST",
    },
    Verb {
        name: "STAT",
        aliases: &[],
        before_login: false,
        during_transfer: true,
        feat: None,
        syntax: "STAT [<SP> <pathname>]",
    },
    Verb {
        name: "HELP",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "HELP [<SP> <string>]",
    },
    Verb {
        name: "NOOP",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "NOOP",
    },
    Verb {
        name: "AUTH",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "AUTH <SP> <mechanism-name>",
    },
    Verb {
        name: "ADAT",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "ADAT <SP> <base64data>",
    },
    Verb {
        name: "PBSZ",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "PBSZ <SP> <decimal-integer>",
    },
    Verb {
        name: "PROT",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "PROT <SP> C | S | E | P",
    },
    Verb {
        name: "CCC",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "CCC",
    },
    Verb {
        name: "SSCN",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "SSCN [<SP> ON | OFF]",
    },
    Verb {
        name: "CPSV",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "CPSV",
    },
    Verb {
        name: "MIC",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "MIC <SP> <base64data>",
    },
    Verb {
        name: "CONF",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "CONF <SP> <base64data>",
    },
    Verb {
        name: "ENC",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "ENC <SP> <base64data>",
    },
    Verb {
        name: "FEAT",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "FEAT",
    },
    Verb {
        name: "OPTS",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "OPTS <SP> <command-name> [<SP> <command-options>]",
    },
    Verb {
        name: "EPRT",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: Some("EPRT"),
        syntax: "EPRT <SP> |<net-prt>|<net-addr>|<tcp-port>|",
    },
    Verb {
        name: "EPSV",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: Some("EPSV"),
        syntax: "EPSV [<SP> <net-prt> | ALL]",
    },
    Verb {
        name: "LANG",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: None,
        syntax: "LANG [<SP> <language-tag>]",
    },
    Verb {
        name: "SIZE",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: Some("SIZE"),
        syntax: "SIZE <SP> <pathname>",
    },
    Verb {
        name: "MDTM",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: Some("MDTM"),
        syntax: "MDTM <SP> <pathname>",
    },
    Verb {
        name: "MLST",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "MLST [<SP> <pathname>]",
    },
    Verb {
        name: "MLSD",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: None,
        syntax: "MLSD [<SP> <pathname>]",
    },
    Verb {
        name: "HOST",
        aliases: &[],
        before_login: true,
        during_transfer: false,
        feat: Some("HOST"),
        syntax: "HOST <SP> <hostname>",
    },
    Verb {
        name: "MFMT",
        aliases: &[],
        before_login: false,
        during_transfer: false,
        feat: Some("MFMT"),
        syntax: "MFMT <SP> <YYYYMMDDHHMMSS[.sss]> <SP> <pathname>",
    },
];

/// Every canonical verb this crate knows (for `HELP` and `502` decisions), in RFC order.
pub fn known_verbs() -> impl Iterator<Item = &'static str> {
    VERBS.iter().map(|verb| verb.name)
}

/// Splits a line into the verb and the argument (`None` when absent or empty).
/// A command line split into its verb and its argument, if it has one.
type VerbAndArgument<'a> = (&'a [u8], Option<&'a [u8]>);

fn verb_and_argument(line: &[u8]) -> IResult<&[u8], VerbAndArgument<'_>> {
    let (rest, verb) = take_while1(|b: u8| b.is_ascii_alphabetic()).parse(line)?;
    let (rest, arg) = alt((
        value(None, eof),
        preceded(char(' '), nom::combinator::rest).map(Some),
    ))
    .parse(rest)?;
    Ok((rest, (verb, arg.filter(|a: &&[u8]| !a.is_empty()))))
}

/// Parses a decimal number with no sign, no spaces, and no overflow.
fn decimal<T: TryFrom<u64>>(input: &[u8]) -> IResult<&[u8], T> {
    map_opt(digit1, crate::decimal::parse::<T>).parse(input)
}

/// Runs `parser` over the whole argument.
fn whole<'a, O>(
    input: &'a [u8],
    parser: impl Parser<&'a [u8], Output = O, Error = nom::error::Error<&'a [u8]>>,
) -> Option<O> {
    all_consuming(parser).parse(input).ok().map(|(_, o)| o)
}

fn format_control(input: &[u8]) -> IResult<&[u8], FormatControl> {
    alt((
        value(FormatControl::NonPrint, tag_no_case("N")),
        value(FormatControl::Telnet, tag_no_case("T")),
        value(FormatControl::Asa, tag_no_case("C")),
    ))
    .parse(input)
}

fn transfer_type(input: &[u8]) -> IResult<&[u8], TransferType> {
    let with_format = |code| preceded(tag_no_case(code), opt(preceded(char(' '), format_control)));
    alt((
        with_format("A").map(|f| TransferType::Ascii(f.unwrap_or_default())),
        with_format("E").map(|f| TransferType::Ebcdic(f.unwrap_or_default())),
        value(TransferType::Image, tag_no_case("I")),
        // RFC 959 writes `L <SP> byte-size`; some clients send `L8`, which costs nothing to accept.
        preceded((tag_no_case("L"), opt(char(' '))), decimal::<u8>).map(TransferType::Local),
    ))
    .parse(input)
}

fn allo(input: &[u8]) -> IResult<&[u8], (u64, Option<u64>)> {
    (
        decimal::<u64>,
        opt(preceded(tag_no_case(" R "), decimal::<u64>)),
    )
        .parse(input)
}

fn one_of<T: Copy>(arg: &[u8], table: &[(&str, T)]) -> Option<T> {
    table
        .iter()
        .find(|(name, _)| arg.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| *v)
}

/// Whether `name` is what RFC 7151 lets `HOST` carry: a DNS name or an IPv4 literal, or an IPv6 literal in
/// brackets. A port (`name:21`) is not allowed. The parser rejects any other `HOST` argument with 501, so a
/// client should check names with this before sending them.
///
/// ```
/// use ftp_proto::command::is_valid_host;
/// assert!(is_valid_host(b"ftp.example.com"));
/// assert!(is_valid_host(b"[::1]"));
/// assert!(!is_valid_host(b"ftp.example.com:21"));
/// ```
pub fn is_valid_host(name: &[u8]) -> bool {
    if let Some(inner) = name.strip_prefix(b"[").and_then(|n| n.strip_suffix(b"]")) {
        return std::str::from_utf8(inner)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some();
    }
    name.len() <= 253
        && name.split(|&b| b == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && label.first() != Some(&b'-')
                && label.last() != Some(&b'-')
        })
}

/// Splits `LIST`-style arguments into leading `-options` words and the path.
fn list_args(arg: Option<&[u8]>) -> ListArgs {
    let mut args = ListArgs::default();
    let Some(mut rest) = arg else {
        return args;
    };
    while let Some(word) = rest.strip_prefix(b"-") {
        let end = word.iter().position(|&b| b == b' ').unwrap_or(word.len());
        let (letters, after) = word.split_at(end);
        if letters.is_empty() || !letters.iter().all(u8::is_ascii_alphanumeric) {
            break;
        }
        args.options.extend_from_slice(letters);
        rest = after.strip_prefix(b" ").unwrap_or(after);
    }
    // Check already done by the caller: the line has no CR, LF or NUL.
    args.path = (!rest.is_empty()).then(|| Pathname(rest.to_vec()));
    args
}

impl Command {
    /// Parses one command line (without its line end, as [`crate::framing`] delivers it).
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        let Ok((_, (wire_verb, arg))) = verb_and_argument(line) else {
            return Err(ParseError::InvalidVerb);
        };
        if wire_verb.len() > MAX_VERB_LEN {
            return Err(ParseError::InvalidVerb);
        }
        let Some(verb) = Verb::lookup(wire_verb).map(|verb| verb.name) else {
            return unknown(wire_verb, arg);
        };
        if arg.is_some_and(|a| a.iter().copied().any(is_forbidden)) {
            return Err(ParseError::ForbiddenByte { verb });
        }
        parse_known(verb, arg)
    }

    /// The table row of this command's verb; `None` for [`Command::Unknown`].
    pub fn verb_info(&self) -> Option<&'static Verb> {
        match self {
            Command::Unknown { .. } => None,
            known => Verb::lookup(known.verb().as_bytes()),
        }
    }

    /// The canonical verb (`XPWD` parses to `PWD`), or the unknown verb as sent.
    pub fn verb(&self) -> &str {
        use Command::*;
        match self {
            User(_) => "USER",
            Pass(_) => "PASS",
            Acct(_) => "ACCT",
            Cwd(_) => "CWD",
            Cdup => "CDUP",
            Smnt(_) => "SMNT",
            Rein => "REIN",
            Quit => "QUIT",
            Port(_) => "PORT",
            Pasv => "PASV",
            Type(_) => "TYPE",
            Stru(_) => "STRU",
            Mode(_) => "MODE",
            Retr(_) => "RETR",
            Stor(_) => "STOR",
            Stou(_) => "STOU",
            Appe(_) => "APPE",
            Allo { .. } => "ALLO",
            Rest(_) => "REST",
            Rnfr(_) => "RNFR",
            Rnto(_) => "RNTO",
            Abor => "ABOR",
            Dele(_) => "DELE",
            Rmd(_) => "RMD",
            Mkd(_) => "MKD",
            Pwd => "PWD",
            List(_) => "LIST",
            Nlst(_) => "NLST",
            Site(_) => "SITE",
            Syst => "SYST",
            Stat(_) => "STAT",
            Help(_) => "HELP",
            Noop => "NOOP",
            Auth(_) => "AUTH",
            Adat(_) => "ADAT",
            Pbsz(_) => "PBSZ",
            Prot(_) => "PROT",
            Ccc => "CCC",
            Sscn(_) => "SSCN",
            Cpsv => "CPSV",
            Mic(_) => "MIC",
            Conf(_) => "CONF",
            Enc(_) => "ENC",
            Feat => "FEAT",
            Opts(_) => "OPTS",
            Eprt(_) => "EPRT",
            Epsv(_) => "EPSV",
            Lang(_) => "LANG",
            Size(_) => "SIZE",
            Mdtm(_) => "MDTM",
            Mlst(_) => "MLST",
            Mlsd(_) => "MLSD",
            Host(_) => "HOST",
            Mfmt { .. } => "MFMT",
            Unknown { verb, .. } => verb,
        }
    }

    /// Appends the wire form, `VERB[ argument]\r\n`, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Only letters: a hand-built `Unknown` verb must not be able to smuggle in a line end.
        out.extend(self.verb().bytes().filter(u8::is_ascii_alphabetic));
        self.encode_argument(out);
        out.extend_from_slice(b"\r\n");
    }

    /// The wire form as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.encode(&mut out);
        out
    }

    /// Writes ` argument` (with its leading space) if the command has one.
    fn encode_argument(&self, out: &mut Vec<u8>) {
        use Command::*;
        let mut arg = |bytes: &[u8]| {
            out.push(b' ');
            out.extend_from_slice(bytes);
        };
        match self {
            User(t) | Acct(t) | Site(t) | Auth(t) | Adat(t) | Mic(t) | Conf(t) | Enc(t)
            | Host(t) => arg(t.as_bytes()),
            Pass(Some(p)) => arg(p.as_bytes()),
            Cwd(p) | Smnt(p) | Retr(p) | Stor(p) | Appe(p) | Rnfr(p) | Rnto(p) | Dele(p)
            | Rmd(p) | Mkd(p) | Size(p) | Mdtm(p) => arg(p.as_bytes()),
            Stou(Some(p)) | Mlst(Some(p)) | Mlsd(Some(p)) => arg(p.as_bytes()),
            Help(Some(t)) | Lang(Some(t)) => arg(t.as_bytes()),
            Port(hp) => arg(hp.to_string().as_bytes()),
            Type(t) => arg(encode_type(*t).as_bytes()),
            Stru(s) => arg(match s {
                Structure::File => b"F",
                Structure::Record => b"R",
                Structure::Page => b"P",
            }),
            Mode(m) => arg(match m {
                TransferMode::Stream => b"S",
                TransferMode::Block => b"B",
                TransferMode::Compressed => b"C",
            }),
            Allo { size, record_size } => arg(match record_size {
                Some(r) => format!("{size} R {r}"),
                None => size.to_string(),
            }
            .as_bytes()),
            Rest(offset) => arg(offset.to_string().as_bytes()),
            Pbsz(size) => arg(size.to_string().as_bytes()),
            Prot(level) => arg(match level {
                ProtectionLevel::Clear => b"C",
                ProtectionLevel::Safe => b"S",
                ProtectionLevel::Confidential => b"E",
                ProtectionLevel::Private => b"P",
            }),
            Sscn(Some(on)) => arg(if *on { b"ON" } else { b"OFF" }),
            List(a) | Nlst(a) | Stat(Some(a)) => encode_list_args(a, out),
            Opts(o) => encode_opts(o, out),
            Eprt(addr) => arg(hostport::format_eprt(*addr).as_bytes()),
            Epsv(EpsvArg::All) => arg(b"ALL"),
            Epsv(EpsvArg::Protocol(p)) => arg(p.number().to_string().as_bytes()),
            Mfmt { time, path } => {
                arg(time.to_ftp_string_exact().as_bytes());
                out.push(b' ');
                out.extend_from_slice(path.as_bytes());
            }
            Unknown { arg: Some(t), .. } => arg(t.as_bytes()),
            Pass(None)
            | Stou(None)
            | Mlst(None)
            | Mlsd(None)
            | Help(None)
            | Lang(None)
            | Stat(None)
            | Epsv(EpsvArg::Any)
            | Unknown { arg: None, .. }
            | Cdup
            | Rein
            | Quit
            | Pasv
            | Abor
            | Pwd
            | Syst
            | Noop
            | Ccc
            | Sscn(None)
            | Cpsv
            | Feat => {}
        }
    }
}

fn encode_type(t: TransferType) -> String {
    let fc = |f: FormatControl| match f {
        FormatControl::NonPrint => "",
        FormatControl::Telnet => " T",
        FormatControl::Asa => " C",
    };
    match t {
        TransferType::Ascii(f) => format!("A{}", fc(f)),
        TransferType::Ebcdic(f) => format!("E{}", fc(f)),
        TransferType::Image => "I".to_owned(),
        TransferType::Local(n) => format!("L {n}"),
    }
}

fn encode_list_args(a: &ListArgs, out: &mut Vec<u8>) {
    if !a.options.is_empty() {
        out.extend_from_slice(b" -");
        out.extend_from_slice(&a.options);
    }
    if let Some(p) = &a.path {
        out.push(b' ');
        out.extend_from_slice(p.as_bytes());
    }
}

fn encode_opts(o: &OptsArg, out: &mut Vec<u8>) {
    match o {
        OptsArg::Utf8(on) => out.extend_from_slice(if *on { b" UTF8 ON" } else { b" UTF8 OFF" }),
        OptsArg::Mlst(facts) => {
            out.extend_from_slice(b" MLST");
            if !facts.is_empty() {
                out.push(b' ');
                // The parser never produces CR, LF or NUL here; a hand-built value cannot inject them.
                out.extend(facts.iter().copied().filter(|&b| !is_forbidden(b)));
            }
        }
        OptsArg::Other { command, options } => {
            out.push(b' ');
            out.extend_from_slice(command.as_bytes());
            if let Some(opts) = options {
                out.push(b' ');
                out.extend_from_slice(opts.as_bytes());
            }
        }
    }
}

fn unknown(wire_verb: &[u8], arg: Option<&[u8]>) -> Result<Command, ParseError> {
    // take_while1 matched ASCII letters only, so this is valid UTF-8.
    let verb = String::from_utf8_lossy(wire_verb).to_ascii_uppercase();
    let arg = match arg {
        Some(a) => Some(Text::new(a).map_err(|_| ParseError::InvalidVerb)?),
        None => None,
    };
    Ok(Command::Unknown { verb, arg })
}

/// Parses the argument of a known verb. The caller has checked `arg` for CR, LF and NUL, so wrapping it
/// in [`Pathname`] or [`Text`] directly keeps their invariant.
fn parse_known(verb: &'static str, arg: Option<&[u8]>) -> Result<Command, ParseError> {
    use Command::*;
    let required = || arg.ok_or(ParseError::MissingArgument { verb });
    let path = || required().map(|a| Pathname(a.to_vec()));
    let text = || required().map(|a| Text(a.to_vec()));
    let none = |cmd: Command| match arg {
        None => Ok(cmd),
        Some(_) => Err(ParseError::UnexpectedArgument { verb }),
    };
    let invalid = ParseError::InvalidArgument { verb };
    let typed = |parsed: Option<Command>| parsed.ok_or(ParseError::InvalidArgument { verb });

    match verb {
        "USER" => text().map(User),
        "PASS" => Ok(Pass(arg.map(|a| Password(a.to_vec())))),
        "ACCT" => text().map(Acct),
        "CWD" => path().map(Cwd),
        "CDUP" => none(Cdup),
        "SMNT" => path().map(Smnt),
        "REIN" => none(Rein),
        "QUIT" => none(Quit),
        "PORT" => HostPort::parse(required()?).map(Port).map_err(|_| invalid),
        "PASV" => none(Pasv),
        "TYPE" => typed(whole(required()?, transfer_type).map(Type)),
        "STRU" => typed(
            one_of(
                required()?,
                &[
                    ("F", Structure::File),
                    ("R", Structure::Record),
                    ("P", Structure::Page),
                ],
            )
            .map(Stru),
        ),
        "MODE" => typed(
            one_of(
                required()?,
                &[
                    ("S", TransferMode::Stream),
                    ("B", TransferMode::Block),
                    ("C", TransferMode::Compressed),
                ],
            )
            .map(Mode),
        ),
        "RETR" => path().map(Retr),
        "STOR" => path().map(Stor),
        "STOU" => Ok(Stou(arg.map(|a| Pathname(a.to_vec())))),
        "APPE" => path().map(Appe),
        "ALLO" => {
            typed(whole(required()?, allo).map(|(size, record_size)| Allo { size, record_size }))
        }
        "REST" => typed(whole(required()?, decimal::<u64>).map(Rest)),
        "RNFR" => path().map(Rnfr),
        "RNTO" => path().map(Rnto),
        "ABOR" => none(Abor),
        "DELE" => path().map(Dele),
        "RMD" => path().map(Rmd),
        "MKD" => path().map(Mkd),
        "PWD" => none(Pwd),
        "LIST" => Ok(List(list_args(arg))),
        "NLST" => Ok(Nlst(list_args(arg))),
        "SITE" => text().map(Site),
        "SYST" => none(Syst),
        "STAT" => Ok(Stat(arg.map(|a| list_args(Some(a))))),
        "HELP" => Ok(Help(arg.map(|a| Text(a.to_vec())))),
        "NOOP" => none(Noop),
        "AUTH" => text().map(Auth),
        "ADAT" => text().map(Adat),
        "PBSZ" => typed(whole(required()?, decimal::<u32>).map(Pbsz)),
        "PROT" => typed(
            one_of(
                required()?,
                &[
                    ("C", ProtectionLevel::Clear),
                    ("S", ProtectionLevel::Safe),
                    ("E", ProtectionLevel::Confidential),
                    ("P", ProtectionLevel::Private),
                ],
            )
            .map(Prot),
        ),
        "CCC" => none(Ccc),
        "SSCN" => match arg {
            None => Ok(Sscn(None)),
            Some(a) => typed(one_of(a, &[("ON", true), ("OFF", false)]).map(|on| Sscn(Some(on)))),
        },
        "CPSV" => none(Cpsv),
        "MIC" => text().map(Mic),
        "CONF" => text().map(Conf),
        "ENC" => text().map(Enc),
        "FEAT" => none(Feat),
        "OPTS" => parse_opts(required()?).map(Opts),
        "EPRT" => parse_eprt(required()?).map(Eprt),
        "EPSV" => parse_epsv(arg).map(Epsv),
        "LANG" => Ok(Lang(arg.map(|a| Text(a.to_vec())))),
        "SIZE" => path().map(Size),
        "MDTM" => path().map(Mdtm),
        "MLST" => Ok(Mlst(arg.map(|a| Pathname(a.to_vec())))),
        "MLSD" => Ok(Mlsd(arg.map(|a| Pathname(a.to_vec())))),
        "HOST" => {
            let name = required()?;
            typed(is_valid_host(name).then(|| Host(Text(name.to_vec()))))
        }
        "MFMT" => parse_mfmt(required()?),
        // VERBS and this match are kept in step by the `every_verb_parses` test.
        _ => Err(ParseError::InvalidVerb),
    }
}

fn parse_opts(arg: &[u8]) -> Result<OptsArg, ParseError> {
    let (command, options) = match memchr::memchr(b' ', arg) {
        Some(space) => (
            arg.get(..space).unwrap_or_default(),
            arg.get(space + 1..).filter(|o| !o.is_empty()),
        ),
        None => (arg, None),
    };
    if command.eq_ignore_ascii_case(b"UTF8") || command.eq_ignore_ascii_case(b"UTF-8") {
        return match options {
            Some(o) if o.eq_ignore_ascii_case(b"ON") => Ok(OptsArg::Utf8(true)),
            Some(o) if o.eq_ignore_ascii_case(b"OFF") => Ok(OptsArg::Utf8(false)),
            _ => Err(ParseError::InvalidArgument { verb: "OPTS" }),
        };
    }
    if command.eq_ignore_ascii_case(b"MLST") {
        return Ok(OptsArg::Mlst(options.unwrap_or_default().to_vec()));
    }
    let command = Text::new(command).map_err(|_| ParseError::InvalidArgument { verb: "OPTS" })?;
    Ok(OptsArg::Other {
        command,
        options: options.map(|o| Text(o.to_vec())),
    })
}

fn parse_eprt(arg: &[u8]) -> Result<SocketAddr, ParseError> {
    hostport::parse_eprt(arg).map_err(|e| match e {
        HostPortError::UnsupportedProtocol(_) => {
            ParseError::UnsupportedNetworkProtocol { verb: "EPRT" }
        }
        _ => ParseError::InvalidArgument { verb: "EPRT" },
    })
}

fn parse_epsv(arg: Option<&[u8]>) -> Result<EpsvArg, ParseError> {
    let Some(arg) = arg else {
        return Ok(EpsvArg::Any);
    };
    if arg.eq_ignore_ascii_case(b"ALL") {
        return Ok(EpsvArg::All);
    }
    let number = whole(arg, decimal::<u32>).ok_or(ParseError::InvalidArgument { verb: "EPSV" })?;
    u8::try_from(number)
        .ok()
        .and_then(NetworkProtocol::from_number)
        .map(EpsvArg::Protocol)
        .ok_or(ParseError::UnsupportedNetworkProtocol { verb: "EPSV" })
}

fn parse_mfmt(arg: &[u8]) -> Result<Command, ParseError> {
    let invalid = ParseError::InvalidArgument { verb: "MFMT" };
    let space = memchr::memchr(b' ', arg).ok_or(invalid.clone())?;
    let (time, path) = (arg.get(..space), arg.get(space + 1..));
    let time = time.and_then(Timestamp::parse_ftp).ok_or(invalid.clone())?;
    let path = path.filter(|p| !p.is_empty()).ok_or(invalid)?;
    Ok(Command::Mfmt {
        time,
        path: Pathname(path.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    fn p(s: &str) -> Pathname {
        Pathname::new(s).unwrap()
    }

    fn t(s: &str) -> Text {
        Text::new(s).unwrap()
    }

    #[test]
    fn each_wire_name_is_in_the_table_once_and_looks_up_in_any_case() {
        let mut seen = std::collections::HashSet::new();
        for verb in VERBS {
            for wire in std::iter::once(verb.name).chain(verb.aliases.iter().copied()) {
                assert!(seen.insert(wire), "{wire} is in the table twice");
                assert_eq!(Verb::lookup(wire.to_lowercase().as_bytes()), Some(verb));
            }
            assert!(
                verb.syntax.starts_with(verb.name),
                "{}: {}",
                verb.name,
                verb.syntax
            );
        }
        assert_eq!(Verb::lookup(b"XYZZY"), None);
        assert_eq!(
            Command::parse(b"XPWD")
                .ok()
                .and_then(|c| c.verb_info())
                .map(|v| v.name),
            Some("PWD")
        );
        assert_eq!(
            Command::parse(b"XYZZY").ok().and_then(|c| c.verb_info()),
            None
        );
    }

    #[test]
    fn only_abor_stat_and_quit_may_interrupt_a_transfer() {
        let during: Vec<_> = VERBS
            .iter()
            .filter(|v| v.during_transfer)
            .map(|v| v.name)
            .collect();
        assert_eq!(during, ["QUIT", "ABOR", "STAT"]);
    }

    #[test]
    fn every_verb_parses() {
        // Each known verb with a plausible argument parses to a command whose canonical verb matches.
        let wire_names = VERBS.iter().flat_map(|v| {
            std::iter::once(v.name)
                .chain(v.aliases.iter().copied())
                .map(move |w| (w, v.name))
        });
        for (wire, canonical) in wire_names {
            let arg = match canonical {
                "PORT" => " 127,0,0,1,4,1",
                "TYPE" | "STRU" | "MODE" | "PROT" => match canonical {
                    "TYPE" => " I",
                    "STRU" => " F",
                    "MODE" => " S",
                    _ => " P",
                },
                "ALLO" | "REST" | "PBSZ" => " 0",
                "SSCN" => " ON",
                "EPRT" => " |1|127.0.0.1|2000|",
                "EPSV" => "",
                "OPTS" => " UTF8 ON",
                "HOST" => " ftp.example.com",
                "MFMT" => " 20240101120000 file",
                "CDUP" | "REIN" | "QUIT" | "PASV" | "ABOR" | "PWD" | "SYST" | "NOOP" | "CCC"
                | "FEAT" | "CPSV" => "",
                _ => " x",
            };
            let line = format!("{}{arg}", wire.to_lowercase());
            let cmd =
                Command::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?} failed: {e}"));
            assert_eq!(cmd.verb(), canonical, "{line:?}");
            assert_eq!(
                Command::parse(&cmd.to_bytes()[..cmd.to_bytes().len() - 2]),
                Ok(cmd)
            );
        }
    }

    #[test]
    fn table_of_valid_lines() {
        let v4 = |a, b, c, d, port| SocketAddr::from((Ipv4Addr::new(a, b, c, d), port));
        let cases: Vec<(&[u8], Command)> = vec![
            (b"USER anonymous", Command::User(t("anonymous"))),
            (b"PASS ", Command::Pass(None)),
            (b"PASS", Command::Pass(None)),
            (
                b"PASS  lead space",
                Command::Pass(Some(Password::new(" lead space").unwrap())),
            ),
            (b"RETR  a", Command::Retr(p(" a"))),
            (
                b"retr \xff\xfe.bin",
                Command::Retr(Pathname::new(&b"\xff\xfe.bin"[..]).unwrap()),
            ),
            (b"XPWD", Command::Pwd),
            (b"XCUP", Command::Cdup),
            (b"xmkd new", Command::Mkd(p("new"))),
            (b"XRMD old", Command::Rmd(p("old"))),
            (b"XCWD /", Command::Cwd(p("/"))),
            (b"NOOP ", Command::Noop),
            (
                b"PORT 192,168,1,15,9,47",
                Command::Port(HostPort::new(Ipv4Addr::new(192, 168, 1, 15), 2351)),
            ),
            (
                b"TYPE A",
                Command::Type(TransferType::Ascii(FormatControl::NonPrint)),
            ),
            (
                b"TYPE A N",
                Command::Type(TransferType::Ascii(FormatControl::NonPrint)),
            ),
            (
                b"type a t",
                Command::Type(TransferType::Ascii(FormatControl::Telnet)),
            ),
            (
                b"TYPE E C",
                Command::Type(TransferType::Ebcdic(FormatControl::Asa)),
            ),
            (b"TYPE L 8", Command::Type(TransferType::Local(8))),
            (b"TYPE L8", Command::Type(TransferType::Local(8))),
            (b"STRU R", Command::Stru(Structure::Record)),
            (b"MODE b", Command::Mode(TransferMode::Block)),
            (
                b"ALLO 1024",
                Command::Allo {
                    size: 1024,
                    record_size: None,
                },
            ),
            (
                b"ALLO 1024 R 80",
                Command::Allo {
                    size: 1024,
                    record_size: Some(80),
                },
            ),
            (b"REST 18446744073709551615", Command::Rest(u64::MAX)),
            (b"STOU", Command::Stou(None)),
            (b"LIST", Command::List(ListArgs::default())),
            (
                b"LIST -la",
                Command::List(ListArgs::default().with_options(b"la")),
            ),
            (
                b"LIST -l -a /my dir",
                Command::List(ListArgs::new(Some(p("/my dir"))).with_options(b"la")),
            ),
            (
                b"NLST *.txt",
                Command::Nlst(ListArgs::new(Some(p("*.txt")))),
            ),
            (b"STAT", Command::Stat(None)),
            (
                b"STAT -la /",
                Command::Stat(Some(ListArgs::new(Some(p("/"))).with_options(b"la"))),
            ),
            (b"HELP", Command::Help(None)),
            (b"HELP RETR", Command::Help(Some(t("RETR")))),
            (b"SITE CHMOD 755 x", Command::Site(t("CHMOD 755 x"))),
            (b"AUTH TLS", Command::Auth(t("TLS"))),
            (b"PBSZ 0", Command::Pbsz(0)),
            (b"PROT P", Command::Prot(ProtectionLevel::Private)),
            (b"OPTS UTF8 ON", Command::Opts(OptsArg::Utf8(true))),
            (b"opts utf8 off", Command::Opts(OptsArg::Utf8(false))),
            (
                b"OPTS MLST type;size;",
                Command::Opts(OptsArg::Mlst(b"type;size;".to_vec())),
            ),
            (b"OPTS MLST", Command::Opts(OptsArg::Mlst(Vec::new()))),
            (
                b"OPTS MODE Z LEVEL 9",
                Command::Opts(OptsArg::Other {
                    command: t("MODE"),
                    options: Some(t("Z LEVEL 9")),
                }),
            ),
            (
                b"EPRT |1|132.235.1.2|6275|",
                Command::Eprt(v4(132, 235, 1, 2, 6275)),
            ),
            (
                b"EPRT |2|1080::8:800:200C:417A|5282|",
                Command::Eprt(SocketAddr::V6(SocketAddrV6::new(
                    "1080::8:800:200C:417A".parse::<Ipv6Addr>().unwrap(),
                    5282,
                    0,
                    0,
                ))),
            ),
            (b"EPSV", Command::Epsv(EpsvArg::Any)),
            (b"EPSV all", Command::Epsv(EpsvArg::All)),
            (
                b"EPSV 2",
                Command::Epsv(EpsvArg::Protocol(NetworkProtocol::V6)),
            ),
            (b"LANG", Command::Lang(None)),
            (b"MLST", Command::Mlst(None)),
            (b"MLSD /pub", Command::Mlsd(Some(p("/pub")))),
            (b"HOST ftp.example.com", Command::Host(t("ftp.example.com"))),
            (b"HOST [::1]", Command::Host(t("[::1]"))),
            (b"HOST 10.0.0.1", Command::Host(t("10.0.0.1"))),
            (
                b"MFMT 20240229235959 a file",
                Command::Mfmt {
                    time: Timestamp::parse_ftp(b"20240229235959").unwrap(),
                    path: p("a file"),
                },
            ),
            (
                b"XYZZY plugh",
                Command::Unknown {
                    verb: "XYZZY".into(),
                    arg: Some(t("plugh")),
                },
            ),
            (
                b"clnt",
                Command::Unknown {
                    verb: "CLNT".into(),
                    arg: None,
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(
                Command::parse(line).as_ref(),
                Ok(&expected),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn table_of_errors() {
        use ParseError::*;
        let cases: &[(&[u8], ParseError, u16)] = &[
            (b"", InvalidVerb, 500),
            (b" USER x", InvalidVerb, 500),
            (b"US3R x", InvalidVerb, 500),
            (b"USER\tx", InvalidVerb, 500),
            (b"\x00USER", InvalidVerb, 500),
            (b"ABCDEFGHIJKLMNOPQ", InvalidVerb, 500),
            (b"\xc3\xa9t\xc3\xa9", InvalidVerb, 500),
            (b"USER", MissingArgument { verb: "USER" }, 501),
            (b"RETR ", MissingArgument { verb: "RETR" }, 501),
            (b"PWD x", UnexpectedArgument { verb: "PWD" }, 501),
            (b"PASV 1", UnexpectedArgument { verb: "PASV" }, 501),
            (b"RETR a\x00b", ForbiddenByte { verb: "RETR" }, 501),
            (b"RETR a\rb", ForbiddenByte { verb: "RETR" }, 501),
            (b"PORT 300,1,1,1,1,1", InvalidArgument { verb: "PORT" }, 501),
            (b"PORT 1,2,3,4,5", InvalidArgument { verb: "PORT" }, 501),
            (b"PORT -1,2,3,4,5,6", InvalidArgument { verb: "PORT" }, 501),
            (b"TYPE X", InvalidArgument { verb: "TYPE" }, 501),
            (b"TYPE A X", InvalidArgument { verb: "TYPE" }, 501),
            (b"TYPE L 256", InvalidArgument { verb: "TYPE" }, 501),
            (b"TYPE I extra", InvalidArgument { verb: "TYPE" }, 501),
            (b"STRU X", InvalidArgument { verb: "STRU" }, 501),
            (b"MODE", MissingArgument { verb: "MODE" }, 501),
            (b"REST -1", InvalidArgument { verb: "REST" }, 501),
            (
                b"REST 99999999999999999999",
                InvalidArgument { verb: "REST" },
                501,
            ),
            (b"REST 1 2", InvalidArgument { verb: "REST" }, 501),
            (b"ALLO x", InvalidArgument { verb: "ALLO" }, 501),
            (b"PBSZ 4294967296", InvalidArgument { verb: "PBSZ" }, 501),
            (b"PROT Q", InvalidArgument { verb: "PROT" }, 501),
            (b"OPTS UTF8 MAYBE", InvalidArgument { verb: "OPTS" }, 501),
            (
                b"EPRT |3|1.2.3.4|5|",
                UnsupportedNetworkProtocol { verb: "EPRT" },
                522,
            ),
            (b"EPRT |1|::1|5|", InvalidArgument { verb: "EPRT" }, 501),
            (b"EPRT 1.2.3.4", InvalidArgument { verb: "EPRT" }, 501),
            (b"EPSV 3", UnsupportedNetworkProtocol { verb: "EPSV" }, 522),
            (b"EPSV x", InvalidArgument { verb: "EPSV" }, 501),
            (
                b"HOST ftp.example.com:21",
                InvalidArgument { verb: "HOST" },
                501,
            ),
            (b"HOST [::1]:21", InvalidArgument { verb: "HOST" }, 501),
            (b"HOST -bad-.com", InvalidArgument { verb: "HOST" }, 501),
            (b"HOST a..b", InvalidArgument { verb: "HOST" }, 501),
            (
                b"MFMT 20231301000000 f",
                InvalidArgument { verb: "MFMT" },
                501,
            ),
            (
                b"MFMT 20230229000000 f",
                InvalidArgument { verb: "MFMT" },
                501,
            ),
            (
                b"MFMT 20230101000000",
                InvalidArgument { verb: "MFMT" },
                501,
            ),
            (
                b"MFMT 20230101000000 ",
                InvalidArgument { verb: "MFMT" },
                501,
            ),
        ];
        for (line, error, code) in cases {
            let got = Command::parse(line);
            assert_eq!(
                got.as_ref(),
                Err(error),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(error.reply_code().get(), *code);
        }
    }

    #[test]
    fn mfmt_keeps_every_fraction_digit() {
        // Found by the `command` fuzz target (fuzz/regressions/command/).
        let cmd = Command::parse(b"MFMT 20240101000000.0001 f").unwrap();
        assert_eq!(cmd.to_bytes(), b"MFMT 20240101000000.0001 f\r\n");
        assert_eq!(Command::parse(b"MFMT 20240101000000.0001 f"), Ok(cmd));
    }

    #[test]
    fn hand_built_values_cannot_inject_a_command() {
        let unknown = Command::Unknown {
            verb: "X\r\nDELE".into(),
            arg: None,
        };
        assert_eq!(unknown.to_bytes(), b"XDELE\r\n");
        let opts = Command::Opts(OptsArg::Mlst(b"type;\r\nDELE x".to_vec()));
        assert_eq!(opts.to_bytes(), b"OPTS MLST type;DELE x\r\n");
    }

    #[test]
    fn password_debug_is_hidden() {
        let cmd = Command::parse(b"PASS hunter2").unwrap();
        assert!(!format!("{cmd:?}").contains("hunter2"));
        assert_eq!(cmd.to_bytes(), b"PASS hunter2\r\n");
    }

    #[test]
    fn constructors_reject_line_breaks() {
        assert_eq!(
            Pathname::new("a\r\nDELE b"),
            Err(ArgumentError::ForbiddenByte)
        );
        assert_eq!(Text::new(""), Err(ArgumentError::Empty));
        assert_eq!(Password::try_from("a\0"), Err(ArgumentError::ForbiddenByte));
    }

    #[test]
    fn a_lone_dash_is_a_path() {
        let Ok(Command::List(args)) = Command::parse(b"LIST -") else {
            panic!("LIST - did not parse");
        };
        assert_eq!(args.path().map(Pathname::as_bytes), Some(&b"-"[..]));
        assert!(args.options().is_empty());
    }

    #[test]
    fn list_args_keep_a_dash_path_expressible() {
        let args = ListArgs::new(Some(p("-rf")));
        let cmd = Command::List(args.clone());
        assert_eq!(cmd.to_bytes(), b"LIST ./-rf\r\n");
        assert_eq!(Command::parse(b"LIST ./-rf"), Ok(cmd));
    }

    /// Lines built from pieces a real client might send, plus noise.
    fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
        let verb = prop::sample::select(
            VERBS
                .iter()
                .flat_map(|v| std::iter::once(v.name).chain(v.aliases.iter().copied()))
                .map(str::to_string)
                .chain(["XYZ".to_string()])
                .collect::<Vec<_>>(),
        );
        let arg = prop_oneof![
            Just(String::new()),
            Just(" I".to_string()),
            Just(" A N".to_string()),
            Just(" L 8".to_string()),
            Just(" ALL".to_string()),
            Just(" 1".to_string()),
            Just(" 127,0,0,1,200,7".to_string()),
            Just(" |2|::1|21|".to_string()),
            Just(" UTF8 ON".to_string()),
            Just(" MLST type;size;".to_string()),
            Just(" 20240101000000 x y".to_string()),
            Just(" -la dir".to_string()),
            (0u64..u64::MAX).prop_map(|n| format!(" {n}")),
            "( [ -~]{0,30})".prop_map(|s| s),
        ];
        (verb, arg, any::<bool>()).prop_map(|(v, a, lower)| {
            let v = if lower { v.to_lowercase() } else { v };
            format!("{v}{a}").into_bytes()
        })
    }

    proptest! {
        #[test]
        fn encode_inverts_parse(line in line_strategy()) {
            if let Ok(cmd) = Command::parse(&line) {
                let wire = cmd.to_bytes();
                prop_assert!(wire.ends_with(b"\r\n"));
                let body = &wire[..wire.len() - 2];
                prop_assert!(!body.contains(&b'\n') && !body.contains(&b'\r'));
                prop_assert_eq!(Command::parse(body), Ok(cmd));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            match Command::parse(&line) {
                Ok(cmd) => {
                    let wire = cmd.to_bytes();
                    prop_assert_eq!(Command::parse(&wire[..wire.len() - 2]), Ok(cmd));
                }
                Err(e) => prop_assert!(matches!(e.reply_code().get(), 500 | 501 | 522)),
            }
        }

        #[test]
        fn typed_commands_round_trip(
            ip in any::<[u8; 4]>(), port in any::<u16>(), offset in any::<u64>(),
            path in "[a-zA-Z0-9 ._/-]{1,40}",
        ) {
            let hp = HostPort::new(Ipv4Addr::from(ip), port);
            let path = Pathname::new(path).unwrap();
            for cmd in [
                Command::Port(hp),
                Command::Eprt(SocketAddr::from((Ipv4Addr::from(ip), port.max(1)))),
                Command::Rest(offset),
                Command::Retr(path.clone()),
                Command::List(ListArgs::new(Some(path.clone())).with_options(b"la")),
                Command::Nlst(ListArgs::new(Some(path))),
            ] {
                let wire = cmd.to_bytes();
                prop_assert_eq!(Command::parse(&wire[..wire.len() - 2]), Ok(cmd));
            }
        }
    }
}
