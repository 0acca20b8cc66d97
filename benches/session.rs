//! The server session's own cost, in memory: no sockets, no files, a driver that answers every action at
//! once without copying.
//!
//! Run with `cargo bench --bench session` (well under a minute). Two exchanges, each starting from a new
//! `server::Session` (greeting) and ending with `QUIT`:
//!
//! * `login + LIST`: `USER`, `PASS`, `TYPE I`, `EPSV`, `LIST` of a 100-entry directory. Reported as time
//!   per exchange.
//! * `login + LIST + RETR 64 MiB`: the same, then `EPSV` and `RETR` of a 64 MiB file read in `Bytes`
//!   chunks (256 KiB, the main figure, and 64 KiB). Reported in file bytes per second: the session's
//!   per-byte overhead in TYPE I, which should be far above what loopback TCP moves (a few GiB/s).
//! * `RETR 64 MiB ... (logged in)`: the transfer alone (plus `QUIT`), login done in the untimed set-up.
//!
//! The client sends one command at a time and waits for its reply, as real clients do. The driver is the
//! shared test harness's [`Server`] (`tests/harness/mod.rs`), which follows the session's contract: after
//! every `handle_*` call it drains `poll_action` until `None` (and the events too, as a logging driver
//! would). Its [`MemoryStore`] answers `LocalAction::Read` with a `Bytes::slice` of one shared 64 MiB
//! buffer (256 or 64 KiB chunks), and its client end counts what `DataAction::Send` carries without
//! keeping it, so the work measured is the session's and not the driver's. The store, and the listed
//! directory's entries (`MemoryStore::read_ahead`), are built in the untimed set-up.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ftp_proto::listing::Metadata;
use ftp_proto::server::{Config, ConnectionInfo};
use ftp_proto::time::Timestamp;
use harness::{MemoryStore, Server};

const FILE_SIZE: usize = 64 * 1024 * 1024;
const DIRECTORY_ENTRIES: usize = 100;
const CLIENT: &str = "127.0.0.1:50000";

/// The root directory as `ls -la` of a typical download area would show it: mostly files of varied
/// sizes and name lengths, some subdirectories, a symlink; and the file `RETR` reads, which is not in
/// it (`/pub` is not listed: the store needs no parent to open a file), so `LIST` shows exactly
/// `DIRECTORY_ENTRIES` entries.
fn store(file: &Bytes, chunk: usize) -> MemoryStore {
    let base = Timestamp::parse_ftp(b"20240102130405").expect("valid time");
    let mut store = MemoryStore::new();
    for i in 0..DIRECTORY_ENTRIES {
        let (name, mut metadata) = match i % 10 {
            0 => (format!("release-{i:03}"), Metadata::directory()),
            9 => (
                format!("latest-{i:03}"),
                Metadata::symlink(format!("release-{:03}", i - 9).into_bytes()),
            ),
            _ => (
                format!("project-archive-{i:03}-x86_64-unknown-linux-gnu.tar.gz"),
                Metadata::file(1024 * (i as u64 + 1) * 37),
            ),
        };
        metadata.modified = Timestamp::from_unix_seconds(base.unix_seconds() - 86_400 * i as i64);
        store.add_entry(&format!("/{name}"), metadata);
    }
    store.add_file("/pub/archive.tar.gz", file.clone());
    store.chunk_size = chunk;
    store
}

/// A copy of `store` for one exchange, with the root's entries read ahead for its `LIST`.
fn listing_ready(store: &MemoryStore) -> MemoryStore {
    let mut store = store.clone();
    store.read_ahead("/");
    store
}

/// A new session over `store`, greeted, its client keeping count of the data bytes only.
fn server(config: &Arc<Config>, store: MemoryStore) -> Server {
    let info = ConnectionInfo {
        local: "127.0.0.1:21".parse().expect("address"),
        peer: CLIENT.parse().expect("address"),
    };
    let mut server = Server::start(Arc::clone(config), info, store, Instant::now());
    server.keep_data = false;
    server.control.reserve(1024);
    server.run();
    server
}

/// Sends one command line and carries out everything it causes; returns the last reply's code.
fn command(server: &mut Server, line: &[u8]) -> u16 {
    server.control.clear();
    server.input(line);
    reply_code(&server.control)
}

