//! One in-memory storage and one client–server pair, shared by the tests, the benches and the fuzz
//! targets. It is included as source, not as a crate, so that the fuzz crate (its own workspace) can use
//! it too:
//!
//! | user | includes it as | uses |
//! |---|---|---|
//! | `tests/sim/mod.rs` (server tests) | `#[path = "../harness/mod.rs"] mod harness;` | [`Server`] (as `Sim`) |
//! | `tests/client_session.rs` (`mod wired`) | `#[path = "harness/mod.rs"] mod harness;` | [`Pair`] |
//! | `benches/session.rs` | `#[path = "../tests/harness/mod.rs"] mod harness;` | [`Server`] |
//! | `fuzz/fuzz_targets/{server,client}_session.rs` | `#[path = "../../tests/harness/mod.rs"] mod harness;` | [`Server`], [`Client`] and their hooks |
//!
//! The pieces:
//! - [`MemoryStore`]: a file system in a `BTreeMap` that answers every [`StorageRequest`], the open
//!   file's [`LocalAction`] reads, writes and close, [`Action::ReadEntries`] (listings in parts), and
//!   `alice`'s password.
//! - [`Server`]: a `server::Session` and a driver that answers its actions at once from the store, with a
//!   scripted client on the far end of the data connections (chunks it uploads, bytes it received) and a
//!   fault plan (stalled reads and accepts, failed connections and sends, a held upload close).
//! - [`Client`]: a `client::Session` and a driver for the user's side (the source of an upload, the sink
//!   of a download, an abort after so many bytes) and, alone, for the data connection.
//! - [`Pair`]: a [`Client`] and a [`Server`] wired together: control bytes cross at once, and one data
//!   connection moves chunks both ways with back pressure (the server reads its file only when the client
//!   has taken what was sent), all through the shared data layer ([`DataAction`], [`LocalAction`],
//!   [`DataCompletion`]).
//!
//! TLS (FTPS) is simulated, without cryptography: a handshake is a flag set on both ends. The
//! [`Server`] answers `Action::SecureControl` with `ControlSecured` and `DataAction::Secure` with
//! `Secured { resumed: tls_resumed }`; the [`Client`] answers both with `Secured`. A [`Pair`] completes a
//! handshake only once both ends asked for it (in complementary roles, else it fails as a real one
//! would), and checks that control bytes only cross while both ends agree on the control connection's
//! TLS, and that no data-connection bytes move on a protected connection before its handshake.
//!
//! Both ends drain their session the same way: [`Server::drain_with`] and [`Client::drain_with`] pop every
//! action, hand it to a hook that says what to do with it ([`Verdict`]: let the harness answer, hold it,
//! answer it with this, or leave it to the hook), and panic if the session does not run dry within
//! `action_bound`. The plain drivers ([`Server::run`], [`Pair::settle`]) are such hooks; a fuzz target
//! passes its own to check every action and to answer when, and how, its input says.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ftp_proto::client;
use ftp_proto::command::{Password, Text};
use ftp_proto::data::{DataAction, DataCompletion, DataError, LocalAction, TlsRole};
use ftp_proto::hostport::NetworkProtocol;
use ftp_proto::listing::{DirEntry, EntryKind, Metadata};
use ftp_proto::path::VirtualPath;
use ftp_proto::server::{
    self, Access, Action, Completion, Config, ConnectionInfo, RequestId, StorageError,
    StorageRequest, WriteMode,
};
use ftp_proto::time::Timestamp;

/// The client's control-connection address in a [`Server`] made by [`Server::new`].
pub const CLIENT: &str = "127.0.0.1:50000";
/// The server's control-connection address in a [`Server`] made by [`Server::new`].
pub const LOCAL: &str = "127.0.0.1:21";

// ==== Hooks ====

/// What a drain does with an action, as a hook decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<C> {
    /// The harness answers it now (`Server::answer`, `Client::answer`).
    Answer,
    /// Kept (`Server::stalled`, `Client::held`), to be answered later, by the harness or by the test.
    Hold,
    /// Answered now with this completion.
    Complete(C),
    /// Answered now with this chunk (a read).
    Data(Bytes),
    /// Nothing more to do: the hook carried it out, answers it later itself, or drops it.
    Done,
}

// ==== The storage ====

/// A node of the in-memory file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A file and its content (`Bytes`, so that reads hand out slices and never copy).
    File(Bytes),
    /// A directory.
    Dir,
    /// An entry that is listed and stat'ed with its own metadata but never opened: a symlink, or a file
    /// or directory whose content is not kept (a benchmark's large directory).
    Entry(Metadata),
}

