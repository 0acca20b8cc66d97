//! `client::Session` driven by a server, a user and a driver that the fuzz input scripts, interleaved.
//! The session runs in the shared test harness's `Client` end (`tests/harness/mod.rs`), whose drain hook
//! here checks every action and holds the ones that want an answer; `K` uses the harness's well-behaved
//! answers.
//!
//! Input: a six-byte header that picks the [`Config`] (small bounds, so they are reached), then
//! operations until the input ends. Each operation is a tag byte and its arguments:
//!
//! | tag | arguments | what happens |
//! | --- | --- | --- |
//! | `S` | *line* | server bytes up to and including the next LF (or to the end of the input) |
//! | `s` | *n* then *n* bytes | a server chunk of any bytes (a partial reply, several replies, garbage) |
//! | `R` | *kind* then its arguments | `Session::request` (kinds below) |
//! | `C` | *kind* *who* [*arg*] | `Session::handle_completion` (kinds below) |
//! | `D` | *who* *n* then *n* bytes | `Session::handle_data` |
//! | `K` | *n* | a well-behaved driver carries out the oldest unanswered action |
//! | `T` | *n* | the clock advances *n* × 100 ms; `handle_timeout` if `poll_timeout` is due |
//! | `H` | | `handle_timeout` now, due or not |
//! | `E` | | the control connection's EOF |
//! | space, CR, LF, TAB | | nothing (separators that make seeds readable) |
//!
//! Completion kinds: `c` Connected{peer: *addr*}, `l` Listening(*addr*), `e` EndOfData, `w` Written,
//! `f` Failed(*error*), `s` Secured{resumed: *arg* odd} (a TLS handshake, of the control connection or
//! a data connection). `K` connects, binds, accepts from the server, runs a TLS handshake, confirms a
//! write (to the data connection or the user's sink) or a sink's storing, or answers a read (of the
//! data connection or the user's source) with *n* sample bytes, or its end if *n* is 0.
//!
//! Any other tag byte selects one of these by its value. Arguments: *n* and other numbers are decimal
//! digits ended by one space or LF, or else a single raw byte's value; a *word* is up to 32 bytes ended by
//! a space or LF (an empty or invalid word is a missing optional argument); *who* is `.` (the id of the
//! latest data action), a digit `1`..`9` (the n-th id `request` returned) or any byte (an issued id by its
//! value: stale ids too); *addr* is a byte choosing the server, a stranger, unspecified or IPv6 forms.
//! Request kinds: `L` Login(*user* *password* *account*), `F` Features, `U` Utf8On, `Y` System, `P` Pwd,
//! `C` Cwd, `c` Cdup, `M` Mkdir, `m` Rmdir, `d` Delete, `n` Rename(*from* *to*), `z` Size, `t` Mdtm,
//! `T` SetModified(*path* *secs*), `x` Mlst, `l` List(*path* *secs*), `N` Nlst, `X` Mlsd,
//! `G` Retrieve(*path* *offset*), `W` Store(*path* *offset* *append if odd*), `y` SetType(*n*), `A` Abort,
//! `O` Noop, `Q` Quit, `s` Site, `h` Host, `r` Raw(*line*, parsed with `Command::parse`), `V`
//! SecureControl (`AUTH TLS`), `v` ClearControl (`CCC`).
//!
//! Header: `[flags] [line] [reply] [listing] [pending|window] [timeouts]`. Flags: bit 0 active mode,
//! bit 1 no `EPSV`/`EPRT` first, bit 2 trust the 227 address, bit 3 IPv6 control connection, bit 4 no
//! timers (`Duration::MAX`), bit 5 `protect_data` off, bit 6 implicit FTPS
//! (`Session::with_implicit_tls`). `max_line_len` = 8 + *line*, `max_reply_bytes` = 16 × (*reply* + 1),
//! `max_listing_bytes` = 4 × *listing*, `max_pending_requests` = low nibble, `transfer_window` = bits 4-5,
//! reply timeout = 1 + low nibble s, data timeout = 1 + high nibble s.
//!
//! Oracles: no panic; every drain of `poll_action`/`poll_event` ends; every `SendControl` is one or more
//! whole command lines (CRLF-terminated, no other CR, LF or NUL) that `Command::parse` accepts; ids in
//! actions and events were issued, and no action names a request completed earlier; each id gets at most
//! one `Completed`, and exactly one once the session is closed; one `Connected` (and `is_connected`), one
//! `Closed`, matching one `CloseControl` and `is_closed`; after that no action at all, `request` fails with
//! `UsageError::Closed` (also after `Quit`) and every input is ignored; a due timeout closes the session,
//! an early one does nothing; `poll_timeout` is never in the past and, with timers on, is set whenever
//! something is in progress (no hang, unless a misbehaving driver still owes an answer); passive
//! connections go to the control peer unless the 227 address is trusted; the queue stays within
//! `max_pending_requests`; progress only grows; a transfer's local end is closed at most once, only for
//! `Retrieve`/`Store`, and, once used, before the request completes; and while the driver behaves, one
//! read of the data connection at a time and at most `transfer_window` chunks of a transfer in flight
//! (reads asked and writes not acknowledged, at either end).
//!
//! FTPS oracles: `SecureControl` only for a `SecureControl` request, and while its handshake runs
//! nothing is sent and server bytes produce no action or event; `ClearControl` only on a control
//! connection the driver secured; a data connection asks for TLS (`Some(Client)`) exactly when
//! `is_data_protected()`; `DataAction::Secure` only on such a connection, in the client's role, right
//! after the driver reported it open; and, while the driver behaves, no `Send`, `Receive` or source
//! `Read` of a protected transfer before its handshake was answered `Secured`.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ftp_proto::client::{
    Action, Config, ConnectionInfo, DataAction, DataCompletion, DataMode, Event, LocalAction,
    Request, RequestId, Session, TlsRole, UsageError,
};
use ftp_proto::command::{Command, FormatControl, Password, Pathname, Text, TransferType};
use ftp_proto::hostport::NetworkProtocol;
use ftp_proto::reply::ReplyParserLimits;
use ftp_proto::time::Timestamp;
use harness::{Client, Verdict};
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/harness/mod.rs"]
mod harness;

