//! The data channel, one layer for both sessions: what a session asks of the data connection and of the
//! transfer's local end, how the driver answers, and the pump that moves a transfer's chunks between them.
//!
//! A transfer has two ends. The **data connection** ([`DataAction`]) is the TCP connection the bytes cross:
//! the server connects to the client in active mode (`PORT`/`EPRT`) and listens in passive mode
//! (`PASV`/`EPSV`); the client does the reverse. The **local end** ([`LocalAction`]) is where the bytes
//! come from or go to: the server's open file, the client user's source (upload) or sink (download). Both
//! ends speak the same vocabulary on both sides, every action names its transfer, and every write is
//! acknowledged with [`DataCompletion::Written`], so both sessions keep a window of chunks in flight and
//! a slow end holds back the other instead of growing a buffer.
//!
//! Each session wraps these in its own `Action` and `Completion` (`server::Action::Data`,
//! `client::Action::Local`, ...), with its own id type, so that a server id cannot be handed to a client
//! session by mistake.
//!
//! # Protection (FTPS, RFC 4217)
//!
//! A protected transfer (`PROT P`) says so in its [`DataAction::Connect`] or [`DataAction::Accept`]
//! (`tls: Some(role)`), and once the TCP connection is open the session asks for the TLS handshake with
//! [`DataAction::Secure`], answered [`DataCompletion::Secured`] with whether the handshake resumed the
//! control connection's TLS session. The two steps are apart because of the order real peers expect: a
//! server sends its `150` when the TCP connection is open and only then reads the ClientHello (Python's
//! `ftplib` starts its handshake only after the `150`), while a client starts its handshake at once. The
//! pump does not care: it sees plaintext chunks either way.
//!
//! # Room for what comes next
//!
//! - **Driver-moved bytes** (sendfile/splice): a [`LocalAction`] asking the driver to copy a file range to
//!   the data connection itself, answered with a byte count; the session keeps the protocol (the `REST`
//!   offset, `ABOR`, the count in `226`, the timeouts) and the pump counts what the driver reports.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::hostport::NetworkProtocol;
use crate::transcode::Transcoder;

/// What a session asks of a transfer's data connection. `Id` is the session's request id type; every
/// action carries the id of the transfer (or, for [`Listen`](Self::Listen), of the request that made the
/// listener).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataAction<Id> {
    /// Open a TCP connection to `addr` (the server in active mode, the client in passive mode). Answer
    /// [`DataCompletion::Connected`] or [`DataCompletion::Failed`].
    Connect {
        /// The transfer.
        id: Id,
        /// Where to connect.
        addr: SocketAddr,
        /// `Some`: the connection will be secured with TLS in this role ([`Secure`](Self::Secure)
        /// follows once it is open). `None`: it stays plaintext (`PROT C`).
        tls: Option<TlsRole>,
    },
    /// Bind a listener of this address family on the control connection's local IP (or, if that IP is
    /// of the other family, on the host's address of this family), any port. Answer
    /// [`DataCompletion::Listening`] with the bound address (a server behind NAT answers with its public
    /// address; the session uses the port for `EPSV`/`EPRT`). The listener stays until
    /// [`Close`](Self::Close) names `id`; a driver may also let it go as soon as it has accepted one
    /// connection, since neither session accepts twice from one listener.
    Listen {
        /// The listener (the server's `PASV`/`EPSV` request, the client's transfer).
        id: Id,
        /// The address family to listen on.
        family: NetworkProtocol,
    },
    /// Take the next connection made to `listener` (waiting for it if needed) as transfer `id`'s data
    /// connection. Answer [`DataCompletion::Connected`] with the peer's address (the session checks it),
    /// or [`DataCompletion::Failed`].
    Accept {
        /// The transfer.
        id: Id,
        /// The listener, as named by [`Listen`](Self::Listen).
        listener: Id,
        /// `Some`: the connection will be secured with TLS in this role ([`Secure`](Self::Secure)
        /// follows once it is open). `None`: it stays plaintext (`PROT C`).
        tls: Option<TlsRole>,
    },
    /// Run the TLS handshake on transfer `id`'s open data connection, in this role, with the control
    /// connection's TLS settings and certificates. As the TLS server, resume only sessions of this
    /// control connection's TLS session (a session another connection made, even one of the same
    /// server, must not count); as the TLS client, offer the control connection's session (or ticket)
    /// for resumption. Answer [`DataCompletion::Secured`], or [`DataCompletion::Failed`] if the
    /// handshake fails. Every byte of the transfer then goes through TLS; at the end, close it with
    /// a TLS `close_notify` before the TCP close.
    Secure {
        /// The transfer.
        id: Id,
        /// Which side of the handshake this end is.
        role: TlsRole,
    },
    /// Write a chunk to the data connection. Answer [`DataCompletion::Written`] once it is written.
    Send {
        /// The transfer.
        id: Id,
        /// The bytes (in TYPE I the very `Bytes` the local end delivered: no copy was made).
        data: Bytes,
    },
    /// Read the next chunk from the data connection and pass it to the session's `handle_data`, or
    /// answer [`DataCompletion::EndOfData`] when the peer closed it. Asked at most once per chunk of the
    /// session's window.
    Receive {
        /// The transfer.
        id: Id,
    },
    /// Close the data connection or listener named `id`. `aborted` says whether to reset rather than
    /// finish it: `false` after the last chunk was written or the peer's end of data (closing is how the
    /// receiver learns the file ended), `true` after `ABOR`, a failure, a refusal or a timeout. Needs no
    /// answer. A `Connect` or `Accept` still under way counts as open: cancel it (the session ignores
    /// a `Connected` that comes later anyway). An `id` with nothing open is ignored.
    Close {
        /// The connection or listener.
        id: Id,
        /// Whether the transfer was cut short.
        aborted: bool,
    },
}

