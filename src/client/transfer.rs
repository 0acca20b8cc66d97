//! One transfer over a data connection: a download, an upload or a listing, from setting up the data
//! channel to the final reply.
//!
//! The steps (RFC 959 §3.2, RFC 2428, RFC 3659 §5):
//!
//! 0. `TYPE`, again, if the server may have reset it since it was set (after `REIN` or a login); and
//!    `PBSZ 0` + `PROT P` before the first transfer on a protected control connection.
//! 1. **Data channel.** Passive: `EPSV` (or `PASV` once the server said it does not know `EPSV`: 500,
//!    502, or 522 on IPv4); on the 229/227 reply the driver is told to connect
//!    ([`DataAction::Connect`]) and the session goes on at once, without waiting for the connection.
//!    Active: the driver binds a listener ([`DataAction::Listen`]), then `EPRT` (or `PORT` for IPv4
//!    once the server said it does not know `EPRT`) announces it.
//! 2. `REST offset` if resuming (it must come right before the transfer command, RFC 3659 §5.5).
//! 3. The transfer command. `125` or `150` is the preliminary reply, `226` or `250` the final one. In
//!    active mode the driver is told to accept the server's connection ([`DataAction::Accept`]) as the
//!    command goes out.
//!
//! The chunks move through a [`Pump`] with at most [`Config::transfer_window`] of them in flight: a
//! download asks the data connection for one chunk at a time and hands each to the user's sink
//! ([`LocalAction::Write`]), whose acknowledgement frees its slot; an upload asks the user's source
//! ([`LocalAction::Read`]) and sends each chunk on the data connection. A listing is collected by the
//! session itself: it has no local end.
//!
//! The transfer completes only when the final reply arrived, the data connection ended (its EOF for a
//! download; for an upload, the user's source ended, every chunk was written and the session closed the
//! connection, which is how the server learns the file ended), and, for a download, the driver reported
//! the sink stored after [`LocalAction::Close`]. Events may come in any order: data before the `150`,
//! the `226` before the EOF.
//!
//! [`Config::transfer_window`]: super::Config::transfer_window

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::command::{Command, TransferType};
use crate::data::{DataAction, DataCompletion, DataError, LocalAction, NetworkEnd, Pump};
use crate::hostport::{self, HostPort, NetworkProtocol};
use crate::listing::{body_lines, parse_list_line, parse_mlsx_line};
use crate::reply::{Reply, ReplyCode, ReplyKind};
use crate::time::Timestamp;
use crate::transcode::Transcoder;

use super::Session;
use super::config::DataMode;
use super::io::{Action, ClientError, Event, Outcome, ProtocolError, RequestId};
use super::ops::{Flow, Op, refusal};

/// What is transferred.
#[derive(Debug, Clone, Copy)]
pub(super) enum TransferKind {
    Retrieve,
    Store { append: bool },
    List(Timestamp),
    Nlst,
    Mlsd,
}

impl TransferKind {
    fn is_upload(self) -> bool {
        matches!(self, TransferKind::Store { .. })
    }

    fn is_listing(self) -> bool {
        matches!(
            self,
            TransferKind::List(_) | TransferKind::Nlst | TransferKind::Mlsd
        )
    }
}

/// Which command's reply the transfer waits for (or, for `Listen`, which completion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `TYPE`, sent again because the server may have reset it.
    Type,
    /// `PBSZ 0`, then `PROT P`: data protection before the first transfer over TLS.
    Pbsz,
    Prot,
    Epsv,
    Pasv,
    /// Active mode: waiting for the driver's listener.
    Listen,
    Eprt(SocketAddr),
    Port,
    Rest,
    /// `REST 0`, undoing a `REST` whose transfer will not be sent (so it cannot apply to a later one).
    ClearRest,
    /// The transfer command is sent.
    Command,
}

/// The data connection, as far as the session knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Data {
    /// Not asked for yet.
    Idle,
    /// Active mode: a listener is asked for (or bound); its connection is not accepted yet.
    Listening,
    /// Connecting, or accepting the server's connection.
    Pending,
    /// Open; its TLS handshake runs.
    Securing,
    Open,
    /// Ended well: EOF of a download, or closed after an upload's last byte.
    Ended,
    /// Closed by the session after a failure or an abort.
    Closed,
}

impl Data {
    /// Something is open or on its way: a listener, a connection attempt, a connection.
    fn is_live(self) -> bool {
        matches!(
            self,
            Data::Listening | Data::Pending | Data::Securing | Data::Open
        )
    }
}

