//! What a server [`Session`](super::Session) asks of its driver, and what the driver answers.
//!
//! The session decides; the driver does. Every decision that needs the outside world (checking a password,
//! binding a socket, touching storage) leaves the session as an [`Action`] carrying a [`RequestId`], and the
//! result comes back through [`Session::handle_completion`](super::Session::handle_completion) with the same
//! id, the way rustls hands its caller decisions. A completion whose id the session no longer waits for (the
//! client sent `ABOR` or `REIN` in the meantime) is ignored, so the driver never has to cancel anything.

use bytes::Bytes;

use crate::command::{Password, Text};
use crate::data::{DataAction, DataCompletion, LocalAction};
use crate::listing::{DirEntry, Metadata};
use crate::path::VirtualPath;
use crate::time::Timestamp;

/// Names one request of a session, so its answer can be matched (and a stale one recognised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The number behind the id, for logs and maps.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// How much a logged-in user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Read and list only: every command that changes storage gets 550.
    ReadOnly,
    /// Read, list, upload, delete, rename, make and remove directories.
    ReadWrite,
    /// Read, list, and upload new files, but change nothing that exists (vsftpd's `anon_upload_enable`
    /// without `anon_other_write_enable`): `STOR` opens with [`WriteMode::CreateNew`], `STOU` with
    /// [`WriteMode::Unique`]; `APPE`, `REST`+`STOR`, `DELE`, `RNFR`, `MKD`, `RMD` and `MFMT` get 550. An
    /// upload drop box: nobody can overwrite or destroy what another user sent.
    UploadOnly,
}

impl Access {
    /// Whether commands that change existing storage are allowed (overwrite, append, resume, delete,
    /// rename, `MKD`, `RMD`, `MFMT`). Only [`Access::ReadWrite`].
    pub fn can_write(self) -> bool {
        matches!(self, Access::ReadWrite)
    }

    /// Whether uploads that create a new file are allowed (`STOR` to a free name, `STOU`):
    /// [`Access::ReadWrite`] and [`Access::UploadOnly`].
    pub fn can_create_files(self) -> bool {
        matches!(self, Access::ReadWrite | Access::UploadOnly)
    }
}

/// What a login grants, as a driver answers [`Action::Authenticate`] with [`Completion::Granted`]: the
/// access, plus rights that are per user rather than per server.
///
/// ```
/// use ftp_proto::server::{Access, Completion, Grant};
///
/// // A mirroring robot that may run server-to-server (FXP) transfers.
/// let grant = Grant::new(Access::ReadWrite).with_foreign_data_address(true);
/// let answer = Completion::Granted(grant);
/// # let _ = answer;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// What the user may do with storage.
    pub access: Access,
    /// Whether `PORT`/`EPRT` may name another host than the client's, and a passive data connection may
    /// come from one (server-to-server "FXP" transfers). Off unless asked for: with it the server can be
    /// used to attack third parties (the "FTP bounce", RFC 2577 §3) and a passive listener can be taken
    /// by someone else (RFC 2577 §5), so give it only to users you trust with that. Anonymous sessions
    /// never get it.
    pub foreign_data_address: bool,
}

impl Grant {
    /// A grant of `access` and nothing more (no foreign data addresses).
    pub fn new(access: Access) -> Grant {
        Grant {
            access,
            foreign_data_address: false,
        }
    }

    /// Allows or forbids foreign data addresses (see [`Grant::foreign_data_address`]).
    pub fn with_foreign_data_address(mut self, allow: bool) -> Grant {
        self.foreign_data_address = allow;
        self
    }
}

/// How an upload opens its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteMode {
    /// `STOR`: create, or truncate an existing file.
    Truncate,
    /// `REST n` then `STOR`: keep the file's first `n` bytes and write from there (resuming an upload).
    /// The driver should fail with [`StorageError::InvalidOffset`] if the file is shorter than `n`.
    Resume(u64),
    /// `APPE`: create, or append to an existing file.
    Append,
    /// `STOU`: create a new file whose name the driver chooses, near the path given. The driver reports the
    /// chosen path in [`Completion::FileOpened`].
    Unique,
    /// Create a new file and never replace one: the driver fails with [`StorageError::AlreadyExists`] if
    /// the name is taken (when the upload starts, or when it is published, for a driver that writes to a
    /// temporary name first). Used for users who may upload but not overwrite ([`Access::UploadOnly`]).
    CreateNew,
}

