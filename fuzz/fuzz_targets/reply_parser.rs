//! `ReplyParser` over arbitrary bytes with small limits, fed whole and in chunks.
//!
//! Input: `[max_line_len] [max_reply_bytes] [k] [k chunk sizes] [stream]` (see `ftp_proto_fuzz`).
//!
//! Oracles: the sequence of results does not depend on chunking (whole stream, the sizes from the input,
//! one byte at a time); the parser never holds more than its documented bound; every reply it returns is
//! within the limits; each call makes progress; `reset` gives a parser that reads a clean reply.
#![no_main]

use ftp_proto::reply::{Reply, ReplyError, ReplyParser, ReplyParserLimits};
use ftp_proto_fuzz::{StreamInput, chunks};
use libfuzzer_sys::fuzz_target;

/// Feeds each chunk until it is used up, checking the call contract, and returns every outcome.
fn feed<'a>(
    parser: &mut ReplyParser,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Result<Reply, ReplyError>> {
    let limits = parser.limits();
    // Documented: max(max_line_len, 4) + 1 bytes of a partial line, plus max_reply_bytes of reply text.
    let bound = limits.max_line_len.max(4) + 1 + limits.max_reply_bytes;
    let mut results = Vec::new();
    for piece in pieces {
        let mut input = piece;
        loop {
            let (consumed, outcome) = parser.parse(input);
            assert!(consumed <= input.len(), "consumed past the input");
            assert!(
                parser.buffered_len() <= bound,
                "buffered {} > {bound}",
                parser.buffered_len()
            );
            match outcome {
                Some(result) => {
                    assert!(consumed > 0, "an outcome without consuming input");
                    results.push(result);
                }
                None => assert_eq!(consumed, input.len(), "no outcome but input left"),
            }
            input = &input[consumed..];
            if input.is_empty() {
                break;
            }
        }
    }
    results
}

fn check_reply(reply: &Reply, limits: ReplyParserLimits) {
    assert!((100..=599).contains(&reply.code().get()));
    let mut text_len = 0;
    for line in reply.lines() {
        assert!(!line.contains(&b'\n'), "LF inside a parsed line");
        assert!(
            line.len() <= limits.max_line_len.max(4),
            "line over max_line_len"
        );
        text_len += line.len();
    }
    assert!(
        text_len <= limits.max_reply_bytes,
        "reply text over max_reply_bytes"
    );
}

fuzz_target!(|data: &[u8]| {
    let input = StreamInput::new(data);
    let [line, reply] = input.settings;
    let limits = ReplyParserLimits {
        max_line_len: usize::from(line % 64),
        max_reply_bytes: usize::from(reply),
    };

    let mut whole_parser = ReplyParser::new(limits);
    let whole = feed(&mut whole_parser, [input.body]);
    for reply in whole.iter().flatten() {
        check_reply(reply, limits);
    }

    let mut chunked_parser = ReplyParser::new(limits);
    let chunked = feed(&mut chunked_parser, input.chunks());
    assert_eq!(whole, chunked, "chunking changed the results");
    assert_eq!(whole_parser.is_mid_reply(), chunked_parser.is_mid_reply());
    assert_eq!(whole_parser.buffered_len(), chunked_parser.buffered_len());

    let mut bytewise_parser = ReplyParser::new(limits);
    let bytewise = feed(&mut bytewise_parser, chunks(input.body, &[]));
    assert_eq!(whole, bytewise, "byte-at-a-time changed the results");

    // Feeding nothing is a no-op.
    assert_eq!(whole_parser.parse(b""), (0, None));

    // After a reset the parser is as new.
    whole_parser.reset();
    assert!(!whole_parser.is_mid_reply());
    assert_eq!(whole_parser.buffered_len(), 0);
    let again = feed(&mut whole_parser, [&b"200\r\n"[..]]);
    let fresh = feed(&mut ReplyParser::new(limits), [&b"200\r\n"[..]]);
    assert_eq!(again, fresh);
});
