//! From a [`VirtualPath`] to something resolved beneath the root handle, and from `io::Error` to
//! [`StorageError`].
//!
//! Paths are handed to cap-std relative to the root [`Dir`]: cap-std resolves them with
//! `openat2(RESOLVE_BENEATH)` where the kernel has it and otherwise walks them one component at a time
//! with `O_NOFOLLOW`, so neither `..` nor a symlink (absolute, relative, or swapped in meanwhile) can lead
//! out. Anything that would is refused with cap-std's "escape attempt" error, which [`storage_error`]
//! reports exactly like a missing file.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use cap_std::fs::Dir;
use ftp_proto::path::VirtualPath;
use ftp_proto::server::StorageError;

/// `path` relative to the root (`.` for the root itself), for cap-std calls on the root handle.
pub fn relative(path: &VirtualPath) -> PathBuf {
    let mut rel = PathBuf::from(".");
    for component in path.components() {
        rel.push(OsStr::from_bytes(component));
    }
    rel
}

/// The entry `path` names, as a handle on its parent directory (opened beneath the root; symlinks inside
/// the root followed) and its final name, which is never followed. The root itself is no entry: it
/// cannot be deleted, renamed or created.
pub fn entry(root: &Dir, path: &VirtualPath) -> Result<(Dir, OsString), StorageError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(StorageError::PermissionDenied);
    };
    let dir = root.open_dir(relative(&parent)).map_err(storage_error)?;
    Ok((dir, OsStr::from_bytes(name).to_owned()))
}

/// Whether cap-std refused `error` because the path led outside the root.
///
/// cap-std reports that as a `PermissionDenied` error it makes itself (`errors::escape_attempt` in
/// cap-primitives, also for the kernel's `EXDEV` from `RESOLVE_BENEATH`), so it carries no OS error
/// number, while a real `EACCES` does.
pub fn is_escape(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied && error.raw_os_error().is_none()
}

/// Maps an I/O error to what the session can tell the client.
///
/// A path leading out of the root answers like a missing file, whether the outside target exists or not:
/// anything else would let a client probe the host's file system through a link to `/`.
pub fn storage_error(error: io::Error) -> StorageError {
    use io::ErrorKind::*;
    if is_escape(&error) {
        return StorageError::NotFound;
    }
    // ENXIO: opening a FIFO for writing with O_NONBLOCK and no reader, or a device without its driver.
    // ELOOP: O_NOFOLLOW met a symlink as the last component. Neither is a regular file.
    let os = error
        .raw_os_error()
        .map(rustix::io::Errno::from_raw_os_error);
    if matches!(os, Some(rustix::io::Errno::NXIO | rustix::io::Errno::LOOP)) {
        return StorageError::WrongKind;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_escape_is_not_found_but_a_real_eacces_is_permission_denied() {
        let escape = io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a path led outside of the filesystem",
        );
        assert_eq!(storage_error(escape), StorageError::NotFound);
        let eacces = io::Error::from_raw_os_error(13);
        assert_eq!(storage_error(eacces), StorageError::PermissionDenied);
    }
}
