//! A simulated driver for the server session: an in-memory file system, a fake data connection and a
//! clock that only moves when a test says so. It answers every action synchronously, the way a real driver
//! would answer later, so tests read like transcripts: send a line, read the replies.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ftp_proto::data::{DataAction, DataCompletion, DataError, LocalAction};
use ftp_proto::hostport::NetworkProtocol;
use ftp_proto::listing::{DirEntry, EntryKind, Metadata};
use ftp_proto::path::VirtualPath;
use ftp_proto::server::{
    Access, Action, Completion, Config, ConnectionInfo, RequestId, Session, StorageError,
    StorageRequest, WriteMode,
};
use ftp_proto::time::Timestamp;

/// A node of the in-memory file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    File(Vec<u8>),
    Dir,
}

/// The session under test and everything around it.
pub struct Sim {
    pub session: Session,
    pub now: Instant,
    pub fs: BTreeMap<Vec<u8>, Node>,
    /// The modification time every entry reports.
    pub mtime: Timestamp,
    /// The client's control-connection address.
    pub client: SocketAddr,
    /// Where passive data connections come from (change it to test the foreign-address check).
    pub data_peer: SocketAddr,
    /// Bytes the client would have received on data connections.
    pub data_received: Vec<u8>,
    /// Chunks the client sends on the next upload's data connection.
    pub upload: VecDeque<Bytes>,
    /// Size of the chunks the fake file system reads.
    pub chunk_size: usize,
    /// While true, file and data-connection reads are held in `stalled` instead of answered.
    pub stall: bool,
    /// While true, `DataAction::Accept` is held in `stalled` (the client never connects).
    pub stall_accept: bool,
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
    /// The answer to `alice`'s good password (`LoggedIn(ReadWrite)` unless a test changes it).
    pub alice_login: Completion,
    /// Every storage request seen, in order.
    pub storage_requests: Vec<StorageRequest>,
    /// When set, a directory is listed in parts of this many entries (`EntriesPart` ... `Entries`).
    pub list_part_size: Option<usize>,
    /// The entries of a listing answered in parts that are not delivered yet.
    pub listing_rest: Option<VecDeque<DirEntry>>,
    /// A driver that lists more than the session's `limit` (the session must still keep its bound).
    pub list_ignores_limit: bool,
    /// How many `ReadEntries` were answered.
    pub entries_reads: usize,
    /// Every `LocalAction::Close` seen, with its `aborted` flag.
    pub file_closes: Vec<bool>,
    pub closed: bool,
    control: Vec<u8>,
    reading: Option<(Bytes, usize)>,
    writing: Option<(Vec<u8>, Vec<u8>)>,
}

pub const CLIENT: &str = "127.0.0.1:50000";
pub const LOCAL: &str = "127.0.0.1:21";

impl Sim {
    /// A session with the default config and a small tree: `/pub/readme.txt`, `/pub/data.bin`, `/upload/`.
    pub fn new() -> Sim {
        Sim::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Sim {
        let now = Instant::now();
        let client: SocketAddr = CLIENT.parse().unwrap();
        let info = ConnectionInfo {
            local: LOCAL.parse().unwrap(),
            peer: client,
        };
        let mut sim = Sim {
            session: Session::new(Arc::new(config), info, now),
            now,
            fs: BTreeMap::new(),
            mtime: Timestamp::parse_ftp(b"20240102130405").unwrap(),
            client,
            data_peer: "127.0.0.1:50001".parse().unwrap(),
            data_received: Vec::new(),
            upload: VecDeque::new(),
            chunk_size: 4,
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
            alice_login: Completion::LoggedIn(Access::ReadWrite),
            storage_requests: Vec::new(),
            list_part_size: None,
            listing_rest: None,
            list_ignores_limit: false,
            entries_reads: 0,
            file_closes: Vec::new(),
            closed: false,
            control: Vec::new(),
            reading: None,
            writing: None,
        };
        sim.fs.insert(b"/".to_vec(), Node::Dir);
        sim.fs.insert(b"/pub".to_vec(), Node::Dir);
        sim.fs.insert(b"/upload".to_vec(), Node::Dir);
        sim.fs.insert(
            b"/pub/readme.txt".to_vec(),
            Node::File(b"line one\nline two\n".to_vec()),
        );
        sim.fs
            .insert(b"/pub/data.bin".to_vec(), Node::File((0..=255u8).collect()));
        sim.run();
        sim
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

    /// The data-connection bytes since the last call.
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data_received)
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
        for action in std::mem::take(&mut self.stalled) {
            self.answer(action);
        }
        self.run();
    }

    /// Answers the actions stalled so far, keeping the stall flags (new reads stall again).
    pub fn release_stalled(&mut self) {
        for action in std::mem::take(&mut self.stalled) {
            self.answer(action);
        }
        self.run();
    }

    pub fn file(&self, path: &str) -> Option<&[u8]> {
        match self.fs.get(path.as_bytes()) {
            Some(Node::File(content)) => Some(content),
            _ => None,
        }
    }

