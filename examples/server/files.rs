//! The open file of a transfer: a thread while its chunks flow, no thread while it waits.
//!
//! `RETR` and `STOR` move every byte through here, so this is built for speed: a plain `std::fs::File`
//! read straight into the `Bytes` that the session then hands to the data connection (no copy), rather than
//! `tokio::fs::File`, which reads into its own buffer and copies out.
//!
//! The session's operations (`LocalAction::Read`, `Write` and `Close`, and `ReadEntries` for a listing)
//! arrive in order over a channel. A file task serves them in *bursts*: on the first operation it takes
//! one thread of tokio's blocking pool, which then serves operation after operation straight off the
//! channel, and gives the file back to the task once no operation has come for [`BURST_IDLE`]. A
//! transfer in full flow therefore costs one thread and no hop per chunk (a hop per 256 KiB chunk cost a
//! fifth of RETR and STOR throughput), while a transfer waiting for its data connection or for a slow
//! client holds no thread: hundreds of idle transfers cannot starve the pool that every other storage
//! request needs (security review, §4).
//!
//! Every operation is bounded by [`STORAGE_TIMEOUT`] (a watchdog on the async side answers `Failed` and
//! abandons the thread, which ends when the kernel returns), and the number of open transfers by
//! `--max-transfers` (past it an open answers 450). Each answer goes back to the session task as an
//! [`Incoming`] message.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ftp_proto::data::DataCompletion;
use ftp_proto::path::VirtualPath;
use ftp_proto::server::{Completion, RequestId, StorageError, WriteMode};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::buffers::BufferPool;
use crate::session_task::{Incoming, WorkerLinks};
use crate::storage::{DirCursor, Storage, storage_error};
use crate::upload::Upload;

/// The longest any one storage call (an open, a chunk, a close, a `CWD`, ...) may take before the session
/// is answered 451 (a hung network file system, a disk gone bad). The call itself cannot be cancelled; its
/// thread is released when the kernel returns.
pub const STORAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a burst's thread waits for the next operation before it gives the file back. Long enough to
/// bridge the gaps of a transfer in flow (a chunk every few hundred microseconds on a fast link), short
/// enough that a stalled transfer gives its thread back at once.
const BURST_IDLE: Duration = Duration::from_millis(5);

/// How often the watchdog looks at the operation in progress.
const WATCHDOG_PERIOD: Duration = Duration::from_secs(1);

/// What the session asks of its open file.
#[derive(Debug)]
pub enum FileOp {
    /// Read the next chunk (answered with the chunk, or `EndOfData`), or a listing's next part.
    Read,
    /// Append a chunk (answered with `Written`).
    Write(Bytes),
    /// Close; an upload that was not aborted is synced and published first and answered with `Written`.
    Close { aborted: bool },
}

/// The session task's end of a file task. Dropping it counts as an aborted close.
#[derive(Debug)]
pub struct FileHandle {
    id: RequestId,
    ops: Sender<FileOp>,
    /// Wakes a parked task (one stored wake-up if it is not parked yet: nothing is missed).
    wake: Arc<Notify>,
}

/// An open transfer's file, or a listing being read a part at a time.
enum OpenFile {
    Download(File),
    Upload(Upload),
    Listing(DirCursor),
}