/// The transfer's local end: the user's sink (download) or source (upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Local {
    /// A listing: the session collects the body itself.
    None,
    /// In use (or not yet): no [`LocalAction::Close`] was sent.
    Open,
    /// A download's sink was closed after its last write: the driver owes `Written` once it is stored.
    Flushing,
    /// Closed (stored, or given up).
    Closed,
}

/// A transfer in progress.
#[derive(Debug)]
pub(super) struct Transfer {
    kind: TransferKind,
    /// The transfer command (`RETR`, `STOR`, `APPE`, `LIST`, `NLST`, `MLSD`), sent once the data
    /// channel is set up.
    command: Command,
    offset: u64,
    stage: Stage,
    data: Data,
    /// The 125/150 arrived.
    preliminary: bool,
    /// The positive final reply, once it arrived.
    final_reply: Option<Reply>,
    /// The data connection failed (or timed out): the transfer fails with this.
    data_error: Option<ClientError>,
    /// A listing outgrew `max_listing_bytes`.
    overflow: bool,
    local: Local,
    /// Moves the chunks (converting them in TYPE A), keeps the window and counts the bytes.
    pump: Pump,
    /// A download or listing asked the data connection for a chunk (one at a time) and awaits it.
    receiving: bool,
    /// A listing's body.
    body: Vec<u8>,
}

impl Transfer {
    pub(super) fn command_sent(&self) -> bool {
        self.stage == Stage::Command
    }

    /// Data is (supposed to be) moving: the server said so and the connection has not ended.
    pub(super) fn data_flowing(&self) -> bool {
        self.preliminary && self.data.is_live()
    }

    /// The driver still owes the local end's answers: a download's writes after the data ended, or the
    /// sink's flush.
    fn local_busy(&self) -> bool {
        match self.local {
            Local::Flushing => true,
            Local::Open => self.data == Data::Ended,
            Local::None | Local::Closed => false,
        }
    }

    /// Whether every local answer is in: nothing stands between the final reply and the outcome.
    fn local_done(&self) -> bool {
        matches!(self.local, Local::None | Local::Closed)
    }

    fn rest_offset(&self) -> Option<u64> {
        let appending = matches!(self.kind, TransferKind::Store { append: true });
        (self.offset > 0 && !appending).then_some(self.offset)
    }

    /// The result of a transfer that ended well. A listing of more than `max_entries` lines fails: the
    /// byte bound alone would let a body of tiny lines become a parsed outcome many times its size.
    fn outcome(&mut self, max_entries: usize) -> Result<Outcome, ClientError> {
        let body = std::mem::take(&mut self.body);
        Ok(match self.kind {
            TransferKind::Retrieve => Outcome::Retrieved {
                bytes: self.pump.bytes(),
            },
            TransferKind::Store { .. } => Outcome::Stored {
                bytes: self.pump.bytes(),
            },
            TransferKind::List(now) => Outcome::Listing(at_most(
                body_lines(&body).map(|line| parse_list_line(line, now)),
                max_entries,
            )?),
            TransferKind::Mlsd => Outcome::Facts(at_most(
                body_lines(&body).map(parse_mlsx_line),
                max_entries,
            )?),
            TransferKind::Nlst => {
                Outcome::Names(at_most(body_lines(&body).map(<[u8]>::to_vec), max_entries)?)
            }
        })
    }
}

/// Whether a refusal of `EPSV`/`EPRT` means "use `PASV`/`PORT`", for the rest of the session: the server
/// does not know the extension (500, 502; RFC 2428 is an extension), or not for this address family
/// (522), when the old command can carry the family (`fallback_serves`: IPv4). Any other refusal (530
/// not logged in, 501, 550, ...) is the transfer's answer and says nothing about the extension.
fn is_extension_refusal(code: ReplyCode, fallback_serves: bool) -> bool {
    match code {
        ReplyCode::SYNTAX_ERROR | ReplyCode::NOT_IMPLEMENTED => true,
        ReplyCode::EXTENDED_PORT_FAILURE => fallback_serves,
        _ => false,
    }
}

/// The entries of a listing, or an error if there are more than `limit` (found by reading one past it).
fn at_most<T>(entries: impl Iterator<Item = T>, limit: usize) -> Result<Vec<T>, ClientError> {
    let mut kept = Vec::new();
    for entry in entries {
        if kept.len() >= limit {
            return Err(ClientError::ListingTooManyEntries { limit });
        }
        kept.push(entry);
    }
    Ok(kept)
}

