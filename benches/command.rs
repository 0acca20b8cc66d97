//! Control-line parsing and encoding over the command lines real clients send.
//!
//! Run with `cargo bench --bench command` (well under a minute). The mix replays the control side of
//! curl, lftp, Python ftplib and FileZilla sessions (login, FEAT, PWD, TYPE, EPSV/PASV/PORT/EPRT, CWD into
//! deep paths, LIST -la, MLSD, SIZE/MDTM, REST+RETR, STOR, NOOP keep-alives, QUIT), plus a few verbs this
//! crate does not know and some bad lines (missing and malformed arguments, an HTTP probe).
//!
//! Each measurement is reported twice: in group `command/bytes` as bytes per second and in group
//! `command/lines` as lines (elements) per second. The bytes are the lines without their CRLF for
//! `parse` (that is what the parser sees), the encoded output for `encode`, and the whole control stream
//! (CRLFs included) for `frame + parse`.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use ftp_proto::command::Command;
use ftp_proto::framing::{Frame, FramerConfig, LineFramer};

/// curl 8 downloading `ftp://ftp.example.org/pub/linux/kernel/v6.x/linux-6.8.7.tar.xz` (multicwd, the
/// default), with `-R` (MDTM) and a resume (`-C -`, REST).
const CURL: &[&str] = &[
    "USER anonymous",
    "PASS ftp@example.com",
    "PWD",
    "CWD pub",
    "CWD linux",
    "CWD kernel",
    "CWD v6.x",
    "EPSV",
    "TYPE I",
    "SIZE linux-6.8.7.tar.xz",
    "MDTM linux-6.8.7.tar.xz",
    "REST 73400320",
    "RETR linux-6.8.7.tar.xz",
    "QUIT",
];

/// lftp 4.9 mirroring a directory tree: FEAT first, MLST facts negotiation, MLSD per directory, then
/// downloads with absolute paths.
const LFTP: &[&str] = &[
    "FEAT",
    "USER alice",
    "PASS correct horse battery staple",
    "OPTS UTF8 ON",
    "OPTS MLST type;size;modify;perm;unix.mode;unix.owner;unix.group;",
    "PWD",
    "CWD /home/alice/projects/ftp-proto",
    "EPSV",
    "MLSD",
    "EPSV",
    "MLSD src",
    "EPSV",
    "MLSD src/server",
    "TYPE I",
    "SIZE /home/alice/projects/ftp-proto/src/server/commands.rs",
    "EPSV",
    "RETR /home/alice/projects/ftp-proto/src/server/commands.rs",
    "EPSV",
    "RETR /home/alice/projects/ftp-proto/src/server/transfer.rs",
    "MDTM /home/alice/projects/ftp-proto/src/server/transfer.rs",
    "EPSV",
    "RETR /home/alice/projects/ftp-proto/Cargo.toml",
    "NOOP",
    "QUIT",
];

/// Python ftplib: `login()`, `retrlines('LIST')` in ASCII, `nlst()`, binary `retrbinary`/`storbinary`
/// in active mode (PORT) and over IPv6 (EPRT), `quit()`.
const FTPLIB: &[&str] = &[
    "USER anonymous",
    "PASS anonymous@",
    "TYPE A",
    "PASV",
    "LIST",
    "TYPE A",
    "PASV",
    "NLST /pub/datasets",
    "TYPE I",
    "PORT 192,168,1,23,195,80",
    "RETR /pub/datasets/weather/2023/station-0142-hourly.csv.gz",
    "TYPE I",
    "EPRT |2|2001:db8:85a3::8a2e:370:7334|50001|",
    "STOR /incoming/upload-2024-03-15T12-00-00.tar.gz",
    "TYPE I",
    "EPRT |1|192.168.1.23|50002|",
    "RETR README",
    "QUIT",
];

/// FileZilla 3.x: TLS attempt, UTF8, PWD, directory listing with `LIST -la` fallbacks, a WordPress
/// upload directory, uploads with MFMT to keep the time, and keep-alives.
const FILEZILLA: &[&str] = &[
    "AUTH TLS",
    "AUTH SSL",
    "USER webmaster",
    "PASS S3cr3t!pass#2024",
    "SYST",
    "FEAT",
    "OPTS UTF8 ON",
    "PWD",
    "TYPE I",
    "PASV",
    "MLSD",
    "CWD /var/www/html/wp-content/uploads/2024/03",
    "PWD",
    "PASV",
    "LIST -la",
    "TYPE I",
    "PASV",
    "STOR holiday-photo-IMG_20240315_184512.jpg",
    "MFMT 20240315184512 holiday-photo-IMG_20240315_184512.jpg",
    "TYPE I",
    "PASV",
    "STOR holiday-photo-IMG_20240315_184530.jpg",
    "MFMT 20240315184530 holiday-photo-IMG_20240315_184530.jpg",
    "NOOP",
    "CDUP",
    "PASV",
    "LIST -al /var/www/html/wp-content/themes/twentytwentyfour/assets/fonts",
    "SIZE /var/www/html/wp-content/themes/twentytwentyfour/style.css",
    "NOOP",
    "QUIT",
];

