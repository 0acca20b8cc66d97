//! The client side: one sans-IO [`Session`] per control connection.
//!
//! The session owns the protocol: which command to send when, what each reply means, how data
//! connections are set up (RFC 959 §3.2 and RFC 2428: `EPSV`, falling back to `PASV`; or `EPRT`/`PORT`),
//! how a transfer ends (RFC 959 §3.3: both the final reply and the end of the data connection), how to
//! abort one (RFC 959 §4.1.3), and every timeout and bound. Its driver owns the sockets, the user's files
//! and the clock. The user's wishes go in as [`Request`]s and come back as one [`Event::Completed`] each.
//!
//! | input | method |
//! |---|---|
//! | a request of the user | [`Session::request`] (returns its [`RequestId`]) |
//! | bytes from the control connection | [`Session::handle_control_input`] / [`Session::handle_control_eof`] |
//! | the answer to an [`Action::Data`] or [`Action::Local`] (a [`DataCompletion`]) | [`Session::handle_completion`] |
//! | a chunk read from the data connection (download, listing) or from the upload source | [`Session::handle_data`] |
//! | the time reaching [`Session::poll_timeout`] | [`Session::handle_timeout`] |
//!
//! After **every** call that feeds input (including [`Session::request`]) the driver drains
//! [`Session::poll_action`] until it returns `None`, carries the actions out in order, then reads
//! [`Session::poll_timeout`] and arranges to call `handle_timeout` then. [`Session::poll_event`] yields
//! the results; drain it too (it only grows with unread completions).
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
//! - **Transfers** speak the data-channel vocabulary of [`crate::data`], shared with the server: the data
//!   connection's [`DataAction`]s (connect, listen, accept, send, receive, close) and the local end's
//!   [`LocalAction`]s (read the user's upload source, write to their download sink, close either), each
//!   carrying the request's id. Every write, to the data connection or to the sink, is acknowledged with
//!   [`DataCompletion::Written`], so at most [`Config::transfer_window`] chunks are in flight and a slow
//!   end holds the other back; a download's result waits until the driver reports its sink stored. The
//!   table under [`Action`] says how each action is answered.
//!
//! Requests run one at a time, in order: the session sends a command only when the previous one is
//! answered, so a reply is never matched to the wrong command. A session waits for the server's 220
//! greeting before its first command. Replies are parsed by a bounded [`ReplyParser`], so how the bytes
//! were split into chunks never matters.
//!
//! A scripted login and `PWD`, with the server's side played by hand:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use ftp_proto::client::{Action, Config, ConnectionInfo, Event, Outcome, Request, Session};
//! use ftp_proto::command::{Password, Text};
//!
//! let info = ConnectionInfo {
//!     local: "192.0.2.7:50000".parse().unwrap(),
//!     peer: "198.51.100.1:21".parse().unwrap(),
//! };
//! let now = Instant::now();
//! let mut session = Session::new(Arc::new(Config::default()), info, now);
//! let login = session.request(now, Request::Login {
//!     user: Text::new("alice").unwrap(),
//!     password: Some(Password::new("secret").unwrap()),
//!     account: None,
//! }).unwrap();
//! let pwd = session.request(now, Request::Pwd).unwrap();
//!
//! // Collects what the session wants written to the control connection.
//! fn sent(session: &mut Session) -> String {
//!     let mut out = String::new();
//!     while let Some(action) = session.poll_action() {
//!         if let Action::SendControl(bytes) = action {
//!             out.push_str(std::str::from_utf8(&bytes).unwrap());
//!         }
//!     }
//!     out
//! }
//!
//! assert_eq!(sent(&mut session), ""); // nothing before the greeting
//! session.handle_control_input(now, b"220 Welcome\r\n");
//! assert_eq!(sent(&mut session), "USER alice\r\n");
//! session.handle_control_input(now, b"331 Password?\r\n");
//! assert_eq!(sent(&mut session), "PASS secret\r\n");
//! session.handle_control_input(now, b"230 Logged in.\r\n");
//! assert_eq!(sent(&mut session), "PWD\r\n");
//! session.handle_control_input(now, b"257 \"/home/alice\" is the current directory\r\n");
//!
//! let mut completed = Vec::new();
//! while let Some(event) = session.poll_event() {
//!     if let Event::Completed { id, result } = event {
//!         completed.push((id, result));
//!     }
//! }
//! assert_eq!(completed[0].0, login);
//! assert!(matches!(completed[0].1, Ok(Outcome::Done(_))));
//! assert_eq!(completed[1], (pwd, Ok(Outcome::Path(b"/home/alice".to_vec()))));
//! ```
//!
//! FTPS (RFC 4217): queue [`Request::SecureControl`] before [`Request::Login`] (explicit), or start the
//! session with [`Session::with_implicit_tls`] on a connection that is TLS from its first byte. The
//! driver runs the handshakes ([`Action::SecureControl`], and [`DataAction::Secure`] on each protected
//! data connection, where it must offer the control connection's TLS session for resumption: servers
//! that require session reuse refuse the connection otherwise).
//!
//! See [`fxp`] for copying a file between two servers with two sessions.