/// The code of the last reply line in `control` (0 if there is none): 226 once a transfer completed.
fn reply_code(control: &[u8]) -> u16 {
    let body = control.strip_suffix(b"\r\n").unwrap_or(control);
    let last_line = body.rsplit(|&b| b == b'\n').next().unwrap_or_default();
    last_line
        .get(..3)
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// One exchange; returns the data bytes the client received and the replies' codes, for the checks.
fn exchange(server: &mut Server, retr: bool) -> (u64, Vec<u16>) {
    let mut codes = vec![reply_code(&server.control)];
    codes.push(command(server, b"USER anonymous\r\n"));
    codes.push(command(server, b"PASS guest@example.com\r\n"));
    codes.push(command(server, b"TYPE I\r\n"));
    codes.push(command(server, b"EPSV\r\n"));
    codes.push(command(server, b"LIST -la\r\n"));
    if retr {
        codes.push(command(server, b"EPSV\r\n"));
        codes.push(command(server, b"RETR /pub/archive.tar.gz\r\n"));
    }
    codes.push(command(server, b"QUIT\r\n"));
    (server.data_bytes, codes)
}

fn bench(c: &mut Criterion) {
    let config = Arc::new(Config::default());
    // Not all zeros, so nothing downstream could take a shortcut.
    let file = Bytes::from((0..FILE_SIZE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let stores = [256, 64].map(|kib| store(&file, kib * 1024));
    let [store_256, _] = &stores;

    // Check once, outside the timing, that the exchanges do what they claim.
    let mut driver = server(&config, store_256.clone());
    let (listing_bytes, codes) = exchange(&mut driver, false);
    assert_eq!(codes, [220, 331, 230, 200, 229, 226, 221], "{codes:?}");
    assert!(driver.closed && listing_bytes > 60 * DIRECTORY_ENTRIES as u64);
    // The listing read ahead, as the timed runs do, must be the same.
    let mut driver = server(&config, listing_ready(store_256));
    let (bytes, codes) = exchange(&mut driver, true);
    assert_eq!(
        codes,
        [220, 331, 230, 200, 229, 226, 229, 226, 221],
        "{codes:?}"
    );
    assert_eq!(bytes, listing_bytes + FILE_SIZE as u64);
    assert!(driver.closed);
    println!("LIST of {DIRECTORY_ENTRIES} entries: {listing_bytes} bytes");

    let mut group = c.benchmark_group("session");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    // Each routine returns its driver, so that dropping it is not timed.
    group.bench_function("login + LIST (100 entries) + QUIT", |b| {
        b.iter_batched(
            || listing_ready(store_256),
            |store| {
                let mut driver = server(&config, store);
                black_box(exchange(&mut driver, false));
                driver
            },
            BatchSize::SmallInput,
        )
    });

    group.throughput(Throughput::Bytes(FILE_SIZE as u64));
    for (chunk_kib, store) in [256, 64].into_iter().zip(&stores) {
        let name = format!("login + LIST + RETR 64 MiB in {chunk_kib} KiB chunks + QUIT");
        group.bench_function(name, |b| {
            b.iter_batched(
                || listing_ready(store),
                |store| {
                    let mut driver = server(&config, store);
                    black_box(exchange(&mut driver, true));
                    driver
                },
                BatchSize::SmallInput,
            )
        });
        // The transfer alone: login and EPSV happen in the untimed set-up, so this is the per-byte
        // (really per-chunk) cost of RETR, with the final 226 and QUIT.
        let name = format!("RETR 64 MiB in {chunk_kib} KiB chunks + QUIT (logged in)");
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let mut driver = server(&config, store.clone());
                    command(&mut driver, b"USER anonymous\r\n");
                    command(&mut driver, b"PASS guest@example.com\r\n");
                    command(&mut driver, b"TYPE I\r\n");
                    command(&mut driver, b"EPSV\r\n");
                    driver
                },
                |mut driver| {
                    let retr = command(&mut driver, b"RETR /pub/archive.tar.gz\r\n");
                    let quit = command(&mut driver, b"QUIT\r\n");
                    black_box((retr, quit, driver.data_bytes));
                    driver
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
