//! The server session's own cost, in memory: no sockets, no files, a driver that answers every action at
//! once without copying.
//!
//! Run with `cargo bench --bench session` (well under a minute). Two exchanges, each starting from a new
//! [`Session`] (greeting) and ending with `QUIT`:
//!
//! * `login + LIST`: `USER`, `PASS`, `TYPE I`, `EPSV`, `LIST` of a 100-entry directory. Reported as time
//!   per exchange.
//! * `login + LIST + RETR 64 MiB`: the same, then `EPSV` and `RETR` of a 64 MiB file read in `Bytes`
//!   chunks (256 KiB, the main figure, and 64 KiB). Reported in file bytes per second: the session's
//!   per-byte overhead in TYPE I, which should be far above what loopback TCP moves (a few GiB/s).
//! * `RETR 64 MiB ... (logged in)`: the transfer alone (plus `QUIT`), login done in the untimed set-up.
//!
//! The client sends one command at a time and waits for its reply, as real clients do. The driver follows
//! the session's contract: after every `handle_*` call it drains `poll_action` until `None` (and the
//! events too, as a logging driver would). It answers `LocalAction::Read` with a `Bytes::slice` of one
//! shared 64 MiB buffer and `DataAction::Send` by counting the bytes, so the only work measured is the
//! session's.
//! `tests/sim` is not reused: its 4-byte default chunks, its copy of every data byte into a `Vec` and its
//! `BTreeMap` scan per listing would be measured instead of the session.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ftp_proto::data::{DataAction, DataCompletion, LocalAction};
use ftp_proto::listing::{DirEntry, Metadata};
use ftp_proto::server::{
    Access, Action, Completion, Config, ConnectionInfo, Session, StorageRequest,
};
use ftp_proto::time::Timestamp;

const FILE_SIZE: usize = 64 * 1024 * 1024;
const DIRECTORY_ENTRIES: usize = 100;
const CLIENT: &str = "127.0.0.1:50000";
const DATA_PEER: &str = "127.0.0.1:50001";

/// A directory as `ls -la` of a typical download area would show it: mostly files of varied sizes and
/// name lengths, some subdirectories, a symlink.
fn directory() -> Vec<DirEntry> {
    let base = Timestamp::parse_ftp(b"20240102130405").expect("valid time");
    (0..DIRECTORY_ENTRIES)
        .map(|i| {
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
            metadata.modified =
                Timestamp::from_unix_seconds(base.unix_seconds() - 86_400 * i as i64);
            DirEntry::new(name.into_bytes(), metadata)
        })
        .collect()
}

/// An in-memory driver that answers every action immediately.
struct Driver {
    session: Session,
    now: Instant,
    /// The file `RETR` reads: one shared buffer, handed out as slices.
    file: Bytes,
    chunk: usize,
    read_pos: usize,
    /// Taken by the (one) `LIST` storage request.
    entries: Option<Vec<DirEntry>>,
    listed_at: Timestamp,
    data_peer: SocketAddr,
    /// Control-connection output of the current command, kept for the checks (replies are small).
    control: Vec<u8>,
    data_bytes: u64,
    closed: bool,
}

impl Driver {
    fn new(config: &Arc<Config>, file: &Bytes, chunk: usize, entries: Vec<DirEntry>) -> Driver {
        let now = Instant::now();
        let info = ConnectionInfo {
            local: "127.0.0.1:21".parse().expect("address"),
            peer: CLIENT.parse().expect("address"),
        };
        let mut driver = Driver {
            session: Session::new(Arc::clone(config), info, now),
            now,
            file: file.clone(),
            chunk,
            read_pos: 0,
            entries: Some(entries),
            listed_at: Timestamp::parse_ftp(b"20240301000000").expect("valid time"),
            data_peer: DATA_PEER.parse().expect("address"),
            control: Vec::with_capacity(1024),
            data_bytes: 0,
            closed: false,
        };
        driver.drain();
        driver
    }

    /// Sends one command line and carries out everything it causes; returns the last reply's code.
    fn command(&mut self, line: &[u8]) -> u16 {
        self.control.clear();
        self.session.handle_control_input(self.now, line);
        self.drain();
        reply_code(&self.control)
    }

    /// Drains and answers actions until the session has nothing more to say.
    fn drain(&mut self) {
        while let Some(action) = self.session.poll_action() {
            self.answer(action);
        }
        while self.session.poll_event().is_some() {}
    }

