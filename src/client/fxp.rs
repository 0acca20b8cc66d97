//! Server-to-server copies ("FXP"), coordinating two client sessions (RFC 959 §2.3, figure 2).
//!
//! RFC 959 lets a client open control connections to two servers and have them transfer a file between
//! themselves: the client sends `PASV` to server 1, `PORT` with that address to server 2, `STOR` to
//! server 1 and `RETR` to server 2. Server 1 (the **destination**) listens; server 2 (the **source**)
//! connects to it and sends the file. The data never passes through the client.
//!
//! [`FxpTransfer`] is the small state machine that runs this dance over two [`Session`]s. It emits
//! requests for each side ([`FxpTransfer::poll_request`]) and consumes the events of both sessions
//! ([`FxpTransfer::handle_event`]):
//!
//! 1. destination: `PASV` → `227 (h1,h2,h3,h4,p1,p2)`;
//! 2. source: `PORT h1,h2,h3,h4,p1,p2` → `200`;
//! 3. destination: `STOR path`, and at the same time...
//! 4. source: `RETR path`. It does not wait for the destination's `150`: most servers (ProFTPD,
//!    pyftpdlib, vsftpd) send that only once the data connection is open, which needs the `RETR`. The
//!    destination's listener exists since its `227`, so the source's connection waits in its backlog.
//! 5. both answer `226` when the copy is done. If either side fails after step 3, the other is sent
//!    [`Request::Abort`] so that it does not wait for a connection or data that will never come.
//!
//! The source must allow a `PORT` to an address other than the client's (most servers refuse by
//! default, against the "FTP bounce" attack of RFC 2577). Set the transfer type on both sessions before
//! starting (queue [`Request::SetType`]; requests run in order), since the servers convert in TYPE A.
//!
//! # Over TLS
//!
//! When both control connections are protected (RFC 4217), so can the data connection between the
//! servers be ([`FxpTransfer::protected`]): both get `PBSZ 0` and `PROT P` first. But a TLS handshake
//! needs a client, and an FTPS server is normally the TLS server of every data connection, so exactly
//! one of the two must be told to be the client: `SSCN ON` (the draft-bryan-ftp-sscn extension, in
//! FEAT as `SSCN`) to the source, which connects (its `PORT`), or else to the destination; or, if
//! neither has SSCN, `CPSV` instead of `PASV` to the destination (a `PASV` whose listener is the TLS
//! client). The other side gets `SSCN OFF` if it has SSCN, in case an earlier copy left it on (two TLS
//! clients never agree). Servers with none of these cannot protect the copy: [`FxpError::NoTlsClient`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use ftp_proto::client::fxp::{FxpTransfer, Side};
//! use ftp_proto::client::{Config, ConnectionInfo, Session};
//! use ftp_proto::command::Pathname;
//!
//! let now = Instant::now();
//! let info = |peer: &str| ConnectionInfo { local: "192.0.2.1:40000".parse().unwrap(), peer: peer.parse().unwrap() };
//! let mut destination = Session::new(Arc::new(Config::default()), info("198.51.100.1:21"), now);
//! let mut source = Session::new(Arc::new(Config::default()), info("203.0.113.9:21"), now);
//! destination.handle_control_input(now, b"220 destination ready\r\n");
//! source.handle_control_input(now, b"220 source ready\r\n");
//!
//! let mut fxp = FxpTransfer::new(Pathname::new("a.iso").unwrap(), Pathname::new("copy.iso").unwrap());
//! fxp.drive(now, &mut destination, &mut source); // submits PASV to the destination
//! destination.handle_control_input(now, b"227 Entering Passive Mode (198,51,100,1,4,1)\r\n");
//! while let Some(event) = destination.poll_event() {
//!     fxp.handle_event(Side::Destination, &event);
//! }
//! fxp.drive(now, &mut destination, &mut source); // submits PORT to the source
//! # let _ = std::iter::from_fn(|| source.poll_action()).count();
//! assert!(!fxp.is_finished());
//! ```

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Instant;

use crate::command::{Command, Pathname, ProtectionLevel};
use crate::feat::FeatureSet;
use crate::hostport::HostPort;
use crate::reply::Reply;