impl Session {
    /// Starts a transfer of `kind` with its transfer `command`: the first step of setting up its data
    /// channel.
    pub(super) fn begin_transfer(
        &mut self,
        now: Instant,
        id: RequestId,
        kind: TransferKind,
        command: Command,
        offset: u64,
    ) -> Op {
        let ascii = matches!(self.transfer_type, TransferType::Ascii(_));
        let transcoder = match kind {
            TransferKind::Retrieve if ascii => Transcoder::from_network(),
            TransferKind::Store { .. } if ascii => Transcoder::to_network(),
            TransferKind::Retrieve | TransferKind::Store { .. } => Transcoder::Identity,
            // Listing parsers take CRLF or LF as they come.
            TransferKind::List(_) | TransferKind::Nlst | TransferKind::Mlsd => Transcoder::Identity,
        };
        // The bytes counted are those on the data connection: the sink of an upload, the source of the
        // rest.
        let network = if kind.is_upload() {
            NetworkEnd::Sink
        } else {
            NetworkEnd::Source
        };
        let local = if kind.is_listing() {
            Local::None
        } else {
            Local::Open
        };
        let mut transfer = Transfer {
            kind,
            command,
            offset,
            stage: Stage::Epsv,
            data: Data::Idle,
            preliminary: false,
            final_reply: None,
            data_error: None,
            overflow: false,
            local,
            pump: Pump::new(transcoder, network),
            receiving: false,
            body: Vec::new(),
        };
        self.prepare(now, id, &mut transfer);
        Op::Transfer(Box::new(transfer))
    }

    /// The next step before the data channel: `TYPE` if the server may have reset it (the conversion
    /// chosen relies on it), `PBSZ`/`PROT` if data protection is not set up yet, else the channel.
    fn prepare(&mut self, now: Instant, id: RequestId, t: &mut Transfer) {
        if self.type_unconfirmed {
            self.send(now, &Command::Type(self.transfer_type));
            t.stage = Stage::Type;
        } else if self.needs_data_protection() {
            let [pbsz, _] = Session::protection_commands();
            self.send(now, &pbsz);
            t.stage = Stage::Pbsz;
        } else {
            self.open_channel(now, id, t);
        }
    }

    /// The first step of setting up the data channel.
    fn open_channel(&mut self, now: Instant, id: RequestId, t: &mut Transfer) {
        match self.config.mode {
            DataMode::Passive if self.config.extended_first && !self.epsv_refused => {
                self.send(now, &Command::Epsv(crate::command::EpsvArg::Any));
                t.stage = Stage::Epsv;
            }
            DataMode::Passive => {
                self.send(now, &Command::Pasv);
                t.stage = Stage::Pasv;
            }
            DataMode::Active => {
                let family =
                    NetworkProtocol::of(&SocketAddr::new(self.info.local.ip().to_canonical(), 0));
                self.actions
                    .push_back(Action::Data(DataAction::Listen { id, family }));
                t.stage = Stage::Listen;
                t.data = Data::Listening;
                self.start_data_timer(now);
            }
        }
    }

    /// A reply for a transfer with no abort running. `abort_requested`: the user asked to abort, and the
    /// transfer stops at the next step.
    pub(super) fn transfer_reply(
        &mut self,
        now: Instant,
        id: RequestId,
        t: &mut Transfer,
        reply: Reply,
        abort_requested: bool,
    ) -> Flow {
        let code = reply.code();
        if t.stage != Stage::Command && code.is_positive_preliminary() {
            let id = Some(id);
            self.push_event(Event::Preliminary { id, reply });
            return Flow::Continue;
        }
        // A transfer that cannot succeed stops at the first step boundary; a REST must be undone first.
        let doom = t
            .data_error
            .clone()
            .or(abort_requested.then_some(ClientError::Aborted));
        if let Some(error) = doom.clone() {
            if !matches!(t.stage, Stage::Rest | Stage::ClearRest | Stage::Command) {
                return Flow::Done(Err(error));
            }
        }
        match t.stage {
            Stage::Type if code.is_positive_completion() => {
                self.type_unconfirmed = false;
                self.prepare(now, id, t);
                Flow::Continue
            }
            Stage::Pbsz if code.is_positive_completion() => {
                let [_, prot] = Session::protection_commands();
                self.send(now, &prot);
                t.stage = Stage::Prot;
                Flow::Continue
            }
            // A refused `PROT P` fails the transfer: never a silent fall back to plaintext.
            Stage::Prot if code.is_positive_completion() => {
                self.security.data_protected = true;
                self.prepare(now, id, t);
                Flow::Continue
            }
            Stage::Epsv => self.epsv_reply(now, id, t, reply),
            Stage::Pasv => self.pasv_reply(now, id, t, reply),
            Stage::Listen => Flow::Continue, // nothing was sent: `on_reply` never routes one here
            Stage::Eprt(addr) => {
                if code.is_positive_completion() {
                    self.after_channel(now, id, t)
                } else if addr.is_ipv4() && is_extension_refusal(code, true) {
                    // PORT can describe IPv4 only: for IPv6 a refused EPRT is the answer.
                    self.eprt_refused = true;
                    self.send_port(now, t, addr)
                } else {
                    Flow::Done(Err(refusal(reply)))
                }
            }
            Stage::Port if code.is_positive_completion() => self.after_channel(now, id, t),
            Stage::Rest if code == ReplyCode::FILE_ACTION_PENDING => {
                if doom.is_some() {
                    self.send(now, &Command::Rest(0));
                    t.stage = Stage::ClearRest;
                } else {
                    self.send_command(now, id, t);
                }
                Flow::Continue
            }
            Stage::ClearRest => Flow::Done(Err(doom.unwrap_or(ClientError::Aborted))),
            Stage::Command => self.command_reply(now, id, t, reply),
            Stage::Type | Stage::Pbsz | Stage::Prot | Stage::Port | Stage::Rest => {
                Flow::Done(Err(refusal(reply)))
            }
        }
    }