/// What a file task needs besides its file.
pub struct FileContext {
    pub storage: Arc<Storage>,
    /// The permits of `--max-transfers` for a file, of `--max-listings` for a listing.
    pub permits: Arc<Semaphore>,
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
            let size = Some(size);
            Ok((
                Completion::FileOpened { size, path },
                Some(OpenFile::Download(file)),
            ))
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
            let opened = Completion::FileOpened { size: None, path };
            Ok((opened, Some(OpenFile::Upload(upload))))
        })
    }

    /// Starts a listing in the background; the task answers its first part (`Entries` or `EntriesPart`)
    /// or `Failed`, and serves `ReadEntries` while parts remain.
    pub fn open_listing(
        context: FileContext,
        id: RequestId,
        path: VirtualPath,
        limit: usize,
    ) -> FileHandle {
        let storage = context.storage.clone();
        Self::spawn(id, context, move || {
            let (first, rest) = storage.open_listing(&path, limit)?;
            Ok((first, rest.map(OpenFile::Listing)))
        })
    }

    fn spawn(
        id: RequestId,
        context: FileContext,
        open: impl FnOnce() -> Result<(Completion, Option<OpenFile>), StorageError> + Send + 'static,
    ) -> FileHandle {
        let (ops, ops_rx) = channel();
        let wake = Arc::new(Notify::new());
        // Taken right away, in the order the session asks (not whenever the task first runs), and held
        // until the task ends: the cap counts open files.
        let permit = context.permits.try_acquire_owned();
        let task_wake = wake.clone();
        tokio::spawn(async move {
            let links = context.links;
            let answer = |completion| {
                let _ = links.incoming.send(Incoming::Completion(id, completion));
            };
            let Ok(permit) = permit else {
                return answer(Completion::Failed(StorageError::Busy));
            };
            match blocking(open).await.and_then(|opened| opened) {
                Ok((opened, file)) => {
                    answer(opened);
                    // A listing that fit in its first part has nothing more to serve.
                    let Some(file) = file else { return };
                    let task = FileTask {
                        id,
                        links,
                        storage: context.storage,
                        wake: task_wake,
                        _permit: permit,
                    };
                    task.serve(Parked { file, ops: ops_rx }).await;
                }
                Err(error) => answer(Completion::Failed(error)),
            }
        });
        FileHandle { id, ops, wake }
    }

    /// The transfer this file belongs to.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Queues an operation. If the task is gone (its open failed and was reported), there is nothing to
    /// do: the session no longer expects answers for this transfer.
    pub fn send(&self, op: FileOp) {
        if self.ops.send(op).is_ok() {
            self.wake.notify_one();
        }
    }
}

impl Drop for FileHandle {
    /// Wakes the task so that it sees the closed channel and aborts (a parked task would wait forever).
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// A file between bursts, with the operations still to serve.
struct Parked {
    file: OpenFile,
    ops: Receiver<FileOp>,
}

/// How a burst ended.
enum BurstEnd {
    /// No operation came for [`BURST_IDLE`]: the file goes back to the task.
    Idle(Parked),
    /// The file was closed (asked, or the session went away) or an operation failed.
    Finished,
}

/// The async side of one open file: it parks the file between bursts and watches the burst in progress.
struct FileTask {
    id: RequestId,
    links: WorkerLinks,
    storage: Arc<Storage>,
    wake: Arc<Notify>,
    _permit: OwnedSemaphorePermit,
}

impl FileTask {
    async fn serve(self, mut parked: Parked) {
        loop {
            self.wake.notified().await;
            let watch = Arc::new(OpWatch::new());
            let burst = Burst {
                id: self.id,
                links: self.links.clone(),
                storage: self.storage.clone(),
                watch: watch.clone(),
            };
            let thread = tokio::task::spawn_blocking(move || burst.run(parked));
            match watched(thread, &watch).await {
                Ok(BurstEnd::Idle(next)) => parked = next,
                Ok(BurstEnd::Finished) => return,
                Err(error) => {
                    // The burst's thread answers nothing from now on (see `OpWatch::abandon`).
                    let failed = Completion::Failed(error);
                    let _ = self
                        .links
                        .incoming
                        .send(Incoming::Completion(self.id, failed));
                    return;
                }
            }
        }
    }
}

/// Awaits a burst, failing it if one operation runs past [`STORAGE_TIMEOUT`].
async fn watched(
    mut thread: tokio::task::JoinHandle<BurstEnd>,
    watch: &OpWatch,
) -> Result<BurstEnd, StorageError> {
    let mut ticks = tokio::time::interval(WATCHDOG_PERIOD);
    loop {
        tokio::select! {
            ended = &mut thread => {
                return ended.map_err(|_| StorageError::Other("storage task failed".into()));
            }
            _ = ticks.tick() => {
                if watch.overdue() {
                    watch.abandon();
                    return Err(StorageError::Other("storage timed out".into()));
                }
            }
        }
    }
}

/// Shared between a burst's thread and the watchdog: when the current operation started, and whether
/// the watchdog has given up on the thread.
struct OpWatch {
    epoch: Instant,
    /// Milliseconds since `epoch` plus one when the operation started; 0 while waiting for one.
    started: AtomicU64,
    abandoned: AtomicBool,
}

impl OpWatch {
    fn new() -> OpWatch {
        OpWatch {
            epoch: Instant::now(),
            started: AtomicU64::new(0),
            abandoned: AtomicBool::new(false),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn begin(&self) {
        self.started
            .store(self.millis().saturating_add(1), Ordering::Relaxed);
    }

    fn end(&self) {
        self.started.store(0, Ordering::Relaxed);
    }

    fn overdue(&self) -> bool {
        let started = self.started.load(Ordering::Relaxed);
        let limit = u64::try_from(STORAGE_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
        started != 0 && self.millis().saturating_sub(started - 1) > limit
    }

    /// Tells the thread that its answers are no longer wanted: the session was already told `Failed`.
    fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }

    fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }
}

/// One burst, run on a blocking thread.
struct Burst {
    id: RequestId,
    links: WorkerLinks,
    storage: Arc<Storage>,
    watch: Arc<OpWatch>,
}

impl Burst {
    /// Serves operations until none comes for [`BURST_IDLE`], the file is closed, or one fails.
    fn run(self, parked: Parked) -> BurstEnd {
        let Parked { mut file, ops } = parked;
        loop {
            let op = match ops.recv_timeout(BURST_IDLE) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => return BurstEnd::Idle(Parked { file, ops }),
                // The session dropped its handle: an upload counts as aborted.
                Err(RecvTimeoutError::Disconnected) => {
                    self.close(file, true);
                    return BurstEnd::Finished;
                }
            };
            self.watch.begin();
            let step = match op {
                FileOp::Close { aborted } => {
                    self.close(file, aborted);
                    return BurstEnd::Finished;
                }
                FileOp::Read => self.read(file),
                FileOp::Write(data) => self.write(file, data),
            };
            self.watch.end();
            let (next, message) = step;
            let session_gone = !self.answer(message);
            match next {
                Some(next) if !session_gone => file = next,
                Some(next) => {
                    self.close(next, true);
                    return BurstEnd::Finished;
                }
                None => return BurstEnd::Finished,
            }
        }
    }

