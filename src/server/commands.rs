//! What the server session does with each command and with each answer from its driver.

use std::net::SocketAddr;
use std::time::Instant;

use crate::command::{
    Command, EpsvArg, FormatControl, ListArgs, OptsArg, Pathname, Structure, Text, TransferMode,
    TransferType, Verb,
};
use crate::data::{DataAction, DataCompletion, LocalAction};
use crate::feat::FeatureSet;
use crate::hostport::{self, HostPort, NetworkProtocol};
use crate::listing::{self, DirEntry, EntryKind, FactSet, Permissions};
use crate::path::VirtualPath;
use crate::reply::{self, Reply, ReplyCode};
use crate::time::Timestamp;
use crate::transcode::{CrLfToLf, LfToCrLf, Transcoder};

use super::io::{
    Access, Action, Completion, Event, Grant, RequestId, StorageError, StorageRequest, WriteMode,
};
use super::transfer::{Direction, ListingFormat, ListingSource, Phase, Step, Transfer};
use super::{AnonymousPolicy, DataChannel, Login, Pending, Session};

/// What to do with the answer to a storage request made for a command.
#[derive(Debug)]
pub(super) enum Then {
    /// `CWD`: change to this directory if it is one.
    ChangeDirectory(VirtualPath),
    /// `SIZE`: report the size of a plain file.
    ReportSize,
    /// `MDTM`: report the modification time.
    ReportModified,
    /// `RNFR`: remember the path if it exists.
    RememberRenameSource(VirtualPath),
    /// `MLST`: the facts of this path on the control connection.
    ReportFacts(VirtualPath),
    /// `STAT path`: a listing on the control connection, with the entries of the parts so far.
    ReportListing {
        /// The path listed.
        path: VirtualPath,
        /// The entries of the parts received so far.
        entries: Vec<DirEntry>,
    },
    /// Send this reply on success.
    Reply(ReplyCode, Vec<u8>),
}

/// Names a client may use for anonymous login (RFC 1635).
fn is_anonymous_name(user: &[u8]) -> bool {
    user.eq_ignore_ascii_case(b"anonymous") || user.eq_ignore_ascii_case(b"ftp")
}

/// Verbs whose argument is a secret: a password, an account (often a second password), and RFC 2228
/// security data (authentication tokens).
const SECRET_VERBS: [&str; 3] = ["PASS", "ACCT", "ADAT"];

