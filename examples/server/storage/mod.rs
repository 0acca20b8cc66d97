//! The file system under `--root`, as the session's [`StorageRequest`]s see it.
//!
//! Every operation here is blocking code and runs on tokio's blocking pool, one short hop per request
//! (see [`crate::files`] for open files).
//!
//! # Confinement
//! The root is held as a directory handle ([`cap_std::fs::Dir`], opened once at start) and every path is
//! resolved beneath that handle, never as a host path string: see [`resolve`]. Operations on an entry
//! itself (delete, rename, make or remove a directory, set its time) act on the final name in a handle on
//! its parent (`unlinkat`, `renameat`, `mkdirat`, `utimensat(AT_SYMLINK_NOFOLLOW)`), so they never follow
//! a link in the last component; opens check what they opened with `fstat` ([`open`]). Symlinks that stay
//! inside the root work as links do; one leading out behaves like a missing file, whether its target
//! exists or not, and listings do not show where it points ([`listing`]). Nothing here checks a path and
//! then uses it again by name, so swapping directories or links in between cannot lead out.

mod listing;
mod open;
mod resolve;

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use ftp_proto::path::VirtualPath;
use ftp_proto::server::{Completion, StorageError, StorageRequest, WriteMode};
use ftp_proto::time::Timestamp;

use crate::locks::LockTable;
use crate::upload::{Upload, UploadPolicy};
pub use listing::DirCursor;
use listing::IdNames;
pub use open::{create_new, open_for_read, open_for_write};
pub use resolve::{entry, relative, storage_error};

/// The served directory tree, plus the uid/gid names `LIST` shows and the upload rules.
#[derive(Debug)]
pub struct Storage {
    /// The handle everything is resolved beneath.
    root: Dir,
    /// The root's host path, for messages only (never used to reach a file).
    root_path: PathBuf,
    names: IdNames,
    uploads: UploadPolicy,
    locks: LockTable,
}

impl Storage {
    /// Serves `root` (which must exist and be a directory).
    pub fn new(root: &Path, uploads: UploadPolicy) -> std::io::Result<Storage> {
        let root_path = std::fs::canonicalize(root)?;
        let root = Dir::open_ambient_dir(&root_path, ambient_authority())?;
        Ok(Storage {
            root,
            root_path,
            names: IdNames::load(),
            uploads,
            locks: LockTable::default(),
        })
    }

    /// The canonical root directory, for messages.
    pub fn root(&self) -> &Path {
        &self.root_path
    }

    /// Carries out a request that is not an open or a listing (those belong to [`crate::files`]).
    /// Blocking.
    pub fn execute(&self, request: StorageRequest) -> Completion {
        let done = |result: Result<(), StorageError>| result.map(|()| Completion::Done);
        let result = match request {
            StorageRequest::Stat(path) => self.stat(&path).map(Completion::Metadata),
            StorageRequest::Delete(path) => done(self.delete(&path)),
            StorageRequest::MakeDirectory(path) => done(self.make_directory(&path)),
            StorageRequest::RemoveDirectory(path) => done(self.remove_directory(&path)),
            StorageRequest::Rename { from, to } => done(self.rename(&from, &to)),
            StorageRequest::SetModified { path, time } => done(self.set_modified(&path, time)),
            other => Err(StorageError::Other(format!(
                "unsupported request {other:?}"
            ))),
        };
        result.unwrap_or_else(Completion::Failed)
    }

    /// Starts a listing (`LIST`, `NLST`, `MLSD`, `STAT path`): its first part, and the cursor for the
    /// rest if the directory is larger than one part.
    pub fn open_listing(
        &self,
        path: &VirtualPath,
        limit: usize,
    ) -> Result<(Completion, Option<DirCursor>), StorageError> {
        listing::list(&self.root, &self.names, path, limit)
    }

    /// The next part of a listing started with [`Storage::open_listing`], and whether more follow.
    pub fn next_listing_part(&self, cursor: &mut DirCursor) -> (Completion, bool) {
        cursor.next_part(&self.root, &self.names)
    }

