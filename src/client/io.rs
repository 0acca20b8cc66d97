//! What a user asks of a client [`Session`](super::Session), what the session asks of its driver, and what
//! comes back.
//!
//! The user queues [`Request`]s; each gets a [`RequestId`] and, later, exactly one [`Event::Completed`]
//! with an [`Outcome`] or a [`ClientError`]. While a request runs, the session tells its driver what to do
//! with [`Action`]s (write to the control connection, open or read a data connection, write to the user's
//! sink, ...) that carry the same id, and the driver answers with [`DataCompletion`]s or data chunks for
//! that id. An answer for an id the session no longer works on (after an abort, a failure or a timeout) is
//! ignored, so the driver never has to cancel anything.
//!
//! [`DataCompletion`]: crate::data::DataCompletion

use bytes::Bytes;

use crate::command::{Command, Password, Pathname, Text, TransferType};
use crate::data::{DataAction, DataError, LocalAction};
use crate::listing::{ListEntry, ListLineError, MlsxEntry};
use crate::reply::{Reply, ReplyError};
use crate::time::Timestamp;

use crate::feat::FeatureSet;

/// Names one request of a session: its completion, and the actions and answers that belong to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The number behind the id, for logs and maps. Ids of one session count up from 1.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Something the user wants done on the server. Requests run one at a time, in the order they were
/// queued with [`Session::request`](super::Session::request) (only [`Request::Abort`] may overtake, see
/// there). Paths are sent as given: relative ones are resolved by the server against its working
/// directory.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// `USER`, then `PASS` if the server answers 331, then `ACCT` if it answers 332 (RFC 959 §4.1.1).
    /// Completes with [`Outcome::Done`] carrying the 230 (or 202) reply.
    Login {
        /// The user name (`anonymous` for anonymous FTP, RFC 1635).
        user: Text,
        /// The password; `None` sends an empty `PASS`.
        password: Option<Password>,
        /// The account, sent only if the server asks for one with 332.
        account: Option<Text>,
    },
    /// `FEAT` (RFC 2389 §3): completes with [`Outcome::Features`].
    Features,
    /// `OPTS UTF8 ON` (the de-facto switch Windows servers need before UTF-8 pathnames).
    Utf8On,
    /// `SYST`: completes with [`Outcome::System`].
    System,
    /// `PWD`: completes with [`Outcome::Path`].
    Pwd,
    /// `CWD path`.
    Cwd(Pathname),
    /// `CDUP`.
    Cdup,
    /// `MKD path`: completes with [`Outcome::Created`].
    Mkdir(Pathname),
    /// `RMD path`.
    Rmdir(Pathname),
    /// `DELE path`.
    Delete(Pathname),
    /// `RNFR from`, and `RNTO to` once the server answers 350 (RFC 959 §4.1.3).
    Rename {
        /// The existing path.
        from: Pathname,
        /// The new path.
        to: Pathname,
    },
    /// `SIZE path` (RFC 3659 §4): completes with [`Outcome::Size`]. Most servers refuse it in TYPE A.
    Size(Pathname),
    /// `MDTM path` (RFC 3659 §3): completes with [`Outcome::Modified`].
    Mdtm(Pathname),
    /// `MFMT time path` (draft-somers-ftp-mfxx): set a file's modification time.
    SetModified {
        /// The file.
        path: Pathname,
        /// The new modification time (UTC).
        time: Timestamp,
    },
    /// `MLST [path]` (RFC 3659 §7): completes with [`Outcome::Entry`].
    Mlst(Option<Pathname>),
    /// `LIST [path]` over a data connection: completes with [`Outcome::Listing`].
    List {
        /// The directory or file to list; `None` lists the working directory.
        path: Option<Pathname>,
        /// The current time, to infer the year of recent `ls -l` dates (which omit it).
        now: Timestamp,
    },
    /// `NLST [path]` over a data connection: completes with [`Outcome::Names`].
    Nlst {
        /// The directory to list; `None` lists the working directory.
        path: Option<Pathname>,
    },
    /// `MLSD [path]` over a data connection (RFC 3659 §7): completes with [`Outcome::Facts`].
    Mlsd {
        /// The directory to list; `None` lists the working directory.
        path: Option<Pathname>,
    },
    /// `RETR path`, preceded by `REST offset` when `offset > 0` (RFC 3659 §5). The file's bytes go to the
    /// user's sink as [`LocalAction::Write`] (converted CRLF to LF in TYPE A); completes with
    /// [`Outcome::Retrieved`] once the server confirmed the transfer and the driver stored the sink.
    Retrieve {
        /// The file.
        path: Pathname,
        /// Where to start (resuming a download), in bytes of the server's file.
        offset: u64,
    },
    /// `STOR path` (with `REST offset` before it when `offset > 0`), or `APPE path` when `append` is set
    /// (then `offset` is ignored). The session asks for the bytes with [`LocalAction::Read`] (converted LF
    /// to CRLF in TYPE A); completes with [`Outcome::Stored`].
    Store {
        /// The file.
        path: Pathname,
        /// Where to start writing (resuming an upload); the source must start at that byte.
        offset: u64,
        /// Append to the file (`APPE`) rather than replace it.
        append: bool,
    },
    /// `TYPE`: on success, later transfers convert line ends for `TYPE A` and pass bytes unchanged for
    /// every other type. A session starts in `TYPE A`, as RFC 959 §3.1.1.1 says servers do; send
    /// `SetType(TransferType::Image)` before transferring anything but text. The session keeps this
    /// TYPE: if a later login or `REIN` may have reset the server's, the next transfer sends it again.
    SetType(TransferType),
    /// `ABOR` (RFC 959 §4.1.3). If a transfer (or a [`Request::Raw`] command that got a preliminary reply)
    /// is running, the abort overtakes the queue: the data connection is closed, `ABOR` is sent at once,
    /// the transfer completes with [`ClientError::Aborted`] and then the abort with the server's answer to
    /// `ABOR`. Otherwise `ABOR` is sent in its turn like any other command.
    Abort,
    /// `NOOP`.
    Noop,
    /// `QUIT`: once answered (or the server closes), the session closes. No request may follow.
    Quit,
    /// `SITE text`.
    Site(Text),
    /// `HOST name` (RFC 7151): must come before `Login`.
    Host(Text),
    /// `AUTH TLS` (RFC 4217), then the TLS handshake on the control connection
    /// ([`Action::SecureControl`]). Completes with [`Outcome::Done`] carrying the `234` once the
    /// handshake is done; a refusal fails it with [`ClientError::Reply`], and the session stays in
    /// plaintext: whether to go on without TLS is the user's choice, never the session's. Send it
    /// before [`Request::Login`] so that the password is protected. Later transfers send `PBSZ 0` and
    /// `PROT P` first (unless [`Config::protect_data`](super::Config::protect_data) is off) and run
    /// TLS on their data connections.
    SecureControl,
    /// `CCC` (RFC 4217 §6): the control connection goes back to plaintext (for NAT firewalls that
    /// must read `PORT`/`PASV`), data connections stay protected. On `200` the session emits
    /// [`Action::ClearControl`].
    ClearControl,
    /// Any command, sent as is; completes with [`Outcome::Done`] carrying the final reply if it is 2xx or
    /// 3xx, or [`ClientError::Reply`] if it is 4xx or 5xx. Preliminary (1xx) replies are reported as
    /// [`Event::Preliminary`]; after one, no reply timer runs until the final reply (the command may be
    /// an FXP transfer of any length; [`Request::Abort`] ends it). The session does not manage data
    /// connections for raw commands (so a raw `RETR` only makes sense for [FXP](super::fxp)), nor does it
    /// track state they change, except TYPE: a successful raw `TYPE` sets the conversion as
    /// [`Request::SetType`] does, and after a successful raw `REIN`, `USER`, `PASS` or `ACCT` (which may
    /// reset the server's TYPE) the next transfer sends the session's TYPE again first.
    Raw(Command),
}

