//! The data connections and listeners of one session, for both example drivers: carries out the
//! session's [`DataAction`]s on tokio, each connection or listener in a task of its own, and answers
//! through the driver's channel ([`Link`]), so the driver's task never waits on a data connection and
//! keeps reading the control connection (`ABOR`, `STAT`) during a transfer.
//!
//! The session names every listener and connection with an id, and [`DataChannels`] keeps their tasks by
//! that id. `Listen` binds at once and starts a task owning the listener, `Connect` one that dials;
//! `Accept`, `Send` and `Receive` reach the task in order over a channel. There is no need to accept in
//! advance: the kernel completes the peer's handshake into the listen backlog, and `accept` takes it when
//! the session asks. The accepting task then drops its listener (one connection per listener: the port,
//! and whatever the driver tied to the listener, are free at once) and goes on as the transfer's
//! connection, known by the transfer's id; a later `Close` of the listener's id finds nothing to close.
//!
//! Closing comes in two kinds, and both are waited for (at most [`CLOSE_WAIT`]). A finished transfer
//! (`Close` with `aborted == false`) shuts the socket down cleanly after what is queued, so the peer has
//! seen the end of the data before, on the server, the `226` is even queued. An aborted one interrupts
//! whatever the task is doing and resets the connection (`SO_LINGER` 0: an RST, unsent data discarded)
//! so that the peer stops at once. A channel dropped without a close is reset too.
//!
//! A protected transfer (FTPS `PROT P`) runs its TLS handshake when the session asks
//! ([`DataAction::Secure`]), on the connection already open, with the control connection's TLS
//! ([`DataTls`], see `tls.rs` for why each control connection has its own session cache). From then on
//! the task reads and writes the TLS stream, and a finished transfer ends with a TLS `close_notify`.
//!
//! Shared by `#[path]` with the example server and the example client (and the tests that include the
//! client's driver), so it names nothing of either.

use std::collections::HashMap;
use std::hash::Hash;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ftp_proto::data::{DataAction, DataCompletion, DataError};
use ftp_proto::hostport::NetworkProtocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::tls::{DataStream, DataTls};

/// How long closing may take before we stop waiting: a clean shutdown or a reset is one system call, so
/// this is only reached if the task is somehow stuck.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How long a TLS client's finished data connection waits for the server to close its end after
/// the client closed its own (well under [`CLOSE_WAIT`]; a server closes at once).
const TLS_LINGER: Duration = Duration::from_secs(2);

/// What the data tasks need of their driver: where answers and chunks go, and chunk buffers.
pub trait Link<Id>: Clone + Send + Sync + 'static {
    /// Passes an answer to the session (`handle_completion`); `false` once the driver is gone.
    fn answer(&self, id: Id, completion: DataCompletion) -> bool;
    /// Passes a chunk read from the data connection to the session (`handle_data`); `false` once the
    /// driver is gone.
    fn chunk(&self, id: Id, chunk: Bytes) -> bool;
    /// An empty buffer to read the next chunk into: its capacity is the chunk size.
    fn buffer(&self) -> BytesMut;
    /// A chunk written to the data connection, whose buffer may be reused.
    fn recycle(&self, _chunk: Bytes) {}
}

/// How a driver's data sockets are made.
#[derive(Clone)]
pub struct Settings {
    /// The control connection's local IP, in canonical form (a dual-stack listener reports IPv4 peers as
    /// `::ffff:a.b.c.d`; data sockets want the IPv4 form). Listeners bind on it.
    pub local_ip: IpAddr,
    /// Dial data connections from an ephemeral port on `local_ip` (so that the peer sees the data come
    /// from the host it talks to) rather than from wherever the routing table says.
    pub connect_from_local_ip: bool,
    /// A listener that nobody asked to accept from within this long is closed (its port and whatever
    /// the driver tied to it freed), so that a peer that walks away does not hold a port. A later accept
    /// fails as if nobody had connected.
    pub accept_timeout: Option<Duration>,
    /// `SO_REUSEADDR` on listeners (a port of a fixed passive range may be rebound while an earlier
    /// transfer's connection on it is in `TIME_WAIT`).
    pub reuse_address: bool,
    /// The listeners' backlog.
    pub backlog: u32,
    /// The control connection's TLS, for protected transfers; `None` if it has none (a
    /// [`DataAction::Secure`] then fails).
    pub tls: Option<DataTls>,
    /// A TLS data connection that ends without the peer's `close_notify` fails (`426`) instead of
    /// ending the file: without it a forged TCP FIN can cut a file short unnoticed (vsftpd's
    /// `strict_ssl_read_eof`). Off by default, as in vsftpd: many clients close without it.
    pub strict_tls_eof: bool,
}