    /// Opens a file for `RETR`, positioned at `offset`; returns it with its size.
    pub fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<(File, u64), StorageError> {
        let mut file = open_for_read(&self.root, &relative(path))?;
        let len = file.metadata().map_err(storage_error)?.len();
        if offset > len {
            return Err(StorageError::InvalidOffset);
        }
        file.seek(SeekFrom::Start(offset)).map_err(storage_error)?;
        Ok((file, len))
    }

    /// Opens an upload for `STOR`, `APPE`, `REST`+`STOR`, `STOU` or a no-overwrite store; returns it with
    /// the path actually written (see [`crate::upload`] for the policy).
    pub fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<(Upload, VirtualPath), StorageError> {
        Upload::open(&self.root, &self.locks, self.uploads, path, mode)
    }

    fn stat(&self, path: &VirtualPath) -> Result<ftp_proto::listing::Metadata, StorageError> {
        let metadata = self.root.metadata(relative(path)).map_err(storage_error)?;
        Ok(listing::to_metadata(&self.names, &metadata, None))
    }

    fn delete(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let (dir, name) = entry(&self.root, path)?;
        // unlinkat without AT_REMOVEDIR: a directory answers EISDIR (WrongKind); a link is removed itself.
        dir.remove_file(name).map_err(storage_error)
    }

    fn make_directory(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let (dir, name) = entry(&self.root, path)?;
        dir.create_dir(name).map_err(storage_error)
    }

    fn remove_directory(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let (dir, name) = entry(&self.root, path)?;
        dir.remove_dir(name).map_err(storage_error)
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        let (from_dir, from_name) = entry(&self.root, from)?;
        let (to_dir, to_name) = entry(&self.root, to)?;
        from_dir
            .rename(from_name, &to_dir, to_name)
            .map_err(storage_error)
    }

    /// `MFMT`: sets the time with `utimensat(AT_SYMLINK_NOFOLLOW)` on the name in a handle on its parent,
    /// never by opening the file (opening a FIFO would block). Only files and directories; a symlink
    /// inside the root has its target's time set, as `touch` does.
    fn set_modified(&self, path: &VirtualPath, time: Timestamp) -> Result<(), StorageError> {
        // A time this platform cannot represent is a bad argument, not a crash.
        let time = time.to_system_time().ok_or(StorageError::InvalidName)?;
        let rel = relative(path);
        // What the path leads to, following links beneath the root. A stat: nothing is opened for
        // reading, so a FIFO is safe to look at.
        let target = self.root.metadata(&rel).map_err(storage_error)?;
        if !(target.is_file() || target.is_dir()) {
            return Err(StorageError::WrongKind);
        }
        let (mut dir, mut name) = if path.is_root() {
            // `/`: the root directory itself, through its own handle.
            let root = self.root.try_clone().map_err(storage_error)?;
            (root, std::ffi::OsString::from("."))
        } else {
            entry(&self.root, path)?
        };
        if dir
            .symlink_metadata(&name)
            .map_err(storage_error)?
            .is_symlink()
        {
            // Rare: a link inside the root. Its target, resolved beneath the root, is a file or a
            // directory (checked above), so canonicalizing it never opens a FIFO; its time is set the
            // same way, on its own name in its own parent.
            let resolved = self.root.canonicalize(&rel).map_err(storage_error)?;
            let (Some(parent), Some(target)) = (resolved.parent(), resolved.file_name()) else {
                return Err(StorageError::PermissionDenied); // the root itself
            };
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            dir = self.root.open_dir(parent).map_err(storage_error)?;
            name = target.to_owned();
        }
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            last_modification: timespec(time).ok_or(StorageError::InvalidName)?,
        };
        rustix::fs::utimensat(&dir, &name, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| storage_error(e.into()))
    }
}

/// `time` as a `timespec` (seconds may be negative: before 1970; nanoseconds always in 0..10⁹).
fn timespec(time: std::time::SystemTime) -> Option<rustix::fs::Timespec> {
    let (tv_sec, tv_nsec) = match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => (i64::try_from(after.as_secs()).ok()?, after.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).ok()?;
            match before.subsec_nanos() {
                0 => (secs.checked_neg()?, 0),
                nanos => (secs.checked_neg()?.checked_sub(1)?, 1_000_000_000 - nanos),
            }
        }
    };
    Some(rustix::fs::Timespec {
        tv_sec,
        tv_nsec: tv_nsec.into(),
    })
}