impl<Id: Copy> DataAction<Id> {
    /// The transfer or listener this action is about.
    pub fn id(&self) -> Id {
        match *self {
            DataAction::Connect { id, .. }
            | DataAction::Listen { id, .. }
            | DataAction::Accept { id, .. }
            | DataAction::Secure { id, .. }
            | DataAction::Send { id, .. }
            | DataAction::Receive { id }
            | DataAction::Close { id, .. } => id,
        }
    }
}

/// What a session asks of a transfer's local end: the server's open file, the client user's upload
/// source or download sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalAction<Id> {
    /// Read the next chunk and pass it to the session's `handle_data`, or answer
    /// [`DataCompletion::EndOfData`] at the end.
    Read {
        /// The transfer.
        id: Id,
    },
    /// Write a chunk at the current position. Answer [`DataCompletion::Written`] once it is written.
    Write {
        /// The transfer.
        id: Id,
        /// The bytes, in order.
        data: Bytes,
    },
    /// Close the local end. After writes (`aborted == false` on a download sink or an upload's file),
    /// answer [`DataCompletion::Written`] once everything written is safely stored (the server's `226`,
    /// the client's result, wait for it), or a failure. After reads, or with `aborted`, no answer is
    /// needed: a partial upload stays where it is, so that `REST` can resume it.
    Close {
        /// The transfer.
        id: Id,
        /// Whether the transfer was cut short.
        aborted: bool,
    },
}

impl<Id: Copy> LocalAction<Id> {
    /// The transfer this action is about.
    pub fn id(&self) -> Id {
        match *self {
            LocalAction::Read { id }
            | LocalAction::Write { id, .. }
            | LocalAction::Close { id, .. } => id,
        }
    }
}

/// The driver's answer to a [`DataAction`] or a [`LocalAction`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataCompletion {
    /// The listener is bound at this address.
    Listening(SocketAddr),
    /// The data connection is open; `peer` is the other end's address.
    Connected {
        /// The remote address of the data connection.
        peer: SocketAddr,
    },
    /// The TLS handshake asked for with [`DataAction::Secure`] is done.
    Secured {
        /// Whether the handshake resumed the control connection's TLS session (abbreviated handshake,
        /// or TLS 1.3 PSK from a ticket the control connection's session issued). A server that
        /// requires session reuse refuses the connection when this is `false`.
        resumed: bool,
    },
    /// A chunk passed with [`DataAction::Send`] or [`LocalAction::Write`] is written (or, after
    /// [`LocalAction::Close`], everything is stored).
    Written,
    /// The data connection or the local end has no more bytes.
    EndOfData,
    /// Opening, reading or writing the data connection failed (on the client, also the local end).
    /// The server's storage failures are its own `StorageError`, not this.
    Failed(DataError),
}

/// Which side of a TLS handshake an end is. On the server it is [`TlsRole::Server`] unless the client
/// asked for the other with `SSCN ON` (secure server-to-server transfers, where one of the two servers
/// must be the TLS client); on the client it is [`TlsRole::Client`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsRole {
    /// This end waits for the ClientHello.
    Server,
    /// This end sends the ClientHello.
    Client,
}

/// Why a data connection (or, on the client, the user's source or sink) failed: the I/O error's kind.
/// The session chooses the reply or result from where the transfer was (425 before the connection was
/// open, 426 after), not from the kind, which is for logs and for the client's user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("data transfer failed: {kind}")]
pub struct DataError {
    kind: io::ErrorKind,
}

impl DataError {
    /// A failure of this kind.
    pub fn new(kind: io::ErrorKind) -> Self {
        DataError { kind }
    }

