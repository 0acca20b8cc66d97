//! A tokio driver for the sans-IO [`ftp_proto::client::Session`]: one task per control connection, and an
//! async handle ([`Client`]) to talk to it.
//!
//! ```text
//!  Client (handle)  --Submit-->  driver task  --(SendControl)-->  control connection
//!        ^                         |  ^   ^
//!        '------- Notice ----------'  |   '-- Incoming -- data task (one per transfer: carries out the
//!                                     |                    session's DataActions: connect or listen and
//!                                     |                    accept, send, receive, close)
//!                                     '------ Incoming -- sink task (download: writes the user's writer)
//!                                                         source task (upload: reads the user's reader)
//! ```
//!
//! The driver task owns the [`Session`] and runs one loop, like the example server's session task: it
//! waits (`tokio::select!`) on the control connection, on one channel of messages from its helper tasks,
//! on the handle's requests and on the session's timer. After every input it drains
//! [`Session::poll_action`] to `None` and carries each action out without waiting (data-connection and
//! file I/O run in helper tasks that answer through the channel), forwards the session's events to the
//! handle, and writes the control bytes. So the control connection is read at all times, even during a
//! transfer, and chunks travel as [`Bytes`] from socket to file and back without copies.
//!
//! Flow control is the session's: every chunk written, to the data connection or to the user's writer,
//! is answered with `Written`, and the session keeps at most `Config::transfer_window` chunks in flight.
//! A slow disk therefore stops the session reading the data connection (TCP then slows the server down):
//! memory stays bounded whatever the disk's speed. When the session closes a download's sink after its
//! last chunk, the sink task flushes and shuts the writer down before answering, and the session reports
//! the download only then, so when [`Client::download`] returns the local file is complete. A failed or
//! aborted transfer drops its writer where it stands (a stuck writer cannot hold up the failure).
//!
//! This file is self-contained so that tests can include it with `#[path]`.

#![allow(dead_code)] // the CLI and the tests each use a part of the API

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ftp_proto::client::fxp::{FxpError, FxpTransfer, Side};
use ftp_proto::client::{
    Action, ClientError, Config, ConnectionInfo, DataAction, DataCompletion, DataError, Event,
    LocalAction, Outcome, Request, RequestId, Session, UsageError, requests_for_url,
};
use ftp_proto::command::Pathname;
use ftp_proto::hostport::NetworkProtocol;
use ftp_proto::reply::Reply;
use ftp_proto::time::Timestamp;
use ftp_proto::url::{FtpUrl, UrlHost};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bytes asked of one read of a data connection or an upload source. 64 KiB keeps the per-chunk cost
/// (a channel message, a session call) negligible next to the bytes.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// Bytes read from the control connection at a time.
const CONTROL_READ_SIZE: usize = 4096;

/// How long the driver waits for helper tasks to finish when the session ends.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How a [`Client`] connects, and the session's policy.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The session's configuration (data mode, `EPSV` first or not, timeouts, bounds).
    pub session: Config,
    /// How long opening the control connection and receiving the greeting may take.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            session: Config::default(),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl ClientOptions {
    /// Sets every timeout (connect, reply, data) to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> ClientOptions {
        self.connect_timeout = timeout;
        self.session.reply_timeout = timeout;
        self.session.data_timeout = timeout;
        self
    }
}

/// Where a transfer's bytes go or come from.
pub enum Stream {
    /// No local stream: listings, commands; a download without one discards its bytes, an upload without
    /// one sends an empty file.
    None,
    /// Downloaded bytes are written here (converted to local line ends in TYPE A), then it is flushed and
    /// shut down.
    Sink(Box<dyn AsyncWrite + Send + Unpin>),
    /// Uploaded bytes are read from here to its end.
    Source(Box<dyn AsyncRead + Send + Unpin>),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::None => "None",
            Stream::Sink(_) => "Sink",
            Stream::Source(_) => "Source",
        })
    }
}

/// Why something the [`Client`] was asked failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DriverError {
    /// The control connection could not be opened (or the host name not resolved).
    Connect(io::Error),
    /// The session failed the request: the server's refusal, a timeout, a broken data connection...
    Session(ClientError),
    /// The session did not accept the request (closed, or too many queued).
    Usage(UsageError),
    /// The local file (a download's writer or an upload's reader) failed.
    Local(io::Error),
    /// The driver task is gone (the session ended).
    Gone,
}