/// More actions or events than this from one call means the drain does not end.
const DRAIN_BOUND: usize = 1 << 16;
/// The longest word argument.
const MAX_WORD: usize = 32;
/// The longest chunk a `K` read delivers.
const MAX_SAMPLE: usize = 512;
/// What a well-behaved driver reads from a data connection or an upload source: listing lines of each
/// kind, bare LF and lone CR for the TYPE A converters.
const SAMPLE: &[u8] = b"-rw-r--r-- 1 ftp ftp 4 Jan 02  2024 a.txt\r\n\
drwxr-xr-x 2 ftp ftp 0 Mar  4 10:00 sub\r\n\
type=file;size=4;modify=20240102030405; b.txt\r\n\
total 12\nplain\nline\rend";

/// Whether to print every action and event (set `CLIENT_SESSION_TRACE=1` when replaying an input).
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("CLIENT_SESSION_TRACE").is_some())
}

/// The fuzz input, read front to back; missing bytes read as zero.
struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        taken
    }

    /// Bytes up to and including the next LF, or the rest.
    fn line(&mut self) -> &'a [u8] {
        let end = self
            .rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.rest.len(), |i| i + 1);
        self.take(end)
    }

    /// Up to `MAX_WORD` bytes ended by a space or LF (consumed, not returned).
    fn word(&mut self) -> &'a [u8] {
        let end = self
            .rest
            .iter()
            .take(MAX_WORD)
            .position(|&b| b == b' ' || b == b'\n');
        match end {
            Some(end) => {
                let word = self.take(end);
                self.byte();
                word
            }
            None => self.take(MAX_WORD),
        }
    }

    /// Decimal digits ended by one space or LF, or else one raw byte's value.
    fn number(&mut self) -> u64 {
        if !self.rest.first().is_some_and(u8::is_ascii_digit) {
            return u64::from(self.byte());
        }
        let mut n = 0u64;
        while let Some(&d) = self.rest.first().filter(|d| d.is_ascii_digit()) {
            n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
            self.byte();
        }
        if matches!(self.rest.first(), Some(b' ' | b'\n')) {
            self.byte();
        }
        n
    }

    fn path(&mut self) -> Pathname {
        Pathname::new(self.word()).unwrap_or_else(|_| Pathname::new("x").expect("valid"))
    }

    fn optional_path(&mut self) -> Option<Pathname> {
        Pathname::new(self.word()).ok()
    }

    fn text(&mut self) -> Text {
        Text::new(self.word()).unwrap_or_else(|_| Text::new("x").expect("valid"))
    }

    /// A name for `HOST`. `Request::Host` takes any `Text`, but `Command::parse` accepts only a domain
    /// name or an IP literal there, so another word makes the session send a line the crate's own parser
    /// refuses (`HOST \xff`: a known gap of `Command::Host`, reported). Keep to names it accepts.
    fn host_name(&mut self) -> Text {
        let mut line = b"HOST ".to_vec();
        line.extend_from_slice(self.word());
        match Command::parse(&line) {
            Ok(Command::Host(name)) => name,
            _ => Text::new("ftp.example.com").expect("valid"),
        }
    }

    fn timestamp(&mut self) -> Timestamp {
        i64::try_from(self.number())
            .ok()
            .and_then(Timestamp::from_unix_seconds)
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn request(&mut self) -> Request {
        const KINDS: &[u8] = b"LFUYPCcMmdnztTxlNXGWyAOQshrVv";
        let kind = self.byte();
        let kind = if KINDS.contains(&kind) {
            kind
        } else {
            KINDS
                .get(usize::from(kind) % KINDS.len())
                .copied()
                .unwrap_or(b'O')
        };
        match kind {
            b'L' => Request::Login {
                user: self.text(),
                password: Password::new(self.word()).ok(),
                account: Text::new(self.word()).ok(),
            },
            b'F' => Request::Features,
            b'U' => Request::Utf8On,
            b'Y' => Request::System,
            b'P' => Request::Pwd,
            b'C' => Request::Cwd(self.path()),
            b'c' => Request::Cdup,
            b'M' => Request::Mkdir(self.path()),
            b'm' => Request::Rmdir(self.path()),
            b'd' => Request::Delete(self.path()),
            b'n' => Request::Rename {
                from: self.path(),
                to: self.path(),
            },
            b'z' => Request::Size(self.path()),
            b't' => Request::Mdtm(self.path()),
            b'T' => Request::SetModified {
                path: self.path(),
                time: self.timestamp(),
            },
            b'x' => Request::Mlst(self.optional_path()),
            b'l' => Request::List {
                path: self.optional_path(),
                now: self.timestamp(),
            },
            b'N' => Request::Nlst {
                path: self.optional_path(),
            },
            b'X' => Request::Mlsd {
                path: self.optional_path(),
            },
            b'G' => Request::Retrieve {
                path: self.path(),
                offset: self.number(),
            },
            b'W' => Request::Store {
                path: self.path(),
                offset: self.number(),
                append: self.number() % 2 == 1,
            },
            b'y' => Request::SetType(match self.number() % 7 {
                0 => TransferType::Ascii(FormatControl::NonPrint),
                1 => TransferType::Ascii(FormatControl::Telnet),
                2 => TransferType::Ascii(FormatControl::Asa),
                3 => TransferType::Ebcdic(FormatControl::NonPrint),
                4 => TransferType::Image,
                5 => TransferType::Local(8),
                _ => TransferType::Local(self.byte()),
            }),
            b'A' => Request::Abort,
            b'Q' => Request::Quit,
            b'V' => Request::SecureControl,
            b'v' => Request::ClearControl,
            b's' => Request::Site(self.text()),
            b'h' => Request::Host(self.host_name()),
            b'r' => {
                let line = self.line();
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                Request::Raw(Command::parse(line).unwrap_or(Command::Noop))
            }
            _ => Request::Noop,
        }
    }
}