/// The result of a request that succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The request succeeded; this is the server's final reply.
    Done(Reply),
    /// The features from `FEAT`.
    Features(FeatureSet),
    /// The system type from `SYST` (the reply's first line, e.g. `UNIX Type: L8`).
    System(String),
    /// The directory from `PWD` (the quoted pathname of the 257 reply, raw bytes).
    Path(Vec<u8>),
    /// `MKD` succeeded; the created directory if the reply quoted it (servers normally do).
    Created(Option<Vec<u8>>),
    /// The size from `SIZE`, in bytes (in the current TYPE).
    Size(u64),
    /// The modification time from `MDTM` (UTC).
    Modified(Timestamp),
    /// The facts of one path from `MLST`.
    Entry(MlsxEntry),
    /// A `LIST` body, one result per non-empty line (lines such as `total 12` are
    /// [`ListLineError::NotAnEntry`]). At most
    /// [`Config::max_listing_entries`](super::Config::max_listing_entries) of them, as for `Names` and
    /// `Facts`.
    Listing(Vec<Result<ListEntry, ListLineError>>),
    /// An `NLST` body: one name per non-empty line, without its line end.
    Names(Vec<Vec<u8>>),
    /// An `MLSD` body, one result per non-empty line.
    Facts(Vec<Result<MlsxEntry, ListLineError>>),
    /// A download finished: the bytes that crossed the data connection.
    Retrieved {
        /// Bytes received on the data connection (before TYPE A conversion).
        bytes: u64,
    },
    /// An upload finished: the bytes that crossed the data connection.
    Stored {
        /// Bytes sent on the data connection (after TYPE A conversion).
        bytes: u64,
    },
    /// `QUIT` was sent and the server closed the control connection without answering it.
    Disconnected,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server refused: its negative (4xx or 5xx) reply. Also a 332 to a login without an account.
    #[error("the server refused: {0}")]
    Reply(Reply),
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// No reply within [`Config::reply_timeout`](super::Config::reply_timeout) (then the session is
    /// closed), or no progress on the data connection within
    /// [`Config::data_timeout`](super::Config::data_timeout) (then the transfer was aborted, and the
    /// session goes on).
    #[error("timed out")]
    Timeout,
    /// The control connection closed (or the session closed for another reason) before the request
    /// completed.
    #[error("the control connection is closed")]
    Closed,
    /// The request was cut short by [`Request::Abort`].
    #[error("aborted")]
    Aborted,
    /// Not sent: it was queued behind a [`Request::SecureControl`] that failed, and the session does
    /// not send what was meant for a protected connection over a plaintext one (a `Login` would send
    /// the password in the clear).
    #[error("not sent: the control connection could not be protected")]
    NotProtected,
    /// The data connection could not be opened or broke, or the user's upload source or download sink
    /// failed: the driver reported this error. (Of kind [`std::io::ErrorKind::PermissionDenied`] when, in
    /// active mode, the connection came from a host other than the server.)
    #[error("{0}")]
    DataConnection(DataError),
    /// A listing body exceeded [`Config::max_listing_bytes`](super::Config::max_listing_bytes).
    #[error("listing larger than {limit} bytes")]
    ListingTooLarge {
        /// The configured bound.
        limit: usize,
    },
    /// A listing body had more lines than
    /// [`Config::max_listing_entries`](super::Config::max_listing_entries).
    #[error("listing of more than {limit} entries")]
    ListingTooManyEntries {
        /// The configured bound.
        limit: usize,
    },
}

