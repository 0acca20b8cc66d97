//! Chunk buffers, recycled within a session.
//!
//! A transfer has only a few chunks alive at a time (the session's window), so instead of allocating,
//! and for file reads zeroing, a fresh 256 KiB buffer per chunk, the task that consumed a chunk hands its
//! buffer back here once it is the buffer's last owner ([`Bytes::try_into_mut`] succeeds only then), and
//! the producer takes it from here. That spares a `memset` and a `malloc`/`free` pair per chunk.
//!
//! A recycled buffer keeps its length: its old bytes are initialized memory, so a file read can reuse
//! them as they are (see [`BufferPool::take_filled`]) instead of zeroing 256 KiB again.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use crate::CHUNK_SIZE;

/// Buffers kept for reuse: the session's window of chunks plus one being filled.
const MAX_POOLED: usize = 4;

/// A session's spare chunk buffers. Clones share the same pool.
#[derive(Clone, Debug, Default)]
pub struct BufferPool {
    free: Arc<Mutex<Vec<BytesMut>>>,
}

impl BufferPool {
    /// An empty buffer with room for a chunk, for reading into its spare capacity (`read_buf`).
    pub fn take_empty(&self) -> BytesMut {
        let mut buffer = self.take();
        buffer.clear();
        buffer
    }

    /// A buffer of exactly [`CHUNK_SIZE`] initialized bytes (stale contents), for reading into a slice.
    /// Only bytes never written before are zeroed.
    pub fn take_filled(&self) -> BytesMut {
        let mut buffer = self.take();
        buffer.resize(CHUNK_SIZE, 0);
        buffer
    }

    fn take(&self) -> BytesMut {
        let recycled = self.free.lock().ok().and_then(|mut free| free.pop());
        recycled.unwrap_or_else(|| BytesMut::with_capacity(CHUNK_SIZE))
    }

    /// Takes back a consumed chunk's buffer if nobody else holds a reference to it and it is one of ours
    /// (chunk-sized); otherwise just drops it.
    pub fn recycle(&self, chunk: Bytes) {
        let Ok(buffer) = chunk.try_into_mut() else {
            return;
        };
        if buffer.capacity() < CHUNK_SIZE {
            return; // a listing chunk or a TYPE A conversion: made elsewhere, sized otherwise
        }
        if let Ok(mut free) = self.free.lock() {
            if free.len() < MAX_POOLED {
                free.push(buffer);
            }
        }
    }
}