mod abort;
mod config;
pub mod fxp;
mod io;
mod lifecycle;
mod ops;
mod security;
mod timers;
mod transfer;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::command::{Command, FormatControl, Password, Pathname, Text, TransferType};
use crate::reply::{Reply, ReplyCode, ReplyError, ReplyParser};
use crate::time::Timestamp;
use crate::timer::TimerTable;
use crate::url::{FtpUrl, TypeCode};

pub use crate::data::{DataAction, DataCompletion, DataError, LocalAction, TlsRole};
pub use crate::feat::{FeatureSet, MlstFact};
pub use config::{Config, DataMode};
pub use io::{Action, ClientError, Event, Outcome, ProtocolError, Request, RequestId, UsageError};

use abort::AbortState;
use lifecycle::Lifecycle;
use ops::{Current, Flow, Op};
use timers::ClientTimer;

/// The two ends of the control connection. The session connects passive data connections to the
/// peer's IP, and announces the local IP in `EPRT`/`PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The client's end.
    pub local: SocketAddr,
    /// The server's end.
    pub peer: SocketAddr,
}

impl ConnectionInfo {
    /// Whether `ip` is the peer's address, an IPv4-mapped IPv6 address counting as its IPv4 one: the
    /// check data connections must pass in active mode (RFC 2577).
    ///
    /// ```
    /// use ftp_proto::client::ConnectionInfo;
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

/// One control connection's client state. See the [module documentation](self).
#[derive(Debug)]
pub struct Session {
    config: Arc<Config>,
    info: ConnectionInfo,
    parser: ReplyParser,
    /// A CR between replies, held back in case it starts an empty line.
    held_cr: bool,
    /// Greeted, quitting, closed: see [`Lifecycle`].
    lifecycle: Lifecycle,
    /// Requests waiting for their turn (bounded by `max_pending_requests`).
    queue: VecDeque<(RequestId, Request)>,
    /// The request in progress.
    current: Option<Current>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    next_id: u64,
    /// The server's TYPE as far as the session knows (RFC 959 §3.1.1.1: ASCII until changed).
    transfer_type: TransferType,
    /// The server may have reset its TYPE to the default since `transfer_type` was set: the next
    /// transfer sends `TYPE` first.
    type_unconfirmed: bool,
    /// The server does not support `EPSV` (500, 502, 522 on IPv4): use `PASV` from now on.
    epsv_refused: bool,
    /// The server does not support `EPRT` (500, 502, 522): use `PORT` for IPv4 from now on.
    eprt_refused: bool,
    /// Final replies the server still owes for commands sent (the greeting counts as one).
    outstanding: usize,
    /// The reply and data timers.
    timers: TimerTable<ClientTimer>,
    /// The control connection's TLS and the data connections' protection.
    security: security::Security,
}

impl Session {
    /// Starts a session on a freshly opened control connection. The session waits for the server's
    /// greeting (within [`Config::reply_timeout`]) before it sends anything.
    pub fn new(config: Arc<Config>, info: ConnectionInfo, now: Instant) -> Session {
        let mut timers = TimerTable::default();
        // The greeting is the first reply owed.
        timers.start(ClientTimer::Reply, now, config.reply_timeout);
        Session {
            parser: ReplyParser::new(config.reply_limits),
            held_cr: false,
            info,
            lifecycle: Lifecycle::new(),
            queue: VecDeque::new(),
            current: None,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
            transfer_type: TransferType::DEFAULT,
            type_unconfirmed: false,
            epsv_refused: false,
            eprt_refused: false,
            outstanding: 1,
            timers,
            security: security::Security {
                control: security::ControlTls::Plain,
                data_protected: false,
            },
            config,
        }
    }