/// How the server broke the protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Bytes on the control connection that are not a reply, or a reply beyond the parser's limits.
    ///
    /// A reply beyond the limits ([`ReplyError::LineTooLong`], [`ReplyError::ReplyTooLong`]) is dropped
    /// whole by the parser: it is taken for the answer to the command in progress, whose request fails
    /// with this error, and the session goes on (before the greeting, or while `ABOR` runs, it closes).
    /// Other bytes that are not a reply ([`ReplyError::Malformed`], [`ReplyError::InvalidCode`]) may be a
    /// reply the server mangled; the session could no longer tell which command later replies answer,
    /// so it closes.
    #[error("malformed reply: {0}")]
    MalformedReply(ReplyError),
    /// A reply code that makes no sense for the command (e.g. 350 to `PWD`).
    #[error("unexpected reply: {0}")]
    UnexpectedReply(Reply),
    /// The right code, but text that does not say what it must (a 227 without an address, a 213 without a
    /// number, a 257 without a quoted path).
    #[error("reply text not understood: {0}")]
    BadReplyText(Reply),
}

/// The caller's misuse of [`Session::request`](super::Session::request): the request was not queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The session is closed, or a [`Request::Quit`] is already queued.
    #[error("the session is closed or quitting")]
    Closed,
    /// [`Config::max_pending_requests`](super::Config::max_pending_requests) requests are already waiting.
    #[error("too many pending requests (limit {limit})")]
    QueueFull {
        /// The configured bound.
        limit: usize,
    },
    /// A [`Request::Host`] name that is not a host name or IP literal (RFC 7151), which servers refuse.
    #[error("not a host name or IP literal")]
    InvalidHost,
    /// A [`Request::SecureControl`] on a control connection that is protected already (or will be,
    /// by one queued before): TLS inside TLS is no FTP.
    #[error("the control connection is protected already")]
    AlreadySecured,
    /// A [`Request::Raw`] command that would change the control connection's TLS behind the
    /// session's back: `AUTH`, `CCC`, or `REIN` on a protected connection. Use
    /// [`Request::SecureControl`] and [`Request::ClearControl`].
    #[error("a raw security command: use SecureControl or ClearControl")]
    SecurityCommand,
}