use super::Session;
use super::io::{ClientError, Event, Outcome, ProtocolError, Request, RequestId, UsageError};

/// Which of the two sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The server that receives the file (`PASV`, `STOR`): "server 1" in RFC 959's figure.
    Destination,
    /// The server that sends the file (`PORT`, `RETR`): "server 2".
    Source,
}

/// Why an FXP copy failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FxpError {
    /// The destination's request failed.
    #[error("destination: {0}")]
    Destination(ClientError),
    /// The source's request failed.
    #[error("source: {0}")]
    Source(ClientError),
    /// A session did not accept a request (it is closed or its queue is full).
    #[error("request not accepted: {0}")]
    Usage(UsageError),
    /// A protected copy was asked for, but neither server can be the TLS client of the data connection
    /// between them: neither lists `SSCN` in FEAT, and the destination does not list `CPSV`.
    #[error(
        "neither server can be the TLS client of the data connection between them (no SSCN, and no \
         CPSV on the destination): the copy cannot be protected"
    )]
    NoTlsClient,
}

/// Which server is the TLS client of a protected copy's data connection, and how it is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsClientSide {
    /// `SSCN ON` to the source, which connects.
    SscnSource,
    /// `SSCN ON` to the destination, which listens.
    SscnDestination,
    /// `CPSV` instead of `PASV` to the destination, which listens.
    Cpsv,
}

impl TlsClientSide {
    /// The way to protect a copy between servers with these features (see the
    /// [module documentation](self)), or `None` if there is none.
    pub fn choose(destination: &FeatureSet, source: &FeatureSet) -> Option<TlsClientSide> {
        if source.supports("SSCN") {
            Some(TlsClientSide::SscnSource)
        } else if destination.supports("SSCN") {
            Some(TlsClientSide::SscnDestination)
        } else if destination.supports("CPSV") {
            Some(TlsClientSide::Cpsv)
        } else {
            None
        }
    }
}

/// What a request of the copy is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// `PBSZ`, `PROT`, `SSCN` before a protected copy.
    Setup,
    Pasv,
    Port,
    Stor,
    Retr,
    Abort,
}

/// A server-to-server copy in progress. See the [module documentation](self).
#[derive(Debug)]
pub struct FxpTransfer {
    source_path: Pathname,
    destination_path: Pathname,
    destination_ip: Option<Ipv4Addr>,
    /// For a protected copy, which server is the TLS client.
    tls_client: Option<TlsClientSide>,
    /// Setup requests not yet completed: the listener is asked for once there are none.
    setup_pending: usize,
    /// Requests to hand out with `poll_request`.
    outbox: VecDeque<(Side, Purpose, Request)>,
    /// The request handed out last, until `handle_submitted` names its id.
    submitting: Option<(Side, Purpose)>,
    /// Submitted requests whose completion is awaited.
    ids: Vec<(Side, RequestId, Purpose)>,
    retr_requested: bool,
    /// The destination answered `STOR` with a preliminary reply.
    stor_preliminary: bool,
    stor_result: Option<Result<Outcome, ClientError>>,
    retr_result: Option<Result<Outcome, ClientError>>,
    /// The first failure.
    error: Option<FxpError>,
    result: Option<Result<(), FxpError>>,
}

impl FxpTransfer {
    /// A copy of `source_path` on the source server to `destination_path` on the destination server.
    /// The first request (`PASV` to the destination) is ready to poll.
    pub fn new(source_path: Pathname, destination_path: Pathname) -> FxpTransfer {
        let mut outbox = VecDeque::new();
        outbox.push_back((
            Side::Destination,
            Purpose::Pasv,
            Request::Raw(Command::Pasv),
        ));
        FxpTransfer {
            source_path,
            destination_path,
            destination_ip: None,
            tls_client: None,
            setup_pending: 0,
            outbox,
            submitting: None,
            ids: Vec::new(),
            retr_requested: false,
            stor_preliminary: false,
            stor_result: None,
            retr_result: None,
            error: None,
            result: None,
        }
    }