    /// Drains and answers every action until the session has nothing more to say.
    pub fn run(&mut self) {
        while let Some(action) = self.session.poll_action() {
            let stalls = match action {
                Action::Local(LocalAction::Read { .. })
                | Action::Data(DataAction::Receive { .. })
                | Action::ReadEntries { .. } => self.stall,
                Action::Data(DataAction::Accept { .. }) => self.stall_accept,
                _ => false,
            };
            if stalls {
                self.stalled.push(action);
            } else {
                self.answer(action);
            }
        }
        while self.session.poll_event().is_some() {}
    }

    fn answer(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::SendControl(bytes) => self.control.extend_from_slice(&bytes),
            Action::Authenticate { id, user, password } => {
                let good = user.as_bytes() == b"alice"
                    && password.as_ref().map(|p| p.as_bytes()) == Some(&b"secret"[..]);
                let c = if good {
                    self.alice_login.clone()
                } else {
                    Completion::Denied
                };
                self.complete(now, id, c);
            }
            Action::Data(action) => self.data_action(action),
            Action::Storage { id, request } => {
                self.storage_requests.push(request.clone());
                let c = self.storage(request);
                self.complete(now, id, c);
            }
            Action::Local(action) => self.local_action(action),
            Action::ReadEntries { id } => {
                self.entries_reads += 1;
                let c = self.next_listing_part();
                self.complete(now, id, c);
            }
            Action::CloseControl => self.closed = true,
        }
    }

    /// Carries out one action a test took from the session itself (`None`: nothing).
    /// Passes an answer to the session; the simulator's answers always fit what was asked.
    fn complete(&mut self, now: Instant, id: RequestId, completion: Completion) {
        if let Err(mistake) = self.session.handle_completion(now, id, completion) {
            panic!("the simulator answered wrongly: {mistake}");
        }
    }

    pub fn answer_for_test(&mut self, action: Option<Action>) {
        if let Some(action) = action {
            self.answer(action);
        }
    }

    /// The data connections and passive listeners, kept by id as a real driver keeps its sockets.
    fn data_action(&mut self, action: DataAction<RequestId>) {
        let now = self.now;
        let failed = || DataCompletion::Failed(DataError::new(ErrorKind::ConnectionRefused));
        match action {
            DataAction::Listen { id, family } => {
                self.listen_families.push(family);
                assert!(self.listeners.insert(id), "listener {id:?} bound twice");
                let addr = "127.0.0.1:40000".parse().unwrap();
                self.complete(now, id, DataCompletion::Listening(addr).into());
            }
            DataAction::Accept { id, listener } => {
                // A listener closed in the meantime (the transfer timed out) has nothing to accept.
                let c = if self.fail_data || !self.listeners.contains(&listener) {
                    failed()
                } else {
                    self.connections.insert(id);
                    DataCompletion::Connected {
                        peer: self.data_peer,
                    }
                };
                self.complete(now, id, c.into());
            }
            DataAction::Connect { id, addr } => {
                self.connected_to = Some(addr);
                let c = if self.fail_data {
                    failed()
                } else {
                    self.connections.insert(id);
                    DataCompletion::Connected { peer: addr }
                };
                self.complete(now, id, c.into());
            }
            DataAction::Send { id, .. } if self.fail_sends => {
                let reset = DataCompletion::Failed(DataError::new(ErrorKind::ConnectionReset));
                self.complete(now, id, reset.into());
            }
            DataAction::Send { id, data } => {
                self.data_received.extend_from_slice(&data);
                self.complete(now, id, DataCompletion::Written.into());
            }
            DataAction::Receive { id } => match self.upload.pop_front() {
                Some(chunk) => self.session.handle_data(now, id, chunk),
                None => self.complete(now, id, DataCompletion::EndOfData.into()),
            },
            // A `Close` of an id with nothing open (a transfer aborted before it connected) is ignored.
            DataAction::Close { id, aborted } => {
                if self.listeners.remove(&id) {
                    self.listener_closes.push(aborted);
                } else if self.connections.remove(&id) {
                    self.data_closes.push(aborted);
                }
            }
        }
    }

    /// The transfer's open file.
    fn local_action(&mut self, action: LocalAction<RequestId>) {
        let now = self.now;
        match action {
            LocalAction::Read { id } => {
                let chunk = self.reading.as_mut().and_then(|(content, pos)| {
                    let end = (*pos + self.chunk_size).min(content.len());
                    let chunk = content.slice(*pos..end);
                    *pos = end;
                    (!chunk.is_empty()).then_some(chunk)
                });
                match chunk {
                    Some(chunk) => self.session.handle_data(now, id, chunk),
                    None => self.complete(now, id, DataCompletion::EndOfData.into()),
                }
            }
            LocalAction::Write { id, data } => {
                if let Some((_, content)) = self.writing.as_mut() {
                    content.extend_from_slice(&data);
                }
                self.complete(now, id, DataCompletion::Written.into());
            }
            LocalAction::Close { id, aborted } => {
                self.file_closes.push(aborted);
                self.reading = None;
                self.listing_rest = None;
                // A partial upload stays on disk, as the example server leaves it.
                if let Some((path, content)) = self.writing.take() {
                    self.fs.insert(path, Node::File(content));
                    if !aborted && self.hold_upload_close {
                        self.held_upload_close = Some(id);
                    } else if !aborted {
                        self.complete(now, id, DataCompletion::Written.into());
                    }
                }
            }
        }
    }

    fn metadata(&self, node: &Node) -> Metadata {
        let mut m = match node {
            Node::File(content) => Metadata::file(content.len() as u64),
            Node::Dir => Metadata::directory(),
        };
        m.modified = Some(self.mtime);
        m
    }

    fn storage(&mut self, request: StorageRequest) -> Completion {
        use StorageRequest::*;
        let result = match request {
            Stat(path) => self
                .node(&path)
                .map(|n| Completion::Metadata(self.metadata(n))),
            List { path, limit } => self.list(&path, limit),
            OpenRead { path, offset } => match self.node(&path) {
                Ok(Node::File(content)) => {
                    let content = Bytes::from(content.clone());
                    let size = content.len() as u64;
                    let start = (offset as usize).min(content.len());
                    self.reading = Some((content, start));
                    Ok(Completion::FileOpened {
                        size: Some(size),
                        path,
                    })
                }
                Ok(Node::Dir) => Err(StorageError::WrongKind),
                Err(e) => Err(e),
            },
            OpenWrite { path, mode } => self.open_write(path, mode),
            Delete(path) => match self.node(&path) {
                Ok(Node::File(_)) => {
                    self.fs.remove(path.as_bytes());
                    Ok(Completion::Done)
                }
                Ok(Node::Dir) => Err(StorageError::WrongKind),
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
                Ok(Node::Dir) if self.children(&path).is_empty() => {
                    self.fs.remove(path.as_bytes());
                    Ok(Completion::Done)
                }
                Ok(Node::Dir) => Err(StorageError::NotEmpty),
                Ok(Node::File(_)) => Err(StorageError::WrongKind),
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

    fn node(&self, path: &VirtualPath) -> Result<&Node, StorageError> {
        self.fs.get(path.as_bytes()).ok_or(StorageError::NotFound)
    }

    fn children(&self, dir: &VirtualPath) -> Vec<(Vec<u8>, Node)> {
        self.fs
            .iter()
            .filter_map(|(path, node)| {
                let path = VirtualPath::root().resolve(path, Default::default()).ok()?;
                (path.parent().as_ref() == Some(dir))
                    .then(|| (path.file_name().unwrap_or_default().to_vec(), node.clone()))
            })
            .collect()
    }

    /// The next part of a listing answered in parts; the last one is `Entries`.
    fn next_listing_part(&mut self) -> Completion {
        let (Some(rest), Some(size)) = (self.listing_rest.as_mut(), self.list_part_size) else {
            return Completion::Failed(StorageError::Other("no listing in parts".into()));
        };
        let part: Vec<DirEntry> = rest.drain(..size.min(rest.len())).collect();
        let now = Timestamp::parse_ftp(b"20240301000000").unwrap();
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
        let directory = matches!(self.node(path)?, Node::Dir);
        let entries = match self.node(path)? {
            Node::Dir => self
                .children(path)
                .into_iter()
                .take(limit)
                .map(|(name, node)| DirEntry::new(name, self.metadata(&node)))
                .collect(),
            file => vec![DirEntry::new(
                path.file_name().unwrap_or_default().to_vec(),
                self.metadata(file),
            )],
        };
        if directory && self.list_part_size.is_some() {
            self.listing_rest = Some(entries.into());
            return Ok(self.next_listing_part());
        }
        let now = Timestamp::parse_ftp(b"20240301000000").unwrap();
        Ok(Completion::Entries {
            entries,
            directory,
            now,
        })
    }

    fn open_write(
        &mut self,
        path: VirtualPath,
        mode: WriteMode,
    ) -> Result<Completion, StorageError> {
        let parent_is_dir = path
            .parent()
            .is_some_and(|p| matches!(self.fs.get(p.as_bytes()), Some(Node::Dir)));
        if !parent_is_dir {
            return Err(StorageError::NotFound);
        }
        let existing = match self.fs.get(path.as_bytes()) {
            Some(Node::Dir) => return Err(StorageError::WrongKind),
            Some(Node::File(content)) => Some(content.clone()),
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
                        .unwrap();
                }
                (candidate, Vec::new())
            }
            other => panic!("unexpected write mode {other:?}"),
        };
        self.writing = Some((path.as_bytes().to_vec(), content));
        Ok(Completion::FileOpened { size: None, path })
    }
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

/// Whether `kind` is a directory, for assertions.
pub fn is_dir(kind: EntryKind) -> bool {
    kind == EntryKind::Directory
}