    /// Starts a session on a control connection that is TLS from its first byte (implicit FTPS, port
    /// 990 by convention): the driver ran the handshake before creating the session and feeds it
    /// decrypted bytes. The session sends `PBSZ 0` and `PROT P` before the first transfer, as after
    /// [`Request::SecureControl`].
    pub fn with_implicit_tls(config: Arc<Config>, info: ConnectionInfo, now: Instant) -> Session {
        let mut session = Session::new(config, info, now);
        session.security.control = security::ControlTls::Secured;
        session
    }

    /// Queues a request; it starts when the ones before it have completed (at once if the session is
    /// idle and greeted). Its result comes later as [`Event::Completed`] with the returned id.
    ///
    /// Fails if the session is closed or quitting, or if [`Config::max_pending_requests`] requests are
    /// already waiting. [`Request::Abort`] may overtake the queue, see there.
    pub fn request(&mut self, now: Instant, request: Request) -> Result<RequestId, UsageError> {
        if !self.lifecycle.takes_requests() {
            return Err(UsageError::Closed);
        }
        if matches!(request, Request::SecureControl) && self.secured_or_securing() {
            return Err(UsageError::AlreadySecured);
        }
        if let Request::Raw(command) = &request {
            if self.is_security_command(command) {
                return Err(UsageError::SecurityCommand);
            }
        }
        if let Request::Host(name) | Request::Raw(Command::Host(name)) = &request {
            if !crate::command::is_valid_host(name.as_bytes()) {
                return Err(UsageError::InvalidHost);
            }
        }
        let request = match request {
            Request::Raw(Command::Quit) => Request::Quit,
            Request::Raw(Command::Abor) => Request::Abort,
            other => other,
        };
        if matches!(request, Request::Abort) {
            if let Some(id) = self.abort_current(now) {
                return Ok(id);
            }
        }
        let limit = self.config.max_pending_requests;
        if self.queue.len() >= limit {
            return Err(UsageError::QueueFull { limit });
        }
        let id = self.next_id();
        if matches!(request, Request::Quit) {
            self.lifecycle.quit_queued();
        }
        self.queue.push_back((id, request));
        self.start_next(now);
        Ok(id)
    }

    /// Feeds bytes read from the control connection. All of them are consumed: complete replies are
    /// handled now, a partial one waits in the parser. Empty lines between replies are skipped. A reply
    /// beyond [`Config::reply_limits`] fails the request it answers; bytes that are not a reply close
    /// the session (see [`ProtocolError::MalformedReply`]).
    pub fn handle_control_input(&mut self, now: Instant, mut input: &[u8]) {
        // During the TLS handshake, and for the rest of the input that came with the `234`: bytes not
        // decrypted by it are never replies (see `security`).
        while !self.lifecycle.is_closed() && !self.is_handshaking() {
            input = self.skip_empty_lines(input);
            if input.is_empty() {
                break;
            }
            let (consumed, outcome) = self.parser.parse(input);
            input = input.get(consumed..).unwrap_or_default();
            match outcome {
                Some(Ok(reply)) => self.on_reply(now, reply),
                Some(Err(error)) => self.on_bad_reply(now, error),
                None if consumed == 0 => break, // no progress; never spin
                None => {}
            }
        }
    }