    /// Uses `ip` instead of the address in the destination's `227` reply: a destination behind NAT may
    /// announce a private address that the source cannot reach. Pass the destination's public address
    /// (typically the peer of its control connection).
    pub fn with_destination_ip(mut self, ip: Ipv4Addr) -> FxpTransfer {
        self.destination_ip = Some(ip);
        self
    }

    /// Protects the copy's data connection with TLS, the servers having `destination_features` and
    /// `source_features` (their `FEAT`): both control connections must be protected already. Both
    /// sessions first get `PBSZ 0`, `PROT P` and `SSCN` as [`TlsClientSide::choose`] says; the copy
    /// starts once all of them succeeded, and fails with the first refusal. Call before the first
    /// [`FxpTransfer::poll_request`].
    pub fn protected(
        mut self,
        destination_features: &FeatureSet,
        source_features: &FeatureSet,
    ) -> Result<FxpTransfer, FxpError> {
        let side = TlsClientSide::choose(destination_features, source_features)
            .ok_or(FxpError::NoTlsClient)?;
        self.tls_client = Some(side);
        self.outbox.clear();
        for (who, features) in [
            (Side::Destination, destination_features),
            (Side::Source, source_features),
        ] {
            let mut setup = vec![Command::Pbsz(0), Command::Prot(ProtectionLevel::Private)];
            let client = matches!(
                (who, side),
                (Side::Source, TlsClientSide::SscnSource)
                    | (Side::Destination, TlsClientSide::SscnDestination)
            );
            if client {
                setup.push(Command::Sscn(Some(true)));
            } else if features.supports("SSCN") {
                // Left on by an earlier copy, it would make both servers TLS clients.
                setup.push(Command::Sscn(Some(false)));
            }
            self.setup_pending += setup.len();
            for command in setup {
                self.outbox
                    .push_back((who, Purpose::Setup, Request::Raw(command)));
            }
        }
        Ok(self)
    }

    /// Which server is the TLS client of the data connection, if the copy is protected.
    pub fn tls_client(&self) -> Option<TlsClientSide> {
        self.tls_client
    }

    /// The next request to submit, and to which session. Submit it with
    /// [`Session::request`] and report the result with [`FxpTransfer::handle_submitted`] before polling
    /// again ([`FxpTransfer::drive`] does both).
    pub fn poll_request(&mut self) -> Option<(Side, Request)> {
        if self.submitting.is_some() {
            return None;
        }
        let (side, purpose, request) = self.outbox.pop_front()?;
        self.submitting = Some((side, purpose));
        Some((side, request))
    }

    /// What [`Session::request`] answered for the request last returned by `poll_request`.
    pub fn handle_submitted(&mut self, side: Side, submitted: Result<RequestId, UsageError>) {
        let Some((expected_side, purpose)) = self.submitting.take() else {
            return;
        };
        match submitted {
            Ok(id) if side == expected_side => self.ids.push((side, id, purpose)),
            Ok(_) => {} // a driver mistake: the request went to the wrong session; nothing to track
            Err(error) => {
                self.fail(FxpError::Usage(error));
                self.check_finished();
            }
        }
    }

    /// Submits every ready request to its session.
    pub fn drive(&mut self, now: Instant, destination: &mut Session, source: &mut Session) {
        while let Some((side, request)) = self.poll_request() {
            let session = match side {
                Side::Destination => &mut *destination,
                Side::Source => &mut *source,
            };
            let submitted = session.request(now, request);
            self.handle_submitted(side, submitted);
        }
    }

    /// Feeds an event of one of the sessions. Events of other requests are ignored, so the driver can
    /// pass every event of both sessions.
    pub fn handle_event(&mut self, side: Side, event: &Event) {
        match event {
            Event::Preliminary { id: Some(id), .. }
                if self.purpose_of(side, *id) == Some(Purpose::Stor) =>
            {
                self.stor_preliminary = true;
            }
            Event::Completed { id, result } => {
                let Some(position) = self.ids.iter().position(|&(s, i, _)| s == side && i == *id)
                else {
                    return;
                };
                let (_, _, purpose) = self.ids.remove(position);
                self.completed(side, purpose, result.clone());
            }
            _ => {}
        }
    }