impl DriverError {
    /// The server's negative reply behind this error, if it is one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            DriverError::Session(ClientError::Reply(reply)) => Some(reply),
            _ => None,
        }
    }

    /// The error as the session would report it (local failures count as a closed session), for
    /// state machines such as [`FxpTransfer`] that consume session events.
    fn to_client_error(&self) -> ClientError {
        match self {
            DriverError::Session(error) => error.clone(),
            _ => ClientError::Closed,
        }
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Connect(error) => write!(f, "cannot connect: {error}"),
            // The reply as the server wrote it: `550 No such file or directory.`
            DriverError::Session(ClientError::Reply(reply)) => write!(f, "{reply}"),
            DriverError::Session(error) => write!(f, "{error}"),
            DriverError::Usage(error) => write!(f, "{error}"),
            DriverError::Local(error) => write!(f, "local file: {error}"),
            DriverError::Gone => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for DriverError {}

impl From<ClientError> for DriverError {
    fn from(error: ClientError) -> Self {
        DriverError::Session(error)
    }
}

/// What the driver task reports to its handle.
#[derive(Debug)]
pub enum Notice {
    /// A session event other than a completion (greeting, preliminary reply, progress, closing).
    Event(Event),
    /// A request finished (for a download, after its sink was flushed).
    Completed {
        /// The request.
        id: RequestId,
        /// Its outcome.
        result: Result<Outcome, DriverError>,
    },
}

/// A request for the driver task.
struct Submit {
    request: Request,
    stream: Stream,
    reply: oneshot::Sender<Result<RequestId, UsageError>>,
}

/// A handle to a client session running in its driver task. Dropping it quits the session.
pub struct Client {
    submit: UnboundedSender<Submit>,
    notices: UnboundedReceiver<Notice>,
    /// Notices received while waiting for another request's completion.
    held: VecDeque<Notice>,
    task: JoinHandle<()>,
    info: ConnectionInfo,
    greeting: Option<Reply>,
    features: Option<ftp_proto::client::FeatureSet>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("info", &self.info).finish()
    }
}

