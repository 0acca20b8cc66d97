//! `server::Session` driven by a fuzz-chosen driver: any interleaving of control input, answers (right,
//! wrong, failed, stale), data chunks, end of data, time passing and control EOF.
//!
//! Input: `[config] [tls]? op...` (see `fuzz/README.md` for the op table). The config byte picks the line
//! ending, the transfer window (1..=3), the anonymous policy, the FXP and privileged-port switches and
//! IPv4/IPv6; the limits are small (64-byte lines, 256 bytes of queued commands, 64-byte/8-deep paths, 4
//! listing entries, 30 s idle, 40 s login and 10 s data timeouts) so that every limit is reached.
//!
//! FTPS: a config byte whose window bits (1-2) are both set (the value 3, which otherwise repeats 0's
//! window of 1) offers TLS, and a second byte picks the policy: bit 0 implicit FTPS
//! (`Session::with_implicit_tls`), bit 1 `required_for_login`, bit 2 `required_for_data`, bit 3
//! `anonymous_exempt`, bit 4 no `require_session_reuse`, bit 5 `allow_clear_control`, bits 6-7 the
//! window (1 + value % 3). Op 15 sends a TLS command (`AUTH` with each mechanism, also with input
//! pipelined behind it in the same chunk, `PBSZ`, `PROT` at each level, `CCC`, `SSCN`, `CPSV`, `REIN`);
//! the verb table has `CCC`, `SSCN`, `CPSV` and the RFC 2228 verbs at its end. `SecureControl` is answered
//! `ControlSecured` (or, for `choice % 4 == 3`, the handshake fails: the driver calls
//! `handle_control_eof`), `DataAction::Secure` with `Secured { resumed }` (either way) or a failure; any
//! completion (`choice >= 128`) includes those three.
//!
//! The driver is the shared test harness's `Server` end (`tests/harness/mod.rs`), with a hook that checks
//! every action and holds every one that wants an answer (the newest 64, oldest first); the target also
//! keeps every request id it saw. An answer op picks a waiting action and answers it with the completion
//! its kind expects, or, for a choice byte >= 128, with any completion (wrong kinds, `Failed` with each
//! `StorageError`, data connections from a foreign or a v4-mapped address, PASV listeners of the wrong
//! family). Data and end-of-data ops answer a waiting `LocalAction::Read`/`DataAction::Receive` (any old
//! id if none waits). A stale op answers an id already answered or abandoned. Time ops move the clock and call `handle_timeout` whenever `poll_timeout` is due.
//!
//! Oracles, after every `handle_*` call:
//! - no panic; `poll_action` runs dry within a bound (no endless stream of actions);
//! - every `SendControl` is either a Telnet refusal (`IAC WONT x` / `IAC DONT x`) or complete replies:
//!   CRLF lines, a first line `ddd ` or `ddd-` with `ddd` in 100..=599, inner lines not starting with a
//!   digit, a multi-line reply closed by `ddd ` with the same code, CR inside a line only as CR NUL;
//! - `buffered_input_len()` <= `max_line_len + max_pending_commands`;
//! - no action after `CloseControl`; `is_closed()` exactly when it was sent; a closed session has no timer;
//! - every `DataAction::Accept` names a listener the session asked for with `DataAction::Listen` and has
//!   not closed;
//! - `handle_timeout` at a due `poll_timeout` moves the deadline into the future (a driver would spin
//!   otherwise);
//! - `421 Timeout` comes no earlier than `idle_timeout` after the session was last busy with a transfer
//!   or a request to the driver (the idle timer "does not run during a transfer", and both start with a
//!   command, which restarts it);
//! - `421 Login timeout` comes only to a session not logged in, no earlier than `login_timeout` after it
//!   started (a logout restarts the deadline, never advances it);
//! - FTPS: `SecureControl` comes only right after a `234`, every `234` is followed by it, only when TLS is
//!   offered and the control connection is plaintext (as the driver sees it); while its handshake is
//!   under way, control input produces no action at all and is not buffered; `Authenticate`, and a
//!   `230`, come over a plaintext control connection only if the policy allows (`required_for_login`,
//!   `anonymous_exempt`); a `Connect`/`Accept` asks for TLS exactly when `is_data_protected()`, and always
//!   when `required_for_data` applies; `DataAction::Secure` comes right after the transfer's `150`, on a
//!   connection opened with TLS, in the role it was opened with; no `Send`, `Receive` or file `Read` of
//!   a protected transfer before its handshake was answered with an acceptable `Secured`; a `Secured {
//!   resumed: false }` that the session cannot accept (TLS server role, session reuse required) is
//!   answered `425`.
//!
//! `FUZZ_TRACE=1` prints the operations and actions.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

