//! The server side: one sans-IO [`Session`] per control connection.
//!
//! A session owns the protocol and the policy: login rules, the working directory, transfer parameters,
//! which commands are allowed when, every reply code and text. Its driver owns sockets, files and clocks. They
//! talk through four kinds of input and two kinds of output:
//!
//! | input | method |
//! |---|---|
//! | bytes from the control connection | [`Session::handle_control_input`] / [`Session::handle_control_eof`] |
//! | the answer to an [`Action`] | [`Session::handle_completion`] |
//! | a chunk read from the file ([`LocalAction::Read`]) or the data connection ([`DataAction::Receive`]) | [`Session::handle_data`] |
//! | the time reaching [`Session::poll_timeout`] | [`Session::handle_timeout`] |
//!
//! After **every** `handle_*` call the driver drains [`Session::poll_action`] until it returns `None`,
//! carries the actions out in order, then reads [`Session::poll_timeout`] and arranges to call
//! `handle_timeout` then. [`Session::poll_event`] yields log-worthy events and may be drained at leisure.
//!
//! The rest of the driver contract:
//! - **Time** is an input: every `now` comes from the driver's monotonic clock and should not go
//!   backwards. The session never reads a clock. An earlier `now` cannot make it panic; a timer runs from
//!   the `now` it was set at, so a clock that jumps back shifts it by as much.
//! - **A spurious [`Session::handle_timeout`]**, called early or twice, is harmless: each timer checks
//!   its own deadline against `now` (tested with random extra calls, some with past times).
//! - **Re-entrancy**: a `handle_*` call may come in the middle of a [`Session::poll_action`] drain, for
//!   example to answer an action as soon as it is popped. Actions form one FIFO queue, so those already
//!   queued still come out first, in order. The test simulator drives sessions that way.
//! - Nothing is spawned and nothing blocks: every method returns at once.
//! - **Transfers** use the data-channel vocabulary both sessions share ([`crate::data`]):
//!   [`Action::Data`] carries a [`DataAction`] for the data connection and the passive listener,
//!   [`Action::Local`] a [`LocalAction`] for the transfer's open file, and both are answered with
//!   [`Completion::Data`] (`DataCompletion::into()` makes one). `PASV`/`EPSV` send
//!   [`DataAction::Listen`] with the id of that request; a transfer's actions all carry the id of the
//!   [`StorageRequest`] that opened its file or listing, [`DataAction::Accept`] naming the listener
//!   too. Every listener and every data connection is let go with a [`DataAction::Close`] naming it (a
//!   `Close` of an id with nothing open is ignored), so a driver can key its sockets by id. A data
//!   connection that cannot be opened or breaks is
//!   [`DataCompletion::Failed`](crate::data::DataCompletion::Failed) (425 before it was open, 426
//!   during the transfer); a storage failure, the file's included, is [`Completion::Failed`].
//!
//! Logins: anonymous ones (`USER anonymous` or `USER ftp`) follow [`Config::anonymous`] and never leave the
//! session; for any other user the driver checks the password ([`Action::Authenticate`]) and answers
//! [`Completion::LoggedIn`] with an [`Access`], or [`Completion::Granted`] with a [`Grant`] when rights
//! differ per user (server-to-server transfers). A session not logged in within [`Config::login_timeout`]
//! of its start is closed with 421.
//!
//! FTPS (RFC 4217), when [`Config::tls`] offers it: after `AUTH TLS` the session sends `234` and
//! [`Action::SecureControl`]; the driver writes the `234`, runs the TLS handshake on the control
//! connection and answers [`Completion::ControlSecured`] (or closes the connection), and from then on
//! feeds only decrypted bytes. A protected transfer (`PROT P`) marks its `Connect`/`Accept` with a
//! [`TlsRole`](crate::data::TlsRole); once the connection is open the session sends `150` and asks for
//! the handshake with [`DataAction::Secure`](crate::data::DataAction::Secure), answered with
//! [`DataCompletion::Secured`](crate::data::DataCompletion::Secured), whose `resumed` the session
//! checks ([`TlsPolicy::require_session_reuse`]). The driver must let a data connection resume only
//! the TLS sessions of its own control connection. For implicit FTPS, run the handshake first and start
//! the session with [`Session::with_implicit_tls`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use ftp_proto::server::{Action, Config, ConnectionInfo, Session};
//!
//! let info = ConnectionInfo {
//!     local: "127.0.0.1:21".parse().unwrap(),
//!     peer: "127.0.0.1:50000".parse().unwrap(),
//! };
//! let now = Instant::now();
//! let mut session = Session::new(Arc::new(Config::default()), info, now);
//! session.handle_control_input(now, b"USER anonymous\r\nPASS guest@\r\nPWD\r\n");
//!
//! let mut sent = Vec::new();
//! while let Some(action) = session.poll_action() {
//!     if let Action::SendControl(bytes) = action {
//!         sent.extend_from_slice(&bytes);
//!     }
//! }
//! let sent = String::from_utf8(sent).unwrap();
//! assert!(sent.starts_with("220 "));
//! assert!(sent.contains("230 "));
//! assert!(sent.ends_with("257 \"/\" is the current directory.\r\n"));
//! ```
//!
//! [`DataAction`]: crate::data::DataAction
//! [`DataAction::Receive`]: crate::data::DataAction::Receive
//! [`DataAction::Listen`]: crate::data::DataAction::Listen
//! [`DataAction::Accept`]: crate::data::DataAction::Accept
//! [`DataAction::Close`]: crate::data::DataAction::Close

