//! Upload locks: two uploads to one name must not interleave (vsftpd's `lock_upload_files`).
//!
//! The lock is in-process, keyed on the parent directory's identity (device and inode, so two virtual
//! paths reaching one directory through a symlink share a key) plus the final name. The second upload is
//! refused at open with [`StorageError::Busy`] (450, "try again later") rather than made to wait: an FTP
//! client retries, while a queued upload would hold a transfer slot doing nothing. The lock is released
//! when its [`UploadLock`] is dropped, which happens however the upload ends (finished, aborted, failed,
//! timed out, or its session gone).

use std::collections::HashSet;
use std::ffi::OsString;
use std::sync::{Arc, Mutex};

use ftp_proto::server::StorageError;

/// Identifies an upload target: (device, inode) of its directory, and its name there.
type Key = (u64, u64, OsString);

/// The names being uploaded to right now. Clones share the table.
#[derive(Clone, Debug, Default)]
pub struct LockTable {
    held: Arc<Mutex<HashSet<Key>>>,
}

impl LockTable {
    /// Takes the lock on `name` in the directory `(dev, ino)`, or answers `Busy` if an upload holds it.
    pub fn lock(&self, dev: u64, ino: u64, name: OsString) -> Result<UploadLock, StorageError> {
        let key = (dev, ino, name);
        let mut held = self
            .held
            .lock()
            .map_err(|_| StorageError::Other("upload lock table poisoned".into()))?;
        if !held.insert(key.clone()) {
            return Err(StorageError::Busy);
        }
        Ok(UploadLock {
            table: self.clone(),
            key,
        })
    }
}

/// A held upload lock; dropping it releases the name.
#[derive(Debug)]
pub struct UploadLock {
    table: LockTable,
    key: Key,
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        if let Ok(mut held) = self.table.held.lock() {
            held.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_one_name_is_busy_until_the_first_is_dropped() {
        let table = LockTable::default();
        let first = table.lock(1, 2, "a".into()).unwrap();
        assert_eq!(
            table.lock(1, 2, "a".into()).unwrap_err(),
            StorageError::Busy
        );
        // Another name, or the same name in another directory, is independent.
        let _other = table.lock(1, 2, "b".into()).unwrap();
        let _elsewhere = table.lock(1, 3, "a".into()).unwrap();
        drop(first);
        assert!(table.lock(1, 2, "a".into()).is_ok());
    }
}