/// A file system in memory that answers a server session's storage requests, its open file's reads,
/// writes and close, its listings in parts, and its password checks. Paths are keys (absolute and
/// normalised, as the session sends them); one file is open at a time, as one session transfers one at
/// a time.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    pub fs: BTreeMap<Vec<u8>, Node>,
    /// The modification time every `File` and `Dir` reports (`SetModified` changes it).
    pub mtime: Timestamp,
    /// The wall-clock time of listings (for the six-month rule of `LIST`).
    pub listed_at: Timestamp,
    /// Size of the chunks an open file is read in.
    pub chunk_size: usize,
    /// The answer to `alice`'s good password (`LoggedIn(ReadWrite)` unless a test changes it).
    pub alice_login: Completion,
    /// When set, a directory is listed in parts of this many entries (`EntriesPart` ... `Entries`).
    pub list_part_size: Option<usize>,
    /// The entries of a listing answered in parts that are not delivered yet.
    pub listing_rest: Option<VecDeque<DirEntry>>,
    /// A storage that lists more than the session's `limit` (the session must still keep its bound).
    pub list_ignores_limit: bool,
    /// How many `ReadEntries` were answered.
    pub entries_reads: usize,
    /// Every storage request seen, in order.
    pub storage_requests: Vec<StorageRequest>,
    /// Every `LocalAction::Close` seen, with its `aborted` flag.
    pub file_closes: Vec<bool>,
    /// A directory's entries read ahead ([`MemoryStore::read_ahead`]), taken by the next `List` of it.
    pub read_ahead: Option<(Vec<u8>, Vec<DirEntry>)>,
    /// The file open for reading, and the position.
    reading: Option<(Bytes, usize)>,
    /// The file open for writing: its path and what it holds so far.
    writing: Option<(Vec<u8>, Vec<u8>)>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty root directory.
    pub fn new() -> MemoryStore {
        let mut store = MemoryStore {
            fs: BTreeMap::new(),
            mtime: Timestamp::parse_ftp(b"20240102130405").expect("valid time"),
            listed_at: Timestamp::parse_ftp(b"20240301000000").expect("valid time"),
            chunk_size: 4,
            alice_login: Completion::LoggedIn(Access::ReadWrite),
            list_part_size: None,
            listing_rest: None,
            list_ignores_limit: false,
            entries_reads: 0,
            storage_requests: Vec::new(),
            file_closes: Vec::new(),
            read_ahead: None,
            reading: None,
            writing: None,
        };
        store.add_dir("/");
        store
    }

    /// A small tree: `/pub/readme.txt`, `/pub/data.bin` (bytes 0 to 255), `/upload/`.
    pub fn sample() -> MemoryStore {
        let mut store = MemoryStore::new();
        store.add_dir("/pub");
        store.add_dir("/upload");
        store.add_file("/pub/readme.txt", &b"line one\nline two\n"[..]);
        store.add_file("/pub/data.bin", (0..=255u8).collect::<Vec<u8>>());
        store
    }

    pub fn add_dir(&mut self, path: &str) {
        self.fs.insert(path.as_bytes().to_vec(), Node::Dir);
    }

    pub fn add_file(&mut self, path: &str, content: impl Into<Bytes>) {
        self.fs
            .insert(path.as_bytes().to_vec(), Node::File(content.into()));
    }

    pub fn add_entry(&mut self, path: &str, metadata: Metadata) {
        self.fs
            .insert(path.as_bytes().to_vec(), Node::Entry(metadata));
    }

    /// A file's content.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        match self.fs.get(path.as_bytes()) {
            Some(Node::File(content)) => Some(content),
            _ => None,
        }
    }

    /// The password check: `alice`/`secret` gets `alice_login`, anyone else `Denied`.
    pub fn authenticate(&self, user: &Text, password: Option<&Password>) -> Completion {
        let good =
            user.as_bytes() == b"alice" && password.map(|p| p.as_bytes()) == Some(&b"secret"[..]);
        if good {
            self.alice_login.clone()
        } else {
            Completion::Denied
        }
    }

    /// The answer to a storage request (an `OpenRead`/`OpenWrite` opens the file the next reads, writes
    /// and close are about).
    pub fn storage(&mut self, request: StorageRequest) -> Completion {
        use StorageRequest::*;
        self.storage_requests.push(request.clone());
        let result = match request {
            Stat(path) => self
                .node(&path)
                .map(|n| Completion::Metadata(self.metadata(n))),
            List { path, limit } => self.list(&path, limit),
            OpenRead { path, offset } => match self.node(&path) {
                Ok(Node::File(content)) => {
                    let content = content.clone();
                    let size = content.len() as u64;
                    let start = usize::try_from(offset)
                        .unwrap_or(usize::MAX)
                        .min(content.len());
                    self.reading = Some((content, start));
                    Ok(Completion::FileOpened {
                        size: Some(size),
                        path,
                    })
                }
                Ok(Node::Dir) => Err(StorageError::WrongKind),
                Ok(Node::Entry(m)) if m.kind == EntryKind::Directory => {
                    Err(StorageError::WrongKind)
                }
                Ok(Node::Entry(_)) => Err(StorageError::PermissionDenied),
                Err(e) => Err(e),
            },
            OpenWrite { path, mode } => self.open_write(path, mode),
            Delete(path) => match self.node(&path) {
                Ok(node) if !is_directory(node) => {
                    self.fs.remove(path.as_bytes());
                    Ok(Completion::Done)
                }
                Ok(_) => Err(StorageError::WrongKind),
                Err(e) => Err(e),
            },
            MakeDirectory(path) => {
                if self.fs.contains_key(path.as_bytes()) {
                    Err(StorageError::AlreadyExists)
                } else {
                    self.fs.insert(path.as_bytes().to_vec(), Node::Dir);
                    Ok(Completion::Done)
                }
            }
            RemoveDirectory(path) => match self.node(&path) {
                Ok(Node::Dir) if self.children(&path).next().is_none() => {
                    self.fs.remove(path.as_bytes());
                    Ok(Completion::Done)
                }
                Ok(Node::Dir) => Err(StorageError::NotEmpty),
                Ok(_) => Err(StorageError::WrongKind),
                Err(e) => Err(e),
            },
            Rename { from, to } => match self.fs.remove(from.as_bytes()) {
                Some(node) => {
                    self.fs.insert(to.as_bytes().to_vec(), node);
                    Ok(Completion::Done)
                }
                None => Err(StorageError::NotFound),
            },
            SetModified { path, time } => match self.node(&path) {
                Ok(_) => {
                    self.mtime = time;
                    Ok(Completion::Done)
                }
                Err(e) => Err(e),
            },
        };
        result.unwrap_or_else(Completion::Failed)
    }

    /// The open file's next chunk (`None` at its end, or with no file open).
    pub fn read(&mut self) -> Option<Bytes> {
        let chunk_size = self.chunk_size;
        let (content, pos) = self.reading.as_mut()?;
        let end = (*pos + chunk_size).min(content.len());
        let chunk = content.slice(*pos..end);
        *pos = end;
        (!chunk.is_empty()).then_some(chunk)
    }

    /// Appends to the file open for writing (nothing with none open).
    pub fn write(&mut self, data: &[u8]) {
        if let Some((_, content)) = self.writing.as_mut() {
            content.extend_from_slice(data);
        }
    }

    /// Closes the open file and lets go of a listing in parts. A file open for writing is stored, even
    /// an aborted one (a partial upload stays, as the example server leaves it); returns whether there
    /// was one (then a close that is not `aborted` wants its `Written`).
    pub fn close(&mut self, aborted: bool) -> bool {
        self.file_closes.push(aborted);
        self.reading = None;
        self.listing_rest = None;
        match self.writing.take() {
            Some((path, content)) => {
                self.fs.insert(path, Node::File(content.into()));
                true
            }
            None => false,
        }
    }

    /// Reads directory `dir`'s entries now, for its next `List` (a benchmark builds them outside the
    /// timing this way, as a driver with a directory cache would).
    pub fn read_ahead(&mut self, dir: &str) {
        let path = VirtualPath::root()
            .resolve(dir.as_bytes(), Default::default())
            .expect("a valid path");
        let entries = self.entries(&path, usize::MAX);
        self.read_ahead = Some((path.as_bytes().to_vec(), entries));
    }

    /// The next part of a listing answered in parts; the last one is `Entries`.
    pub fn read_entries(&mut self) -> Completion {
        self.entries_reads += 1;
        self.next_listing_part()
    }

    fn metadata(&self, node: &Node) -> Metadata {
        let mut m = match node {
            Node::File(content) => Metadata::file(content.len() as u64),
            Node::Dir => Metadata::directory(),
            Node::Entry(m) => return m.clone(),
        };
        m.modified = Some(self.mtime);
        m
    }

    fn node(&self, path: &VirtualPath) -> Result<&Node, StorageError> {
        self.fs.get(path.as_bytes()).ok_or(StorageError::NotFound)
    }

    /// The names and nodes right below `dir`, in key order.
    fn children<'a>(&'a self, dir: &VirtualPath) -> impl Iterator<Item = (&'a [u8], &'a Node)> {
        let mut prefix = dir.as_bytes().to_vec();
        if !prefix.ends_with(b"/") {
            prefix.push(b'/');
        }
        let start = prefix.len();
        self.fs
            .range(prefix.clone()..)
            .take_while(move |(path, _)| path.starts_with(&prefix))
            .filter_map(move |(path, node)| {
                let name = &path[start..];
                (!name.is_empty() && !name.contains(&b'/')).then_some((name, node))
            })
    }

    fn next_listing_part(&mut self) -> Completion {
        let (Some(rest), Some(size)) = (self.listing_rest.as_mut(), self.list_part_size) else {
            return Completion::Failed(StorageError::Other("no listing in parts".into()));
        };
        let part: Vec<DirEntry> = rest.drain(..size.min(rest.len())).collect();
        let now = self.listed_at;
        if rest.is_empty() {
            self.listing_rest = None;
            Completion::Entries {
                entries: part,
                directory: true,
                now,
            }
        } else {
            Completion::EntriesPart { entries: part, now }
        }
    }

    fn list(&mut self, path: &VirtualPath, limit: usize) -> Result<Completion, StorageError> {
        let limit = if self.list_ignores_limit {
            usize::MAX
        } else {
            limit
        };
        let directory = is_directory(self.node(path)?);
        let entries = match self.read_ahead.take() {
            Some((dir, mut entries)) if dir == path.as_bytes() => {
                entries.truncate(limit);
                entries
            }
            _ => self.entries(path, limit),
        };
        if directory && self.list_part_size.is_some() {
            self.listing_rest = Some(entries.into());
            return Ok(self.next_listing_part());
        }
        Ok(Completion::Entries {
            entries,
            directory,
            now: self.listed_at,
        })
    }

    /// A directory's first `limit` entries, or a file's own entry (nothing for a path not found).
    fn entries(&self, path: &VirtualPath, limit: usize) -> Vec<DirEntry> {
        match self.fs.get(path.as_bytes()) {
            Some(node) if is_directory(node) => self
                .children(path)
                .take(limit)
                .map(|(name, node)| DirEntry::new(name.to_vec(), self.metadata(node)))
                .collect(),
            Some(node) => vec![DirEntry::new(
                path.file_name().unwrap_or_default().to_vec(),
                self.metadata(node),
            )],
            None => Vec::new(),
        }
    }

    fn open_write(
        &mut self,
        path: VirtualPath,
        mode: WriteMode,
    ) -> Result<Completion, StorageError> {
        let parent_is_dir = path
            .parent()
            .is_some_and(|p| self.fs.get(p.as_bytes()).is_some_and(is_directory));
        if !parent_is_dir {
            return Err(StorageError::NotFound);
        }
        let existing = match self.fs.get(path.as_bytes()) {
            Some(Node::File(content)) => Some(content.to_vec()),
            Some(_) => return Err(StorageError::WrongKind),
            None => None,
        };
        let (path, content) = match mode {
            WriteMode::Truncate => (path, Vec::new()),
            WriteMode::CreateNew if existing.is_some() => return Err(StorageError::AlreadyExists),
            WriteMode::CreateNew => (path, Vec::new()),
            WriteMode::Append => (path, existing.unwrap_or_default()),
            WriteMode::Resume(offset) => {
                let mut content = existing.unwrap_or_default();
                if (content.len() as u64) < offset {
                    return Err(StorageError::InvalidOffset);
                }
                content.truncate(offset as usize);
                (path, content)
            }
            WriteMode::Unique => {
                let mut candidate = path.clone();
                let mut n = 0;
                while self.fs.contains_key(candidate.as_bytes()) {
                    n += 1;
                    let name = format!(
                        "{}.{n}",
                        String::from_utf8_lossy(path.file_name().unwrap_or_default())
                    );
                    candidate = path
                        .parent()
                        .unwrap_or_else(VirtualPath::root)
                        .join(name.as_bytes())
                        .expect("a valid name");
                }
                (candidate, Vec::new())
            }
            other => panic!("unexpected write mode {other:?}"),
        };
        self.writing = Some((path.as_bytes().to_vec(), content));
        Ok(Completion::FileOpened { size: None, path })
    }
}