impl Client {
    /// Connects to `addr`, starts the driver task and waits for the server's greeting.
    pub async fn connect(addr: SocketAddr, options: ClientOptions) -> Result<Client, DriverError> {
        let limit = options.connect_timeout;
        let stream = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(DriverError::Connect(error)),
            Err(_) => return Err(DriverError::Connect(io::ErrorKind::TimedOut.into())),
        };
        let mut client = Client::start(stream, Arc::new(options.session))?;
        let greeted = match tokio::time::timeout(limit, client.greeting_reply()).await {
            Ok(result) => result,
            Err(_) => Err(DriverError::Session(ClientError::Timeout)),
        };
        if greeted.is_err() {
            // Nobody to say goodbye to: don't leave the task waiting for a greeting.
            client.task.abort();
        }
        greeted.map(|()| client)
    }

    /// Connects to the URL's host and port and logs in as the URL says (anonymously when it names no
    /// user, as RFC 1738 §3.2.1 says).
    pub async fn connect_url(url: &FtpUrl, options: ClientOptions) -> Result<Client, DriverError> {
        let addr = resolve(url).await?;
        let mut client = Client::connect(addr, options).await?;
        let login = requests_for_url(url, Timestamp::UNIX_EPOCH)
            .into_iter()
            .find(|request| matches!(request, Request::Login { .. }));
        if let Some(login) = login {
            client.run(login).await?;
        }
        Ok(client)
    }

    /// Starts the driver task on an open control connection.
    fn start(stream: TcpStream, config: Arc<Config>) -> Result<Client, DriverError> {
        let info = ConnectionInfo {
            local: stream.local_addr().map_err(DriverError::Connect)?,
            peer: stream.peer_addr().map_err(DriverError::Connect)?,
        };
        // Commands are small and answered one by one: Nagle would only add delay.
        let _ = stream.set_nodelay(true);
        let (submit, submissions) = unbounded_channel();
        let (notices_tx, notices) = unbounded_channel();
        let write_timeout = config.reply_timeout;
        let session = Session::new(config, info, now());
        let task = tokio::spawn(run_driver(
            session,
            info,
            write_timeout,
            stream,
            submissions,
            notices_tx,
        ));
        Ok(Client {
            submit,
            notices,
            held: VecDeque::new(),
            task,
            info,
            greeting: None,
            features: None,
        })
    }

    /// Waits for `Event::Connected` (or the session's end).
    async fn greeting_reply(&mut self) -> Result<(), DriverError> {
        loop {
            match self.notices.recv().await {
                Some(Notice::Event(Event::Connected(reply))) => {
                    self.greeting = Some(reply);
                    return Ok(());
                }
                Some(Notice::Event(Event::Closed { error })) => {
                    return Err(error.map_or(DriverError::Gone, DriverError::Session));
                }
                Some(_) => {}
                None => return Err(DriverError::Gone),
            }
        }
    }

    /// The control connection's two ends.
    pub fn info(&self) -> ConnectionInfo {
        self.info
    }

    /// The server's 220 greeting.
    pub fn greeting(&self) -> Option<&Reply> {
        self.greeting.as_ref()
    }

    /// Queues a request (with its local stream, for transfers) and returns its id; the result comes as
    /// [`Notice::Completed`] (see [`Client::wait`]).
    pub async fn submit(
        &mut self,
        request: Request,
        stream: Stream,
    ) -> Result<RequestId, DriverError> {
        let (reply, answer) = oneshot::channel();
        let submit = Submit {
            request,
            stream,
            reply,
        };
        self.submit.send(submit).map_err(|_| DriverError::Gone)?;
        match answer.await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(error)) => Err(DriverError::Usage(error)),
            Err(_) => Err(DriverError::Gone),
        }
    }

    /// The next notice of the session (`None` once the driver task ended). Cancel-safe.
    pub async fn next_notice(&mut self) -> Option<Notice> {
        match self.held.pop_front() {
            Some(notice) => Some(notice),
            None => self.notices.recv().await,
        }
    }

    /// Waits for request `id` to complete, calling `progress` with the bytes transferred so far. Other
    /// requests' completions and the session's end are kept for [`Client::next_notice`]; other events
    /// (preliminary replies, progress of other requests) are dropped, so that a long run of `wait`s
    /// keeps no backlog.
    pub async fn wait(
        &mut self,
        id: RequestId,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Outcome, DriverError> {
        let held = self
            .held
            .iter()
            .position(|n| matches!(n, Notice::Completed { id: i, .. } if *i == id));
        if let Some(Notice::Completed { result, .. }) = held.and_then(|i| self.held.remove(i)) {
            return result;
        }
        loop {
            match self.notices.recv().await {
                Some(Notice::Completed { id: done, result }) if done == id => return result,
                Some(Notice::Event(Event::Progress { id: of, bytes })) => {
                    if of == id {
                        progress(bytes);
                    }
                }
                Some(notice @ (Notice::Completed { .. } | Notice::Event(Event::Closed { .. }))) => {
                    self.held.push_back(notice)
                }
                Some(Notice::Event(_)) => {}
                None => return Err(DriverError::Gone),
            }
        }
    }

    /// Runs one request without a local stream and returns its outcome.
    pub async fn run(&mut self, request: Request) -> Result<Outcome, DriverError> {
        let id = self.submit(request, Stream::None).await?;
        self.wait(id, &mut |_| {}).await
    }

    /// Downloads `path` (from byte `offset`, with `REST`) into `sink`. Returns once the sink is flushed.
    pub async fn download(
        &mut self,
        path: Pathname,
        offset: u64,
        sink: impl AsyncWrite + Send + Unpin + 'static,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64, DriverError> {
        let request = Request::Retrieve { path, offset };
        let id = self.submit(request, Stream::Sink(Box::new(sink))).await?;
        match self.wait(id, progress).await? {
            Outcome::Retrieved { bytes } => Ok(bytes),
            other => Err(unexpected(other)),
        }
    }

    /// Uploads `source` to `path` (`STOR`, with `REST offset` when `offset > 0`; `APPE` if `append`).
    pub async fn upload(
        &mut self,
        path: Pathname,
        offset: u64,
        append: bool,
        source: impl AsyncRead + Send + Unpin + 'static,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64, DriverError> {
        let request = Request::Store {
            path,
            offset,
            append,
        };
        let id = self
            .submit(request, Stream::Source(Box::new(source)))
            .await?;
        match self.wait(id, progress).await? {
            Outcome::Stored { bytes } => Ok(bytes),
            other => Err(unexpected(other)),
        }
    }

    /// `FEAT`, asked once per session (a server that refuses it has no features).
    pub async fn features(&mut self) -> Result<ftp_proto::client::FeatureSet, DriverError> {
        if let Some(features) = &self.features {
            return Ok(features.clone());
        }
        let features = match self.run(Request::Features).await {
            Ok(Outcome::Features(features)) => features,
            Ok(_) | Err(DriverError::Session(ClientError::Reply(_))) => Default::default(),
            Err(error) => return Err(error),
        };
        self.features = Some(features.clone());
        Ok(features)
    }

    /// Sends `QUIT` and waits for the driver task to end.
    pub async fn quit(mut self) -> Result<(), DriverError> {
        let result = match self.run(Request::Quit).await {
            Ok(_) => Ok(()),
            // The server closed first: the session is over all the same.
            Err(DriverError::Session(ClientError::Closed))
            | Err(DriverError::Usage(UsageError::Closed))
            | Err(DriverError::Gone) => Ok(()),
            Err(error) => Err(error),
        };
        let task = &mut self.task;
        if tokio::time::timeout(CLOSE_WAIT, task).await.is_err() {
            self.task.abort();
        }
        result
    }
}

/// A driver mistake (a request completed with another request's kind of outcome).
fn unexpected(outcome: Outcome) -> DriverError {
    DriverError::Local(io::Error::other(format!("unexpected outcome {outcome:?}")))
}