    /// `229 Entering Extended Passive Mode (|||port|)`: connect to the control peer's IP at that port.
    fn epsv_reply(&mut self, now: Instant, id: RequestId, t: &mut Transfer, reply: Reply) -> Flow {
        let code = reply.code();
        if code == ReplyCode::ENTERING_EXTENDED_PASSIVE {
            let port = reply
                .lines()
                .find_map(|line| hostport::parse_epsv_reply(line).ok());
            return match port {
                Some(port) => {
                    let addr = SocketAddr::new(self.info.peer.ip(), port);
                    self.open_passive(now, id, t, addr)
                }
                None => Flow::Done(Err(ProtocolError::BadReplyText(reply).into())),
            };
        }
        if is_extension_refusal(code, self.info.peer.ip().to_canonical().is_ipv4()) {
            self.epsv_refused = true;
            self.send(now, &Command::Pasv);
            t.stage = Stage::Pasv;
            return Flow::Continue;
        }
        Flow::Done(Err(refusal(reply)))
    }

    /// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`: by default only the port is used (see
    /// [`Config::trust_pasv_address`](super::Config::trust_pasv_address)).
    fn pasv_reply(&mut self, now: Instant, id: RequestId, t: &mut Transfer, reply: Reply) -> Flow {
        if reply.code() != ReplyCode::ENTERING_PASSIVE {
            return Flow::Done(Err(refusal(reply)));
        }
        let announced = reply
            .lines()
            .find_map(|line| HostPort::parse_pasv_reply(line).ok());
        let Some(announced) = announced else {
            return Flow::Done(Err(ProtocolError::BadReplyText(reply).into()));
        };
        let addr = if self.config.trust_pasv_address {
            SocketAddr::from(announced)
        } else {
            SocketAddr::new(self.info.peer.ip(), announced.port())
        };
        self.open_passive(now, id, t, addr)
    }

    /// Passive mode: connect now, and send the next command at the same time.
    fn open_passive(
        &mut self,
        now: Instant,
        id: RequestId,
        t: &mut Transfer,
        addr: SocketAddr,
    ) -> Flow {
        let tls = self.data_tls();
        self.actions
            .push_back(Action::Data(DataAction::Connect { id, addr, tls }));
        t.data = Data::Pending;
        self.start_data_timer(now);
        self.after_channel(now, id, t)
    }

    /// Active mode: announce the listener with `EPRT`, or `PORT` once `EPRT` was refused (IPv4 only).
    fn announce_listener(&mut self, now: Instant, t: &mut Transfer, addr: SocketAddr) -> Flow {
        // PORT can only describe IPv4; for IPv6 EPRT is the only way, refused or not.
        let use_port = addr.is_ipv4() && (self.eprt_refused || !self.config.extended_first);
        if !use_port {
            self.send(now, &Command::Eprt(addr));
            t.stage = Stage::Eprt(addr);
            Flow::Continue
        } else {
            self.send_port(now, t, addr)
        }
    }

    fn send_port(&mut self, now: Instant, t: &mut Transfer, addr: SocketAddr) -> Flow {
        match HostPort::try_from(addr) {
            Ok(host_port) => {
                self.send(now, &Command::Port(host_port));
                t.stage = Stage::Port;
                Flow::Continue
            }
            // Unreachable: only IPv4 addresses get here.
            Err(_) => Flow::Done(Err(ClientError::DataConnection(DataError::new(
                ErrorKind::Unsupported,
            )))),
        }
    }

    /// The data channel is set up: `REST` if resuming, else the transfer command.
    fn after_channel(&mut self, now: Instant, id: RequestId, t: &mut Transfer) -> Flow {
        match t.rest_offset() {
            Some(offset) => {
                self.send(now, &Command::Rest(offset));
                t.stage = Stage::Rest;
            }
            None => self.send_command(now, id, t),
        }
        Flow::Continue
    }