/// The config the header asks for, whether the control connection is IPv6, whether timers run, and
/// whether the session is implicit FTPS.
fn config(header: &[u8]) -> (Config, bool, bool, bool) {
    let byte = |i: usize| header.get(i).copied().unwrap_or(0);
    let flags = byte(0);
    let mut config = Config::default();
    if flags & 1 != 0 {
        config.mode = DataMode::Active;
    }
    config.extended_first = flags & 2 == 0;
    config.trust_pasv_address = flags & 4 != 0;
    let ipv6 = flags & 8 != 0;
    let timers = flags & 16 == 0;
    config.protect_data = flags & 32 == 0;
    let implicit = flags & 64 != 0;
    config.reply_limits = ReplyParserLimits {
        max_line_len: 8 + usize::from(byte(1)),
        max_reply_bytes: 16 * (usize::from(byte(2)) + 1),
    };
    config.max_listing_bytes = 4 * usize::from(byte(3));
    config.max_pending_requests = usize::from(byte(4) & 0x0f);
    config.transfer_window = usize::from((byte(4) >> 4) & 3);
    if timers {
        config.reply_timeout = Duration::from_secs(1 + u64::from(byte(5) & 0x0f));
        config.data_timeout = Duration::from_secs(1 + u64::from(byte(5) >> 4));
    } else {
        config.reply_timeout = Duration::MAX;
        config.data_timeout = Duration::MAX;
    }
    (config, ipv6, timers, implicit)
}

fn connection_info(ipv6: bool) -> ConnectionInfo {
    if ipv6 {
        let local = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
        let peer = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        ConnectionInfo {
            local: SocketAddr::new(local.into(), 50000),
            peer: SocketAddr::new(peer.into(), 21),
        }
    } else {
        ConnectionInfo {
            local: SocketAddr::new(Ipv4Addr::new(192, 0, 2, 7).into(), 50000),
            peer: SocketAddr::new(Ipv4Addr::new(198, 51, 100, 1).into(), 21),
        }
    }
}

/// An address for a completion: the server, a stranger, unspecified, mapped and IPv6 forms.
fn address(info: &ConnectionInfo, b: u8) -> SocketAddr {
    let ip: IpAddr = match b % 6 {
        0 => info.peer.ip(),
        1 => Ipv4Addr::new(203, 0, 113, 5).into(),
        2 => Ipv4Addr::UNSPECIFIED.into(),
        3 => Ipv6Addr::UNSPECIFIED.into(),
        4 => Ipv4Addr::new(198, 51, 100, 1).to_ipv6_mapped().into(),
        _ => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
    };
    SocketAddr::new(ip, 40000 + u16::from(b))
}

fn error_kind(b: u8) -> ErrorKind {
    match b % 6 {
        0 => ErrorKind::ConnectionRefused,
        1 => ErrorKind::ConnectionReset,
        2 => ErrorKind::TimedOut,
        3 => ErrorKind::BrokenPipe,
        4 => ErrorKind::UnexpectedEof,
        _ => ErrorKind::Other,
    }
}

/// `SendControl` bytes: whole command lines, each ending in CRLF, no other CR, LF or NUL, each parsable.
fn check_command_lines(payload: &[u8]) {
    assert!(!payload.is_empty(), "an empty SendControl");
    let mut rest = payload;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or_else(|| panic!("SendControl does not end with a line end: {payload:?}"));
        let (line, after) = rest.split_at(end + 1);
        let text = line
            .strip_suffix(b"\r\n")
            .unwrap_or_else(|| panic!("LF without CR in SendControl: {payload:?}"));
        assert!(
            !text.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)),
            "CR, LF or NUL inside a command line: {payload:?}"
        );
        if let Err(error) = Command::parse(text) {
            panic!("SendControl line {text:?} does not parse: {error:?}");
        }
        rest = after;
    }
}

/// Something the session asked of its driver that is not answered yet: how the oracles see an action
/// the harness holds (`Client::held`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Duty {
    Connect(RequestId, SocketAddr),
    Listen(RequestId, NetworkProtocol),
    /// Active mode: the server's connection to the bound listener is to be accepted.
    Accept(RequestId),
    Receive(RequestId),
    /// A read of the user's upload source.
    Source(RequestId),
    /// A write to the data connection.
    Write(RequestId),
    /// A write to the user's download sink.
    SinkWrite(RequestId),
    /// A download's sink, closed after its last write, is to be stored.
    Store(RequestId),
    /// The control connection's TLS handshake.
    Handshake(RequestId),
    /// A data connection's TLS handshake.
    Secure(RequestId),
}

