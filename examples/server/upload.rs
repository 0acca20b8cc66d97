//! Upload policy: how `STOR`, `REST`+`STOR`, `APPE` and `STOU` write, and what a failed or aborted upload
//! leaves behind.
//!
//! **Atomic uploads (the default).** `STOR name` writes to a hidden temporary file in the same directory,
//! `.in.NAME.RANDOM` (created with `O_CREAT|O_EXCL|O_NOFOLLOW` beneath the root), and only when the whole
//! file has arrived is it `fsync`ed and renamed over `name`, before the client gets 226. Until then, readers
//! see the old file, whole. `REST n` + `STOR name` first copies the first `n` bytes of the existing file
//! into the temporary file (`copy_file_range` where the kernel has it), then appends and renames the same
//! way. A no-overwrite store (`WriteMode::CreateNew`, for upload-only users) publishes with
//! `renameat2(RENAME_NOREPLACE)` (or `link`+`unlink` where the file system lacks it) and fails with 550 if
//! the name was taken meanwhile; the name is also checked at open. An upload over a symlink replaces the
//! link, not the file it points to. `STOU` creates its unique name with `O_EXCL` and writes it directly
//! (nobody else can be writing a name that did not exist). `APPE` appends in place, under the upload lock:
//! appending never destroys old bytes.
//!
//! **When an upload does not finish.**
//! - Aborted (`ABOR`, the data or control connection lost, a timeout) to a name that did *not* exist
//!   before: what arrived is published under the name, so that `SIZE` + `REST` + `STOR` can resume it,
//!   as clients expect; with `--delete-failed-uploads` it is deleted instead.
//! - Aborted when the name held a file: the old file stays as it was, and the partial upload is deleted.
//! - Aborted `APPE`: the bytes appended so far stay (resume with another `APPE`). Aborted `STOU`: like a
//!   new name. Aborted no-overwrite store: deleted (such users cannot resume by overwriting anyway).
//! - Failed on the server's side (`--max-file-size` exceeded, the `--min-free-space` floor reached, a
//!   write error): always deleted, never published; an `APPE` is cut back to its old length.
//!
//! **In-place uploads (`--in-place-uploads`).** The old behaviour: `STOR` truncates the existing file when
//! the transfer starts and writes into it, so an abort leaves a partial file under the name. Still
//! confined, still locked, still limited.
//!
//! **Locks and limits.** A second upload to a name being uploaded gets 450 (see [`crate::locks`]). An
//! upload growing past `--max-file-size`, or one that would leave less than `--min-free-space` free on the
//! file system (checked at open and before every chunk with `fstatvfs`), fails with 552.

use cap_std::fs::MetadataExt as _;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use cap_std::fs::Dir;
use ftp_proto::path::VirtualPath;
use ftp_proto::server::{StorageError, WriteMode};

use crate::locks::{LockTable, UploadLock};
use crate::storage::{create_new, entry, open_for_read, open_for_write, relative, storage_error};

/// How many `name.N` candidates `STOU` tries before giving up.
const MAX_UNIQUE_ATTEMPTS: u32 = 1000;
/// How many random temporary names to try before giving up (a clash is already unlikely).
const MAX_TEMP_ATTEMPTS: u32 = 16;
/// Longest file name most Linux file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// The upload rules, from the command line.
#[derive(Clone, Copy, Debug)]
pub struct UploadPolicy {
    /// Write to a temporary name and rename on success (`false`: `--in-place-uploads`).
    pub atomic: bool,
    /// Delete, rather than publish, an aborted upload to a new name (`--delete-failed-uploads`).
    pub delete_failed: bool,
    /// The largest file an upload may make (`--max-file-size`).
    pub max_file_size: Option<u64>,
    /// Free bytes an upload must leave on the file system (`--min-free-space`).
    pub min_free_space: u64,
}

