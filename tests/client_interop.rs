//! The example client's driver (`examples/client/driver.rs`, included here) against real FTP servers on
//! 127.0.0.1: pyftpdlib, ProFTPD and this crate's example server, each started by the test on a free
//! port with its own directory, and stopped when the test ends.
//!
//! Every scenario runs against every server: login (user, anonymous, a wrong password), listings parsed
//! from both `MLSD` and `LIST`, byte-exact `RETR`/`STOR` of a few MB of random bytes in passive
//! (`EPSV`, `PASV`) and active (`EPRT`, `PORT`) mode, resumed (`REST`) downloads and uploads, and
//! `TYPE A` both ways. Then: an FXP copy between two example servers, the CLI binary (exit codes, error
//! messages, `mirror` over MLSD and over LIST), and the captured listings in `tests/fixtures/listings/`
//! parsed with `ftp_proto::listing` (no server needed).
//!
//! FTPS (RFC 4217, `tls_*` tests): the same driver with explicit (`AUTH TLS`) and implicit FTPS
//! against vsftpd (`require_ssl_reuse=YES`), pure-ftpd, ProFTPD's mod_tls, pyftpdlib's
//! `TLS_FTPHandler` and the example server, each requiring TLS for logins and data, with a test CA:
//! listings, many protected transfers in one session (each data connection resumes the control
//! connection's TLS session; TLS 1.3 tickets are used up one per resumption), resumed transfers, all
//! four data modes; a server that refuses `AUTH TLS` or shows an untrusted certificate stops the
//! client before it sends a password; the CLI's `--tls`, `--ca-file`, `--insecure` and `ftps://`; `CCC`;
//! and FXP between two example servers over TLS (`SSCN`; the destination waives session reuse for
//! users allowed FXP). rustls uses each TLS 1.3 ticket once:
//! against servers that send none on uploads, many uploads run TLS 1.2 (`starves_uploads`), and
//! `tls13_tickets_run_out_on_uploads` pins down the limit.
//!
//! A server that is not installed is skipped (`SKIPPED: ...`), unless `CI=true`. Each test is bounded by
//! [`TEST_TIMEOUT`] and prints its duration (`cargo test --test client_interop -- --nocapture`).
//!
//! Re-capture the fixtures with
//! `cargo test --test client_interop capture_listing_fixtures -- --ignored`.

#[path = "support/certs.rs"]
mod certs;
#[allow(dead_code)]
#[path = "../examples/client/cli.rs"]
mod cli;
#[path = "../examples/client/driver.rs"]
mod driver;
#[allow(dead_code)]
#[path = "../examples/client/progress.rs"]
mod progress;
#[path = "client_interop/raw.rs"]
mod raw;
#[path = "client_interop/servers.rs"]
mod servers;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use driver::tls::ClientTls;
use driver::{Client, ClientOptions, DriverError, Ftps, fxp_copy};
use ftp_proto::client::fxp::FxpTransfer;
use ftp_proto::client::{ClientError, DataMode, Outcome, Request};
use ftp_proto::command::{FormatControl, Pathname, TransferType};
use ftp_proto::listing::{EntryKind, ListTime, MlsxKind, parse_listing, parse_mlsx_listing};
use ftp_proto::time::Timestamp;
use ftp_proto::url::FtpUrl;
use servers::{Kind, PASSWORD, Server, TempDir, TlsMode, USER, pattern};

/// The longest any one test may run.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The size of the random files transferred: a few MB, so that transfers take many chunks.
const BIG: usize = 3 * 1024 * 1024 + 12_345;

/// Runs `scenario` against a fresh server of `kind` (skipped if the server is missing), on a tokio
/// runtime, within [`TEST_TIMEOUT`].
fn run(kind: Kind, name: &str, scenario: impl AsyncFnOnce(&Server)) {
    let started = Instant::now();
    let Some(server) = kind.start() else { return };
    let runtime = runtime();
    let outcome =
        runtime.block_on(async { tokio::time::timeout(TEST_TIMEOUT, scenario(&server)).await });
    assert!(outcome.is_ok(), "{name} on {} timed out", kind.name());
    eprintln!(
        "[time] {name} on {}: {:.2} s",
        kind.name(),
        started.elapsed().as_secs_f64()
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One test per server for a scenario.
macro_rules! on_every_server {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::{Kind, run};

            #[test]
            fn pyftpdlib() {
                run(Kind::Pyftpdlib, stringify!($scenario), super::$scenario);
            }

            #[test]
            fn proftpd() {
                run(Kind::Proftpd, stringify!($scenario), super::$scenario);
            }

            #[test]
            fn example_server() {
                run(Kind::Example, stringify!($scenario), super::$scenario);
            }
        }
    )*};
}

on_every_server!(
    logins_and_listings,
    passive_transfers,
    active_transfers,
    resumed_transfers,
    ascii_transfers,
    aborted_download,
    local_file_failures,
);

// ---- helpers ----

fn options() -> ClientOptions {
    ClientOptions::default().with_timeout(Duration::from_secs(20))
}

fn passive(extended: bool) -> ClientOptions {
    let mut options = options();
    options.session.mode = DataMode::Passive;
    options.session.extended_first = extended;
    options
}

fn active(extended: bool) -> ClientOptions {
    let mut options = passive(extended);
    options.session.mode = DataMode::Active;
    options
}

/// Logs in as the server's user: at its implicit FTPS address when `options` says implicit FTPS.
async fn login(server: &Server, options: ClientOptions) -> Client {
    let url = match options.ftps {
        Ftps::Implicit(_) => server.ftps_url("/"),
        _ => server.url("/"),
    };
    let url = FtpUrl::parse(&url).unwrap();
    let mut client = Client::connect_url(&url, options)
        .await
        .unwrap_or_else(|e| panic!("login to {}: {e}", server.kind.name()));
    if let Some(home) = server.home {
        client.run(Request::Cwd(path(home))).await.unwrap();
    }
    client
}

fn path(name: &str) -> Pathname {
    Pathname::new(name).unwrap()
}

async fn binary(client: &mut Client) {
    client
        .run(Request::SetType(TransferType::Image))
        .await
        .unwrap();
}

/// Asserts two byte strings are equal without printing megabytes.
#[track_caller]
fn assert_same(actual: &[u8], expected: &[u8], what: &str) {
    if actual != expected {
        let first = actual.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{what}: {} bytes, expected {}; first difference at {first:?}",
            actual.len(),
            expected.len()
        );
    }
}

// ---- the tree every listing test and fixture shows ----

/// `(name, Some(size))` for files, `(name, None)` for directories, in name order.
const TREE: &[(&str, Option<u64>)] = &[
    ("big.bin", Some(123_456)),
    ("empty.txt", Some(0)),
    ("emptydir", None),
    ("hello.txt", Some(13)),
    ("name with spaces.bin", Some(1000)),
    ("sub", None),
];

/// 2020-01-02T03:04:05Z: `hello.txt`'s modification time (old: `ls` shows the year).
const HELLO_MODIFIED: i64 = 1_577_934_245;

