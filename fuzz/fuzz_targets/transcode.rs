//! TYPE A converters over arbitrary bytes, fed whole and in chunks.
//!
//! Input: `[unused] [unused] [k] [k chunk sizes] [data]` (see `ftp_proto_fuzz`).
//!
//! Oracles: both converters match a byte-by-byte reference model whatever the chunking; each call stays
//! within `max_output_len`; LF -> CRLF -> LF gives back data without CR; `Transcoder` agrees with the
//! converters, and `Transcoder::Identity` hands back the very same buffer.
#![no_main]

use bytes::Bytes;
use ftp_proto::transcode::{CrLfToLf, LfToCrLf, Transcoder};
use ftp_proto_fuzz::{StreamInput, chunks};
use libfuzzer_sys::fuzz_target;

/// LF -> CRLF, except for an LF that already follows a CR.
fn lf_to_crlf_model(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = None;
    for &b in data {
        if b == b'\n' && prev != Some(b'\r') {
            out.push(b'\r');
        }
        out.push(b);
        prev = Some(b);
    }
    out
}

/// CRLF -> LF; any other CR stays.
fn crlf_to_lf_model(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in data.iter().enumerate() {
        if !(b == b'\r' && data.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

fn to_network<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut converter = LfToCrLf::new();
    let mut out = Vec::new();
    for piece in pieces {
        let before = out.len();
        converter.convert(piece, &mut out);
        assert!(out.len() - before <= LfToCrLf::max_output_len(piece));
    }
    out
}

fn from_network<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, ends_with_cr: bool) -> Vec<u8> {
    let mut converter = CrLfToLf::new();
    let mut out = Vec::new();
    for piece in pieces {
        let before = out.len();
        converter.convert(piece, &mut out);
        assert!(out.len() - before <= CrLfToLf::max_output_len(piece));
    }
    assert_eq!(
        converter.has_held_cr(),
        ends_with_cr,
        "held CR at end of stream"
    );
    converter.finish(&mut out);
    assert!(!converter.has_held_cr());
    out
}

/// Runs `transcoder` over the pieces with `process`, and a clone with `process_into`; both must agree.
fn transcode<'a>(transcoder: Transcoder, pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut by_bytes = transcoder.clone();
    let mut by_vec = transcoder;
    let (mut out, mut out_into) = (Vec::new(), Vec::new());
    for piece in pieces {
        out.extend_from_slice(&by_bytes.process(Bytes::copy_from_slice(piece)));
        by_vec.process_into(piece, &mut out_into);
    }
    out.extend_from_slice(&by_bytes.finish());
    by_vec.finish_into(&mut out_into);
    assert_eq!(out, out_into, "process and process_into differ");
    out
}

fuzz_target!(|data: &[u8]| {
    let input = StreamInput::new(data);
    let body = input.body;
    let ends_with_cr = body.last() == Some(&b'\r');

    let network = lf_to_crlf_model(body);
    assert_eq!(to_network([body]), network);
    assert_eq!(
        to_network(input.chunks()),
        network,
        "LfToCrLf depends on chunking"
    );
    assert_eq!(
        to_network(chunks(body, &[])),
        network,
        "LfToCrLf byte by byte"
    );

    let local = crlf_to_lf_model(body);
    assert_eq!(from_network([body], ends_with_cr), local);
    assert_eq!(
        from_network(input.chunks(), ends_with_cr),
        local,
        "CrLfToLf depends on chunking"
    );
    assert_eq!(
        from_network(chunks(body, &[]), ends_with_cr),
        local,
        "CrLfToLf byte by byte"
    );

    if !body.contains(&b'\r') {
        assert_eq!(
            from_network(chunks(&network, input.sizes), false),
            body,
            "LF -> CRLF -> LF is not the identity"
        );
        assert!(!network.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    }

    assert_eq!(transcode(Transcoder::to_network(), input.chunks()), network);
    assert_eq!(transcode(Transcoder::from_network(), input.chunks()), local);
    assert_eq!(transcode(Transcoder::Identity, input.chunks()), body);

    let mut identity = Transcoder::default();
    assert!(identity.is_identity());
    let chunk = Bytes::copy_from_slice(body);
    let same = identity.process(chunk.clone());
    assert_eq!(
        (same.as_ptr(), same.len()),
        (chunk.as_ptr(), chunk.len()),
        "Identity copied"
    );
    assert!(identity.finish().is_empty());
});