    /// Whether the copy is over (then [`FxpTransfer::result`] says how it went).
    pub fn is_finished(&self) -> bool {
        self.result.is_some()
    }

    /// `Ok(())` once both servers confirmed the copy, the first failure if it failed, `None` while it
    /// runs.
    pub fn result(&self) -> Option<&Result<(), FxpError>> {
        self.result.as_ref()
    }

    fn purpose_of(&self, side: Side, id: RequestId) -> Option<Purpose> {
        self.ids
            .iter()
            .find(|&&(s, i, _)| s == side && i == id)
            .map(|&(_, _, purpose)| purpose)
    }

    fn completed(&mut self, side: Side, purpose: Purpose, result: Result<Outcome, ClientError>) {
        let fail = |side, error| match side {
            Side::Destination => FxpError::Destination(error),
            Side::Source => FxpError::Source(error),
        };
        match (purpose, result) {
            (Purpose::Setup, Ok(_)) => {
                self.setup_pending = self.setup_pending.saturating_sub(1);
                if self.setup_pending == 0 && self.error.is_none() {
                    self.request_listener();
                }
            }
            (Purpose::Pasv, Ok(Outcome::Done(reply))) => match self.port_for(&reply) {
                Some(host_port) => self.outbox.push_back((
                    Side::Source,
                    Purpose::Port,
                    Request::Raw(Command::Port(host_port)),
                )),
                None => self.fail(fail(side, bad_text(reply))),
            },
            (Purpose::Port, Ok(_)) => {
                self.outbox.push_back((
                    Side::Destination,
                    Purpose::Stor,
                    Request::Raw(Command::Stor(self.destination_path.clone())),
                ));
                self.request_retr();
            }
            (Purpose::Stor, result) => {
                let result = match result {
                    // A 2xx without a 150 first: the destination stored nothing from the source.
                    Ok(Outcome::Done(reply)) if !self.stor_preliminary => Err(unexpected(reply)),
                    other => other,
                };
                if let Err(error) = &result {
                    self.fail(fail(side, error.clone()));
                    self.abort_other(Side::Source);
                }
                self.stor_result = Some(result);
            }
            (Purpose::Retr, result) => {
                if let Err(error) = &result {
                    self.fail(fail(side, error.clone()));
                    self.abort_other(Side::Destination);
                }
                self.retr_result = Some(result);
            }
            (Purpose::Abort, _) => {}
            (_, Err(error)) => self.fail(fail(side, error)),
            (_, Ok(other)) => self.fail(fail(side, unexpected_outcome(other))),
        }
        self.check_finished();
    }

    /// The address for the source's `PORT`: the `227`'s, or its port at the configured IP.
    fn port_for(&self, reply: &Reply) -> Option<HostPort> {
        let announced = reply
            .lines()
            .find_map(|line| HostPort::parse_pasv_reply(line).ok())?;
        Some(match self.destination_ip {
            Some(ip) => HostPort::new(ip, announced.port()),
            None => announced,
        })
    }

    /// `PASV` to the destination (`CPSV` if it is to be the TLS client that way).
    fn request_listener(&mut self) {
        let command = match self.tls_client {
            Some(TlsClientSide::Cpsv) => Command::Cpsv,
            _ => Command::Pasv,
        };
        self.outbox
            .push_back((Side::Destination, Purpose::Pasv, Request::Raw(command)));
    }

    fn request_retr(&mut self) {
        self.retr_requested = true;
        self.outbox.push_back((
            Side::Source,
            Purpose::Retr,
            Request::Raw(Command::Retr(self.source_path.clone())),
        ));
    }

    /// The other side is still transferring (or waiting to): stop it.
    fn abort_other(&mut self, other: Side) {
        let running = match other {
            Side::Source => self.retr_requested && self.retr_result.is_none(),
            Side::Destination => self.stor_result.is_none(),
        };
        if running {
            self.outbox
                .push_back((other, Purpose::Abort, Request::Abort));
        }
    }

    fn fail(&mut self, error: FxpError) {
        self.error.get_or_insert(error);
    }