impl Duty {
    /// The duty a held action stands for (only these are held).
    fn of(action: &Action) -> Duty {
        match *action {
            Action::Data(DataAction::Connect { id, addr, .. }) => Duty::Connect(id, addr),
            Action::Data(DataAction::Listen { id, family }) => Duty::Listen(id, family),
            Action::Data(DataAction::Accept { id, .. }) => Duty::Accept(id),
            Action::Data(DataAction::Receive { id }) => Duty::Receive(id),
            Action::Data(DataAction::Send { id, .. }) => Duty::Write(id),
            Action::Local(LocalAction::Read { id }) => Duty::Source(id),
            Action::Local(LocalAction::Write { id, .. }) => Duty::SinkWrite(id),
            Action::Local(LocalAction::Close { id, .. }) => Duty::Store(id),
            Action::SecureControl { id } => Duty::Handshake(id),
            Action::Data(DataAction::Secure { id, .. }) => Duty::Secure(id),
            ref other => unreachable!("{other:?} is never held"),
        }
    }

    fn id(self) -> RequestId {
        match self {
            Duty::Connect(id, _)
            | Duty::Listen(id, _)
            | Duty::Accept(id)
            | Duty::Receive(id)
            | Duty::Source(id)
            | Duty::Write(id)
            | Duty::SinkWrite(id)
            | Duty::Store(id)
            | Duty::Handshake(id)
            | Duty::Secure(id) => id,
        }
    }

    /// Whether it is the data connection's (which closing the connection cancels).
    fn is_data(self) -> bool {
        matches!(
            self,
            Duty::Connect(..)
                | Duty::Listen(..)
                | Duty::Accept(_)
                | Duty::Receive(_)
                | Duty::Write(_)
                | Duty::Secure(_)
        )
    }

    /// Whether it holds a slot of the transfer's window.
    fn in_window(self) -> bool {
        matches!(
            self,
            Duty::Receive(_) | Duty::Source(_) | Duty::Write(_) | Duty::SinkWrite(_)
        )
    }
}

/// The session under test, in the shared harness's [`Client`] end (`tests/harness/mod.rs`: its drain
/// loop bounded by `DRAIN_BOUND`, the actions it holds for an answer, `closed` once `CloseControl` was
/// sent, and the well-behaved driver `K` uses), and everything the oracles remember about it.
struct World {
    client: Client,
    books: Books,
}

/// What the oracles remember.
struct Books {
    config: Arc<Config>,
    info: ConnectionInfo,
    timers: bool,
    /// Ids `request` returned, in order.
    issued: Vec<RequestId>,
    completed: BTreeSet<RequestId>,
    /// Raw requests, and those of them that got a 1xx (no reply timer runs for them then).
    raw_requests: BTreeSet<RequestId>,
    raw_after_preliminary: BTreeSet<RequestId>,
    /// `Retrieve` and `Store` requests (the ones with a local end), and which of them are downloads.
    transfers: BTreeSet<RequestId>,
    downloads: BTreeSet<RequestId>,
    /// Transfers whose local end was read or written, and those whose local end was closed.
    local_used: BTreeSet<RequestId>,
    local_closed: BTreeSet<RequestId>,
    progress: BTreeMap<RequestId, u64>,
    /// The id of the latest data action.
    latest: Option<RequestId>,
    connected: bool,
    closed_event: bool,
    quit_queued: bool,
    /// The driver answered something that was not asked (or not any more): the flow-control
    /// oracles no longer apply.
    misbehaved: bool,
    sample_pos: usize,
    /// `SecureControl` requests.
    secure_requests: BTreeSet<RequestId>,
    /// The control connection's TLS as the driver sees it (on after a handshake it answered
    /// `Secured`, or from the start with implicit FTPS; off after `ClearControl`).
    control_on: bool,
    /// The control connection's handshake asked for and not answered.
    handshake: Option<RequestId>,
    /// Transfers whose data connection was opened with TLS, those the driver reported open, and those
    /// whose handshake it answered `Secured`.
    protected: BTreeSet<RequestId>,
    opened: BTreeSet<RequestId>,
    secured: BTreeSet<RequestId>,
    /// Actions and events seen in the current settle.
    seen: usize,
}

impl World {
    fn new(config: Config, info: ConnectionInfo, timers: bool, implicit: bool) -> World {
        let now = Instant::now();
        let config = Arc::new(config);
        let mut client = if implicit {
            Client::start_implicit(Arc::clone(&config), info, now)
        } else {
            Client::start(Arc::clone(&config), info, now)
        };
        client.action_bound = DRAIN_BOUND;
        let mut world = World {
            client,
            books: Books {
                config,
                info,
                timers,
                issued: Vec::new(),
                completed: BTreeSet::new(),
                raw_requests: BTreeSet::new(),
                raw_after_preliminary: BTreeSet::new(),
                transfers: BTreeSet::new(),
                downloads: BTreeSet::new(),
                local_used: BTreeSet::new(),
                local_closed: BTreeSet::new(),
                progress: BTreeMap::new(),
                latest: None,
                connected: false,
                closed_event: false,
                quit_queued: false,
                misbehaved: false,
                sample_pos: 0,
                secure_requests: BTreeSet::new(),
                control_on: implicit,
                handshake: None,
                protected: BTreeSet::new(),
                opened: BTreeSet::new(),
                secured: BTreeSet::new(),
                seen: 0,
            },
        };
        world.settle();
        world
    }