    /// The server closed the control connection. A `QUIT` in progress completes with
    /// [`Outcome::Disconnected`]; anything else fails with [`ClientError::Closed`].
    pub fn handle_control_eof(&mut self) {
        if self.lifecycle.is_closed() {
            return;
        }
        if let Some(current) = self.current.take_if(|c| matches!(c.op, Op::Quit)) {
            self.complete(current.id, Ok(Outcome::Disconnected));
            self.shutdown(None);
        } else {
            self.shutdown(Some(ClientError::Closed));
        }
    }

    /// Feeds the driver's answer to a data or local action of request `id` (see [`Action`] for which
    /// action is answered how). Answers the session no longer waits for are ignored.
    pub fn handle_completion(&mut self, now: Instant, id: RequestId, completion: DataCompletion) {
        let Some(mut current) = self.take_current(id) else {
            return;
        };
        let handshake = matches!(current.op, Op::SecureControl(_));
        let flow = match &mut current.op {
            Op::Transfer(transfer) if !current.abort.is_running() => {
                self.transfer_completion(now, id, transfer, completion)
            }
            Op::SecureControl(step) => self.secure_control_completion(now, step, completion),
            _ => Flow::Continue,
        };
        match flow {
            // The control connection's handshake failed: the connection is neither plaintext nor
            // TLS any more, so no later command could be sent or reply read on it. The session
            // closes, failing the request with the handshake's error.
            Flow::Done(Err(error)) if handshake => {
                self.current = Some(current);
                self.shutdown(Some(error));
            }
            flow => self.settle(now, current, flow),
        }
    }

    /// Feeds a chunk for request `id`: read from the data connection after [`DataAction::Receive`]
    /// (download, listing), or from the user's source after [`LocalAction::Read`] (upload). In TYPE I the
    /// chunk is passed on without copying.
    pub fn handle_data(&mut self, now: Instant, id: RequestId, chunk: Bytes) {
        let Some(mut current) = self.take_current(id) else {
            return;
        };
        let flow = match &mut current.op {
            Op::Transfer(transfer) if !current.abort.is_running() => {
                self.transfer_data(now, id, transfer, chunk)
            }
            _ => Flow::Continue,
        };
        self.settle(now, current, flow);
    }

    /// Tells the session the time reached [`Session::poll_timeout`] (or later). If a reply is overdue,
    /// the session cannot tell what the server is doing: the request in progress fails with
    /// [`ClientError::Timeout`] and the session closes. If the data connection is overdue, only the
    /// transfer fails with [`ClientError::Timeout`], aborted as if the connection had broken (`ABOR` if
    /// the server is running it); the session goes on.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Each timer handled is stopped or restarted later than `now`, and closing stops them all.
        while let Some(timer) = self.timers.first_expired(now) {
            match timer {
                ClientTimer::Reply => self.shutdown(Some(ClientError::Timeout)),
                ClientTimer::Data => {
                    self.stop_data_timer();
                    let Some(mut current) = self.current.take() else {
                        continue;
                    };
                    let flow = match &mut current.op {
                        Op::Transfer(transfer) => {
                            self.data_failed(current.id, transfer, ClientError::Timeout)
                        }
                        _ => Flow::Continue,
                    };
                    self.settle(now, current, flow);
                }
            }
        }
    }

    /// The next action for the driver, or `None` when there is nothing more to do right now.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event (results, progress, the greeting), if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should be called next, or `None` if no timer runs.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Whether the server's greeting has arrived.
    pub fn is_connected(&self) -> bool {
        self.lifecycle.is_greeted()
    }

    /// Whether the session has ended (after [`Action::CloseControl`]).
    pub fn is_closed(&self) -> bool {
        self.lifecycle.is_closed()
    }

    /// The server's TYPE as far as the session knows: it decides the line-end conversion of transfers.
    pub fn transfer_type(&self) -> TransferType {
        self.transfer_type
    }

    /// Requests queued behind the one in progress.
    pub fn queued_requests(&self) -> usize {
        self.queue.len()
    }