    /// Sends the transfer command. In active mode the server connects once it has it: accept then.
    fn send_command(&mut self, now: Instant, id: RequestId, t: &mut Transfer) {
        self.send(now, &t.command);
        t.stage = Stage::Command;
        if t.data == Data::Listening {
            let tls = self.data_tls();
            let accept = DataAction::Accept {
                id,
                listener: id,
                tls,
            };
            self.actions.push_back(Action::Data(accept));
            t.data = Data::Pending;
            self.start_data_timer(now);
        }
    }

    /// A reply to the transfer command.
    fn command_reply(
        &mut self,
        now: Instant,
        id: RequestId,
        t: &mut Transfer,
        reply: Reply,
    ) -> Flow {
        match reply.code().kind() {
            ReplyKind::PositivePreliminary => {
                // 110 is a restart marker (block mode only); 125/150 start the transfer.
                if reply.code() != ReplyCode::RESTART_MARKER {
                    t.preliminary = true;
                }
                if t.data_flowing() {
                    self.suspend_reply_timer();
                }
                self.push_event(Event::Preliminary {
                    id: Some(id),
                    reply,
                });
                if t.data == Data::Open {
                    self.pump_upload(id, t);
                }
                Flow::Continue
            }
            _ if t.overflow => Flow::Done(Err(self.too_large())),
            ReplyKind::PositiveCompletion => {
                t.final_reply = Some(reply);
                self.try_finish(now, id, t)
            }
            _ => Flow::Done(Err(refusal(reply))),
        }
    }

    /// Completes the transfer if its final reply, the end of its data and (for a download) the sink's
    /// safe storage are in.
    fn try_finish(&mut self, now: Instant, id: RequestId, t: &mut Transfer) -> Flow {
        if t.final_reply.is_none() {
            return Flow::Continue;
        }
        if let Some(error) = &t.data_error {
            return Flow::Done(Err(error.clone()));
        }
        match t.data {
            Data::Ended => {}
            // A final reply without a preliminary one: the server sent nothing (some answer an empty
            // listing this way). Close what was prepared; an empty download is still stored.
            Data::Idle | Data::Listening | Data::Pending if !t.preliminary => {
                self.close_data(id, t, true);
                t.data = Data::Ended;
                t.pump.finish_source();
                self.settle_local(now, id, t);
            }
            // Not ended yet; or closed by the session, which then fails the transfer itself.
            Data::Idle
            | Data::Listening
            | Data::Pending
            | Data::Securing
            | Data::Open
            | Data::Closed => {
                return Flow::Continue;
            }
        }
        if t.local_done() {
            Flow::Done(t.outcome(self.config.max_listing_entries))
        } else {
            Flow::Continue
        }
    }