    /// Resolves a *who* byte to an issued id.
    fn who(&self, b: u8) -> Option<RequestId> {
        let books = &self.books;
        if b == b'.' {
            return books.latest.or_else(|| books.issued.last().copied());
        }
        let index = if b.is_ascii_digit() {
            usize::from(b - b'0').saturating_sub(1)
        } else {
            usize::from(b)
        };
        books.issued.get(index % books.issued.len().max(1)).copied()
    }

    /// Removes the first duty `matches` accepts, or notes that the driver misbehaved.
    fn answer(&mut self, matches: impl Fn(&Duty) -> bool) -> Option<Duty> {
        match self.client.held.iter().position(|a| matches(&Duty::of(a))) {
            Some(i) => Some(Duty::of(&self.client.held.remove(i))),
            None => {
                self.books.misbehaved = true;
                None
            }
        }
    }

    fn request(&mut self, request: Request) {
        let quit = matches!(request, Request::Quit | Request::Raw(Command::Quit));
        let raw = matches!(request, Request::Raw(_));
        let secure = matches!(request, Request::SecureControl);
        let download = matches!(request, Request::Retrieve { .. });
        let transfer = download || matches!(request, Request::Store { .. });
        let was_closed = self.client.closed || self.client.session.is_closed();
        let queued = self.client.session.queued_requests();
        let books = &mut self.books;
        match self.client.session.request(self.client.now, request) {
            Ok(id) => {
                assert!(
                    !was_closed && !books.quit_queued,
                    "a request accepted after close/QUIT"
                );
                assert!(
                    books.issued.last().is_none_or(|&last| last < id),
                    "ids must count up"
                );
                books.issued.push(id);
                if raw {
                    books.raw_requests.insert(id);
                }
                if secure {
                    books.secure_requests.insert(id);
                }
                if transfer {
                    books.transfers.insert(id);
                }
                if download {
                    books.downloads.insert(id);
                }
                books.quit_queued |= quit;
            }
            Err(UsageError::Closed) => {
                assert!(was_closed || books.quit_queued, "Closed while open");
            }
            Err(UsageError::QueueFull { limit }) => {
                assert_eq!(limit, books.config.max_pending_requests);
                assert!(queued >= limit, "QueueFull with {queued} < {limit} queued");
            }
            // Only a SecureControl, on a connection that is protected (implicit, or secured) or has
            // asked for it already.
            Err(UsageError::AlreadySecured) => {
                assert!(secure, "AlreadySecured for another request");
                assert!(
                    self.client.session.is_control_secured() || !books.secure_requests.is_empty(),
                    "AlreadySecured on a plaintext connection that never asked for TLS"
                );
            }
            // Only a raw AUTH, CCC, or REIN once TLS is up.
            Err(UsageError::SecurityCommand) => assert!(raw, "SecurityCommand for a typed request"),
            Err(other) => panic!("unexpected usage error {other:?}"),
        }
        self.settle();
    }

    fn complete(&mut self, kind: usize, who: u8, extra: u8) {
        let Some(id) = self.who(who) else { return };
        let completion = match kind % 6 {
            0 => {
                let peer = address(&self.books.info, extra);
                let duty =
                    self.answer(|d| matches!(d, Duty::Connect(i, _) | Duty::Accept(i) if *i == id));
                if duty.is_some() {
                    self.books.opened.insert(id);
                }
                DataCompletion::Connected { peer }
            }
            1 => {
                let addr = address(&self.books.info, extra);
                self.answer(|d| matches!(d, Duty::Listen(i, _) if *i == id));
                DataCompletion::Listening(addr)
            }
            2 => {
                self.answer(|d| matches!(d, Duty::Receive(i) | Duty::Source(i) if *i == id));
                DataCompletion::EndOfData
            }
            3 => {
                self.answer(
                    |d| matches!(d, Duty::Write(i) | Duty::SinkWrite(i) | Duty::Store(i) if *i == id),
                );
                DataCompletion::Written
            }
            5 => {
                let duty =
                    self.answer(|d| matches!(d, Duty::Handshake(i) | Duty::Secure(i) if *i == id));
                self.books.handshake_done(duty, true);
                DataCompletion::Secured {
                    resumed: extra & 1 == 1,
                }
            }
            _ => {
                let duty = self.answer(|d| d.id() == id);
                self.books.handshake_done(duty, false);
                DataCompletion::Failed(error_kind(extra).into())
            }
        };
        let now = self.client.now;
        self.client.session.handle_completion(now, id, completion);
        self.settle();
    }

    fn data(&mut self, who: u8, chunk: &[u8]) {
        let Some(id) = self.who(who) else { return };
        self.answer(|d| matches!(d, Duty::Receive(i) | Duty::Source(i) if *i == id));
        let now = self.client.now;
        self.client
            .session
            .handle_data(now, id, Bytes::copy_from_slice(chunk));
        self.settle();
    }

    /// A well-behaved driver carries out the oldest duty: the harness's own answers (connect, bind,
    /// accept from the server, confirm a write or a sink's storing), except that a read yields `n`
    /// sample bytes, or its end if `n` is 0.
    fn carry_out(&mut self, n: usize) {
        if self.client.held.is_empty() {
            return;
        }
        let action = self.client.held.remove(0);
        let now = self.client.now;
        match Duty::of(&action) {
            Duty::Receive(id) | Duty::Source(id) if n == 0 => {
                self.client
                    .session
                    .handle_completion(now, id, DataCompletion::EndOfData);
            }
            Duty::Receive(id) | Duty::Source(id) => {
                let books = &mut self.books;
                let chunk: Vec<u8> = SAMPLE
                    .iter()
                    .cycle()
                    .skip(books.sample_pos % SAMPLE.len())
                    .take(n.min(MAX_SAMPLE))
                    .copied()
                    .collect();
                books.sample_pos = books.sample_pos.wrapping_add(n);
                self.client.session.handle_data(now, id, Bytes::from(chunk));
            }
            duty => {
                match duty {
                    Duty::Handshake(_) | Duty::Secure(_) => {
                        self.books.handshake_done(Some(duty), true)
                    }
                    Duty::Connect(id, _) | Duty::Accept(id) => {
                        self.books.opened.insert(id);
                    }
                    _ => {}
                }
                self.client.answer(action)
            }
        }
        self.settle();
    }