    /// Sends an answer unless the watchdog gave up on this burst; false when nobody listens any more.
    fn answer(&self, message: Incoming) -> bool {
        !self.watch.is_abandoned() && self.links.incoming.send(message).is_ok()
    }

    /// Reads up to a chunk into a (recycled) buffer that becomes the chunk itself, or a listing's next
    /// part (after the last one the listing is done).
    fn read(&self, file: OpenFile) -> (Option<OpenFile>, Incoming) {
        let id = self.id;
        let mut f = match file {
            OpenFile::Download(f) => f,
            OpenFile::Listing(mut cursor) => {
                let (part, more) = self.storage.next_listing_part(&mut cursor);
                let next = more.then_some(OpenFile::Listing(cursor));
                return (next, Incoming::Completion(id, part));
            }
            OpenFile::Upload(_) => {
                let error = StorageError::Other("read from an upload".into());
                return (None, Incoming::Completion(id, Completion::Failed(error)));
            }
        };
        match read_chunk(&mut f, &self.links.buffers) {
            Ok(Some(chunk)) => (Some(OpenFile::Download(f)), Incoming::Data(id, chunk)),
            Ok(None) => (
                Some(OpenFile::Download(f)),
                Incoming::Completion(id, DataCompletion::EndOfData.into()),
            ),
            Err(e) => (None, Incoming::Completion(id, Completion::Failed(e))),
        }
    }

    /// Appends a chunk, then hands its buffer back to the pool.
    fn write(&self, file: OpenFile, data: Bytes) -> (Option<OpenFile>, Incoming) {
        let result = match file {
            OpenFile::Upload(mut upload) => match upload.write(&data) {
                Ok(()) => (Some(OpenFile::Upload(upload)), Ok(())),
                // Never published (see `upload`).
                Err(e) => {
                    upload.abort();
                    (None, Err(e))
                }
            },
            OpenFile::Download(_) | OpenFile::Listing(_) => {
                let error = StorageError::Other("write to a file opened for reading".into());
                (None, Err(error))
            }
        };
        self.links.buffers.recycle(data);
        let done = |c| Incoming::Completion(self.id, c);
        match result {
            (file, Ok(())) => (file, done(DataCompletion::Written.into())),
            (_, Err(e)) => (None, done(Completion::Failed(e))),
        }
    }

    /// Closes the file; a finished upload is published and answered `Written` (or `Failed`).
    fn close(&self, file: OpenFile, aborted: bool) {
        let completion = match file {
            OpenFile::Download(_) | OpenFile::Listing(_) => return,
            OpenFile::Upload(upload) if aborted => return upload.abort(),
            OpenFile::Upload(upload) => match upload.finish() {
                Ok(()) => DataCompletion::Written.into(),
                Err(e) => Completion::Failed(e),
            },
        };
        // Only a finished upload waits for an answer to its close.
        self.answer(Incoming::Completion(self.id, completion));
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