/// The address of a URL's host (the first one the resolver gives).
pub async fn resolve(url: &FtpUrl) -> Result<SocketAddr, DriverError> {
    let port = url.port();
    match url.host() {
        UrlHost::Ipv4(ip) => Ok(SocketAddr::new(IpAddr::V4(*ip), port)),
        UrlHost::Ipv6(ip) => Ok(SocketAddr::new(IpAddr::V6(*ip), port)),
        UrlHost::Name(name) => {
            let mut addrs = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(DriverError::Connect)?;
            addrs.next().ok_or_else(|| {
                DriverError::Connect(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no address for {name}"),
                ))
            })
        }
    }
}

/// Copies `source_path` on `source`'s server to `destination_path` on `destination`'s server, the data
/// going directly between the servers ([`FxpTransfer`]). The source server must allow a `PORT` to another
/// host. Set the transfer type on both sessions first.
pub async fn fxp_copy(
    destination: &mut Client,
    source: &mut Client,
    mut fxp: FxpTransfer,
) -> Result<(), FxpError> {
    loop {
        while let Some((side, request)) = fxp.poll_request() {
            let client = match side {
                Side::Destination => &mut *destination,
                Side::Source => &mut *source,
            };
            let submitted = match client.submit(request, Stream::None).await {
                Ok(id) => Ok(id),
                Err(DriverError::Usage(error)) => Err(error),
                Err(_) => Err(UsageError::Closed),
            };
            fxp.handle_submitted(side, submitted);
        }
        if let Some(result) = fxp.result() {
            return result.clone();
        }
        let (side, notice) = tokio::select! {
            notice = destination.next_notice() => (Side::Destination, notice),
            notice = source.next_notice() => (Side::Source, notice),
        };
        let event = match notice {
            Some(Notice::Event(event)) => event,
            Some(Notice::Completed { id, result }) => Event::Completed {
                id,
                result: result.map_err(|error| error.to_client_error()),
            },
            None => {
                return Err(match side {
                    Side::Destination => FxpError::Destination(ClientError::Closed),
                    Side::Source => FxpError::Source(ClientError::Closed),
                });
            }
        };
        fxp.handle_event(side, &event);
    }
}

/// The session's clock, on tokio's time (so it follows `tokio::time::pause` in tests).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

// ================================================================================================
// The driver task
// ================================================================================================

/// What helper tasks send to the driver task.
#[derive(Debug)]
enum Incoming {
    /// The answer to an action.
    Completion(RequestId, DataCompletion),
    /// A chunk read from the data connection (download, listing) or the source (upload).
    Data(RequestId, Bytes),
    /// The user's writer or reader failed (a `DataCompletion::Failed` follows): the request fails with
    /// this error, which says more than its kind.
    LocalFailed(RequestId, io::Error),
}

/// A download's writer task, as the driver sees it.
struct Sink {
    /// The chunks to write; `None` once the session closed the sink after its last write (the task then
    /// flushes and shuts the writer down).
    chunks: Option<UnboundedSender<Bytes>>,
    /// The writer task: stopped at once when the download fails (a writer that blocks must not hold up
    /// the failure).
    task: JoinHandle<()>,
}

struct Driver {
    session: Session,
    info: ConnectionInfo,
    /// A server that stops reading commands fails the session after this long (the reply timeout).
    write_timeout: Duration,
    incoming: UnboundedSender<Incoming>,
    notices: UnboundedSender<Notice>,
    data: HashMap<RequestId, DataChannel<RequestId>>,
    sinks: HashMap<RequestId, Sink>,
    sources: HashMap<RequestId, UnboundedSender<()>>,
    /// Local failures that override a request's result.
    local_errors: HashMap<RequestId, io::Error>,
    /// Requests the driver made itself (the final `QUIT`): their completions are nobody's business.
    internal: HashSet<RequestId>,
    /// Control bytes not yet written.
    out: Vec<u8>,
}

async fn run_driver(
    session: Session,
    info: ConnectionInfo,
    write_timeout: Duration,
    stream: TcpStream,
    mut submissions: UnboundedReceiver<Submit>,
    notices: UnboundedSender<Notice>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (incoming, mut messages) = unbounded_channel();
    let mut driver = Driver {
        session,
        info,
        write_timeout,
        incoming,
        notices,
        data: HashMap::new(),
        sinks: HashMap::new(),
        sources: HashMap::new(),
        local_errors: HashMap::new(),
        internal: HashSet::new(),
        out: Vec::new(),
    };
    let mut buffer = vec![0u8; CONTROL_READ_SIZE];
    let mut control_open = true;
    let mut handle_open = true;
    // One timer, moved as the session's deadline moves.
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    loop {
        if driver.carry_out(&mut writer).await.is_break() {
            break;
        }
        let deadline = driver.session.poll_timeout().map(Instant::from_std);
        if let Some(deadline) = deadline {
            // An elapsed timer would fire again at once: re-arm it even for the same instant.
            if timer.deadline() != deadline || timer.is_elapsed() {
                timer.as_mut().reset(deadline);
            }
        }
        tokio::select! {
            read = reader.read(&mut buffer), if control_open => match read {
                Ok(0) | Err(_) => {
                    control_open = false;
                    driver.session.handle_control_eof();
                }
                Ok(n) => {
                    let bytes = buffer.get(..n).unwrap_or_default();
                    driver.session.handle_control_input(now(), bytes);
                }
            },
            Some(message) = messages.recv() => driver.deliver(message),
            submit = submissions.recv(), if handle_open => match submit {
                Some(submit) => driver.submit(submit),
                None => {
                    // The handle is gone: say goodbye (refused if the session already closes).
                    handle_open = false;
                    driver.request_internal(Request::Quit);
                }
            },
            () = &mut timer, if deadline.is_some() => driver.session.handle_timeout(now()),
        }
    }
    let _ = writer.shutdown().await;
    driver.finish();
}