    fn advance(&mut self, tenths: u64) {
        self.client.now += Duration::from_millis(tenths.min(36_000) * 100);
        let now = self.client.now;
        let due = self
            .client
            .session
            .poll_timeout()
            .is_some_and(|deadline| now >= deadline);
        if due {
            self.client.session.handle_timeout(now);
            self.settle();
            // A reply timeout closes the session; a data timeout aborts only the transfer. Either way
            // the timer that fired is spent.
            assert!(
                self.client.session.is_closed()
                    || self
                        .client
                        .session
                        .poll_timeout()
                        .is_none_or(|deadline| deadline > now),
                "a due timeout left its timer due"
            );
        }
    }

    /// Server bytes; during the control connection's handshake they were not decrypted by it: they
    /// must do nothing at all.
    fn server_bytes(&mut self, bytes: &[u8]) {
        let handshaking = self.books.handshake.is_some() && !self.client.session.is_closed();
        let now = self.client.now;
        self.client.session.handle_control_input(now, bytes);
        self.settle();
        if handshaking {
            assert_eq!(
                self.books.seen, 0,
                "server bytes read during the TLS handshake"
            );
        }
    }

    fn timeout_now(&mut self) {
        let was_closed = self.client.session.is_closed();
        let now = self.client.now;
        let due = self
            .client
            .session
            .poll_timeout()
            .is_some_and(|deadline| now >= deadline);
        self.client.session.handle_timeout(now);
        self.settle();
        // Early, it changes nothing; due, it may close the session (a reply timeout) or only abort the
        // transfer (a data timeout).
        if !due {
            assert_eq!(
                self.client.session.is_closed(),
                was_closed,
                "handle_timeout closed the session before its deadline"
            );
        }
    }

    /// Drains actions and events after a call, checking each, then checks the session's state.
    fn settle(&mut self) {
        let books = &mut self.books;
        books.seen = 0;
        self.client
            .drain_with(|client, action| books.check_action(client, action));
        for event in std::mem::take(&mut self.client.events) {
            self.books.check_event(event);
        }
        self.books.check_state(&mut self.client);
    }

    /// Ends the conversation, then checks that a closed session ignores everything.
    fn finish(&mut self) {
        if !self.client.session.is_closed() {
            self.client.session.handle_control_eof();
            self.settle();
        }
        let session = &mut self.client.session;
        assert!(session.is_closed(), "EOF must close the session");
        let now = self.client.now + Duration::from_secs(3600);
        session.handle_control_input(now, b"220 again\r\n200 ok\r\n");
        session.handle_control_eof();
        session.handle_timeout(now);
        for &id in &self.books.issued {
            session.handle_completion(now, id, DataCompletion::EndOfData);
            session.handle_data(now, id, Bytes::from_static(b"late"));
        }
        assert!(session.poll_action().is_none(), "a closed session acted");
        assert!(session.poll_event().is_none(), "a closed session reported");
    }
}

/// Whether the harness holds an action that is this duty.
fn holds(client: &Client, duty: Duty) -> bool {
    client.held.iter().any(|a| Duty::of(a) == duty)
}

impl Books {
    fn check_id(&self, id: RequestId, what: &str) {
        assert!(self.issued.contains(&id), "{what} for an id never issued");
        // `completed` holds only completions of earlier calls: events are drained after actions.
        assert!(
            !self.completed.contains(&id),
            "{what} for request {} completed earlier",
            id.get()
        );
    }

