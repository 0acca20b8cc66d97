//! A tokio driver for the sans-IO [`ftp_proto::client::Session`]: one task per control connection, and an
//! async handle ([`Client`]) to talk to it.
//!
//! ```text
//!  Client (handle)  --Submit-->  driver task  --(SendControl)-->  control connection
//!        ^                         |  ^   ^
//!        '------- Notice ----------'  |   '-- Incoming -- data task (one per transfer, in the data
//!                                     |                    channel shared with the example server:
//!                                     |                    carries out the session's DataActions)
//!                                     '------ Incoming -- sink task (download: writes the user's writer)
//!                                                         source task (upload: reads the user's reader)
//! ```
//!
//! The driver task owns the [`Session`] and runs the loop it shares with the example server's session
//! task (`common/run_loop.rs`): it waits (`tokio::select!`) on the control connection, on one channel of
//! messages from its helper tasks, on the handle's requests and on the session's timer. After every input it drains
//! [`Session::poll_action`] to `None` and carries each action out without waiting for I/O (data-connection
//! and file I/O run in helper tasks that answer through the channel; only binding a listener and closing
//! a data connection, each a system call, are waited for), forwards the session's events to the
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
//! Tests include this file with `#[path]`. Its two other files, the data channel and the run loop shared
//! with the example server, are declared below with a `#[path]` relative to this file, which resolves the
//! same from both.

#![allow(dead_code)] // the CLI and the tests each use a part of the API

#[path = "../common/control.rs"]
mod control;
#[path = "../common/data_channel.rs"]
mod data_channel;
#[path = "../common/tls.rs"]
pub mod tls;
use control::ControlStream;
#[path = "../common/run_loop.rs"]
mod run_loop;

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
use ftp_proto::reply::Reply;
use ftp_proto::time::Timestamp;
use ftp_proto::url::{FtpUrl, UrlHost};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use data_channel::{DataChannels, Link, Settings};
use tls::{ClientTls, ConnectorTls, DataTls};

/// Bytes asked of one read of a data connection or an upload source. 64 KiB keeps the per-chunk cost
/// (a channel message, a session call) negligible next to the bytes.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// How long the driver waits for helper tasks to finish when the session ends.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How a [`Client`] connects, and the session's policy.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The session's configuration (data mode, `EPSV` first or not, timeouts, bounds, whether data
    /// connections are protected once the control connection is: `protect_data`).
    pub session: Config,
    /// How long opening the control connection and receiving the greeting may take (and, with FTPS,
    /// the control connection's TLS handshake).
    pub connect_timeout: Duration,
    /// FTP over TLS (RFC 4217), or plaintext.
    pub ftps: Ftps,
    /// The name the server's certificate must show; by default the host the client connects to (the
    /// URL's host, or the address's IP for [`Client::connect`]).
    pub tls_name: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            session: Config::default(),
            connect_timeout: Duration::from_secs(30),
            ftps: Ftps::Off,
            tls_name: None,
        }
    }
}

/// Whether and how the control connection is protected with TLS.
#[derive(Clone, Default)]
pub enum Ftps {
    /// Plaintext FTP.
    #[default]
    Off,
    /// Explicit FTPS: `AUTH TLS` right after the greeting, before anything else (the login). A server
    /// that does not answer `234` fails the connection ([`DriverError::TlsRefused`]): the client never
    /// goes on in plaintext.
    Explicit(ClientTls),
    /// Implicit FTPS (`ftps://`): TLS from the first byte, before the greeting.
    Implicit(ClientTls),
}

impl Ftps {
    /// The trust settings, if TLS is on.
    fn tls(&self) -> Option<&ClientTls> {
        match self {
            Ftps::Off => None,
            Ftps::Explicit(tls) | Ftps::Implicit(tls) => Some(tls),
        }
    }
}

impl fmt::Debug for Ftps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ftps::Off => "Off",
            Ftps::Explicit(_) => "Explicit",
            Ftps::Implicit(_) => "Implicit",
        })
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
    /// The server did not accept `AUTH TLS` (its reply): explicit FTPS was asked for, so the client
    /// does not go on in plaintext.
    TlsRefused(Reply),
    /// The control connection's TLS handshake failed (certificate not trusted, protocol error,
    /// timeout), or TLS was asked for without a TLS configuration.
    Tls(io::Error),
    /// The server refused a transfer (its reply) whose data connection's TLS handshake did not resume
    /// the control connection's session: with TLS 1.3 the client had no session ticket left (rustls
    /// uses each once, and the server sent too few; see `tls::ClientTls::tls12_only`).
    TlsNotResumed(Reply),
    /// The driver task is gone (the session ended).
    Gone,
}