    /// The request in progress, if any.
    pub fn current_request(&self) -> Option<RequestId> {
        self.current.as_ref().map(|c| c.id)
    }

    // ---- internals shared by the request kinds ----

    fn next_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    /// Takes the current request if it is `id` and the session is open.
    fn take_current(&mut self, id: RequestId) -> Option<Current> {
        if self.lifecycle.is_closed() {
            return None;
        }
        self.current.take_if(|current| current.id == id)
    }

    /// Sends one command: the server owes one more final reply, due within the reply timeout.
    fn send(&mut self, now: Instant, command: &Command) {
        let mut out = Vec::with_capacity(32);
        command.encode(&mut out);
        self.actions
            .push_back(Action::SendControl(Bytes::from(out)));
        self.outstanding += 1;
        self.start_reply_timer(now);
    }

    fn complete(&mut self, id: RequestId, result: Result<Outcome, ClientError>) {
        self.events.push_back(Event::Completed { id, result });
    }

    /// Reports progress.
    fn progress(&mut self, id: RequestId, bytes: u64) {
        self.push_event(Event::Progress { id, bytes });
    }

    /// Queues an event. Events a server could repeat without limit replace the same kind of event still
    /// waiting at the back of the queue (progress and preliminary replies of one request, unsolicited
    /// replies), so the queue grows with the number of requests, never with what the server sends.
    fn push_event(&mut self, event: Event) {
        let merge = match (self.events.back(), &event) {
            (Some(Event::Progress { id: a, .. }), Event::Progress { id: b, .. }) => a == b,
            (Some(Event::Preliminary { id: a, .. }), Event::Preliminary { id: b, .. }) => a == b,
            (Some(Event::UnsolicitedReply(_)), Event::UnsolicitedReply(_)) => true,
            _ => false,
        };
        if merge {
            self.events.pop_back();
        }
        self.events.push_back(event);
    }

