//! TYPE A / TYPE I data conversion (RFC 959 §3.1.1).
//!
//! In `TYPE I` (image) the data connection carries the file's bytes unchanged. In `TYPE A` (ASCII) it
//! carries "network ASCII", whose line ends are CRLF (RFC 959 §3.1.1.1), while files on a Unix host end
//! lines with LF. So a sender converts LF to CRLF ([`LfToCrLf`]) and a receiver converts CRLF to LF
//! ([`CrLfToLf`]). Like `vsftpd` and `ProFTPD`, the converters touch only line ends; they do not check that
//! the data is 7-bit ASCII, and a CR that is not part of a line end passes through unchanged.
//!
//! Both converters stream: data arrives in chunks, and a CRLF split across two chunks is handled (each keeps
//! one bit of state between calls), so the output never depends on where the chunks were split. They scan
//! with `memchr` (its AVX2 searcher, built once per chunk, where the CPU has AVX2) and copy the runs
//! between line ends in one go.
//!
//! [`Transcoder`] is what a session holds for a transfer: it picks the direction (or none, for `TYPE I`)
//! and converts [`Bytes`] chunks, returning `TYPE I` chunks unchanged without copying them.
//!
//! ```
//! use bytes::Bytes;
//! use ftp_proto::transcode::Transcoder;
//!
//! // Sending a local file in TYPE A (RETR).
//! let mut send = Transcoder::to_network();
//! assert_eq!(send.process(Bytes::from_static(b"one\ntwo\n")), &b"one\r\ntwo\r\n"[..]);
//!
//! // Receiving in TYPE A (STOR), with a CRLF split across two chunks.
//! let mut receive = Transcoder::from_network();
//! let mut file = Vec::new();
//! file.extend_from_slice(&receive.process(Bytes::from_static(b"one\r")));
//! file.extend_from_slice(&receive.process(Bytes::from_static(b"\ntwo\r")));
//! file.extend_from_slice(&receive.finish()); // end of data: a trailing CR is kept
//! assert_eq!(file, b"one\ntwo\r");
//! ```

use bytes::Bytes;
use memchr::memchr_iter;

// memchr's AVX2 single-byte searcher, which the converters build once per chunk when the CPU has AVX2.
//
// Why: text has a line end every 60 bytes or so, and `memchr_iter` starts each search afresh (a call
// through memchr's CPU-dispatch function pointer and a new vector set-up per line end). Building the AVX2
// searcher once per chunk and iterating with it is the same search without that per-line cost: about 15 %
// more throughput for both converters on 64 KiB chunks of ~60-byte lines. It is memchr's safe API:
// `One::new` checks for AVX2 at run time and returns `None` without it, in which case (as on every other
// architecture) the converters use `memchr_iter`. Both paths run the same generic loop (`convert_at`), and
// a proptest checks that the portable path gives the same output.
#[cfg(target_arch = "x86_64")]
use memchr::arch::x86_64::avx2::memchr::One as Avx2Searcher;

const LF: u8 = b'\n';
const CR: u8 = b'\r';

/// Local to network line ends: LF becomes CRLF.
///
/// A CR already immediately before the LF is not doubled, also when the CR ended the previous chunk, so
/// text that already has CRLF line ends passes through unchanged.
///
/// ```
/// use ftp_proto::transcode::LfToCrLf;
///
/// let mut converter = LfToCrLf::new();
/// let mut out = Vec::new();
/// converter.convert(b"a\nb\r", &mut out);
/// converter.convert(b"\n\n", &mut out);
/// assert_eq!(out, b"a\r\nb\r\n\r\n");
/// ```
#[derive(Debug, Default, Clone)]
pub struct LfToCrLf {
    /// The last byte converted was a CR.
    after_cr: bool,
}