fn is_directory(node: &Node) -> bool {
    match node {
        Node::Dir => true,
        Node::Entry(m) => m.kind == EntryKind::Directory,
        Node::File(_) => false,
    }
}

/// Whether `kind` is a directory, for assertions.
pub fn is_dir(kind: EntryKind) -> bool {
    kind == EntryKind::Directory
}

// ==== The server end ====

/// A server session and the driver around it: a [`MemoryStore`], a scripted client on the far end of the
/// data connections, and a clock that moves only when told. [`Server::run`] answers every action at
/// once, the way a real driver would answer later, so tests read like transcripts: send a line, read
/// the replies. The store's fields are reachable through `Deref` (`server.fs`, `server.chunk_size`).
pub struct Server {
    pub session: server::Session,
    pub now: Instant,
    pub store: MemoryStore,
    /// The client's control-connection address.
    pub client: SocketAddr,
    /// Where passive data connections come from (change it to test the foreign-address check).
    pub data_peer: SocketAddr,
    /// The address `DataAction::Listen` is answered with.
    pub listen_addr: SocketAddr,
    /// Chunks the client sends on the next upload's data connection (then it closes it).
    pub upload: VecDeque<Bytes>,
    /// Whether the client keeps what it receives (for `take_data`); it counts it in `data_bytes` anyway.
    pub keep_data: bool,
    /// Bytes the client received on data connections, in all.
    pub data_bytes: u64,
    /// Control-connection output not taken yet.
    pub control: Vec<u8>,
    /// While true, file, data-connection and listing reads are held in `stalled` instead of answered.
    pub stall: bool,
    /// While true, `DataAction::Accept` is held in `stalled` (the client never connects).
    pub stall_accept: bool,
    /// Actions held back, oldest first (a hook's `Verdict::Hold`).
    pub stalled: Vec<Action>,
    /// Passive listeners bound and not closed yet, by the id of their `Listen`.
    pub listeners: BTreeSet<RequestId>,
    /// Data connections open and not closed yet, by transfer id.
    pub connections: BTreeSet<RequestId>,
    /// Every `DataAction::Close` of an open data connection, with its `aborted` flag.
    pub data_closes: Vec<bool>,
    /// Every `DataAction::Close` of an open listener, with its `aborted` flag.
    pub listener_closes: Vec<bool>,
    /// The address family of every `DataAction::Listen`.
    pub listen_families: Vec<NetworkProtocol>,
    /// The address of the last `DataAction::Connect`.
    pub connected_to: Option<SocketAddr>,
    /// Answer `DataAction::Accept`/`Connect` with a failure.
    pub fail_data: bool,
    /// Answer `DataAction::Send` with a failure (the client reset the connection mid-transfer).
    pub fail_sends: bool,
    /// While true, an upload's `LocalAction::Close` stores the file but its `Written` is held in
    /// `held_upload_close`.
    pub hold_upload_close: bool,
    pub held_upload_close: Option<RequestId>,
    /// `CloseControl` was seen.
    pub closed: bool,
    /// More actions (or events) than this in one drain is a session that does not run dry.
    pub action_bound: usize,
    /// Answers of the wrong kind a hook gave ([`Verdict::Complete`]), which the session turned away.
    pub mistakes: Vec<server::UnexpectedCompletion>,
    /// The simulated TLS of the control connection, as the driver sees it: on once it answered
    /// `SecureControl` (or from the start, [`Server::start_implicit`]), off after `ClearControl`.
    pub control_secured: bool,
    /// Control output written while `control_secured` was on (what a peer would have read over TLS).
    pub secured_control: Vec<u8>,
    /// While true, `Action::SecureControl` is held in `stalled` (the handshake is under way).
    pub hold_handshake: bool,
    /// How many `SecureControl` and `ClearControl` actions came out.
    pub handshakes: usize,
    pub control_clears: usize,
    /// Whether a data connection's TLS handshake resumed the control connection's session: the
    /// `resumed` of the harness's `Secured` answers. Default `true`.
    pub tls_resumed: bool,
    /// Answer `DataAction::Secure` with a failure (the handshake on the data connection failed).
    pub fail_secure: bool,
    /// The `tls` of every `DataAction::Connect`/`Accept`, in order.
    pub data_tls: Vec<Option<TlsRole>>,
    /// Every `DataAction::Secure`, with its role, in order.
    pub data_secures: Vec<TlsRole>,
    /// Data connections opened with `tls: Some(role)` whose handshake the harness has not answered yet:
    /// bytes on them are a session bug.
    tls_pending: BTreeMap<RequestId, TlsRole>,
    received: Vec<Bytes>,
}

