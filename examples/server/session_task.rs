//! One tokio task per control connection: it owns the sans-IO [`Session`] and carries out its actions.
//!
//! The loop, shared with the example client (`common/run_loop.rs`), waits on three things at once
//! (`tokio::select!`): bytes on the control connection, messages from the helper tasks (completions and
//! data chunks, over one channel), and the session's timer. After each input it drains `poll_action`
//! and carries every action out in order, then logs the events. Slow work never runs in this task: the
//! data connections and listeners ([`DataConnections`], which takes the session's `DataAction`s as they
//! are), the open file ([`FileHandle`], the session's `LocalAction`s) and other storage operations (on
//! the blocking pool) run elsewhere and answer through the channel, so the control connection is read
//! during a transfer and `ABOR` and `STAT` work.
//!
//! Control replies are gathered while the actions are carried out and written once at the end, in their
//! order. The one ordering that involves the data connection is kept by waiting: a clean
//! `DataAction::Close` finishes (the client has its EOF) before the `226` that follows it is even
//! queued.
//!
//! FTP over TLS: the session asks for the control connection's handshake (`Action::SecureControl`,
//! after its `234`) and for its end (`Action::ClearControl`, after `CCC`'s `200`). Both are carried out
//! right there, between two reads of the control connection: the replies gathered so far are written
//! first, then the switch happens, and the session hears of a finished handshake before it is given
//! the next byte, so nothing read in plaintext is taken for TLS or the reverse. A connection to the
//! implicit FTPS port does its handshake before its session even exists. Each control connection has
//! its own TLS session cache ([`ConnectionTls`]), which its protected data connections must resume.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ftp_proto::command::{Password, Text};
use ftp_proto::data::{DataCompletion, LocalAction};
use ftp_proto::server::{
    Action, Completion, Config, ConnectionInfo, Event, RequestId, Session, StorageError,
    StorageRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::time::Instant;

use crate::auth::Users;
use crate::buffers::BufferPool;
use crate::control::ControlStream;
use crate::data::{DataConnections, PassivePorts};
use crate::files::{FileContext, FileHandle, FileOp, blocking};
use crate::limits::AddressCounts;
use crate::logging;
use crate::login_throttle::{LoginThrottle, Verdict};
use crate::run_loop::{self, CONTROL_READ_SIZE};
use crate::storage::Storage;
use crate::tls::Stream;
use crate::tls::{ConnectionTls, DataTls, ServerTls};

/// What the helper tasks send to the session task.
#[derive(Debug)]
pub enum Incoming {
    /// The answer to an action.
    Completion(RequestId, Completion),
    /// A chunk read from the file or from the data connection.
    Data(RequestId, Bytes),
}

/// What a helper task needs of its session: where to send answers, and the session's chunk buffers.
#[derive(Clone, Debug)]
pub struct WorkerLinks {
    pub incoming: UnboundedSender<Incoming>,
    pub buffers: BufferPool,
}

/// Everything the sessions of one server share.
#[derive(Debug)]
pub struct Server {
    pub config: Arc<Config>,
    pub storage: Arc<Storage>,
    pub users: Users,
    pub passive_ports: PassivePorts,
    /// The address reported in `PASV` replies instead of the bound one.
    pub masquerade: Option<Ipv4Addr>,
    /// Control connections, in all and per client address (`--max-connections[-per-ip]`).
    pub connections: Arc<AddressCounts>,
    /// Passive listeners per client address (`--max-passive-per-ip`).
    pub passive_listeners: Arc<AddressCounts>,
    /// Failed logins across sessions (back-off and bans).
    pub throttle: LoginThrottle,
    /// Permits for open transfers (`--max-transfers`), shared by every session.
    pub transfers: Arc<tokio::sync::Semaphore>,
    /// Permits for listings being read (`--max-listings`), shared by every session.
    pub listings: Arc<tokio::sync::Semaphore>,
    /// The certificate (`--tls-cert`): `None` if TLS is not offered.
    pub tls: Option<TlsSettings>,
}

/// The server's TLS: the certificate and key, and how long a control connection's handshake may take.
pub struct TlsSettings {
    pub tls: ServerTls,
    pub handshake_timeout: Duration,
    /// `--tls-strict-eof`: an upload's TLS must end with `close_notify`.
    pub strict_eof: bool,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Which port a control connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// The `--listen` port: plaintext until the client sends `AUTH TLS` (explicit FTPS), if at all.
    Explicit,
    /// The `--implicit-tls-listen` port: TLS from the first byte (implicit FTPS).
    Implicit,
}

/// Serves one control connection until the session ends or the client goes away.
pub async fn run(server: Arc<Server>, number: u64, stream: TcpStream, security: Security) {
    let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else {
        return;
    };
    // Replies are small and often come in pairs (150 ... 226): don't let Nagle hold the second back.
    let _ = stream.set_nodelay(true);
    // Clients send the Telnet "synch" before ABOR as TCP urgent data (Python's ftplib sends `ABOR\r\n`
    // with MSG_OOB). Without SO_OOBINLINE the kernel pulls the urgent byte out of the stream, so the
    // session would see `ABOR\r` and then nothing: keep it in line, where the framer expects it.
    let _ = socket2::SockRef::from(&stream).set_out_of_band_inline(true);
    let mut control = ControlStream::plain(stream);
    logging::session(number, format_args!("connected from {peer}"));
    // This connection's TLS, with a session cache of its own (see `tls.rs`).
    let tls = server
        .tls
        .as_ref()
        .map(|settings| settings.tls.for_connection());
    let info = ConnectionInfo { local, peer };
    let session = match security {
        Security::Explicit => Session::new(server.config.clone(), info, now()),
        Security::Implicit => {
            // Bounded: a client that never finishes its handshake holds its connection slot only
            // this long.
            let (Some(settings), Some(tls)) = (&server.tls, &tls) else {
                logging::session(number, format_args!("implicit FTPS without a certificate"));
                return;
            };
            if let Err(error) = control.accept_tls(tls, settings.handshake_timeout).await {
                logging::session(
                    number,
                    format_args!("TLS handshake failed: {error}; closed"),
                );
                return;
            }
            log_tls(number, &control);
            Session::with_implicit_tls(server.config.clone(), info, now())
        }
    };
    let (incoming, messages) = unbounded_channel();
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; data sockets want the IPv4 form.
    let (local_ip, peer_ip) = (local.ip().to_canonical(), peer.ip().to_canonical());
    let buffers = BufferPool::default();
    let links = WorkerLinks {
        incoming: incoming.clone(),
        buffers: buffers.clone(),
    };
    let data_tls = tls.clone().map(DataTls::Server);
    let data = DataConnections::new(server.clone(), number, local_ip, peer_ip, links, data_tls);
    let mut driver = Driver {
        peer: peer_ip,
        server,
        number,
        session,
        incoming,
        buffers,
        data,
        file: None,
        out: Vec::new(),
        started: HashMap::new(),
        tls,
    };

    run_loop::run(&mut driver, &mut control, messages, None).await;
    driver.data.close_all().await;
    let _ = control.shutdown().await;
    linger(&mut control).await;
    driver.log(format_args!("closed"));
}

/// Logs the protocol version and cipher suite of a control connection that just became TLS.
fn log_tls(number: u64, control: &ControlStream) {
    if let Some(Stream::TlsServer(tls)) = control.stream() {
        let connection = tls.get_ref().1;
        let version = connection.protocol_version();
        let suite = connection.negotiated_cipher_suite().map(|s| s.suite());
        logging::session(
            number,
            format_args!("control connection secured ({version:?}, {suite:?})"),
        );
    }
}

/// How long `CCC` waits for the client's `close_notify` (only without a certificate, which cannot
/// happen: the handshake timeout is used otherwise).
const DEFAULT_CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(15);

/// How long a closing session waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// Reads (and ignores) what the client still sends until it closes, for at most [`LINGER`]. Closing a
/// socket with unread input makes the kernel send an RST, which can destroy the last reply (`221`, `421`)
/// before the client has read it.
async fn linger(reader: &mut ControlStream) {
    let mut buffer = vec![0u8; CONTROL_READ_SIZE];
    let drain = async {
        while let Ok(n) = reader.read(&mut buffer).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// The session's clock, on tokio's time (so it follows `tokio::time::pause` in tests).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The session task's state: the session and the helpers carrying out its actions.
struct Driver {
    server: Arc<Server>,
    number: u64,
    session: Session,
    /// The client's address, for per-address accounting and the log.
    peer: IpAddr,
    /// The sending end of this task's channel, cloned into every helper.
    incoming: UnboundedSender<Incoming>,
    /// Chunk buffers shared by this session's file and data tasks.
    buffers: BufferPool,
    /// The data connections and passive listeners, by the session's ids.
    data: DataConnections,
    file: Option<FileHandle>,
    /// Control replies not yet written.
    out: Vec<u8>,
    /// When each transfer's data connection opened, for the throughput in the log.
    started: HashMap<RequestId, Instant>,
    /// This control connection's TLS (`None` without a certificate).
    tls: Option<ConnectionTls>,
}

/// The session task's part of the shared loop: every input goes to the session; the control connection
/// is read past the urgent mark (`ABOR` sent with MSG_OOB).
impl run_loop::Driver for Driver {
    type Message = Incoming;
    type Request = std::convert::Infallible;

    /// Drains and performs the session's actions, logs its events and writes the replies. `Break` when
    /// the session is over or the control connection broke.
    async fn carry_out(&mut self, control: &mut ControlStream) -> ControlFlow<()> {
        let mut flow = ControlFlow::Continue(());
        while let Some(action) = self.session.poll_action() {
            let step = match action {
                // The two that switch the control connection, which only this loop holds.
                Action::SecureControl { id } => self.secure_control(control, id).await,
                Action::ClearControl => self.clear_control(control).await,
                action => self.perform(action).await,
            };
            if step.is_break() {
                flow = ControlFlow::Break(());
                break;
            }
        }
        self.log_events();
        if self.write_out(control).await.is_break() {
            return ControlFlow::Break(());
        }
        flow
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.session.poll_timeout()
    }

    /// Past the urgent mark (`ABOR` with MSG_OOB), but not once `AUTH TLS` was answered: what follows
    /// it on the socket is the client's handshake, read by TLS.
    fn reads_past_urgent_mark(&self) -> bool {
        !self.session.is_control_handshaking()
    }

    fn on_input(&mut self, bytes: &[u8]) {
        self.session.handle_control_input(now(), bytes);
    }

    fn on_eof(&mut self) {
        self.session.handle_control_eof();
    }

    fn on_timeout(&mut self) {
        self.session.handle_timeout(now());
    }

    /// Feeds a helper's message to the session.
    fn on_message(&mut self, message: Incoming) {
        match message {
            Incoming::Completion(id, completion) => {
                if let Completion::Data(DataCompletion::Connected { .. }) = completion {
                    self.started.insert(id, Instant::now());
                }
                if let Err(mistake) = self.session.handle_completion(now(), id, completion) {
                    // A bug in this driver, not the client's doing: the session ignored the answer.
                    self.log(format_args!("driver bug: {mistake}"));
                }
            }
            Incoming::Data(id, chunk) => self.session.handle_data(now(), id, chunk),
        }
    }
}

impl Driver {
    /// Writes the replies gathered so far. `Break` if the control connection broke.
    async fn write_out(&mut self, control: &mut ControlStream) -> ControlFlow<()> {
        if self.out.is_empty() {
            return ControlFlow::Continue(());
        }
        // A client that stops reading replies must not pin this task forever.
        let limit = self.server.config.idle_timeout;
        let written = tokio::time::timeout(limit, async {
            control.write_all(&self.out).await?;
            // A TLS stream holds written bytes as records until flushed.
            control.flush().await
        })
        .await;
        self.out.clear();
        if !matches!(written, Ok(Ok(()))) {
            self.log(format_args!("control connection write failed"));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// `AUTH TLS` was answered `234`: writes it (the last plaintext the client reads), runs the TLS
    /// handshake within the handshake timeout, and tells the session before it reads anything else.
    /// A failed or timed-out handshake ends the session: the connection is lost (whatever the client
    /// sent is neither plaintext nor TLS we can read).
    async fn secure_control(
        &mut self,
        control: &mut ControlStream,
        id: RequestId,
    ) -> ControlFlow<()> {
        // The `AUTH` line before what the handshake logs.
        self.log_events();
        self.write_out(control).await?;
        let (Some(tls), Some(settings)) = (&self.tls, &self.server.tls) else {
            // The session offers TLS only with a certificate (`main::tls_policy`).
            self.log(format_args!(
                "driver bug: a TLS handshake asked for without a certificate"
            ));
            self.session.handle_control_eof();
            return ControlFlow::Break(());
        };
        if let Err(error) = control.accept_tls(tls, settings.handshake_timeout).await {
            self.log(format_args!("TLS handshake failed: {error}; closed"));
            self.session.handle_control_eof();
            // Nothing can be written to a lost connection.
            self.out.clear();
            return ControlFlow::Break(());
        }
        log_tls(self.number, control);
        if let Err(mistake) = self
            .session
            .handle_completion(now(), id, Completion::ControlSecured)
        {
            self.log(format_args!("driver bug: {mistake}"));
        }
        ControlFlow::Continue(())
    }

    /// `CCC` (or `REIN`) was answered: writes the answer (still encrypted), ends TLS with the
    /// client's `close_notify` and goes on in plaintext. A client that does not answer with its own
    /// `close_notify` in time loses the connection.
    async fn clear_control(&mut self, control: &mut ControlStream) -> ControlFlow<()> {
        self.write_out(control).await?;
        let limit = self
            .server
            .tls
            .as_ref()
            .map_or(DEFAULT_CLOSE_NOTIFY_WAIT, |settings| {
                settings.handshake_timeout
            });
        if let Err(error) = control.end_tls(limit).await {
            self.log(format_args!("ending TLS failed: {error}; closed"));
            self.session.handle_control_eof();
            self.out.clear();
            return ControlFlow::Break(());
        }
        self.log(format_args!("control connection back to plaintext"));
        ControlFlow::Continue(())
    }

    async fn perform(&mut self, action: Action) -> ControlFlow<()> {
        match action {
            Action::SendControl(bytes) => self.out.extend_from_slice(&bytes),
            Action::Authenticate { id, user, password } => self.authenticate(id, user, password),
            Action::Data(action) => self.data.perform(action).await,
            Action::Storage { id, request } => self.storage(id, request),
            Action::Local(LocalAction::Read { id }) | Action::ReadEntries { id } => {
                self.file_op(id, FileOp::Read)
            }
            Action::Local(LocalAction::Write { id, data }) => self.file_op(id, FileOp::Write(data)),
            Action::Local(LocalAction::Close { id, aborted }) => self.close_file(id, aborted),
            // Carried out by `carry_out`, which holds the control connection.
            Action::SecureControl { .. } | Action::ClearControl => {
                self.log(format_args!("driver bug: {action:?} reached perform"));
                return ControlFlow::Break(());
            }
            Action::CloseControl => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    fn links(&self) -> WorkerLinks {
        WorkerLinks {
            incoming: self.incoming.clone(),
            buffers: self.buffers.clone(),
        }
    }

    /// Answers an action right away. Through the channel like every other answer, so that it reaches the
    /// session after the current drain, never in the middle of one.
    fn answer(&self, id: RequestId, completion: Completion) {
        let _ = self.incoming.send(Incoming::Completion(id, completion));
    }

    /// Checks a password in the slot the shared [`LoginThrottle`] books for this address and user, on a
    /// task of its own, so that the session (and its timer) runs on while the attempt waits. The
    /// answer goes through the channel; if the session is gone by then, it is dropped, and the booked
    /// slot stays used (closing the socket does not buy the next guess sooner).
    fn authenticate(&self, id: RequestId, user: Text, password: Option<Password>) {
        let server = self.server.clone();
        let (peer, incoming) = (self.peer, self.incoming.clone());
        let verdict = server.throttle.reserve(peer, user.as_bytes(), now());
        tokio::spawn(async move {
            let answer = match verdict {
                Verdict::CheckAt(at) => {
                    tokio::time::sleep_until(Instant::from_std(at)).await;
                    server.users.authenticate(&user, password.as_ref())
                }
                Verdict::RefuseAt(at) => {
                    tokio::time::sleep_until(Instant::from_std(at)).await;
                    Completion::Denied
                }
            };
            if matches!(answer, Completion::LoggedIn(_) | Completion::Granted(_)) {
                server.throttle.succeeded(peer, user.as_bytes());
            } else if server.throttle.failed(peer, user.as_bytes(), now()) {
                logging::server(format_args!("banned {peer}: too many failed logins"));
            }
            let _ = incoming.send(Incoming::Completion(id, answer));
        });
    }

    /// Opens and listings run in a file task, which then serves the transfer (or the listing's later
    /// parts); everything else is one blocking job, bounded in time like every file operation.
    fn storage(&mut self, id: RequestId, request: StorageRequest) {
        let storage = self.server.storage.clone();
        let transfers = self.server.transfers.clone();
        // TLS session tickets on the transfer's data connection only if the client reads it: an
        // upload's unread tickets would turn the client's close into a reset (see `tls.rs`).
        if let Some(tls) = &self.tls {
            match request {
                StorageRequest::OpenRead { .. } | StorageRequest::List { .. } => {
                    tls.send_data_tickets(true)
                }
                StorageRequest::OpenWrite { .. } => tls.send_data_tickets(false),
                _ => {}
            }
        }
        // A file or listing still open from an earlier transfer is closed by dropping its handle. The
        // session runs one transfer or storage request at a time (`STAT path` waits for a transfer's
        // end), so one slot is enough.
        match request {
            StorageRequest::OpenRead { path, offset } => {
                let context = self.file_context(transfers);
                self.file = Some(FileHandle::open_read(context, id, path, offset));
            }
            StorageRequest::OpenWrite { path, mode } => {
                let context = self.file_context(transfers);
                self.file = Some(FileHandle::open_write(context, id, path, mode));
            }
            StorageRequest::List { path, limit } => {
                let context = self.file_context(self.server.listings.clone());
                self.file = Some(FileHandle::open_listing(context, id, path, limit));
            }
            request => {
                let incoming = self.incoming.clone();
                tokio::spawn(async move {
                    let completion = blocking(move || storage.execute(request))
                        .await
                        .unwrap_or_else(Completion::Failed);
                    let _ = incoming.send(Incoming::Completion(id, completion));
                });
            }
        }
    }

    fn file_context(&self, permits: Arc<tokio::sync::Semaphore>) -> FileContext {
        FileContext {
            storage: self.server.storage.clone(),
            permits,
            links: self.links(),
        }
    }

    fn file_op(&mut self, id: RequestId, op: FileOp) {
        match self.file.as_ref().filter(|file| file.id() == id) {
            Some(file) => file.send(op),
            None => self.answer(
                id,
                Completion::Failed(StorageError::Other("no open file".into())),
            ),
        }
    }

    fn close_file(&mut self, id: RequestId, aborted: bool) {
        match self.file.take_if(|file| file.id() == id) {
            Some(file) => file.send(FileOp::Close { aborted }),
            // Only a finished upload waits for an answer to its close.
            None if !aborted => {
                let error = StorageError::Other("no open file".into());
                self.answer(id, Completion::Failed(error));
            }
            None => {}
        }
    }

    fn log_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Command(line) => self.log(format_args!("> {line}")),
                Event::LoggedIn { user, access } => {
                    self.log(format_args!("logged in as {user} ({access:?})"))
                }
                // One line per failure, in the form fail2ban filters expect.
                Event::LoginFailed { user } => {
                    self.log(format_args!("login failed for {user} from {}", self.peer))
                }
                Event::TransferEnded {
                    id,
                    verb,
                    path,
                    bytes,
                    completed,
                } => {
                    let path = path.to_string_lossy();
                    let outcome = if completed { "done" } else { "aborted" };
                    match self.started.remove(&id) {
                        Some(start) => {
                            let secs = start.elapsed().as_secs_f64();
                            let rate = bytes as f64 / 1e6 / secs.max(1e-9);
                            self.log(format_args!(
                                "{verb} {path}: {outcome}, {bytes} bytes in {secs:.3} s ({rate:.1} MB/s)"
                            ));
                        }
                        None => self.log(format_args!("{verb} {path}: {outcome}, {bytes} bytes")),
                    }
                }
                other => self.log(format_args!("{other:?}")),
            }
        }
    }

    fn log(&self, message: std::fmt::Arguments<'_>) {
        logging::session(self.number, message);
    }
}