    /// The driver's answer to a data or local action. Answers the transfer does not wait for (stale
    /// ones, after the connection closed, or a driver's mistakes) change nothing.
    pub(super) fn transfer_completion(
        &mut self,
        now: Instant,
        id: RequestId,
        t: &mut Transfer,
        completion: DataCompletion,
    ) -> Flow {
        let upload = t.kind.is_upload();
        match completion {
            // Only the listener asked for; nothing can connect to it before it is announced.
            DataCompletion::Listening(addr)
                if t.stage == Stage::Listen && t.data == Data::Listening =>
            {
                self.start_data_timer(now);
                let ip = if addr.ip().is_unspecified() {
                    self.info.local.ip()
                } else {
                    addr.ip()
                };
                let addr = SocketAddr::new(ip.to_canonical(), addr.port());
                self.announce_listener(now, t, addr)
            }
            DataCompletion::Connected { peer } if t.data == Data::Pending => {
                self.start_data_timer(now);
                let active = self.config.mode == DataMode::Active;
                if active && !self.info.is_peer(peer.ip()) {
                    // RFC 2577 §5: someone else reached our listener first.
                    let refused = DataError::new(ErrorKind::PermissionDenied);
                    return self.data_failed(id, t, ClientError::DataConnection(refused));
                }
                if let Some(role) = self.data_tls() {
                    // A client starts its handshake at once: servers that send their 150 first
                    // read it after that, and servers that wait for it before the 150 need it.
                    self.actions
                        .push_back(Action::Data(DataAction::Secure { id, role }));
                    t.data = Data::Securing;
                    return Flow::Continue;
                }
                self.data_open(id, t)
            }
            // The client resumes the control connection's session if it can; whether it did is the
            // server's to check.
            DataCompletion::Secured { .. } if t.data == Data::Securing => {
                self.start_data_timer(now);
                self.data_open(id, t)
            }
            // The data connection's end (a download or listing).
            DataCompletion::EndOfData if t.receiving => {
                t.receiving = false;
                self.start_data_timer(now);
                if let Some(tail) = t.pump.source_ended() {
                    if let Some(flow) = self.deliver(now, id, t, tail) {
                        return flow;
                    }
                }
                self.actions
                    .push_back(Action::Data(DataAction::Close { id, aborted: false }));
                self.data_ended(now, id, t)
            }
            // The source's end (an upload). With several reads in flight, each one after the end is
            // answered with EndOfData too.
            DataCompletion::EndOfData
                if upload && t.data == Data::Open && t.local == Local::Open =>
            {
                self.start_data_timer(now);
                if let Some(tail) = t.pump.source_ended() {
                    self.actions
                        .push_back(Action::Data(DataAction::Send { id, data: tail }));
                    self.progress(id, t.pump.bytes());
                }
                self.upload_step(now, id, t)
            }
            DataCompletion::Written if upload && t.data == Data::Open => {
                self.start_data_timer(now);
                t.pump.written();
                self.upload_step(now, id, t)
            }
            // The sink is stored.
            DataCompletion::Written if t.local == Local::Flushing => {
                t.local = Local::Closed;
                self.stop_data_timer();
                self.try_finish(now, id, t)
            }
            // A write to the sink; the chunks in flight beyond the one awaited read are writes.
            DataCompletion::Written
                if !upload
                    && t.local == Local::Open
                    && t.pump.in_flight() > usize::from(t.receiving) =>
            {
                self.start_data_timer(now);
                t.pump.written();
                if t.data == Data::Ended {
                    self.settle_local(now, id, t);
                } else {
                    self.pump_receive(id, t);
                }
                Flow::Continue
            }
            DataCompletion::Failed(error) if t.data.is_live() || t.local_busy() => {
                self.data_failed(id, t, ClientError::DataConnection(error))
            }
            DataCompletion::Listening(_)
            | DataCompletion::Connected { .. }
            | DataCompletion::Secured { .. }
            | DataCompletion::Written
            | DataCompletion::EndOfData
            | DataCompletion::Failed(_) => Flow::Continue,
        }
    }

    /// The data connection is ready for bytes.
    fn data_open(&mut self, id: RequestId, t: &mut Transfer) -> Flow {
        t.data = Data::Open;
        if t.kind.is_upload() {
            self.pump_upload(id, t);
        } else {
            self.pump_receive(id, t);
        }
        Flow::Continue
    }

    /// A chunk from the data connection (download, listing) or the user's source (upload).
    pub(super) fn transfer_data(
        &mut self,
        now: Instant,
        id: RequestId,
        t: &mut Transfer,
        chunk: Bytes,
    ) -> Flow {
        if t.kind.is_upload() {
            if t.data != Data::Open || t.local != Local::Open {
                return Flow::Continue;
            }
            self.start_data_timer(now);
            if t.pump.is_source_done() {
                // A chunk after the source said it ended: the user's mistake; the slot is free again.
                t.pump.release();
                return self.upload_step(now, id, t);
            }
            match t.pump.chunk(chunk) {
                Some(data) => {
                    self.actions
                        .push_back(Action::Data(DataAction::Send { id, data }));
                    self.progress(id, t.pump.bytes());
                }
                None => self.pump_upload(id, t),
            }
            return Flow::Continue;
        }
        // Only the chunk asked for: nothing can come before the connection is open, or after its end.
        if !t.receiving {
            return Flow::Continue;
        }
        t.receiving = false;
        self.start_data_timer(now);
        let data = t.pump.chunk(chunk);
        self.progress(id, t.pump.bytes());
        if let Some(data) = data {
            if let Some(flow) = self.deliver(now, id, t, data) {
                return flow;
            }
        }
        self.pump_receive(id, t);
        Flow::Continue
    }

    /// Passes a received chunk on: to the user's sink (a download, whose slot stays taken until the
    /// write is acknowledged) or to the listing's body (whose slot is free at once). `Some` when a
    /// listing outgrew its bound: the transfer's next step.
    fn deliver(
        &mut self,
        now: Instant,
        id: RequestId,
        t: &mut Transfer,
        data: Bytes,
    ) -> Option<Flow> {
        if !t.kind.is_listing() {
            self.actions
                .push_back(Action::Local(LocalAction::Write { id, data }));
            return None;
        }
        t.pump.written();
        let limit = self.config.max_listing_bytes;
        if t.body.len().saturating_add(data.len()) > limit {
            t.overflow = true;
            t.body = Vec::new();
            self.close_data(id, t, true);
            if t.final_reply.is_some() {
                return Some(Flow::Done(Err(self.too_large())));
            }
            // The server will notice and send its final reply. Its timer stopped while the data
            // flowed: restart it from now, or nothing would time that reply.
            self.restart_reply_timer(now);
            return Some(Flow::Continue);
        }
        t.body.extend_from_slice(&data);
        None
    }