impl Deref for Server {
    type Target = MemoryStore;

    fn deref(&self) -> &MemoryStore {
        &self.store
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut MemoryStore {
        &mut self.store
    }
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Server {
    /// Passes the harness's own answer to the session: it always fits what was asked, so a mistake
    /// here is a harness bug (or a session that turns away a right answer).
    pub fn complete(&mut self, now: Instant, id: RequestId, completion: Completion) {
        if let Err(mistake) = self.session.handle_completion(now, id, completion) {
            panic!("the harness answered wrongly: {mistake}");
        }
    }

    /// A session with the default config over [`MemoryStore::sample`], greeting done.
    pub fn new() -> Server {
        Server::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Server {
        let info = ConnectionInfo {
            local: LOCAL.parse().expect("address"),
            peer: CLIENT.parse().expect("address"),
        };
        let mut server = Server::start(
            Arc::new(config),
            info,
            MemoryStore::sample(),
            Instant::now(),
        );
        server.run();
        server
    }

    /// A new session over `store`, its greeting not drained yet (drain with `run` or `drain_with`).
    pub fn start(
        config: Arc<Config>,
        info: ConnectionInfo,
        store: MemoryStore,
        now: Instant,
    ) -> Server {
        Server {
            session: server::Session::new(config, info, now),
            now,
            store,
            client: info.peer,
            data_peer: SocketAddr::new(info.peer.ip(), info.peer.port().wrapping_add(1)),
            listen_addr: SocketAddr::new(info.local.ip(), 40000),
            upload: VecDeque::new(),
            keep_data: true,
            data_bytes: 0,
            control: Vec::new(),
            stall: false,
            stall_accept: false,
            stalled: Vec::new(),
            listeners: BTreeSet::new(),
            connections: BTreeSet::new(),
            data_closes: Vec::new(),
            listener_closes: Vec::new(),
            listen_families: Vec::new(),
            connected_to: None,
            fail_data: false,
            fail_sends: false,
            hold_upload_close: false,
            held_upload_close: None,
            closed: false,
            action_bound: usize::MAX,
            mistakes: Vec::new(),
            control_secured: false,
            secured_control: Vec::new(),
            hold_handshake: false,
            handshakes: 0,
            control_clears: 0,
            tls_resumed: true,
            fail_secure: false,
            data_tls: Vec::new(),
            data_secures: Vec::new(),
            tls_pending: BTreeMap::new(),
            received: Vec::new(),
        }
    }

    /// A session of implicit FTPS (`Session::with_implicit_tls`) over `store`, its greeting not drained
    /// yet: the control connection is secured from the start.
    pub fn start_implicit(
        config: Arc<Config>,
        info: ConnectionInfo,
        store: MemoryStore,
        now: Instant,
    ) -> Server {
        let mut server = Server::start(Arc::clone(&config), info, store, now);
        server.session = server::Session::with_implicit_tls(config, info, now);
        server.control_secured = true;
        server
    }

    /// Whether the session waits for the control connection's handshake (a `SecureControl` is held).
    pub fn handshake_held(&self) -> bool {
        self.stalled
            .iter()
            .any(|a| matches!(a, Action::SecureControl { .. }))
    }

    /// Sends one command line (CRLF added) and returns the control output it caused.
    pub fn cmd(&mut self, line: &str) -> String {
        self.input(format!("{line}\r\n").as_bytes());
        self.take_control()
    }

    /// Feeds raw control bytes.
    pub fn input(&mut self, bytes: &[u8]) {
        self.session.handle_control_input(self.now, bytes);
        self.run();
    }

    /// Logs in as the anonymous user and discards the replies.
    pub fn login_anonymous(&mut self) {
        self.take_control();
        let out = self.cmd("USER anonymous");
        assert!(out.starts_with("331"), "{out}");
        let out = self.cmd("PASS guest@");
        assert!(out.starts_with("230"), "{out}");
    }

    /// Logs in as `alice`, who may write.
    pub fn login_writer(&mut self) {
        self.take_control();
        assert!(self.cmd("USER alice").starts_with("331"));
        let out = self.cmd("PASS secret");
        assert!(out.starts_with("230"), "{out}");
    }

    /// The control output since the last call, as text (Telnet bytes shown lossily).
    pub fn take_control(&mut self) -> String {
        String::from_utf8_lossy(&self.take_control_bytes()).into_owned()
    }

    /// The control output since the last call, as bytes.
    pub fn take_control_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.control)
    }

    /// The data-connection bytes the client received since the last call.
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.received).concat()
    }

    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Moves the clock and fires the session's timer if it is due.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.session.poll_timeout().is_some_and(|t| t <= self.now) {
            self.session.handle_timeout(self.now);
        }
        self.run();
    }

    /// Answers the stalled actions now.
    pub fn release(&mut self) {
        self.stall = false;
        self.stall_accept = false;
        self.hold_handshake = false;
        self.release_stalled();
    }

    /// Answers the actions stalled so far, keeping the stall flags (new reads stall again).
    pub fn release_stalled(&mut self) {
        for action in std::mem::take(&mut self.stalled) {
            self.answer(action);
        }
        self.run();
    }

    /// Carries out one action a test took from the session itself (`None`: nothing), keeping the books
    /// as a drain does.
    pub fn answer_for_test(&mut self, action: Option<Action>) {
        if let Some(action) = action {
            self.note(&action);
            self.answer(action);
        }
    }

    /// Drains and answers every action until the session has nothing more to say, holding reads and
    /// accepts while `stall`/`stall_accept` say so.
    pub fn run(&mut self) {
        self.drain_with(Server::plan);
    }

    /// The plain driver's hook: the fault plan's stalls, else answer.
    pub fn plan(&mut self, action: &Action) -> Verdict<Completion> {
        let stalls = match action {
            Action::Local(LocalAction::Read { .. })
            | Action::Data(DataAction::Receive { .. })
            | Action::ReadEntries { .. } => self.stall,
            Action::Data(DataAction::Accept { .. }) => self.stall_accept,
            Action::SecureControl { .. } => self.hold_handshake,
            _ => false,
        };
        if stalls {
            Verdict::Hold
        } else {
            Verdict::Answer
        }
    }

    /// Drains the session's actions through `hook`, then its events. Before an action is carried out
    /// the driver's books are kept (listeners, connections and closes, `closed`), after the hook saw
    /// them as they were.
    pub fn drain_with(
        &mut self,
        mut hook: impl FnMut(&mut Server, &Action) -> Verdict<Completion>,
    ) {
        let mut actions = 0usize;
        while let Some(action) = self.session.poll_action() {
            actions += 1;
            assert!(actions <= self.action_bound, "poll_action does not run dry");
            let verdict = hook(self, &action);
            self.note(&action);
            let now = self.now;
            match verdict {
                Verdict::Answer => self.answer(action),
                Verdict::Hold => self.stalled.push(action),
                Verdict::Complete(completion) => {
                    let id = server_action_id(&action).expect("an action that wants an answer");
                    // A hook may answer wrongly on purpose (fault injection): the session reports it
                    // and must carry on as if nothing came.
                    if let Err(mistake) = self.session.handle_completion(now, id, completion) {
                        self.mistakes.push(mistake);
                    }
                }
                Verdict::Data(chunk) => {
                    let id = server_action_id(&action).expect("a read");
                    self.session.handle_data(now, id, chunk);
                }
                Verdict::Done => {}
            }
        }
        let mut events = 0usize;
        while self.session.poll_event().is_some() {
            events += 1;
            assert!(events <= self.action_bound, "poll_event does not run dry");
        }
    }

    /// The books a driver keeps by id, as it would for its sockets: kept once for every action, when it
    /// leaves the session (not again when a held one is answered).
    fn note(&mut self, action: &Action) {
        match action {
            Action::Data(DataAction::Listen { id, family }) => {
                self.listen_families.push(*family);
                assert!(self.listeners.insert(*id), "listener {id:?} bound twice");
            }
            Action::Data(DataAction::Connect { addr, tls, .. }) => {
                self.connected_to = Some(*addr);
                self.data_tls.push(*tls);
            }
            Action::Data(DataAction::Accept { tls, .. }) => self.data_tls.push(*tls),
            Action::Data(DataAction::Secure { role, .. }) => self.data_secures.push(*role),
            Action::SecureControl { .. } => self.handshakes += 1,
            Action::ClearControl => self.control_clears += 1,
            // A `Close` of an id with nothing open (a transfer aborted before it connected) is ignored.
            Action::Data(DataAction::Close { id, aborted }) => {
                self.tls_pending.remove(id);
                if self.listeners.remove(id) {
                    self.listener_closes.push(*aborted);
                } else if self.connections.remove(id) {
                    self.data_closes.push(*aborted);
                }
            }
            Action::CloseControl => self.closed = true,
            _ => {}
        }
    }

    /// Answers one action as the in-memory driver does (with the fault plan's failures).
    pub fn answer(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::SendControl(bytes) => {
                if self.control_secured {
                    self.secured_control.extend_from_slice(&bytes);
                }
                self.control.extend_from_slice(&bytes)
            }
            Action::Authenticate { id, user, password } => {
                let c = self.store.authenticate(&user, password.as_ref());
                self.complete(now, id, c);
            }
            Action::Data(action) => self.data_action(action),
            Action::Storage { id, request } => {
                let c = self.store.storage(request);
                self.complete(now, id, c);
            }
            Action::Local(action) => self.local_action(action),
            Action::ReadEntries { id } => {
                let c = self.store.read_entries();
                self.complete(now, id, c);
            }
            // The simulated handshake: it always succeeds.
            Action::SecureControl { id } => {
                self.control_secured = true;
                self.complete(now, id, Completion::ControlSecured);
            }
            Action::ClearControl => self.control_secured = false,
            Action::CloseControl => self.closed = true,
        }
    }

    /// The data connections and passive listeners, with the scripted client at their far end.
    fn data_action(&mut self, action: DataAction<RequestId>) {
        let now = self.now;
        let failed = || DataCompletion::Failed(DataError::new(ErrorKind::ConnectionRefused));
        match action {
            DataAction::Listen { id, .. } => {
                let c = DataCompletion::Listening(self.listen_addr);
                self.complete(now, id, c.into());
            }
            DataAction::Accept { id, listener, tls } => {
                // A listener closed in the meantime (the transfer timed out) has nothing to accept.
                let c = if self.fail_data || !self.listeners.contains(&listener) {
                    failed()
                } else {
                    self.opened(id, tls);
                    DataCompletion::Connected {
                        peer: self.data_peer,
                    }
                };
                self.complete(now, id, c.into());
            }
            DataAction::Connect { id, addr, tls } => {
                let c = if self.fail_data {
                    failed()
                } else {
                    self.opened(id, tls);
                    DataCompletion::Connected { peer: addr }
                };
                self.complete(now, id, c.into());
            }
            DataAction::Secure { id, role } => {
                assert!(
                    self.connections.contains(&id),
                    "Secure on {id:?}, which is no open data connection"
                );
                let asked = self.tls_pending.remove(&id);
                assert_eq!(
                    asked,
                    Some(role),
                    "Secure of {id:?} in another role than its Connect/Accept said"
                );
                let c = if self.fail_secure {
                    DataCompletion::Failed(DataError::new(ErrorKind::InvalidData))
                } else {
                    DataCompletion::Secured {
                        resumed: self.tls_resumed,
                    }
                };
                self.complete(now, id, c.into());
            }
            DataAction::Send { id, .. } | DataAction::Receive { id }
                if self.tls_pending.contains_key(&id) =>
            {
                panic!("bytes on protected data connection {id:?} before its TLS handshake");
            }
            DataAction::Send { id, .. } if self.fail_sends => {
                let reset = DataCompletion::Failed(DataError::new(ErrorKind::ConnectionReset));
                self.complete(now, id, reset.into());
            }
            DataAction::Send { id, data } => {
                self.data_bytes += data.len() as u64;
                if self.keep_data {
                    self.received.push(data);
                }
                self.complete(now, id, DataCompletion::Written.into());
            }
            DataAction::Receive { id } => match self.upload.pop_front() {
                Some(chunk) => self.session.handle_data(now, id, chunk),
                None => self.complete(now, id, DataCompletion::EndOfData.into()),
            },
            // Kept in the books (`note`); nothing to answer.
            DataAction::Close { .. } => {}
        }
    }

    /// A data connection is open: protected ones wait for their handshake.
    fn opened(&mut self, id: RequestId, tls: Option<TlsRole>) {
        self.connections.insert(id);
        if let Some(role) = tls {
            self.tls_pending.insert(id, role);
        }
    }

    /// The transfer's open file, in the store.
    fn local_action(&mut self, action: LocalAction<RequestId>) {
        let now = self.now;
        match action {
            LocalAction::Read { id } => match self.store.read() {
                Some(chunk) => self.session.handle_data(now, id, chunk),
                None => self.complete(now, id, DataCompletion::EndOfData.into()),
            },
            LocalAction::Write { id, data } => {
                self.store.write(&data);
                self.complete(now, id, DataCompletion::Written.into());
            }
            LocalAction::Close { id, aborted } => {
                if self.store.close(aborted) && !aborted {
                    if self.hold_upload_close {
                        self.held_upload_close = Some(id);
                    } else {
                        self.complete(now, id, DataCompletion::Written.into());
                    }
                }
            }
        }
    }
}