fn make_tree(server: &Server) {
    for &(name, size) in TREE {
        match size {
            Some(size) => {
                let bytes = match name {
                    "hello.txt" => b"hello, world\n".to_vec(),
                    _ => pattern(size as usize, size),
                };
                server.put_file(name, &bytes);
            }
            None => {
                server.put_dir(name);
            }
        }
    }
    server.put_file("sub/inner.txt", b"inner");
    let hello = std::fs::File::options()
        .write(true)
        .open(server.root.join("hello.txt"))
        .unwrap();
    let time = std::time::UNIX_EPOCH + Duration::from_secs(HELLO_MODIFIED as u64);
    hello.set_modified(time).unwrap();
}

/// Checks `(name, is_dir, size)` triples against [`TREE`] (directory sizes are not compared).
#[track_caller]
fn assert_tree(mut found: Vec<(String, bool, Option<u64>)>, source: &str) {
    found.sort();
    let names: Vec<&str> = found.iter().map(|(n, _, _)| n.as_str()).collect();
    let expected: Vec<&str> = TREE.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected, "{source}: names");
    for ((name, is_dir, size), (_, expected_size)) in found.iter().zip(TREE) {
        assert_eq!(*is_dir, expected_size.is_none(), "{source}: kind of {name}");
        if let Some(expected_size) = expected_size {
            assert_eq!(*size, Some(*expected_size), "{source}: size of {name}");
        }
    }
}

fn mlsd_triples(body: Outcome) -> Vec<(String, bool, Option<u64>)> {
    let Outcome::Facts(entries) = body else {
        panic!("not an MLSD outcome: {body:?}");
    };
    entries
        .into_iter()
        .map(|e| e.expect("every MLSD line parses"))
        .filter(|e| !matches!(e.kind, Some(MlsxKind::Cdir | MlsxKind::Pdir)))
        .map(|e| {
            let is_dir = e.kind == Some(MlsxKind::Dir);
            (String::from_utf8(e.name).unwrap(), is_dir, e.size)
        })
        .collect()
}

fn list_triples(body: Outcome) -> Vec<(String, bool, Option<u64>)> {
    let Outcome::Listing(entries) = body else {
        panic!("not a LIST outcome: {body:?}");
    };
    entries
        .into_iter()
        .filter_map(Result::ok) // `total N`
        .filter(|e| e.name != b"." && e.name != b"..")
        .map(|e| {
            let is_dir = e.kind == EntryKind::Directory;
            (String::from_utf8(e.name).unwrap(), is_dir, e.size)
        })
        .collect()
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now()).unwrap()
}

// ---- scenarios ----

/// User and anonymous logins, a refused password, and the same tree read from MLSD and LIST.
async fn logins_and_listings(server: &Server) {
    make_tree(server);
    let mut client = login(server, options()).await;
    assert!(client.greeting().is_some());
    let features = client.features().await.unwrap();
    assert!(
        features.mlst.is_some(),
        "{} offers MLST",
        server.kind.name()
    );

    let mlsd = client.run(Request::Mlsd { path: None }).await.unwrap();
    assert_tree(mlsd_triples(mlsd), "MLSD");
    let list = client
        .run(Request::List {
            path: None,
            now: now(),
        })
        .await
        .unwrap();
    assert_tree(list_triples(list), "LIST");

    // A subdirectory by path, both ways, and a file's MLSD facts.
    let sub = client
        .run(Request::Mlsd {
            path: Some(path("sub")),
        })
        .await
        .unwrap();
    assert_eq!(mlsd_triples(sub), [("inner.txt".into(), false, Some(5))]);
    let Outcome::Entry(hello) = client
        .run(Request::Mlst(Some(path("hello.txt"))))
        .await
        .unwrap()
    else {
        panic!("MLST outcome")
    };
    assert_eq!(hello.size, Some(13));
    assert_eq!(
        hello.modified.map(|t| t.unix_seconds()),
        Some(HELLO_MODIFIED)
    );
    // SIZE: most servers refuse it in TYPE A, the session's (and RFC 959's) initial type.
    binary(&mut client).await;
    let Outcome::Size(size) = client.run(Request::Size(path("big.bin"))).await.unwrap() else {
        panic!("SIZE outcome")
    };
    assert_eq!(size, 123_456);
    client.quit().await.unwrap();

    // A wrong password: the server's 530, as a reply error.
    let url = FtpUrl::parse(&format!("ftp://{USER}:wrong@{}/", server.addr)).unwrap();
    let error = Client::connect_url(&url, options()).await.unwrap_err();
    let code = error.reply().map(|r| r.code().get());
    assert_eq!(code, Some(530), "{error}");

    // Anonymous: no user in the URL.
    let Some(anon_root) = &server.anon_root else {
        println!(
            "SKIPPED: anonymous login ({} takes none here)",
            server.kind.name()
        );
        return;
    };
    std::fs::write(anon_root.join("welcome.txt"), b"anonymous\n").unwrap();
    let url = FtpUrl::parse(&format!("ftp://{}/", server.addr)).unwrap();
    let mut anonymous = Client::connect_url(&url, options()).await.unwrap();
    let list = anonymous
        .run(Request::List {
            path: None,
            now: now(),
        })
        .await
        .unwrap();
    let names: Vec<String> = list_triples(list).into_iter().map(|t| t.0).collect();
    assert!(names.contains(&"welcome.txt".to_owned()), "{names:?}");
    // Read-only: an upload is refused with a 5xx, and the session goes on.
    let error = anonymous
        .upload(path("intruder.txt"), 0, false, &b"no"[..], &mut |_| {})
        .await
        .unwrap_err();
    let code = error.reply().map(|r| r.code().get());
    assert!(code.is_some_and(|c| (500..600).contains(&c)), "{error}");
    assert!(!anon_root.join("intruder.txt").exists());
    anonymous.run(Request::Noop).await.unwrap();
    anonymous.quit().await.unwrap();
}

/// Download and upload of a few MB, byte for byte, with the progress hook seeing every byte.
async fn round_trip(server: &Server, options: ClientOptions, seed: u64) {
    let data = pattern(BIG, seed);
    let remote = format!("down-{seed}.bin");
    server.put_file(&remote, &data);
    let mut client = login(server, options).await;
    binary(&mut client).await;

    let local = TempDir::new("local");
    let downloaded = local.path().join("downloaded");
    let sink = tokio::fs::File::create(&downloaded).await.unwrap();
    let mut seen = 0;
    let bytes = client
        .download(path(&remote), 0, sink, &mut |b| seen = b)
        .await
        .unwrap();
    assert_eq!((bytes, seen), (BIG as u64, BIG as u64));
    assert_same(&std::fs::read(&downloaded).unwrap(), &data, "RETR");

    let uploaded = format!("up-{seed}.bin");
    let source = tokio::fs::File::open(&downloaded).await.unwrap();
    let mut seen = 0;
    let bytes = client
        .upload(path(&uploaded), 0, false, source, &mut |b| seen = b)
        .await
        .unwrap();
    assert_eq!((bytes, seen), (BIG as u64, BIG as u64));
    client.quit().await.unwrap();
    // The server answered 226 after it closed the file.
    assert_same(
        &std::fs::read(server.root.join(&uploaded)).unwrap(),
        &data,
        "STOR",
    );
}