    /// Downloads and listings: asks the data connection for the next chunk, one at a time, if the
    /// window has room (writes to the sink not yet acknowledged hold it).
    fn pump_receive(&mut self, id: RequestId, t: &mut Transfer) {
        if t.kind.is_upload() || t.data != Data::Open || t.receiving {
            return;
        }
        if t.pump.ask(self.config.transfer_window) {
            t.receiving = true;
            self.actions
                .push_back(Action::Data(DataAction::Receive { id }));
        }
    }

    /// Asks the source for chunks until the window is full. Uploads start once both the connection is
    /// open and the server sent its preliminary reply.
    fn pump_upload(&mut self, id: RequestId, t: &mut Transfer) {
        if !t.kind.is_upload() || !t.preliminary || t.data != Data::Open || t.local != Local::Open {
            return;
        }
        while t.pump.ask(self.config.transfer_window) {
            self.actions
                .push_back(Action::Local(LocalAction::Read { id }));
        }
    }

    /// After a chunk was written or the source ended: ask for more, or close once everything is written.
    fn upload_step(&mut self, now: Instant, id: RequestId, t: &mut Transfer) -> Flow {
        if t.pump.is_finished() {
            // Closing the data connection is the end-of-file mark in stream mode (RFC 959 §3.4.1).
            self.actions
                .push_back(Action::Data(DataAction::Close { id, aborted: false }));
            return self.data_ended(now, id, t);
        }
        self.pump_upload(id, t);
        Flow::Continue
    }

    /// The data connection ended well; the final reply is due within the reply timeout from now, and
    /// the local end's remaining work within the data timeout.
    fn data_ended(&mut self, now: Instant, id: RequestId, t: &mut Transfer) -> Flow {
        t.data = Data::Ended;
        t.receiving = false;
        // The data timer goes on only while the local end works (a download's writes, its flush).
        if t.local_busy() {
            self.start_data_timer(now);
        } else {
            self.stop_data_timer();
        }
        self.restart_reply_timer(now);
        self.settle_local(now, id, t);
        self.try_finish(now, id, t)
    }

    /// Closes the local end once the data ended and every chunk is written: an upload's source needs no
    /// answer; a download's sink is answered with `Written` once stored.
    fn settle_local(&mut self, now: Instant, id: RequestId, t: &mut Transfer) {
        if t.local != Local::Open || t.data != Data::Ended || !t.pump.is_finished() {
            return;
        }
        self.actions
            .push_back(Action::Local(LocalAction::Close { id, aborted: false }));
        if t.kind.is_upload() {
            t.local = Local::Closed;
            self.stop_data_timer();
        } else {
            t.local = Local::Flushing;
            self.start_data_timer(now);
        }
    }

    /// The data connection or the local end failed (or made no progress within the data timeout):
    /// close both; then fail with `error` now, at the next step, or after aborting the transfer command
    /// if the server is running it. If the data had already ended well (a download's sink failed
    /// afterwards), the server's final reply is due anyway: the transfer fails when it comes.
    pub(super) fn data_failed(
        &mut self,
        id: RequestId,
        t: &mut Transfer,
        error: ClientError,
    ) -> Flow {
        let data_ended = t.data == Data::Ended;
        t.data_error = Some(error.clone());
        self.close_transfer(id, t);
        if t.final_reply.is_some() {
            Flow::Done(Err(error))
        } else if t.stage == Stage::Command && !data_ended {
            Flow::Abort(error)
        } else if self.outstanding == 0 {
            Flow::Done(Err(error))
        } else {
            Flow::Continue
        }
    }

    /// Closes the data connection (or listener, or attempt) if it is pending or open.
    fn close_data(&mut self, id: RequestId, t: &mut Transfer, aborted: bool) {
        if t.data.is_live() {
            self.actions
                .push_back(Action::Data(DataAction::Close { id, aborted }));
            t.data = if aborted { Data::Closed } else { Data::Ended };
            // Nothing left for the data timer to watch, unless the local end is still at work.
            if !t.local_busy() {
                self.stop_data_timer();
            }
        }
        t.receiving = false;
    }

    /// Cuts the transfer short: closes the data connection and gives up the local end, if they are
    /// still open. A sink being flushed is not told twice: its answer is moot now.
    pub(super) fn close_transfer(&mut self, id: RequestId, t: &mut Transfer) {
        self.close_data(id, t, true);
        match t.local {
            Local::Open => {
                self.actions
                    .push_back(Action::Local(LocalAction::Close { id, aborted: true }));
                t.local = Local::Closed;
            }
            Local::Flushing => t.local = Local::Closed,
            Local::None | Local::Closed => {}
        }
        self.stop_data_timer();
    }