use ftp_proto::data::{DataAction, DataCompletion, DataError, LocalAction, TlsRole};
use ftp_proto::framing::{FramerConfig, LineEnding};
use ftp_proto::listing::{DirEntry, EntryKind, Metadata};
use ftp_proto::path::{PathLimits, VirtualPath};
use ftp_proto::server::{
    Access, Action, AnonymousPolicy, Completion, Config, ConnectionInfo, Grant, RequestId,
    StorageError, StorageRequest, TlsPolicy,
};
use ftp_proto::time::Timestamp;
use ftp_proto_fuzz::Reader;
use harness::{MemoryStore, Server, Verdict};
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/harness/mod.rs"]
mod harness;

const MAX_LINE_LEN: usize = 64;
const MAX_PENDING_COMMANDS: usize = 256;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const LOGIN_TIMEOUT: Duration = Duration::from_secs(40);
/// Completion numbers for "any completion" answers (see `completion`).
const COMPLETIONS: u8 = 31;
/// More actions than one `handle_*` call can legitimately produce (a 255-byte chunk of input holds at
/// most 255 lines, each answered by one reply; Telnet refusals are fewer; transfers are windowed).
const MAX_ACTIONS_PER_CALL: usize = 10_000;
/// Operations decoded per input: enough for long sessions, bounded so one input stays fast.
const MAX_OPS: usize = 4096;
/// Waiting actions kept by the harness; older ones are dropped (they stay answerable as stale ids).
const MAX_WAITING: usize = 64;
const MAX_HISTORY: usize = 256;

/// Verbs for the "command" op, in a fixed order so that seeds keep their meaning.
const VERBS: &[&str] = &[
    "USER", "PASS", "PASV", "EPSV", "PORT", "EPRT", "RETR", "STOR", "APPE", "STOU", "LIST", "NLST",
    "MLSD", "MLST", "ABOR", "STAT", "QUIT", "REST", "TYPE", "CWD", "CDUP", "PWD", "RNFR", "RNTO",
    "DELE", "MKD", "RMD", "SIZE", "MDTM", "MFMT", "REIN", "NOOP", "FEAT", "OPTS", "HELP", "SYST",
    "HOST", "ACCT", "MODE", "STRU", "ALLO", "SITE", "LANG", "PBSZ", "PROT", "AUTH", "XPWD", "XCUP",
    // Appended, so that the indices above keep their meaning.
    "CCC", "SSCN", "CPSV", "ADAT", "MIC", "CONF", "ENC",
];

/// The lines of the TLS op (op 15), by `sub % 8`; some take an argument from a second table.
const AUTH_MECHANISMS: &[&str] = &["TLS", "TLS-C", "SSL", "TLS-P", "tls", "GSSAPI", ""];
const PROT_LEVELS: &[&str] = &["P", "C", "S", "E", "", "X"];
const SSCN_ARGS: &[&str] = &["ON", "OFF", "", "MAYBE"];

/// `FUZZ_TRACE=1` prints every operation and action (to check seeds and read crashes).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if trace() {
            eprintln!($($arg)*);
        }
    };
}

/// The config the header asks for (reading the TLS byte if the config byte asks for TLS), and whether
/// the session is implicit FTPS.
fn config(input: &mut Reader<'_>) -> (Config, ConnectionInfo, bool) {
    let byte = input.u8();
    let mut config = Config::default();
    let line_ending = if byte & 1 != 0 {
        LineEnding::CrLfOnly
    } else {
        LineEnding::CrLfOrLf
    };
    config.framer = FramerConfig::new()
        .with_max_line_len(MAX_LINE_LEN)
        .with_line_ending(line_ending);
    config.max_pending_commands = MAX_PENDING_COMMANDS;
    config.transfer_window = 1 + usize::from(byte >> 1 & 3) % 3;
    let mut implicit = false;
    if byte >> 1 & 3 == 3 {
        let tls = input.u8();
        let mut policy = TlsPolicy::offered();
        implicit = tls & 1 != 0;
        policy.required_for_login = tls & 2 != 0;
        policy.required_for_data = tls & 4 != 0;
        policy.anonymous_exempt = tls & 8 != 0;
        policy.require_session_reuse = tls & 0x10 == 0;
        policy.allow_clear_control = tls & 0x20 != 0;
        config.tls = policy;
        config.transfer_window = 1 + usize::from(tls >> 6) % 3;
    }
    config.anonymous = match byte >> 3 & 3 {
        0 => AnonymousPolicy::Disabled,
        1 => AnonymousPolicy::ReadOnly,
        2 => AnonymousPolicy::ReadWrite,
        _ => AnonymousPolicy::UploadOnly,
    };
    config.allow_foreign_data_address = byte & 0x20 != 0;
    config.allow_privileged_data_port = byte & 0x40 != 0;
    config.path_limits = PathLimits::new(64, 8);
    config.max_listing_entries = 4;
    config.idle_timeout = IDLE_TIMEOUT;
    config.login_timeout = LOGIN_TIMEOUT;
    config.data_timeout = Duration::from_secs(10);
    config.failed_login_delay = Duration::from_secs(1);
    config.max_login_failures = 3;
    let info = if byte & 0x80 != 0 {
        ConnectionInfo {
            local: "[::1]:21".parse().unwrap(),
            peer: "[::1]:50000".parse().unwrap(),
        }
    } else {
        ConnectionInfo {
            local: "127.0.0.1:21".parse().unwrap(),
            peer: "127.0.0.1:50000".parse().unwrap(),
        }
    };
    (config, info, implicit)
}