// The session's code by concern; each is an `impl Session` block over the one state below.
// - `io`, `config`: the public vocabulary (actions, completions, events) and the policy.
// - `dispatch`: a command line to its handler (login gate, transfer-time commands, one `match`).
// - `log_line`: how a command line is logged (secrets masked, controls escaped).
// - `login`: USER/PASS/REIN/HOST, anonymous logins, the failed-login delay.
// - `access`: the user's rights and the paths they name.
// - `data_channel`: PORT/EPRT/PASV/EPSV and the passive listener.
// - `transfer_commands`: RETR/STOR/APPE/STOU/LIST/NLST/MLSD, TYPE and REST.
// - `transfer_phases`: a started transfer's answers, its data connection, its end.
// - `transfer`: the transfer value itself (its pump and listing source).
// - `storage`: commands answered by one storage request, and the routing of pending answers.
// - `info`: STAT, MLST, HELP, FEAT, OPTS, LANG.
// - `security`: AUTH/PBSZ/PROT/CCC/SSCN, and the policy that makes TLS a condition (RFC 4217).
// - `timers`: the timer table's kinds of timer and what each does when it fires.
// - `lifecycle`: open, quitting after a transfer, closed.
mod access;
mod answers;
mod config;
mod data_channel;
mod dispatch;
mod info;
mod io;
mod lifecycle;
mod log_line;
mod login;
mod security;
mod storage;
mod timers;
mod transfer;
mod transfer_commands;
mod transfer_phases;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::command::{Text, TransferType};
use crate::data::LocalAction;
use crate::framing::{self, Frame, LineFramer};
use crate::listing::FactSet;
use crate::path::VirtualPath;
use crate::reply::{Reply, ReplyCode};

pub use answers::UnexpectedCompletion;
pub use config::{AnonymousPolicy, Config, TlsPolicy};
pub use io::{
    Access, Action, Completion, Event, Grant, RequestId, StorageError, StorageRequest, WriteMode,
};

use lifecycle::Lifecycle;
use security::Security;
use timers::ServerTimer;
use transfer::Transfer;

use crate::timer::TimerTable;

/// The two ends of the control connection, which the session needs for its address checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The server's end (its address family decides what `EPSV` offers).
    pub local: SocketAddr,
    /// The client's end (data connections must come from, and go to, this IP unless the login's
    /// [`Grant`] allows foreign data addresses).
    pub peer: SocketAddr,
}

impl ConnectionInfo {
    /// Whether `ip` is the peer's address, an IPv4-mapped IPv6 address counting as its IPv4 one: the
    /// check data connections must pass unless FXP is allowed (RFC 2577).
    ///
    /// ```
    /// use ftp_proto::server::ConnectionInfo;
    ///
    /// let info = ConnectionInfo {
    ///     local: "127.0.0.1:21".parse().unwrap(),
    ///     peer: "192.0.2.7:50000".parse().unwrap(),
    /// };
    /// assert!(info.is_peer("192.0.2.7".parse().unwrap()));
    /// assert!(info.is_peer("::ffff:192.0.2.7".parse().unwrap()));
    /// assert!(!info.is_peer("192.0.2.8".parse().unwrap()));
    /// ```
    pub fn is_peer(&self, ip: std::net::IpAddr) -> bool {
        ip.to_canonical() == self.peer.ip().to_canonical()
    }
}

/// A queued item of control input: a command line or a framing error to answer in its turn.
#[derive(Debug)]
enum Input {
    Line(Vec<u8>),
    TooLong,
    BareLf,
}