    fn too_large(&self) -> ClientError {
        ClientError::ListingTooLarge {
            limit: self.config.max_listing_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::client::{Config, ConnectionInfo, Request};
    use crate::command::Pathname;

    fn active_session(now: Instant) -> Session {
        let config = Config {
            mode: DataMode::Active,
            ..Config::default()
        };
        let mut session = Session::new(Arc::new(config), info(), now);
        session.handle_control_input(now, b"220 hi\r\n");
        session
    }

    fn info() -> ConnectionInfo {
        ConnectionInfo {
            local: "192.0.2.7:50000".parse().unwrap(),
            peer: "198.51.100.1:21".parse().unwrap(),
        }
    }

    fn actions(session: &mut Session) -> Vec<Action> {
        std::iter::from_fn(|| session.poll_action()).collect()
    }

    /// Found by the `client_session` fuzz target: a driver that answered `Connected` and then
    /// `EndOfData` before reporting its listener bound made the upload's data end (`Close`, no timer)
    /// while the session still waited for `Listening` with no command sent, forever.
    #[test]
    fn answers_before_the_listener_is_bound_are_ignored() {
        let now = Instant::now();
        for request in [
            Request::Store {
                path: Pathname::new("up").unwrap(),
                offset: 0,
                append: false,
            },
            Request::Retrieve {
                path: Pathname::new("down").unwrap(),
                offset: 0,
            },
            Request::Nlst { path: None },
        ] {
            let mut s = active_session(now);
            let id = s.request(now, request).unwrap();
            let family = NetworkProtocol::V4;
            let listen = Action::Data(DataAction::Listen { id, family });
            assert_eq!(actions(&mut s), [listen]);
            let peer = "198.51.100.1:20".parse().unwrap();
            s.handle_completion(now, id, DataCompletion::Connected { peer });
            s.handle_data(now, id, Bytes::from_static(b"early"));
            s.handle_completion(now, id, DataCompletion::Written);
            s.handle_completion(now, id, DataCompletion::EndOfData);
            assert_eq!(actions(&mut s), [], "mistaken answers must change nothing");
            assert!(s.poll_timeout().is_some(), "the listener is still timed");
            let bound = "0.0.0.0:40000".parse().unwrap();
            s.handle_completion(now, id, DataCompletion::Listening(bound));
            let eprt = Bytes::from_static(b"EPRT |1|192.0.2.7|40000|\r\n");
            assert_eq!(actions(&mut s), [Action::SendControl(eprt)]);
        }
    }

    /// Caught by the `client_session` fuzz target's oracle "`poll_timeout` is never in the past": a
    /// listing that outgrew `max_listing_bytes` after flowing for longer than the reply timeout left in
    /// force the reply deadline set at the `150`, long past, so the driver's next `handle_timeout` closed
    /// the session at once with `Timeout` instead of waiting for the server's final reply.
    #[test]
    fn a_listing_cut_short_times_the_final_reply_from_then() {
        let start = Instant::now();
        let config = Config {
            reply_timeout: Duration::from_secs(2),
            data_timeout: Duration::from_secs(16),
            max_listing_bytes: 64,
            ..Config::default()
        };
        let mut s = Session::new(Arc::new(config), info(), start);
        s.handle_control_input(start, b"220 hi\r\n");
        let id = s.request(start, Request::Nlst { path: None }).unwrap();
        s.handle_control_input(start, b"229 ok (|||5000|)\r\n");
        let peer = "198.51.100.1:5000".parse().unwrap();
        s.handle_completion(start, id, DataCompletion::Connected { peer });
        s.handle_control_input(start, b"150 here\r\n");
        s.handle_data(start, id, Bytes::from(vec![b'x'; 40]));
        let later = start + Duration::from_secs(5);
        s.handle_data(later, id, Bytes::from(vec![b'x'; 40]));
        let aborted = Action::Data(DataAction::Close { id, aborted: true });
        assert_eq!(actions(&mut s).last(), Some(&aborted));
        assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(2)));
        s.handle_timeout(later);
        assert!(!s.is_closed());
        s.handle_control_input(later, b"426 connection closed\r\n");
        let completed = std::iter::from_fn(|| s.poll_event()).find_map(|e| match e {
            crate::client::Event::Completed { result, .. } => Some(result),
            _ => None,
        });
        let too_large = ClientError::ListingTooLarge { limit: 64 };
        assert_eq!(completed, Some(Err(too_large)));
    }
}
