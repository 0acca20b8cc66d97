//! The open file of a transfer, owned by one thread of tokio's blocking pool.
//!
//! `RETR` and `STOR` move every byte through here, so this is built for speed: a plain `std::fs::File`
//! read straight into the `Bytes` that the session then hands to the data connection (no copy), rather than
//! `tokio::fs::File`, which reads into its own buffer and copies out. The session's actions for the file
//! (`ReadFile`, `WriteFile`, `CloseFile`) arrive in order over a channel, and each answer goes back to the
//! session task as an [`Incoming`] message.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use ftp_proto::path::VirtualPath;
use ftp_proto::server::{Completion, RequestId, StorageError, WriteMode};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::buffers::BufferPool;
use crate::session_task::{Incoming, WorkerLinks};
use crate::storage::{Storage, storage_error};

/// What the session asks of its open file.
#[derive(Debug)]
pub enum FileOp {
    /// Read the next chunk (answered with the chunk, or `EndOfData`).
    Read,
    /// Append a chunk (answered with `Written`).
    Write(Bytes),
    /// Close; an upload that was not aborted is synced first and answered with `Done`.
    Close { aborted: bool },
}

/// The session task's end of a file worker.
#[derive(Debug)]
pub struct FileHandle {
    id: RequestId,
    ops: UnboundedSender<FileOp>,
}

impl FileHandle {
    /// Opens `path` for a download in the background; the worker answers `FileOpened` or `Failed`.
    pub fn open_read(
        storage: Arc<Storage>,
        id: RequestId,
        path: VirtualPath,
        offset: u64,
        links: WorkerLinks,
    ) -> FileHandle {
        Self::spawn(id, links, false, move || {
            let (file, size) = storage.open_read(&path, offset)?;
            Ok((file, Some(size), path))
        })
    }

    /// Opens `path` for an upload in the background; the worker answers `FileOpened` or `Failed`.
    pub fn open_write(
        storage: Arc<Storage>,
        id: RequestId,
        path: VirtualPath,
        mode: WriteMode,
        links: WorkerLinks,
    ) -> FileHandle {
        Self::spawn(id, links, true, move || {
            let (file, path) = storage.open_write(&path, mode)?;
            Ok((file, None, path))
        })
    }

    fn spawn(
        id: RequestId,
        links: WorkerLinks,
        upload: bool,
        open: impl FnOnce() -> Result<(File, Option<u64>, VirtualPath), StorageError> + Send + 'static,
    ) -> FileHandle {
        let (ops, ops_rx) = unbounded_channel();
        tokio::task::spawn_blocking(move || {
            let WorkerLinks { incoming, buffers } = links;
            let answer = |completion| incoming.send(Incoming::Completion(id, completion)).is_ok();
            match open() {
                Ok((file, size, path)) => {
                    // The session may be gone already; then there is nobody to serve.
                    if answer(Completion::FileOpened { size, path }) {
                        let incoming = incoming.clone();
                        let worker = FileWorker {
                            id,
                            file,
                            upload,
                            incoming,
                            buffers,
                        };
                        serve(worker, ops_rx);
                    }
                }
                Err(error) => {
                    answer(Completion::Failed(error));
                }
            }
        });
        FileHandle { id, ops }
    }

    /// The transfer this file belongs to.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Queues an operation. If the worker is gone (its open failed and was reported), there is nothing to
    /// do: the session no longer expects answers for this transfer.
    pub fn send(&self, op: FileOp) {
        let _ = self.ops.send(op);
    }
}

/// The blocking side: one open file and where to send the answers.
struct FileWorker {
    id: RequestId,
    file: File,
    upload: bool,
    incoming: UnboundedSender<Incoming>,
    buffers: BufferPool,
}

/// Serves operations until `Close`, or until the session drops its handle.
fn serve(mut worker: FileWorker, mut ops: UnboundedReceiver<FileOp>) {
    while let Some(op) = ops.blocking_recv() {
        let message = match op {
            FileOp::Read => worker.read_chunk(),
            FileOp::Write(data) => worker.write_chunk(data),
            FileOp::Close { aborted } => {
                if worker.upload && !aborted {
                    let completion = worker.sync();
                    let _ = worker
                        .incoming
                        .send(Incoming::Completion(worker.id, completion));
                }
                return;
            }
        };
        if worker.incoming.send(message).is_err() {
            return; // the session ended
        }
    }
}

impl FileWorker {
    /// Reads up to a chunk into a (recycled) buffer that becomes the chunk itself.
    fn read_chunk(&mut self) -> Incoming {
        let mut buffer = self.buffers.take_filled();
        match read_retrying(&mut self.file, &mut buffer) {
            Ok(0) => Incoming::Completion(self.id, Completion::EndOfData),
            Ok(n) => {
                buffer.truncate(n);
                Incoming::Data(self.id, buffer.freeze())
            }
            Err(e) => Incoming::Completion(self.id, Completion::Failed(storage_error(e))),
        }
    }

    fn write_chunk(&mut self, data: Bytes) -> Incoming {
        let completion = match self.file.write_all(&data) {
            Ok(()) => Completion::Written,
            Err(e) => Completion::Failed(storage_error(e)),
        };
        self.buffers.recycle(data);
        Incoming::Completion(self.id, completion)
    }

    /// Makes the upload durable before the session sends 226: the client may delete its copy then.
    fn sync(&mut self) -> Completion {
        match self.file.flush().and_then(|()| self.file.sync_data()) {
            Ok(()) => Completion::Done,
            Err(e) => Completion::Failed(storage_error(e)),
        }
    }
}

fn read_retrying(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match file.read(buffer) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