/// The request id an action carries, if it wants an answer.
fn waiting_id(action: &Action) -> Option<RequestId> {
    match action {
        Action::Authenticate { id, .. }
        | Action::Data(
            DataAction::Listen { id, .. }
            | DataAction::Accept { id, .. }
            | DataAction::Connect { id, .. }
            | DataAction::Send { id, .. }
            | DataAction::Receive { id },
        )
        | Action::Storage { id, .. }
        | Action::Local(
            LocalAction::Read { id }
            | LocalAction::Write { id, .. }
            | LocalAction::Close { id, aborted: false },
        )
        | Action::ReadEntries { id }
        | Action::SecureControl { id }
        | Action::Data(DataAction::Secure { id, .. }) => Some(*id),
        Action::SendControl(_)
        | Action::Data(DataAction::Close { .. })
        | Action::Local(LocalAction::Close { aborted: true, .. })
        | Action::ClearControl
        | Action::CloseControl => None,
    }
}

fn is_read(action: &Action) -> bool {
    matches!(
        action,
        Action::Local(LocalAction::Read { .. })
            | Action::Data(DataAction::Receive { .. })
            | Action::ReadEntries { .. }
    )
}

/// Checks one `SendControl` payload (see the module docs).
fn check_control(bytes: &[u8]) {
    if let [255, verb, _] = bytes {
        assert!(
            *verb == 252 || *verb == 254,
            "a Telnet command other than WONT/DONT"
        );
        return;
    }
    assert!(
        bytes.ends_with(b"\r\n"),
        "reply not CRLF-terminated: {:?}",
        String::from_utf8_lossy(bytes)
    );
    let mut open: Option<&[u8]> = None;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let text = line
            .strip_suffix(b"\r\n")
            .unwrap_or_else(|| panic!("bare LF in {:?}", String::from_utf8_lossy(bytes)));
        for (i, &b) in text.iter().enumerate() {
            if b == b'\r' {
                assert_eq!(text.get(i + 1), Some(&0), "CR not escaped as CR NUL");
            }
        }
        let code_and_sep = match text {
            [a, b, c, sep, ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
                Some((&text[..3], *sep))
            }
            _ => None,
        };
        match open {
            None => {
                let (code, sep) = code_and_sep.unwrap_or_else(|| {
                    panic!(
                        "reply line without a code: {:?}",
                        String::from_utf8_lossy(bytes)
                    )
                });
                assert!(
                    code >= &b"100"[..] && code <= &b"599"[..],
                    "reply code out of range"
                );
                assert!(sep == b' ' || sep == b'-', "bad separator after the code");
                if sep == b'-' {
                    open = Some(code);
                }
            }
            Some(code) => match code_and_sep {
                Some((c, b' ')) if c == code => open = None,
                _ => assert!(
                    !text.first().is_some_and(u8::is_ascii_digit),
                    "inner line of a multi-line reply starts with a digit: {:?}",
                    String::from_utf8_lossy(bytes)
                ),
            },
        }
    }
    assert!(
        open.is_none(),
        "multi-line reply not closed: {:?}",
        String::from_utf8_lossy(bytes)
    );
}

fn size(byte: u8) -> u64 {
    match byte % 8 {
        0 => 0,
        1 => 1,
        2 => u64::from(byte),
        3 => 4096,
        4 => u64::MAX,
        5 => 1 << 40,
        6 => u64::from(byte) * 1000,
        _ => 123,
    }
}

fn mtime(byte: u8) -> Option<Timestamp> {
    (byte != 0).then(|| {
        let weeks = i64::from(byte) - 128;
        Timestamp::from_unix_seconds(1_700_000_000 + weeks * 7 * 86_400).expect("in range")
    })
}

fn metadata(input: &mut Reader<'_>) -> Metadata {
    let kind = input.u8();
    let mut meta = match kind % 4 {
        0 => Metadata::file(0),
        1 => Metadata::directory(),
        2 => Metadata::symlink(b"target".to_vec()),
        _ => {
            let mut m = Metadata::file(0);
            m.kind = EntryKind::Other;
            m
        }
    };
    meta.size = size(input.u8());
    meta.modified = mtime(input.u8());
    if kind & 0x80 != 0 {
        meta.unique = Some("803g2f".to_owned());
        meta.owner = String::new();
    }
    meta
}