/// Something the driver must do. Drain them with [`Session::poll_action`](super::Session::poll_action)
/// after every `handle_*` call (and after [`Session::request`](super::Session::request)), and carry them
/// out in order.
///
/// A transfer's actions all carry its request's id. The data connection's ([`Action::Data`]) and the
/// local end's ([`Action::Local`]) are answered with
/// [`Session::handle_completion`](super::Session::handle_completion) (a [`DataCompletion`]) or, for a
/// chunk read, [`Session::handle_data`](super::Session::handle_data):
///
/// | action | answer |
/// |---|---|
/// | [`DataAction::Connect`] (passive mode) | [`DataCompletion::Connected`] or [`DataCompletion::Failed`] |
/// | [`DataAction::Listen`] (active mode) | [`DataCompletion::Listening`] (an unspecified IP, `0.0.0.0` or `::`, is replaced by the control connection's local IP) or `Failed` |
/// | [`DataAction::Accept`] (active mode, once the transfer command is sent) | `Connected` (from another host than the server: refused, RFC 2577 §5) or `Failed` |
/// | [`DataAction::Secure`] (a protected transfer, as soon as its connection is open) | [`DataCompletion::Secured`] or `Failed` |
/// | [`DataAction::Send`] (upload) | [`DataCompletion::Written`] or `Failed` |
/// | [`DataAction::Receive`] (download, listing; one at a time) | `handle_data` with the chunk, [`DataCompletion::EndOfData`] or `Failed` |
/// | [`DataAction::Close`] | none |
/// | [`LocalAction::Read`] (upload; several may be asked, each is answered, after the end with `EndOfData` again) | `handle_data` with the chunk, `EndOfData` or `Failed` |
/// | [`LocalAction::Write`] (download) | `Written` or `Failed` |
/// | [`LocalAction::Close`] | after a download's last write (`aborted: false`): `Written` once the sink is stored (flushed), or `Failed`; otherwise none |
///
/// Every [`Request::Retrieve`] and [`Request::Store`] the session starts ends with exactly one
/// [`LocalAction::Close`], even one that failed before a byte moved, so the driver can let go of the
/// user's sink or source there (one still queued when the session closes just completes).
/// Listings have no local end: the session collects them. At most
/// [`Config::transfer_window`](super::Config::transfer_window) chunks of a transfer are in flight at once
/// (reads asked and writes not yet acknowledged), so a slow end holds back the other.
///
/// [`DataCompletion`]: crate::data::DataCompletion
/// [`DataCompletion::Connected`]: crate::data::DataCompletion::Connected
/// [`DataCompletion::Secured`]: crate::data::DataCompletion::Secured
/// [`DataAction::Secure`]: crate::data::DataAction::Secure
/// [`DataCompletion::Failed`]: crate::data::DataCompletion::Failed
/// [`DataCompletion::Listening`]: crate::data::DataCompletion::Listening
/// [`DataCompletion::Written`]: crate::data::DataCompletion::Written
/// [`DataCompletion::EndOfData`]: crate::data::DataCompletion::EndOfData
#[derive(Clone, Debug, PartialEq, Eq)]
// Not `#[non_exhaustive]`: a driver must match every variant, so a variant added in a new version is
// a compile error in the driver, not an action silently dropped (which would hang a transfer).
pub enum Action {
    /// Write these bytes (one encoded command) to the control connection.
    SendControl(Bytes),
    /// Open, use or close a transfer's data connection (or active-mode listener).
    Data(DataAction<RequestId>),
    /// Read the user's upload source, write to their download sink, or close either.
    Local(LocalAction<RequestId>),
    /// Run the TLS client handshake on the control connection, after writing everything sent before
    /// (the server answered `AUTH TLS` with `234`). Verify the server's certificate for the host name
    /// the user connected to, and keep the TLS session (and the TLS 1.3 tickets the server sends after
    /// the handshake) to offer on every data connection ([`DataAction::Secure`]). Answer
    /// [`Session::handle_completion`](super::Session::handle_completion) with this `id` and
    /// [`DataCompletion::Secured`](crate::data::DataCompletion::Secured) (its `resumed` is not looked
    /// at), or [`DataCompletion::Failed`](crate::data::DataCompletion::Failed), which closes the
    /// session (the request fails with [`ClientError::DataConnection`], then
    /// [`Action::CloseControl`]); after `Secured`, feed only decrypted bytes.
    SecureControl {
        /// The request.
        id: RequestId,
    },
    /// End TLS on the control connection after `CCC`: send a TLS `close_notify`, read the server's, and
    /// go on in plaintext. Needs no answer.
    ClearControl,
    /// Close the control connection. The session is over.
    CloseControl,
}

