//! `LineFramer` over arbitrary bytes, fed whole and in chunks.
//!
//! Input: `[max_line_len] [mode] [k] [k chunk sizes] [stream]` (see `ftp_proto_fuzz`); `max_line_len` is
//! small (0..64) so the overlong-line paths run, and bit 0 of `mode` selects `LineEnding::CrLfOnly`.
//!
//! Oracles: identical frames whole, chunked and byte by byte; the call contract (no frame means all input
//! consumed, progress on non-empty input); lines are non-empty, LF-free and within the bound, and so is the
//! buffer; and for a stream without CR and IAC a plain model (split at LF, skip empty lines, long lines
//! become `TooLong`) gives the same frames, also with every LF written as CRLF.
#![no_main]

use ftp_proto::framing::{Frame, FramerConfig, LineEnding, LineFramer, TelnetVerb};
use ftp_proto_fuzz::{StreamInput, chunks};
use libfuzzer_sys::fuzz_target;

/// An owned copy of a [`Frame`], so frames from different runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Line(Vec<u8>),
    TooLong,
    BareLf,
    Negotiation(TelnetVerb, u8),
}

fn owned(frame: Frame<'_>) -> Owned {
    match frame {
        Frame::Line(line) => Owned::Line(line.to_vec()),
        Frame::TooLong => Owned::TooLong,
        Frame::BareLf => Owned::BareLf,
        Frame::Negotiation { verb, option } => Owned::Negotiation(verb, option),
        other => panic!("a frame kind this target does not know: {other:?}"),
    }
}

/// Feeds every piece until it is used up, checking the contract after each call.
fn run<'a>(
    config: FramerConfig,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Owned>, LineFramer) {
    let mut framer = LineFramer::new(config);
    let mut frames = Vec::new();
    for piece in pieces {
        let mut input = piece;
        loop {
            let (consumed, frame) = framer.next_frame(input);
            assert!(consumed <= input.len());
            let frame = frame.map(owned);
            assert!(
                framer.buffered_len() <= config.max_line_len,
                "buffer over the bound"
            );
            input = &input[consumed..];
            match frame {
                Some(frame) => {
                    assert!(consumed > 0, "a frame without consuming input");
                    if let Owned::Line(line) = &frame {
                        assert!(!line.is_empty() && line.len() <= config.max_line_len);
                        assert!(!line.contains(&b'\n'));
                    }
                    frames.push(frame);
                }
                None => {
                    assert!(input.is_empty(), "no frame but input left");
                    break;
                }
            }
        }
    }
    (frames, framer)
}

/// The frames of a stream with no CR and no IAC, each line ended by LF (or CRLF if `crlf`).
fn model(body: &[u8], config: FramerConfig, crlf: bool) -> Vec<Owned> {
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    lines.pop(); // not terminated yet
    let strict = config.line_ending == LineEnding::CrLfOnly;
    lines
        .into_iter()
        .filter_map(|line| match line {
            _ if line.len() > config.max_line_len => Some(Owned::TooLong),
            _ if strict && !crlf => Some(Owned::BareLf),
            [] => None,
            _ => Some(Owned::Line(line.to_vec())),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let input = StreamInput::new(data);
    let [max_line_len, mode] = input.settings;
    let line_ending = if mode & 1 == 1 {
        LineEnding::CrLfOnly
    } else {
        LineEnding::CrLfOrLf
    };
    let config = FramerConfig::new()
        .with_max_line_len(usize::from(max_line_len % 64))
        .with_line_ending(line_ending);

    let (whole, whole_framer) = run(config, [input.body]);
    let (chunked, chunked_framer) = run(config, input.chunks());
    assert_eq!(whole, chunked, "chunking changed the frames");
    assert_eq!(whole_framer.is_mid_line(), chunked_framer.is_mid_line());
    assert_eq!(whole_framer.buffered_len(), chunked_framer.buffered_len());
    let (bytewise, _) = run(config, chunks(input.body, &[]));
    assert_eq!(whole, bytewise, "byte-at-a-time changed the frames");

    if !input.body.iter().any(|&b| b == b'\r' || b == 0xff) {
        assert_eq!(
            whole,
            model(input.body, config, false),
            "differs from the LF model"
        );
        let mut with_crlf = Vec::with_capacity(input.body.len() * 2);
        for &b in input.body {
            if b == b'\n' {
                with_crlf.push(b'\r');
            }
            with_crlf.push(b);
        }
        assert_eq!(
            run(config, [&with_crlf[..]]).0,
            model(input.body, config, true),
            "differs from the CRLF model"
        );
    }
});
