//! A session's data connections and passive listeners, each owned by a tokio task of its own.
//!
//! The session names every listener and connection with an id (the `PASV`/`EPSV` request for a listener,
//! the transfer for a connection), and [`DataConnections`] keeps their tasks by that id: it carries out
//! the session's [`DataAction`]s as they come, the same vocabulary the client session speaks. `Listen`
//! starts a task that owns the bound listener, `Connect` one that dials the client; `Accept`, `Send` and
//! `Receive` reach the task in order over a channel, and each answer goes back to the session task as an
//! [`Incoming`] message, so the session task never waits on the data connection and keeps reading the
//! control connection (`ABOR`, `STAT`) during a transfer.
//!
//! There is no need to accept in advance: the kernel completes the client's handshake into the listen
//! backlog as soon as it arrives, and `accept` just takes it when the session asks. The accepting task
//! then drops its listener (one connection per `PASV`: the port and the slot are free at once) and goes
//! on as the transfer's connection, known by the transfer's id; the session's later `Close` of the
//! listener's id finds nothing left to close.
//!
//! A passive listener that nobody asked to accept from within the data timeout is closed (its port and
//! its client's [`Slot`] of `--max-passive-per-ip` freed): a client that sends PASV and walks away must
//! not hold a port until the session ends.
//!
//! Closing comes in two kinds. A finished transfer (`Close` with `aborted == false`,
//! [`DataChannel::finish`]) shuts the socket down cleanly and waits for that, so the client has seen the
//! end of the data before it reads 226. An aborted one ([`DataChannel::abort`]) interrupts whatever the
//! task is doing and resets the connection (`SO_LINGER` 0: an RST, unsent data discarded) so that the
//! client stops at once.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::{ControlFlow, RangeInclusive};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ftp_proto::data::{DataAction, DataCompletion, DataError};
use ftp_proto::hostport::NetworkProtocol;
use ftp_proto::server::{Completion, RequestId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::buffers::BufferPool;
use crate::limits::Slot;
use crate::logging;
use crate::session_task::{Incoming, Server, WorkerLinks};

/// How long closing may take before we stop waiting: a clean shutdown or a reset is one system call, so
/// this is only reached if the task is somehow stuck.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The ports passive listeners may use (`--passive-ports`).
///
/// Each PASV tries at most `attempts` ports, each picked at random in the range: a bounded number of
/// `bind` calls however large the range and however many ports are taken (trying the whole range made
/// one PASV cost up to 64k failed binds), and a port that a port thief cannot predict from the last one.
#[derive(Debug)]
pub struct PassivePorts {
    range: Option<RangeInclusive<u16>>,
    attempts: usize,
    /// Random per process (from std's hasher keys, which the OS seeds), mixed with `counter`.
    seed: u64,
    counter: AtomicU64,
}

impl PassivePorts {
    /// `None`: any ephemeral port the system picks.
    pub fn new(range: Option<RangeInclusive<u16>>, attempts: usize) -> PassivePorts {
        use std::hash::{BuildHasher, Hasher};
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        PassivePorts {
            range,
            attempts,
            seed,
            counter: AtomicU64::new(0),
        }
    }

    /// The ports to try for one listener (`0` asks the system for any): distinct ports of the range,
    /// from a random start by a random step coprime with the range's length, so that a small range is
    /// still tried whole and a large one is sampled all over.
    fn candidates(&self) -> impl Iterator<Item = u16> + '_ {
        let (low, len, tries) = match &self.range {
            Some(range) => {
                let len = u64::from(range.end() - range.start()) + 1;
                let tries = self
                    .attempts
                    .min(usize::try_from(len).unwrap_or(usize::MAX));
                (*range.start(), len, tries)
            }
            None => (0, 1, 1),
        };
        let start = self.random() % len;
        let step = self.coprime_step(len);
        (0..tries as u64).map(move |i| {
            let offset = (start + i * step) % len;
            // `offset < len <= 65536 - low`, so this neither truncates nor overflows.
            low.wrapping_add(offset as u16)
        })
    }

    fn random(&self) -> u64 {
        splitmix64(self.seed ^ self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// A random step in `1..len` that shares no factor with `len` (so `len` steps visit every port
    /// once); 1 if a few random picks find none.
    fn coprime_step(&self, len: u64) -> u64 {
        (0..8)
            .map(|_| 1 + self.random() % len.saturating_sub(1).max(1))
            .find(|step| gcd(*step, len) == 1)
            .unwrap_or(1)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One round of the SplitMix64 generator: a cheap, well-mixed 64-bit hash of a counter.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One session's data connections and passive listeners, by the id the session gave each.
pub struct DataConnections {
    server: Arc<Server>,
    /// The session's number, for the log.
    number: u64,
    /// Where passive listeners bind and active connections come from.
    local_ip: IpAddr,
    /// The client's address, for the per-address listener cap.
    peer: IpAddr,
    links: WorkerLinks,
    channels: HashMap<RequestId, DataChannel>,
}

impl DataConnections {
    pub fn new(
        server: Arc<Server>,
        number: u64,
        local_ip: IpAddr,
        peer: IpAddr,
        links: WorkerLinks,
    ) -> DataConnections {
        DataConnections {
            server,
            number,
            local_ip,
            peer,
            links,
            channels: HashMap::new(),
        }
    }

    /// Carries out one of the session's data actions. Only closing and binding wait; everything else is
    /// queued to the task it names, which answers through the session task's channel.
    pub async fn perform(&mut self, action: DataAction<RequestId>) {
        match action {
            DataAction::Listen { id, family } => self.listen(id, family).await,
            DataAction::Accept { id, listener } => match self.channels.remove(&listener) {
                Some(channel) => {
                    channel.accept(id);
                    self.insert(id, channel).await;
                }
                None => self.fail(id, io::ErrorKind::NotConnected),
            },
            DataAction::Connect { id, addr } => {
                let channel = DataChannel::connect(id, self.local_ip, addr, self.links.clone());
                self.insert(id, channel).await;
            }
            DataAction::Send { id, data } => match self.channels.get(&id) {
                Some(channel) => channel.send(id, data),
                None => self.fail(id, io::ErrorKind::NotConnected),
            },
            DataAction::Receive { id } => match self.channels.get(&id) {
                Some(channel) => channel.receive(id),
                None => self.fail(id, io::ErrorKind::NotConnected),
            },
            // Nothing under this id: a listener already taken by its transfer, or a transfer that
            // ended before it connected.
            DataAction::Close { id, aborted } => match self.channels.remove(&id) {
                Some(channel) if aborted => channel.abort().await,
                Some(channel) => channel.finish().await,
                None => {}
            },
        }
    }

    /// Resets every connection and closes every listener (the session is over).
    pub async fn close_all(&mut self) {
        for (_, channel) in self.channels.drain() {
            channel.abort().await;
        }
    }

    /// Keeps `channel` under `id`; a channel already there (a session never reuses an id) is reset.
    async fn insert(&mut self, id: RequestId, channel: DataChannel) {
        if let Some(old) = self.channels.insert(id, channel) {
            old.abort().await;
        }
    }

    /// Answers an action right away. Through the channel like every other answer, so that it reaches the
    /// session after the current drain, never in the middle of one.
    fn answer(&self, id: RequestId, completion: DataCompletion) {
        let _ = self
            .links
            .incoming
            .send(Incoming::Completion(id, completion.into()));
    }

    fn fail(&self, id: RequestId, kind: io::ErrorKind) {
        self.answer(id, DataCompletion::Failed(DataError::new(kind)));
    }

    /// Binds a passive listener on the control connection's address, which must be of `family` (this
    /// server does not look for another address of the host), within the client's listener cap.
    async fn listen(&mut self, id: RequestId, family: NetworkProtocol) {
        if NetworkProtocol::of(&SocketAddr::new(self.local_ip, 0)) != family {
            return self.fail(id, io::ErrorKind::AddrNotAvailable);
        }
        // Taken before binding, held by the data task as long as its listener lives.
        let slot = match self.server.passive_listeners.try_acquire(self.peer) {
            Ok(slot) => slot,
            Err(_) => {
                self.log(format_args!(
                    "passive listener refused: too many for {}",
                    self.peer
                ));
                return self.fail(id, io::ErrorKind::Other);
            }
        };
        let ports = &self.server.passive_ports;
        let timeout = self.server.config.data_timeout;
        let links = self.links.clone();
        match DataChannel::listen(self.local_ip, ports, slot, timeout, links).await {
            Ok((channel, bound)) => {
                self.insert(id, channel).await;
                let reported = match self.server.masquerade {
                    Some(ip) => SocketAddr::new(IpAddr::V4(ip), bound.port()),
                    None => bound,
                };
                self.answer(id, DataCompletion::Listening(reported));
            }
            Err(error) => {
                self.log(format_args!("passive listener failed: {error}"));
                self.answer(id, DataCompletion::Failed(DataError::from(&error)));
            }
        }
    }

    fn log(&self, message: std::fmt::Arguments<'_>) {
        logging::session(self.number, message);
    }
}

/// An operation on one data connection, in the session's order.
#[derive(Debug)]
enum DataOp {
    /// Take the client's connection from the listener.
    Accept(RequestId),
    /// Dial the client from `local`.
    Connect {
        id: RequestId,
        local: IpAddr,
        addr: SocketAddr,
    },
    /// Write a chunk.
    Send(RequestId, Bytes),
    /// Read the next chunk.
    Receive(RequestId),
    /// Shut down cleanly, then report on `done`.
    Finish(oneshot::Sender<()>),
}

/// The session task's end of one data connection's (or listener's) task.
#[derive(Debug)]
pub struct DataChannel {
    ops: UnboundedSender<DataOp>,
    abort: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl DataChannel {
    /// Binds a passive listener on `ip`, trying the configured ports; returns the channel and the
    /// address actually bound. The listener keeps `slot` while it lives, and is closed if no accept
    /// is asked for within `timeout`.
    pub async fn listen(
        ip: IpAddr,
        ports: &PassivePorts,
        slot: Slot,
        timeout: Duration,
        links: WorkerLinks,
    ) -> io::Result<(DataChannel, SocketAddr)> {
        let mut last_error = io::Error::new(io::ErrorKind::AddrInUse, "no passive port free");
        for port in ports.candidates() {
            match TcpListener::bind(SocketAddr::new(ip, port)).await {
                Ok(listener) => {
                    let bound = listener.local_addr()?;
                    // A timeout too large to add means no deadline (the session's own timers remain).
                    let deadline = Instant::now().checked_add(timeout);
                    let endpoint = Endpoint::Listening {
                        listener,
                        _slot: slot,
                        deadline,
                    };
                    let channel = Self::spawn(endpoint, links);
                    return Ok((channel, bound));
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Starts dialling the client at `addr` from `local`; the task answers `Connected` or `Failed`.
    pub fn connect(
        id: RequestId,
        local: IpAddr,
        addr: SocketAddr,
        links: WorkerLinks,
    ) -> DataChannel {
        let channel = Self::spawn(Endpoint::Closed, links);
        channel.queue(DataOp::Connect { id, local, addr });
        channel
    }

    fn spawn(endpoint: Endpoint, links: WorkerLinks) -> DataChannel {
        let (ops, ops_rx) = unbounded_channel();
        let (abort, abort_rx) = oneshot::channel();
        let WorkerLinks { incoming, buffers } = links;
        let worker = DataWorker {
            endpoint,
            incoming,
            buffers,
        };
        let task = tokio::spawn(worker.run(ops_rx, abort_rx));
        DataChannel { ops, abort, task }
    }

    /// Queues taking the passive connection for transfer `id` (answered `Connected`).
    pub fn accept(&self, id: RequestId) {
        self.queue(DataOp::Accept(id));
    }

    /// Queues writing a chunk (answered `Written`).
    pub fn send(&self, id: RequestId, data: Bytes) {
        self.queue(DataOp::Send(id, data));
    }

    /// Queues reading a chunk (answered with the chunk, or `EndOfData`).
    pub fn receive(&self, id: RequestId) {
        self.queue(DataOp::Receive(id));
    }

    /// A task that has ended (it finished, or the session is gone) has nobody to answer: the operation
    /// is moot and dropped.
    fn queue(&self, op: DataOp) {
        let _ = self.ops.send(op);
    }

    /// Shuts the connection down cleanly after the queued operations, and waits until that is done.
    pub async fn finish(self) {
        let (done, done_rx) = oneshot::channel();
        self.queue(DataOp::Finish(done));
        // An error means the task already ended (and dropped its socket): closed either way.
        let _ = tokio::time::timeout(CLOSE_WAIT, done_rx).await;
    }

    /// Interrupts the task and resets the connection (or closes the listener), and waits until that is
    /// done.
    pub async fn abort(self) {
        let _ = self.abort.send(());
        let mut task = self.task;
        if tokio::time::timeout(CLOSE_WAIT, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// What the data task holds.
#[derive(Debug)]
enum Endpoint {
    /// A passive listener, until the client's connection is accepted or the deadline passes with no
    /// accept asked for; it holds its client's passive-listener slot.
    Listening {
        listener: TcpListener,
        /// Held, never read: dropping it gives the slot back.
        _slot: Slot,
        deadline: Option<Instant>,
    },
    /// The data connection.
    Connected(TcpStream),
    /// Nothing (not yet dialled, or finished).
    Closed,
}

struct DataWorker {
    endpoint: Endpoint,
    incoming: UnboundedSender<Incoming>,
    buffers: BufferPool,
}

/// A failure of the data connection, as the session is told it.
fn failed(kind: io::ErrorKind) -> DataCompletion {
    DataCompletion::Failed(DataError::new(kind))
}

impl DataWorker {
    /// Performs operations in order until finished, aborted, or dropped by the session (which also counts
    /// as an abort: the session is gone).
    async fn run(mut self, mut ops: UnboundedReceiver<DataOp>, mut abort: oneshot::Receiver<()>) {
        loop {
            // `biased`: an abort wins over any queued or running operation, even a blocked write.
            let deadline = self.listen_deadline();
            let op = tokio::select! {
                biased;
                _ = &mut abort => break,
                op = ops.recv() => op,
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() =>
                {
                    // Unused for the data timeout: free the port and the slot. A later accept fails
                    // (425), as if the client had never connected.
                    self.endpoint = Endpoint::Closed;
                    continue;
                }
            };
            let Some(op) = op else { break };
            let flow = tokio::select! {
                biased;
                _ = &mut abort => break,
                flow = self.perform(op) => flow,
            };
            if flow.is_break() {
                return;
            }
        }
        self.reset();
    }

    fn listen_deadline(&self) -> Option<Instant> {
        match &self.endpoint {
            Endpoint::Listening { deadline, .. } => *deadline,
            _ => None,
        }
    }

    async fn perform(&mut self, op: DataOp) -> ControlFlow<()> {
        let message = match op {
            DataOp::Accept(id) => completion(id, self.accept().await),
            DataOp::Connect { id, local, addr } => completion(id, self.connect(local, addr).await),
            DataOp::Send(id, data) => completion(id, self.send(data).await),
            DataOp::Receive(id) => self.receive(id).await,
            DataOp::Finish(done) => {
                if let Endpoint::Connected(stream) = &mut self.endpoint {
                    // FIN after the last byte; errors mean the client is gone, which is closed too.
                    let _ = stream.shutdown().await;
                }
                self.endpoint = Endpoint::Closed;
                let _ = done.send(());
                return ControlFlow::Break(());
            }
        };
        match self.incoming.send(message) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()), // the session ended
        }
    }

    async fn accept(&mut self) -> DataCompletion {
        let Endpoint::Listening { listener, .. } = &self.endpoint else {
            // Never bound, or closed for the data timeout.
            return failed(io::ErrorKind::NotConnected);
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                // One connection per PASV: dropping the listener frees the port (and the slot) at once.
                self.connected(stream);
                DataCompletion::Connected { peer }
            }
            Err(error) => DataCompletion::Failed(DataError::from(error)),
        }
    }

    async fn connect(&mut self, local: IpAddr, addr: SocketAddr) -> DataCompletion {
        match dial(local, addr).await {
            Ok(stream) => {
                self.connected(stream);
                DataCompletion::Connected { peer: addr }
            }
            Err(error) => DataCompletion::Failed(DataError::from(error)),
        }
    }

    fn connected(&mut self, stream: TcpStream) {
        // Chunks are large; no-delay only spares a listing's last small segment a wait for an ACK.
        let _ = stream.set_nodelay(true);
        self.endpoint = Endpoint::Connected(stream);
    }

    async fn send(&mut self, data: Bytes) -> DataCompletion {
        let Endpoint::Connected(stream) = &mut self.endpoint else {
            return failed(io::ErrorKind::NotConnected);
        };
        let written = stream.write_all(&data).await;
        // Back to the pool before `Written` makes the session ask for the next chunk.
        self.buffers.recycle(data);
        match written {
            Ok(()) => DataCompletion::Written,
            Err(error) => DataCompletion::Failed(DataError::from(error)),
        }
    }

    async fn receive(&mut self, id: RequestId) -> Incoming {
        let Endpoint::Connected(stream) = &mut self.endpoint else {
            return completion(id, failed(io::ErrorKind::NotConnected));
        };
        // `read_buf` fills the spare capacity without zeroing it first; the buffer becomes the chunk.
        let mut buffer = self.buffers.take_empty();
        match stream.read_buf(&mut buffer).await {
            Ok(0) => completion(id, DataCompletion::EndOfData),
            Ok(_) => Incoming::Data(id, buffer.freeze()),
            Err(error) => completion(id, DataCompletion::Failed(DataError::from(error))),
        }
    }

    /// An abortive close: RST rather than FIN, so the client notices the transfer was cut short.
    fn reset(&mut self) {
        if let Endpoint::Connected(stream) = &self.endpoint {
            let _ = stream.set_zero_linger();
        }
        self.endpoint = Endpoint::Closed;
    }
}

/// The message that answers action `id`.
fn completion(id: RequestId, completion: DataCompletion) -> Incoming {
    Incoming::Completion(id, Completion::Data(completion))
}

/// Connects to `addr` from an ephemeral port on `local` (the control connection's address, so the
/// client sees the data connection come from the server it talks to).
async fn dial(local: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = match local {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}

#[cfg(test)]
mod tests {
    use super::PassivePorts;

    #[test]
    fn each_pasv_tries_a_bounded_number_of_ports_in_the_range() {
        let small = PassivePorts::new(Some(40000..=40009), 16);
        for _ in 0..100 {
            let mut ports: Vec<u16> = small.candidates().collect();
            ports.sort_unstable();
            // A range no larger than the attempts is tried whole, each port once.
            assert_eq!(ports, (40000..=40009).collect::<Vec<_>>());
        }

        let whole = PassivePorts::new(Some(1..=65535), 16);
        let ports: Vec<u16> = whole.candidates().collect();
        assert_eq!(ports.len(), 16);
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 16);
        assert!(ports.iter().all(|p| *p >= 1));

        let any = PassivePorts::new(None, 16);
        assert_eq!(any.candidates().collect::<Vec<_>>(), [0]);
    }
}