/// What happens to the written file at the end.
#[derive(Debug)]
enum Publish {
    /// A temporary file, renamed over the name on success. `existed`: the name held a file at open.
    Replace { temp: OsString, existed: bool },
    /// A temporary file, renamed to the name on success only if the name is still free.
    NoReplace { temp: OsString },
    /// Written under the name itself. `created`: this upload made the file. `restore_len`: the length to
    /// cut back to if the upload fails (`APPE`).
    InPlace {
        created: bool,
        restore_len: Option<u64>,
    },
}

/// An upload in progress: the open file, where it goes, and the lock on its name.
#[derive(Debug)]
pub struct Upload {
    file: File,
    dir: Dir,
    name: OsString,
    publish: Publish,
    /// The file's length so far (a resumed or appended upload starts at the old length).
    len: u64,
    policy: UploadPolicy,
    /// A write failed on our side: the partial file is never published.
    failed: bool,
    /// Finished or cleaned up already: nothing for `Drop` to do.
    settled: bool,
    _lock: Option<UploadLock>,
}

impl Upload {
    /// Opens an upload to `path` beneath `root`; returns it with the path actually written (`STOU`).
    pub fn open(
        root: &Dir,
        locks: &LockTable,
        policy: UploadPolicy,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<(Upload, VirtualPath), StorageError> {
        let (dir, name) = entry(root, path)?;
        check_free_space(&dir, policy.min_free_space, 0)?;
        if let WriteMode::Unique = mode {
            return create_unique(dir, name, policy, path);
        }
        let parent = dir.dir_metadata().map_err(storage_error)?;
        let lock = locks.lock(parent.dev(), parent.ino(), name.clone())?;
        let target = Target {
            root,
            dir,
            path,
            name,
        };
        let existing = target.existing_file()?;
        let (file, publish, len) = match mode {
            WriteMode::CreateNew if existing.is_some() => return Err(StorageError::AlreadyExists),
            WriteMode::Append => open_append(&target, existing)?,
            WriteMode::Resume(offset) => open_resume(&target, existing, offset, policy.atomic)?,
            WriteMode::Truncate | WriteMode::CreateNew => {
                open_new_content(&target, mode, existing, policy.atomic)?
            }
            other => {
                return Err(StorageError::Other(format!(
                    "unsupported write mode {other:?}"
                )));
            }
        };
        let Target { dir, name, .. } = target;
        let upload = Upload::new(file, dir, name, publish, len, policy, Some(lock));
        Ok((upload, path.clone()))
    }

    fn new(
        file: File,
        dir: Dir,
        name: OsString,
        publish: Publish,
        len: u64,
        policy: UploadPolicy,
        lock: Option<UploadLock>,
    ) -> Upload {
        Upload {
            file,
            dir,
            name,
            publish,
            len,
            policy,
            failed: false,
            settled: false,
            _lock: lock,
        }
    }

    /// Appends a chunk, within the size limit and the free-space floor. After a failure the upload is
    /// never published.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        let result = self
            .check_limits(data.len() as u64)
            .and_then(|()| self.file.write_all(data).map_err(storage_error));
        match result {
            Ok(()) => self.len += data.len() as u64,
            Err(_) => self.failed = true,
        }
        result
    }