impl Input {
    /// What the item costs against `max_pending_commands`: its bytes plus a fixed overhead, so a flood of
    /// tiny lines is bounded by its allocations too.
    fn cost(&self) -> usize {
        const OVERHEAD: usize = 32;
        match self {
            Input::Line(line) => line.len() + OVERHEAD,
            _ => OVERHEAD,
        }
    }
}

/// Where the login is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Login {
    /// Waiting for `USER`.
    AwaitingUser,
    /// `USER` given, waiting for `PASS`.
    AwaitingPassword { user: Text, anonymous: bool },
    /// Logged in, with these rights.
    LoggedIn {
        user: String,
        grant: Grant,
        anonymous: bool,
    },
}

/// The transfer channel the client set up with `PORT`/`EPRT` or `PASV`/`EPSV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataChannel {
    /// Nothing yet (or used up by the last transfer).
    None,
    /// Active mode: connect to this address.
    Active(SocketAddr),
    /// Passive mode: the driver's listener, named by the id of its `PASV`/`EPSV`, is bound.
    Passive(RequestId),
}

/// A request whose answer the session is waiting for before it reads the next command.
#[derive(Debug)]
enum Pending {
    /// `PASS`: the driver checks the password.
    Login { id: RequestId, user: Text },
    /// `PASV`/`EPSV`: the driver binds a listener.
    Listen { id: RequestId, extended: bool },
    /// A storage request made for a command; `then` says what to do with the answer.
    Storage { id: RequestId, then: storage::Then },
    /// A failed login's 530 is held back until [`ServerTimer::LoginDelay`] fires; `close`: then 421.
    LoginDelay { close: bool },
    /// `AUTH TLS`: the driver runs the control connection's TLS handshake.
    Handshake { id: RequestId },
}

impl Pending {
    fn id(&self) -> Option<RequestId> {
        match self {
            Pending::Login { id, .. }
            | Pending::Listen { id, .. }
            | Pending::Storage { id, .. }
            | Pending::Handshake { id } => Some(*id),
            Pending::LoginDelay { .. } => None,
        }
    }
}

/// One control connection's protocol state. See the [module documentation](self).
#[derive(Debug)]
pub struct Session {
    config: Arc<Config>,
    info: ConnectionInfo,
    framer: LineFramer,
    /// Complete input waiting for its turn, and its size in bytes (bounded by `max_pending_commands`).
    queue: VecDeque<Input>,
    queued_bytes: usize,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    events_dropped: u64,
    next_id: u64,
    login: Login,
    login_failures: u32,
    cwd: VirtualPath,
    transfer_type: TransferType,
    restart_offset: u64,
    rename_from: Option<VirtualPath>,
    data: DataChannel,
    epsv_all: bool,
    mlst_facts: FactSet,
    /// The control connection's TLS and the data connections' protection.
    security: Security,
    pending: Option<Pending>,
    transfer: Option<Transfer>,
    /// Every deadline: see [`timers`].
    timers: TimerTable<ServerTimer>,
    /// Open, quitting after the transfer, or closed; changed only in [`lifecycle`].
    lifecycle: Lifecycle,
}

impl Session {
    /// Starts a session for a new control connection; the 220 greeting is the first action.
    pub fn new(config: Arc<Config>, info: ConnectionInfo, now: Instant) -> Session {
        let mut session = Session {
            framer: LineFramer::new(config.framer),
            info,
            queue: VecDeque::new(),
            queued_bytes: 0,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            events_dropped: 0,
            next_id: 0,
            login: Login::AwaitingUser,
            login_failures: 0,
            cwd: VirtualPath::root(),
            transfer_type: TransferType::DEFAULT,
            restart_offset: 0,
            rename_from: None,
            data: DataChannel::None,
            epsv_all: false,
            mlst_facts: FactSet::default(),
            security: Security::plain(),
            pending: None,
            transfer: None,
            timers: TimerTable::default(),
            lifecycle: Lifecycle::Open,
            config,
        };
        let config = &session.config;
        let (idle, login) = (config.idle_timeout, config.login_timeout);
        session.timers.start(ServerTimer::Idle, now, idle);
        session.timers.start(ServerTimer::Login, now, login);
        let greeting = session.config.greeting.clone();
        session.reply(ReplyCode::SERVICE_READY, greeting);
        session
    }

    /// Starts a session for a control connection that is TLS from its first byte (implicit FTPS, port
    /// 990 by convention): the driver has run the handshake before creating the session, and feeds it
    /// decrypted bytes. Data connections are protected by default (`PROT P`), as implicit FTPS clients
    /// expect; `AUTH` gets 503.
    pub fn with_implicit_tls(config: Arc<Config>, info: ConnectionInfo, now: Instant) -> Session {
        let mut session = Session::new(config, info, now);
        session.security = Security::implicit();
        session
    }

