//! The open file of a transfer, owned by a small async task that holds no thread while it waits.
//!
//! `RETR` and `STOR` move every byte through here, so this is built for speed: a plain `std::fs::File`
//! read straight into the `Bytes` that the session then hands to the data connection (no copy), rather than
//! `tokio::fs::File`, which reads into its own buffer and copies out.
//!
//! Each operation (`ReadFile`, `WriteFile`, `CloseFile`) is one hop to tokio's blocking pool with the file
//! moved in and handed back ([`blocking`]). Between operations the file sits in the task, so a transfer
//! waiting for its data connection or for a slow client holds no blocking thread: hundreds of idle
//! transfers can no longer starve the pool that every other storage request needs (security review, §4).
//! Every hop is bounded by [`STORAGE_TIMEOUT`], and the number of open transfers by `--max-transfers`
//! (past it an open answers 450). The session's operations arrive in order over a channel; each answer
//! goes back to the session task as an [`Incoming`] message.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ftp_proto::path::VirtualPath;
use ftp_proto::server::{Completion, RequestId, StorageError, WriteMode};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::buffers::BufferPool;
use crate::session_task::{Incoming, WorkerLinks};
use crate::storage::{Storage, storage_error};
use crate::upload::Upload;

/// The longest any one storage call (an open, a chunk, a close, a `CWD`, ...) may take before the session
/// is answered 451 (a hung network file system, a disk gone bad). The call itself cannot be cancelled; its
/// thread is released when the kernel returns.
pub const STORAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the session asks of its open file.
#[derive(Debug)]
pub enum FileOp {
    /// Read the next chunk (answered with the chunk, or `EndOfData`).
    Read,
    /// Append a chunk (answered with `Written`).
    Write(Bytes),
    /// Close; an upload that was not aborted is synced and published first and answered with `Done`.
    Close { aborted: bool },
}

/// The session task's end of a file task.
#[derive(Debug)]
pub struct FileHandle {
    id: RequestId,
    ops: UnboundedSender<FileOp>,
}

/// An open transfer's file.
enum OpenFile {
    Download(File),
    Upload(Upload),
}

/// What a file task needs besides its file.
pub struct FileContext {
    pub storage: Arc<Storage>,
    /// The permits of `--max-transfers`.
    pub transfers: Arc<Semaphore>,
    pub links: WorkerLinks,
}

impl FileHandle {
    /// Opens `path` for a download in the background; the task answers `FileOpened` or `Failed`.
    pub fn open_read(
        context: FileContext,
        id: RequestId,
        path: VirtualPath,
        offset: u64,
    ) -> FileHandle {
        let storage = context.storage.clone();
        Self::spawn(id, context, move || {
            let (file, size) = storage.open_read(&path, offset)?;
            Ok((OpenFile::Download(file), Some(size), path))
        })
    }

    /// Opens `path` for an upload in the background; the task answers `FileOpened` or `Failed`.
    pub fn open_write(
        context: FileContext,
        id: RequestId,
        path: VirtualPath,
        mode: WriteMode,
    ) -> FileHandle {
        let storage = context.storage.clone();
        Self::spawn(id, context, move || {
            let (upload, path) = storage.open_write(&path, mode)?;
            Ok((OpenFile::Upload(upload), None, path))
        })
    }

    fn spawn(
        id: RequestId,
        context: FileContext,
        open: impl FnOnce() -> Result<(OpenFile, Option<u64>, VirtualPath), StorageError>
        + Send
        + 'static,
    ) -> FileHandle {
        let (ops, ops_rx) = unbounded_channel();
        // Taken right away, in the order the session asks (not whenever the task first runs), and held
        // until the task ends: the cap counts open files.
        let permit = context.transfers.try_acquire_owned();
        tokio::spawn(async move {
            let links = context.links;
            let answer = |completion| {
                let _ = links.incoming.send(Incoming::Completion(id, completion));
            };
            let Ok(permit) = permit else {
                return answer(Completion::Failed(StorageError::Busy));
            };
            match blocking(open).await.and_then(|opened| opened) {
                Ok((file, size, path)) => {
                    answer(Completion::FileOpened { size, path });
                    let task = FileTask {
                        id,
                        links,
                        _permit: permit,
                    };
                    task.serve(file, ops_rx).await;
                }
                Err(error) => answer(Completion::Failed(error)),
            }
        });
        FileHandle { id, ops }
    }