    /// The I/O error's kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.kind
    }
}

impl From<io::ErrorKind> for DataError {
    fn from(kind: io::ErrorKind) -> Self {
        DataError { kind }
    }
}

impl From<&io::Error> for DataError {
    fn from(error: &io::Error) -> Self {
        DataError { kind: error.kind() }
    }
}

impl From<io::Error> for DataError {
    fn from(error: io::Error) -> Self {
        DataError { kind: error.kind() }
    }
}

/// Which end of a transfer is the data connection: the bytes a transfer reports (in `226`, `STAT`, the
/// log, the client's progress) are the bytes that crossed it, so a TYPE A download counts after its
/// LF→CRLF conversion and a TYPE A upload before its CRLF→LF one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NetworkEnd {
    /// The data connection is read from: an upload on the server, a download on the client.
    Source,
    /// The data connection is written to: a download or listing on the server, an upload on the client.
    Sink,
}

/// Moves one transfer's chunks from its source to its sink with at most `window` chunks in flight,
/// converting them (TYPE A) and counting the bytes that cross the data connection. Both sessions use it;
/// it emits nothing itself, it says what to do and the session names the actions, so that the same
/// arithmetic serves a server download (file → connection), a client download (connection → sink) and
/// every other pairing.
///
/// A chunk's life: [`ask`](Self::ask) takes a window slot, the source's answer goes through
/// [`chunk`](Self::chunk) to the sink, [`written`](Self::written) frees the slot. The source's end goes
/// through [`source_ended`](Self::source_ended), which may produce the converter's held-back tail.
#[derive(Debug)]
pub(crate) struct Pump {
    transcoder: Transcoder,
    network: NetworkEnd,
    /// Chunks asked of the source or given to the sink and not yet acknowledged.
    in_flight: usize,
    source_done: bool,
    bytes: u64,
}

impl Pump {
    pub(crate) fn new(transcoder: Transcoder, network: NetworkEnd) -> Self {
        Pump {
            transcoder,
            network,
            in_flight: 0,
            source_done: false,
            bytes: 0,
        }
    }

    /// Takes a window slot for one more chunk, if the window has room and the source has not ended.
    pub(crate) fn ask(&mut self, window: usize) -> bool {
        let room = self.in_flight < window.max(1) && !self.source_done;
        if room {
            self.in_flight += 1;
        }
        room
    }

    /// A chunk from the source, converted for the sink. `None` when it converted to nothing (a lone CR
    /// held back): its slot is free again and nothing is to be written.
    pub(crate) fn chunk(&mut self, chunk: Bytes) -> Option<Bytes> {
        if self.network == NetworkEnd::Source {
            self.bytes += chunk.len() as u64;
        }
        let data = self.transcoder.process(chunk);
        self.pass_on(data)
    }

    /// A chunk the session made itself in a slot taken with [`ask`](Self::ask) (a listing's formatted
    /// lines), passed on unconverted: it is already in network form.
    pub(crate) fn made(&mut self, data: Bytes) -> Option<Bytes> {
        self.pass_on(data)
    }

    /// The source has no more bytes; its slot is free. Returns the converter's tail, which takes a slot
    /// of its own, if there is one. A later end (another read in flight, answered at the end) only frees
    /// its slot.
    pub(crate) fn source_ended(&mut self) -> Option<Bytes> {
        self.in_flight = self.in_flight.saturating_sub(1);
        if std::mem::replace(&mut self.source_done, true) {
            return None;
        }
        let tail = self.transcoder.finish();
        if tail.is_empty() {
            return None;
        }
        self.in_flight += 1;
        if self.network == NetworkEnd::Sink {
            self.bytes += tail.len() as u64;
        }
        Some(tail)
    }

    /// Ends the source without a chunk in flight (a listing that has formatted everything).
    pub(crate) fn finish_source(&mut self) {
        self.source_done = true;
    }