/// Something that happened. Drain with [`Session::poll_event`](super::Session::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The server's greeting (220) arrived; queued requests start now.
    Connected(Reply),
    /// A request finished: exactly one per request.
    Completed {
        /// The request.
        id: RequestId,
        /// Its outcome, or why it failed.
        result: Result<Outcome, ClientError>,
    },
    /// A preliminary (1xx) reply: the `150` that starts a transfer, or the `120` before a delayed
    /// greeting (then `id` is `None`). A later preliminary reply of the same request replaces one still
    /// waiting in the queue.
    Preliminary {
        /// The request it answers, if any.
        id: Option<RequestId>,
        /// The reply.
        reply: Reply,
    },
    /// Bytes that crossed the data connection so far for request `id`. Consecutive progress events of
    /// one request are merged while they wait in the queue, so the queue does not grow with the file.
    Progress {
        /// The request.
        id: RequestId,
        /// Bytes so far.
        bytes: u64,
    },
    /// A reply that answered nothing the session sent; it was ignored. Only the latest of several in a
    /// row waits in the queue.
    UnsolicitedReply(Reply),
    /// The session ended: `None` after `QUIT`, otherwise the reason (a 421 reply, a timeout, a protocol
    /// error, or [`ClientError::Closed`] when the server closed the connection).
    Closed {
        /// Why, unless the user quit.
        error: Option<ClientError>,
    },
}