    fn answer(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::SendControl(bytes) => self.control.extend_from_slice(&bytes),
            Action::Authenticate { id, .. } => {
                self.session
                    .handle_completion(now, id, Completion::LoggedIn(Access::ReadOnly));
            }
            Action::Data(DataAction::Listen { id, .. }) => {
                let addr = "127.0.0.1:40000".parse().expect("address");
                self.session
                    .handle_completion(now, id, DataCompletion::Listening(addr).into());
            }
            Action::Data(DataAction::Accept { id, .. }) => {
                let peer = self.data_peer;
                self.session
                    .handle_completion(now, id, DataCompletion::Connected { peer }.into());
            }
            Action::Data(DataAction::Send { id, data }) => {
                self.data_bytes += data.len() as u64;
                self.session
                    .handle_completion(now, id, DataCompletion::Written.into());
            }
            Action::Storage { id, request } => {
                let completion = match request {
                    StorageRequest::List { .. } => Completion::Entries {
                        entries: self.entries.take().unwrap_or_default(),
                        directory: true,
                        now: self.listed_at,
                    },
                    StorageRequest::OpenRead { path, offset } => {
                        self.read_pos = offset as usize;
                        Completion::FileOpened {
                            size: Some(self.file.len() as u64),
                            path,
                        }
                    }
                    other => panic!("unexpected storage request {other:?}"),
                };
                self.session.handle_completion(now, id, completion);
            }
            Action::Local(LocalAction::Read { id }) => {
                let end = (self.read_pos + self.chunk).min(self.file.len());
                if self.read_pos < end {
                    let chunk = self.file.slice(self.read_pos..end);
                    self.read_pos = end;
                    self.session.handle_data(now, id, chunk);
                } else {
                    self.session
                        .handle_completion(now, id, DataCompletion::EndOfData.into());
                }
            }
            Action::Data(DataAction::Close { .. }) | Action::Local(LocalAction::Close { .. }) => {}
            Action::CloseControl => self.closed = true,
            other => panic!("unexpected action {other:?}"),
        }
    }
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
fn exchange(driver: &mut Driver, retr: bool) -> (u64, Vec<u16>) {
    let mut codes = vec![reply_code(&driver.control)];
    codes.push(driver.command(b"USER anonymous\r\n"));
    codes.push(driver.command(b"PASS guest@example.com\r\n"));
    codes.push(driver.command(b"TYPE I\r\n"));
    codes.push(driver.command(b"EPSV\r\n"));
    codes.push(driver.command(b"LIST -la\r\n"));
    if retr {
        codes.push(driver.command(b"EPSV\r\n"));
        codes.push(driver.command(b"RETR /pub/archive.tar.gz\r\n"));
    }
    codes.push(driver.command(b"QUIT\r\n"));
    (driver.data_bytes, codes)
}

fn bench(c: &mut Criterion) {
    let config = Arc::new(Config::default());
    // Not all zeros, so nothing downstream could take a shortcut.
    let file = Bytes::from((0..FILE_SIZE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let entries = directory();

    // Check once, outside the timing, that the exchanges do what they claim.
    let mut driver = Driver::new(&config, &file, 256 * 1024, entries.clone());
    let (listing_bytes, codes) = exchange(&mut driver, false);
    assert_eq!(codes, [220, 331, 230, 200, 229, 226, 221], "{codes:?}");
    assert!(driver.closed && listing_bytes > 60 * DIRECTORY_ENTRIES as u64);
    let mut driver = Driver::new(&config, &file, 256 * 1024, entries.clone());
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

    group.bench_function("login + LIST (100 entries) + QUIT", |b| {
        b.iter_batched(
            || entries.clone(),
            |entries| {
                let mut driver = Driver::new(&config, &file, 256 * 1024, entries);
                black_box(exchange(&mut driver, false))
            },
            BatchSize::SmallInput,
        )
    });

    group.throughput(Throughput::Bytes(FILE_SIZE as u64));
    for chunk_kib in [256, 64] {
        let name = format!("login + LIST + RETR 64 MiB in {chunk_kib} KiB chunks + QUIT");
        group.bench_function(name, |b| {
            b.iter_batched(
                || entries.clone(),
                |entries| {
                    let mut driver = Driver::new(&config, &file, chunk_kib * 1024, entries);
                    black_box(exchange(&mut driver, true))
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
                    let mut driver = Driver::new(&config, &file, chunk_kib * 1024, Vec::new());
                    driver.command(b"USER anonymous\r\n");
                    driver.command(b"PASS guest@example.com\r\n");
                    driver.command(b"TYPE I\r\n");
                    driver.command(b"EPSV\r\n");
                    driver
                },
                |mut driver| {
                    let retr = driver.command(b"RETR /pub/archive.tar.gz\r\n");
                    let quit = driver.command(b"QUIT\r\n");
                    black_box((retr, quit, driver.data_bytes))
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