    /// Feeds bytes read from the control connection. All of them are consumed: complete lines are handled
    /// now or queued until the session is free; a partial line waits in the framer.
    pub fn handle_control_input(&mut self, now: Instant, mut input: &[u8]) {
        if self.is_control_handshaking() {
            // Bytes that reached the session in the middle of the TLS handshake were not decrypted
            // by it: never commands (see `security`).
            return;
        }
        while !input.is_empty() && !self.is_closed() {
            let (consumed, frame) = self.framer.next_frame(input);
            let queued = match frame {
                Some(Frame::Line(line)) => Some(Input::Line(line.to_vec())),
                Some(Frame::TooLong) => Some(Input::TooLong),
                Some(Frame::BareLf) => Some(Input::BareLf),
                Some(Frame::Negotiation { verb, option }) => {
                    // RFC 1123 §4.1.2.12: refuse every Telnet option; it needs no queueing.
                    if let Some(refusal) = framing::refusal(verb, option) {
                        self.actions
                            .push_back(Action::SendControl(Bytes::copy_from_slice(&refusal)));
                    }
                    None
                }
                None => None,
            };
            input = input.get(consumed..).unwrap_or_default();
            if consumed == 0 && queued.is_none() {
                break; // the framer made no progress; never spin
            }
            if let Some(item) = queued {
                self.enqueue(item);
            }
        }
        self.process_queue(now);
    }

    /// The client closed the control connection: abort any transfer and end the session.
    pub fn handle_control_eof(&mut self) {
        // The only `handle_*` without a `now` (kept so for the API): it needs none, as it only ends the
        // session, which stops every timer.
        if self.is_closed() {
            return;
        }
        if self.transfer.is_some() {
            self.abort_transfer();
        }
        self.close();
    }