/// The path a driver would report for `FileOpened`.
fn opened_path(action: Option<&Action>, choice: u8) -> VirtualPath {
    let requested = match action {
        Some(Action::Storage {
            request: StorageRequest::OpenRead { path, .. } | StorageRequest::OpenWrite { path, .. },
            ..
        }) => path.clone(),
        _ => VirtualPath::root(),
    };
    match choice % 4 {
        1 => requested
            .parent()
            .unwrap_or_else(VirtualPath::root)
            .join(b"ftp.upload.1")
            .unwrap_or(requested),
        2 => VirtualPath::root(),
        _ => requested,
    }
}

/// The completion numbered `variant` (see `right_variant`), reading its parameters from `input`.
fn completion(
    variant: u8,
    action: Option<&Action>,
    info: &ConnectionInfo,
    input: &mut Reader<'_>,
) -> Completion {
    let client = info.peer.ip();
    let failure = |error| Completion::Failed(error);
    // In the place `StorageError::DataConnection` had, so that seeds keep their meaning.
    let data_failure = Completion::Data(DataCompletion::Failed(DataError::new(
        std::io::ErrorKind::ConnectionReset,
    )));
    let failures = [
        failure(StorageError::NotFound),
        failure(StorageError::PermissionDenied),
        failure(StorageError::WrongKind),
        failure(StorageError::AlreadyExists),
        failure(StorageError::NotEmpty),
        failure(StorageError::InvalidOffset),
        failure(StorageError::NoSpace),
        failure(StorageError::InvalidName),
        data_failure,
        failure(StorageError::Busy),
        failure(StorageError::Other(
            "disk on fire at /srv/secret".to_owned(),
        )),
    ];
    match variant {
        0 => Completion::LoggedIn(Access::ReadOnly),
        1 => Completion::LoggedIn(Access::ReadWrite),
        2 => Completion::Denied,
        3 => DataCompletion::Listening(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            input.u16(),
        ))
        .into(),
        4 => DataCompletion::Listening(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            input.u16(),
        ))
        .into(),
        5 => DataCompletion::Connected {
            peer: SocketAddr::new(client, 1024 + u16::from(input.u8()) * 200),
        }
        .into(),
        6 => DataCompletion::Connected {
            peer: SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
                1024 + u16::from(input.u8()),
            ),
        }
        .into(),
        7 => Completion::Metadata(metadata(input)),
        8 => {
            let (entries, now) = listing_part(input);
            let directory = !input.u8().is_multiple_of(4);
            Completion::Entries {
                entries,
                directory,
                now,
            }
        }
        9 => {
            let size_byte = input.u8();
            Completion::FileOpened {
                size: (size_byte != 0).then(|| size(size_byte)),
                path: opened_path(action, input.u8()),
            }
        }
        10 => DataCompletion::Written.into(),
        11 => DataCompletion::EndOfData.into(),
        12 => Completion::Done,
        13..=22 => failures[usize::from(variant - 13)].clone(),
        23 => {
            // The client's IPv4 address written as an IPv4-mapped IPv6 one: the same host.
            let mapped = match client {
                IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
                v6 => v6,
            };
            DataCompletion::Connected {
                peer: SocketAddr::new(mapped, 40000),
            }
            .into()
        }
        24 => DataCompletion::Listening(SocketAddr::new(info.local.ip(), input.u16())).into(),
        25 => {
            let byte = input.u8();
            let access =
                [Access::ReadOnly, Access::ReadWrite, Access::UploadOnly][usize::from(byte % 3)];
            Completion::Granted(Grant::new(access).with_foreign_data_address(byte & 0x80 != 0))
        }
        27 => {
            // A listing's part, more to follow.
            let (entries, now) = listing_part(input);
            Completion::EntriesPart { entries, now }
        }
        28 => Completion::ControlSecured,
        29 => DataCompletion::Secured { resumed: true }.into(),
        30 => DataCompletion::Secured { resumed: false }.into(),
        _ => Completion::LoggedIn(Access::UploadOnly),
    }
}

/// Up to five entries and the time they were read: a whole listing or one of its parts.
fn listing_part(input: &mut Reader<'_>) -> (Vec<DirEntry>, Timestamp) {
    let now = mtime(input.u8()).unwrap_or(Timestamp::UNIX_EPOCH);
    let count = input.u8() % 6;
    let entries = (0..count)
        .map(|_| {
            let meta = metadata(input);
            DirEntry::new(input.short_bytes().to_vec(), meta)
        })
        .collect();
    (entries, now)
}

