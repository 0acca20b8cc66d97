//! Reply encoding and streaming reply parsing.
//!
//! Run with `cargo bench --bench reply`; the measurement settings below keep the whole run well under a
//! minute. Throughput is reported in wire bytes.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ftp_proto::reply::{Reply, ReplyCode, ReplyParser, ReplyParserLimits};
use std::hint::black_box;
use std::time::Duration;

fn feat_reply() -> Reply {
    let features = [
        "AUTH TLS",
        "PBSZ",
        "PROT",
        "EPRT",
        "EPSV",
        "MDTM",
        "MFMT",
        "SIZE",
        "REST STREAM",
        "TVFS",
        "UTF8",
        "LANG EN*",
        "MLSD",
    ];
    let mut lines = vec!["Features:".to_string()];
    lines.extend(features.iter().map(|f| format!(" {f}")));
    lines.push(" MLST type*;size*;modify*;perm*;unique*;unix.mode;".to_string());
    lines.extend([" HOST", " OPTS UTF8", " XCRC", " XPWD"].map(String::from));
    lines.push("End".to_string());
    assert_eq!(lines.len(), 20);
    Reply::multiline(ReplyCode::SYSTEM_STATUS, lines)
}

/// A session's worth of server replies: login banner, login, PWD, FEAT, passive transfers.
fn reply_stream() -> Vec<u8> {
    let mut replies = vec![
        Reply::multiline(
            ReplyCode::SERVICE_READY,
            [
                "Welcome to the example FTP service.",
                "Unauthorised access prohibited.",
                "Ready.",
            ],
        ),
        Reply::new(ReplyCode::NEED_PASSWORD, "Please specify the password."),
        Reply::new(ReplyCode::LOGGED_IN, "Login successful."),
        Reply::new(ReplyCode::SYSTEM_TYPE, "UNIX Type: L8"),
        feat_reply(),
        Reply::new(
            ReplyCode::PATHNAME_CREATED,
            "\"/home/user\" is the current directory",
        ),
        Reply::new(ReplyCode::COMMAND_OK, "Switching to Binary mode."),
    ];
    for i in 0..20u16 {
        replies.push(Reply::new(
            ReplyCode::ENTERING_PASSIVE,
            format!(
                "Entering Passive Mode (192,168,1,15,{},{}).",
                195 + i % 50,
                i
            ),
        ));
        replies.push(Reply::new(
            ReplyCode::FILE_STATUS_OK,
            format!("Opening BINARY mode data connection for file{i}.bin (1048576 bytes)."),
        ));
        replies.push(Reply::new(ReplyCode::CLOSING_DATA, "Transfer complete."));
    }
    replies.push(Reply::new(ReplyCode::CLOSING_CONTROL, "Goodbye."));
    let mut wire = Vec::new();
    for reply in &replies {
        reply.encode(&mut wire);
    }
    wire
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("reply_encode");
    let single = Reply::new(ReplyCode::CLOSING_DATA, "Transfer complete.");
    let feat = feat_reply();
    for (name, reply) in [("single_line", &single), ("feat_20_lines", &feat)] {
        group.throughput(Throughput::Bytes(reply.encoded_len() as u64));
        let mut out = Vec::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(reply).encode(&mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_parse(c: &mut Criterion) {
    let wire = reply_stream();
    let mut group = c.benchmark_group("reply_parse");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    // Whole stream at once, then as a network would deliver it in small segments.
    for chunk_size in [wire.len(), 536, 64] {
        let name = if chunk_size == wire.len() {
            "stream_whole".to_string()
        } else {
            format!("stream_chunks_{chunk_size}")
        };
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || ReplyParser::new(ReplyParserLimits::default()),
                |parser| {
                    let mut replies = 0usize;
                    for chunk in wire.chunks(chunk_size) {
                        let mut input = chunk;
                        while !input.is_empty() {
                            let (consumed, outcome) = parser.parse(input);
                            input = input.get(consumed..).unwrap_or_default();
                            replies += usize::from(matches!(outcome, Some(Ok(_))));
                        }
                    }
                    black_box(replies)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_encode, bench_parse
}
criterion_main!(benches);