    /// Drops empty lines (`CRLF` or `LF`) between replies, which some servers send after a reply and the
    /// parser would report as malformed. A CR is held until the next byte shows whether a LF follows,
    /// so how the bytes were split does not matter. Inside a reply, empty lines are its text.
    fn skip_empty_lines<'a>(&mut self, mut input: &'a [u8]) -> &'a [u8] {
        while !self.parser.is_mid_reply() {
            let Some((&first, rest)) = input.split_first() else {
                break;
            };
            match (self.held_cr, first) {
                (_, b'\n') => self.held_cr = false,
                (false, b'\r') => self.held_cr = true,
                (false, _) => break,
                (true, _) => {
                    // Not an empty line after all: the CR starts the next line.
                    self.held_cr = false;
                    self.parser.parse(b"\r");
                    break;
                }
            }
            input = rest;
        }
        input
    }

    /// The parser dropped something that was not a reply it could deliver; it is in step again after it.
    ///
    /// A reply beyond the parser's limits ([`ReplyError::LineTooLong`], [`ReplyError::ReplyTooLong`])
    /// was dropped whole. It is taken for the final reply the session awaits: the request in progress
    /// fails with [`ProtocolError::MalformedReply`] and the session goes on (with no reply owed, it is
    /// ignored). Should it have been a preliminary reply, the final one follows and, unless the next
    /// command was sent already, is reported as unsolicited. Before the greeting and while `ABOR` runs,
    /// where replies are counted to keep in step, it closes the session.
    ///
    /// Anything else ([`ReplyError::Malformed`]: no code where one must be, [`ReplyError::InvalidCode`])
    /// closes the session: such a line may be a reply the server mangled (a multi-line reply without its
    /// hyphen, an RFC 2228 protected 6xx reply), and every later reply could then answer the wrong
    /// command.
    fn on_bad_reply(&mut self, now: Instant, error: ReplyError) {
        let whole_reply_dropped =
            matches!(error, ReplyError::LineTooLong | ReplyError::ReplyTooLong);
        let error = ClientError::Protocol(ProtocolError::MalformedReply(error));
        let aborting = self.current.as_ref().is_some_and(|c| c.abort.is_running());
        if !whole_reply_dropped || !self.lifecycle.is_greeted() || aborting {
            self.shutdown(Some(error));
            return;
        }
        if self.outstanding == 0 {
            return;
        }
        self.outstanding -= 1;
        self.restart_reply_timer(now);
        if let Some(current) = self.current.take() {
            self.finish(now, current, Err(error));
        }
    }

    /// Routes one parsed reply.
    fn on_reply(&mut self, now: Instant, reply: Reply) {
        if reply.code() == ReplyCode::SERVICE_NOT_AVAILABLE {
            // 421 may come at any time (RFC 959 §4.2): the server is closing the connection.
            self.shutdown(Some(ClientError::Reply(reply)));
            return;
        }
        if self.outstanding == 0 {
            self.push_event(Event::UnsolicitedReply(reply));
            return;
        }
        if !reply.code().is_positive_preliminary() {
            self.outstanding -= 1;
        }
        self.restart_reply_timer(now);
        if !self.lifecycle.is_greeted() {
            self.on_greeting(now, reply);
            return;
        }
        let Some(mut current) = self.current.take() else {
            self.push_event(Event::UnsolicitedReply(reply));
            return;
        };
        let flow = if current.abort.is_running() {
            self.abort_reply(&mut current, reply)
        } else {
            self.op_reply(now, &mut current, reply)
        };
        self.settle(now, current, flow);
    }

    /// The greeting: 120 means "wait", 2xx means ready (RFC 959 §5.4), anything else ends the session.
    fn on_greeting(&mut self, now: Instant, reply: Reply) {
        let code = reply.code();
        if code.is_positive_preliminary() {
            self.push_event(Event::Preliminary { id: None, reply });
        } else if code.is_positive_completion() {
            self.lifecycle.greeted();
            self.events.push_back(Event::Connected(reply));
            self.start_next(now);
        } else {
            self.shutdown(Some(ClientError::Reply(reply)));
        }
    }

    /// Puts the current request back, or finishes it.
    fn settle(&mut self, now: Instant, mut current: Current, flow: Flow) {
        match flow {
            Flow::Continue => {
                if let AbortState::Requested(abort_id) = current.abort {
                    if current.op.is_abortable() {
                        self.start_abort(now, &mut current, Some(abort_id), ClientError::Aborted);
                    }
                }
                self.current = Some(current);
            }
            Flow::Abort(error) => {
                self.start_abort(now, &mut current, None, error);
                self.current = Some(current);
            }
            Flow::Done(result) => self.finish(now, current, result),
        }
    }

    /// Completes the current request, then whatever waits on it, then starts the next one.
    fn finish(&mut self, now: Instant, mut current: Current, result: Result<Outcome, ClientError>) {
        if let Op::Transfer(transfer) = &mut current.op {
            self.close_transfer(current.id, transfer);
        }
        // A failed `AUTH TLS`: what was queued behind it was meant for a protected connection.
        let protection_failed = matches!(current.op, Op::SecureControl(_)) && result.is_err();
        self.complete(current.id, result);
        if protection_failed {
            // Except a `QUIT`, which says goodbye in its turn.
            for (id, request) in std::mem::take(&mut self.queue) {
                if matches!(request, Request::Quit) {
                    self.queue.push_back((id, request));
                } else {
                    self.complete(id, Err(ClientError::NotProtected));
                }
            }
        }
        match current.abort {
            // The transfer ended before the abort could start: send ABOR in its own turn, next.
            AbortState::Requested(abort_id) => self.queue.push_front((abort_id, Request::Abort)),
            AbortState::Running(exchange) => {
                if let (Some(abort_id), Some(result)) = (exchange.id, exchange.result) {
                    self.complete(abort_id, result);
                }
            }
            AbortState::None => {}
        }
        if matches!(current.op, Op::Quit) {
            self.shutdown(None);
            return;
        }
        self.start_next(now);
    }

    /// Starts queued requests while none is in progress.
    fn start_next(&mut self, now: Instant) {
        while self.lifecycle.is_greeted() && self.current.is_none() {
            let Some((id, request)) = self.queue.pop_front() else {
                break;
            };
            self.begin(now, id, request);
        }
    }

    /// Ends the session: fails what is pending, closes the connections. `error` is why (`None`: `QUIT`).
    fn shutdown(&mut self, error: Option<ClientError>) {
        if !self.lifecycle.close() {
            return;
        }
        if let Some(mut current) = self.current.take() {
            if let Op::Transfer(transfer) = &mut current.op {
                self.close_transfer(current.id, transfer);
            }
            self.complete(
                current.id,
                Err(error.clone().unwrap_or(ClientError::Closed)),
            );
            if let Some(abort_id) = current.abort.request_id() {
                self.complete(abort_id, Err(ClientError::Closed));
            }
        }
        while let Some((id, _)) = self.queue.pop_front() {
            self.complete(id, Err(ClientError::Closed));
        }
        self.outstanding = 0;
        self.timers.stop_all();
        self.actions.push_back(Action::CloseControl);
        self.events.push_back(Event::Closed { error });
    }
}