/// The completion a correct driver gives for `action`: `choice` picks among the right ones.
fn right_variant(action: Option<&Action>, choice: u8) -> u8 {
    match action {
        Some(Action::Authenticate { .. }) => [0, 1, 2, 25, 26][usize::from(choice % 5)],
        Some(Action::Data(DataAction::Listen { .. })) => 24,
        Some(Action::Data(DataAction::Accept { .. } | DataAction::Connect { .. })) => 5,
        // A finished upload's close is answered `Written` too, once the file is stored.
        Some(Action::Data(DataAction::Send { .. }) | Action::Local(LocalAction::Write { .. })) => {
            10
        }
        Some(Action::Local(LocalAction::Close { .. })) => 10,
        Some(
            Action::Local(LocalAction::Read { .. }) | Action::Data(DataAction::Receive { .. }),
        ) => 11,
        Some(Action::ReadEntries { .. }) => [8, 27][usize::from(choice % 2)],
        // A failed control handshake is no completion: see `Harness::answer`.
        Some(Action::SecureControl { .. }) => 28,
        // Resumed or not, or the handshake failed (`Data(Failed)`).
        Some(Action::Data(DataAction::Secure { .. })) => [29, 30, 29, 21][usize::from(choice % 4)],
        Some(Action::Storage { request, .. }) => match request {
            StorageRequest::Stat(_) => 7,
            StorageRequest::List { .. } => [8, 27][usize::from(choice % 2)],
            StorageRequest::OpenRead { .. } | StorageRequest::OpenWrite { .. } => 9,
            _ => 12,
        },
        _ => 12,
    }
}

/// The session, in the shared harness's [`Server`] end (`tests/harness/mod.rs`): its drain loop (bounded
/// by `MAX_ACTIONS_PER_CALL`), the actions it holds for an answer (`stalled`: the waiting ones, oldest
/// first) and the books it keeps (`listeners` asked for with `DataAction::Listen` and not closed yet,
/// `closed` once `CloseControl` was sent). Nothing is answered by the harness: the fuzz input answers.
struct Harness {
    server: Server,
    info: ConnectionInfo,
    /// Every request id seen, for stale answers.
    history: Vec<RequestId>,
    /// The last time the session was seen busy (see `note_busy`).
    busy_at: Option<Instant>,
    /// When the session started (its login deadline counts from here at the earliest).
    started: Instant,
    /// What the FTPS oracles remember.
    tls: TlsBooks,
}

/// What the FTPS oracles remember (see the module docs).
struct TlsBooks {
    policy: TlsPolicy,
    /// The control connection's TLS as the driver sees it: on from the start (implicit FTPS) or once
    /// it answered `SecureControl`; off after `ClearControl`.
    on: bool,
    /// The control connection's handshake asked for and not answered yet.
    handshake: Option<RequestId>,
    /// The TLS role each protected data connection was opened with.
    data: BTreeMap<RequestId, TlsRole>,
    /// Protected data connections whose `Secure` came out and is not answered yet.
    securing: BTreeSet<RequestId>,
    /// Protected transfers whose handshake was answered with a `Secured` the session can accept.
    secured: BTreeSet<RequestId>,
    /// The code of the reply the previous action sent (`None` if it was no reply).
    prev_code: Option<[u8; 3]>,
    /// A `Secured` the session cannot accept was given: a 425 is owed in this drain.
    owe_425: bool,
    /// Actions in the current drain.
    actions: usize,
}

impl TlsBooks {
    fn new(policy: TlsPolicy, implicit: bool) -> TlsBooks {
        TlsBooks {
            policy,
            on: implicit,
            handshake: None,
            data: BTreeMap::new(),
            securing: BTreeSet::new(),
            secured: BTreeSet::new(),
            prev_code: None,
            owe_425: false,
            actions: 0,
        }
    }