    /// The drain's hook: checks `action` and holds it if it wants an answer.
    fn check_action(&mut self, client: &mut Client, action: &Action) -> Verdict<DataCompletion> {
        if tracing() {
            eprintln!("  action {action:?}");
        }
        // `client.closed` is as it was before this action.
        assert!(!client.closed, "an action after CloseControl: {action:?}");
        self.seen += 1;
        match *action {
            Action::SendControl(ref bytes) => {
                check_command_lines(bytes);
                assert!(
                    self.handshake.is_none(),
                    "{bytes:?} sent during the control connection's TLS handshake"
                );
                Verdict::Done
            }
            Action::SecureControl { id } => {
                self.check_id(id, "SecureControl");
                assert!(
                    self.secure_requests.contains(&id),
                    "SecureControl for a request that is no SecureControl"
                );
                assert!(self.handshake.is_none(), "a second handshake at once");
                assert!(!client.session.is_control_secured());
                self.handshake = Some(id);
                Verdict::Hold
            }
            Action::ClearControl => {
                assert!(
                    self.control_on,
                    "ClearControl on a control connection the driver never secured"
                );
                self.control_on = false;
                Verdict::Answer
            }
            Action::Data(DataAction::Secure { id, role }) => {
                self.check_id(id, "Secure");
                assert_eq!(
                    role,
                    TlsRole::Client,
                    "the client is the data connection's TLS client"
                );
                assert!(
                    self.protected.contains(&id),
                    "Secure of a plaintext data connection"
                );
                assert!(
                    self.misbehaved || self.opened.contains(&id),
                    "Secure before the driver reported the connection open"
                );
                self.latest = Some(id);
                Verdict::Hold
            }
            Action::Data(DataAction::Connect { id, addr, tls }) => {
                self.check_tls(id, tls, &client.session);
                self.check_id(id, "Connect");
                assert_eq!(self.config.mode, DataMode::Passive);
                if !self.config.trust_pasv_address {
                    assert_eq!(addr.ip(), self.info.peer.ip(), "connecting to a third host");
                }
                self.latest = Some(id);
                Verdict::Hold
            }
            Action::Data(DataAction::Listen { id, family }) => {
                self.check_id(id, "Listen");
                assert_eq!(self.config.mode, DataMode::Active);
                assert_eq!(family, NetworkProtocol::of(&self.info.local));
                self.latest = Some(id);
                Verdict::Hold
            }
            Action::Data(DataAction::Accept { id, listener, tls }) => {
                self.check_tls(id, tls, &client.session);
                self.check_id(id, "Accept");
                assert_eq!(self.config.mode, DataMode::Active);
                assert_eq!(
                    listener, id,
                    "the client accepts on its transfer's own listener"
                );
                self.latest = Some(id);
                Verdict::Hold
            }
            Action::Data(DataAction::Receive { id }) => {
                self.check_id(id, "Receive");
                self.check_secured(id, "Receive");
                assert!(
                    self.misbehaved || !holds(client, Duty::Receive(id)),
                    "a second read asked for while one is pending"
                );
                self.check_window(client, id);
                self.latest = Some(id);
                Verdict::Hold
            }
            Action::Data(DataAction::Send { id, ref data }) => {
                self.check_id(id, "Send");
                self.check_secured(id, "Send");
                assert!(!data.is_empty(), "Send of nothing");
                self.check_window(client, id);
                self.latest = Some(id);
                Verdict::Hold
            }
            Action::Data(DataAction::Close { id, .. }) => {
                self.check_id(id, "Close");
                // Closing the connection cancels whatever was pending on it.
                client.held.retain(|a| {
                    let d = Duty::of(a);
                    d.id() != id || !d.is_data()
                });
                self.latest = Some(id);
                Verdict::Done
            }
            Action::Local(LocalAction::Read { id }) => {
                self.check_local(id, "Read");
                self.check_secured(id, "Read");
                self.check_window(client, id);
                self.latest = Some(id);
                Verdict::Hold
            }
            Action::Local(LocalAction::Write { id, ref data }) => {
                self.check_local(id, "Write");
                assert!(!data.is_empty(), "Write of nothing");
                self.check_window(client, id);
                self.latest = Some(id);
                Verdict::Hold
            }
            Action::Local(LocalAction::Close { id, aborted }) => {
                self.check_local(id, "Close");
                assert!(
                    self.local_closed.insert(id),
                    "the local end of request {} closed twice",
                    id.get()
                );
                // Closing the local end cancels its reads; a sink closed after its last write is
                // stored, and says so.
                client.held.retain(|a| {
                    let d = Duty::of(a);
                    d.id() != id || d.is_data()
                });
                self.latest = Some(id);
                if !aborted && self.downloads.contains(&id) {
                    Verdict::Hold
                } else {
                    Verdict::Done
                }
            }
            Action::CloseControl => {
                client.held.clear();
                self.handshake = None;
                Verdict::Done
            }
        }
    }

    /// A data connection asks for TLS exactly when data is protected, in the client's role.
    fn check_tls(&mut self, id: RequestId, tls: Option<TlsRole>, session: &Session) {
        let expected = session.is_data_protected().then_some(TlsRole::Client);
        assert_eq!(tls, expected, "a data connection's TLS disagrees with PROT");
        if tls.is_some() {
            self.protected.insert(id);
        }
    }

    /// No bytes of a protected transfer move before its handshake (while the driver behaves).
    fn check_secured(&self, id: RequestId, what: &str) {
        assert!(
            self.misbehaved || !self.protected.contains(&id) || self.secured.contains(&id),
            "{what} of protected transfer {} before its TLS handshake",
            id.get()
        );
    }

    /// The driver answered a handshake duty (`duty`, if it was one): `secured` or failed.
    fn handshake_done(&mut self, duty: Option<Duty>, secured: bool) {
        match duty {
            Some(Duty::Handshake(id)) if self.handshake == Some(id) => {
                self.handshake = None;
                self.control_on |= secured;
            }
            Some(Duty::Secure(id)) if secured => {
                self.secured.insert(id);
            }
            _ => {}
        }
    }

    /// A local action: only for a `Retrieve` or `Store` whose local end is not closed yet.
    fn check_local(&mut self, id: RequestId, what: &str) {
        self.check_id(id, what);
        assert!(
            self.transfers.contains(&id),
            "local {what} for request {}, not a Retrieve or Store",
            id.get()
        );
        assert!(
            !self.local_closed.contains(&id),
            "local {what} after the local end of request {} closed",
            id.get()
        );
        self.local_used.insert(id);
    }

    /// Chunks of a transfer asked for (of the data connection or the source) or written (to the data
    /// connection or the sink) and not yet answered, the one being asked for included: at most the
    /// window.
    fn check_window(&self, client: &Client, id: RequestId) {
        let held = client
            .held
            .iter()
            .map(Duty::of)
            .filter(|d| d.id() == id && d.in_window())
            .count();
        let in_flight = held + 1;
        let window = self.config.transfer_window.max(1);
        assert!(
            self.misbehaved || in_flight <= window,
            "{in_flight} chunks in flight, window {window}"
        );
    }