/// The requests that fetch what an `ftp://` URL names, following RFC 1738 §3.2.2: log in (anonymously
/// when the URL has no user, with the password `anonymous@`), one `CWD` per directory segment, then
/// `RETR` of the last segment (in TYPE I unless the URL says `;type=a`), or a listing if the URL ends in
/// `/` or says `;type=d` (`NLST`, as RFC 1738 asks; `LIST` with `now` otherwise).
///
/// ```
/// use ftp_proto::client::{requests_for_url, Request};
/// use ftp_proto::time::Timestamp;
/// use ftp_proto::url::FtpUrl;
///
/// let url = FtpUrl::parse("ftp://ftp.example.com/pub/linux/README").unwrap();
/// let requests = requests_for_url(&url, Timestamp::UNIX_EPOCH);
/// assert!(matches!(requests[0], Request::Login { .. }));
/// assert!(matches!(&requests[1], Request::Cwd(p) if p.as_bytes() == b"pub"));
/// assert!(matches!(&requests[2], Request::Cwd(p) if p.as_bytes() == b"linux"));
/// assert!(matches!(requests[3], Request::SetType(_)));
/// assert!(matches!(&requests[4], Request::Retrieve { path, offset: 0 } if path.as_bytes() == b"README"));
/// ```
pub fn requests_for_url(url: &FtpUrl, now: Timestamp) -> Vec<Request> {
    let anonymous = |s: &str| Text::new(s).ok();
    let user = url
        .user()
        .and_then(|u| Text::new(u).ok())
        .or_else(|| anonymous("anonymous"));
    let password = match (url.user(), url.password()) {
        (_, Some(p)) => Password::new(p).ok(),
        (None, None) => Password::new("anonymous@").ok(),
        (Some(_), None) => None,
    };
    let mut requests = Vec::new();
    if let Some(user) = user {
        requests.push(Request::Login {
            user,
            password,
            account: None,
        });
    }
    requests.extend(url.cwd_steps().into_iter().map(Request::Cwd));
    let file: Option<Pathname> = url.file_name();
    match (file, url.typecode()) {
        (Some(path), Some(TypeCode::Directory)) => {
            requests.push(Request::Nlst { path: Some(path) })
        }
        (None, Some(TypeCode::Directory)) => requests.push(Request::Nlst { path: None }),
        (None, _) => requests.push(Request::List { path: None, now }),
        (Some(path), typecode) => {
            let transfer_type = match typecode {
                Some(TypeCode::Ascii) => TransferType::Ascii(FormatControl::NonPrint),
                _ => TransferType::Image,
            };
            requests.push(Request::SetType(transfer_type));
            requests.push(Request::Retrieve { path, offset: 0 });
        }
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let info = ConnectionInfo {
            local: "192.0.2.7:50000".parse().unwrap(),
            peer: "198.51.100.1:21".parse().unwrap(),
        };
        Session::new(Arc::new(Config::default()), info, Instant::now())
    }

    #[test]
    fn repeated_events_do_not_grow_the_queue() {
        let mut s = session();
        let now = Instant::now();
        s.handle_control_input(now, b"220 hi\r\n");
        for _ in 0..1000 {
            s.handle_control_input(now, b"200 unsolicited\r\n");
        }
        let (a, b) = (RequestId(1), RequestId(2));
        s.progress(a, 1);
        s.progress(a, 2);
        s.progress(b, 3);
        s.progress(b, 4);
        let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
        assert_eq!(events.len(), 4, "{events:?}");
        assert!(matches!(events[0], Event::Connected(_)));
        assert!(matches!(events[1], Event::UnsolicitedReply(_)));
        assert_eq!(events[2], Event::Progress { id: a, bytes: 2 });
        assert_eq!(events[3], Event::Progress { id: b, bytes: 4 });
    }

    #[test]
    fn request_ids_count_up() {
        let mut s = session();
        let now = Instant::now();
        let first = s.request(now, Request::Noop).unwrap();
        let second = s.request(now, Request::Pwd).unwrap();
        assert_eq!((first.get(), second.get()), (1, 2));
        assert_eq!(s.queued_requests(), 2, "nothing starts before the greeting");
        assert_eq!(s.current_request(), None);
        s.handle_control_input(now, b"220 hi\r\n");
        assert_eq!(s.current_request(), Some(first));
    }

    #[test]
    fn huge_timeouts_mean_no_timer_not_a_panic() {
        let config = Config {
            reply_timeout: std::time::Duration::MAX,
            data_timeout: std::time::Duration::MAX,
            ..Config::default()
        };
        let info = ConnectionInfo {
            local: "192.0.2.7:50000".parse().unwrap(),
            peer: "198.51.100.1:21".parse().unwrap(),
        };
        let now = Instant::now();
        let mut s = Session::new(Arc::new(config), info, now);
        assert_eq!(s.poll_timeout(), None);
        s.handle_control_input(now, b"220 hi\r\n229 (|||1|)\r\n");
        let id = s.request(now, Request::Nlst { path: None }).unwrap();
        s.handle_control_input(now, b"229 (|||4000|)\r\n");
        s.handle_completion(now, id, DataCompletion::Connected { peer: info.peer });
        assert_eq!(s.poll_timeout(), None);
        s.handle_timeout(now);
        assert!(!s.is_closed());
    }

    fn url_plan(url: &str) -> Vec<Request> {
        requests_for_url(&FtpUrl::parse(url).unwrap(), Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn urls_become_requests() {
        let plan = url_plan("ftp://ftp.example.com/");
        let Request::Login { user, password, .. } = &plan[0] else {
            panic!("{plan:?}");
        };
        assert_eq!(user.as_bytes(), b"anonymous");
        assert_eq!(
            password.as_ref().map(Password::as_bytes),
            Some(&b"anonymous@"[..])
        );
        assert!(matches!(plan[1], Request::List { path: None, .. }));
        assert_eq!(plan.len(), 2);

        let plan = url_plan("ftp://bob@h/a%2Fb/notes.txt;type=a");
        let Request::Login { user, password, .. } = &plan[0] else {
            panic!("{plan:?}");
        };
        assert_eq!((user.as_bytes(), password), (&b"bob"[..], &None));
        assert!(matches!(&plan[1], Request::Cwd(p) if p.as_bytes() == b"a/b"));
        assert_eq!(
            plan[2],
            Request::SetType(TransferType::Ascii(FormatControl::NonPrint))
        );
        assert!(
            matches!(&plan[3], Request::Retrieve { path, .. } if path.as_bytes() == b"notes.txt")
        );

        let plan = url_plan("ftp://h/pub;type=d");
        assert!(matches!(&plan[1], Request::Nlst { path: Some(p) } if p.as_bytes() == b"pub"));
        let plan = url_plan("ftp://h/pub/;type=d");
        assert!(matches!(&plan[2], Request::Nlst { path: None }));
    }
}