    /// Checks one action against the FTPS oracles, before the harness's books are kept.
    fn check(&mut self, server: &Server, action: &Action) {
        let code = match action {
            Action::SendControl(bytes) if bytes.first().is_some_and(u8::is_ascii_digit) => {
                bytes.get(..3).and_then(|c| <[u8; 3]>::try_from(c).ok())
            }
            _ => None,
        };
        let prev = std::mem::replace(&mut self.prev_code, code);
        self.actions += 1;
        if prev == Some(*b"234") {
            assert!(
                matches!(action, Action::SecureControl { .. }),
                "a 234 not followed by SecureControl: {action:?}"
            );
        }
        if self.handshake.is_some() {
            // Nothing the session reads is handled during the handshake: only a timeout's 421 and
            // the close may come.
            let allowed = match action {
                Action::SendControl(bytes) => bytes.starts_with(b"421 "),
                Action::Data(DataAction::Close { .. })
                | Action::Local(LocalAction::Close { .. })
                | Action::CloseControl => true,
                _ => false,
            };
            assert!(
                allowed,
                "{action:?} during the control connection's handshake"
            );
        }
        match action {
            Action::SecureControl { id } => {
                assert_eq!(prev, Some(*b"234"), "SecureControl without a 234 before it");
                assert!(self.policy.offered, "SecureControl with TLS not offered");
                assert!(!self.on, "SecureControl on a protected control connection");
                self.handshake = Some(*id);
            }
            Action::ClearControl => {
                assert!(self.on, "ClearControl on a plaintext control connection");
                assert!(self.policy.allow_clear_control, "ClearControl not allowed");
                self.on = false;
            }
            Action::Authenticate { .. } => assert!(
                self.on || !self.policy.required_for_login,
                "a password checked that came over plaintext, TLS required for logins"
            ),
            Action::SendControl(bytes) if bytes.starts_with(b"230 ") => assert!(
                self.on || !self.policy.required_for_login || self.policy.anonymous_exempt,
                "a login over plaintext, TLS required for logins"
            ),
            Action::SendControl(bytes) if bytes.starts_with(b"425 ") => self.owe_425 = false,
            Action::Data(
                DataAction::Connect { id, tls, .. } | DataAction::Accept { id, tls, .. },
            ) => {
                assert_eq!(
                    tls.is_some(),
                    server.session.is_data_protected(),
                    "a data connection's TLS disagrees with PROT"
                );
                if self.policy.required_for_data && !self.policy.anonymous_exempt {
                    assert!(tls.is_some(), "a plaintext transfer, TLS required for data");
                }
                if let Some(role) = tls {
                    self.data.insert(*id, *role);
                }
            }
            Action::Data(DataAction::Secure { id, role }) => {
                assert_eq!(
                    prev,
                    Some(*b"150"),
                    "Secure not right after the transfer's 150"
                );
                assert_eq!(
                    self.data.get(id),
                    Some(role),
                    "Secure of a connection opened without TLS, or in another role"
                );
                assert!(self.securing.insert(*id), "Secure asked twice");
            }
            Action::Data(DataAction::Send { id, .. } | DataAction::Receive { id })
            | Action::Local(LocalAction::Read { id }) => {
                if self.data.contains_key(id) {
                    assert!(
                        self.secured.contains(id),
                        "{action:?}: a protected transfer's bytes before its handshake"
                    );
                }
            }
            Action::Data(DataAction::Close { id, .. }) => {
                self.securing.remove(id);
            }
            _ => {}
        }
    }

    /// Notes an answer the driver gave (accepted: not turned away as the wrong kind).
    fn answered(&mut self, id: RequestId, completion: &Completion) {
        if self.handshake == Some(id) && *completion == Completion::ControlSecured {
            self.handshake = None;
            self.on = true;
        }
        if !self.securing.remove(&id) {
            return;
        }
        if let Completion::Data(DataCompletion::Secured { resumed }) = completion {
            let role = self.data.get(&id).copied();
            let acceptable =
                *resumed || role == Some(TlsRole::Client) || !self.policy.require_session_reuse;
            if acceptable {
                self.secured.insert(id);
            } else {
                self.owe_425 = true;
            }
        }
    }
}

impl Harness {
    fn new(config: Config, info: ConnectionInfo, implicit: bool, now: Instant) -> Harness {
        let tls = TlsBooks::new(config.tls, implicit);
        let config = Arc::new(config);
        let mut server = if implicit {
            Server::start_implicit(config, info, MemoryStore::new(), now)
        } else {
            Server::start(config, info, MemoryStore::new(), now)
        };
        server.action_bound = MAX_ACTIONS_PER_CALL;
        Harness {
            server,
            info,
            history: Vec::new(),
            busy_at: None,
            started: now,
            tls,
        }
    }

    /// Feeds control input, checking that none is read while the control connection's handshake
    /// runs.
    fn control_input(&mut self, bytes: &[u8]) {
        let handshaking = self.tls.handshake.is_some() && !self.server.closed;
        self.server
            .session
            .handle_control_input(self.server.now, bytes);
        self.drain();
        if handshaking {
            assert_eq!(
                self.tls.actions, 0,
                "control input handled during the handshake"
            );
            assert_eq!(
                self.server.session.buffered_input_len(),
                0,
                "control input kept during the handshake"
            );
        }
    }