    fn check_event(&mut self, event: Event) {
        if tracing() {
            eprintln!("  event {event:?}");
        }
        self.seen += 1;
        match event {
            Event::Connected(_) => {
                assert!(!self.connected, "a second Connected");
                self.connected = true;
            }
            Event::Completed { id, .. } => {
                assert!(
                    self.issued.contains(&id),
                    "Completed for an id never issued"
                );
                assert!(
                    !self.local_used.contains(&id) || self.local_closed.contains(&id),
                    "request {} completed without closing the local end it used",
                    id.get()
                );
                assert!(
                    self.completed.insert(id),
                    "request {} completed twice",
                    id.get()
                );
            }
            Event::Preliminary { id: Some(id), .. } => {
                assert!(
                    self.issued.contains(&id),
                    "Preliminary for an id never issued"
                );
                if self.raw_requests.contains(&id) {
                    self.raw_after_preliminary.insert(id);
                }
            }
            Event::Progress { id, bytes } => {
                assert!(self.issued.contains(&id), "Progress for an id never issued");
                let before = self.progress.insert(id, bytes).unwrap_or(0);
                assert!(
                    bytes >= before,
                    "progress went back from {before} to {bytes}"
                );
            }
            Event::Closed { .. } => {
                assert!(!self.closed_event, "a second Closed");
                self.closed_event = true;
            }
            _ => {}
        }
    }

    fn check_state(&mut self, client: &mut Client) {
        let now = client.now;
        let session = &mut client.session;
        let closed = session.is_closed();
        assert_eq!(
            closed, self.closed_event,
            "is_closed disagrees with Event::Closed"
        );
        assert_eq!(
            closed, client.closed,
            "is_closed disagrees with CloseControl"
        );
        assert_eq!(session.is_connected(), self.connected && !closed);
        let limit = self.config.max_pending_requests;
        assert!(session.queued_requests() <= limit, "queue beyond its bound");
        if closed {
            assert_eq!(session.poll_timeout(), None, "a timer after close");
            assert_eq!(session.current_request(), None);
            assert_eq!(session.queued_requests(), 0);
            for id in &self.issued {
                assert!(
                    self.completed.contains(id),
                    "closed, but request {} never completed",
                    id.get()
                );
            }
            assert_eq!(session.request(now, Request::Noop), Err(UsageError::Closed));
            assert!(session.poll_action().is_none(), "an action after close");
            assert!(session.poll_event().is_none(), "an event after close");
            return;
        }
        let deadline = session.poll_timeout();
        if let Some(deadline) = deadline {
            assert!(
                deadline > now,
                "poll_timeout is {:?} in the past",
                now - deadline
            );
        }
        // Waiting on the server or on a driver that behaves, a timer must run. A driver that answered
        // out of turn may have moved the session to wait for an answer it still owes: its own hang.
        let busy = session.current_request().is_some() || !self.connected;
        let waits_on_driver = self.misbehaved && !client.held.is_empty();
        // By design a raw command that got its 1xx (an FXP STOR/RETR) waits for its final reply untimed:
        // the session cannot see the transfer's progress (see `Config::reply_timeout`).
        let raw_transfer = session
            .current_request()
            .is_some_and(|id| self.raw_after_preliminary.contains(&id));
        assert!(
            !self.timers || !busy || waits_on_driver || raw_transfer || deadline.is_some(),
            "request {:?} in progress (connected: {}) with no timer: it can hang",
            session.current_request(),
            self.connected
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { rest: data };
    let (config, ipv6, timers, implicit) = config(input.take(6));
    let mut world = World::new(config, connection_info(ipv6), timers, implicit);
    const OPS: &[u8] = b"SsRCDKTHE";
    while !input.is_empty() {
        let tag = input.byte();
        if matches!(tag, b' ' | b'\r' | b'\n' | b'\t') {
            continue;
        }
        let tag = if OPS.contains(&tag) {
            tag
        } else {
            OPS.get(usize::from(tag) % OPS.len())
                .copied()
                .unwrap_or(b'E')
        };
        if tracing() {
            let next = input
                .rest
                .get(..input.rest.len().min(40))
                .unwrap_or_default();
            eprintln!("{} {:?}", char::from(tag), String::from_utf8_lossy(next));
        }
        match tag {
            b'S' => {
                let line = input.line();
                world.server_bytes(line);
            }
            b's' => {
                let n = usize::try_from(input.number()).unwrap_or(usize::MAX);
                let chunk = input.take(n);
                world.server_bytes(chunk);
            }
            b'R' => {
                let request = input.request();
                world.request(request);
            }
            b'C' => {
                const KINDS: &[u8] = b"clewfs";
                let kind = input.byte();
                let kind = KINDS
                    .iter()
                    .position(|&k| k == kind)
                    .unwrap_or(usize::from(kind) % KINDS.len());
                let who = input.byte();
                // Only DataConnected, Listening, Failed and Secured carry an argument.
                let extra = if matches!(kind, 0 | 1 | 4 | 5) {
                    input.byte()
                } else {
                    0
                };
                world.complete(kind, who, extra);
            }
            b'D' => {
                let who = input.byte();
                let n = usize::try_from(input.number()).unwrap_or(usize::MAX);
                let chunk = input.take(n);
                world.data(who, chunk);
            }
            b'K' => {
                let n = usize::try_from(input.number()).unwrap_or(usize::MAX);
                world.carry_out(n);
            }
            b'T' => world.advance(input.number()),
            b'H' => world.timeout_now(),
            _ => {
                world.client.session.handle_control_eof();
                world.settle();
            }
        }
    }
    world.finish();
});
