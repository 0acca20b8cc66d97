//! The server's side of a session's data connections: the passive port range, the per-address
//! listener cap (`--max-passive-per-ip`) and the public address for NAT (`--masquerade`), around the
//! data channel the example client shares ([`DataChannels`], which carries out the session's
//! [`DataAction`]s as they come).
//!
//! A passive listener holds its client's [`Slot`](crate::limits::Slot) of `--max-passive-per-ip` until
//! its connection is accepted or the data timeout passes with no accept asked for: a client that sends
//! PASV and walks away must not hold a port until the session ends.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use ftp_proto::data::{DataAction, DataCompletion, DataError};
use ftp_proto::hostport::NetworkProtocol;
use ftp_proto::server::{Completion, RequestId};

use crate::data_channel::{DataChannels, Link, Settings};
use crate::logging;
use crate::session_task::{Incoming, Server, WorkerLinks};
use crate::tls::DataTls;

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
    channels: DataChannels<RequestId, WorkerLinks>,
}

impl DataConnections {
    pub fn new(
        server: Arc<Server>,
        number: u64,
        local_ip: IpAddr,
        peer: IpAddr,
        links: WorkerLinks,
        tls: Option<DataTls>,
    ) -> DataConnections {
        let settings = Settings {
            local_ip,
            connect_from_local_ip: true,
            accept_timeout: Some(server.config.data_timeout),
            // What `TcpListener::bind` does: SO_REUSEADDR (a port of the range may be rebound while an
            // earlier connection on it is in TIME_WAIT) and std's backlog.
            reuse_address: true,
            backlog: 128,
            // The control connection's TLS: protected transfers (`PROT P`) resume its sessions.
            tls,
            strict_tls_eof: server.tls.as_ref().is_some_and(|tls| tls.strict_eof),
        };
        DataConnections {
            server,
            number,
            local_ip,
            peer,
            channels: DataChannels::new(links, settings),
        }
    }

    /// Carries out one of the session's data actions (see [`DataChannels::perform`]).
    pub async fn perform(&mut self, action: DataAction<RequestId>) {
        match action {
            DataAction::Listen { id, family } => self.listen(id, family).await,
            action => self.channels.perform(action).await,
        }
    }

    /// Resets every connection and closes every listener (the session is over).
    pub async fn close_all(&mut self) {
        self.channels.close_all().await;
    }

    fn fail(&self, id: RequestId, kind: io::ErrorKind) {
        let failed = DataCompletion::Failed(DataError::new(kind));
        self.channels.answer(id, failed);
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
        let ports = self.server.passive_ports.candidates();
        let answer = match self.channels.listen(id, family, ports, slot).await {
            Ok(bound) => {
                // Behind NAT, the public address (`--masquerade`) with the bound port.
                let ip = self.server.masquerade.map_or(bound.ip(), IpAddr::V4);
                DataCompletion::Listening(SocketAddr::new(ip, bound.port()))
            }
            Err(error) => {
                self.log(format_args!("passive listener failed: {error}"));
                DataCompletion::Failed(DataError::from(&error))
            }
        };
        self.channels.answer(id, answer);
    }

    fn log(&self, message: std::fmt::Arguments<'_>) {
        logging::session(self.number, message);
    }
}

/// The data tasks answer through the session task's channel and read into the session's buffers.
impl Link<RequestId> for WorkerLinks {
    fn answer(&self, id: RequestId, completion: DataCompletion) -> bool {
        let completion = Completion::Data(completion);
        self.incoming
            .send(Incoming::Completion(id, completion))
            .is_ok()
    }

    fn chunk(&self, id: RequestId, chunk: Bytes) -> bool {
        self.incoming.send(Incoming::Data(id, chunk)).is_ok()
    }

    fn buffer(&self) -> BytesMut {
        self.buffers.take_empty()
    }

    fn recycle(&self, chunk: Bytes) {
        self.buffers.recycle(chunk);
    }
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