impl LfToCrLf {
    /// A converter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts `input` and appends the result to `out`.
    ///
    /// Reserves room for the worst case only if `out` lacks it (then counting the LFs first, so the
    /// reservation is exact for text without CRs), so a reused buffer is not reallocated.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let spare = out.capacity().saturating_sub(out.len());
        if spare < input.len().saturating_mul(2) {
            out.reserve(Self::max_output_len(input));
        }
        self.convert_reserved(input, out);
    }

    /// The most bytes [`convert`](Self::convert) can append for `input`: its length plus its LFs.
    pub fn max_output_len(input: &[u8]) -> usize {
        input.len().saturating_add(memchr_iter(LF, input).count())
    }

    /// Converts without reserving: the caller has made room.
    fn convert_reserved(&mut self, input: &[u8], out: &mut Vec<u8>) {
        #[cfg(target_arch = "x86_64")]
        if let Some(searcher) = Avx2Searcher::new(LF) {
            return self.convert_at(input, searcher.iter(input), out);
        }
        self.convert_at(input, memchr_iter(LF, input), out);
    }

    /// Converts `input`, whose LFs are at `lfs` (ascending).
    fn convert_at(&mut self, input: &[u8], lfs: impl Iterator<Item = usize>, out: &mut Vec<u8>) {
        let Some(&last) = input.last() else {
            return;
        };
        let mut run_start = 0;
        for lf in lfs {
            let run = input.get(run_start..lf).unwrap_or_default();
            // Is the byte before this LF a CR? If the run is empty that byte is the previous LF, or at the
            // very start, the end of the previous chunk.
            let after_cr = match run.last() {
                Some(&byte) => byte == CR,
                None => run_start == 0 && self.after_cr,
            };
            out.extend_from_slice(run);
            out.extend_from_slice(if after_cr { b"\n" } else { b"\r\n" });
            run_start = lf + 1;
        }
        out.extend_from_slice(input.get(run_start..).unwrap_or_default());
        self.after_cr = last == CR;
    }
}

/// Network to local line ends: CRLF becomes LF.
///
/// A CR not followed by LF is kept. A CR at the end of a chunk is held back until the next byte shows
/// whether it starts a CRLF; at the end of the stream, [`finish`](Self::finish) releases it.
///
/// ```
/// use ftp_proto::transcode::CrLfToLf;
///
/// let mut converter = CrLfToLf::new();
/// let mut out = Vec::new();
/// converter.convert(b"a\r\nb\r", &mut out);
/// assert_eq!(out, b"a\nb"); // the CR is held
/// converter.convert(b"\rc\r", &mut out);
/// converter.finish(&mut out);
/// assert_eq!(out, b"a\nb\r\rc\r");
/// ```
#[derive(Debug, Default, Clone)]
pub struct CrLfToLf {
    /// A CR ended the last chunk and has not been output yet.
    held_cr: bool,
}

impl CrLfToLf {
    /// A converter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts `input` and appends the result (at most `input.len() + 1` bytes) to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(Self::max_output_len(input));
        self.convert_reserved(input, out);
    }

    /// The most bytes [`convert`](Self::convert) can append for `input`: its length plus a held CR.
    pub fn max_output_len(input: &[u8]) -> usize {
        input.len().saturating_add(1)
    }

    /// Ends the stream: appends a held CR, if any, and resets the converter.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.held_cr) {
            out.push(CR);
        }
    }

    /// Whether a CR from the end of the last chunk is held back.
    pub fn has_held_cr(&self) -> bool {
        self.held_cr
    }

    /// Converts without reserving: the caller has made room.
    fn convert_reserved(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let input = self.release_held_cr(input, out);
        #[cfg(target_arch = "x86_64")]
        if let Some(searcher) = Avx2Searcher::new(CR) {
            return self.convert_at(input, searcher.iter(input), out);
        }
        self.convert_at(input, memchr_iter(CR, input), out);
    }

    /// Outputs a CR held from the last chunk (as LF if `input` starts with its LF, which is then
    /// consumed); returns the rest of `input`.
    fn release_held_cr<'i>(&mut self, input: &'i [u8], out: &mut Vec<u8>) -> &'i [u8] {
        if !self.held_cr {
            return input;
        }
        let Some((&first, rest)) = input.split_first() else {
            return input; // still held: the next byte has not arrived
        };
        self.held_cr = false;
        if first == LF {
            out.push(LF);
            rest
        } else {
            out.push(CR);
            input
        }
    }

    /// Converts `input` (with no held CR before it), whose CRs are at `crs` (ascending).
    fn convert_at(&mut self, input: &[u8], crs: impl Iterator<Item = usize>, out: &mut Vec<u8>) {
        // Only CRs need work. Each one starts a CRLF (copy the run before it, emit LF, skip both bytes),
        // is followed by another byte (it stays in the run), or ends the chunk (it is held).
        let mut run_start = 0;
        for cr in crs {
            let next = cr + 1;
            match input.get(next) {
                Some(&LF) => {
                    out.extend_from_slice(input.get(run_start..cr).unwrap_or_default());
                    out.push(LF);
                    run_start = next + 1;
                }
                Some(_) => {}
                None => {
                    out.extend_from_slice(input.get(run_start..cr).unwrap_or_default());
                    self.held_cr = true;
                    run_start = input.len();
                }
            }
        }
        out.extend_from_slice(input.get(run_start..).unwrap_or_default());
    }
}

