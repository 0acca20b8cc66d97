//! The file system under `--root`, as the session's [`StorageRequest`]s see it.
//!
//! Every operation here is blocking `std::fs` code and runs on tokio's blocking pool
//! ([`tokio::task::spawn_blocking`]). That is what `tokio::fs` does internally, one thread hop per call;
//! doing a whole operation (resolve, check, act) in one hop is cheaper and keeps the checks next to the act.
//!
//! # Confinement
//! A [`VirtualPath`] never contains `..`, so mapping its components under the root cannot climb out by
//! name. Symlinks can: every path is resolved with `canonicalize` and refused unless the result is still
//! under the (canonical) root. Operations on an entry itself (delete, rename, make or remove a directory)
//! resolve only the parent and act on the final name without following it, so deleting a symlink removes
//! the link, never its target. Listings show every link, even one leading outside; opening such a link is
//! refused. (A link swapped in between the check and the open can still escape: closing that race needs
//! `openat2(RESOLVE_BENEATH)`, which std does not offer.)

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ftp_proto::listing::{DirEntry, EntryKind, Metadata};
use ftp_proto::path::VirtualPath;
use ftp_proto::server::{Completion, StorageError, StorageRequest, WriteMode};
use ftp_proto::time::Timestamp;

/// How many `name.N` candidates `STOU` tries before giving up.
const MAX_UNIQUE_ATTEMPTS: u32 = 1000;