impl Driver {
    fn submit(&mut self, submit: Submit) {
        let Submit {
            request,
            stream,
            reply,
        } = submit;
        let download = matches!(request, Request::Retrieve { .. });
        let upload = matches!(request, Request::Store { .. });
        let result = self.session.request(now(), request);
        if let Ok(id) = result {
            // Every download gets a sink and every upload a source, so that the session's local actions
            // always find one: without a stream, bytes are discarded or the file is empty.
            match stream {
                Stream::Sink(writer) if download => self.attach_sink(id, writer),
                Stream::Source(reader) if upload => self.attach_source(id, reader),
                _ if download => self.attach_sink(id, Box::new(tokio::io::sink())),
                _ if upload => self.attach_source(id, Box::new(tokio::io::empty())),
                _ => {}
            }
        }
        let _ = reply.send(result);
    }

    /// A request of the driver's own (refused if the session is closing: then it is moot anyway).
    fn request_internal(&mut self, request: Request) {
        if let Ok(id) = self.session.request(now(), request) {
            self.internal.insert(id);
        }
    }

    fn attach_sink(&mut self, id: RequestId, writer: Box<dyn AsyncWrite + Send + Unpin>) {
        let (chunks, chunks_rx) = unbounded_channel();
        let task = tokio::spawn(sink_task(id, writer, chunks_rx, self.incoming.clone()));
        let sink = Sink {
            chunks: Some(chunks),
            task,
        };
        self.sinks.insert(id, sink);
    }

    fn attach_source(&mut self, id: RequestId, reader: Box<dyn AsyncRead + Send + Unpin>) {
        let (reads, reads_rx) = unbounded_channel();
        tokio::spawn(source_task(id, reader, reads_rx, self.incoming.clone()));
        self.sources.insert(id, reads);
    }

    /// Drains and performs the session's actions, forwards its events and writes the control bytes.
    /// `Break` when the session is over or the control connection broke.
    async fn carry_out(&mut self, writer: &mut OwnedWriteHalf) -> ControlFlow<()> {
        let mut flow = ControlFlow::Continue(());
        while let Some(action) = self.session.poll_action() {
            if self.perform(action).is_break() {
                flow = ControlFlow::Break(());
            }
        }
        while let Some(event) = self.session.poll_event() {
            self.forward(event);
        }
        if !self.out.is_empty() {
            let written =
                tokio::time::timeout(self.write_timeout, writer.write_all(&self.out)).await;
            self.out.clear();
            if !matches!(written, Ok(Ok(()))) {
                // The session learns the connection is gone: it fails what is pending.
                self.session.handle_control_eof();
                while let Some(action) = self.session.poll_action() {
                    let _ = self.perform(action);
                }
                while let Some(event) = self.session.poll_event() {
                    self.forward(event);
                }
                return ControlFlow::Break(());
            }
        }
        flow
    }