/// A storage operation the session needs. Every path is absolute, normalised and never above `/`: the
/// driver maps it below its root without further checks for `..`.
#[derive(Clone, Debug, PartialEq, Eq)]
// Not `#[non_exhaustive]`: a driver must match every variant, so a variant added in a new version is
// a compile error in the driver, not an action silently dropped (which would hang a transfer).
pub enum StorageRequest {
    /// Metadata of one path. Answer [`Completion::Metadata`].
    Stat(VirtualPath),
    /// The entries of a directory, at most `limit` of them; for a file, its single entry. Answer
    /// [`Completion::Entries`], or, to keep a large directory out of memory, in parts: any number of
    /// [`Completion::EntriesPart`], each sent when the session asks with [`Action::ReadEntries`], and
    /// [`Completion::Entries`] for the last part. `limit` counts over all parts.
    List {
        /// The directory.
        path: VirtualPath,
        /// Entries beyond this many are not wanted (the listing bound).
        limit: usize,
    },
    /// Open a file for reading from byte `offset`. Answer [`Completion::FileOpened`]; then the session asks
    /// for chunks with [`LocalAction::Read`] (in [`Action::Local`]), with this request's id.
    OpenRead {
        /// The file.
        path: VirtualPath,
        /// Where reading starts (from `REST`).
        offset: u64,
    },
    /// Open a file for writing. Answer [`Completion::FileOpened`]; then the session sends chunks with
    /// [`LocalAction::Write`] (in [`Action::Local`]), with this request's id.
    OpenWrite {
        /// The file.
        path: VirtualPath,
        /// Create, truncate, append, resume or pick a unique name.
        mode: WriteMode,
    },
    /// Delete a file. Answer [`Completion::Done`].
    Delete(VirtualPath),
    /// Create a directory. Answer [`Completion::Done`].
    MakeDirectory(VirtualPath),
    /// Remove an empty directory. Answer [`Completion::Done`].
    RemoveDirectory(VirtualPath),
    /// Rename `from` to `to`. Answer [`Completion::Done`].
    Rename {
        /// The existing path.
        from: VirtualPath,
        /// The new path.
        to: VirtualPath,
    },
    /// Set a file's modification time. Answer [`Completion::Done`].
    SetModified {
        /// The file.
        path: VirtualPath,
        /// The new time (UTC).
        time: Timestamp,
    },
}