    /// Gives back a slot taken with [`ask`](Self::ask) that produced nothing (a listing waiting for its
    /// next part).
    pub(crate) fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The sink wrote a chunk; its slot is free.
    pub(crate) fn written(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Whether the source has ended and the sink has written everything.
    pub(crate) fn is_finished(&self) -> bool {
        self.source_done && self.in_flight == 0
    }

    /// Whether the source has ended.
    pub(crate) fn is_source_done(&self) -> bool {
        self.source_done
    }

    /// Chunks asked for or being written.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Bytes that crossed the data connection so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn pass_on(&mut self, data: Bytes) -> Option<Bytes> {
        if data.is_empty() {
            self.in_flight = self.in_flight.saturating_sub(1);
            return None;
        }
        if self.network == NetworkEnd::Sink {
            self.bytes += data.len() as u64;
        }
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs `input`, cut into `cuts`, through a pump with a window of `window`, acknowledging writes in
    /// the order they were made; returns what the sink got and the byte count.
    fn run(
        transcoder: Transcoder,
        network: NetworkEnd,
        input: &[u8],
        cuts: &[usize],
        window: usize,
    ) -> (Vec<u8>, u64) {
        let mut pump = Pump::new(transcoder, network);
        let mut chunks = Vec::new();
        let mut rest = input;
        for &cut in cuts {
            let (head, tail) = rest.split_at(cut.min(rest.len()));
            chunks.push(Bytes::copy_from_slice(head));
            rest = tail;
        }
        chunks.push(Bytes::copy_from_slice(rest));
        let mut chunks = chunks.into_iter();
        let mut sink = Vec::new();
        let mut pending = 0usize;
        loop {
            while pump.ask(window) {
                assert!(pump.in_flight() <= window.max(1));
                match chunks.next() {
                    Some(chunk) => {
                        if let Some(data) = pump.chunk(chunk) {
                            sink.extend_from_slice(&data);
                            pending += 1;
                        }
                    }
                    None => {
                        if let Some(tail) = pump.source_ended() {
                            sink.extend_from_slice(&tail);
                            pending += 1;
                        }
                    }
                }
            }
            if pending == 0 {
                break;
            }
            pending -= 1;
            pump.written();
        }
        assert!(pump.is_finished());
        (sink, pump.bytes())
    }

    #[test]
    fn image_passes_chunks_through_and_counts_them() {
        let (out, bytes) = run(
            Transcoder::Identity,
            NetworkEnd::Sink,
            b"abc\r\ndef",
            &[2, 3],
            4,
        );
        assert_eq!(out, b"abc\r\ndef");
        assert_eq!(bytes, 8);
    }

    #[test]
    fn a_download_counts_after_conversion_and_an_upload_before() {
        let (out, bytes) = run(
            Transcoder::to_network(),
            NetworkEnd::Sink,
            b"a\nb\n",
            &[1],
            2,
        );
        assert_eq!(out, b"a\r\nb\r\n");
        assert_eq!(bytes, 6);
        let (out, bytes) = run(
            Transcoder::from_network(),
            NetworkEnd::Source,
            b"a\r\nb\r\n",
            &[2],
            2,
        );
        assert_eq!(out, b"a\nb\n");
        assert_eq!(bytes, 6);
    }

    #[test]
    fn a_held_back_cr_frees_its_slot_and_comes_out_at_the_end() {
        let mut pump = Pump::new(Transcoder::from_network(), NetworkEnd::Source);
        assert!(pump.ask(1));
        assert_eq!(pump.chunk(Bytes::from_static(b"\r")), None);
        assert_eq!(pump.in_flight(), 0);
        assert!(pump.ask(1));
        assert_eq!(pump.source_ended(), Some(Bytes::from_static(b"\r")));
        assert!(!pump.is_finished());
        pump.written();
        assert!(pump.is_finished());
        assert_eq!(pump.source_ended(), None, "a second end is ignored");
    }

    #[test]
    fn the_window_bounds_what_is_in_flight() {
        let mut pump = Pump::new(Transcoder::Identity, NetworkEnd::Sink);
        assert!(pump.ask(2));
        assert!(pump.ask(2));
        assert!(!pump.ask(2));
        assert!(pump.ask(3));
        let mut zero = Pump::new(Transcoder::Identity, NetworkEnd::Sink);
        assert!(zero.ask(0), "a window of 0 still moves one chunk at a time");
        assert!(!zero.ask(0));
    }

    proptest! {
        #[test]
        fn chunking_and_window_never_change_the_bytes(
            input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0usize..40, 0..12),
            window in 0usize..5,
            ascii in any::<bool>(),
            upload in any::<bool>(),
        ) {
            let (make, network): (fn() -> Transcoder, NetworkEnd) = match (ascii, upload) {
                (false, false) => (|| Transcoder::Identity, NetworkEnd::Sink),
                (false, true) => (|| Transcoder::Identity, NetworkEnd::Source),
                (true, false) => (Transcoder::to_network, NetworkEnd::Sink),
                (true, true) => (Transcoder::from_network, NetworkEnd::Source),
            };
            let (whole, whole_bytes) = run(make(), network, &input, &[], 1);
            let (cut, cut_bytes) = run(make(), network, &input, &cuts, window);
            prop_assert_eq!(&cut, &whole);
            prop_assert_eq!(cut_bytes, whole_bytes);
            let counted = if network == NetworkEnd::Sink { whole.len() } else { input.len() };
            prop_assert_eq!(whole_bytes, counted as u64);
        }
    }
}