    /// Feeds the driver's answer to the action with this `id`. Answers to requests the session no
    /// longer waits for (after `ABOR`, `REIN`, a timeout) are ignored.
    ///
    /// # Errors
    ///
    /// [`UnexpectedCompletion`] if `completion` cannot answer what request `id` asked (say `Written`
    /// for an [`Action::Authenticate`]): a bug in the driver. The session ignores that answer and still
    /// waits for one that fits; nothing is sent to the peer, which did not cause it.
    pub fn handle_completion(
        &mut self,
        now: Instant,
        id: RequestId,
        completion: Completion,
    ) -> Result<(), UnexpectedCompletion> {
        if self.is_closed() {
            return Ok(());
        }
        self.check_answer(id, &completion)?;
        // A password check answered after the login deadline comes too late, even if the driver has not
        // called `handle_timeout` yet: it is treated as stale, and the session times out below.
        let overdue = self.login_overdue(now);
        if !overdue && self.transfer.as_ref().is_some_and(|t| t.id == id) {
            self.transfer_completion(now, completion);
        } else if !overdue && self.pending.as_ref().and_then(Pending::id) == Some(id) {
            if let Some(pending) = self.pending.take() {
                self.pending_completion(now, pending, completion);
            }
        } else if matches!(
            completion,
            Completion::FileOpened { .. } | Completion::EntriesPart { .. }
        ) {
            // The transfer was aborted while the driver was opening its file or reading a listing's
            // part: close it, so no driver leaks a handle (the driver never has to cancel anything
            // itself).
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted: true }));
        }
        // Any answer is activity: the idle timer starts again, once the driver owes us nothing.
        self.restart_idle_timer(now);
        if !self.login_expired(now) {
            self.process_queue(now);
        }
        Ok(())
    }

    /// Feeds a chunk read for [`LocalAction::Read`] (from the file) or [`DataAction::Receive`] (from
    /// the data connection). The chunk is passed on to the other side without copying in TYPE I. A
    /// chunk for a transfer that asked for none yet (its data connection is not open, or not secured)
    /// is dropped.
    ///
    /// [`DataAction::Receive`]: crate::data::DataAction::Receive
    pub fn handle_data(&mut self, now: Instant, id: RequestId, chunk: Bytes) {
        if self.is_closed() {
            return;
        }
        let window = self.config.transfer_window;
        // Only a transfer whose bytes flow takes chunks: one handed over while its file opens or its
        // data connection is being opened or secured was never asked for, and passing it on would
        // send it before the data connection's TLS handshake (in plaintext, or into the handshake).
        let flowing = |t: &&mut Transfer| t.id == id && t.phase == transfer::Phase::Running;
        if let Some(transfer) = self.transfer.as_mut().filter(flowing) {
            // Progress: the data timer starts again (the idle timer waits for the transfer's end).
            (self.timers).start(ServerTimer::Data, now, self.config.data_timeout);
            transfer.on_chunk(chunk, &mut self.actions);
            // A chunk that converted to nothing (a held-back CR) freed its window slot: refill it.
            transfer.pump(window, &mut self.actions);
        }
    }

    /// Tells the session the time reached [`Session::poll_timeout`] (or later). Every timer that is due
    /// is served, in turn; a call before any is due does nothing but run queued input.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.serve_expired_timers(now);
        self.process_queue(now);
    }

    /// The next action for the driver, or `None` when there is nothing more to do right now.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the log, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should be called next, or `None` if no timer runs.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Whether the session has ended (after [`Action::CloseControl`]).
    pub fn is_closed(&self) -> bool {
        self.lifecycle.is_closed()
    }

    /// The working directory.
    pub fn working_directory(&self) -> &VirtualPath {
        &self.cwd
    }

    /// The logged-in user's name, if any.
    pub fn user(&self) -> Option<&str> {
        match &self.login {
            Login::LoggedIn { user, .. } => Some(user),
            _ => None,
        }
    }

    /// What the logged-in user may do, as the session applies it (for an anonymous user or a
    /// [`Completion::LoggedIn`] login, after the config's policy), or `None` before login.
    pub fn grant(&self) -> Option<Grant> {
        match &self.login {
            Login::LoggedIn { grant, .. } => Some(*grant),
            _ => None,
        }
    }

    /// Control input held by the session: the partial line in the framer plus complete lines waiting for
    /// their turn. Bounded by `framer.max_line_len + max_pending_commands`.
    pub fn buffered_input_len(&self) -> usize {
        self.framer.buffered_len() + self.queued_bytes
    }

    /// Bytes moved by the transfer in progress, if one is.
    pub fn transfer_progress(&self) -> Option<u64> {
        self.transfer.as_ref().map(|t| t.bytes())
    }

    // ---- internals ----

    fn enqueue(&mut self, item: Input) {
        self.queued_bytes += item.cost();
        self.queue.push_back(item);
        if self.queued_bytes > self.config.max_pending_commands {
            self.queue.clear();
            self.queued_bytes = 0;
            self.reply(
                ReplyCode::SERVICE_NOT_AVAILABLE,
                "Too many pending commands, closing control connection.",
            );
            if self.transfer.is_some() {
                self.abort_transfer();
            }
            self.close();
        }
    }

    /// Handles queued input while the session is free to. During a transfer only the commands that
    /// concern it (`ABOR`, `STAT`, `QUIT`, `NOOP`) are taken; everything else waits its turn.
    fn process_queue(&mut self, now: Instant) {
        while !self.is_closed() && self.pending.is_none() {
            let Some(front) = self.queue.front() else {
                break;
            };
            if let Some(transfer) = &self.transfer {
                if !dispatch::is_transfer_time_command(front, transfer.phase) {
                    break;
                }
            }
            // A driver may hand us input that arrived after the login deadline before it calls
            // `handle_timeout`: a late USER/PASS must not win the race.
            if self.login_expired(now) {
                break;
            }
            let Some(item) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes = self.queued_bytes.saturating_sub(item.cost());
            match item {
                Input::Line(line) => self.handle_line(now, &line),
                Input::TooLong => self.reply(ReplyCode::SYNTAX_ERROR, "Command line too long."),
                Input::BareLf => self.reply(ReplyCode::SYNTAX_ERROR, "Lines must end with CRLF."),
            }
            // After the command, which may have started a request or a transfer (the idle timer then
            // waits for it) or ended one (`ABOR`).
            self.restart_idle_timer(now);
        }
    }

    /// Queues an event for the log, unless `max_queued_events` are already waiting: a driver that never
    /// drains them must not make a peer's command stream grow memory.
    fn event(&mut self, event: Event) {
        if self.events.len() < self.config.max_queued_events {
            self.events.push_back(event);
        } else {
            self.events_dropped = self.events_dropped.saturating_add(1);
        }
    }

    /// Events dropped because the queue was full (see [`Config::max_queued_events`]).
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    fn next_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    fn reply(&mut self, code: ReplyCode, text: impl Into<Vec<u8>>) {
        self.send(&Reply::new(code, text));
    }

    fn send(&mut self, reply: &Reply) {
        let mut out = Vec::with_capacity(64);
        reply.encode(&mut out);
        self.actions
            .push_back(Action::SendControl(Bytes::from(out)));
    }
}