/// One session's data connections and listeners, by the id the session gave each.
pub struct DataChannels<Id, L> {
    link: L,
    settings: Settings,
    channels: HashMap<Id, Channel<Id>>,
}

impl<Id, L> DataChannels<Id, L>
where
    Id: Copy + Eq + Hash + Send + 'static,
    L: Link<Id>,
{
    pub fn new(link: L, settings: Settings) -> Self {
        DataChannels {
            link,
            settings,
            channels: HashMap::new(),
        }
    }

    /// Carries out one of the session's data actions. Only binding and closing wait; everything else is
    /// queued to the task it names, which answers through the link. `Listen` binds on any port, with
    /// nothing tied to the listener (see [`listen`](Self::listen) for more).
    pub async fn perform(&mut self, action: DataAction<Id>) {
        match action {
            DataAction::Listen { id, family } => {
                let answer = match self.listen(id, family, [0], ()).await {
                    Ok(bound) => DataCompletion::Listening(bound),
                    Err(error) => DataCompletion::Failed(error.into()),
                };
                self.answer(id, answer);
            }
            DataAction::Connect { id, .. } => {
                let channel = self.spawn(Endpoint::Closed);
                channel.queue(action);
                self.insert(id, channel).await;
            }
            DataAction::Accept { id, listener, .. } => match self.channels.remove(&listener) {
                Some(channel) => {
                    channel.queue(action);
                    self.insert(id, channel).await;
                }
                None => self.answer(id, not_connected()),
            },
            DataAction::Send { id, .. }
            | DataAction::Receive { id }
            | DataAction::Secure { id, .. } => match self.channels.get(&id) {
                Some(channel) => channel.queue(action),
                None => self.answer(id, not_connected()),
            },
            // Nothing under this id: a listener already taken by its transfer, or a transfer that
            // ended before it connected.
            DataAction::Close { id, aborted } => match self.channels.remove(&id) {
                Some(channel) if aborted => channel.abort().await,
                Some(channel) => channel.finish(action).await,
                None => {}
            },
        }
    }

    /// Binds a listener of `family` on the control connection's local IP, or on the unspecified address
    /// of `family` if that IP is of the other family, trying `ports` in order (`0`: any the system
    /// picks), and keeps it under `id` with `guard`, which is dropped with the listener. Returns the bound
    /// address; the caller answers `Listening` (or the failure).
    pub async fn listen(
        &mut self,
        id: Id,
        family: NetworkProtocol,
        ports: impl IntoIterator<Item = u16>,
        guard: impl Send + 'static,
    ) -> io::Result<SocketAddr> {
        let local_ip = self.settings.local_ip;
        let ip = match family {
            NetworkProtocol::V4 if !local_ip.is_ipv4() => IpAddr::from([0, 0, 0, 0]),
            NetworkProtocol::V6 if !local_ip.is_ipv6() => IpAddr::from([0u16; 8]),
            _ => local_ip,
        };
        let mut last_error = io::Error::new(io::ErrorKind::AddrInUse, "no passive port free");
        for port in ports {
            match self.bind(SocketAddr::new(ip, port)) {
                Ok(listener) => {
                    let bound = listener.local_addr()?;
                    // A timeout too large to add means no deadline (the session's own timers remain).
                    let deadline = self
                        .settings
                        .accept_timeout
                        .and_then(|timeout| Instant::now().checked_add(timeout));
                    let endpoint = Endpoint::Listening {
                        listener,
                        _guard: Box::new(guard),
                        deadline,
                    };
                    let channel = self.spawn(endpoint);
                    self.insert(id, channel).await;
                    return Ok(bound);
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    fn bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if self.settings.reuse_address {
            socket.set_reuseaddr(true)?;
        }
        socket.bind(addr)?;
        socket.listen(self.settings.backlog)
    }

    /// Resets every connection and closes every listener (the session is over).
    pub async fn close_all(&mut self) {
        for (_, channel) in self.channels.drain() {
            channel.abort().await;
        }
    }

    /// Answers an action right away. Through the link like every other answer, so that it reaches the
    /// session after the driver's current drain of actions, never in the middle of one.
    pub fn answer(&self, id: Id, completion: DataCompletion) {
        self.link.answer(id, completion);
    }

    fn spawn(&self, endpoint: Endpoint) -> Channel<Id> {
        let (actions, actions_rx) = unbounded_channel();
        let (abort, abort_rx) = oneshot::channel();
        let Settings {
            local_ip,
            connect_from_local_ip,
            ..
        } = self.settings;
        let task = Task {
            endpoint,
            link: self.link.clone(),
            connect_from: connect_from_local_ip.then_some(local_ip),
            tls: self.settings.tls.clone(),
            strict_tls_eof: self.settings.strict_tls_eof,
        };
        let task = tokio::spawn(task.run(actions_rx, abort_rx));
        Channel {
            actions,
            abort,
            task,
        }
    }

    /// Keeps `channel` under `id`; a channel already there (a session never reuses an id) is reset.
    async fn insert(&mut self, id: Id, channel: Channel<Id>) {
        if let Some(old) = self.channels.insert(id, channel) {
            old.abort().await;
        }
    }
}

fn not_connected() -> DataCompletion {
    DataCompletion::Failed(DataError::new(io::ErrorKind::NotConnected))
}

/// The driver's end of one data task. Dropping it resets the connection (or closes the listener).
struct Channel<Id> {
    actions: UnboundedSender<DataAction<Id>>,
    abort: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl<Id> Channel<Id> {
    /// A task that has ended (it finished, or the driver is gone) has nobody to answer: the action is
    /// moot and dropped.
    fn queue(&self, action: DataAction<Id>) {
        let _ = self.actions.send(action);
    }

    /// Shuts the connection down cleanly after the queued actions (`close` is the session's `Close`),
    /// and waits until that is done; a task still busy after [`CLOSE_WAIT`] is reset by the drop.
    async fn finish(mut self, close: DataAction<Id>) {
        self.queue(close);
        // An error means the task already ended (and dropped its socket): closed either way.
        let _ = tokio::time::timeout(CLOSE_WAIT, &mut self.task).await;
    }

    /// Interrupts the task and resets the connection (or closes the listener), and waits until that is
    /// done.
    async fn abort(self) {
        let _ = self.abort.send(());
        let mut task = self.task;
        if tokio::time::timeout(CLOSE_WAIT, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// What a data task holds.
enum Endpoint {
    /// A listener, until its connection is accepted or the accept timeout passes with no accept asked
    /// for.
    Listening {
        listener: TcpListener,
        /// Held, never read: the driver's resource tied to the listener (the server's per-address slot).
        _guard: Box<dyn Send>,
        deadline: Option<Instant>,
    },
    /// The data connection (TLS once secured).
    Connected(DataStream),
    /// Nothing (not yet dialled, or finished).
    Closed,
}

struct Task<L> {
    endpoint: Endpoint,
    link: L,
    /// Where connections are dialled from, if not from wherever the routing table says.
    connect_from: Option<IpAddr>,
    /// The control connection's TLS, for [`DataAction::Secure`].
    tls: Option<DataTls>,
    /// See [`Settings::strict_tls_eof`].
    strict_tls_eof: bool,
}

impl<L> Task<L> {
    /// Performs actions in order until finished, aborted, or dropped by the driver (which also counts
    /// as an abort).
    async fn run<Id: Copy>(
        mut self,
        mut actions: UnboundedReceiver<DataAction<Id>>,
        mut abort: oneshot::Receiver<()>,
    ) where
        L: Link<Id>,
    {
        loop {
            // `biased`: an abort wins over any queued or running action, even a blocked write.
            let deadline = match &self.endpoint {
                Endpoint::Listening { deadline, .. } => *deadline,
                _ => None,
            };
            let action = tokio::select! {
                biased;
                _ = &mut abort => break,
                action = actions.recv() => action,
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() =>
                {
                    // Unused for the accept timeout: free the port and the guard.
                    self.endpoint = Endpoint::Closed;
                    continue;
                }
            };
            let Some(action) = action else { break };
            let flow = tokio::select! {
                biased;
                _ = &mut abort => break,
                flow = self.perform(action) => flow,
            };
            if flow.is_break() {
                break;
            }
        }
        // An abortive close (a no-op after a clean one): RST rather than FIN, so the peer notices the
        // transfer was cut short.
        if let Endpoint::Connected(stream) = &self.endpoint {
            let _ = stream.tcp().set_zero_linger();
        }
    }

    /// One action. `Break` after a clean shutdown (the endpoint is then closed), or when nobody listens
    /// to the answers any more.
    async fn perform<Id: Copy>(&mut self, action: DataAction<Id>) -> ControlFlow<()>
    where
        L: Link<Id>,
    {
        let id = action.id();
        let answer = match action {
            DataAction::Connect { addr, .. } => match dial(self.connect_from, addr).await {
                Ok(stream) => self.connected(stream, addr),
                Err(error) => DataCompletion::Failed(error.into()),
            },
            DataAction::Accept { .. } => {
                let Endpoint::Listening { listener, .. } = &self.endpoint else {
                    // Never bound, or closed for the accept timeout.
                    return self.answer(id, not_connected());
                };
                match listener.accept().await {
                    // One connection per listener: dropping it frees the port (and the guard) at once.
                    Ok((stream, peer)) => self.connected(stream, peer),
                    Err(error) => DataCompletion::Failed(error.into()),
                }
            }
            DataAction::Secure { role, .. } => {
                let endpoint = std::mem::replace(&mut self.endpoint, Endpoint::Closed);
                let (Endpoint::Connected(DataStream::Plain(tcp)), Some(tls)) =
                    (endpoint, self.tls.as_ref())
                else {
                    return self.answer(id, not_connected());
                };
                // Boxed: a TLS handshake's state is large, and every data task would carry it inline.
                match Box::pin(tls.secure(role, tcp)).await {
                    Ok((stream, resumed)) => {
                        self.endpoint = Endpoint::Connected(stream);
                        DataCompletion::Secured { resumed }
                    }
                    Err(error) => DataCompletion::Failed(error.into()),
                }
            }
            DataAction::Send { data, .. } => {
                let Endpoint::Connected(stream) = &mut self.endpoint else {
                    return self.answer(id, not_connected());
                };
                let written = stream.write_all(&data).await;
                // Back to the driver before `Written` makes the session ask for the next chunk.
                self.link.recycle(data);
                match written {
                    Ok(()) => DataCompletion::Written,
                    Err(error) => DataCompletion::Failed(error.into()),
                }
            }
            DataAction::Receive { .. } => {
                let Endpoint::Connected(stream) = &mut self.endpoint else {
                    return self.answer(id, not_connected());
                };
                // `read_buf` fills the spare capacity without zeroing it; the buffer becomes the chunk.
                let mut buffer = self.link.buffer();
                match stream.read_buf(&mut buffer).await {
                    Ok(0) => DataCompletion::EndOfData,
                    Ok(_) => return flow(self.link.chunk(id, buffer.freeze())),
                    // TLS ended by a bare TCP FIN, no `close_notify`: many FTP peers close so, and
                    // the end of the TCP stream is the end of the file as in plaintext, unless strict.
                    Err(error)
                        if error.kind() == io::ErrorKind::UnexpectedEof && !self.strict_tls_eof =>
                    {
                        DataCompletion::EndOfData
                    }
                    Err(error) => DataCompletion::Failed(error.into()),
                }
            }
            DataAction::Close { aborted: false, .. } => {
                if let Endpoint::Connected(stream) = &mut self.endpoint {
                    // A TLS client takes the session ticket the server sent for next time.
                    stream.read_pending_records().await;
                    // FIN after the last byte (how the receiver learns the file ended), after TLS's
                    // close_notify; errors mean the peer is gone, which is closed too.
                    let _ = stream.shutdown().await;
                    // A TLS client then reads to the server's end (tickets sent late, and no unread
                    // bytes to turn the close into a reset that loses the end of an upload).
                    stream.read_until_peer_closes(TLS_LINGER).await;
                }
                self.endpoint = Endpoint::Closed;
                return ControlFlow::Break(());
            }
            // Never queued: an abort goes through the channel's abort, a listener is bound at once.
            DataAction::Close { aborted: true, .. } => return ControlFlow::Break(()),
            DataAction::Listen { .. } => return ControlFlow::Continue(()),
        };
        self.answer(id, answer)
    }

    fn connected(&mut self, stream: TcpStream, peer: SocketAddr) -> DataCompletion {
        // Chunks are large; no-delay only spares a transfer's last small segment a wait for an ACK.
        let _ = stream.set_nodelay(true);
        self.endpoint = Endpoint::Connected(DataStream::Plain(stream));
        DataCompletion::Connected { peer }
    }

    fn answer<Id>(&self, id: Id, completion: DataCompletion) -> ControlFlow<()>
    where
        L: Link<Id>,
    {
        flow(self.link.answer(id, completion))
    }
}

/// Goes on while the driver listens.
fn flow(listening: bool) -> ControlFlow<()> {
    if listening {
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(())
    }
}

/// Connects to `addr`, from an ephemeral port on `from` if given.
async fn dial(from: Option<IpAddr>, addr: SocketAddr) -> io::Result<TcpStream> {
    let Some(local) = from else {
        return TcpStream::connect(addr).await;
    };
    let socket = match local {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}