async fn passive_transfers(server: &Server) {
    round_trip(server, passive(true), 1).await;
    assert!(server.received("EPSV"), "{}", server.log());
    assert!(!server.received("PASV"));
    round_trip(server, passive(false), 2).await;
    assert!(server.received("PASV"), "{}", server.log());
}

async fn active_transfers(server: &Server) {
    round_trip(server, active(true), 3).await;
    assert!(server.received("EPRT |1|127.0.0.1|"), "{}", server.log());
    assert!(!server.received("PORT"));
    round_trip(server, active(false), 4).await;
    assert!(server.received("PORT 127,0,0,1,"), "{}", server.log());
}

/// `REST` + `RETR` continuing a partial local file, `REST` + `STOR` continuing a partial remote one.
async fn resumed_transfers(server: &Server) {
    let data = pattern(BIG, 5);
    server.put_file("whole.bin", &data);
    let have = 1_000_003;
    let local = TempDir::new("local");
    let partial = local.path().join("partial");
    std::fs::write(&partial, &data[..have]).unwrap();

    let mut client = login(server, passive(true)).await;
    binary(&mut client).await;
    let sink = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&partial)
        .await
        .unwrap();
    let bytes = client
        .download(path("whole.bin"), have as u64, sink, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(bytes, (BIG - have) as u64);
    assert_same(&std::fs::read(&partial).unwrap(), &data, "resumed RETR");

    // Upload: the server has the first part; SIZE says how much.
    let on_server = 777_777;
    server.put_file("growing.bin", &data[..on_server]);
    let Outcome::Size(size) = client
        .run(Request::Size(path("growing.bin")))
        .await
        .unwrap()
    else {
        panic!("SIZE outcome")
    };
    assert_eq!(size, on_server as u64);
    let mut source = tokio::fs::File::open(&partial).await.unwrap();
    use tokio::io::AsyncSeekExt;
    source.seek(std::io::SeekFrom::Start(size)).await.unwrap();
    let bytes = client
        .upload(path("growing.bin"), size, false, source, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(bytes, (BIG - on_server) as u64);
    client.quit().await.unwrap();
    assert_same(
        &std::fs::read(server.root.join("growing.bin")).unwrap(),
        &data,
        "resumed STOR",
    );
}

/// `TYPE A`: CRLF on the wire, local line ends on either side.
async fn ascii_transfers(server: &Server) {
    let text = b"first line\nsecond line\n\nlast line without end".to_vec();
    let lines = 3;
    server.put_file("text.txt", &text);
    for options in [passive(true), active(true)] {
        let mut client = login(server, options).await;
        client
            .run(Request::SetType(TransferType::Ascii(
                FormatControl::NonPrint,
            )))
            .await
            .unwrap();
        let local = TempDir::new("local");
        let downloaded = local.path().join("text.txt");
        let sink = tokio::fs::File::create(&downloaded).await.unwrap();
        let wire = client
            .download(path("text.txt"), 0, sink, &mut |_| {})
            .await
            .unwrap();
        // The server sent CRLF (one more byte per line end); the driver wrote LF.
        assert_eq!(wire, (text.len() + lines) as u64, "bytes on the wire");
        assert_eq!(std::fs::read(&downloaded).unwrap(), text);

        // Upload: LF and CRLF locally both become CRLF on the wire, LF in the server's file.
        let local_text = b"one\r\ntwo\nthree\n".to_vec();
        let source_path = local.path().join("upload.txt");
        std::fs::write(&source_path, &local_text).unwrap();
        let source = tokio::fs::File::open(&source_path).await.unwrap();
        let sent = client
            .upload(path("uploaded.txt"), 0, false, source, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(sent, b"one\r\ntwo\r\nthree\r\n".len() as u64);
        client.quit().await.unwrap();
        assert_eq!(
            std::fs::read(server.root.join("uploaded.txt")).unwrap(),
            b"one\ntwo\nthree\n"
        );
    }
}

/// `ABOR` of a running download (RFC 959 §4.1.3): the local writer stalls, the driver stops reading the
/// data connection, the user aborts; both requests complete and the session stays in step.
async fn aborted_download(server: &Server) {
    server.put_file("large.bin", &pattern(BIG, 6));
    let mut client = login(server, passive(true)).await;
    binary(&mut client).await;
    // A writer nobody reads: it takes 64 KiB, then blocks.
    let (sink, _reader_kept_unread) = tokio::io::duplex(64 * 1024);
    let retrieve = Request::Retrieve {
        path: path("large.bin"),
        offset: 0,
    };
    let download = client
        .submit(retrieve, driver::Stream::Sink(Box::new(sink)))
        .await
        .unwrap();
    // Let the transfer start and stall.
    let mut progress = 0;
    while progress == 0 {
        match client.next_notice().await {
            Some(driver::Notice::Event(ftp_proto::client::Event::Progress { bytes, .. })) => {
                progress = bytes
            }
            Some(driver::Notice::Completed { id, result }) => panic!("{id:?}: {result:?}"),
            Some(_) => {}
            None => panic!("session ended"),
        }
    }
    let abort = client
        .submit(Request::Abort, driver::Stream::None)
        .await
        .unwrap();
    let aborted = client.wait(download, &mut |_| {}).await;
    assert!(
        matches!(aborted, Err(DriverError::Session(ClientError::Aborted))),
        "{aborted:?}"
    );
    let answer = client.wait(abort, &mut |_| {}).await;
    assert!(matches!(answer, Ok(Outcome::Done(_))), "{answer:?}");
    // In step: the next reply is the next command's.
    let Outcome::Size(size) = client.run(Request::Size(path("large.bin"))).await.unwrap() else {
        panic!("SIZE outcome")
    };
    assert_eq!(size, BIG as u64);
    client.quit().await.unwrap();
}

/// A writer that fails once `room` bytes are written (a full disk).
struct FullDisk {
    room: usize,
}

impl tokio::io::AsyncWrite for FullDisk {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.room == 0 {
            let error = std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full");
            return std::task::Poll::Ready(Err(error));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        std::task::Poll::Ready(Ok(n))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A reader that gives `left` bytes, then fails (a vanished USB stick).
struct BadSource {
    left: usize,
}

impl tokio::io::AsyncRead for BadSource {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left == 0 {
            let error = std::io::Error::other("device gone");
            return std::task::Poll::Ready(Err(error));
        }
        let n = buf.remaining().min(self.left).min(4096);
        buf.put_slice(&vec![b'x'; n]);
        self.left -= n;
        std::task::Poll::Ready(Ok(()))
    }
}

/// The local writer or reader fails mid-transfer: the request fails with that error (not the server's
/// reaction to the abort), and the session goes on.
async fn local_file_failures(server: &Server) {
    server.put_file("large.bin", &pattern(BIG, 7));
    let mut client = login(server, passive(true)).await;
    binary(&mut client).await;
    let error = client
        .download(
            path("large.bin"),
            0,
            FullDisk { room: 200_000 },
            &mut |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DriverError::Local(e) if e.kind() == std::io::ErrorKind::StorageFull),
        "{error:?}"
    );
    client.run(Request::Noop).await.unwrap();

    let error = client
        .upload(
            path("partial.bin"),
            0,
            false,
            BadSource { left: 300_000 },
            &mut |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DriverError::Local(e) if e.to_string() == "device gone"),
        "{error:?}"
    );
    let Outcome::Size(size) = client.run(Request::Size(path("large.bin"))).await.unwrap() else {
        panic!("SIZE outcome")
    };
    assert_eq!(size, BIG as u64);
    client.quit().await.unwrap();
}

// ---- errors ----

#[test]
fn missing_file_is_the_servers_550() {
    for kind in [Kind::Pyftpdlib, Kind::Proftpd, Kind::Example] {
        run(kind, "missing_file", async |server: &Server| {
            let mut client = login(server, options()).await;
            binary(&mut client).await;
            let local = TempDir::new("local");
            let sink = tokio::fs::File::create(local.path().join("x"))
                .await
                .unwrap();
            let error = client
                .download(path("no-such-file"), 0, sink, &mut |_| {})
                .await
                .unwrap_err();
            assert_eq!(error.reply().map(|r| r.code().get()), Some(550), "{error}");
            // The session goes on after a refusal.
            assert!(matches!(
                client.run(Request::Pwd).await,
                Ok(Outcome::Path(_))
            ));
            let error = client
                .run(Request::Cwd(path("no-such-dir")))
                .await
                .unwrap_err();
            assert!(
                matches!(&error, DriverError::Session(ClientError::Reply(r)) if r.code().get() == 550),
                "{error}"
            );
            client.quit().await.unwrap();
        });
    }
}

// ---- FTPS ----

/// Runs `scenario` against a fresh TLS server of `kind` in `mode` (skipped if the server is missing),
/// within [`TEST_TIMEOUT`].
fn run_tls(kind: Kind, mode: TlsMode, name: &str, scenario: impl AsyncFnOnce(&Server, TlsMode)) {
    let started = Instant::now();
    let Some(server) = kind.start_with(mode) else {
        return;
    };
    let runtime = runtime();
    let outcome = runtime
        .block_on(async { tokio::time::timeout(TEST_TIMEOUT, scenario(&server, mode)).await });
    assert!(
        outcome.is_ok(),
        "{name} on {} ({mode:?}) timed out",
        kind.name()
    );
    eprintln!(
        "[time] {name} on {} ({mode:?}): {:.2} s",
        kind.name(),
        started.elapsed().as_secs_f64()
    );
}

/// One test per TLS server and mode for a scenario.
macro_rules! on_every_tls_server {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::{Kind, TlsMode, run_tls};

            fn explicit(kind: Kind) {
                run_tls(kind, TlsMode::Explicit, stringify!($scenario), super::$scenario);
            }

            fn implicit(kind: Kind) {
                run_tls(kind, TlsMode::Implicit, stringify!($scenario), super::$scenario);
            }

            #[test]
            fn vsftpd() {
                explicit(Kind::Vsftpd);
            }

            #[test]
            fn vsftpd_implicit() {
                implicit(Kind::Vsftpd);
            }

            #[test]
            fn pure_ftpd() {
                explicit(Kind::PureFtpd);
            }

            #[test]
            fn proftpd() {
                explicit(Kind::Proftpd);
            }

            #[test]
            fn proftpd_implicit() {
                implicit(Kind::Proftpd);
            }

            #[test]
            fn pyftpdlib() {
                explicit(Kind::Pyftpdlib);
            }

            #[test]
            fn example_server() {
                explicit(Kind::Example);
            }

            #[test]
            fn example_server_implicit() {
                implicit(Kind::Example);
            }
        }
    )*};
}