    fn check_limits(&self, more: u64) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Other("upload already failed".into()));
        }
        let new_len = self.len.saturating_add(more);
        if self.policy.max_file_size.is_some_and(|max| new_len > max) {
            return Err(StorageError::NoSpace);
        }
        check_free_space(&self.file, self.policy.min_free_space, more)
    }

    /// The whole file arrived: makes it durable and puts it under its name, before the client gets 226
    /// (the client may delete its copy then).
    pub fn finish(mut self) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Other("upload failed".into()));
        }
        let result = self
            .file
            .sync_data()
            .map_err(storage_error)
            .and_then(|()| self.publish_final());
        if result.is_err() {
            self.failed = true;
            self.settle();
        }
        self.settled = true;
        result
    }

    /// The upload was cut short (or its session is gone): keeps or deletes what arrived, per the policy.
    pub fn abort(mut self) {
        self.settle();
    }

    fn publish_final(&mut self) -> Result<(), StorageError> {
        let result = match &self.publish {
            Publish::Replace { temp, .. } => self
                .dir
                .rename(temp, &self.dir, &self.name)
                .map_err(storage_error),
            Publish::NoReplace { temp } => rename_no_replace(&self.dir, temp, &self.name),
            Publish::InPlace { .. } => Ok(()),
        };
        if result.is_ok() {
            sync_directory(&self.dir);
        }
        result
    }

    /// Cleans up after an upload that did not finish.
    fn settle(&mut self) {
        if self.settled {
            return;
        }
        self.settled = true;
        let keep_new = !self.failed && !self.policy.delete_failed;
        match &self.publish {
            Publish::Replace { temp, existed } => {
                let published =
                    keep_new && !*existed && rename_no_replace(&self.dir, temp, &self.name).is_ok();
                if !published {
                    let _ = self.dir.remove_file(temp);
                }
            }
            Publish::NoReplace { temp } => {
                let _ = self.dir.remove_file(temp);
            }
            Publish::InPlace {
                created,
                restore_len,
            } => {
                if self.failed {
                    if let Some(len) = restore_len {
                        let _ = self.file.set_len(*len);
                    }
                }
                if *created && !keep_new {
                    remove_if_same(&self.dir, &self.name, &self.file);
                }
            }
        }
    }
}

impl Drop for Upload {
    /// An upload dropped without `finish` or `abort` (a timed-out operation, a session gone) counts as
    /// aborted.
    fn drop(&mut self) {
        self.settle();
    }
}

/// Where an upload goes: the root (to reach an existing file, following links beneath it), a handle on
/// the parent directory, and the final name there (never followed).
struct Target<'a> {
    root: &'a Dir,
    dir: Dir,
    path: &'a VirtualPath,
    name: OsString,
}

impl Target<'_> {
    /// The path from the root, for opening the existing file.
    fn path_from_root(&self) -> std::path::PathBuf {
        relative(self.path)
    }

    /// The length of the regular file the target names, `None` if there is none. A name that is
    /// something else (a directory, a FIFO) cannot be uploaded to; neither can a symlink that does not
    /// lead to a regular file beneath the root (refused the same way whether its target exists outside
    /// or not).
    fn existing_file(&self) -> Result<Option<u64>, StorageError> {
        match self.root.metadata(self.path_from_root()) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Err(StorageError::WrongKind),
            Err(e) => match self.dir.symlink_metadata(&self.name) {
                Ok(_) => Err(StorageError::PermissionDenied),
                Err(_) if storage_error(e) == StorageError::NotFound => Ok(None),
                Err(e) => Err(storage_error(e)),
            },
        }
    }
}

/// `STOR` (or a no-overwrite store): a temporary file, or in place (truncating) with `--in-place-uploads`.
fn open_new_content(
    target: &Target,
    mode: WriteMode,
    existing: Option<u64>,
    atomic: bool,
) -> Result<(File, Publish, u64), StorageError> {
    if atomic {
        let (file, temp) = create_temp(&target.dir, &target.name)?;
        let publish = match mode {
            WriteMode::CreateNew => Publish::NoReplace { temp },
            _ => Publish::Replace {
                temp,
                existed: existing.is_some(),
            },
        };
        return Ok((file, publish, 0));
    }
    let created = existing.is_none();
    let file = match existing {
        None => create_new(&target.dir, &target.name)?,
        Some(_) => {
            // Truncated only after `fstat` showed a regular file.
            let file = open_for_write(target.root, &target.path_from_root(), false)?;
            file.set_len(0).map_err(storage_error)?;
            file
        }
    };
    let publish = Publish::InPlace {
        created,
        restore_len: None,
    };
    Ok((file, publish, 0))
}