/// Something the driver must do. Drain them with [`Session::poll_action`](super::Session::poll_action)
/// after every `handle_*` call, and carry them out in order.
#[derive(Clone, Debug, PartialEq, Eq)]
// Not `#[non_exhaustive]`: a driver must match every variant, so a variant added in a new version is
// a compile error in the driver, not an action silently dropped (which would hang a transfer).
pub enum Action {
    /// Write these bytes (one or more encoded replies) to the control connection.
    SendControl(Bytes),
    /// Check a user's password. Answer [`Completion::LoggedIn`] or [`Completion::Granted`] (per-user
    /// rights such as FXP), or [`Completion::Denied`].
    Authenticate {
        /// The request.
        id: RequestId,
        /// The name from `USER`.
        user: Text,
        /// The password from `PASS` (`None` for an empty one).
        password: Option<Password>,
    },
    /// A storage operation. Answer as [`StorageRequest`]'s variants say, or [`Completion::Failed`].
    Storage {
        /// The request.
        id: RequestId,
        /// What to do.
        request: StorageRequest,
    },
    /// Read the next part of a listing answered with [`Completion::EntriesPart`]. Answer with the next
    /// part ([`Completion::EntriesPart`], or [`Completion::Entries`] if it is the last), or
    /// [`Completion::Failed`]. Asked at most once per part, and only when the session has formatted
    /// everything before it: a client that stops reading its listing holds one part, not the directory.
    ReadEntries {
        /// The listing (the id of its [`StorageRequest::List`]).
        id: RequestId,
    },
    /// An operation on a data connection or a passive listener: `PORT`/`EPRT` make the server
    /// [`Connect`](DataAction::Connect), `PASV`/`EPSV` make it [`Listen`](DataAction::Listen) (with the
    /// id of that request) and then [`Accept`](DataAction::Accept) one connection for the transfer.
    /// Chunks go out with [`Send`](DataAction::Send) (downloads, listings) and come in with
    /// [`Receive`](DataAction::Receive) (uploads). Each data connection and each listener is let go with
    /// a [`Close`](DataAction::Close) naming it: after the transfer (its connection, then its
    /// listener), when `PORT`, `PASV` or `EPSV` replaces an unused listener, on `REIN`, when a transfer
    /// is aborted or fails, and when the session ends. Answer as [`DataAction`]'s variants say, with
    /// [`Completion::Data`].
    Data(DataAction<RequestId>),
    /// An operation on the transfer's open file (opened with [`StorageRequest::OpenRead`] or
    /// [`StorageRequest::OpenWrite`]): [`Read`](LocalAction::Read) for a download,
    /// [`Write`](LocalAction::Write) for an upload, and [`Close`](LocalAction::Close) at the end. After
    /// a finished upload (`aborted == false`) answer the close with
    /// [`DataCompletion::Written`] once the data is safely stored, or with [`Completion::Failed`]; a
    /// close after a download or with `aborted` needs no answer (a partial upload stays, so that
    /// `REST`+`STOR` can resume it). [`Close`](LocalAction::Close) with `aborted` also lets go of a
    /// listing that was answered in parts and not finished (the driver may hold its directory open
    /// between parts). Read and write failures of the file are [`Completion::Failed`] with a
    /// [`StorageError`].
    Local(LocalAction<RequestId>),
    /// Run the TLS server handshake on the control connection (explicit FTPS: the client sent
    /// `AUTH TLS` and the `234` before this action is the last plaintext the client reads). Write
    /// everything sent before, then read the ClientHello from the socket itself: bytes the client sent
    /// after its `AUTH` line and before the handshake were never meant for the session, which has
    /// dropped any it was given, and from now on it takes only what TLS decrypts. Answer
    /// [`Completion::ControlSecured`]; if the handshake fails or times out, close the connection and
    /// call [`Session::handle_control_eof`](super::Session::handle_control_eof). Keep the TLS session
    /// (its tickets or session id) to resume on this session's data connections
    /// ([`DataAction::Secure`](crate::data::DataAction::Secure)).
    SecureControl {
        /// The request.
        id: RequestId,
    },
    /// End TLS on the control connection and go on in plaintext (`CCC`, or `REIN` on a protected
    /// connection, both only when [`TlsPolicy::allow_clear_control`](super::TlsPolicy) allows): write
    /// everything sent before (the `200` or `220` is still encrypted), send a TLS `close_notify`, read
    /// the client's, then pass plaintext again. Needs no answer; if the client does not answer with its
    /// own `close_notify`, close the connection.
    ClearControl,
    /// Flush what was sent and close the control connection. The session is over.
    CloseControl,
}

/// Why a storage operation failed, as the driver reports it. Each maps to a reply code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No such file or directory (550).
    #[error("No such file or directory")]
    NotFound,
    /// The storage refused (550).
    #[error("Permission denied")]
    PermissionDenied,
    /// A file was needed and this is a directory, or the reverse (550).
    #[error("Not a plain file or not a directory")]
    WrongKind,
    /// The path exists already (550).
    #[error("File exists")]
    AlreadyExists,
    /// A directory to remove is not empty (550).
    #[error("Directory not empty")]
    NotEmpty,
    /// A `REST` offset beyond the end of the file (554 per RFC 1123? we answer 550).
    #[error("Invalid restart offset")]
    InvalidOffset,
    /// Out of space or quota (552).
    #[error("Insufficient storage space")]
    NoSpace,
    /// A name the storage cannot hold (553).
    #[error("File name not allowed")]
    InvalidName,
    /// The file is in use or a limit on concurrent work was reached: try again later (450). For example an
    /// upload to a name another upload is writing, or a server at its cap of open transfers.
    #[error("File busy, try again later")]
    Busy,
    /// Anything else (451): the text goes to the log, not to the client.
    #[error("Local error: {0}")]
    Other(String),
}