on_every_tls_server!(tls_many_transfers, tls_uploads_in_a_row, tls_data_modes);

/// Trusts `server`'s test CA, with explicit or implicit FTPS as `mode` says.
fn with_tls(server: &Server, mode: TlsMode, mut options: ClientOptions) -> ClientOptions {
    let ca = server.ca.as_deref().expect("a TLS server has a CA");
    let tls = ClientTls::new(Some(ca), false).unwrap();
    options.ftps = match mode {
        TlsMode::Implicit => Ftps::Implicit(tls),
        _ => Ftps::Explicit(tls),
    };
    options
}

/// Servers that require session reuse but send no TLS 1.3 ticket on upload data connections
/// (ProFTPD 1.3.8, two at login; the example server, four at login and on downloads): rustls uses each
/// ticket once, so a session of many uploads runs out of them ([`tls13_tickets_run_out_on_uploads`]).
/// Such sessions run TLS 1.2 here, whose session is resumed any number of times.
fn starves_uploads(kind: Kind) -> bool {
    matches!(kind, Kind::Proftpd | Kind::Example)
}

/// [`with_tls`], with TLS 1.2 at most against a server that [`starves_uploads`].
fn with_tls_for_uploads(server: &Server, mode: TlsMode, options: ClientOptions) -> ClientOptions {
    let mut options = with_tls(server, mode, options);
    if starves_uploads(server.kind) {
        options.ftps = match options.ftps {
            Ftps::Explicit(tls) => Ftps::Explicit(tls.tls12_only().unwrap()),
            Ftps::Implicit(tls) => Ftps::Implicit(tls.tls12_only().unwrap()),
            Ftps::Off => Ftps::Off,
        };
    }
    options
}

/// How many data connections the server saw resume the control connection's TLS session, if its log
/// tells.
fn resumed_data_connections(server: &Server) -> Option<usize> {
    let log = server.log();
    match server.kind {
        // debug_ssl: `SSL version: TLSv1.3, SSL cipher: ..., reused, no cert`.
        Kind::Vsftpd => Some(log.matches(", reused,").count()),
        // TLSLog: `client reused TLS session for data connection`.
        Kind::Proftpd => Some(log.matches("client reused TLS session").count()),
        _ => None,
    }
}