/// `REST offset` + `STOR`: the first `offset` bytes of the existing file, then what arrives.
fn open_resume(
    target: &Target,
    existing: Option<u64>,
    offset: u64,
    atomic: bool,
) -> Result<(File, Publish, u64), StorageError> {
    let Some(old_len) = existing else {
        return Err(StorageError::NotFound); // resuming needs the partial file
    };
    if offset > old_len {
        return Err(StorageError::InvalidOffset);
    }
    if !atomic {
        let mut file = open_for_write(target.root, &target.path_from_root(), false)?;
        file.set_len(offset).map_err(storage_error)?;
        file.seek(SeekFrom::Start(offset)).map_err(storage_error)?;
        let publish = Publish::InPlace {
            created: false,
            restore_len: None,
        };
        return Ok((file, publish, offset));
    }
    let old = open_for_read(target.root, &target.path_from_root())?;
    let (mut file, temp) = create_temp(&target.dir, &target.name)?;
    // std's file-to-file copy uses copy_file_range (a reflink or an in-kernel copy).
    let copied = std::io::copy(&mut old.take(offset), &mut file);
    match copied {
        Ok(n) if n == offset => Ok((
            file,
            Publish::Replace {
                temp,
                existed: true,
            },
            offset,
        )),
        other => {
            let _ = target.dir.remove_file(&temp);
            Err(match other {
                Err(e) => storage_error(e),
                Ok(_) => StorageError::InvalidOffset, // the file shrank meanwhile
            })
        }
    }
}

/// `APPE`: in place, under the lock; a new file if there was none.
fn open_append(
    target: &Target,
    existing: Option<u64>,
) -> Result<(File, Publish, u64), StorageError> {
    match existing {
        Some(len) => {
            let file = open_for_write(target.root, &target.path_from_root(), true)?;
            let restore_len = Some(len);
            Ok((
                file,
                Publish::InPlace {
                    created: false,
                    restore_len,
                },
                len,
            ))
        }
        None => {
            let file = create_new(&target.dir, &target.name)?;
            let publish = Publish::InPlace {
                created: true,
                restore_len: None,
            };
            Ok((file, publish, 0))
        }
    }
}