/// Lines a server sees that are not valid commands of this crate: unknown extension verbs (XCRC, CLNT,
/// AVBL...), argument errors, and scanners speaking another protocol.
const ODD: &[&str] = &[
    "CLNT FileZilla",
    "XCRC /pub/datasets/README 0 4096",
    "AVBL /incoming",
    "HASH linux-6.8.7.tar.xz",
    "RETR",
    "REST lots",
    "PORT 10,0,0,1,300",
    "TYPE Z",
    "EPSV 3",
    "GET / HTTP/1.1",
    "Host: ftp.example.org",
    "12345",
];

/// All sessions as one list of lines, in session order.
fn mix() -> Vec<&'static [u8]> {
    [CURL, LFTP, FTPLIB, FILEZILLA, ODD]
        .concat()
        .into_iter()
        .map(str::as_bytes)
        .collect()
}

/// The mix repeated as one CRLF-terminated control stream of at least `min_len` bytes.
fn control_stream(lines: &[&[u8]], min_len: usize) -> (Vec<u8>, u64) {
    let mut stream = Vec::with_capacity(min_len + 4096);
    let mut count = 0;
    while stream.len() < min_len {
        for line in lines {
            stream.extend_from_slice(line);
            stream.extend_from_slice(b"\r\n");
            count += 1;
        }
    }
    (stream, count)
}

/// Frames `stream`, fed in pieces of `segment` bytes as reads from a socket would deliver it, and parses
/// every line. Returns the number of lines that parsed, so nothing is optimised away.
fn frame_and_parse(framer: &mut LineFramer, stream: &[u8], segment: usize) -> usize {
    let mut parsed = 0;
    for mut input in stream.chunks(segment) {
        loop {
            let (used, frame) = framer.next_frame(input);
            input = input.get(used..).unwrap_or_default();
            match frame {
                Some(Frame::Line(line)) => {
                    parsed += usize::from(black_box(Command::parse(line)).is_ok())
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    parsed
}

/// The four measurements, with the throughput each one reports in `unit`.
fn run_group(
    group: &mut BenchmarkGroup<'_, WallTime>,
    lines: &[&[u8]],
    commands: &[Command],
    stream: &[u8],
    throughput: impl Fn(Measured) -> Throughput,
) {
    group.throughput(throughput(Measured::Parse));
    group.bench_function("Command::parse (mix)", |b| {
        b.iter(|| {
            for line in lines {
                let _ = black_box(Command::parse(black_box(line)));
            }
        })
    });

    let mut out = Vec::with_capacity(8192);
    group.throughput(throughput(Measured::Encode));
    group.bench_function("Command::encode (mix)", |b| {
        b.iter(|| {
            out.clear();
            for command in commands {
                command.encode(&mut out);
            }
            black_box(&out);
        })
    });

    let mut framer = LineFramer::new(FramerConfig::default());
    group.throughput(throughput(Measured::Stream));
    group.bench_function("LineFramer + Command::parse (1 MiB, one read)", |b| {
        b.iter(|| frame_and_parse(&mut framer, stream, stream.len()))
    });
    // 1448 bytes: a TCP segment's payload with timestamps, as small reads from a socket come.
    group.bench_function(
        "LineFramer + Command::parse (1 MiB, 1448-byte reads)",
        |b| b.iter(|| frame_and_parse(&mut framer, stream, 1448)),
    );
}

/// Which input a measurement consumes, to pick its throughput.
#[derive(Clone, Copy)]
enum Measured {
    Parse,
    Encode,
    Stream,
}

fn bench(c: &mut Criterion) {
    let lines = mix();
    let commands: Vec<Command> = lines
        .iter()
        .filter_map(|line| Command::parse(line).ok())
        .collect();
    // The mix is what it claims: the client sessions parse, the odd lines are unknown verbs or errors.
    let unknown = commands
        .iter()
        .filter(|c| matches!(c, Command::Unknown { .. }))
        .count();
    assert_eq!(unknown, 5, "CLNT XCRC AVBL HASH GET");
    assert_eq!(lines.len() - commands.len(), ODD.len() - unknown);
    let mut encoded = Vec::new();
    for command in &commands {
        command.encode(&mut encoded);
    }
    let (stream, stream_lines) = control_stream(&lines, 1 << 20);
    let mut framer = LineFramer::new(FramerConfig::default());
    let per_round = commands.len() as u64;
    let rounds = stream_lines / lines.len() as u64;
    assert_eq!(
        frame_and_parse(&mut framer, &stream, 1448) as u64,
        rounds * per_round
    );

    let parse_bytes: u64 = lines.iter().map(|l| l.len() as u64).sum();
    println!(
        "mix: {} lines ({} parse, {} unknown, {} errors), {parse_bytes} bytes; stream: {} bytes, \
         {stream_lines} lines",
        lines.len(),
        commands.len() - unknown,
        unknown,
        lines.len() - commands.len(),
        stream.len(),
    );

    let mut bytes = c.benchmark_group("command/bytes");
    bytes
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    run_group(&mut bytes, &lines, &commands, &stream, |m| {
        Throughput::Bytes(match m {
            Measured::Parse => parse_bytes,
            Measured::Encode => encoded.len() as u64,
            Measured::Stream => stream.len() as u64,
        })
    });
    bytes.finish();

    let mut count = c.benchmark_group("command/lines");
    count
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    run_group(&mut count, &lines, &commands, &stream, |m| {
        Throughput::Elements(match m {
            Measured::Parse => lines.len() as u64,
            Measured::Encode => commands.len() as u64,
            Measured::Stream => stream_lines,
        })
    });
    count.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