/// One session, TLS required: listings, then eight downloads and eight uploads in a row (a few MB,
/// then sizes around the chunk size, an empty file), each byte for byte, then a resumed download and
/// upload. Every data connection is a new TLS handshake that must resume the control connection's
/// session (vsftpd `require_ssl_reuse`, ProFTPD): with TLS 1.3, each resumption uses up a ticket, so
/// this checks the tickets do not run out (TLS 1.2 against ProFTPD, see [`starves_uploads`]).
async fn tls_many_transfers(server: &Server, mode: TlsMode) {
    const SIZES: [usize; 8] = [BIG, 0, 1, 1000, 65_536, 65_537, 200_001, 1_048_576];
    server.put_dir("dir");
    for (i, &size) in SIZES.iter().enumerate() {
        server.put_file(&format!("r{i}.bin"), &pattern(size, 100 + i as u64));
    }
    let options = match server.kind {
        // Downloads between the uploads refill the example server's tickets; ProFTPD's only one each.
        Kind::Proftpd => with_tls_for_uploads(server, mode, passive(true)),
        _ => with_tls(server, mode, passive(true)),
    };
    let mut client = login(server, options).await;
    assert!(client.greeting().is_some());
    binary(&mut client).await;

    let list = client
        .run(Request::List {
            path: None,
            now: now(),
        })
        .await
        .unwrap();
    let mut names: Vec<String> = list_triples(list).into_iter().map(|t| t.0).collect();
    names.sort();
    let mut expected: Vec<String> = (0..SIZES.len()).map(|i| format!("r{i}.bin")).collect();
    expected.insert(0, "dir".into());
    assert_eq!(names, expected, "LIST over TLS");
    if client.features().await.unwrap().mlst.is_some() {
        let mlsd = client.run(Request::Mlsd { path: None }).await.unwrap();
        assert_eq!(mlsd_triples(mlsd).len(), SIZES.len() + 1, "MLSD over TLS");
    }

    let local = TempDir::new("local");
    for (i, &size) in SIZES.iter().enumerate() {
        let data = pattern(size, 100 + i as u64);
        let file = local.path().join(format!("r{i}.bin"));
        let sink = tokio::fs::File::create(&file).await.unwrap();
        let got = client
            .download(path(&format!("r{i}.bin")), 0, sink, &mut |_| {})
            .await
            .unwrap_or_else(|e| panic!("RETR #{i} ({size} bytes): {e}"));
        assert_eq!(got, size as u64);
        assert_same(&std::fs::read(&file).unwrap(), &data, "RETR over TLS");
        let source = tokio::fs::File::open(&file).await.unwrap();
        let sent = client
            .upload(path(&format!("u{i}.bin")), 0, false, source, &mut |_| {})
            .await
            .unwrap_or_else(|e| panic!("STOR #{i} ({size} bytes): {e}"));
        assert_eq!(sent, size as u64);
    }

    // Resumed: the rest of a partial local copy, then the rest of a partial remote one.
    let data = pattern(BIG, 100);
    let have = 1_234_567;
    let partial = local.path().join("partial");
    std::fs::write(&partial, &data[..have]).unwrap();
    let sink = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&partial)
        .await
        .unwrap();
    let got = client
        .download(path("r0.bin"), have as u64, sink, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(got, (BIG - have) as u64);
    assert_same(
        &std::fs::read(&partial).unwrap(),
        &data,
        "resumed RETR over TLS",
    );
    server.put_file("growing.bin", &data[..have]);
    let mut source = tokio::fs::File::open(&partial).await.unwrap();
    use tokio::io::AsyncSeekExt;
    source
        .seek(std::io::SeekFrom::Start(have as u64))
        .await
        .unwrap();
    let sent = client
        .upload(path("growing.bin"), have as u64, false, source, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(sent, (BIG - have) as u64);
    client.run(Request::Noop).await.unwrap();
    client.quit().await.unwrap();

    for (i, &size) in SIZES.iter().enumerate() {
        let uploaded = std::fs::read(server.root.join(format!("u{i}.bin"))).unwrap();
        assert_same(&uploaded, &pattern(size, 100 + i as u64), "STOR over TLS");
    }
    assert_same(
        &std::fs::read(server.root.join("growing.bin")).unwrap(),
        &data,
        "resumed STOR over TLS",
    );
    if server.logs_commands {
        // The session protected the data connections before the first transfer.
        assert!(server.received("PBSZ 0"), "{}", server.log());
        assert!(server.received("PROT P"), "{}", server.log());
        assert!(server.received("REST 1234567"), "{}", server.log());
    }
    // LIST, maybe MLSD, 16 transfers and 2 resumed ones: each resumed the control connection's session.
    if let Some(resumed) = resumed_data_connections(server) {
        assert!(
            resumed >= 2 * SIZES.len() + 3,
            "{resumed} resumed:\n{}",
            server.log()
        );
    }
}

/// Ten uploads in a row, then ten downloads, in one session: the tickets a TLS 1.3 server sends on an
/// upload's data connection (vsftpd does) are read before it is closed. (TLS 1.2 against servers that
/// send none there, see [`starves_uploads`].)
async fn tls_uploads_in_a_row(server: &Server, mode: TlsMode) {
    const COUNT: u64 = 10;
    let mut client = login(server, with_tls_for_uploads(server, mode, passive(true))).await;
    binary(&mut client).await;
    for i in 0..COUNT {
        let data = pattern(10_000 + i as usize, 300 + i);
        client
            .upload(
                path(&format!("up{i}.bin")),
                0,
                false,
                std::io::Cursor::new(data),
                &mut |_| {},
            )
            .await
            .unwrap_or_else(|e| panic!("STOR #{i}: {e}"));
    }
    for i in 0..COUNT {
        let (sink, mut reader) = tokio::io::duplex(64 * 1024);
        let read = tokio::spawn(async move {
            let mut bytes = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
                .await
                .map(|_| bytes)
        });
        client
            .download(path(&format!("up{i}.bin")), 0, sink, &mut |_| {})
            .await
            .unwrap_or_else(|e| panic!("RETR #{i}: {e}"));
        let bytes = read.await.unwrap().unwrap();
        assert_same(
            &bytes,
            &pattern(10_000 + i as usize, 300 + i),
            "RETR after STOR",
        );
    }
    client.quit().await.unwrap();
}

/// A few MB each way over TLS in every data mode: EPSV, PASV, EPRT, PORT (the data connection's TLS
/// client is always this client, whichever end connects).
async fn tls_data_modes(server: &Server, mode: TlsMode) {
    let modes = [passive(true), passive(false), active(true), active(false)];
    for (seed, options) in (20..).zip(modes) {
        round_trip(server, with_tls(server, mode, options), seed).await;
    }
    if server.logs_commands {
        for command in ["EPSV", "PASV", "EPRT |1|127.0.0.1|", "PORT 127,0,0,1,"] {
            assert!(server.received(command), "{command}: {}", server.log());
        }
    }
}

/// The limit [`starves_uploads`] works around: in TLS 1.3, against a server that requires session reuse
/// and sends no ticket on upload connections, uploads in a row are refused once the tickets of the login
/// are used up, and the error says why.
#[test]
fn tls13_tickets_run_out_on_uploads() {
    for kind in [Kind::Proftpd, Kind::Example] {
        run_tls(
            kind,
            TlsMode::Explicit,
            "tls13_tickets_run_out",
            async |server, mode| {
                let mut client = login(server, with_tls(server, mode, passive(true))).await;
                binary(&mut client).await;
                let mut refused = None;
                for i in 0..10 {
                    let source = std::io::Cursor::new(pattern(1000, i));
                    let name = path(&format!("up{i}.bin"));
                    if let Err(error) = client.upload(name, 0, false, source, &mut |_| {}).await {
                        refused = Some((i, error));
                        break;
                    }
                }
                let Some((i, error)) = refused else {
                    panic!(
                        "{}: ten uploads in TLS 1.3: tickets to spare now?",
                        server.kind.name()
                    );
                };
                // At least the two tickets every OpenSSL server sends at login were there.
                assert!(i >= 2, "upload #{i}: {error}");
                assert!(
                    matches!(error, DriverError::TlsNotResumed(_)),
                    "upload #{i}: {error:?}"
                );
                assert_eq!(error.reply().map(|r| r.code().get()), Some(425), "{error}");
                assert!(
                    error
                        .to_string()
                        .contains("TLS 1.2 sessions do not run out"),
                    "{error}"
                );
                // The refusal is the transfer's: the session goes on.
                client.run(Request::Noop).await.unwrap();
                client.quit().await.unwrap();
            },
        );
    }
}

/// A server without TLS answers `AUTH TLS` with an error: the connection fails with that reply and
/// the client never sends `USER` or `PASS` in plaintext.
#[test]
fn tls_refused_is_no_plaintext_fallback() {
    for kind in [Kind::Pyftpdlib, Kind::Example] {
        run(kind, "tls_refused", async |server: &Server| {
            let tls = ClientTls::new(None, true).unwrap();
            let mut options = options();
            options.ftps = Ftps::Explicit(tls);
            let url = FtpUrl::parse(&server.url("/")).unwrap();
            let error = Client::connect_url(&url, options).await.unwrap_err();
            let DriverError::TlsRefused(reply) = &error else {
                panic!("{} did not refuse TLS: {error:?}", server.kind.name());
            };
            assert!(reply.code().get() >= 500, "{error}");
            assert!(
                error.to_string().contains("not going on in plaintext"),
                "{error}"
            );
            // The handle is gone; give a stray command the time to arrive, then check none did.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(server.received("AUTH TLS"), "{}", server.log());
            assert!(!server.received("USER"), "{}", server.log());
            assert!(!server.received("PASS"), "{}", server.log());
        });
    }
}

/// A certificate the client does not trust (another CA; the right CA but another name): the handshake
/// fails, and no login is sent.
#[test]
fn tls_untrusted_certificate() {
    run_tls(
        Kind::Example,
        TlsMode::Explicit,
        "tls_untrusted",
        async |server: &Server, _| {
            let other = TempDir::new("other-ca");
            let stranger = certs::TestPki::new(other.path());
            let mut wrong_ca = options();
            wrong_ca.ftps = Ftps::Explicit(ClientTls::new(Some(&stranger.ca), false).unwrap());
            let mut wrong_name = with_tls(server, TlsMode::Explicit, options());
            wrong_name.tls_name = Some("ftp.example.com".into());
            for options in [wrong_ca, wrong_name] {
                let url = FtpUrl::parse(&server.url("/")).unwrap();
                let error = Client::connect_url(&url, options).await.unwrap_err();
                assert!(matches!(error, DriverError::Tls(_)), "{error:?}");
                let message = error.to_string();
                assert!(message.starts_with("TLS handshake failed: "), "{message}");
                assert!(message.contains("give its CA with --ca-file"), "{message}");
            }
            // Implicit FTPS: the handshake comes before the greeting.
            let mut implicit = options();
            implicit.ftps = Ftps::Implicit(ClientTls::new(Some(&stranger.ca), false).unwrap());
            let url = FtpUrl::parse(&server.ftps_url("/")).unwrap();
            let error = Client::connect_url(&url, implicit).await.unwrap_err();
            assert!(matches!(error, DriverError::Tls(_)), "{error:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(!server.received("USER"), "{}", server.log());
        },
    );
}

// ---- FXP ----

/// Two example servers with `--allow-fxp`: the destination listens (PASV), the source connects to it
/// (PORT) and sends; the file never passes through the client.
#[test]
fn fxp_between_two_example_servers() {
    let started = Instant::now();
    let Some(destination) = servers::example_server(&["--allow-fxp"]) else {
        return;
    };
    let Some(source) = servers::example_server(&["--allow-fxp"]) else {
        return;
    };
    let data = pattern(BIG, 9);
    source.put_file("original.bin", &data);
    runtime().block_on(async {
        tokio::time::timeout(TEST_TIMEOUT, async {
            let mut to = login(&destination, options()).await;
            let mut from = login(&source, options()).await;
            binary(&mut to).await;
            binary(&mut from).await;
            let copy = FxpTransfer::new(path("original.bin"), path("copy.bin"));
            fxp_copy(&mut to, &mut from, copy).await.unwrap();
            to.quit().await.unwrap();
            from.quit().await.unwrap();
        })
        .await
        .expect("FXP timed out");
    });
    assert_same(
        &std::fs::read(destination.root.join("copy.bin")).unwrap(),
        &data,
        "FXP copy",
    );
    eprintln!("[time] fxp: {:.2} s", started.elapsed().as_secs_f64());
}

/// FXP between two example servers over TLS: the copy is protected (`PBSZ`/`PROT P` on both), the
/// source told `SSCN ON` to be the TLS client of the data connection it opens to the destination.
/// The destination, the TLS server of that connection, cannot require it to resume its control
/// connection's session (the other server never had it): the example server waives session reuse
/// for users allowed FXP (`--allow-fxp`).
#[test]
fn fxp_between_two_example_servers_over_tls() {
    let started = Instant::now();
    let flags = ["--allow-fxp"];
    let Some(destination) = servers::example_server_with(&flags, TlsMode::Explicit) else {
        return;
    };
    let Some(source) = servers::example_server_with(&flags, TlsMode::Explicit) else {
        return;
    };
    let data = pattern(BIG, 19);
    source.put_file("original.bin", &data);
    runtime().block_on(async {
        tokio::time::timeout(TEST_TIMEOUT, async {
            let mut to = login(
                &destination,
                with_tls(&destination, TlsMode::Explicit, options()),
            )
            .await;
            let mut from = login(&source, with_tls(&source, TlsMode::Explicit, options())).await;
            binary(&mut to).await;
            binary(&mut from).await;
            let copy = FxpTransfer::new(path("original.bin"), path("copy.bin"));
            fxp_copy(&mut to, &mut from, copy).await.unwrap();
            // A second copy the other way round: the SSCN state of the first does not get in its way.
            let back = FxpTransfer::new(path("copy.bin"), path("back.bin"));
            fxp_copy(&mut from, &mut to, back).await.unwrap();
            to.quit().await.unwrap();
            from.quit().await.unwrap();
        })
        .await
        .expect("FXP over TLS timed out");
    });
    assert_same(
        &std::fs::read(destination.root.join("copy.bin")).unwrap(),
        &data,
        "FXP copy over TLS",
    );
    assert_same(
        &std::fs::read(source.root.join("back.bin")).unwrap(),
        &data,
        "FXP copy back over TLS",
    );
    for server in [&source, &destination] {
        assert!(server.received("PROT P"), "{}", server.log());
        assert!(server.received("SSCN ON"), "{}", server.log());
    }
    eprintln!(
        "[time] fxp over TLS: {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

// ---- the CLI binary ----

/// Runs `target/<profile>/examples/client` with `args`: (status, stdout, stderr).
fn client_cli(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let binary = servers::client_binary().expect("client binary");
    let output = Command::new(binary)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn cli_exit_codes_messages_and_summary() {
    if servers::client_binary().is_none() {
        return;
    }
    run(Kind::Pyftpdlib, "cli", async |server: &Server| {
        let data = pattern(BIG, 11);
        server.put_file("file.bin", &data);
        let local = TempDir::new("cli");
        let cwd = local.path().to_owned();
        let url = server.url("/file.bin");
        let missing = server.url("/nope.bin");
        let upload_url = server.url("/incoming/");
        let root_url = server.url("/");
        let result = tokio::task::spawn_blocking(move || {
            let get = client_cli(&["get", &url], &cwd);
            let missing = client_cli(&["get", &missing], &cwd);
            let usage = client_cli(&["get"], &cwd);
            let bad_url = client_cli(&["ls", "http://example.com/"], &cwd);
            std::fs::write(cwd.join("small.txt"), b"small\n").unwrap();
            let put = client_cli(&["put", "--active", "small.txt", &upload_url], &cwd);
            // A partial local copy, continued.
            let partial = cwd.join("partial.bin");
            let data = std::fs::read(cwd.join("file.bin")).unwrap();
            std::fs::write(&partial, &data[..100_000]).unwrap();
            let resumed = client_cli(&["get", "--resume", &url, "partial.bin"], &cwd);
            let listing = client_cli(&["ls", &root_url], &cwd);
            (get, missing, usage, bad_url, put, resumed, listing)
        })
        .await
        .unwrap();
        let (get, missing, usage, bad_url, put, resumed, listing) = result;
        assert_eq!(get.0, 0, "{}", get.2);
        // stderr is not a terminal here: one summary line, no progress redraws.
        assert!(
            get.2.starts_with("RETR /file.bin: done, 3.0 MiB in"),
            "{}",
            get.2
        );
        assert!(!get.2.contains('\r'));
        assert_same(
            &std::fs::read(local.path().join("file.bin")).unwrap(),
            &data,
            "CLI get",
        );
        assert_eq!(missing.0, 1);
        assert!(
            missing.2.starts_with("error: RETR /nope.bin: 550 "),
            "{}",
            missing.2
        );
        assert_eq!(usage.0, 2, "{}", usage.2);
        assert_eq!(bad_url.0, 2, "{}", bad_url.2);
        // The directory does not exist: the CWD fails with the server's reply.
        assert_eq!(put.0, 1);
        assert!(put.2.starts_with("error: CWD incoming: 550 "), "{}", put.2);
        assert_eq!(resumed.0, 0, "{}", resumed.2);
        assert!(
            resumed.2.contains("resumed at byte 100000"),
            "{}",
            resumed.2
        );
        assert!(server.received("REST 100000"));
        assert_same(
            &std::fs::read(local.path().join("partial.bin")).unwrap(),
            &data,
            "CLI get --resume",
        );
        // `ls`: kind, size, date, name (MLSD: pyftpdlib offers MLST).
        assert_eq!(listing.0, 0, "{}", listing.2);
        let line = listing
            .1
            .lines()
            .find(|l| l.ends_with(" file.bin"))
            .unwrap_or_else(|| panic!("{}", listing.1));
        assert!(line.starts_with(&format!("file {BIG:>12} ")), "{line}");
    });
}

/// The CLI's FTPS: `--tls` with `--ca-file`, `ftps://`, `--insecure` (with its warning), `--tls-max`;
/// an untrusted certificate, a server without TLS and a server that requires TLS fail with exit
/// status 1 and say why; trust flags without TLS are a usage error.
#[test]
fn cli_ftps() {
    if servers::client_binary().is_none() {
        return;
    }
    let Some(plain) = servers::pyftpdlib(&[]) else {
        return;
    };
    run_tls(
        Kind::Example,
        TlsMode::Explicit,
        "cli_ftps",
        async |server, _| {
            let data = pattern(BIG, 13);
            server.put_file("file.bin", &data);
            let local = TempDir::new("cli-ftps");
            let cwd = local.path().to_owned();
            let ca = server.ca.clone().unwrap().display().to_string();
            let url = server.url("/file.bin");
            let implicit_url = server.ftps_url("/file.bin");
            let root_url = server.url("/");
            let plain_url = plain.url("/");
            let results = tokio::task::spawn_blocking(move || {
                let get = client_cli(&["get", "--tls", "--ca-file", &ca, &url], &cwd);
                std::fs::write(cwd.join("small.txt"), b"small\n").unwrap();
                let put = client_cli(
                    &[
                        "put",
                        "--tls",
                        "--active",
                        "--ca-file",
                        &ca,
                        "small.txt",
                        &root_url,
                    ],
                    &cwd,
                );
                let implicit = client_cli(
                    &["get", "--ca-file", &ca, &implicit_url, "implicit.bin"],
                    &cwd,
                );
                let tls12 = client_cli(
                    &[
                        "get",
                        "--tls",
                        "--tls-max",
                        "1.3",
                        "--ca-file",
                        &ca,
                        &url,
                        "tls13.bin",
                    ],
                    &cwd,
                );
                let insecure = client_cli(&["ls", "--tls", "--insecure", &root_url], &cwd);
                // No --ca-file: the test CA is nobody's.
                let untrusted = client_cli(&["ls", "--tls", &root_url], &cwd);
                let plaintext = client_cli(&["ls", &root_url], &cwd);
                let refused = client_cli(&["ls", "--tls", "--insecure", &plain_url], &cwd);
                let usage = client_cli(&["ls", "--ca-file", &ca, &root_url], &cwd);
                (
                    get, put, implicit, tls12, insecure, untrusted, plaintext, refused, usage,
                )
            })
            .await
            .unwrap();
            let (get, put, implicit, tls12, insecure, untrusted, plaintext, refused, usage) =
                results;
            assert_eq!(get.0, 0, "{}", get.2);
            assert!(
                get.2.starts_with("RETR /file.bin: done, 3.0 MiB in"),
                "{}",
                get.2
            );
            assert_same(
                &std::fs::read(local.path().join("file.bin")).unwrap(),
                &data,
                "get --tls",
            );
            assert_eq!(put.0, 0, "{}", put.2);
            assert_eq!(
                std::fs::read(server.root.join("small.txt")).unwrap(),
                b"small\n"
            );
            assert_eq!(implicit.0, 0, "{}", implicit.2);
            assert_same(
                &std::fs::read(local.path().join("implicit.bin")).unwrap(),
                &data,
                "get ftps://",
            );
            assert_eq!(tls12.0, 0, "{}", tls12.2);
            assert_same(
                &std::fs::read(local.path().join("tls13.bin")).unwrap(),
                &data,
                "--tls-max 1.3",
            );
            assert_eq!(insecure.0, 0, "{}", insecure.2);
            assert!(insecure.2.contains("warning: --insecure"), "{}", insecure.2);
            assert!(
                insecure.1.lines().any(|l| l.ends_with(" file.bin")),
                "{}",
                insecure.1
            );
            assert_eq!(untrusted.0, 1, "{}", untrusted.2);
            assert!(untrusted.2.starts_with("error: "), "{}", untrusted.2);
            assert!(untrusted.2.contains("TLS"), "{}", untrusted.2);
            // The server requires TLS: its refusal of the plaintext login.
            assert_eq!(plaintext.0, 1, "{}", plaintext.2);
            assert!(plaintext.2.contains(": 530 "), "{}", plaintext.2);
            assert_eq!(refused.0, 1, "{}", refused.2);
            assert!(refused.2.contains("refused TLS"), "{}", refused.2);
            assert!(
                refused.2.contains("not going on in plaintext"),
                "{}",
                refused.2
            );
            assert!(!plain.received("USER"), "{}", plain.log());
            assert_eq!(usage.0, 2, "{}", usage.2);
            // Every transfer of the server's log was protected.
            assert!(server.received("PROT P"), "{}", server.log());
        },
    );
}

/// `CCC` (RFC 4217 §12.3, `--allow-ccc` on the example server): the control connection goes back to
/// plaintext, the data connections stay protected (`PROT P` holds), and the session goes on.
#[test]
fn tls_clear_command_channel() {
    let Some(server) = servers::example_server_with(&["--allow-ccc"], TlsMode::Explicit) else {
        return;
    };
    runtime().block_on(async {
        tokio::time::timeout(TEST_TIMEOUT, async {
            let data = pattern(200_000, 17);
            server.put_file("file.bin", &data);
            let options = with_tls(&server, TlsMode::Explicit, passive(true));
            let mut client = login(&server, options).await;
            binary(&mut client).await;
            let local = TempDir::new("ccc");
            let file = local.path().join("before.bin");
            let sink = tokio::fs::File::create(&file).await.unwrap();
            client
                .download(path("file.bin"), 0, sink, &mut |_| {})
                .await
                .unwrap();
            let cleared = client.run(Request::ClearControl).await.unwrap();
            assert!(
                matches!(cleared, Outcome::Done(ref r) if r.code().get() == 200),
                "{cleared:?}"
            );
            // Plaintext commands now, protected data still.
            client.run(Request::Noop).await.unwrap();
            let file = local.path().join("after.bin");
            let sink = tokio::fs::File::create(&file).await.unwrap();
            client
                .download(path("file.bin"), 0, sink, &mut |_| {})
                .await
                .unwrap();
            assert_same(&std::fs::read(&file).unwrap(), &data, "RETR after CCC");
            client.quit().await.unwrap();
        })
        .await
        .expect("CCC timed out");
    });
    assert!(server.received("CCC"), "{}", server.log());
}

/// `mirror` over MLSD (ProFTPD and pyftpdlib) and over LIST (pyftpdlib without MLST), compared with
/// the served tree.
#[test]
fn cli_mirror() {
    if servers::client_binary().is_none() {
        return;
    }
    let servers = [
        ("proftpd", servers::proftpd()),
        ("pyftpdlib", servers::pyftpdlib(&[])),
        ("pyftpdlib --no-mlst", servers::pyftpdlib(&["--no-mlst"])),
    ];
    for (name, server) in servers {
        let Some(server) = server else { continue };
        let started = Instant::now();
        make_tree(&server);
        server.put_file("sub/deeper/deepest.bin", &pattern(70_000, 3));
        let local = TempDir::new("mirror");
        let (status, stdout, stderr) =
            client_cli(&["mirror", &server.url("/"), "copy"], local.path());
        assert_eq!(status, 0, "{name}: {stdout}{stderr}");
        assert!(
            stderr.contains("mirror /: 6 files, 3 directories"),
            "{name}: {stderr}"
        );
        assert_trees_equal(&server.root, &local.path().join("copy"));
        let listed_with = if name.ends_with("--no-mlst") {
            "LIST"
        } else {
            "MLSD"
        };
        assert!(server.received(listed_with), "{name}: {}", server.log());
        // MLSD and LIST both carry hello.txt's time (to the minute at least in LIST).
        let copied = std::fs::metadata(local.path().join("copy/hello.txt")).unwrap();
        let modified = copied
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (HELLO_MODIFIED - modified).abs() < 86_400,
            "{name}: mtime {modified}"
        );
        eprintln!(
            "[time] cli mirror on {name}: {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
}

#[track_caller]
fn assert_trees_equal(expected: &Path, actual: &Path) {
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let (want, got) = (names(expected), names(actual));
    assert_eq!(got, want, "entries of {}", actual.display());
    for name in want {
        let (e, a) = (expected.join(&name), actual.join(&name));
        if e.is_dir() {
            assert_trees_equal(&e, &a);
        } else {
            assert_same(
                &std::fs::read(&a).unwrap(),
                &std::fs::read(&e).unwrap(),
                &name,
            );
        }
    }
}

// ---- captured listings ----

/// Captures each server's raw `LIST` and `MLSD` bodies of [`TREE`] into `tests/fixtures/listings/`.
#[test]
#[ignore = "writes tests/fixtures/listings/; run by hand to re-capture"]
fn capture_listing_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/listings");
    std::fs::create_dir_all(&dir).unwrap();
    for kind in [Kind::Pyftpdlib, Kind::Proftpd, Kind::Example] {
        let Some(server) = kind.start() else { continue };
        make_tree(&server);
        let mut raw = raw::Raw::login(server.addr, USER, PASSWORD);
        let list = raw.listing("LIST");
        let mlsd = raw.listing("MLSD");
        raw.quit();
        std::fs::write(dir.join(format!("{}.list", kind.name())), list).unwrap();
        std::fs::write(dir.join(format!("{}.mlsd", kind.name())), mlsd).unwrap();
    }
}

/// The fixtures, parsed, show [`TREE`]: names, kinds, sizes, and hello.txt's old date.
mod fixtures {
    use super::*;

    /// Later than the captures: recent `ls` dates get this year or the one before.
    fn reference_now() -> Timestamp {
        Timestamp::parse_ftp(b"20991231235959").unwrap()
    }

    fn check_list(body: &[u8], source: &str) {
        let entries = parse_listing(body, reference_now());
        assert!(body.ends_with(b"\r\n"), "{source}: CRLF line ends");
        let hello = entries
            .iter()
            .flatten()
            .find(|e| e.name == b"hello.txt")
            .expect("hello.txt");
        // 2020-01-02 is older than six months: `ls` shows the day and the year.
        assert_eq!(
            hello.modified,
            Some(ListTime::Day(
                Timestamp::parse_ftp(b"20200102000000").unwrap()
            )),
            "{source}"
        );
        assert_tree(list_triples(Outcome::Listing(entries)), source);
    }

    fn check_mlsd(body: &[u8], source: &str) {
        let entries = parse_mlsx_listing(body);
        let hello = entries
            .iter()
            .flatten()
            .find(|e| e.name == b"hello.txt")
            .expect("hello.txt");
        assert_eq!(
            hello.modified.map(|t| t.unix_seconds()),
            Some(HELLO_MODIFIED),
            "{source}"
        );
        assert_tree(mlsd_triples(Outcome::Facts(entries)), source);
    }

    #[test]
    fn pyftpdlib() {
        check_list(
            include_bytes!("fixtures/listings/pyftpdlib.list"),
            "pyftpdlib LIST",
        );
        check_mlsd(
            include_bytes!("fixtures/listings/pyftpdlib.mlsd"),
            "pyftpdlib MLSD",
        );
    }

    #[test]
    fn proftpd() {
        check_list(
            include_bytes!("fixtures/listings/proftpd.list"),
            "proftpd LIST",
        );
        check_mlsd(
            include_bytes!("fixtures/listings/proftpd.mlsd"),
            "proftpd MLSD",
        );
    }

    #[test]
    fn example_server() {
        check_list(
            include_bytes!("fixtures/listings/example-server.list"),
            "example-server LIST",
        );
        check_mlsd(
            include_bytes!("fixtures/listings/example-server.mlsd"),
            "example-server MLSD",
        );
    }
}