/// The line as it may appear in a log: the argument of a [`SECRET_VERBS`] verb is masked, and control
/// characters are escaped so that the line stays one line and cannot drive a terminal.
fn loggable(line: &[u8]) -> String {
    // A prefix, not the parsed verb: `PASS\tsecret` or `PASSWORD secret` do not parse, and their
    // argument is just as secret.
    let prefix = line.get(..4).unwrap_or_default();
    if let Some(verb) = SECRET_VERBS
        .iter()
        .find(|verb| prefix.eq_ignore_ascii_case(verb.as_bytes()))
    {
        return format!("{verb} ****");
    }
    let mut out = String::with_capacity(line.len());
    for c in String::from_utf8_lossy(line).chars() {
        if is_unsafe_in_log(c) {
            let code = u32::from(c);
            if code < 0x80 {
                out.push_str(&format!("\\x{code:02x}"));
            } else {
                out.push_str(&format!("\\u{{{code:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters a log line must not carry raw: C0 controls (CR and LF would forge a line, ESC drives
/// terminals), DEL, C1 controls (U+009B is a one-character CSI), Unicode line and paragraph separators,
/// and the bidirectional controls that can make a line read as something else.
fn is_unsafe_in_log(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// The reply code and text for a failed storage operation.
fn storage_error_reply(error: &StorageError) -> (ReplyCode, String) {
    let code = match error {
        StorageError::NoSpace => ReplyCode::EXCEEDED_STORAGE,
        StorageError::InvalidName => ReplyCode::FILE_NAME_NOT_ALLOWED,
        StorageError::Busy => ReplyCode::FILE_UNAVAILABLE,
        StorageError::Other(_) => ReplyCode::LOCAL_ERROR,
        _ => ReplyCode::FILE_UNAVAILABLE_PERMANENT,
    };
    let text = match error {
        // The driver's own words may reveal server paths: keep them for its log.
        StorageError::Other(_) => "Local error in processing.".to_owned(),
        other => format!("{other}."),
    };
    (code, text)
}

/// Entries `STAT path` lists on the control connection. The reply is built in memory as one unit (it
/// cannot be streamed like a data-connection listing), so it gets a tighter bound than `LIST`.
const STAT_LISTING_LIMIT: usize = 10_000;

/// The `FEAT` lines that belong to no one verb of [`crate::command::VERBS`] (whose `feat` column gives
/// the rest): RFC 3659's `TVFS` (`/`-separated paths) and RFC 2640's `UTF8`.
const FEATURES_WITHOUT_A_VERB: &[&str] = &["TVFS", "UTF8"];

impl Session {
    /// Handles one command line.
    pub(super) fn handle_line(&mut self, now: Instant, line: &[u8]) {
        self.event(Event::Command(loggable(line)));
        // RFC 959 §4.1.3: RNTO must come right after RNFR; anything else, even a bad line, forgets it.
        let rename_from = self.rename_from.take();
        let command = match Command::parse(line) {
            Ok(command) => command,
            Err(error) => {
                let needs_login = (error.verb())
                    .and_then(|verb| Verb::lookup(verb.as_bytes()))
                    .is_some_and(|verb| !verb.before_login);
                if needs_login && !self.is_logged_in() {
                    self.reply_not_logged_in();
                } else {
                    self.reply(error.reply_code(), format!("{error}."));
                }
                return;
            }
        };
        // An unknown verb is answered 500 before login too: it needs no login to be unknown.
        let needs_login = command.verb_info().is_some_and(|verb| !verb.before_login);
        if self.transfer.is_some() {
            self.command_during_transfer(command);
        } else if needs_login && !self.is_logged_in() {
            self.reply_not_logged_in();
        } else {
            self.dispatch(now, command, rename_from);
        }
    }

    pub(super) fn is_logged_in(&self) -> bool {
        matches!(self.login, Login::LoggedIn { .. })
    }

    fn access(&self) -> Access {
        match self.login {
            Login::LoggedIn { grant, .. } => grant.access,
            _ => Access::ReadOnly,
        }
    }

    /// Whether data connections may go to, or come from, another host than the client (FXP). Never
    /// before login: the grant decides, and there is none yet.
    fn foreign_data_allowed(&self) -> bool {
        match self.login {
            Login::LoggedIn { grant, .. } => grant.foreign_data_address,
            _ => false,
        }
    }

    fn reply_not_logged_in(&mut self) {
        self.reply(ReplyCode::NOT_LOGGED_IN, "Please login with USER and PASS.");
    }

    /// The commands that may run while a transfer is in progress.
    fn command_during_transfer(&mut self, command: Command) {
        match command {
            Command::Abor => {
                self.abort_transfer();
                self.reply(
                    ReplyCode::TRANSFER_ABORTED,
                    "Connection closed; transfer aborted.",
                );
                self.reply(ReplyCode::CLOSING_DATA, "Abort successful.");
            }
            Command::Stat(None) => {
                let (verb, path, bytes) = match &self.transfer {
                    Some(t) => (t.verb, t.path.to_string_lossy(), t.bytes()),
                    None => return,
                };
                self.reply(
                    ReplyCode::FILE_STATUS,
                    format!("Status: {verb} {path}: {bytes} bytes transferred."),
                );
            }
            // The transfer's own reply goes first; then 221 (see `end_transfer`).
            Command::Quit => self.quit_after_transfer = true,
            // `process_queue` only lets the commands above through during a transfer.
            _ => self.reply(ReplyCode::BAD_SEQUENCE, "A transfer is in progress."),
        }
    }

    fn dispatch(&mut self, now: Instant, command: Command, rename_from: Option<VirtualPath>) {
        use Command::*;
        match command {
            User(name) => self.handle_user(now, name),
            Pass(password) => self.pass(password),
            Acct(_) => self.reply(
                ReplyCode::COMMAND_NOT_IMPLEMENTED_SUPERFLUOUS,
                "ACCT not needed.",
            ),
            Rein => self.reinitialize(now),
            Quit => {
                let goodbye = self.config.goodbye.clone();
                self.reply(ReplyCode::CLOSING_CONTROL, goodbye);
                self.close();
            }
            Pwd => {
                let mut text = reply::quote_pathname(self.cwd.as_bytes());
                text.extend_from_slice(b" is the current directory.");
                self.reply(ReplyCode::PATHNAME_CREATED, text);
            }
            Cwd(path) => self.with_path(&path, |s, path| {
                s.storage(
                    StorageRequest::Stat(path.clone()),
                    Then::ChangeDirectory(path),
                )
            }),
            Cdup => {
                self.cwd = self.cwd.parent().unwrap_or_else(VirtualPath::root);
                self.reply(ReplyCode::FILE_ACTION_OK, "Directory successfully changed.");
            }
            Smnt(_) => self.reply(ReplyCode::NOT_IMPLEMENTED, "SMNT not implemented."),
            Type(t) => self.set_type(t),
            Stru(Structure::File) => self.reply(ReplyCode::COMMAND_OK, "Structure set to F."),
            Stru(_) => self.reply(
                ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                "Only file structure is supported.",
            ),
            Mode(TransferMode::Stream) => self.reply(ReplyCode::COMMAND_OK, "Mode set to S."),
            Mode(_) => self.reply(
                ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                "Only stream mode is supported.",
            ),
            Port(hp) => self.port(SocketAddr::V4(hp.socket_addr()), "PORT"),
            Eprt(addr) => self.port(addr, "EPRT"),
            Pasv => self.passive(false, None),
            Epsv(EpsvArg::All) => {
                self.epsv_all = true;
                self.reply(ReplyCode::COMMAND_OK, "EPSV ALL ok.");
            }
            Epsv(EpsvArg::Any) => self.passive(true, None),
            Epsv(EpsvArg::Protocol(p)) => self.passive(true, Some(p)),
            Rest(offset) => {
                self.restart_offset = offset;
                self.reply(
                    ReplyCode::FILE_ACTION_PENDING,
                    format!("Restarting at {offset}. Send STORE or RETRIEVE."),
                );
            }
            Retr(path) => self.retrieve(&path),
            Stor(path) => self.store(&path, "STOR"),
            Appe(path) => self.store(&path, "APPE"),
            Stou(path) => self.store_unique(path.as_ref()),
            List(args) => self.list(args, "LIST", ListingFormat::Long),
            Nlst(args) => self.list(args, "NLST", ListingFormat::Names),
            Mlsd(path) => {
                let format = ListingFormat::Facts(self.mlst_facts, self.permissions());
                self.list(ListArgs::new(path), "MLSD", format)
            }
            Mlst(path) => {
                let target = match path {
                    Some(p) => self.resolve(&p),
                    None => Some(self.cwd.clone()),
                };
                if let Some(path) = target {
                    self.storage(StorageRequest::Stat(path.clone()), Then::ReportFacts(path));
                }
            }
            Stat(None) => self.status(),
            Stat(Some(args)) => {
                let target = match args.path() {
                    Some(p) => self.resolve(p),
                    None => Some(self.cwd.clone()),
                };
                if let Some(path) = target {
                    let request = StorageRequest::List {
                        path: path.clone(),
                        limit: self.stat_listing_limit(),
                    };
                    let then = Then::ReportListing {
                        path,
                        entries: Vec::new(),
                    };
                    self.storage(request, then);
                }
            }
            Size(path) => {
                if matches!(self.transfer_type, TransferType::Ascii(_)) {
                    // Its TYPE A size needs the whole file read; vsftpd and ProFTPD refuse too.
                    self.reply(
                        ReplyCode::FILE_UNAVAILABLE_PERMANENT,
                        "SIZE not allowed in ASCII mode.",
                    );
                } else {
                    self.with_path(&path, |s, path| {
                        s.storage(StorageRequest::Stat(path), Then::ReportSize)
                    });
                }
            }
            Mdtm(path) => self.with_path(&path, |s, path| {
                s.storage(StorageRequest::Stat(path), Then::ReportModified)
            }),
            Dele(path) => self.write_op(&path, |path| {
                let then = Then::Reply(ReplyCode::FILE_ACTION_OK, b"File deleted.".to_vec());
                (StorageRequest::Delete(path), then)
            }),
            Mkd(path) => self.write_op(&path, |path| {
                let mut text = reply::quote_pathname(path.as_bytes());
                text.extend_from_slice(b" created.");
                let then = Then::Reply(ReplyCode::PATHNAME_CREATED, text);
                (StorageRequest::MakeDirectory(path), then)
            }),
            Rmd(path) => self.write_op(&path, |path| {
                let then = Then::Reply(ReplyCode::FILE_ACTION_OK, b"Directory removed.".to_vec());
                (StorageRequest::RemoveDirectory(path), then)
            }),
            Rnfr(path) => self.write_op(&path, |path| {
                (
                    StorageRequest::Stat(path.clone()),
                    Then::RememberRenameSource(path),
                )
            }),
            Rnto(to) => match rename_from {
                None => self.reply(ReplyCode::BAD_SEQUENCE, "RNFR required first."),
                Some(from) => self.write_op(&to, |to| {
                    let then =
                        Then::Reply(ReplyCode::FILE_ACTION_OK, b"Rename successful.".to_vec());
                    (StorageRequest::Rename { from, to }, then)
                }),
            },
            Mfmt { time, path } => self.write_op(&path, |path| {
                let mut text = format!("Modify={}; ", time.to_ftp_string()).into_bytes();
                text.extend_from_slice(path.as_bytes());
                let then = Then::Reply(ReplyCode::FILE_STATUS, text);
                (StorageRequest::SetModified { path, time }, then)
            }),
            Allo { .. } => self.reply(
                ReplyCode::COMMAND_NOT_IMPLEMENTED_SUPERFLUOUS,
                "No storage allocation necessary.",
            ),
            Abor => self.reply(ReplyCode::CLOSING_DATA, "No transfer to abort."),
            Syst => {
                let system = self.config.system_type.clone();
                self.reply(ReplyCode::SYSTEM_TYPE, system);
            }
            Noop => self.reply(ReplyCode::COMMAND_OK, "NOOP ok."),
            Help(topic) => self.help(topic.as_ref().map(|t| t.as_bytes())),
            Feat => self.features(),
            Opts(arg) => self.options(arg),
            Site(_) => self.reply(ReplyCode::SYNTAX_ERROR, "Unknown SITE command."),
            Host(_) => {
                if matches!(self.login, Login::AwaitingUser) {
                    self.reply(ReplyCode::SERVICE_READY, "Host accepted.");
                } else {
                    // RFC 7151 §3: HOST must come before USER.
                    self.reply(ReplyCode::BAD_SEQUENCE, "HOST must come before USER.");
                }
            }
            Lang(tag) => match tag {
                Some(t) if !t.as_bytes().to_ascii_uppercase().starts_with(b"EN") => self.reply(
                    ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                    "Only English is available.",
                ),
                _ => self.reply(
                    ReplyCode::COMMAND_OK,
                    "Using the default language, English.",
                ),
            },
            Auth(_) | Adat(_) | Ccc | Mic(_) | Conf(_) | Enc(_) => self.reply(
                ReplyCode::NOT_IMPLEMENTED,
                "Security extensions are not implemented.",
            ),
            Pbsz(_) => self.reply(ReplyCode::BAD_SEQUENCE, "PBSZ requires AUTH first."),
            Prot(_) if !self.pbsz_seen => {
                self.reply(ReplyCode::BAD_SEQUENCE, "PROT requires PBSZ first.")
            }
            Prot(_) => self.reply(ReplyCode::NOT_IMPLEMENTED, "PROT not implemented."),
            Unknown { .. } => self.reply(ReplyCode::SYNTAX_ERROR, "Unknown command."),
        }
    }

    // ---- login ----

    fn handle_user(&mut self, now: Instant, name: Text) {
        let anonymous = is_anonymous_name(name.as_bytes());
        // USER logs the current user out (even when the new name is refused).
        self.logging_out(now);
        if anonymous && self.config.anonymous == AnonymousPolicy::Disabled {
            self.login = Login::AwaitingUser;
            self.reply(ReplyCode::NOT_LOGGED_IN, "Anonymous access is not allowed.");
            return;
        }
        // RFC 959 §4.1.1: USER may be sent at any time to change users. It logs the old one out, but "all
        // transfer parameters are unchanged" (TYPE, the data channel, ...).
        self.forget_login();
        // The name is passed on as the bytes the client sent: two names that differ only in invalid
        // UTF-8 must not authenticate as the same user.
        self.login = Login::AwaitingPassword {
            user: name,
            anonymous,
        };
        let text = if anonymous {
            "Anonymous login ok, send your email address as password."
        } else {
            "Please specify the password."
        };
        self.reply(ReplyCode::NEED_PASSWORD, text);
    }

    fn pass(&mut self, password: Option<crate::command::Password>) {
        let (user, anonymous) = match &self.login {
            Login::AwaitingPassword { user, anonymous } => (user.clone(), *anonymous),
            Login::LoggedIn { .. } => {
                self.reply(ReplyCode::BAD_SEQUENCE, "Already logged in.");
                return;
            }
            Login::AwaitingUser => {
                self.reply(ReplyCode::BAD_SEQUENCE, "Login with USER first.");
                return;
            }
        };
        if anonymous {
            let access = match self.config.anonymous {
                AnonymousPolicy::ReadWrite => Access::ReadWrite,
                AnonymousPolicy::UploadOnly => Access::UploadOnly,
                _ => Access::ReadOnly,
            };
            // Never foreign data addresses: an anonymous FXP right would make the server a bounce
            // relay for anyone (RFC 2577 §3), whatever `allow_foreign_data_address` says.
            self.logged_in(&user, Grant::new(access));
            return;
        }
        let id = self.next_id();
        self.actions.push_back(Action::Authenticate {
            id,
            user: user.clone(),
            password,
        });
        self.pending = Some(Pending::Login { id, user });
    }

    fn logged_in(&mut self, user: &Text, grant: Grant) {
        let user = user.to_string_lossy().into_owned();
        self.login_failures = 0;
        self.event(Event::LoggedIn {
            user: user.clone(),
            access: grant.access,
        });
        self.login = Login::LoggedIn { user, grant };
        self.reply(ReplyCode::LOGGED_IN, "Login successful.");
    }

    fn login_failed(&mut self, now: Instant, user: &Text) {
        let user = user.to_string_lossy().into_owned();
        self.event(Event::LoginFailed { user });
        self.login = Login::AwaitingUser;
        self.login_failures += 1;
        let close = self.login_failures >= self.config.max_login_failures;
        // The 530 waits out the delay in `handle_timeout`; input queues meanwhile.
        self.pending = Some(Pending::LoginDelay {
            until: now.checked_add(self.config.failed_login_delay),
            close,
        });
        self.handle_timeout(now);
    }

    /// `REIN` (RFC 959 §4.1.1): "all parameters are reset to the default settings", as if the client
    /// had just connected.
    fn reinitialize(&mut self, now: Instant) {
        self.logging_out(now);
        self.login = Login::AwaitingUser;
        self.forget_login();
        self.transfer_type = TransferType::DEFAULT;
        self.mlst_facts = FactSet::default();
        self.pbsz_seen = false;
        self.epsv_all = false;
        self.close_listener();
        self.data = DataChannel::None;
        let greeting = self.config.greeting.clone();
        self.reply(ReplyCode::SERVICE_READY, greeting);
    }

    /// Forgets what belongs to the logged-in user: where they were and what they were about to do.
    fn forget_login(&mut self) {
        self.cwd = VirtualPath::root();
        self.restart_offset = 0;
        self.rename_from = None;
        // A PORT to another host was checked against the old user's grant; the next user must not
        // inherit it (an anonymous login after an FXP user's PORT would otherwise bounce).
        if matches!(self.data, DataChannel::Active(addr) if !self.info.is_peer(addr.ip())) {
            self.data = DataChannel::None;
        }
    }

    /// Called before `USER` and `REIN` change the login: if someone was logged in, they are logged out and
    /// the login deadline starts again from now. A session that was not logged in keeps its deadline, or
    /// repeating `REIN` or `USER` would postpone it for ever.
    fn logging_out(&mut self, now: Instant) {
        if self.is_logged_in() {
            self.login_deadline = now.checked_add(self.config.login_timeout);
        }
    }

    // ---- transfer parameters ----

    fn set_type(&mut self, t: TransferType) {
        let (normalised, text) = match t {
            TransferType::Ascii(FormatControl::NonPrint) => (t, "Switching to ASCII mode."),
            TransferType::Image | TransferType::Local(8) => {
                (TransferType::Image, "Switching to Binary mode.")
            }
            _ => {
                self.reply(
                    ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                    "Only TYPE A, I and L 8 are supported.",
                );
                return;
            }
        };
        self.transfer_type = normalised;
        self.reply(ReplyCode::COMMAND_OK, text);
    }

    /// `PORT` and `EPRT`: check the address (RFC 2577 bounce protection) and remember it.
    fn port(&mut self, addr: SocketAddr, verb: &str) {
        if self.epsv_all {
            self.reply(
                ReplyCode::BAD_SEQUENCE,
                format!("{verb} not allowed after EPSV ALL."),
            );
            return;
        }
        let peer_ip = self.info.peer.ip().to_canonical();
        let family_matches =
            NetworkProtocol::of(&addr) == NetworkProtocol::of(&SocketAddr::new(peer_ip, 0));
        if !family_matches {
            let code = if verb == "EPRT" {
                ReplyCode::EXTENDED_PORT_FAILURE
            } else {
                ReplyCode::SYNTAX_ERROR_ARGUMENTS
            };
            self.reply(
                code,
                "Network protocol not supported, use EPRT with the control connection's.",
            );
            return;
        }
        if !self.foreign_data_allowed() && !self.info.is_peer(addr.ip()) {
            self.reply(
                ReplyCode::SYNTAX_ERROR_ARGUMENTS,
                format!("Illegal {verb} command: the address is not yours."),
            );
            return;
        }
        if !self.config.allow_privileged_data_port && addr.port() < 1024 {
            self.reply(
                ReplyCode::SYNTAX_ERROR_ARGUMENTS,
                format!("Illegal {verb} command: privileged port."),
            );
            return;
        }
        self.close_listener();
        self.data = DataChannel::Active(addr);
        self.reply(ReplyCode::COMMAND_OK, format!("{verb} command successful."));
    }

    /// `PASV` and `EPSV`: ask the driver for a listener.
    fn passive(&mut self, extended: bool, protocol: Option<NetworkProtocol>) {
        let local_protocol =
            NetworkProtocol::of(&SocketAddr::new(self.info.local.ip().to_canonical(), 0));
        if !extended && self.epsv_all {
            self.reply(ReplyCode::BAD_SEQUENCE, "PASV not allowed after EPSV ALL.");
            return;
        }
        if !extended && local_protocol != NetworkProtocol::V4 {
            self.reply(
                ReplyCode::SYNTAX_ERROR_ARGUMENTS,
                "PASV is IPv4 only; use EPSV.",
            );
            return;
        }
        if protocol.is_some_and(|p| p != local_protocol) {
            let text = format!(
                "Network protocol not supported, use ({}).",
                local_protocol.number()
            );
            self.reply(ReplyCode::EXTENDED_PORT_FAILURE, text);
            return;
        }
        // The new listener replaces the old one, which no transfer used.
        self.close_listener();
        let id = self.next_id();
        // PASV can describe only an IPv4 address (and is refused above on an IPv6 connection).
        let family = if extended {
            local_protocol
        } else {
            NetworkProtocol::V4
        };
        self.actions
            .push_back(Action::Data(DataAction::Listen { id, family }));
        self.pending = Some(Pending::Listen { id, extended });
    }

    // ---- transfers ----

    fn retrieve(&mut self, path: &Pathname) {
        let Some(path) = self.resolve(path) else {
            return;
        };
        let offset = std::mem::take(&mut self.restart_offset);
        let transcoder = match self.transfer_type {
            TransferType::Ascii(_) => Transcoder::ToNetwork(LfToCrLf::new()),
            _ => Transcoder::Identity,
        };
        let request = StorageRequest::OpenRead {
            path: path.clone(),
            offset,
        };
        self.start_transfer("RETR", path, Direction::Download, transcoder, request);
    }

    fn store(&mut self, path: &Pathname, verb: &'static str) {
        let offset = std::mem::take(&mut self.restart_offset);
        let access = self.access();
        // Only a plain STOR creates without touching what exists; APPE and a resumed STOR change a file.
        let creates = verb == "STOR" && offset == 0;
        if !self.require(access.can_write() || (creates && access.can_create_files())) {
            return;
        }
        let Some(path) = self.resolve(path) else {
            return;
        };
        let mode = match (verb, offset) {
            ("APPE", 0) => WriteMode::Append,
            ("APPE", _) => {
                self.reply(
                    ReplyCode::FILE_UNAVAILABLE_PERMANENT,
                    "REST not allowed with APPE.",
                );
                return;
            }
            // The driver refuses to replace an existing file (550 File exists).
            (_, 0) if !access.can_write() => WriteMode::CreateNew,
            (_, 0) => WriteMode::Truncate,
            (_, offset) => WriteMode::Resume(offset),
        };
        self.start_upload(verb, path, mode);
    }

    fn store_unique(&mut self, hint: Option<&Pathname>) {
        self.restart_offset = 0;
        if !self.require(self.access().can_create_files()) {
            return;
        }
        let path = match hint {
            Some(hint) => self.resolve(hint),
            None => self.cwd.join(b"ftp.upload").ok(),
        };
        let Some(path) = path else { return };
        self.start_upload("STOU", path, WriteMode::Unique);
    }

    fn start_upload(&mut self, verb: &'static str, path: VirtualPath, mode: WriteMode) {
        let transcoder = match self.transfer_type {
            TransferType::Ascii(_) => Transcoder::FromNetwork(CrLfToLf::new()),
            _ => Transcoder::Identity,
        };
        let request = StorageRequest::OpenWrite {
            path: path.clone(),
            mode,
        };
        self.start_transfer(verb, path, Direction::Upload, transcoder, request);
    }

    fn list(&mut self, args: ListArgs, verb: &'static str, format: ListingFormat) {
        self.restart_offset = 0;
        let path = match args.path() {
            Some(p) => self.resolve(p),
            None => Some(self.cwd.clone()),
        };
        let Some(path) = path else { return };
        let request = StorageRequest::List {
            path: path.clone(),
            limit: self.config.max_listing_entries,
        };
        let name_prefix = match format {
            ListingFormat::Names => args.path().map(|p| p.as_bytes().to_vec()),
            _ => None,
        };
        let limit = self.config.max_listing_entries;
        let direction = Direction::Listing(ListingSource::new(format, name_prefix, limit));
        self.start_transfer(verb, path, direction, Transcoder::Identity, request);
    }

    /// Opens the storage side first (so a missing file gets 550 without touching the data connection),
    /// then the data connection, then moves bytes.
    fn start_transfer(
        &mut self,
        verb: &'static str,
        path: VirtualPath,
        direction: Direction,
        transcoder: Transcoder,
        request: StorageRequest,
    ) {
        if self.data == DataChannel::None {
            self.reply(
                ReplyCode::CANT_OPEN_DATA,
                "Use PORT, PASV, EPRT or EPSV first.",
            );
            return;
        }
        let id = self.next_id();
        self.transfer = Some(Transfer::new(id, verb, path, direction, transcoder));
        self.actions.push_back(Action::Storage { id, request });
    }

    pub(super) fn transfer_completion(&mut self, now: Instant, completion: Completion) {
        let Some(phase) = self.transfer.as_ref().map(|t| t.phase) else {
            return;
        };
        match (phase, completion) {
            (Phase::Opening, Completion::FileOpened { size, path }) => {
                if let Some(t) = self.transfer.as_mut() {
                    t.size = size;
                    t.path = path;
                    t.file_open = true;
                }
                self.connect_data(now);
            }
            (
                Phase::Opening | Phase::Running,
                Completion::Entries {
                    entries,
                    directory,
                    now: wall_clock,
                },
            ) => self.listing_part(now, entries, directory, wall_clock, false),
            (
                Phase::Opening | Phase::Running,
                Completion::EntriesPart {
                    entries,
                    now: wall_clock,
                },
            ) => self.listing_part(now, entries, true, wall_clock, true),
            (Phase::Connecting, Completion::Data(DataCompletion::Connected { peer })) => {
                self.data_connected(now, peer)
            }
            (Phase::Opening | Phase::Connecting, Completion::Data(DataCompletion::Failed(_)))
            | (Phase::Connecting, Completion::Failed(_)) => self.fail_transfer(
                ReplyCode::CANT_OPEN_DATA,
                "Failed to establish data connection.",
            ),
            (Phase::Running, Completion::Data(DataCompletion::Written)) => {
                let step = self.transfer.as_mut().map(|t| t.on_written());
                self.after_step(now, step);
            }
            (Phase::Running, Completion::Data(DataCompletion::EndOfData)) => {
                let step = self
                    .transfer
                    .as_mut()
                    .map(|t| t.on_end_of_source(&mut self.actions));
                self.after_step(now, step);
            }
            // The upload's file is stored (the answer to its `LocalAction::Close`).
            (Phase::Closing, Completion::Data(DataCompletion::Written)) => {
                self.reply(ReplyCode::CLOSING_DATA, "Transfer complete.");
                self.end_transfer(true);
            }
            (Phase::Running | Phase::Closing, Completion::Data(DataCompletion::Failed(_))) => self
                .fail_transfer(
                    ReplyCode::TRANSFER_ABORTED,
                    "Connection closed; transfer aborted.",
                ),
            (_, Completion::Failed(error)) => {
                let (code, text) = storage_error_reply(&error);
                self.fail_transfer(code, &text);
            }
            (_, _) => self.fail_transfer(ReplyCode::LOCAL_ERROR, "Local error in processing."),
        }
    }

    /// A listing's entries, all of them or a part (`more`: others follow). The first answer opens the
    /// data connection; a later one, asked for with `ReadEntries`, refills the window.
    fn listing_part(
        &mut self,
        now: Instant,
        entries: Vec<DirEntry>,
        directory: bool,
        wall_clock: Timestamp,
        more: bool,
    ) {
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        let (id, phase) = (transfer.id, transfer.phase);
        let Some(source) = transfer.listing_mut() else {
            // Entries for a file transfer, or a part nobody asked for: the driver's mistake.
            return self.fail_transfer(ReplyCode::LOCAL_ERROR, "Local error in processing.");
        };
        if phase == Phase::Running && !source.is_asked() {
            return self.fail_transfer(ReplyCode::LOCAL_ERROR, "Local error in processing.");
        }
        let cut = source.fill(entries, directory, wall_clock, more);
        transfer.file_open = source.has_more();
        if cut {
            // The listing bound is reached: the driver may let go of the directory now.
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted: true }));
        }
        if phase == Phase::Opening {
            return self.connect_data(now);
        }
        let window = self.config.transfer_window;
        transfer.pump(window, &mut self.actions);
        let step = transfer.step();
        self.after_step(now, Some(step));
    }

    fn connect_data(&mut self, now: Instant) {
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        transfer.phase = Phase::Connecting;
        transfer.deadline = now.checked_add(self.config.data_timeout);
        let id = transfer.id;
        let action = match std::mem::replace(&mut self.data, DataChannel::None) {
            DataChannel::Active(addr) => DataAction::Connect { id, addr },
            DataChannel::Passive(listener) => {
                // The listener is the transfer's now: it is closed with the transfer.
                transfer.listener = Some(listener);
                DataAction::Accept { id, listener }
            }
            // `start_transfer` checked for a channel, and nothing forgets it during a transfer.
            DataChannel::None => {
                return self.fail_transfer(
                    ReplyCode::CANT_OPEN_DATA,
                    "Failed to establish data connection.",
                );
            }
        };
        self.actions.push_back(Action::Data(action));
    }

    fn data_connected(&mut self, now: Instant, peer: SocketAddr) {
        if !self.foreign_data_allowed() && !self.info.is_peer(peer.ip()) {
            // RFC 2577 §5: someone else connected to our listener first ("PASV port theft").
            self.fail_transfer(
                ReplyCode::CANT_OPEN_DATA,
                "Data connection from a foreign address refused.",
            );
            return;
        }
        let binary = !matches!(self.transfer_type, TransferType::Ascii(_));
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        transfer.phase = Phase::Running;
        transfer.deadline = now.checked_add(self.config.data_timeout);
        let text = match (&transfer.direction, transfer.verb) {
            (Direction::Listing(_), _) => "Here comes the directory listing.".to_owned(),
            (_, "STOU") => format!(
                "FILE: {}",
                String::from_utf8_lossy(transfer.path.file_name().unwrap_or_default())
            ),
            _ => {
                let mode = if binary { "BINARY" } else { "ASCII" };
                let size = transfer
                    .size
                    .map(|s| format!(" ({s} bytes)"))
                    .unwrap_or_default();
                format!(
                    "Opening {mode} mode data connection for {}{size}.",
                    transfer.path.to_string_lossy()
                )
            }
        };
        self.reply(ReplyCode::FILE_STATUS_OK, text);
        let window = self.config.transfer_window;
        let step = self.transfer.as_mut().map(|t| {
            t.pump(window, &mut self.actions);
            t.step()
        });
        self.after_step(now, step);
    }

    fn after_step(&mut self, now: Instant, step: Option<Step>) {
        match step {
            Some(Step::Finished) => self.finish_transfer(),
            Some(Step::Continue) => {
                let window = self.config.transfer_window;
                if let Some(t) = self.transfer.as_mut() {
                    t.deadline = now.checked_add(self.config.data_timeout);
                    t.pump(window, &mut self.actions);
                }
            }
            None => {}
        }
    }

    /// Every byte is through: close what is open and send 226 (an upload first waits for the driver to
    /// confirm the file is stored).
    fn finish_transfer(&mut self) {
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        let id = transfer.id;
        let aborted = false;
        self.actions
            .push_back(Action::Data(DataAction::Close { id, aborted }));
        if let Some(listener) = transfer.listener {
            self.actions.push_back(Action::Data(DataAction::Close {
                id: listener,
                aborted,
            }));
        }
        if transfer.is_upload() {
            transfer.phase = Phase::Closing;
            transfer.deadline = None;
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted }));
            return;
        }
        let listing = transfer.listing_mut().is_some();
        if transfer.file_open {
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted }));
        }
        let text = if listing {
            "Directory send OK."
        } else {
            "Transfer complete."
        };
        self.reply(ReplyCode::CLOSING_DATA, text);
        self.end_transfer(true);
    }

    /// Cuts the transfer short with `code text`.
    fn fail_transfer(&mut self, code: ReplyCode, text: &str) {
        self.abort_transfer();
        self.reply(code, text);
        self.after_transfer();
    }

    pub(super) fn transfer_timed_out(&mut self) {
        let connecting = self
            .transfer
            .as_ref()
            .is_some_and(|t| t.phase == Phase::Connecting);
        if connecting {
            self.fail_transfer(
                ReplyCode::CANT_OPEN_DATA,
                "Failed to establish data connection.",
            );
        } else {
            self.fail_transfer(
                ReplyCode::TRANSFER_ABORTED,
                "Data connection timed out; transfer aborted.",
            );
        }
    }

    /// Drops the transfer and tells the driver to close what it had open.
    pub(super) fn abort_transfer(&mut self) {
        let Some(transfer) = self.transfer.take() else {
            return;
        };
        let id = transfer.id;
        let aborted = true;
        self.actions
            .push_back(Action::Data(DataAction::Close { id, aborted }));
        // The transfer's listener, or the one it had not used yet (its file was still opening): the
        // channel was for this transfer, so it goes too.
        if let Some(listener) = transfer.listener {
            self.actions.push_back(Action::Data(DataAction::Close {
                id: listener,
                aborted,
            }));
        }
        self.close_listener();
        self.data = DataChannel::None;
        if transfer.file_open {
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted }));
        }
        self.event(Event::TransferEnded {
            id,
            verb: transfer.verb,
            bytes: transfer.bytes(),
            path: transfer.path,
            completed: false,
        });
    }

    fn end_transfer(&mut self, completed: bool) {
        if let Some(transfer) = self.transfer.take() {
            self.event(Event::TransferEnded {
                id: transfer.id,
                verb: transfer.verb,
                bytes: transfer.bytes(),
                path: transfer.path,
                completed,
            });
        }
        self.after_transfer();
    }

    /// A `QUIT` that arrived during the transfer is answered now, after the transfer's own reply.
    fn after_transfer(&mut self) {
        if std::mem::take(&mut self.quit_after_transfer) {
            let goodbye = self.config.goodbye.clone();
            self.reply(ReplyCode::CLOSING_CONTROL, goodbye);
            self.close();
        }
    }

    // ---- answers to single requests ----

    pub(super) fn pending_completion(
        &mut self,
        now: Instant,
        pending: Pending,
        completion: Completion,
    ) {
        match pending {
            Pending::Login { user, .. } => match completion {
                Completion::LoggedIn(access) => {
                    let fxp = self.config.allow_foreign_data_address;
                    self.logged_in(&user, Grant::new(access).with_foreign_data_address(fxp))
                }
                Completion::Granted(grant) => self.logged_in(&user, grant),
                _ => self.login_failed(now, &user),
            },
            Pending::Listen { id, extended } => self.listening(id, extended, completion),
            Pending::Storage { id, then } => match (then, completion) {
                (
                    Then::ReportListing { path, entries },
                    Completion::EntriesPart { entries: part, now },
                ) => self.stat_listing_part(id, path, entries, part, now),
                (then, completion) => self.storage_answer(then, completion),
            },
            Pending::LoginDelay { .. } => {}
        }
    }

    fn listening(&mut self, id: RequestId, extended: bool, completion: Completion) {
        let addr = match completion {
            Completion::Data(DataCompletion::Listening(addr)) => addr,
            _ => {
                self.reply(ReplyCode::CANT_OPEN_DATA, "Can't open passive connection.");
                return;
            }
        };
        // A dual-stack driver reports an IPv4 listener as ::ffff:a.b.c.d; PASV can still describe it.
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let text = match (extended, addr) {
            (true, addr) => hostport::epsv_reply_text(addr.port()),
            (false, SocketAddr::V4(v4)) => HostPort::from(v4).pasv_reply_text(),
            (false, SocketAddr::V6(_)) => {
                // A listener PASV cannot describe is of no use: let it go.
                self.actions
                    .push_back(Action::Data(DataAction::Close { id, aborted: true }));
                self.reply(ReplyCode::CANT_OPEN_DATA, "Can't open passive connection.");
                return;
            }
        };
        self.data = DataChannel::Passive(id);
        let code = if extended {
            ReplyCode::ENTERING_EXTENDED_PASSIVE
        } else {
            ReplyCode::ENTERING_PASSIVE
        };
        self.reply(code, text);
    }

    fn storage_answer(&mut self, then: Then, completion: Completion) {
        if let Completion::Failed(error) = &completion {
            let (code, text) = storage_error_reply(error);
            let text = match then {
                Then::ChangeDirectory(_) => "Failed to change directory.".to_owned(),
                _ => text,
            };
            self.reply(code, text);
            return;
        }
        match (then, completion) {
            (Then::ChangeDirectory(path), Completion::Metadata(m)) => {
                if m.kind == EntryKind::Directory {
                    self.cwd = path;
                    self.reply(ReplyCode::FILE_ACTION_OK, "Directory successfully changed.");
                } else {
                    self.reply(
                        ReplyCode::FILE_UNAVAILABLE_PERMANENT,
                        "Failed to change directory.",
                    );
                }
            }
            (Then::ReportSize, Completion::Metadata(m)) if m.kind == EntryKind::File => {
                self.reply(ReplyCode::FILE_STATUS, m.size.to_string())
            }
            (Then::ReportSize, Completion::Metadata(_)) => {
                self.reply(ReplyCode::FILE_UNAVAILABLE_PERMANENT, "Not a plain file.")
            }
            (Then::ReportModified, Completion::Metadata(m)) => match m.modified {
                Some(time) => self.reply(ReplyCode::FILE_STATUS, time.to_ftp_string()),
                None => self.reply(
                    ReplyCode::FILE_UNAVAILABLE_PERMANENT,
                    "Modification time unknown.",
                ),
            },
            (Then::RememberRenameSource(path), Completion::Metadata(_)) => {
                self.rename_from = Some(path);
                self.reply(ReplyCode::FILE_ACTION_PENDING, "Ready for RNTO.");
            }
            (Then::ReportFacts(path), Completion::Metadata(metadata)) => {
                self.report_facts(path, metadata)
            }
            (
                Then::ReportListing {
                    path,
                    entries: mut earlier,
                },
                Completion::Entries { entries, now, .. },
            ) => {
                self.append_bounded(&mut earlier, entries);
                self.report_listing(&path, earlier, now);
            }
            (Then::Reply(code, text), Completion::Done) => self.reply(code, text),
            _ => self.reply(ReplyCode::LOCAL_ERROR, "Local error in processing."),
        }
    }

    /// One more part of a `STAT path` listing: ask for the next, or reply if the bound is reached.
    fn stat_listing_part(
        &mut self,
        id: RequestId,
        path: VirtualPath,
        mut entries: Vec<DirEntry>,
        part: Vec<DirEntry>,
        now: Timestamp,
    ) {
        self.append_bounded(&mut entries, part);
        if entries.len() >= self.stat_listing_limit() {
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted: true }));
            return self.report_listing(&path, entries, now);
        }
        self.actions.push_back(Action::ReadEntries { id });
        let then = Then::ReportListing { path, entries };
        self.pending = Some(Pending::Storage { id, then });
    }

    /// The reply of `STAT path`: its entries as `ls -l` lines, sorted by name.
    fn report_listing(&mut self, path: &VirtualPath, mut entries: Vec<DirEntry>, now: Timestamp) {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut body = Vec::new();
        for entry in &entries {
            listing::format_list_line(entry, now, &mut body);
        }
        let mut lines = vec![format!("Status of {}:", path.to_string_lossy()).into_bytes()];
        lines.extend(listing::body_lines(&body).map(<[u8]>::to_vec));
        lines.push(b"End of status.".to_vec());
        self.send(&Reply::multiline(ReplyCode::FILE_STATUS, lines));
    }

    /// Appends a part of a `STAT path` listing, up to the entries it shows at most.
    fn append_bounded(&self, entries: &mut Vec<DirEntry>, part: Vec<DirEntry>) {
        let room = self.stat_listing_limit().saturating_sub(entries.len());
        entries.extend(part.into_iter().take(room));
    }

    /// Entries `STAT path` shows at most.
    fn stat_listing_limit(&self) -> usize {
        self.config.max_listing_entries.min(STAT_LISTING_LIMIT)
    }

    /// `MLST`: RFC 3659 §7.2, one fact line (starting with a space) between `250-` and `250 End`.
    fn report_facts(&mut self, path: VirtualPath, metadata: crate::listing::Metadata) {
        let entry = DirEntry {
            name: path.as_bytes().to_vec(),
            metadata,
        };
        let mut line = vec![b' '];
        listing::format_mlsx_line(&entry, self.mlst_facts, self.permissions(), None, &mut line);
        while matches!(line.last(), Some(b'\r' | b'\n')) {
            line.pop();
        }
        let first = format!("Listing {}", path.to_string_lossy()).into_bytes();
        self.send(&Reply::multiline(
            ReplyCode::FILE_ACTION_OK,
            [first, line, b"End".to_vec()],
        ));
    }

    // ---- informational commands ----

    fn status(&mut self) {
        let user = self.user().unwrap_or("(not logged in)").to_owned();
        let mode = match self.transfer_type {
            TransferType::Ascii(_) => "ASCII",
            _ => "BINARY",
        };
        let lines = [
            "FTP server status:".to_owned(),
            format!("Connected to {}", self.info.peer),
            format!("Logged in as {user}"),
            format!("TYPE: {mode}, STRUcture: File, MODE: Stream"),
            format!(
                "Session timeout in seconds is {}",
                self.config.idle_timeout.as_secs()
            ),
            "End of status".to_owned(),
        ];
        self.send(&Reply::multiline(ReplyCode::SYSTEM_STATUS, lines));
    }

    fn help(&mut self, topic: Option<&[u8]>) {
        if let Some(topic) = topic {
            if let Some(verb) = Verb::lookup(topic) {
                self.reply(ReplyCode::HELP, format!("Syntax: {}", verb.syntax));
            } else {
                self.reply(ReplyCode::SYNTAX_ERROR_ARGUMENTS, "Unknown command.");
            }
            return;
        }
        let verbs: Vec<&str> = crate::command::known_verbs().collect();
        let mut lines = vec!["The following commands are recognized.".to_owned()];
        lines.extend(verbs.chunks(8).map(|row| format!(" {}", row.join(" "))));
        lines.push("Help OK.".to_owned());
        self.send(&Reply::multiline(ReplyCode::HELP, lines));
    }

    fn features(&mut self) {
        let verb_features = crate::command::VERBS.iter().filter_map(|verb| verb.feat);
        let mlst = self.mlst_facts.feat_line();
        let lines = verb_features
            .chain(FEATURES_WITHOUT_A_VERB.iter().copied())
            .chain(std::iter::once(mlst.as_str()));
        let reply = FeatureSet::from_lines(lines).to_reply();
        self.send(&reply);
    }

    fn options(&mut self, arg: OptsArg) {
        match arg {
            OptsArg::Utf8(true) => self.reply(ReplyCode::COMMAND_OK, "Always in UTF8 mode."),
            OptsArg::Utf8(false) => self.reply(
                ReplyCode::COMMAND_OK,
                "Pathnames pass as bytes; no conversion is made.",
            ),
            OptsArg::Mlst(facts) => {
                self.mlst_facts = FactSet::parse_opts(&facts);
                let text = self.mlst_facts.opts_reply_text();
                self.reply(ReplyCode::COMMAND_OK, text);
            }
            _ => self.reply(ReplyCode::SYNTAX_ERROR_ARGUMENTS, "Option not understood."),
        }
    }

    // ---- helpers ----

    fn permissions(&self) -> Permissions {
        Permissions {
            read: true,
            write: self.access().can_write(),
        }
    }

    /// Resolves a client path against the working directory, answering 550 if it cannot be.
    fn resolve(&mut self, path: &Pathname) -> Option<VirtualPath> {
        match self.cwd.resolve(path.as_bytes(), self.config.path_limits) {
            Ok(path) => Some(path),
            Err(error) => {
                self.reply(
                    ReplyCode::FILE_UNAVAILABLE_PERMANENT,
                    format!("Invalid pathname: {error}."),
                );
                None
            }
        }
    }

    fn with_path(&mut self, path: &Pathname, then: impl FnOnce(&mut Self, VirtualPath)) {
        if let Some(path) = self.resolve(path) {
            then(self, path);
        }
    }

    fn require_write(&mut self) -> bool {
        self.require(self.access().can_write())
    }

    /// Answers 550 unless `allowed`; returns `allowed`.
    fn require(&mut self, allowed: bool) -> bool {
        if !allowed {
            self.reply(ReplyCode::FILE_UNAVAILABLE_PERMANENT, "Permission denied.");
        }
        allowed
    }

    /// A command that changes storage: check access, resolve, then ask the driver.
    fn write_op(
        &mut self,
        path: &Pathname,
        make: impl FnOnce(VirtualPath) -> (StorageRequest, Then),
    ) {
        if !self.require_write() {
            return;
        }
        if let Some(path) = self.resolve(path) {
            let (request, then) = make(path);
            self.storage(request, then);
        }
    }

    fn storage(&mut self, request: StorageRequest, then: Then) {
        let id = self.next_id();
        self.actions.push_back(Action::Storage { id, request });
        self.pending = Some(Pending::Storage { id, then });
    }
}