    /// Carries out one action without waiting: helper tasks answer through the channel.
    fn perform(&mut self, action: Action) -> ControlFlow<()> {
        match action {
            Action::SendControl(bytes) => self.out.extend_from_slice(&bytes),
            Action::Data(action) => self.data_action(action),
            Action::Local(LocalAction::Read { id }) => match self.sources.get(&id) {
                Some(reads) if reads.send(()).is_ok() => {}
                // The source task ended (it failed, and said so): nothing more comes from it.
                _ => self.answer(id, DataCompletion::EndOfData),
            },
            Action::Local(LocalAction::Write { id, data }) => {
                let chunks = self.sinks.get(&id).and_then(|sink| sink.chunks.as_ref());
                if chunks.is_none_or(|chunks| chunks.send(data).is_err()) {
                    // The sink task ended (it failed, and said so): the session no longer writes.
                    let gone = io::ErrorKind::BrokenPipe.into();
                    self.answer(id, DataCompletion::Failed(gone));
                }
            }
            Action::Local(LocalAction::Close { id, aborted }) => {
                // The source task ends when its channel closes.
                self.sources.remove(&id);
                if aborted {
                    // What was written stays; a writer that blocks does not hold anything up.
                    if let Some(sink) = self.sinks.remove(&id) {
                        sink.task.abort();
                    }
                } else if let Some(sink) = self.sinks.get_mut(&id) {
                    // Closing the channel tells the sink task to flush and shut down after the queued
                    // writes, then answer `Written`.
                    sink.chunks = None;
                }
            }
            Action::CloseControl => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// Passes a data-connection action to its data task, starting one for `Connect` and `Listen`.
    fn data_action(&mut self, action: DataAction<RequestId>) {
        match action {
            DataAction::Connect { id, .. } | DataAction::Listen { id, .. } => {
                let incoming = self.incoming.clone();
                let report = move |id, report| {
                    let message = match report {
                        DataReport::Answer(completion) => Incoming::Completion(id, completion),
                        DataReport::Chunk(chunk) => Incoming::Data(id, chunk),
                    };
                    incoming.send(message).is_ok()
                };
                let local_ip = self.info.local.ip().to_canonical();
                // A channel the id had already is dropped, which resets its connection.
                self.data
                    .insert(id, DataChannel::spawn(action, local_ip, report));
            }
            // The client accepts on its transfer's own listener (`listener == id`).
            DataAction::Accept { id, listener } => match self.data.get_mut(&listener) {
                Some(channel) => channel.perform(action),
                None => self.answer(id, not_connected()),
            },
            DataAction::Send { id, .. } | DataAction::Receive { id } => {
                match self.data.get_mut(&id) {
                    Some(channel) => channel.perform(action),
                    None => self.answer(id, not_connected()),
                }
            }
            DataAction::Close { id, .. } => {
                if let Some(mut channel) = self.data.remove(&id) {
                    channel.perform(action);
                }
            }
        }
    }

    /// Answers an action through the channel, so that it reaches the session after the current drain.
    fn answer(&self, id: RequestId, completion: DataCompletion) {
        let _ = self.incoming.send(Incoming::Completion(id, completion));
    }

    /// Feeds a helper's message to the session (or to the driver's own bookkeeping).
    fn deliver(&mut self, message: Incoming) {
        match message {
            Incoming::Completion(id, completion) => {
                self.session.handle_completion(now(), id, completion)
            }
            Incoming::Data(id, chunk) => self.session.handle_data(now(), id, chunk),
            Incoming::LocalFailed(id, error) => {
                self.local_errors.entry(id).or_insert(error);
            }
        }
    }

    /// Passes a session event on to the handle; a completed request's helpers are let go.
    fn forward(&mut self, event: Event) {
        let Event::Completed { id, result } = event else {
            let _ = self.notices.send(Notice::Event(event));
            return;
        };
        // The session closed the transfer's ends already; whatever a helper still holds is moot.
        self.sources.remove(&id);
        if let Some(sink) = self.sinks.remove(&id) {
            sink.task.abort();
        }
        self.data.remove(&id);
        let local_error = self.local_errors.remove(&id);
        if self.internal.remove(&id) {
            return;
        }
        let result = match local_error {
            Some(error) => Err(DriverError::Local(error)),
            None => result.map_err(DriverError::Session),
        };
        let _ = self.notices.send(Notice::Completed { id, result });
    }

    /// After the session ended: stops every helper (a dropped data channel resets its connection).
    fn finish(&mut self) {
        self.data.clear();
        self.sources.clear();
        for (_, sink) in self.sinks.drain() {
            sink.task.abort();
        }
    }
}

fn not_connected() -> DataCompletion {
    DataCompletion::Failed(io::ErrorKind::NotConnected.into())
}

// ================================================================================================
// Helper tasks: the local file ends and the data connection
// ================================================================================================

/// Writes a download's chunks in order, answering `Written` for each; when the channel closes (the
/// session closed the sink after its last write), flushes and shuts the writer down, and answers
/// `Written` once more: the file is stored.
async fn sink_task(
    id: RequestId,
    mut writer: Box<dyn AsyncWrite + Send + Unpin>,
    mut chunks: UnboundedReceiver<Bytes>,
    incoming: UnboundedSender<Incoming>,
) {
    while let Some(chunk) = chunks.recv().await {
        let written = writer.write_all(&chunk).await;
        if !local_answer(&incoming, id, written) {
            return;
        }
    }
    let stored = async {
        writer.flush().await?;
        writer.shutdown().await
    }
    .await;
    local_answer(&incoming, id, stored);
}

/// Answers a write to the user's file: `Written`, or its failure (the error itself goes to the driver,
/// for the user; the session gets its kind). `false` when the task should stop.
fn local_answer(
    incoming: &UnboundedSender<Incoming>,
    id: RequestId,
    result: io::Result<()>,
) -> bool {
    match result {
        Ok(()) => incoming
            .send(Incoming::Completion(id, DataCompletion::Written))
            .is_ok(),
        Err(error) => {
            let failed = DataCompletion::Failed(DataError::from(&error));
            let _ = incoming.send(Incoming::LocalFailed(id, error));
            let _ = incoming.send(Incoming::Completion(id, failed));
            false
        }
    }
}

/// Reads an upload's source, one chunk per request, until the driver drops the channel.
async fn source_task(
    id: RequestId,
    mut reader: Box<dyn AsyncRead + Send + Unpin>,
    mut reads: UnboundedReceiver<()>,
    incoming: UnboundedSender<Incoming>,
) {
    let mut ended = false;
    while reads.recv().await.is_some() {
        if ended {
            let _ = incoming.send(Incoming::Completion(id, DataCompletion::EndOfData));
            continue;
        }
        let mut buffer = BytesMut::with_capacity(CHUNK_SIZE);
        let message = match reader.read_buf(&mut buffer).await {
            Ok(0) => {
                ended = true;
                Incoming::Completion(id, DataCompletion::EndOfData)
            }
            Ok(_) => Incoming::Data(id, buffer.freeze()),
            Err(error) => {
                ended = true;
                let failed = DataCompletion::Failed(DataError::from(&error));
                let _ = incoming.send(Incoming::LocalFailed(id, error));
                Incoming::Completion(id, failed)
            }
        };
        if incoming.send(message).is_err() {
            return;
        }
    }
}

/// What a data task reports about its connection: the answer to an action, or a chunk read.
#[derive(Debug)]
enum DataReport {
    Answer(DataCompletion),
    Chunk(Bytes),
}

/// The driver's end of one data task. Dropping it resets the connection (or drops the listener),
/// unless a clean close is queued.
struct DataChannel<Id> {
    actions: UnboundedSender<DataAction<Id>>,
    /// Resets the connection at once, even in the middle of a blocked read or write. `None` once a
    /// clean close is queued: then the task finishes what is queued and shuts the connection down.
    abort: Option<oneshot::Sender<()>>,
}

impl<Id: Copy + Send + 'static> DataChannel<Id> {
    /// Starts a data task for `first` (a `Connect` or a `Listen`; anything else is answered as not
    /// connected). `local_ip` is the control connection's local IP, where a listener is bound.
    /// `report` passes the task's answers on; `false` from it stops the task.
    fn spawn(
        first: DataAction<Id>,
        local_ip: IpAddr,
        report: impl Fn(Id, DataReport) -> bool + Send + Sync + 'static,
    ) -> DataChannel<Id> {
        let (actions, actions_rx) = unbounded_channel();
        let (abort, abort_rx) = oneshot::channel();
        tokio::spawn(data_task(first, local_ip, actions_rx, abort_rx, report));
        DataChannel {
            actions,
            abort: Some(abort),
        }
    }

    /// Passes an action on, in order; a `Close` resets the connection at once if `aborted`, and
    /// otherwise shuts it down after what is queued.
    fn perform(&mut self, action: DataAction<Id>) {
        match action {
            DataAction::Close { aborted: true, .. } => {
                if let Some(abort) = self.abort.take() {
                    let _ = abort.send(());
                }
            }
            DataAction::Close { aborted: false, .. } => {
                // A task that has ended has nobody to answer: the action is moot.
                let _ = self.actions.send(action);
                self.abort = None;
            }
            _ => {
                let _ = self.actions.send(action);
            }
        }
    }
}

impl<Id> Drop for DataChannel<Id> {
    fn drop(&mut self) {
        if let Some(abort) = self.abort.take() {
            let _ = abort.send(());
        }
    }
}

/// One data connection: opens it as `first` asks, then carries out the session's actions on it in
/// order, answering each through `report`, until a `Close` or the channel's abort.
async fn data_task<Id: Copy + Send>(
    first: DataAction<Id>,
    local_ip: IpAddr,
    mut actions: UnboundedReceiver<DataAction<Id>>,
    abort: oneshot::Receiver<()>,
    report: impl Fn(Id, DataReport) -> bool + Send + Sync,
) {
    // Resolves when the channel asks for an abort (or is dropped without a clean close queued); a
    // sender dropped after `send` was never called on purpose means the close is clean.
    let aborted = async move {
        if abort.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(aborted);
    let answer = |id, completion| report(id, DataReport::Answer(completion));
    // `biased`: an abort wins over a connection attempt or a blocked read or write.
    let opened = tokio::select! {
        biased;
        () = &mut aborted => return,
        opened = open(first, local_ip, &mut actions, &answer) => opened,
    };
    let Some((id, mut stream)) = opened else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let connected = match stream.peer_addr() {
        Ok(peer) => answer(id, DataCompletion::Connected { peer }),
        Err(error) => {
            answer(id, DataCompletion::Failed(error.into()));
            false
        }
    };
    if !connected {
        return;
    }
    loop {
        let action = tokio::select! {
            biased;
            () = &mut aborted => break,
            action = actions.recv() => action,
        };
        let Some(action) = action else { break };
        let done = tokio::select! {
            biased;
            () = &mut aborted => break,
            done = perform(&mut stream, action, &report) => done,
        };
        match done {
            ControlFlow::Continue(()) => {}
            ControlFlow::Break(true) => return, // shut down cleanly
            ControlFlow::Break(false) => break,
        }
    }
    // Cut short: RST rather than FIN, so the server sees the transfer did not end normally.
    let _ = stream.set_zero_linger();
}

/// Opens the connection `first` asks for: dials, or binds a listener, reports its address and accepts
/// one connection once an `Accept` asks for it. Returns the connection and the id of its transfer, or
/// `None` when it failed (answered) or was closed first.
async fn open<Id: Copy>(
    first: DataAction<Id>,
    local_ip: IpAddr,
    actions: &mut UnboundedReceiver<DataAction<Id>>,
    answer: &impl Fn(Id, DataCompletion) -> bool,
) -> Option<(Id, TcpStream)> {
    let failed = |id, error: io::Error| {
        answer(id, DataCompletion::Failed(error.into()));
        None
    };
    match first {
        DataAction::Connect { id, addr } => match TcpStream::connect(addr).await {
            Ok(stream) => Some((id, stream)),
            Err(error) => failed(id, error),
        },
        DataAction::Listen { id, family } => {
            let listener = match listen(local_ip, family) {
                Ok(listener) => listener,
                Err(error) => return failed(id, error),
            };
            match listener.local_addr() {
                Ok(addr) if answer(id, DataCompletion::Listening(addr)) => {}
                Ok(_) => return None,
                Err(error) => return failed(id, error),
            }
            // Until the session asks to accept, there is no connection to act on.
            loop {
                match actions.recv().await? {
                    DataAction::Accept { id, .. } => {
                        return match listener.accept().await {
                            Ok((stream, _)) => Some((id, stream)),
                            Err(error) => failed(id, error),
                        };
                    }
                    DataAction::Send { id, .. } | DataAction::Receive { id } => {
                        answer(id, not_connected());
                    }
                    DataAction::Close { .. } => return None,
                    DataAction::Connect { .. } | DataAction::Listen { .. } => {}
                }
            }
        }
        DataAction::Accept { id, .. }
        | DataAction::Send { id, .. }
        | DataAction::Receive { id } => {
            answer(id, not_connected());
            None
        }
        DataAction::Close { .. } => None,
    }
}

/// A listener of `family` on the control connection's local IP (the server can reach it), or on the
/// unspecified address if that IP is of the other family.
fn listen(local_ip: IpAddr, family: NetworkProtocol) -> io::Result<TcpListener> {
    let ip = match family {
        NetworkProtocol::V4 if !local_ip.is_ipv4() => IpAddr::from([0, 0, 0, 0]),
        NetworkProtocol::V6 if !local_ip.is_ipv6() => IpAddr::from([0u16; 8]),
        _ => local_ip,
    };
    let socket = match ip {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.listen(1)
}

/// One action on the open connection. `Break(true)` after a clean shutdown, `Break(false)` when the
/// connection is to be reset (or nobody listens to the answers any more).
async fn perform<Id: Copy>(
    stream: &mut TcpStream,
    action: DataAction<Id>,
    report: &impl Fn(Id, DataReport) -> bool,
) -> ControlFlow<bool> {
    let answer = |id, completion| report(id, DataReport::Answer(completion));
    let listening = match action {
        DataAction::Send { id, data } => match stream.write_all(&data).await {
            Ok(()) => answer(id, DataCompletion::Written),
            Err(error) => answer(id, DataCompletion::Failed(error.into())),
        },
        DataAction::Receive { id } => {
            // `read_buf` fills spare capacity without zeroing it; the buffer becomes the chunk.
            let mut buffer = BytesMut::with_capacity(CHUNK_SIZE);
            match stream.read_buf(&mut buffer).await {
                Ok(0) => answer(id, DataCompletion::EndOfData),
                Ok(_) => report(id, DataReport::Chunk(buffer.freeze())),
                Err(error) => answer(id, DataCompletion::Failed(error.into())),
            }
        }
        DataAction::Close { aborted: false, .. } => {
            // FIN after the last byte: how the server learns an upload ended.
            let _ = stream.shutdown().await;
            return ControlFlow::Break(true);
        }
        DataAction::Close { aborted: true, .. } => return ControlFlow::Break(false),
        // The connection is open already.
        DataAction::Connect { .. } | DataAction::Listen { .. } | DataAction::Accept { .. } => true,
    };
    if listening {
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(false)
    }
}