/// The id of a server action that wants an answer (or is a read).
pub fn server_action_id(action: &Action) -> Option<RequestId> {
    match action {
        Action::Authenticate { id, .. }
        | Action::Storage { id, .. }
        | Action::ReadEntries { id }
        | Action::SecureControl { id } => Some(*id),
        Action::Data(action) => Some(action.id()),
        Action::Local(action) => Some(action.id()),
        Action::SendControl(_) | Action::ClearControl | Action::CloseControl => None,
    }
}

// ==== The client end ====

/// A client session and its driver's user side: the source of an upload (`upload`), the sink of a
/// download (`downloaded`), an `Abort` once so many bytes arrived. Alone (no [`Pair`]), it also answers
/// the data connection as a well-behaved driver whose server never sends anything.
pub struct Client {
    pub session: client::Session,
    pub info: client::ConnectionInfo,
    pub now: Instant,
    /// Events drained and not looked at yet.
    pub events: Vec<client::Event>,
    /// Actions held back, oldest first (a hook's `Verdict::Hold`).
    pub held: Vec<client::Action>,
    /// Control-connection output (commands) not taken yet (a [`Pair`] sends them to the server instead).
    pub control: Vec<u8>,
    /// The chunks the user's upload source yields, then its end.
    pub upload: VecDeque<Bytes>,
    /// What the user's download sink received.
    pub downloaded: Vec<u8>,
    /// Request `Abort` once `downloaded` holds this many bytes.
    pub abort_after: Option<usize>,
    /// `CloseControl` was seen.
    pub closed: bool,
    /// More actions (or events) than this in one drain is a session that does not run dry.
    pub action_bound: usize,
    /// The simulated TLS of the control connection, as the driver sees it (see [`Server`]'s).
    pub control_secured: bool,
    /// The `tls` of every `DataAction::Connect`/`Accept`, in order.
    pub data_tls: Vec<Option<TlsRole>>,
    /// Every `DataAction::Secure`, with its role, in order.
    pub data_secures: Vec<TlsRole>,
}