    /// Drains the actions and events after a `handle_*` call and checks the invariants.
    fn drain(&mut self) {
        let Harness {
            server,
            history,
            busy_at,
            started,
            tls,
            ..
        } = self;
        tls.actions = 0;
        server.drain_with(|server, action| {
            trace!("  <- {action:?}");
            // `closed` and `listeners` are as they were before this action.
            assert!(!server.closed, "{action:?} after CloseControl");
            tls.check(server, action);
            match action {
                Action::SendControl(bytes) => {
                    check_control(bytes);
                    if bytes.starts_with(b"421 Timeout:") {
                        check_idle_timeout(*busy_at, server.now);
                    }
                    if bytes.starts_with(b"421 Login timeout") {
                        assert!(
                            server.session.user().is_none(),
                            "login timeout while logged in"
                        );
                        assert!(
                            server.now >= *started + LOGIN_TIMEOUT,
                            "421 login timeout {:?} after the start",
                            server.now - *started
                        );
                    }
                }
                Action::Data(DataAction::Accept { listener, .. }) => assert!(
                    server.listeners.contains(listener),
                    "accept from {listener:?}, which is not an open listener"
                ),
                _ => {}
            }
            match waiting_id(action) {
                Some(id) => {
                    if !history.contains(&id) {
                        if history.len() == MAX_HISTORY {
                            history.remove(0);
                        }
                        history.push(id);
                    }
                    Verdict::Hold
                }
                None => Verdict::Done,
            }
        });
        // Only the newest waiting actions are kept (older ones stay answerable as stale ids).
        let excess = server.stalled.len().saturating_sub(MAX_WAITING);
        server.stalled.drain(..excess);
        let session = &server.session;
        assert!(
            session.buffered_input_len() <= MAX_LINE_LEN + MAX_PENDING_COMMANDS,
            "buffered input {} over the bound",
            session.buffered_input_len()
        );
        assert_eq!(
            session.is_closed(),
            server.closed,
            "is_closed() disagrees with CloseControl"
        );
        if server.closed {
            assert_eq!(session.poll_timeout(), None, "a closed session has a timer");
            tls.handshake = None;
        }
        assert!(
            !tls.owe_425,
            "a Secured the session cannot accept, and no 425"
        );
        self.note_busy();
    }

    /// Notes the time if the session is busy: a transfer in progress, or a request out to the driver (no
    /// timer). Called before and after every `handle_*` call.
    fn note_busy(&mut self) {
        let busy = self.server.session.transfer_progress().is_some()
            || (!self.server.session.is_closed() && self.server.session.poll_timeout().is_none());
        if busy {
            self.busy_at = Some(self.server.now);
        }
    }

    /// Takes the waiting action at `sel` (among reads first if `reads_first`), or an id from history.
    fn pick(&mut self, sel: u8, reads_first: bool) -> Option<(RequestId, Option<Action>)> {
        let reads: Vec<usize> = (0..self.server.stalled.len())
            .filter(|&i| is_read(&self.server.stalled[i]))
            .collect();
        let candidates: Vec<usize> = if reads_first && !reads.is_empty() {
            reads
        } else {
            (0..self.server.stalled.len()).collect()
        };
        if candidates.is_empty() {
            return self.stale(sel).map(|id| (id, None));
        }
        let action = self
            .server
            .stalled
            .remove(candidates[usize::from(sel) % candidates.len()]);
        let id = waiting_id(&action)?;
        Some((id, Some(action)))
    }

    fn stale(&self, sel: u8) -> Option<RequestId> {
        (!self.history.is_empty()).then(|| self.history[usize::from(sel) % self.history.len()])
    }

    fn answer(
        &mut self,
        id: RequestId,
        action: Option<&Action>,
        choice: u8,
        input: &mut Reader<'_>,
    ) {
        if choice < 128 && choice % 4 == 3 && matches!(action, Some(Action::SecureControl { .. })) {
            // The handshake failed: the driver closes the connection.
            trace!("-> handshake {id:?} failed: control EOF");
            self.server.session.handle_control_eof();
            return;
        }
        let variant = if choice < 128 {
            right_variant(action, choice)
        } else {
            (choice - 128) % COMPLETIONS
        };
        let completion = completion(variant, action, &self.info, input);
        trace!("-> completion {id:?} {completion:?} (to {action:?})");
        let timeout = self.server.session.poll_timeout();
        let now = self.server.now;
        let noted = completion.clone();
        let result = self.server.session.handle_completion(now, id, completion);
        if result.is_ok() {
            self.tls.answered(id, &noted);
        }
        if let Err(mistake) = result {
            // A wrong kind of answer is the driver's mistake: reported, and nothing else happens.
            trace!("   turned away: {mistake}");
            assert_eq!(mistake.id, id);
            assert_eq!(
                self.server.session.poll_timeout(),
                timeout,
                "a turned-away answer moved a timer"
            );
        }
    }