/// `STOU`: `name`, then `name.1`, `name.2`, ..., created with `O_EXCL` so that two uploads can never pick
/// the same name.
fn create_unique(
    dir: Dir,
    name: OsString,
    policy: UploadPolicy,
    path: &VirtualPath,
) -> Result<(Upload, VirtualPath), StorageError> {
    let parent = path.parent().ok_or(StorageError::InvalidName)?;
    for attempt in 0..MAX_UNIQUE_ATTEMPTS {
        let mut candidate = name.as_bytes().to_vec();
        if attempt > 0 {
            candidate.extend_from_slice(format!(".{attempt}").as_bytes());
        }
        let candidate = OsStr::from_bytes(&candidate).to_owned();
        match create_new(&dir, &candidate) {
            Ok(file) => {
                let chosen = parent
                    .join(candidate.as_bytes())
                    .map_err(|_| StorageError::InvalidName)?;
                let publish = Publish::InPlace {
                    created: true,
                    restore_len: None,
                };
                let upload = Upload::new(file, dir, candidate, publish, 0, policy, None);
                return Ok((upload, chosen));
            }
            Err(StorageError::AlreadyExists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::AlreadyExists)
}

/// Creates `.in.NAME.RANDOM` next to `name` (`NAME` shortened if the whole would be too long).
fn create_temp(dir: &Dir, name: &OsStr) -> Result<(File, OsString), StorageError> {
    let keep = NAME_MAX - ".in.".len() - ".0123456789abcdef".len();
    let stem = name.as_bytes().get(..keep).unwrap_or(name.as_bytes());
    for _ in 0..MAX_TEMP_ATTEMPTS {
        let mut temp = b".in.".to_vec();
        temp.extend_from_slice(stem);
        temp.extend_from_slice(format!(".{:016x}", random()).as_bytes());
        let temp = OsStr::from_bytes(&temp).to_owned();
        match create_new(dir, &temp) {
            Ok(file) => return Ok((file, temp)),
            Err(StorageError::AlreadyExists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Busy)
}

/// A random number for temporary names: std's per-process random hash keys, mixed with a counter.
fn random() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// Renames `from` to `to` in `dir` unless `to` exists (`renameat2(RENAME_NOREPLACE)`; `link` + `unlink`
/// on file systems without it).
fn rename_no_replace(dir: &Dir, from: &OsStr, to: &OsStr) -> Result<(), StorageError> {
    use rustix::fs::{AtFlags, RenameFlags};
    use rustix::io::Errno;
    let to_error = |e: Errno| storage_error(e.into());
    match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL | Errno::NOSYS) => {
            rustix::fs::linkat(dir, from, dir, to, AtFlags::empty()).map_err(to_error)?;
            rustix::fs::unlinkat(dir, from, AtFlags::empty()).map_err(to_error)
        }
        Err(e) => Err(to_error(e)),
    }
}

/// Makes a rename in `dir` survive a crash, best effort: the data itself is synced already, and a file
/// system that cannot sync directories loses nothing but the new name. (cap-std may hold `dir` as an
/// `O_PATH` handle, which cannot be synced: open the directory itself through it.)
fn sync_directory(dir: &Dir) {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    if let Ok(fd) = rustix::fs::openat(dir, ".", flags, Mode::empty()) {
        let _ = rustix::fs::fsync(fd);
    }
}

/// Removes `name` if it is still the file we wrote (not something put there since).
fn remove_if_same(dir: &Dir, name: &OsStr, file: &File) {
    let (Ok(ours), Ok(there)) = (file.metadata(), dir.symlink_metadata(name)) else {
        return;
    };
    if ours.dev() == there.dev() && ours.ino() == there.ino() {
        let _ = dir.remove_file(name);
    }
}

/// Fails with `NoSpace` if writing `more` bytes would leave less than `floor` bytes free on the file
/// system holding `fd`.
fn check_free_space(fd: impl std::os::fd::AsFd, floor: u64, more: u64) -> Result<(), StorageError> {
    if floor == 0 {
        return Ok(());
    }
    let stat = rustix::fs::fstatvfs(fd).map_err(|e| storage_error(e.into()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    if free < floor.saturating_add(more) {
        return Err(StorageError::NoSpace);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    /// A fresh directory under the system temp dir, removed on drop.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let path = std::env::temp_dir().join(format!(
                "ftp-proto-upload-{tag}-{}-{:x}",
                std::process::id(),
                random()
            ));
            std::fs::create_dir(&path).unwrap();
            Scratch(path)
        }
        fn dir(&self) -> Dir {
            Dir::open_ambient_dir(&self.0, ambient_authority()).unwrap()
        }
        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const POLICY: UploadPolicy = UploadPolicy {
        atomic: true,
        delete_failed: false,
        max_file_size: None,
        min_free_space: 0,
    };

    fn path(name: &str) -> VirtualPath {
        VirtualPath::root().join(name.as_bytes()).unwrap()
    }

    fn open(scratch: &Scratch, policy: UploadPolicy, name: &str, mode: WriteMode) -> Upload {
        let locks = LockTable::default();
        Upload::open(&scratch.dir(), &locks, policy, &path(name), mode)
            .unwrap()
            .0
    }

    #[test]
    fn create_new_fails_if_the_name_was_taken_before_publishing() {
        let scratch = Scratch::new("createnew");
        let mut upload = open(&scratch, POLICY, "f", WriteMode::CreateNew);
        upload.write(b"ours").unwrap();
        std::fs::write(scratch.0.join("f"), b"theirs").unwrap();
        assert_eq!(upload.finish().unwrap_err(), StorageError::AlreadyExists);
        assert_eq!(std::fs::read(scratch.0.join("f")).unwrap(), b"theirs");
        assert_eq!(scratch.names(), ["f"], "the temporary file is removed");
    }

    #[test]
    fn create_new_fails_at_open_if_the_name_exists_and_publishes_otherwise() {
        let scratch = Scratch::new("createnew-open");
        std::fs::write(scratch.0.join("taken"), b"old").unwrap();
        let locks = LockTable::default();
        let refused = Upload::open(
            &scratch.dir(),
            &locks,
            POLICY,
            &path("taken"),
            WriteMode::CreateNew,
        );
        assert_eq!(refused.unwrap_err(), StorageError::AlreadyExists);
        let mut upload = open(&scratch, POLICY, "free", WriteMode::CreateNew);
        upload.write(b"new").unwrap();
        upload.finish().unwrap();
        assert_eq!(std::fs::read(scratch.0.join("free")).unwrap(), b"new");
        assert_eq!(scratch.names(), ["free", "taken"]);
    }

    #[test]
    fn resume_copies_the_prefix_and_replaces_on_success() {
        let scratch = Scratch::new("resume");
        std::fs::write(scratch.0.join("f"), b"abcdef").unwrap();
        let mut upload = open(&scratch, POLICY, "f", WriteMode::Resume(3));
        upload.write(b"XYZ!").unwrap();
        // Until it finishes, readers see the old file.
        assert_eq!(std::fs::read(scratch.0.join("f")).unwrap(), b"abcdef");
        upload.finish().unwrap();
        assert_eq!(std::fs::read(scratch.0.join("f")).unwrap(), b"abcXYZ!");
        assert_eq!(scratch.names(), ["f"]);
    }

    #[test]
    fn aborted_upload_is_published_only_for_a_new_name() {
        let scratch = Scratch::new("abort");
        std::fs::write(scratch.0.join("old"), b"keep me").unwrap();
        let mut upload = open(&scratch, POLICY, "old", WriteMode::Truncate);
        upload.write(b"partial").unwrap();
        upload.abort();
        let mut upload = open(&scratch, POLICY, "new", WriteMode::Truncate);
        upload.write(b"partial").unwrap();
        drop(upload); // a session gone counts as an abort
        assert_eq!(std::fs::read(scratch.0.join("old")).unwrap(), b"keep me");
        assert_eq!(std::fs::read(scratch.0.join("new")).unwrap(), b"partial");
        assert_eq!(scratch.names(), ["new", "old"]);

        let policy = UploadPolicy {
            delete_failed: true,
            ..POLICY
        };
        let mut upload = open(&scratch, policy, "gone", WriteMode::Truncate);
        upload.write(b"partial").unwrap();
        upload.abort();
        assert_eq!(scratch.names(), ["new", "old"]);
    }

    #[test]
    fn append_past_the_size_limit_is_cut_back() {
        let scratch = Scratch::new("append");
        std::fs::write(scratch.0.join("log"), b"12345").unwrap();
        let policy = UploadPolicy {
            max_file_size: Some(8),
            ..POLICY
        };
        let mut upload = open(&scratch, policy, "log", WriteMode::Append);
        upload.write(b"67").unwrap();
        assert_eq!(upload.write(b"890").unwrap_err(), StorageError::NoSpace);
        upload.abort();
        assert_eq!(std::fs::read(scratch.0.join("log")).unwrap(), b"12345");
    }

    #[test]
    fn a_second_open_of_one_name_is_busy() {
        let scratch = Scratch::new("lock");
        let locks = LockTable::default();
        let dir = scratch.dir();
        let first = Upload::open(&dir, &locks, POLICY, &path("f"), WriteMode::Truncate).unwrap();
        let second = Upload::open(&dir, &locks, POLICY, &path("f"), WriteMode::Append);
        assert_eq!(second.unwrap_err(), StorageError::Busy);
        drop(first);
        assert!(Upload::open(&dir, &locks, POLICY, &path("f"), WriteMode::Append).is_ok());
    }
}