impl DriverError {
    /// The server's negative reply behind this error, if it is one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            DriverError::Session(ClientError::Reply(reply)) | DriverError::TlsNotResumed(reply) => {
                Some(reply)
            }
            _ => None,
        }
    }

    /// The error as the session would report it (local failures count as a closed session), for
    /// state machines such as [`FxpTransfer`] that consume session events.
    fn to_client_error(&self) -> ClientError {
        match self {
            DriverError::Session(error) => error.clone(),
            DriverError::TlsNotResumed(reply) => ClientError::Reply(reply.clone()),
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
            DriverError::TlsRefused(reply) => write!(
                f,
                "the server refused TLS (AUTH TLS: {reply}); not going on in plaintext"
            ),
            DriverError::Tls(error) => {
                write!(f, "TLS handshake failed: {error}")?;
                let rustls_error = error
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<rustls::Error>());
                if let Some(rustls::Error::InvalidCertificate(_)) = rustls_error {
                    f.write_str(
                        " (the server's certificate is not trusted: give its CA with --ca-file)",
                    )?;
                }
                Ok(())
            }
            DriverError::TlsNotResumed(reply) => write!(
                f,
                "{reply} (the data connection did not resume the control connection's TLS session, \
                 which the server requires: no TLS 1.3 session ticket was left, each being used once; \
                 TLS 1.2 sessions do not run out)"
            ),
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
    /// The control connection was protected when the session started (explicit or implicit FTPS).
    secured: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("info", &self.info).finish()
    }
}

impl Client {
    /// Connects to `addr`, starts the driver task and waits for the server's greeting. With
    /// [`ClientOptions::ftps`], TLS comes first (implicit) or right after the greeting (explicit); the
    /// server's certificate must name [`ClientOptions::tls_name`], by default `addr`'s IP.
    pub async fn connect(addr: SocketAddr, options: ClientOptions) -> Result<Client, DriverError> {
        let name = options
            .tls_name
            .clone()
            .unwrap_or_else(|| addr.ip().to_string());
        Client::connect_named(addr, &name, options).await
    }