impl Client {
    /// A new session, nothing drained yet.
    pub fn start(
        config: Arc<client::Config>,
        info: client::ConnectionInfo,
        now: Instant,
    ) -> Client {
        Client {
            session: client::Session::new(config, info, now),
            info,
            now,
            events: Vec::new(),
            held: Vec::new(),
            control: Vec::new(),
            upload: VecDeque::new(),
            downloaded: Vec::new(),
            abort_after: None,
            closed: false,
            action_bound: usize::MAX,
            control_secured: false,
            data_tls: Vec::new(),
            data_secures: Vec::new(),
        }
    }

    /// A session of implicit FTPS (`Session::with_implicit_tls`), nothing drained yet.
    pub fn start_implicit(
        config: Arc<client::Config>,
        info: client::ConnectionInfo,
        now: Instant,
    ) -> Client {
        let mut client = Client::start(Arc::clone(&config), info, now);
        client.session = client::Session::with_implicit_tls(config, info, now);
        client.control_secured = true;
        client
    }

    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Drains the session's actions through `hook`, then its events into `events`.
    pub fn drain_with(
        &mut self,
        mut hook: impl FnMut(&mut Client, &client::Action) -> Verdict<DataCompletion>,
    ) {
        let mut actions = 0usize;
        while let Some(action) = self.session.poll_action() {
            actions += 1;
            assert!(actions <= self.action_bound, "poll_action does not run dry");
            let verdict = hook(self, &action);
            match &action {
                client::Action::CloseControl => self.closed = true,
                client::Action::Data(
                    DataAction::Connect { tls, .. } | DataAction::Accept { tls, .. },
                ) => self.data_tls.push(*tls),
                client::Action::Data(DataAction::Secure { role, .. }) => {
                    self.data_secures.push(*role)
                }
                _ => {}
            }
            let now = self.now;
            match verdict {
                Verdict::Answer => self.answer(action),
                Verdict::Hold => self.held.push(action),
                Verdict::Complete(completion) => {
                    let id = client_action_id(&action).expect("an action that wants an answer");
                    self.session.handle_completion(now, id, completion);
                }
                Verdict::Data(chunk) => {
                    let id = client_action_id(&action).expect("a read");
                    self.session.handle_data(now, id, chunk);
                }
                Verdict::Done => {}
            }
        }
        let mut events = 0usize;
        while let Some(event) = self.session.poll_event() {
            events += 1;
            assert!(events <= self.action_bound, "poll_event does not run dry");
            self.events.push(event);
        }
    }

    /// Answers one action as a well-behaved driver does: the user's source and sink, and a data
    /// connection that connects, listens and accepts at once (from the server's address, port 20),
    /// writes everything and reads an empty stream.
    pub fn answer(&mut self, action: client::Action) {
        use client::Action as A;
        let now = self.now;
        match action {
            A::SendControl(bytes) => self.control.extend_from_slice(&bytes),
            A::CloseControl => self.closed = true,
            A::Local(LocalAction::Read { id }) => match self.upload.pop_front() {
                Some(chunk) => self.session.handle_data(now, id, chunk),
                None => self
                    .session
                    .handle_completion(now, id, DataCompletion::EndOfData),
            },
            A::Local(LocalAction::Write { id, data }) => {
                self.downloaded.extend_from_slice(&data);
                self.session
                    .handle_completion(now, id, DataCompletion::Written);
                if self.abort_after.is_some_and(|n| self.downloaded.len() >= n) {
                    self.abort_after = None;
                    self.session
                        .request(now, client::Request::Abort)
                        .expect("Abort is accepted");
                }
            }
            // A download's sink is stored at once (an upload's source needs no answer; the session
            // ignores this one).
            A::Local(LocalAction::Close { id, aborted }) => {
                if !aborted {
                    self.session
                        .handle_completion(now, id, DataCompletion::Written);
                }
            }
            A::Data(DataAction::Connect { id, addr, .. }) => {
                self.session
                    .handle_completion(now, id, DataCompletion::Connected { peer: addr });
            }
            // The simulated handshakes: they always succeed (and resume, on data connections).
            A::SecureControl { id } => {
                self.control_secured = true;
                let secured = DataCompletion::Secured { resumed: false };
                self.session.handle_completion(now, id, secured);
            }
            A::ClearControl => self.control_secured = false,
            A::Data(DataAction::Secure { id, .. }) => {
                let secured = DataCompletion::Secured { resumed: true };
                self.session.handle_completion(now, id, secured);
            }
            A::Data(DataAction::Listen { id, family }) => {
                let ip: IpAddr = match family {
                    NetworkProtocol::V6 => Ipv6Addr::UNSPECIFIED.into(),
                    _ => Ipv4Addr::UNSPECIFIED.into(),
                };
                let c = DataCompletion::Listening(SocketAddr::new(ip, 40000));
                self.session.handle_completion(now, id, c);
            }
            A::Data(DataAction::Accept { id, .. }) => {
                let peer = SocketAddr::new(self.info.peer.ip(), 20);
                self.session
                    .handle_completion(now, id, DataCompletion::Connected { peer });
            }
            A::Data(DataAction::Send { id, .. }) => {
                self.session
                    .handle_completion(now, id, DataCompletion::Written);
            }
            A::Data(DataAction::Receive { id }) => {
                self.session
                    .handle_completion(now, id, DataCompletion::EndOfData);
            }
            A::Data(DataAction::Close { .. }) => {}
        }
    }
}

/// The id of a client action that wants an answer (or is a read).
pub fn client_action_id(action: &client::Action) -> Option<client::RequestId> {
    match action {
        client::Action::Data(action) => Some(action.id()),
        client::Action::Local(action) => Some(action.id()),
        client::Action::SecureControl { id } => Some(*id),
        client::Action::SendControl(_)
        | client::Action::ClearControl
        | client::Action::CloseControl => None,
    }
}

// ==== The pair ====

/// The server's control address in a [`Pair`].
pub const PAIR_SERVER: &str = "198.51.100.1:21";
/// The client's control address in a [`Pair`].
pub const PAIR_CLIENT: &str = "192.0.2.7:50000";
/// The server's passive listener in a [`Pair`].
pub const PAIR_SERVER_DATA: &str = "198.51.100.1:6000";
/// The client's end of a [`Pair`]'s data connection.
pub const PAIR_CLIENT_DATA: &str = "192.0.2.7:40000";