/// The served directory tree, plus the uid/gid names `LIST` shows.
#[derive(Debug)]
pub struct Storage {
    /// The canonical root: every path we touch must stay under it.
    root: PathBuf,
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Storage {
    /// Serves `root` (which must exist and be a directory).
    pub fn new(root: &Path) -> io::Result<Storage> {
        let root = fs::canonicalize(root)?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Storage {
            root,
            users: read_id_names(Path::new("/etc/passwd")),
            groups: read_id_names(Path::new("/etc/group")),
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Carries out a request that is not an open (those belong to [`crate::files`]). Blocking.
    pub fn execute(&self, request: StorageRequest) -> Completion {
        let result = match request {
            StorageRequest::Stat(path) => self.stat(&path).map(Completion::Metadata),
            StorageRequest::List { path, limit } => self.list(&path, limit),
            StorageRequest::Delete(path) => self.delete(&path).map(|()| Completion::Done),
            StorageRequest::MakeDirectory(path) => self
                .entry(&path)
                .and_then(|p| fs::create_dir(p).map_err(storage_error))
                .map(|()| Completion::Done),
            StorageRequest::RemoveDirectory(path) => self
                .entry(&path)
                .and_then(|p| fs::remove_dir(p).map_err(storage_error))
                .map(|()| Completion::Done),
            StorageRequest::Rename { from, to } => {
                self.rename(&from, &to).map(|()| Completion::Done)
            }
            StorageRequest::SetModified { path, time } => {
                self.set_modified(&path, time).map(|()| Completion::Done)
            }
            other => Err(StorageError::Other(format!(
                "unsupported request {other:?}"
            ))),
        };
        result.unwrap_or_else(Completion::Failed)
    }

    /// Opens a file for `RETR`, positioned at `offset`; returns it with its size.
    pub fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<(File, u64), StorageError> {
        let host = self.follow(path)?;
        // Checked before opening too: opening a FIFO would block until some writer showed up.
        if !fs::metadata(&host).map_err(storage_error)?.is_file() {
            return Err(StorageError::WrongKind);
        }
        let mut file = File::open(host).map_err(storage_error)?;
        let metadata = file.metadata().map_err(storage_error)?;
        if !metadata.is_file() {
            return Err(StorageError::WrongKind);
        }
        if offset > metadata.len() {
            return Err(StorageError::InvalidOffset);
        }
        file.seek(SeekFrom::Start(offset)).map_err(storage_error)?;
        Ok((file, metadata.len()))
    }

    /// Opens a file for `STOR`, `APPE`, `REST`+`STOR` or `STOU`; returns it with the path actually opened.
    pub fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<(File, VirtualPath), StorageError> {
        if let WriteMode::Unique = mode {
            return self.create_unique(path);
        }
        let host = self.writable_target(path)?;
        let mut options = OpenOptions::new();
        options.write(true);
        match mode {
            WriteMode::Truncate => options.create(true).truncate(true),
            WriteMode::Append => options.create(true).append(true),
            // Resuming needs the partial file: a missing one is an error, not a fresh start.
            WriteMode::Resume(_) => &mut options,
            _ => {
                return Err(StorageError::Other(format!(
                    "unsupported write mode {mode:?}"
                )));
            }
        };
        let mut file = options.open(host).map_err(storage_error)?;
        if let WriteMode::Resume(offset) = mode {
            let len = file.metadata().map_err(storage_error)?.len();
            if len < offset {
                return Err(StorageError::InvalidOffset);
            }
            file.set_len(offset).map_err(storage_error)?;
            file.seek(SeekFrom::Start(offset)).map_err(storage_error)?;
        }
        Ok((file, path.clone()))
    }

    // ---- path resolution ----

    /// The host path of `path`, component by component under the root, nothing resolved yet.
    fn host_path(&self, path: &VirtualPath) -> PathBuf {
        let mut host = self.root.clone();
        for component in path.components() {
            host.push(OsStr::from_bytes(component));
        }
        host
    }

    /// `path` with every symlink resolved; refused if that leads outside the root.
    fn follow(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
        let resolved = fs::canonicalize(self.host_path(path)).map_err(storage_error)?;
        self.confine(resolved)
    }

    fn confine(&self, resolved: PathBuf) -> Result<PathBuf, StorageError> {
        if resolved.starts_with(&self.root) {
            Ok(resolved)
        } else {
            Err(StorageError::PermissionDenied)
        }
    }

    /// The entry `path` names: its parent resolved (and confined), its last component not followed.
    /// The root itself is no entry: it cannot be deleted, renamed or created.
    fn entry(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(StorageError::PermissionDenied);
        };
        Ok(self.follow(&parent)?.join(OsStr::from_bytes(name)))
    }

    /// Where an upload to `path` may write: the entry, or the file an existing symlink points to if that
    /// stays under the root (a dangling link is refused: creating its target could escape the root).
    fn writable_target(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
        let entry = self.entry(path)?;
        let target = match fs::symlink_metadata(&entry) {
            Err(_) => return Ok(entry), // a new file
            Ok(m) if m.file_type().is_symlink() => {
                let target =
                    fs::canonicalize(&entry).map_err(|_| StorageError::PermissionDenied)?;
                self.confine(target)?
            }
            Ok(_) => entry,
        };
        // Only regular files are overwritten (opening a FIFO for writing would block, too).
        match fs::metadata(&target) {
            Ok(m) if m.is_file() => Ok(target),
            Ok(_) => Err(StorageError::WrongKind),
            Err(e) => Err(storage_error(e)),
        }
    }

    // ---- operations ----

    fn stat(&self, path: &VirtualPath) -> Result<Metadata, StorageError> {
        let host = self.follow(path)?;
        let metadata = fs::metadata(host).map_err(storage_error)?;
        Ok(self.metadata(&metadata, None))
    }

    /// A directory's entries (at most `limit`), or the single entry of a file.
    fn list(&self, path: &VirtualPath, limit: usize) -> Result<Completion, StorageError> {
        let host = self.follow(path)?;
        let metadata = fs::metadata(&host).map_err(storage_error)?;
        let entries = if metadata.is_dir() {
            self.read_directory(&host, limit)?
        } else {
            let name = path.file_name().unwrap_or(b"/").to_vec();
            vec![DirEntry::new(name, self.metadata(&metadata, None))]
        };
        let now = Timestamp::from_system_time(SystemTime::now()).unwrap_or(Timestamp::UNIX_EPOCH);
        let directory = metadata.is_dir();
        Ok(Completion::Entries {
            entries,
            directory,
            now,
        })
    }

    fn read_directory(&self, dir: &Path, limit: usize) -> Result<Vec<DirEntry>, StorageError> {
        let mut entries = Vec::new();
        for item in fs::read_dir(dir).map_err(storage_error)?.take(limit) {
            // An entry that vanished or cannot be read is left out rather than failing the listing.
            let Ok(item) = item else { continue };
            let Ok(metadata) = fs::symlink_metadata(item.path()) else {
                continue;
            };
            let target = metadata
                .file_type()
                .is_symlink()
                .then(|| fs::read_link(item.path()).ok())
                .flatten()
                .map(|t| t.as_os_str().as_bytes().to_vec());
            let name = item.file_name().as_bytes().to_vec();
            entries.push(DirEntry::new(name, self.metadata(&metadata, target)));
        }
        Ok(entries)
    }

    fn delete(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let entry = self.entry(path)?;
        let metadata = fs::symlink_metadata(&entry).map_err(storage_error)?;
        if metadata.is_dir() {
            return Err(StorageError::WrongKind);
        }
        fs::remove_file(entry).map_err(storage_error)
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        fs::rename(self.entry(from)?, self.entry(to)?).map_err(storage_error)
    }

    fn set_modified(&self, path: &VirtualPath, time: Timestamp) -> Result<(), StorageError> {
        // A time this platform cannot represent is a bad argument, not a crash.
        let time = time.to_system_time().ok_or(StorageError::InvalidName)?;
        let file = File::open(self.follow(path)?).map_err(storage_error)?;
        file.set_modified(time).map_err(storage_error)
    }

    /// `STOU`: `name`, then `name.1`, `name.2`, ..., created with `create_new` so that two uploads can never
    /// pick the same name.
    fn create_unique(&self, path: &VirtualPath) -> Result<(File, VirtualPath), StorageError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(StorageError::InvalidName);
        };
        let dir = self.follow(&parent)?;
        for attempt in 0..MAX_UNIQUE_ATTEMPTS {
            let mut candidate = name.to_vec();
            if attempt > 0 {
                candidate.extend_from_slice(format!(".{attempt}").as_bytes());
            }
            let host = dir.join(OsStr::from_bytes(&candidate));
            match OpenOptions::new().write(true).create_new(true).open(host) {
                Ok(file) => {
                    let chosen = parent
                        .join(&candidate)
                        .map_err(|_| StorageError::InvalidName)?;
                    return Ok((file, chosen));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(storage_error(e)),
            }
        }
        Err(StorageError::AlreadyExists)
    }

    /// What `LIST` and `MLSD` show for one entry.
    fn metadata(&self, metadata: &fs::Metadata, link_target: Option<Vec<u8>>) -> Metadata {
        let mut m = match link_target {
            Some(target) => Metadata::symlink(target),
            None => Metadata::file(metadata.len()),
        };
        m.kind = entry_kind(metadata.file_type());
        m.size = metadata.len();
        m.modified = metadata
            .modified()
            .ok()
            .and_then(Timestamp::from_system_time);
        m.mode = metadata.mode() & 0o7777;
        m.nlink = metadata.nlink();
        m.owner = id_name(&self.users, metadata.uid());
        m.group = id_name(&self.groups, metadata.gid());
        m.unique = Some(format!("{:x}g{:x}", metadata.dev(), metadata.ino()));
        m
    }
}

fn entry_kind(file_type: fs::FileType) -> EntryKind {
    if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        // Devices, FIFOs and sockets: listed, never opened as files.
        EntryKind::Other
    }
}

fn id_name(names: &HashMap<u32, String>, id: u32) -> String {
    names.get(&id).cloned().unwrap_or_else(|| id.to_string())
}

/// Reads `name:x:id:...` lines (`/etc/passwd`, `/etc/group`) into an id → name map; empty if unreadable.
fn read_id_names(path: &Path) -> HashMap<u32, String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse().ok()?;
            Some((id, name.to_owned()))
        })
        .collect()
}

/// Maps an I/O error to what the session can tell the client.
pub fn storage_error(error: io::Error) -> StorageError {
    use io::ErrorKind::*;
    match error.kind() {
        NotFound => StorageError::NotFound,
        PermissionDenied | ReadOnlyFilesystem => StorageError::PermissionDenied,
        AlreadyExists => StorageError::AlreadyExists,
        DirectoryNotEmpty => StorageError::NotEmpty,
        StorageFull | QuotaExceeded | FileTooLarge => StorageError::NoSpace,
        IsADirectory | NotADirectory => StorageError::WrongKind,
        InvalidInput => StorageError::InvalidName,
        _ => StorageError::Other(error.to_string()),
    }
}