/// The driver's answer to an [`Action`], passed to
/// [`Session::handle_completion`](super::Session::handle_completion) with the action's id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completion {
    /// The credentials are good. Foreign data addresses (FXP) follow
    /// [`Config::allow_foreign_data_address`](super::Config::allow_foreign_data_address).
    LoggedIn(Access),
    /// The credentials are good, with exactly these rights: the grant, not
    /// [`Config::allow_foreign_data_address`](super::Config::allow_foreign_data_address), decides on
    /// foreign data addresses.
    Granted(Grant),
    /// The credentials are wrong (the session delays its 530 and counts the failure).
    Denied,
    /// The metadata of the path asked about.
    Metadata(Metadata),
    /// A directory's entries, and the wall-clock time they were read (for the six-month rule of `LIST`).
    Entries {
        /// The entries, in any order (the session sorts them by name).
        entries: Vec<DirEntry>,
        /// Whether the path listed is a directory. `false`: it is a file, and `entries` holds its single
        /// entry (as `ls -l file` shows it).
        directory: bool,
        /// The current time, from the driver's clock.
        now: Timestamp,
    },
    /// Some of a directory's entries, with more to follow: the session asks for the next part with
    /// [`Action::ReadEntries`] when it has sent these, and lets go of the rest with
    /// [`LocalAction::Close`] (`aborted`) if the listing ends early. Each part is sorted by name; the
    /// order of the parts is the driver's. Only for a directory (a file is a single entry).
    EntriesPart {
        /// Some entries, in any order.
        entries: Vec<DirEntry>,
        /// The current time, from the driver's clock.
        now: Timestamp,
    },
    /// A file is open. `size` is its size if known (shown in the 150 reply); `path` is the path actually
    /// opened (for `STOU`, the unique name chosen).
    FileOpened {
        /// The file's size, if known.
        size: Option<u64>,
        /// The file's path.
        path: VirtualPath,
    },
    /// A storage operation succeeded and has nothing to report ([`StorageRequest::Delete`],
    /// [`StorageRequest::Rename`], ...).
    Done,
    /// A storage operation failed: a [`StorageRequest`], [`Action::ReadEntries`], or the open file
    /// ([`Action::Local`]). A data connection's failure is [`DataCompletion::Failed`] instead.
    Failed(StorageError),
    /// The TLS handshake asked for with [`Action::SecureControl`] succeeded: the session takes
    /// decrypted input from now on.
    ControlSecured,
    /// The answer to an [`Action::Data`], or to an [`Action::Local`] that needs one:
    /// [`DataCompletion::Listening`], [`DataCompletion::Connected`], [`DataCompletion::Written`] (a chunk
    /// is written, or a finished upload is stored), [`DataCompletion::EndOfData`] (the file or the data
    /// connection has no more bytes), or [`DataCompletion::Failed`] (the data connection could not be
    /// opened, 425, or broke during the transfer, 426).
    Data(DataCompletion),
}

impl From<DataCompletion> for Completion {
    fn from(completion: DataCompletion) -> Self {
        Completion::Data(completion)
    }
}

/// Something that happened, for the driver's logs and metrics. Drain with
/// [`Session::poll_event`](super::Session::poll_event); nothing needs an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A command line arrived, as it may be logged: the argument of `PASS`, `ACCT` and `ADAT` is shown as
    /// `****`, and control characters are escaped (`\x0d`, `\x1b`, `\u{85}`, ...) so that a command
    /// cannot end the log line early or forge another one; invalid UTF-8 shows as U+FFFD.
    Command(String),
    /// A user logged in.
    LoggedIn {
        /// The user name.
        user: String,
        /// What the user may do.
        access: Access,
    },
    /// A login failed.
    LoginFailed {
        /// The user name.
        user: String,
    },
    /// A transfer ended.
    TransferEnded {
        /// The transfer.
        id: RequestId,
        /// The command (`RETR`, `STOR`, `LIST`, ...).
        verb: &'static str,
        /// The path transferred or listed.
        path: VirtualPath,
        /// Bytes that crossed the data connection.
        bytes: u64,
        /// Whether it completed (226) rather than failed or was aborted.
        completed: bool,
    },
}