/// The conversion a transfer's data goes through, chosen from the transfer type and direction.
///
/// ```
/// use bytes::Bytes;
/// use ftp_proto::transcode::Transcoder;
///
/// let mut image = Transcoder::Identity; // TYPE I
/// let chunk = Bytes::from_static(b"\x00binary\r\n");
/// let out = image.process(chunk.clone());
/// assert_eq!(out.as_ptr(), chunk.as_ptr()); // no copy
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Transcoder {
    /// `TYPE I` (or a `TYPE A` transfer between hosts that both use CRLF): bytes pass unchanged.
    #[default]
    Identity,
    /// `TYPE A` data going to the network (RETR, LIST): LF becomes CRLF.
    ToNetwork(LfToCrLf),
    /// `TYPE A` data coming from the network (STOR, APPE): CRLF becomes LF.
    FromNetwork(CrLfToLf),
}

impl Transcoder {
    /// `TYPE A`, sending: [`Transcoder::ToNetwork`] at the start of a stream.
    pub fn to_network() -> Self {
        Transcoder::ToNetwork(LfToCrLf::new())
    }

    /// `TYPE A`, receiving: [`Transcoder::FromNetwork`] at the start of a stream.
    pub fn from_network() -> Self {
        Transcoder::FromNetwork(CrLfToLf::new())
    }

    /// Converts one chunk.
    ///
    /// [`Identity`](Transcoder::Identity) returns the same `Bytes` (no copy). The converters allocate one
    /// buffer per non-empty chunk, sized up front for the worst case (`ToNetwork`: length + LF count,
    /// exact for text without CRs; `FromNetwork`: length + 1). When the output comes out shorter than
    /// that, `Bytes` adds its small shared header to keep the spare capacity rather than reallocate; use
    /// [`process_into`](Self::process_into) with a reused buffer to avoid allocating at all.
    pub fn process(&mut self, chunk: Bytes) -> Bytes {
        match self {
            Transcoder::Identity => chunk,
            _ if chunk.is_empty() => Bytes::new(),
            Transcoder::ToNetwork(converter) => {
                let mut out = Vec::with_capacity(LfToCrLf::max_output_len(&chunk));
                converter.convert_reserved(&chunk, &mut out);
                Bytes::from(out)
            }
            Transcoder::FromNetwork(converter) => {
                let mut out = Vec::with_capacity(CrLfToLf::max_output_len(&chunk));
                converter.convert_reserved(&chunk, &mut out);
                Bytes::from(out)
            }
        }
    }