    /// [`Client::connect`], checking the certificate against `name` (unless `tls_name` says otherwise).
    async fn connect_named(
        addr: SocketAddr,
        name: &str,
        options: ClientOptions,
    ) -> Result<Client, DriverError> {
        let limit = options.connect_timeout;
        let stream = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(DriverError::Connect(error)),
            Err(_) => return Err(DriverError::Connect(io::ErrorKind::TimedOut.into())),
        };
        let name = options.tls_name.as_deref().unwrap_or(name);
        // One session store per control connection, shared with its data connections only.
        let connector = match options.ftps.tls() {
            Some(tls) => Some(tls.for_connection(name).map_err(DriverError::Tls)?),
            None => None,
        };
        let implicit = matches!(options.ftps, Ftps::Implicit(_));
        let info = connection_info(&stream)?;
        let mut control = ControlStream::plain(stream);
        if let (true, Some(connector)) = (implicit, &connector) {
            // Implicit FTPS: the greeting already comes over TLS.
            control
                .connect_tls(connector, limit)
                .await
                .map_err(DriverError::Tls)?;
        }
        let mut client = Client::start(
            control,
            info,
            Arc::new(options.session),
            connector,
            implicit,
        );
        let greeted = match tokio::time::timeout(limit, client.greeting_reply()).await {
            Ok(result) => result,
            Err(_) => Err(DriverError::Session(ClientError::Timeout)),
        };
        if let Err(error) = greeted {
            // Nobody to say goodbye to: don't leave the task waiting for a greeting.
            client.task.abort();
            return Err(error);
        }
        if let Ftps::Explicit(_) = options.ftps {
            // Before anything else, so that no password goes out in plaintext.
            match client.run(Request::SecureControl).await {
                Ok(_) => {}
                Err(DriverError::Session(ClientError::Reply(reply))) => {
                    // Dropping the handle says `QUIT` (in plaintext: nothing secret in it).
                    return Err(DriverError::TlsRefused(reply));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(client)
    }

    /// Connects to the URL's host and port and logs in as the URL says (anonymously when it names no
    /// user, as RFC 1738 §3.2.1 says). An `ftps://` URL is implicit FTPS whatever
    /// [`ClientOptions::ftps`] says, with its trust settings (the system's CAs if it had none); the
    /// certificate must name the URL's host.
    pub async fn connect_url(
        url: &FtpUrl,
        mut options: ClientOptions,
    ) -> Result<Client, DriverError> {
        if url.is_implicit_tls() {
            let tls = match &options.ftps {
                Ftps::Explicit(tls) | Ftps::Implicit(tls) => tls.clone(),
                Ftps::Off => ClientTls::new(None, false).map_err(DriverError::Tls)?,
            };
            options.ftps = Ftps::Implicit(tls);
        }
        let addr = resolve(url).await?;
        let name = match url.host() {
            UrlHost::Name(name) => name.clone(),
            UrlHost::Ipv4(ip) => ip.to_string(),
            UrlHost::Ipv6(ip) => ip.to_string(),
        };
        let mut client = Client::connect_named(addr, &name, options).await?;
        let login = requests_for_url(url, Timestamp::UNIX_EPOCH)
            .into_iter()
            .find(|request| matches!(request, Request::Login { .. }));
        if let Some(login) = login {
            client.run(login).await?;
        }
        Ok(client)
    }

    /// Starts the driver task on an open control connection (already TLS if `implicit`).
    fn start(
        control: ControlStream,
        info: ConnectionInfo,
        config: Arc<Config>,
        tls: Option<ConnectorTls>,
        implicit: bool,
    ) -> Client {
        let (submit, submissions) = unbounded_channel();
        let (notices_tx, notices) = unbounded_channel();
        let write_timeout = config.reply_timeout;
        let session = if implicit {
            Session::with_implicit_tls(config, info, now())
        } else {
            Session::new(config, info, now())
        };
        let secured = tls.is_some();
        let task = tokio::spawn(run_driver(
            session,
            info,
            write_timeout,
            control,
            tls,
            submissions,
            notices_tx,
        ));
        Client {
            submit,
            notices,
            held: VecDeque::new(),
            task,
            info,
            greeting: None,
            features: None,
            secured,
        }
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

    /// Whether the session runs FTPS (its control connection was protected with TLS at the start).
    pub fn is_secured(&self) -> bool {
        self.secured
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

/// The control connection's two ends; commands are small and answered one by one, so Nagle is off.
fn connection_info(stream: &TcpStream) -> Result<ConnectionInfo, DriverError> {
    let _ = stream.set_nodelay(true);
    Ok(ConnectionInfo {
        local: stream.local_addr().map_err(DriverError::Connect)?,
        peer: stream.peer_addr().map_err(DriverError::Connect)?,
    })
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
/// host. Set the transfer type on both sessions first. When both sessions run FTPS, the copy is
/// protected too ([`FxpTransfer::protected`], after asking both servers' `FEAT`): `SSCN` or `CPSV`
/// make one server the TLS client of the data connection between them.
pub async fn fxp_copy(
    destination: &mut Client,
    source: &mut Client,
    mut fxp: FxpTransfer,
) -> Result<(), FxpError> {
    if destination.is_secured() && source.is_secured() && fxp.tls_client().is_none() {
        let destination_features = destination
            .features()
            .await
            .map_err(|e| FxpError::Destination(e.to_client_error()))?;
        let source_features = source
            .features()
            .await
            .map_err(|e| FxpError::Source(e.to_client_error()))?;
        fxp = fxp.protected(&destination_features, &source_features)?;
    }
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
    /// A server that stops reading commands fails the session after this long (the reply timeout).
    write_timeout: Duration,
    incoming: UnboundedSender<Incoming>,
    notices: UnboundedSender<Notice>,
    data: DataChannels<RequestId, UnboundedSender<Incoming>>,
    sinks: HashMap<RequestId, Sink>,
    sources: HashMap<RequestId, UnboundedSender<()>>,
    /// Local failures that override a request's result.
    local_errors: HashMap<RequestId, io::Error>,
    /// The control connection's TLS (`None`: plaintext only; `AUTH TLS` then fails).
    tls: Option<ConnectorTls>,
    /// Failed control handshakes, for their request's result.
    tls_errors: HashMap<RequestId, io::Error>,
    /// Transfers whose data connection's TLS handshake did not resume the control connection's session.
    not_resumed: HashSet<RequestId>,
    /// [`ConnectorTls::unresumable_handshakes`] when the last request completed: more now means the
    /// request's data connection had no session to offer (the answer above may come after the
    /// server's refusal; this count is taken before the handshake starts).
    unresumable_seen: u64,
    /// Requests the driver made itself (the final `QUIT`): their completions are nobody's business.
    internal: HashSet<RequestId>,
    /// Control bytes not yet written.
    out: Vec<u8>,
}

async fn run_driver(
    session: Session,
    info: ConnectionInfo,
    write_timeout: Duration,
    mut control: ControlStream,
    tls: Option<ConnectorTls>,
    submissions: UnboundedReceiver<Submit>,
    notices: UnboundedSender<Notice>,
) {
    let (incoming, messages) = unbounded_channel();
    // An implicit FTPS connection's handshake is done already.
    let unresumable_seen = tls.as_ref().map_or(0, ConnectorTls::unresumable_handshakes);
    let settings = Settings {
        local_ip: info.local.ip().to_canonical(),
        connect_from_local_ip: false,
        // None of the driver's own: the session's data timeout closes a listener nobody connects to.
        accept_timeout: None,
        reuse_address: false,
        backlog: 1,
        // Protected data connections offer this control connection's TLS session (its own store).
        tls: tls.clone().map(DataTls::Client),
        // Servers often end a download's TLS with a bare TCP close; the 226 confirms the transfer.
        strict_tls_eof: false,
    };
    let mut driver = Driver {
        session,
        write_timeout,
        data: DataChannels::new(incoming.clone(), settings),
        incoming,
        notices,
        sinks: HashMap::new(),
        sources: HashMap::new(),
        local_errors: HashMap::new(),
        tls,
        tls_errors: HashMap::new(),
        not_resumed: HashSet::new(),
        unresumable_seen,
        internal: HashSet::new(),
        out: Vec::new(),
    };
    let handle = Some(submissions);
    run_loop::run(&mut driver, &mut control, messages, handle).await;
    let _ = control.shutdown().await;
    driver.data.close_all().await;
    driver.finish();
}

/// The client's part of the shared loop: the handle's requests go to the session too, and when the
/// handle is gone the driver says goodbye (`QUIT`, refused if the session already closes).
impl run_loop::Driver for Driver {
    type Message = Incoming;
    type Request = Submit;

    /// Drains and performs the session's actions, forwards its events and writes the control bytes.
    /// `Break` when the session is over or the control connection broke.
    async fn carry_out(&mut self, control: &mut ControlStream) -> ControlFlow<()> {
        let mut flow = ControlFlow::Continue(());
        while let Some(action) = self.session.poll_action() {
            let step = match action {
                // The switches happen between the bytes before them and those after.
                Action::SecureControl { id } => self.secure_control(control, id).await,
                Action::ClearControl => self.clear_control(control).await,
                action => self.perform(action).await,
            };
            if step.is_break() {
                flow = ControlFlow::Break(());
            }
        }
        while let Some(event) = self.session.poll_event() {
            self.forward(event).await;
        }
        if self.flush(control).await.is_break() {
            return ControlFlow::Break(());
        }
        flow
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.session.poll_timeout()
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

    /// Feeds a helper's message to the session (or to the driver's own bookkeeping).
    fn on_message(&mut self, message: Incoming) {
        match message {
            Incoming::Completion(id, completion) => {
                if let DataCompletion::Secured { resumed: false } = completion {
                    self.not_resumed.insert(id);
                }
                self.session.handle_completion(now(), id, completion)
            }
            Incoming::Data(id, chunk) => self.session.handle_data(now(), id, chunk),
            Incoming::LocalFailed(id, error) => {
                self.local_errors.entry(id).or_insert(error);
            }
        }
    }

    fn on_request(&mut self, submit: Submit) {
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

    fn on_handle_closed(&mut self) {
        self.request_internal(Request::Quit);
    }
}

impl Driver {
    /// Writes the pending control bytes. On failure the session learns the connection is gone (it
    /// fails what is pending) and the loop ends.
    async fn flush(&mut self, control: &mut ControlStream) -> ControlFlow<()> {
        if self.out.is_empty() {
            return ControlFlow::Continue(());
        }
        let written = tokio::time::timeout(self.write_timeout, control.write_all(&self.out)).await;
        self.out.clear();
        if matches!(written, Ok(Ok(()))) {
            return ControlFlow::Continue(());
        }
        self.control_lost().await;
        ControlFlow::Break(())
    }

    /// The control connection is gone: the session fails what is pending; its last actions and
    /// events are carried out (no control bytes can be written any more).
    async fn control_lost(&mut self) {
        self.session.handle_control_eof();
        while let Some(action) = self.session.poll_action() {
            // A switch of the control connection is moot now (`perform` ignores it).
            let _ = self.perform(action).await;
        }
        while let Some(event) = self.session.poll_event() {
            self.forward(event).await;
        }
    }

    /// `AUTH TLS` was answered `234`: the client's TLS handshake on the control connection, after
    /// the bytes written before it. A failed handshake leaves no connection to go on with.
    async fn secure_control(
        &mut self,
        control: &mut ControlStream,
        id: RequestId,
    ) -> ControlFlow<()> {
        if self.flush(control).await.is_break() {
            return ControlFlow::Break(());
        }
        let secured = match &self.tls {
            Some(tls) => control.connect_tls(tls, self.write_timeout).await,
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TLS requested without a TLS configuration",
            )),
        };
        match secured {
            Ok(()) => {
                let secured = DataCompletion::Secured { resumed: false };
                self.session.handle_completion(now(), id, secured);
                ControlFlow::Continue(())
            }
            Err(error) => {
                let failed = DataCompletion::Failed(DataError::from(&error));
                self.handshake_failed(id, error);
                self.session.handle_completion(now(), id, failed);
                self.control_lost().await;
                ControlFlow::Break(())
            }
        }
    }

    /// `CCC` was answered `200`: TLS ends, the control connection goes on in plaintext.
    async fn clear_control(&mut self, control: &mut ControlStream) -> ControlFlow<()> {
        if self.flush(control).await.is_break() {
            return ControlFlow::Break(());
        }
        if control.end_tls(self.write_timeout).await.is_ok() {
            return ControlFlow::Continue(());
        }
        self.control_lost().await;
        ControlFlow::Break(())
    }

    /// Keeps a failed handshake's error for the request's result.
    fn handshake_failed(&mut self, id: RequestId, error: io::Error) {
        self.tls_errors.entry(id).or_insert(error);
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

    /// Carries out one action; helper tasks answer through the channel. Only binding a listener and
    /// closing a data connection wait.
    async fn perform(&mut self, action: Action) -> ControlFlow<()> {
        match action {
            Action::SendControl(bytes) => self.out.extend_from_slice(&bytes),
            Action::Data(action) => self.data.perform(action).await,
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
            // `carry_out` switches the control connection; these never come here.
            Action::SecureControl { .. } | Action::ClearControl => {}
            Action::CloseControl => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// Answers an action through the channel, so that it reaches the session after the current drain.
    fn answer(&self, id: RequestId, completion: DataCompletion) {
        let _ = self.incoming.send(Incoming::Completion(id, completion));
    }

    /// Passes a session event on to the handle; a completed request's helpers are let go.
    async fn forward(&mut self, event: Event) {
        let Event::Completed { id, result } = event else {
            let _ = self.notices.send(Notice::Event(event));
            return;
        };
        // The session closed the transfer's ends already; whatever a helper still holds is moot.
        self.sources.remove(&id);
        if let Some(sink) = self.sinks.remove(&id) {
            sink.task.abort();
        }
        let close = DataAction::Close { id, aborted: true };
        self.data.perform(close).await;
        let local_error = self.local_errors.remove(&id);
        let tls_error = self.tls_errors.remove(&id);
        let unresumable = self.tls.as_ref().map(ConnectorTls::unresumable_handshakes);
        let fresh_handshake = unresumable.is_some_and(|count| count > self.unresumable_seen);
        self.unresumable_seen = unresumable.unwrap_or_default();
        let not_resumed = self.not_resumed.remove(&id) || fresh_handshake;
        if self.internal.remove(&id) {
            return;
        }
        let result = match (local_error, tls_error, result) {
            (Some(error), _, _) => Err(DriverError::Local(error)),
            (None, Some(error), Err(_)) => Err(DriverError::Tls(error)),
            (None, _, Err(ClientError::Reply(reply))) if not_resumed => {
                Err(DriverError::TlsNotResumed(reply))
            }
            (None, _, result) => result.map_err(DriverError::Session),
        };
        let _ = self.notices.send(Notice::Completed { id, result });
    }

    /// After the session ended (and its data connections were reset): stops every other helper.
    fn finish(&mut self) {
        self.sources.clear();
        for (_, sink) in self.sinks.drain() {
            sink.task.abort();
        }
    }
}

// ================================================================================================
// Helper tasks: the local file ends (the data connections are in `data_channel`)
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

/// The data tasks answer through the driver task's channel.
impl Link<RequestId> for UnboundedSender<Incoming> {
    fn answer(&self, id: RequestId, completion: DataCompletion) -> bool {
        self.send(Incoming::Completion(id, completion)).is_ok()
    }

    fn chunk(&self, id: RequestId, chunk: Bytes) -> bool {
        self.send(Incoming::Data(id, chunk)).is_ok()
    }

    fn buffer(&self) -> BytesMut {
        BytesMut::with_capacity(CHUNK_SIZE)
    }
}
