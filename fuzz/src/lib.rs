//! Helpers shared by the fuzz targets: reading settings and chunk sizes out of the fuzz input.
//!
//! Targets that test streaming (chunking independence, buffer bounds) read their input as
//!
//! ```text
//! [setting0] [setting1] [k] [size * (k % 8)] [body ...]
//! ```
//!
//! Two setting bytes pick the limits under test, then `k % 8` chunk-size bytes say how to split the body.
//! Missing bytes read as zero, so every input is valid. Seeds in `fuzz/seeds/<target>/` are real protocol
//! text behind such a header (see `fuzz/README.md`).

/// A fuzz input split into settings, chunk sizes and the body to stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamInput<'a> {
    /// Two bytes that select limits or modes; their meaning is up to the target.
    pub settings: [u8; 2],
    /// Chunk sizes for [`chunks`], used in turn and repeated.
    pub sizes: &'a [u8],
    /// The bytes to feed.
    pub body: &'a [u8],
}

impl<'a> StreamInput<'a> {
    /// Splits `data` as described in the crate docs.
    pub fn new(data: &'a [u8]) -> Self {
        let (settings, rest) = match data.split_first_chunk::<2>() {
            Some((settings, rest)) => (*settings, rest),
            None => ([data.first().copied().unwrap_or(0), 0], &[][..]),
        };
        let (k, rest) = rest
            .split_first()
            .map_or((0, rest), |(&k, rest)| (k % 8, rest));
        let (sizes, body) = rest.split_at(usize::from(k).min(rest.len()));
        StreamInput {
            settings,
            sizes,
            body,
        }
    }

    /// The body cut into chunks by [`chunks`].
    pub fn chunks(&self) -> Chunks<'a> {
        chunks(self.body, self.sizes)
    }
}

/// Cuts `body` into consecutive chunks whose lengths cycle through `sizes`. A size of 0 yields an empty
/// chunk (feeding nothing must be harmless too). With no sizes, or only zeros, the chunks are single bytes:
/// the hardest case for a streaming parser.
pub fn chunks<'a>(body: &'a [u8], sizes: &'a [u8]) -> Chunks<'a> {
    let sizes: &[u8] = if sizes.iter().all(|&s| s == 0) {
        &[1]
    } else {
        sizes
    };
    Chunks {
        rest: body,
        sizes,
        next: 0,
    }
}

/// Iterator returned by [`chunks`].
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a [u8],
    sizes: &'a [u8],
    next: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let size = self
            .sizes
            .get(self.next % self.sizes.len())
            .copied()
            .unwrap_or(1);
        self.next = self.next.wrapping_add(1);
        let (chunk, rest) = self.rest.split_at(usize::from(size).min(self.rest.len()));
        self.rest = rest;
        Some(chunk)
    }
}

/// Reads structured values off the front of a fuzz input, for targets that decode a sequence of
/// operations. Every read succeeds: a missing byte reads as zero, so every input is valid and truncating
/// one only changes its tail. [`Reader::is_empty`] tells a decoding loop when to stop.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { rest: data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(std::array::from_fn(|_| self.u8()))
    }

    /// The next eight bytes, big-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(std::array::from_fn(|_| self.u8()))
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        taken
    }

    /// A length byte, then that many bytes: a short byte string.
    pub fn short_bytes(&mut self) -> &'a [u8] {
        let n = self.u8();
        self.bytes(usize::from(n))
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}