    /// Converts `input` and appends the result to `out` (for callers that reuse their buffers).
    /// `Identity` copies.
    pub fn process_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match self {
            Transcoder::Identity => out.extend_from_slice(input),
            Transcoder::ToNetwork(converter) => converter.convert(input, out),
            Transcoder::FromNetwork(converter) => converter.convert(input, out),
        }
    }

    /// Ends the stream: returns any held byte (a trailing CR in `FromNetwork`), or an empty `Bytes`.
    pub fn finish(&mut self) -> Bytes {
        match self {
            Transcoder::FromNetwork(converter) if converter.held_cr => {
                converter.held_cr = false;
                Bytes::from_static(b"\r")
            }
            _ => Bytes::new(),
        }
    }

    /// Ends the stream, appending any held byte to `out`.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        if let Transcoder::FromNetwork(converter) = self {
            converter.finish(out);
        }
    }

    /// Whether this is [`Transcoder::Identity`] (data passes unchanged).
    pub fn is_identity(&self) -> bool {
        matches!(self, Transcoder::Identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to_network(chunks: &[&[u8]]) -> Vec<u8> {
        let mut converter = LfToCrLf::new();
        let mut out = Vec::new();
        for chunk in chunks {
            converter.convert(chunk, &mut out);
        }
        out
    }

    fn from_network(chunks: &[&[u8]]) -> Vec<u8> {
        let mut converter = CrLfToLf::new();
        let mut out = Vec::new();
        for chunk in chunks {
            converter.convert(chunk, &mut out);
        }
        converter.finish(&mut out);
        out
    }

    /// Runs chunks through a `Transcoder`'s `Bytes` path, then `finish`.
    fn through(mut transcoder: Transcoder, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(&transcoder.process(Bytes::copy_from_slice(chunk)));
        }
        out.extend_from_slice(&transcoder.finish());
        out
    }

    #[test]
    fn to_network_table() {
        let cases: &[(&[&[u8]], &[u8])] = &[
            (&[b"a\nb\n"], b"a\r\nb\r\n"),
            (&[b"\n\n"], b"\r\n\r\n"),
            (&[b"a\r\nb"], b"a\r\nb"),
            (&[b"a\r", b"\nb"], b"a\r\nb"),
            (&[b"a\r", b"", b"\nb"], b"a\r\nb"),
            (&[b"a\n", b"\n"], b"a\r\n\r\n"),
            (&[b"\r\r\n"], b"\r\r\n"),
            (&[b"a\rb\n"], b"a\rb\r\n"),
            (&[b"\n"], b"\r\n"),
            (&[b"", b""], b""),
            (&[b"no line end"], b"no line end"),
            (&[b"\xff\x00\n\xc3"], b"\xff\x00\r\n\xc3"),
        ];
        for (chunks, expected) in cases {
            assert_eq!(to_network(chunks), *expected, "{chunks:?}");
            assert_eq!(
                through(Transcoder::to_network(), chunks),
                *expected,
                "{chunks:?}"
            );
        }
    }

    #[test]
    fn from_network_table() {
        let cases: &[(&[&[u8]], &[u8])] = &[
            (&[b"a\r\nb\r\n"], b"a\nb\n"),
            (&[b"a\r", b"\nb"], b"a\nb"),
            (&[b"a\r", b"", b"\nb"], b"a\nb"),
            (&[b"\r\r\n"], b"\r\n"),
            (&[b"\r", b"\r", b"\n"], b"\r\n"),
            (&[b"a\r"], b"a\r"),
            (&[b"a\r", b""], b"a\r"),
            (&[b"a\rb"], b"a\rb"),
            (&[b"\n\n"], b"\n\n"),
            (&[b"\r"], b"\r"),
            (&[b"\r", b"x"], b"\rx"),
            (&[b"", b""], b""),
            (&[b"\r\n\r\n"], b"\n\n"),
        ];
        for (chunks, expected) in cases {
            assert_eq!(from_network(chunks), *expected, "{chunks:?}");
            assert_eq!(
                through(Transcoder::from_network(), chunks),
                *expected,
                "{chunks:?}"
            );
        }
    }

    #[test]
    fn held_cr_and_finish() {
        let mut converter = CrLfToLf::new();
        let mut out = Vec::new();
        converter.convert(b"x\r", &mut out);
        assert_eq!(out, b"x");
        assert!(converter.has_held_cr());
        converter.finish(&mut out);
        assert_eq!(out, b"x\r");
        assert!(!converter.has_held_cr());
        // finish resets: a second finish adds nothing.
        converter.finish(&mut out);
        assert_eq!(out, b"x\r");

        let mut transcoder = Transcoder::from_network();
        assert_eq!(transcoder.process(Bytes::from_static(b"\r")), Bytes::new());
        assert_eq!(transcoder.finish(), Bytes::from_static(b"\r"));
        assert_eq!(transcoder.finish(), Bytes::new());
        assert_eq!(Transcoder::to_network().finish(), Bytes::new());
        assert_eq!(Transcoder::Identity.finish(), Bytes::new());
    }

    #[test]
    fn identity_does_not_copy() {
        let chunk = Bytes::from(vec![b'\n'; 1000]);
        let pointer = chunk.as_ptr();
        let mut identity = Transcoder::Identity;
        let out = identity.process(chunk);
        assert_eq!(out.as_ptr(), pointer);
        assert_eq!(out.len(), 1000);
        assert!(identity.is_identity());
    }

    #[test]
    fn process_sizes_the_buffer_exactly_for_lf_text() {
        let text: Vec<u8> = b"line of text\n".repeat(100);
        let out = Transcoder::to_network().process(Bytes::from(text.clone()));
        assert_eq!(out.len(), text.len() + 100);
        assert_eq!(LfToCrLf::max_output_len(&text), out.len());
    }

    #[test]
    fn convert_reuses_a_large_enough_buffer() {
        let mut out = Vec::with_capacity(64);
        let pointer = out.as_ptr();
        for _ in 0..10 {
            out.clear();
            LfToCrLf::new().convert(b"a\nb\nc\n", &mut out);
            CrLfToLf::new().convert(b"a\r\nb", &mut out);
        }
        assert_eq!(out.as_ptr(), pointer);
        assert_eq!(out, b"a\r\nb\r\nc\r\na\nb");
    }

    #[test]
    fn process_into_matches_process() {
        let input = b"a\nb\r\nc\r";
        for make in [
            Transcoder::to_network,
            Transcoder::from_network,
            Transcoder::default,
        ] {
            let mut out = Vec::new();
            let mut transcoder = make();
            transcoder.process_into(input, &mut out);
            transcoder.finish_into(&mut out);
            assert_eq!(out, through(make(), &[input]));
        }
    }

    /// Text-like bytes with plenty of CR and LF.
    fn texty() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![4 => b'a'..=b'c', 2 => Just(LF), 2 => Just(CR), 1 => any::<u8>()],
            0..300,
        )
    }

    /// Splits `input` at the given points (taken modulo its length + 1).
    fn split<'a>(input: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = points.iter().map(|p| p % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            chunks.push(input.get(start..cut).unwrap_or_default());
            start = cut;
        }
        chunks
    }

    /// Straightforward byte-at-a-time versions of the rules, to check the memchr paths against.
    fn reference_to_network(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut previous = None;
        for &byte in input {
            if byte == LF && previous != Some(CR) {
                out.push(CR);
            }
            out.push(byte);
            previous = Some(byte);
        }
        out
    }

    fn reference_from_network(input: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        let mut bytes = input.iter().peekable();
        while let Some(&byte) = bytes.next() {
            if byte == CR && bytes.peek() == Some(&&LF) {
                continue;
            }
            out.push(byte);
        }
        out
    }

    proptest! {
        #[test]
        fn to_network_chunking_never_matters(input in texty(), points in prop::collection::vec(any::<usize>(), 0..10)) {
            let whole = to_network(&[&input]);
            prop_assert_eq!(&whole, &reference_to_network(&input));
            prop_assert_eq!(&to_network(&split(&input, &points)), &whole);
            let bytewise: Vec<&[u8]> = input.chunks(1).collect();
            prop_assert_eq!(&to_network(&bytewise), &whole);
            prop_assert_eq!(&through(Transcoder::to_network(), &split(&input, &points)), &whole);
        }

        #[test]
        fn from_network_chunking_never_matters(input in texty(), points in prop::collection::vec(any::<usize>(), 0..10)) {
            let whole = from_network(&[&input]);
            prop_assert_eq!(&whole, &reference_from_network(&input));
            prop_assert_eq!(&from_network(&split(&input, &points)), &whole);
            let bytewise: Vec<&[u8]> = input.chunks(1).collect();
            prop_assert_eq!(&from_network(&bytewise), &whole);
            prop_assert_eq!(&through(Transcoder::from_network(), &split(&input, &points)), &whole);
        }

        /// The portable `memchr_iter` path, which a CPU without AVX2 (or another architecture) takes,
        /// gives the same output as `convert` (which takes the AVX2 path where it can).
        #[test]
        fn portable_search_path_agrees(input in texty(), points in prop::collection::vec(any::<usize>(), 0..10)) {
            let chunks = split(&input, &points);
            let mut converter = LfToCrLf::new();
            let mut out = Vec::new();
            for chunk in &chunks {
                converter.convert_at(chunk, memchr_iter(LF, chunk), &mut out);
            }
            prop_assert_eq!(out, to_network(&chunks));

            let mut converter = CrLfToLf::new();
            let mut out = Vec::new();
            for chunk in &chunks {
                let rest = converter.release_held_cr(chunk, &mut out);
                converter.convert_at(rest, memchr_iter(CR, rest), &mut out);
            }
            converter.finish(&mut out);
            prop_assert_eq!(out, from_network(&chunks));
        }

        #[test]
        fn round_trip_without_cr(input in texty(), points in prop::collection::vec(any::<usize>(), 0..10)) {
            let input: Vec<u8> = input.into_iter().filter(|&b| b != CR).collect();
            let network = to_network(&split(&input, &points));
            prop_assert_eq!(from_network(&split(&network, &points)), input);
        }

        #[test]
        fn every_lf_follows_a_cr_on_the_network(input in texty(), points in prop::collection::vec(any::<usize>(), 0..10)) {
            let network = to_network(&split(&input, &points));
            for (at, _) in network.iter().enumerate().filter(|&(_, &b)| b == LF) {
                prop_assert_eq!(at.checked_sub(1).and_then(|p| network.get(p)), Some(&CR));
            }
            // Exactly the LFs without a CR before them gain one byte; nothing else changes.
            let bare_lfs = input
                .iter()
                .enumerate()
                .filter(|&(at, &b)| b == LF && (at == 0 || input.get(at - 1) != Some(&CR)))
                .count();
            prop_assert_eq!(network.len(), input.len() + bare_lfs);
        }

        #[test]
        fn identity_keeps_the_pointer(input in prop::collection::vec(any::<u8>(), 0..100)) {
            let chunk = Bytes::from(input);
            let pointer = chunk.as_ptr();
            let out = Transcoder::Identity.process(chunk.clone());
            prop_assert_eq!(out.as_ptr(), pointer);
            prop_assert_eq!(out, chunk);
        }
    }
}