    /// The transfer this file belongs to.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Queues an operation. If the task is gone (its open failed and was reported), there is nothing to
    /// do: the session no longer expects answers for this transfer.
    pub fn send(&self, op: FileOp) {
        let _ = self.ops.send(op);
    }
}

/// The async side of one open file.
struct FileTask {
    id: RequestId,
    links: WorkerLinks,
    _permit: OwnedSemaphorePermit,
}

impl FileTask {
    /// Serves operations until `Close`, or until the session drops its handle (then an upload counts as
    /// aborted). A failed or timed-out operation ends the task: the session aborts the transfer.
    async fn serve(self, mut file: OpenFile, mut ops: UnboundedReceiver<FileOp>) {
        while let Some(op) = ops.recv().await {
            let step = match op {
                FileOp::Close { aborted } => return self.close(file, aborted).await,
                FileOp::Read => self.read(file).await,
                FileOp::Write(data) => self.write(file, data).await,
            };
            let (next, message) = step;
            let session_gone = self.links.incoming.send(message).is_err();
            match next {
                Some(next) if !session_gone => file = next,
                Some(next) => return self.close(next, true).await,
                None => return,
            }
        }
        self.close(file, true).await;
    }

    /// Reads up to a chunk into a (recycled) buffer that becomes the chunk itself.
    async fn read(&self, file: OpenFile) -> (Option<OpenFile>, Incoming) {
        let buffers = self.links.buffers.clone();
        let result = blocking(move || match file {
            OpenFile::Download(mut f) => {
                let read = read_chunk(&mut f, &buffers);
                (OpenFile::Download(f), read)
            }
            other => (
                other,
                Err(StorageError::Other("read from an upload".into())),
            ),
        })
        .await;
        let id = self.id;
        match result {
            Ok((file, Ok(Some(chunk)))) => (Some(file), Incoming::Data(id, chunk)),
            Ok((file, Ok(None))) => (Some(file), Incoming::Completion(id, Completion::EndOfData)),
            Ok((_, Err(e))) | Err(e) => (None, Incoming::Completion(id, Completion::Failed(e))),
        }
    }

    /// Appends a chunk, then hands its buffer back to the pool.
    async fn write(&self, file: OpenFile, data: Bytes) -> (Option<OpenFile>, Incoming) {
        let buffers = self.links.buffers.clone();
        let result = blocking(move || {
            let result = match file {
                OpenFile::Upload(mut upload) => match upload.write(&data) {
                    Ok(()) => (Some(OpenFile::Upload(upload)), Ok(())),
                    // Cleaned up here, on the blocking thread: never published (see `upload`).
                    Err(e) => {
                        upload.abort();
                        (None, Err(e))
                    }
                },
                _ => (None, Err(StorageError::Other("write to a download".into()))),
            };
            buffers.recycle(data);
            result
        })
        .await;
        let done = |c| Incoming::Completion(self.id, c);
        match result {
            Ok((file, Ok(()))) => (file, done(Completion::Written)),
            Ok((_, Err(e))) | Err(e) => (None, done(Completion::Failed(e))),
        }
    }

    /// Closes the file; a finished upload is published and answered `Done` (or `Failed`).
    async fn close(self, file: OpenFile, aborted: bool) {
        let result = blocking(move || match file {
            OpenFile::Download(_) => Ok(None),
            OpenFile::Upload(upload) if aborted => {
                upload.abort();
                Ok(None)
            }
            OpenFile::Upload(upload) => upload.finish().map(Some),
        })
        .await
        .and_then(|r| r);
        let completion = match result {
            Ok(None) => return,
            Ok(Some(())) => Completion::Done,
            Err(e) => Completion::Failed(e),
        };
        // Only a finished upload waits for an answer to its close.
        if !aborted {
            let _ = self
                .links
                .incoming
                .send(Incoming::Completion(self.id, completion));
        }
    }
}

/// Runs `work` on the blocking pool, bounded by [`STORAGE_TIMEOUT`].
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::time::timeout(STORAGE_TIMEOUT, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(StorageError::Other("storage task failed".into())),
        Err(_) => Err(StorageError::Other("storage timed out".into())),
    }
}

/// One chunk, `None` at the end of the file.
fn read_chunk(file: &mut File, buffers: &BufferPool) -> Result<Option<Bytes>, StorageError> {
    let mut buffer = buffers.take_filled();
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                buffer.truncate(n);
                return Ok(Some(buffer.freeze()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(storage_error(e)),
        }
    }
}