    /// The copy is over once it failed before the transfer started, or both transfer commands
    /// completed, and no request of it is outstanding.
    fn check_finished(&mut self) {
        if self.result.is_some() {
            return;
        }
        let idle = self.outbox.is_empty() && self.submitting.is_none() && self.ids.is_empty();
        let transfers_done =
            self.stor_result.is_some() && (self.retr_result.is_some() || !self.retr_requested);
        if !idle {
            return;
        }
        if let Some(error) = self.error.clone() {
            self.result = Some(Err(error));
        } else if transfers_done {
            self.result = Some(Ok(()));
        }
    }
}

fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(ProtocolError::UnexpectedReply(reply))
}

fn bad_text(reply: Reply) -> ClientError {
    ClientError::Protocol(ProtocolError::BadReplyText(reply))
}

fn unexpected_outcome(outcome: Outcome) -> ClientError {
    match outcome {
        Outcome::Done(reply) => unexpected(reply),
        _ => ClientError::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Action, Config, ConnectionInfo};
    use std::sync::Arc;

    /// Two greeted sessions and the copy, with helpers to play both servers.
    struct Harness {
        now: Instant,
        destination: Session,
        source: Session,
        fxp: FxpTransfer,
    }

    impl Harness {
        fn new(fxp: FxpTransfer) -> Harness {
            let now = Instant::now();
            let info = |peer: &str| ConnectionInfo {
                local: "192.0.2.1:40000".parse().unwrap(),
                peer: peer.parse().unwrap(),
            };
            let config = Arc::new(Config::default());
            let mut destination = Session::new(config.clone(), info("198.51.100.1:21"), now);
            let mut source = Session::new(config, info("203.0.113.9:21"), now);
            destination.handle_control_input(now, b"220 dst\r\n");
            source.handle_control_input(now, b"220 src\r\n");
            let mut harness = Harness {
                now,
                destination,
                source,
                fxp,
            };
            harness.step();
            harness
        }

        /// Passes every event to the copy and submits its requests, until nothing moves.
        fn step(&mut self) {
            loop {
                self.fxp
                    .drive(self.now, &mut self.destination, &mut self.source);
                let mut moved = false;
                while let Some(event) = self.destination.poll_event() {
                    self.fxp.handle_event(Side::Destination, &event);
                    moved = true;
                }
                while let Some(event) = self.source.poll_event() {
                    self.fxp.handle_event(Side::Source, &event);
                    moved = true;
                }
                if !moved {
                    break;
                }
            }
        }

        /// The commands a session sent since the last call.
        fn sent(&mut self, side: Side) -> String {
            let session = match side {
                Side::Destination => &mut self.destination,
                Side::Source => &mut self.source,
            };
            let mut out = String::new();
            while let Some(action) = session.poll_action() {
                if let Action::SendControl(bytes) = action {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            out
        }

        fn reply(&mut self, side: Side, wire: &[u8]) {
            let now = self.now;
            match side {
                Side::Destination => self.destination.handle_control_input(now, wire),
                Side::Source => self.source.handle_control_input(now, wire),
            }
            self.step();
        }
    }

    fn path(s: &str) -> Pathname {
        Pathname::new(s).unwrap()
    }

    #[test]
    fn copies_in_rfc_959_order() {
        use Side::*;
        let mut h = Harness::new(FxpTransfer::new(path("big.iso"), path("in/big.iso")));
        assert_eq!(h.sent(Destination), "PASV\r\n");
        assert_eq!(h.sent(Source), "");
        h.reply(
            Destination,
            b"227 Entering Passive Mode (198,51,100,1,200,10)\r\n",
        );
        assert_eq!(h.sent(Source), "PORT 198,51,100,1,200,10\r\n");
        h.reply(Source, b"200 PORT command successful\r\n");
        assert_eq!(h.sent(Destination), "STOR in/big.iso\r\n");
        // At once: the destination's 150 may wait for the connection that RETR makes.
        assert_eq!(h.sent(Source), "RETR big.iso\r\n");
        h.reply(Destination, b"150 Ok to send data\r\n");
        h.reply(
            Source,
            b"150 Opening BINARY mode data connection\r\n226 Transfer complete\r\n",
        );
        assert!(!h.fxp.is_finished());
        h.reply(Destination, b"226 Transfer complete\r\n");
        assert_eq!(h.fxp.result(), Some(&Ok(())));
        assert_eq!(h.sent(Destination) + &h.sent(Source), "");
    }

    #[test]
    fn destination_ip_replaces_the_announced_one() {
        let fxp = FxpTransfer::new(path("a"), path("b"))
            .with_destination_ip(Ipv4Addr::new(198, 51, 100, 1));
        let mut h = Harness::new(fxp);
        h.sent(Side::Destination);
        h.reply(
            Side::Destination,
            b"227 Entering Passive Mode (10,0,0,5,4,1)\r\n",
        );
        assert_eq!(h.sent(Side::Source), "PORT 198,51,100,1,4,1\r\n");
    }

    #[test]
    fn port_refused_by_the_source() {
        let mut h = Harness::new(FxpTransfer::new(path("a"), path("b")));
        h.reply(
            Side::Destination,
            b"227 Entering Passive Mode (198,51,100,1,4,1)\r\n",
        );
        h.reply(Side::Source, b"501 Illegal PORT command\r\n");
        let Some(Err(FxpError::Source(ClientError::Reply(reply)))) = h.fxp.result() else {
            panic!("{:?}", h.fxp.result());
        };
        assert_eq!(reply.code().get(), 501);
        assert_eq!(
            h.sent(Side::Destination),
            "PASV\r\n",
            "no STOR after a failed PORT"
        );
    }

    /// Regression: the copy waited for the destination's 150 before sending RETR, but ProFTPD,
    /// pyftpdlib and the example server send 150 only once the source has connected: a deadlock until
    /// the reply timeout. Now the destination can answer 150 only after the source's 150.
    #[test]
    fn destination_150_after_the_source_connected() {
        use Side::*;
        let mut h = Harness::new(FxpTransfer::new(path("a"), path("b")));
        h.reply(
            Destination,
            b"227 Entering Passive Mode (198,51,100,1,4,1)\r\n",
        );
        h.reply(Source, b"200 ok\r\n");
        assert_eq!(h.sent(Source), "PORT 198,51,100,1,4,1\r\nRETR a\r\n");
        h.reply(Source, b"150 Opening data connection\r\n");
        h.reply(Destination, b"150 Ok to send data\r\n");
        h.reply(Source, b"226 Transfer complete\r\n");
        h.reply(Destination, b"226 Transfer complete\r\n");
        assert_eq!(h.fxp.result(), Some(&Ok(())));
    }

    #[test]
    fn stor_refused_aborts_the_source() {
        let mut h = Harness::new(FxpTransfer::new(path("a"), path("b")));
        h.reply(
            Side::Destination,
            b"227 Entering Passive Mode (198,51,100,1,4,1)\r\n",
        );
        h.reply(Side::Source, b"200 ok\r\n");
        assert_eq!(h.sent(Side::Source), "PORT 198,51,100,1,4,1\r\nRETR a\r\n");
        h.reply(Side::Destination, b"553 Could not create file\r\n");
        assert!(!h.fxp.is_finished(), "the source's RETR is still running");
        // The source started sending to a destination that will not read: ABOR stops it.
        h.reply(Side::Source, b"150 Opening data connection\r\n");
        assert_eq!(h.sent(Side::Source), "ABOR\r\nNOOP\r\n");
        h.reply(
            Side::Source,
            b"426 Connection closed; transfer aborted\r\n226 Abort successful\r\n200 NOOP ok\r\n",
        );
        let Some(Err(FxpError::Destination(ClientError::Reply(reply)))) = h.fxp.result() else {
            panic!("{:?}", h.fxp.result());
        };
        assert_eq!(reply.code().get(), 553);
    }

    #[test]
    fn stor_completing_without_a_preliminary_reply_is_a_protocol_error() {
        let mut h = Harness::new(FxpTransfer::new(path("a"), path("b")));
        h.reply(
            Side::Destination,
            b"227 Entering Passive Mode (198,51,100,1,4,1)\r\n",
        );
        h.reply(Side::Source, b"200 ok\r\n");
        h.reply(Side::Destination, b"226 Nothing to do\r\n");
        h.reply(Side::Source, b"150 Opening\r\n");
        assert_eq!(
            h.sent(Side::Source),
            "PORT 198,51,100,1,4,1\r\nRETR a\r\nABOR\r\nNOOP\r\n"
        );
        h.reply(Side::Source, b"426 Aborted\r\n226 Ok\r\n200 NOOP ok\r\n");
        assert!(matches!(
            h.fxp.result(),
            Some(Err(FxpError::Destination(ClientError::Protocol(
                ProtocolError::UnexpectedReply(_)
            ))))
        ));
    }

    #[test]
    fn retr_refused_aborts_the_waiting_destination() {
        let mut h = Harness::new(FxpTransfer::new(path("missing"), path("b")));
        h.reply(
            Side::Destination,
            b"227 Entering Passive Mode (198,51,100,1,4,1)\r\n",
        );
        h.reply(Side::Source, b"200 ok\r\n");
        h.reply(Side::Destination, b"150 Ok to send data\r\n");
        assert_eq!(h.sent(Side::Destination), "PASV\r\nSTOR b\r\n");
        h.reply(Side::Source, b"550 No such file\r\n");
        // The destination got 150 and waits: ABOR (with its NOOP sentinel) stops it.
        assert_eq!(h.sent(Side::Destination), "ABOR\r\nNOOP\r\n");
        assert!(!h.fxp.is_finished());
        h.reply(
            Side::Destination,
            b"426 Connection closed; transfer aborted\r\n226 Abort successful\r\n200 NOOP ok\r\n",
        );
        let Some(Err(FxpError::Source(ClientError::Reply(reply)))) = h.fxp.result() else {
            panic!("{:?}", h.fxp.result());
        };
        assert_eq!(reply.code().get(), 550);
    }

    fn features(lines: &[&str]) -> FeatureSet {
        FeatureSet::from_lines(lines.iter().copied())
    }

    /// Replies `200` to each setup command a side sent, one at a time, and returns them.
    fn accept_setup(h: &mut Harness, side: Side, count: usize) -> String {
        let mut all = String::new();
        for _ in 0..count {
            let sent = h.sent(side);
            assert!(!sent.is_empty(), "{side:?} sent nothing; so far {all:?}");
            all.push_str(&sent);
            h.reply(side, b"200 OK\r\n");
        }
        all
    }

    #[test]
    fn protected_copy_makes_the_connecting_source_the_tls_client() {
        use Side::*;
        let tls = features(&["AUTH TLS", "PBSZ", "PROT", "SSCN", "CPSV"]);
        let fxp = FxpTransfer::new(path("a"), path("b"))
            .protected(&tls, &tls)
            .unwrap();
        assert_eq!(fxp.tls_client(), Some(TlsClientSide::SscnSource));
        let mut h = Harness::new(fxp);
        // Both sides are set up, one command after the other; the copy waits for all of them.
        assert_eq!(
            accept_setup(&mut h, Destination, 3),
            "PBSZ 0\r\nPROT P\r\nSSCN OFF\r\n"
        );
        assert_eq!(
            h.sent(Destination),
            "",
            "no PASV before the source is set up"
        );
        assert_eq!(
            accept_setup(&mut h, Source, 3),
            "PBSZ 0\r\nPROT P\r\nSSCN ON\r\n"
        );
        assert_eq!(h.sent(Destination), "PASV\r\n");
        h.reply(
            Destination,
            b"227 Entering Passive Mode (198,51,100,1,4,1)\r\n",
        );
        assert_eq!(h.sent(Source), "PORT 198,51,100,1,4,1\r\n");
        h.reply(Source, b"200 PORT ok\r\n");
        assert_eq!(h.sent(Destination), "STOR b\r\n");
        assert_eq!(h.sent(Source), "RETR a\r\n");
        h.reply(Source, b"150 Opening\r\n");
        h.reply(Destination, b"150 Ok to send data\r\n");
        h.reply(Source, b"226 Done\r\n");
        h.reply(Destination, b"226 Done\r\n");
        assert_eq!(h.fxp.result(), Some(&Ok(())));
    }

    #[test]
    fn protected_copy_falls_back_to_sscn_on_the_destination_then_cpsv() {
        use Side::*;
        let plain_tls = features(&["AUTH TLS", "PBSZ", "PROT"]);
        let sscn = features(&["AUTH TLS", "SSCN"]);
        let cpsv = features(&["AUTH TLS", "CPSV"]);
        assert_eq!(
            TlsClientSide::choose(&sscn, &plain_tls),
            Some(TlsClientSide::SscnDestination)
        );
        assert_eq!(
            TlsClientSide::choose(&cpsv, &plain_tls),
            Some(TlsClientSide::Cpsv)
        );
        // CPSV on the source is no help: the source does not listen.
        assert_eq!(TlsClientSide::choose(&plain_tls, &cpsv), None);

        let fxp = FxpTransfer::new(path("a"), path("b"))
            .protected(&sscn, &plain_tls)
            .unwrap();
        let mut h = Harness::new(fxp);
        assert_eq!(
            accept_setup(&mut h, Destination, 3),
            "PBSZ 0\r\nPROT P\r\nSSCN ON\r\n"
        );
        assert_eq!(accept_setup(&mut h, Source, 2), "PBSZ 0\r\nPROT P\r\n");
        assert_eq!(h.sent(Destination), "PASV\r\n");

        let fxp = FxpTransfer::new(path("a"), path("b"))
            .protected(&cpsv, &plain_tls)
            .unwrap();
        let mut h = Harness::new(fxp);
        assert_eq!(accept_setup(&mut h, Destination, 2), "PBSZ 0\r\nPROT P\r\n");
        assert_eq!(accept_setup(&mut h, Source, 2), "PBSZ 0\r\nPROT P\r\n");
        assert_eq!(h.sent(Destination), "CPSV\r\n");
        // CPSV answers as PASV does.
        h.reply(
            Destination,
            b"227 Entering Passive Mode (198,51,100,1,4,1)\r\n",
        );
        assert_eq!(h.sent(Source), "PORT 198,51,100,1,4,1\r\n");
    }

    #[test]
    fn protected_copy_without_a_tls_client_is_refused_before_any_command() {
        let plain_tls = features(&["AUTH TLS", "PBSZ", "PROT"]);
        let refused = FxpTransfer::new(path("a"), path("b")).protected(&plain_tls, &plain_tls);
        assert_eq!(refused.unwrap_err(), FxpError::NoTlsClient);
    }

    #[test]
    fn refused_protection_fails_the_copy_without_pasv() {
        use Side::*;
        let tls = features(&["SSCN"]);
        let fxp = FxpTransfer::new(path("a"), path("b"))
            .protected(&tls, &tls)
            .unwrap();
        let mut h = Harness::new(fxp);
        assert_eq!(
            accept_setup(&mut h, Destination, 3),
            "PBSZ 0\r\nPROT P\r\nSSCN OFF\r\n"
        );
        assert_eq!(h.sent(Source), "PBSZ 0\r\n");
        h.reply(Source, b"200 PBSZ=0\r\n");
        assert_eq!(h.sent(Source), "PROT P\r\n");
        h.reply(Source, b"534 Request denied for policy reasons\r\n");
        // The source's SSCN ON still runs (it was queued); then the copy is over, with no PASV.
        assert!(!h.fxp.is_finished());
        assert_eq!(h.sent(Source), "SSCN ON\r\n");
        h.reply(Source, b"200 SSCN:CLIENT METHOD\r\n");
        let Some(Err(FxpError::Source(ClientError::Reply(reply)))) = h.fxp.result() else {
            panic!("{:?}", h.fxp.result());
        };
        assert_eq!(reply.code().get(), 534);
        assert_eq!(h.sent(Destination) + &h.sent(Source), "");
    }

    #[test]
    fn garbage_pasv_reply() {
        let mut h = Harness::new(FxpTransfer::new(path("a"), path("b")));
        h.reply(Side::Destination, b"227 Entering Passive Mode (nope)\r\n");
        assert!(matches!(
            h.fxp.result(),
            Some(Err(FxpError::Destination(ClientError::Protocol(
                ProtocolError::BadReplyText(_)
            ))))
        ));
    }
}