/// A client session and a server session wired together in memory: control bytes cross at once, and
/// one data connection carries a transfer's chunks either way. TLS is simulated (see the module docs):
/// the control connection's handshake completes once both ends asked for it, a data connection's once
/// both ends asked for it in complementary roles (`resumed` is the server's `tls_resumed`).
pub struct Pair {
    pub client: Client,
    pub server: Server,
    /// Data-connection handshakes that failed because the ends did not agree on TLS.
    pub failed_data_handshakes: usize,
    link: Link,
}

/// The data connection: who asked for it, whether it is up, and the chunks on their way; and the
/// simulated TLS handshakes under way.
#[derive(Default)]
struct Link {
    client_data: Option<client::RequestId>,
    server_data: Option<RequestId>,
    client_ready: bool,
    server_ready: bool,
    s2c: VecDeque<Bytes>,
    s2c_closed: bool,
    c2s: VecDeque<Bytes>,
    c2s_closed: bool,
    /// The client asked for a chunk.
    client_reading: bool,
    /// Reads the server asked for (its transfer window keeps several in flight).
    server_reads: usize,
    /// The `tls` each end's `Connect`/`Accept` asked for.
    client_tls: Option<TlsRole>,
    server_tls: Option<TlsRole>,
    /// The end asked for the data connection's handshake (`DataAction::Secure`) and waits.
    client_securing: bool,
    server_securing: bool,
    /// The data connection's handshake is done at this end: bytes may cross.
    client_data_secured: bool,
    server_data_secured: bool,
    /// The control connection's handshake each end asked for (`SecureControl`) and waits for.
    client_handshake: Option<client::RequestId>,
    server_handshake: Option<RequestId>,
    failed_data_handshakes: usize,
}

impl Pair {
    /// A client with `config` and a server with the default config over `store`. Nothing happens until
    /// [`Pair::run`] or [`Pair::settle`].
    pub fn new(config: client::Config, store: MemoryStore) -> Pair {
        Pair::with_server_config(config, Config::default(), store)
    }

    /// A client with `config` and a server with `server_config` over `store`.
    pub fn with_server_config(
        config: client::Config,
        server_config: Config,
        store: MemoryStore,
    ) -> Pair {
        Pair::build(config, server_config, store, false)
    }

    /// Both ends in implicit FTPS: the control connection is TLS from its first byte.
    pub fn implicit(config: client::Config, server_config: Config, store: MemoryStore) -> Pair {
        Pair::build(config, server_config, store, true)
    }

    fn build(
        config: client::Config,
        server_config: Config,
        store: MemoryStore,
        implicit: bool,
    ) -> Pair {
        let now = Instant::now();
        let server_info = ConnectionInfo {
            local: addr(PAIR_SERVER),
            peer: addr(PAIR_CLIENT),
        };
        let client_info = client::ConnectionInfo {
            local: addr(PAIR_CLIENT),
            peer: addr(PAIR_SERVER),
        };
        let (server_config, config) = (Arc::new(server_config), Arc::new(config));
        let (mut server, client) = if implicit {
            (
                Server::start_implicit(server_config, server_info, store, now),
                Client::start_implicit(config, client_info, now),
            )
        } else {
            (
                Server::start(server_config, server_info, store, now),
                Client::start(config, client_info, now),
            )
        };
        server.listen_addr = addr(PAIR_SERVER_DATA);
        Pair {
            client,
            server,
            failed_data_handshakes: 0,
            link: Link::default(),
        }
    }

    /// Runs a request to completion and returns its result.
    pub fn run(
        &mut self,
        request: client::Request,
    ) -> Result<client::Outcome, client::ClientError> {
        let id = self
            .client
            .session
            .request(self.client.now, request)
            .expect("the request is accepted");
        self.settle();
        let events = &mut self.client.events;
        let position = events
            .iter()
            .position(|e| matches!(e, client::Event::Completed { id: i, .. } if *i == id))
            .unwrap_or_else(|| panic!("the request did not complete; events {events:?}"));
        match events.remove(position) {
            client::Event::Completed { result, .. } => result,
            _ => unreachable!(),
        }
    }

    /// Moves bytes and answers actions until nothing happens any more.
    pub fn settle(&mut self) {
        while self.step() {}
        self.failed_data_handshakes = self.link.failed_data_handshakes;
    }

    fn step(&mut self) -> bool {
        let mut moved = false;
        let (link, server) = (&mut self.link, &mut self.server);
        self.client.drain_with(|client, action| {
            moved = true;
            link.client_action(client, server, action)
        });
        let (link, client) = (&mut self.link, &mut self.client);
        self.server.drain_with(|server, action| {
            moved = true;
            link.server_action(client, server, action)
        });
        moved | self.link.pump(&mut self.client, &mut self.server)
    }
}

impl Link {
    fn connect_if_both_ready(&mut self, client: &mut Client, server: &mut Server) {
        if !(self.client_ready && self.server_ready) {
            return;
        }
        self.s2c.clear();
        self.c2s.clear();
        self.s2c_closed = false;
        self.c2s_closed = false;
        self.client_securing = false;
        self.server_securing = false;
        self.client_data_secured = false;
        self.server_data_secured = false;
        if let (Some(c), Some(s)) = (self.client_data, self.server_data) {
            let peer = addr(PAIR_SERVER_DATA);
            client
                .session
                .handle_completion(client.now, c, DataCompletion::Connected { peer });
            let peer = addr(PAIR_CLIENT_DATA);
            let c = DataCompletion::Connected { peer };
            server.complete(server.now, s, c.into());
        }
    }

    /// A data connection's handshake, once an end asked for it: done when both ends asked in
    /// complementary roles; failed at once for an end whose peer asked for the same role, or speaks
    /// plaintext (`tls: None`), as a real handshake would fail.
    fn data_handshake(&mut self, client: &mut Client, server: &mut Server) {
        let (Some(c), Some(s)) = (self.client_data, self.server_data) else {
            return;
        };
        let failed = || DataCompletion::Failed(DataError::new(ErrorKind::InvalidData));
        let agree = matches!((self.client_tls, self.server_tls), (Some(a), Some(b)) if a != b);
        if !agree {
            if std::mem::take(&mut self.client_securing) {
                self.failed_data_handshakes += 1;
                client.session.handle_completion(client.now, c, failed());
            }
            if std::mem::take(&mut self.server_securing) {
                self.failed_data_handshakes += 1;
                server.complete(server.now, s, failed().into());
            }
            return;
        }
        if !(self.client_securing && self.server_securing) {
            return;
        }
        self.client_securing = false;
        self.server_securing = false;
        self.client_data_secured = true;
        self.server_data_secured = true;
        let resumed = server.tls_resumed;
        let secured = DataCompletion::Secured { resumed };
        client
            .session
            .handle_completion(client.now, c, secured.clone());
        server.complete(server.now, s, secured.into());
    }

    /// The control connection's handshake, once both ends asked for it.
    fn control_handshake(&mut self, client: &mut Client, server: &mut Server) {
        let (Some(c), Some(s)) = (self.client_handshake, self.server_handshake) else {
            return;
        };
        self.client_handshake = None;
        self.server_handshake = None;
        client.control_secured = true;
        server.control_secured = true;
        server.complete(server.now, s, Completion::ControlSecured);
        let secured = DataCompletion::Secured { resumed: false };
        client.session.handle_completion(client.now, c, secured);
    }

