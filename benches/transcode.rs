//! TYPE A conversion throughput against a plain copy, over 16 MiB of text in 64 KiB chunks.
//!
//! Run with `cargo bench --bench transcode` (about a minute). Every benchmark reports bytes of input per
//! second, so the converters can be compared with `copy` directly.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ftp_proto::transcode::{CrLfToLf, LfToCrLf, Transcoder};

const TOTAL: usize = 16 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// Deterministic text: words from a small list, lines of 20..100 bytes (about 60 on average), LF ends.
fn lf_text() -> Vec<u8> {
    const WORDS: &str = "the quick brown fox jumps over lazy dog transfer file protocol data \
        connection reply command passive binary ascii";
    let words: Vec<&[u8]> = WORDS.split_whitespace().map(str::as_bytes).collect();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        // xorshift64: fast and reproducible.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = Vec::with_capacity(TOTAL + 128);
    while text.len() < TOTAL {
        let line_len = 20 + (next() % 81) as usize;
        let line_start = text.len();
        while text.len() - line_start < line_len {
            let word = words[(next() % words.len() as u64) as usize];
            text.extend_from_slice(word);
            text.push(b' ');
        }
        text.pop();
        text.push(b'\n');
    }
    text.truncate(TOTAL);
    text
}

fn chunks_of(data: &[u8]) -> Vec<Bytes> {
    data.chunks(CHUNK).map(Bytes::copy_from_slice).collect()
}

fn bench(c: &mut Criterion) {
    let lf = lf_text();
    let mut crlf = Vec::new();
    LfToCrLf::new().convert(&lf, &mut crlf);
    let lf_chunks = chunks_of(&lf);
    let crlf_chunks = chunks_of(&crlf);

    let mut group = c.benchmark_group("transcode");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // Into a reused buffer, one 64 KiB chunk at a time.
    let mut out = Vec::with_capacity(2 * CHUNK + 1);
    group.throughput(Throughput::Bytes(lf.len() as u64));
    group.bench_function("copy (baseline)", |b| {
        b.iter(|| {
            for chunk in &lf_chunks {
                out.clear();
                out.extend_from_slice(chunk);
                black_box(&out);
            }
        })
    });
    group.bench_function("LfToCrLf::convert", |b| {
        b.iter(|| {
            let mut converter = LfToCrLf::new();
            for chunk in &lf_chunks {
                out.clear();
                converter.convert(chunk, &mut out);
                black_box(&out);
            }
        })
    });
    group.bench_function("Transcoder::ToNetwork (new Bytes per chunk)", |b| {
        b.iter(|| {
            let mut transcoder = Transcoder::to_network();
            for chunk in &lf_chunks {
                black_box(transcoder.process(chunk.clone()));
            }
        })
    });
    group.bench_function("Transcoder::Identity", |b| {
        b.iter(|| {
            let mut transcoder = Transcoder::Identity;
            for chunk in &lf_chunks {
                black_box(transcoder.process(chunk.clone()));
            }
        })
    });

    group.throughput(Throughput::Bytes(crlf.len() as u64));
    group.bench_function("CrLfToLf::convert (CRLF text)", |b| {
        b.iter(|| {
            let mut converter = CrLfToLf::new();
            for chunk in &crlf_chunks {
                out.clear();
                converter.convert(chunk, &mut out);
                black_box(&out);
            }
        })
    });
    group.bench_function("Transcoder::FromNetwork (new Bytes per chunk)", |b| {
        b.iter(|| {
            let mut transcoder = Transcoder::from_network();
            for chunk in &crlf_chunks {
                black_box(transcoder.process(chunk.clone()));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
