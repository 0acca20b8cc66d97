//! `Reply` encode then `ReplyParser` parse.
//!
//! Input: two bytes pick the code (`100 + u16 % 500`), the third is a separator, and the rest is split at
//! that separator into the reply's lines. Lines may hold any byte, CR and LF included.
//!
//! Oracle (as `reply.rs` documents and its `as_received` test helper models): the wire form has exactly one
//! LF per line (CR and LF inside lines are escaped, so nothing can be injected), its length is
//! `encoded_len()`, and parsing it gives the reply with LF written as NUL, CR as CR NUL, and a space before
//! inner lines that start with a digit. Lines without CR, LF or a leading digit come back unchanged.
#![no_main]

use ftp_proto::reply::{Reply, ReplyCode, ReplyParser, ReplyParserLimits};
use ftp_proto_fuzz::chunks;
use libfuzzer_sys::fuzz_target;

/// The encoder's escape: LF becomes NUL, CR becomes CR NUL.
fn escaped(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    for &b in line {
        match b {
            b'\n' => out.push(0),
            b'\r' => out.extend_from_slice(b"\r\0"),
            other => out.push(other),
        }
    }
    out
}

/// What a peer reads back after `encode`.
fn as_received(lines: &[&[u8]], code: ReplyCode) -> Reply {
    let last = lines.len().saturating_sub(1);
    let received = lines.iter().enumerate().map(|(i, line)| {
        let inner = i != 0 && i != last;
        let mut out = Vec::new();
        if inner && line.first().is_some_and(u8::is_ascii_digit) {
            out.push(b' ');
        }
        out.extend_from_slice(&escaped(line));
        out
    });
    Reply::multiline(code, received)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[hi, lo, separator], text)) = data.split_first_chunk::<3>() else {
        return;
    };
    let Some(code) = ReplyCode::new(100 + u16::from_be_bytes([hi, lo]) % 500) else {
        panic!("code out of range");
    };
    let lines: Vec<&[u8]> = text.split(|&b| b == separator).collect();
    let reply = Reply::multiline(code, lines.iter().copied());
    assert_eq!(reply.line_count(), lines.len());
    assert!(
        reply.lines().eq(lines.iter().copied()),
        "lines() differs from the input lines"
    );
    if let [only] = lines[..] {
        assert_eq!(reply, Reply::new(code, only));
    }

    let wire = reply.to_bytes();
    assert_eq!(wire.len(), reply.encoded_len(), "encoded_len is not exact");
    let lfs = wire.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(lfs, lines.len(), "an LF was injected into the wire form");
    assert!(wire.starts_with(&code.digits()) && wire.ends_with(b"\r\n"));

    let expected = as_received(&lines, code);
    if !text.iter().any(|b| matches!(b, b'\r' | b'\n'))
        && !lines
            .iter()
            .skip(1)
            .any(|l| l.first().is_some_and(u8::is_ascii_digit))
    {
        assert_eq!(
            expected, reply,
            "model: plain lines must come back unchanged"
        );
    }

    let unlimited = ReplyParserLimits {
        max_line_len: usize::MAX,
        max_reply_bytes: usize::MAX,
    };
    let mut parser = ReplyParser::new(unlimited);
    assert_eq!(
        parser.parse(&wire),
        (wire.len(), Some(Ok(expected.clone())))
    );
    assert!(!parser.is_mid_reply());

    // The same wire bytes one at a time: exactly one reply, at the last byte.
    let mut parser = ReplyParser::new(unlimited);
    let outcomes: Vec<_> = chunks(&wire, &[])
        .filter_map(|byte| parser.parse(byte).1)
        .collect();
    assert_eq!(outcomes, [Ok(expected)]);
});