    /// Control bytes cross only while both ends agree on the control connection's TLS, and never
    /// into the middle of a handshake.
    fn check_control_crossing(&self, client: &Client, server: &Server, from: &str) {
        assert_eq!(
            client.control_secured, server.control_secured,
            "control bytes from the {from} cross with TLS on one end only (client {}, server {})",
            client.control_secured, server.control_secured
        );
        assert!(
            self.client_handshake.is_none() && self.server_handshake.is_none(),
            "control bytes from the {from} in the middle of a TLS handshake"
        );
    }

    /// Hands chunks to whoever asked for one, and lets the server read its file once the client took
    /// what was sent.
    fn pump(&mut self, client: &mut Client, server: &mut Server) -> bool {
        let (Some(c), Some(s)) = (self.client_data, self.server_data) else {
            return false;
        };
        let mut moved = false;
        if self.client_reading {
            if let Some(chunk) = self.s2c.pop_front() {
                self.client_reading = false;
                client.session.handle_data(client.now, c, chunk);
                moved = true;
            } else if self.s2c_closed {
                self.client_reading = false;
                client
                    .session
                    .handle_completion(client.now, c, DataCompletion::EndOfData);
                moved = true;
            }
        }
        if self.server_reads > 0 {
            if let Some(chunk) = self.c2s.pop_front() {
                self.server_reads -= 1;
                server.session.handle_data(server.now, s, chunk);
                moved = true;
            } else if self.c2s_closed {
                self.server_reads -= 1;
                let end = DataCompletion::EndOfData.into();
                server.complete(server.now, s, end);
                moved = true;
            }
        }
        // Back pressure: the server reads its file only when the client has taken what was sent.
        if self.s2c.is_empty() {
            let read = server
                .stalled
                .iter()
                .position(|a| matches!(a, Action::Local(LocalAction::Read { .. })));
            if let Some(read) = read {
                let action = server.stalled.remove(read);
                server.answer(action);
                moved = true;
            }
        }
        moved
    }

    fn client_action(
        &mut self,
        client: &mut Client,
        server: &mut Server,
        action: &client::Action,
    ) -> Verdict<DataCompletion> {
        match action {
            client::Action::SendControl(bytes) => {
                self.check_control_crossing(client, server, "client");
                server.session.handle_control_input(server.now, bytes);
                Verdict::Done
            }
            client::Action::SecureControl { id } => {
                self.client_handshake = Some(*id);
                self.control_handshake(client, server);
                Verdict::Done
            }
            client::Action::Data(DataAction::Connect { id, addr: to, tls }) => {
                assert_eq!(
                    *to,
                    addr(PAIR_SERVER_DATA),
                    "the 229/227 port at the control peer's IP"
                );
                self.client_data = Some(*id);
                self.client_tls = *tls;
                self.client_ready = true;
                self.connect_if_both_ready(client, server);
                Verdict::Done
            }
            client::Action::Data(DataAction::Listen { .. }) => {
                Verdict::Complete(DataCompletion::Listening(addr("0.0.0.0:40000")))
            }
            client::Action::Data(DataAction::Accept { id, listener, tls }) => {
                assert_eq!(
                    id, listener,
                    "the client accepts on its transfer's own listener"
                );
                self.client_data = Some(*id);
                self.client_tls = *tls;
                self.client_ready = true;
                self.connect_if_both_ready(client, server);
                Verdict::Done
            }
            client::Action::Data(DataAction::Secure { .. }) => {
                assert!(
                    self.client_tls.is_some(),
                    "Secure of a plaintext connection"
                );
                self.client_securing = true;
                self.data_handshake(client, server);
                Verdict::Done
            }
            client::Action::Data(DataAction::Send { data, .. }) => {
                self.check_protected(self.client_tls, self.client_data_secured, "client");
                self.c2s.push_back(data.clone());
                Verdict::Complete(DataCompletion::Written)
            }
            client::Action::Data(DataAction::Receive { .. }) => {
                self.check_protected(self.client_tls, self.client_data_secured, "client");
                self.client_reading = true;
                Verdict::Done
            }
            client::Action::Data(DataAction::Close { .. }) => {
                self.c2s_closed = true;
                self.client_ready = false;
                self.client_reading = false;
                self.client_securing = false;
                Verdict::Done
            }
            // The user's source and sink; the end of TLS on the control connection.
            client::Action::Local(_)
            | client::Action::ClearControl
            | client::Action::CloseControl => Verdict::Answer,
        }
    }

    /// Bytes move on a protected data connection only after its handshake.
    fn check_protected(&self, tls: Option<TlsRole>, secured: bool, end: &str) {
        assert!(
            tls.is_none() || secured,
            "the {end} moves bytes on a protected data connection before its TLS handshake"
        );
    }

    fn server_action(
        &mut self,
        client: &mut Client,
        server: &mut Server,
        action: &Action,
    ) -> Verdict<Completion> {
        match action {
            Action::SendControl(bytes) => {
                self.check_control_crossing(client, server, "server");
                client.session.handle_control_input(client.now, bytes);
                Verdict::Done
            }
            Action::SecureControl { id } => {
                self.server_handshake = Some(*id);
                self.control_handshake(client, server);
                Verdict::Done
            }
            Action::Data(
                DataAction::Accept { id, tls, .. } | DataAction::Connect { id, tls, .. },
            ) => {
                self.server_data = Some(*id);
                self.server_tls = *tls;
                self.server_ready = true;
                self.connect_if_both_ready(client, server);
                Verdict::Done
            }
            Action::Data(DataAction::Secure { id, .. }) => {
                assert_eq!(self.server_data, Some(*id), "Secure of another connection");
                assert!(
                    self.server_tls.is_some(),
                    "Secure of a plaintext connection"
                );
                self.server_securing = true;
                self.data_handshake(client, server);
                Verdict::Done
            }
            Action::Data(DataAction::Send { data, .. }) => {
                self.check_protected(self.server_tls, self.server_data_secured, "server");
                self.s2c.push_back(data.clone());
                Verdict::Complete(DataCompletion::Written.into())
            }
            Action::Data(DataAction::Receive { .. }) => {
                self.check_protected(self.server_tls, self.server_data_secured, "server");
                self.server_reads += 1;
                Verdict::Done
            }
            // The transfer's data connection; the passive listener's close (another id) changes nothing
            // here, there being one connection in this world.
            Action::Data(DataAction::Close { id, .. }) => {
                if self.server_data == Some(*id) {
                    self.s2c_closed = true;
                    self.server_ready = false;
                    self.server_reads = 0;
                    self.server_securing = false;
                }
                Verdict::Done
            }
            // Answered when the client has taken what was sent (`pump`).
            Action::Local(LocalAction::Read { .. }) => Verdict::Hold,
            // The file is closed: reads still waiting are dropped.
            Action::Local(LocalAction::Close { .. }) => {
                server
                    .stalled
                    .retain(|a| !matches!(a, Action::Local(LocalAction::Read { .. })));
                Verdict::Answer
            }
            Action::ReadEntries { .. } => panic!("this world lists a directory in one part"),
            // Logins, the listener, storage requests, the file's writes, the end of TLS on the control
            // connection, the end: the server's driver.
            Action::Authenticate { .. }
            | Action::Data(DataAction::Listen { .. })
            | Action::Storage { .. }
            | Action::Local(LocalAction::Write { .. })
            | Action::ClearControl
            | Action::CloseControl => Verdict::Answer,
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}