    /// Moves the clock and fires due timers, checking that the deadline moves on.
    fn advance(&mut self, mode: u8, amount: u8) {
        let deadline = self.server.session.poll_timeout();
        self.server.now = match (mode % 4, deadline) {
            (2, Some(t)) => t.max(self.server.now),
            (3, Some(t)) => (t - Duration::from_millis(1)).max(self.server.now),
            (1, _) => self.server.now + Duration::from_secs(amount.into()),
            _ => self.server.now + Duration::from_millis(amount.into()),
        };
        trace!(
            "-> time +{:?}",
            self.server.now - START.get().copied().unwrap_or(self.server.now)
        );
        for _ in 0..8 {
            match self.server.session.poll_timeout() {
                Some(t) if t <= self.server.now => {
                    self.note_busy();
                    self.server.session.handle_timeout(self.server.now);
                    self.drain();
                }
                _ => return,
            }
        }
        panic!("poll_timeout stays due after handle_timeout: a driver would spin");
    }
}

/// The idle timer counts from the last command, and neither a transfer nor a request to the driver
/// (which both start with a command) counts as idle time: a `421 Timeout` comes no earlier than
/// `idle_timeout` after the session was last busy.
fn check_idle_timeout(busy_at: Option<Instant>, now: Instant) {
    if let Some(busy_at) = busy_at {
        assert!(
            now >= busy_at + IDLE_TIMEOUT,
            "421 idle timeout {:?} after the session was busy",
            now - busy_at
        );
    }
}

/// The line of the TLS op: `sub % 8` picks the command, the rest of `sub` its argument.
fn tls_line(input: &mut Reader<'_>) -> Vec<u8> {
    let sub = input.u8();
    let pick = |table: &[&str]| table[usize::from(sub >> 3) % table.len()].to_owned();
    let line = match sub % 8 {
        0 => "AUTH TLS".to_owned(),
        1 => format!("AUTH {}", pick(AUTH_MECHANISMS)),
        2 => "PBSZ 0".to_owned(),
        3 => format!("PROT {}", pick(PROT_LEVELS)),
        4 => "CCC".to_owned(),
        5 if sub & 0x80 != 0 => "CPSV".to_owned(),
        5 => format!("SSCN {}", pick(SSCN_ARGS)),
        6 => {
            // Input pipelined behind AUTH in the same chunk (the STARTTLS injection): never read.
            let mut line = b"AUTH TLS\r\n".to_vec();
            line.extend_from_slice(input.short_bytes());
            return line;
        }
        _ => "REIN".to_owned(),
    };
    let mut line = line.trim_end().as_bytes().to_vec();
    line.extend_from_slice(b"\r\n");
    line
}

static START: OnceLock<Instant> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let (config, info, implicit) = config(&mut input);
    let now = *START.get_or_init(Instant::now);
    let mut h = Harness::new(config, info, implicit, now);
    h.drain();

    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        h.note_busy();
        match input.u8() % 16 {
            0 | 1 => {
                let bytes = input.short_bytes();
                trace!("-> control {:?}", String::from_utf8_lossy(bytes));
                h.control_input(bytes);
                continue; // drained
            }
            2..=4 => {
                let (sel, choice) = (input.u8(), input.u8());
                if let Some((id, action)) = h.pick(sel, false) {
                    h.answer(id, action.as_ref(), choice, &mut input);
                }
            }
            5 => {
                let sel = input.u8();
                let chunk = Bytes::copy_from_slice(input.short_bytes());
                if let Some((id, _)) = h.pick(sel, true) {
                    trace!("-> data {id:?} {:?}", String::from_utf8_lossy(&chunk));
                    h.server.session.handle_data(h.server.now, id, chunk);
                }
            }
            6 => {
                let sel = input.u8();
                if let Some((id, _)) = h.pick(sel, true) {
                    trace!("-> end of data {id:?}");
                    // Sent to any id, fitting or not: a misfit is turned away (see `answer`).
                    let end = DataCompletion::EndOfData.into();
                    let _ = h.server.session.handle_completion(h.server.now, id, end);
                }
            }
            7 => {
                let (mode, amount) = (input.u8(), input.u8());
                h.advance(mode, amount);
                continue; // advance drains what it fires
            }
            8 => {
                trace!("-> control EOF");
                h.server.session.handle_control_eof();
            }
            9 => {
                let (sel, choice) = (input.u8(), input.u8());
                if let Some(id) = h.stale(sel) {
                    h.answer(id, None, choice, &mut input);
                }
            }
            15 => {
                let line = tls_line(&mut input);
                trace!("-> TLS command {:?}", String::from_utf8_lossy(&line));
                h.control_input(&line);
                continue; // drained
            }
            _ => {
                let verb = VERBS[usize::from(input.u8()) % VERBS.len()];
                let arg = input.short_bytes();
                let mut line = verb.as_bytes().to_vec();
                if !arg.is_empty() {
                    line.push(b' ');
                    line.extend_from_slice(arg);
                }
                line.extend_from_slice(b"\r\n");
                trace!("-> command {:?}", String::from_utf8_lossy(&line));
                h.control_input(&line);
                continue; // drained
            }
        }
        h.drain();
    }
});
