//! Opening files beneath the root without ever blocking on, or writing through, something that is not a
//! regular file.
//!
//! Every open uses `O_NONBLOCK`, so that a FIFO (or a device) opens at once instead of parking a thread
//! until some writer shows up; the result is checked with `fstat` (the check that counts: it is about the
//! file actually opened, not a name that may have been swapped since), and only then is `O_NONBLOCK`
//! cleared for ordinary blocking I/O. New names are created with `O_CREAT|O_EXCL|O_NOFOLLOW`, which never
//! follows or reuses anything already there.

use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt, OpenOptionsSyncExt};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use ftp_proto::server::StorageError;
use rustix::fs::OFlags;

use super::resolve::storage_error;

/// Permissions of created files (before the umask), as `File::create` would use.
const NEW_FILE_MODE: u32 = 0o666;

/// Opens `path` (relative to `dir`; symlinks beneath `dir` followed) for reading.
pub fn open_for_read(dir: &Dir, path: &Path) -> Result<File, StorageError> {
    let mut options = OpenOptions::new();
    options.read(true);
    open_regular(dir, path, &mut options)
}

/// Opens the existing regular file `path` for writing (appending if `append`), never creating it.
pub fn open_for_write(dir: &Dir, path: &Path, append: bool) -> Result<File, StorageError> {
    let mut options = OpenOptions::new();
    options.write(true).append(append);
    open_regular(dir, path, &mut options)
}

/// Creates the new file `name` in `dir`, write-only. Fails with `AlreadyExists` if anything has that name,
/// a symlink (even a dangling one) included.
pub fn create_new(dir: &Dir, name: &OsStr) -> Result<File, StorageError> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .create_new(true)
        .follow(FollowSymlinks::No)
        .mode(NEW_FILE_MODE);
    let file = dir.open_with(name, &options).map_err(storage_error)?;
    Ok(file.into_std())
}

/// Opens with `O_NONBLOCK`, checks that the file is a regular one, then clears `O_NONBLOCK`.
fn open_regular(dir: &Dir, path: &Path, options: &mut OpenOptions) -> Result<File, StorageError> {
    options.nonblock(true);
    let file = dir
        .open_with(path, options)
        .map_err(storage_error)?
        .into_std();
    let metadata = file.metadata().map_err(storage_error)?;
    if !metadata.is_file() {
        return Err(StorageError::WrongKind);
    }
    let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| storage_error(e.into()))?;
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)
        .map_err(|e| storage_error(e.into()))?;
    Ok(file)
}
