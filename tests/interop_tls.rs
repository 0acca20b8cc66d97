//! FTP over TLS (RFC 4217) on the example server, against real peers: curl, lftp and Python's
//! `ftplib.FTP_TLS` (`tests/interop/ftplib_tls_suite.py`) for explicit and implicit FTPS, transfers
//! checked byte for byte against the server's disk; and raw sockets (rustls as the client where TLS
//! is needed) for what a client should never do: garbage instead of a ClientHello, a handshake that
//! never finishes, commands pipelined behind `AUTH TLS`, a plaintext data connection after `PROT P`,
//! plaintext logins and transfers against `--require-tls`, and flags that make no sense.
//!
//! Certificates are made fresh by each test (`support/certs.rs`): a CA the clients trust, and a
//! server certificate for `localhost` and `127.0.0.1`. A missing client tool skips its tests, except
//! under `CI=true` (see `interop::require_tool`).

#[path = "support/certs.rs"]
mod certs;
#[path = "interop/mod.rs"]
mod interop;
#[path = "support/mod.rs"]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::TestPki;
use interop::{
    ClientOutput, PASSWORD, USER, USER_ARG, assert_bytes_eq, eventually, pseudo_random_bytes,
    require_tool, run_client, write_file,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use support::{ServerProcess, TempDir, server_binary};

/// Read and write timeout of the raw sockets here: far above any honest answer on loopback.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------------
// A server with a certificate

/// An example server with a fresh certificate (`--tls-cert`, `--tls-key`), `--user alice:secret` and
/// read-only anonymous logins, plus `extra` flags. The server is killed before the certificates go.
struct TlsServer {
    server: ServerProcess,
    pki: TestPki,
    _pki_dir: TempDir,
}

impl TlsServer {
    fn start(extra: &[&str]) -> TlsServer {
        let pki_dir = TempDir::new("tls-pki");
        let pki = TestPki::new(pki_dir.path());
        let (cert, key) = (path_arg(&pki.cert), path_arg(&pki.key));
        let mut args = vec!["--user", USER_ARG, "--anonymous", "ro"];
        args.extend(["--tls-cert", &cert, "--tls-key", &key]);
        args.extend_from_slice(extra);
        TlsServer {
            server: ServerProcess::start(&args),
            pki,
            _pki_dir: pki_dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn implicit_addr(&self) -> SocketAddr {
        self.server
            .implicit_addr
            .expect("started with --implicit-tls-listen")
    }

    fn root(&self) -> &Path {
        &self.server.root
    }

    fn ca(&self) -> String {
        path_arg(&self.pki.ca)
    }

    /// A rustls client that trusts the test CA (its session store resumes on data connections).
    fn client_config(&self) -> Arc<ClientConfig> {
        client_config(&self.pki.ca)
    }
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_owned()
}

/// rustls' ring provider, as the examples use (deprecated in rustls 0.23.48 for lacking
/// post-quantum key exchange; see `examples/common/tls.rs`).
#[allow(deprecated)]
fn client_config(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read the CA") {
        roots.add(cert.expect("CA PEM")).expect("add the CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

// ---------------------------------------------------------------------------------------------------
// A control connection by hand, plaintext or TLS

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// One reply: its code and its lines.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A control connection over `S` (a `TcpStream`, or TLS over one), read a byte at a time so that
/// nothing is read ahead of a switch to TLS.
struct Ftp<S> {
    stream: S,
}

fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    tcp.set_read_timeout(Some(SOCKET_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(SOCKET_TIMEOUT)).unwrap();
    let _ = tcp.set_nodelay(true);
    tcp
}

/// What a read told about the connection.
enum Read1 {
    Byte(u8),
    /// The peer closed it (cleanly, by a reset, or without TLS's close_notify).
    Closed,
}

fn read_byte(stream: &mut impl Read) -> Read1 {
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return Read1::Closed,
            Ok(_) => return Read1::Byte(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no answer within {SOCKET_TIMEOUT:?}")
            }
            Err(_) => return Read1::Closed,
        }
    }
}

impl Ftp<TcpStream> {
    /// Connects and reads the 220 greeting.
    fn connect(addr: SocketAddr) -> Ftp<TcpStream> {
        let mut ftp = Ftp {
            stream: tcp_connect(addr),
        };
        ftp.expect_reply(220);
        ftp
    }

    /// `AUTH TLS`, then the handshake.
    fn auth_tls(mut self, config: &Arc<ClientConfig>) -> Ftp<TlsStream> {
        self.expect("AUTH TLS", 234);
        self.secure(config)
    }

    /// The TLS handshake (after 234, or at once on the implicit port).
    fn secure(self, config: &Arc<ClientConfig>) -> Ftp<TlsStream> {
        Ftp {
            stream: tls_connect(self.stream, config).expect("TLS handshake"),
        }
    }
}

fn tls_connect(mut tcp: TcpStream, config: &Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = ClientConnection::new(Arc::clone(config), name).expect("client connection");
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(tls, tcp))
}

impl<S: Read + Write> Ftp<S> {
    fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write control");
        self.stream.flush().expect("flush control");
    }

    /// One line without CRLF; `None` if the connection closed first.
    fn line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        loop {
            match read_byte(&mut self.stream) {
                Read1::Byte(b'\n') => break,
                Read1::Byte(byte) => line.push(byte),
                Read1::Closed if line.is_empty() => return None,
                Read1::Closed => panic!("closed inside a line: {line:?}"),
            }
        }
        assert_eq!(line.pop(), Some(b'\r'), "a reply line without CRLF");
        Some(String::from_utf8_lossy(&line).into_owned())
    }

    fn try_reply(&mut self) -> Option<Reply> {
        let first = self.line()?;
        let code: u16 = first
            .get(..3)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not a reply: {first:?}"));
        let mut lines = vec![first.clone()];
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let line = self.line().expect("closed inside a multi-line reply");
                let done = line.starts_with(&end);
                lines.push(line);
                if done {
                    break;
                }
            }
        }
        Some(Reply { code, lines })
    }

    fn reply(&mut self) -> Reply {
        self.try_reply()
            .expect("the connection closed instead of a reply")
    }

    fn expect_reply(&mut self, code: u16) -> Reply {
        let reply = self.reply();
        assert_eq!(reply.code, code, "unexpected reply: {}", reply.text());
        reply
    }

    fn expect(&mut self, line: &str, code: u16) -> Reply {
        self.send(line);
        let reply = self.reply();
        assert_eq!(reply.code, code, "{line:?} got: {}", reply.text());
        reply
    }

    fn login(&mut self, user: &str, password: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {password}"), 230);
    }

    /// `EPSV`: the data port's address (on the control connection's host).
    fn epsv(&mut self, host: SocketAddr) -> SocketAddr {
        let reply = self.expect("EPSV", 229);
        let text = reply.text();
        let port = text
            .split("(|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("bad EPSV reply {text:?}"));
        SocketAddr::new(host.ip(), port)
    }

    /// `PBSZ 0`, `PROT P` and `TYPE I`: protected binary transfers from now on.
    fn protect(&mut self) {
        self.expect("PBSZ 0", 200);
        self.expect("PROT P", 200);
        self.expect("TYPE I", 200);
    }

    /// A protected passive transfer's data connection: `EPSV`, connect, `command` (answered 150),
    /// then the data connection's TLS handshake.
    fn protected_data(
        &mut self,
        host: SocketAddr,
        command: &str,
        config: &Arc<ClientConfig>,
    ) -> TlsStream {
        let addr = self.epsv(host);
        let tcp = tcp_connect(addr);
        self.expect(command, 150);
        tls_connect(tcp, config).expect("data handshake")
    }

    /// Whether the server closes the connection, sending nothing more, within [`SOCKET_TIMEOUT`].
    fn closed_without_a_word(&mut self) -> bool {
        matches!(read_byte(&mut self.stream), Read1::Closed)
    }

    /// Reads until the server closes the connection (within [`SOCKET_TIMEOUT`] per read), and checks
    /// that what came was no FTP reply: nothing, or a TLS alert record (content type 21).
    fn closed_with_at_most_an_alert(&mut self) {
        let mut got = Vec::new();
        while let Read1::Byte(byte) = read_byte(&mut self.stream) {
            got.push(byte);
        }
        assert!(
            got.is_empty() || got[0] == 0x15,
            "not a TLS alert before the close: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// Reads a TLS data connection to its end.
fn read_to_end(stream: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("reading the data connection: {e}"));
    out
}

// ---------------------------------------------------------------------------------------------------
// Without a certificate, and flags that make no sense

/// Without `--tls-cert` the server is what it was before FTPS: `AUTH` is 502, FEAT does not offer it.
#[test]
fn without_a_certificate_auth_is_502_and_feat_offers_no_tls() {
    let server = ServerProcess::start(&["--user", USER_ARG]);
    let mut ftp = Ftp::connect(server.addr);
    let features = ftp.expect("FEAT", 211).text();
    for feature in ["AUTH", "PBSZ", "PROT", "CCC", "SSCN"] {
        assert!(
            !features.contains(&format!(" {feature}")),
            "FEAT offers {feature}: {features}"
        );
    }
    ftp.expect("AUTH TLS", 502);
    ftp.expect("PBSZ 0", 503);
    ftp.login(USER, PASSWORD);
    ftp.expect("QUIT", 221);
}

/// Each TLS flag without a certificate, half a certificate, or a certificate that cannot be read, is
/// an error at start-up (exit 2) that says what is wrong.
#[test]
fn tls_flags_that_make_no_sense_are_refused_at_start_up() {
    let dir = TempDir::new("tls-flags");
    let pki = TestPki::new(dir.path());
    let (cert, key) = (path_arg(&pki.cert), path_arg(&pki.key));
    let garbage = write_file(dir.path(), "garbage.pem", b"not a certificate\n");
    let garbage = path_arg(&garbage);
    let root = path_arg(dir.path());
    let cases: &[(&[&str], &str)] = &[
        (&["--require-tls"], "--require-tls needs TLS"),
        (&["--allow-ccc"], "--allow-ccc needs TLS"),
        (
            &["--implicit-tls-listen", "127.0.0.1:0"],
            "--implicit-tls-listen needs TLS",
        ),
        (
            &["--tls-handshake-timeout", "5"],
            "--tls-handshake-timeout needs TLS",
        ),
        (&["--tls-cert", &cert], "--tls-cert needs --tls-key"),
        (&["--tls-key", &key], "--tls-key needs --tls-cert"),
        (
            &[
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-exempt-anonymous",
            ],
            "only makes sense with --require-tls",
        ),
        (&["--require-tls=yes"], "takes no value"),
        (
            &["--tls-cert", &garbage, "--tls-key", &key],
            "no certificate in",
        ),
        (
            &["--tls-cert", "/nonexistent/cert.pem", "--tls-key", &key],
            "--tls-cert /nonexistent/cert.pem",
        ),
        (&["--tls-cert", &cert, "--tls-key", &garbage], "--tls-key"),
    ];
    let binary = server_binary();
    for (args, message) in cases {
        let mut command = Command::new(&binary);
        command
            .args(["--root", &root, "--listen", "127.0.0.1:0", "--no-landlock"])
            .args(*args);
        let out = run_client(&mut command, Duration::from_secs(20));
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.describe());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in:\n{stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?} listened: {}",
            out.describe()
        );
    }

    let mut command = Command::new(&binary);
    let help = run_client(command.arg("--help"), Duration::from_secs(20));
    help.assert_success();
    for flag in [
        "--tls-cert FILE",
        "--tls-key FILE",
        "--require-tls",
        "--tls-exempt-anonymous",
        "--implicit-tls-listen ADDR",
        "--allow-ccc",
        "--tls-handshake-timeout SECS",
    ] {
        assert!(help.stdout_text().contains(flag), "--help lacks {flag}");
    }
}

// ---------------------------------------------------------------------------------------------------
// Bad input around the handshake

/// Plaintext where the ClientHello should be: the connection is closed without a reply, and the
/// server goes on serving others.
#[test]
fn garbage_instead_of_a_client_hello_closes_the_connection() {
    let server = TlsServer::start(&[]);
    let mut ftp = Ftp::connect(server.addr());
    ftp.expect("AUTH TLS", 234);
    ftp.send("USER alice");
    ftp.send("PASS secret");
    ftp.closed_with_at_most_an_alert();
    // Binary garbage that starts like a TLS record.
    let mut ftp = Ftp::connect(server.addr());
    ftp.expect("AUTH TLS", 234);
    ftp.send_raw(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff]);
    ftp.closed_with_at_most_an_alert();

    let config = server.client_config();
    let mut ftp = Ftp::connect(server.addr()).auth_tls(&config);
    ftp.login(USER, PASSWORD);
    ftp.expect("NOOP", 200);
    assert!(server.server.log().contains("TLS handshake failed"));
}

/// `AUTH TLS` and then silence: the connection is closed after `--tls-handshake-timeout`, on the
/// explicit port and on the implicit one.
#[test]
fn a_handshake_that_never_finishes_is_closed_after_the_timeout() {
    let server = TlsServer::start(&[
        "--tls-handshake-timeout",
        "1",
        "--implicit-tls-listen",
        "127.0.0.1:0",
    ]);
    let mut ftp = Ftp::connect(server.addr());
    ftp.expect("AUTH TLS", 234);
    let started = Instant::now();
    assert!(ftp.closed_without_a_word());
    println!("explicit: closed {:?} after 234", started.elapsed());

    // Half a ClientHello, then nothing.
    let mut ftp = Ftp::connect(server.addr());
    ftp.expect("AUTH TLS", 234);
    ftp.send_raw(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]);
    assert!(ftp.closed_without_a_word());

    let mut implicit = Ftp {
        stream: tcp_connect(server.implicit_addr()),
    };
    let started = Instant::now();
    assert!(implicit.closed_without_a_word());
    println!("implicit: closed {:?} after connecting", started.elapsed());
    assert!(server.server.log().contains("TLS handshake timed out"));
}

/// A connection to the implicit port takes its connection slot before its handshake: handshakes
/// that never finish cannot get around `--max-connections-per-ip`, and hold their slots only until
/// the handshake timeout.
#[test]
fn implicit_handshakes_count_against_the_per_address_cap() {
    let server = TlsServer::start(&[
        "--tls-handshake-timeout",
        "2",
        "--implicit-tls-listen",
        "127.0.0.1:0",
        "--max-connections-per-ip",
        "2",
    ]);
    let implicit = server.implicit_addr();
    let mut stalled: Vec<Ftp<TcpStream>> = (0..2)
        .map(|_| Ftp {
            stream: tcp_connect(implicit),
        })
        .collect();
    // Both are counted once the server has accepted them (logged as connected).
    assert!(
        eventually(SOCKET_TIMEOUT, || {
            server.server.log().matches("connected from").count() >= 2
        }),
        "{}",
        server.server.log()
    );
    // Over the cap: refused at once, without a handshake, on either port.
    let mut third = Ftp {
        stream: tcp_connect(implicit),
    };
    assert!(third.closed_without_a_word());
    let mut plain = Ftp {
        stream: tcp_connect(server.addr()),
    };
    let refusal = plain.reply();
    assert_eq!(refusal.code, 421, "{}", refusal.text());
    assert!(
        server
            .server
            .log()
            .contains("too many connections from this address")
    );
    // The stalled handshakes time out and give their slots back.
    for ftp in &mut stalled {
        assert!(ftp.closed_without_a_word());
    }
    let config = server.client_config();
    let ok = eventually(SOCKET_TIMEOUT, || {
        let tcp = tcp_connect(implicit);
        tls_connect(tcp, &config).is_ok_and(|stream| {
            let mut ftp = Ftp { stream };
            ftp.try_reply().is_some_and(|greeting| greeting.code == 220)
        })
    });
    assert!(
        ok,
        "no implicit FTPS session after the stalled ones timed out"
    );
}

/// Commands pipelined behind `AUTH TLS` in plaintext are never run (CVE-2011-0411): nothing answers
/// them in plaintext, and after the handshake the session is not logged in.
#[test]
fn commands_pipelined_behind_auth_tls_are_dropped() {
    let server = TlsServer::start(&[]);
    let config = server.client_config();
    let mut ftp = Ftp::connect(server.addr());
    ftp.send_raw(b"AUTH TLS\r\nUSER alice\r\nPASS secret\r\n");
    ftp.expect_reply(234);
    // Nothing more in plaintext: the server waits for a ClientHello.
    ftp.stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    match ftp.stream.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("plaintext after 234: {other:?} {byte:?}"),
    }
    ftp.stream.set_read_timeout(Some(SOCKET_TIMEOUT)).unwrap();
    let logins = match tls_connect(ftp.stream, &config) {
        Ok(stream) => {
            // The server read the pipelined lines with AUTH and dropped them.
            let mut ftp = Ftp { stream };
            ftp.expect("PWD", 530);
            ftp.expect("PASS secret", 503);
            ftp.login(USER, PASSWORD);
            ftp.expect("PWD", 257);
            1
        }
        // Or it took them for the ClientHello, which failed: closed, never answered.
        Err(error) => {
            println!("handshake failed after pipelined commands: {error}");
            0
        }
    };
    // Only the login made over TLS above, if any.
    let log = server.server.log();
    assert_eq!(log.matches("logged in as alice").count(), logins, "{log}");
}

/// A second `AUTH TLS` over TLS is 503, and the session goes on.
#[test]
fn auth_tls_twice_is_503() {
    let server = TlsServer::start(&[]);
    let config = server.client_config();
    let mut ftp = Ftp::connect(server.addr()).auth_tls(&config);
    ftp.expect("AUTH TLS", 503);
    ftp.expect("AUTH SSL", 503);
    ftp.login(USER, PASSWORD);
    ftp.expect("NOOP", 200);
}

/// After `PROT P`, a data connection that does not speak TLS fails with 425 (download and upload),
/// the upload stores nothing, and the session goes on.
#[test]
fn a_plaintext_data_connection_after_prot_p_is_425() {
    let server = TlsServer::start(&[]);
    let data = pseudo_random_bytes(200_000, 1);
    write_file(server.root(), "file.bin", &data);
    let config = server.client_config();
    let mut ftp = Ftp::connect(server.addr()).auth_tls(&config);
    ftp.login(USER, PASSWORD);
    ftp.protect();

    let addr = ftp.epsv(server.addr());
    let mut data_tcp = tcp_connect(addr);
    ftp.expect("RETR file.bin", 150);
    data_tcp
        .write_all(b"this is not a ClientHello\r\n")
        .unwrap();
    ftp.expect_reply(425);
    let mut rest = Vec::new();
    let _ = data_tcp.read_to_end(&mut rest);
    assert!(
        !rest.windows(64).any(|w| w == &data[..64]),
        "file bytes on a plaintext data connection"
    );
    ftp.expect("NOOP", 200);

    let addr = ftp.epsv(server.addr());
    let mut data_tcp = tcp_connect(addr);
    ftp.expect("STOR up.bin", 150);
    let _ = data_tcp.write_all(b"plaintext upload bytes\r\n");
    ftp.expect_reply(425);
    drop(data_tcp);
    ftp.expect("NOOP", 200);
    assert!(
        std::fs::read(server.root().join("up.bin")).map_or(true, |b| b.is_empty()),
        "plaintext bytes were stored"
    );

    // A protected one works on the same session.
    let mut tls = ftp.protected_data(server.addr(), "RETR file.bin", &config);
    assert_bytes_eq(&read_to_end(&mut tls), &data, "RETR over TLS");
    ftp.expect_reply(226);
}

// ---------------------------------------------------------------------------------------------------
// Policy: --require-tls, --tls-exempt-anonymous

/// `--require-tls`: `USER` before `AUTH TLS` is 530 (anonymous too), a transfer with `PROT C` is
/// 521, and with `PROT P` everything works.
#[test]
fn require_tls_refuses_plaintext_logins_and_transfers() {
    let server = TlsServer::start(&["--require-tls"]);
    let data = pseudo_random_bytes(100_000, 2);
    write_file(server.root(), "file.bin", &data);
    let mut plain = Ftp::connect(server.addr());
    plain.expect("USER alice", 530);
    plain.expect("USER anonymous", 530);
    plain.expect("PASS secret", 503);
    plain.expect("QUIT", 221);

    let config = server.client_config();
    let mut ftp = Ftp::connect(server.addr()).auth_tls(&config);
    ftp.login(USER, PASSWORD);
    ftp.expect("TYPE I", 200);
    ftp.expect("PBSZ 0", 200);
    ftp.expect("PROT C", 200);
    let _addr = ftp.epsv(server.addr());
    ftp.expect("RETR file.bin", 521);
    ftp.expect("NOOP", 200);
    ftp.expect("PROT P", 200);
    let mut tls = ftp.protected_data(server.addr(), "RETR file.bin", &config);
    assert_bytes_eq(&read_to_end(&mut tls), &data, "RETR with PROT P");
    ftp.expect_reply(226);
}

/// `--require-tls --tls-exempt-anonymous`: anonymous users log in and download in plaintext; other
/// users still need TLS.
#[test]
fn tls_exempt_anonymous_lets_anonymous_users_in_plaintext() {
    let server = TlsServer::start(&["--require-tls", "--tls-exempt-anonymous"]);
    let data = pseudo_random_bytes(50_000, 3);
    write_file(server.root(), "public.bin", &data);
    let mut plain = Ftp::connect(server.addr());
    plain.expect("USER alice", 530);
    plain.login("anonymous", "guest@example.com");
    plain.expect("TYPE I", 200);
    let addr = plain.epsv(server.addr());
    let mut tcp = tcp_connect(addr);
    plain.expect("RETR public.bin", 150);
    assert_bytes_eq(&read_to_end(&mut tcp), &data, "anonymous plaintext RETR");
    plain.expect_reply(226);
}

// ---------------------------------------------------------------------------------------------------
// Implicit FTPS with a raw rustls client

/// The implicit port: TLS from the first byte, the 220 over it, data protected without PBSZ/PROT,
/// and the data connection resumes the control connection's session.
#[test]
fn implicit_ftps_login_and_transfers() {
    let server = TlsServer::start(&["--implicit-tls-listen", "127.0.0.1:0"]);
    let data = pseudo_random_bytes(1024 * 1024 + 5, 4);
    write_file(server.root(), "file.bin", &data);
    let config = server.client_config();
    let stream = tls_connect(tcp_connect(server.implicit_addr()), &config).expect("handshake");
    let mut ftp = Ftp { stream };
    ftp.expect_reply(220);
    ftp.expect("AUTH TLS", 503);
    ftp.login(USER, PASSWORD);
    ftp.expect("TYPE I", 200);
    for _ in 0..3 {
        let mut tls = ftp.protected_data(server.implicit_addr(), "RETR file.bin", &config);
        assert_bytes_eq(&read_to_end(&mut tls), &data, "RETR over implicit FTPS");
        ftp.expect_reply(226);
    }
    // A plaintext data connection is refused: data is protected by default here.
    let addr = ftp.epsv(server.implicit_addr());
    let mut tcp = tcp_connect(addr);
    ftp.expect("RETR file.bin", 150);
    let _ = tcp.write_all(b"plaintext\r\n");
    ftp.expect_reply(425);
    ftp.expect("QUIT", 221);
}

// ---------------------------------------------------------------------------------------------------
// curl

/// Runs curl with its own time limits and ours; `-sS`: no progress meter, but errors on stderr.
fn curl(args: &[&str]) -> ClientOutput {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--connect-timeout", "10", "--max-time", "60"])
        .args(args);
    run_client(&mut command, Duration::from_secs(90))
}

/// The commands curl sent, from its verbose log (`> CMD` lines on stderr).
fn curl_commands(output: &ClientOutput) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("> "))
        .map(str::to_owned)
        .collect()
}

fn assert_sent(commands: &[String], prefix: &str) {
    assert!(
        commands.iter().any(|c| c.starts_with(prefix)),
        "never sent {prefix}: {commands:?}"
    );
}

/// curl's version, as (major, minor).
fn curl_version() -> (u32, u32) {
    let out = run_client(
        Command::new("curl").arg("--version"),
        interop::CLIENT_TIMEOUT,
    );
    let text = out.stdout_text();
    let version = text.split_whitespace().nth(1).unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn credentials() -> String {
    format!("{USER}:{PASSWORD}")
}

/// `curl --ssl-reqd`: download, upload (`-T`) and listing over explicit FTPS in passive mode, byte
/// for byte.
#[test]
fn curl_explicit_ftps_download_upload_and_list() {
    if !require_tool("curl") {
        return;
    }
    let server = TlsServer::start(&[]);
    let big = pseudo_random_bytes(3 * 1024 * 1024 + 17, 5);
    write_file(server.root(), "pub/big.bin", &big);
    let local = TempDir::new("curl-ftps");
    let ca = server.ca();
    let base = format!("ftp://{}", server.addr());

    let target = local.path().join("big.bin");
    let got = curl(&[
        "-v",
        "--ssl-reqd",
        "--cacert",
        &ca,
        "-u",
        &credentials(),
        "-o",
        &path_arg(&target),
        &format!("{base}/pub/big.bin"),
    ]);
    got.assert_success();
    assert_bytes_eq(&std::fs::read(&target).unwrap(), &big, "RETR big.bin");
    let commands = curl_commands(&got);
    assert!(
        commands.iter().any(|c| c == "AUTH SSL" || c == "AUTH TLS"),
        "{commands:?}"
    );
    assert_sent(&commands, "PROT P");
    assert_sent(&commands, "EPSV");

    let upload = pseudo_random_bytes(2 * 1024 * 1024 + 3, 6);
    let source = write_file(local.path(), "up.bin", &upload);
    for name in ["up.bin", "again.bin"] {
        curl(&[
            "--ssl-reqd",
            "--cacert",
            &ca,
            "-u",
            &credentials(),
            "-T",
            &path_arg(&source),
            &format!("{base}/pub/{name}"),
        ])
        .assert_success();
        let stored = std::fs::read(server.root().join("pub").join(name)).unwrap();
        assert_bytes_eq(&stored, &upload, name);
    }

    let listing = curl(&[
        "--ssl-reqd",
        "--cacert",
        &ca,
        "-u",
        &credentials(),
        &format!("{base}/pub/"),
    ]);
    listing.assert_success();
    let text = listing.stdout_text();
    for name in ["big.bin", "up.bin", "again.bin"] {
        assert!(
            text.lines().any(|l| l.ends_with(&format!(" {name}"))),
            "{text}"
        );
    }
    let names = curl(&[
        "--ssl-reqd",
        "--cacert",
        &ca,
        "--list-only",
        &format!("{base}/pub/"),
    ]);
    names.assert_success();
    let mut names: Vec<String> = names.stdout_text().lines().map(str::to_owned).collect();
    names.sort();
    assert_eq!(names, ["again.bin", "big.bin", "up.bin"]);

    // TLS 1.2: data connections resume the control connection's session by its id.
    let target12 = local.path().join("big12.bin");
    let got = curl(&[
        "-v",
        "--tls-max",
        "1.2",
        "--ssl-reqd",
        "--cacert",
        &ca,
        "-u",
        &credentials(),
        "-o",
        &path_arg(&target12),
        &format!("{base}/pub/big.bin"),
    ]);
    got.assert_success();
    assert!(
        String::from_utf8_lossy(&got.stderr).contains("SSL connection using TLSv1.2"),
        "{}",
        got.describe()
    );
    assert_bytes_eq(
        &std::fs::read(&target12).unwrap(),
        &big,
        "RETR over TLS 1.2",
    );
    curl(&[
        "--tls-max",
        "1.2",
        "--ssl-reqd",
        "--cacert",
        &ca,
        "-u",
        &credentials(),
        "-T",
        &path_arg(&source),
        &format!("{base}/pub/up12.bin"),
    ])
    .assert_success();
    let stored = std::fs::read(server.root().join("pub/up12.bin")).unwrap();
    assert_bytes_eq(&stored, &upload, "STOR over TLS 1.2");

    // Without a CA to trust the server's certificate, curl refuses it (exit 60).
    let untrusted = curl(&["--ssl-reqd", &format!("{base}/pub/big.bin")]);
    assert_eq!(untrusted.code(), Some(60), "{}", untrusted.describe());
    assert!(!server.server.log().contains("aborted"));
}

/// Active mode (`-P`) with a TLS control connection. curl 7.87 and 7.88 never start TLS on an
/// active data connection (curl issue #10666, fixed in 8.0): with those, the data connection is
/// tested in the clear (`--ftp-ssl-control`, `PROT C`), otherwise protected.
#[test]
fn curl_explicit_ftps_active_mode() {
    if !require_tool("curl") {
        return;
    }
    let server = TlsServer::start(&[]);
    let data = pseudo_random_bytes(1024 * 1024 + 9, 7);
    write_file(server.root(), "active.bin", &data);
    let local = TempDir::new("curl-ftps-active");
    let ca = server.ca();
    let base = format!("ftp://{}", server.addr());
    let version = curl_version();
    let protected_data = version >= (8, 0);
    let tls_flag = if protected_data {
        "--ssl-reqd"
    } else {
        println!(
            "curl {}.{} cannot protect active data connections (curl #10666): testing PROT C",
            version.0, version.1
        );
        "--ftp-ssl-control"
    };
    let target = local.path().join("active.bin");
    let got = curl(&[
        "-v",
        tls_flag,
        "--cacert",
        &ca,
        "-u",
        &credentials(),
        "-P",
        "127.0.0.1",
        "-o",
        &path_arg(&target),
        &format!("{base}/active.bin"),
    ]);
    got.assert_success();
    assert_bytes_eq(&std::fs::read(&target).unwrap(), &data, "active RETR");
    let commands = curl_commands(&got);
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("EPRT") || c.starts_with("PORT")),
        "{commands:?}"
    );
    assert_sent(&commands, if protected_data { "PROT P" } else { "PROT C" });

    let upload = pseudo_random_bytes(700_001, 8);
    let source = write_file(local.path(), "up.bin", &upload);
    curl(&[
        tls_flag,
        "--cacert",
        &ca,
        "-u",
        &credentials(),
        "-P",
        "127.0.0.1",
        "-T",
        &path_arg(&source),
        &format!("{base}/up-active.bin"),
    ])
    .assert_success();
    let stored = std::fs::read(server.root().join("up-active.bin")).unwrap();
    assert_bytes_eq(&stored, &upload, "active STOR");
}

/// `ftps://` against `--implicit-tls-listen`: download, upload, listing.
#[test]
fn curl_implicit_ftps() {
    if !require_tool("curl") {
        return;
    }
    let server = TlsServer::start(&["--implicit-tls-listen", "127.0.0.1:0"]);
    let data = pseudo_random_bytes(2 * 1024 * 1024 + 1, 9);
    write_file(server.root(), "implicit.bin", &data);
    let local = TempDir::new("curl-implicit");
    let ca = server.ca();
    let base = format!("ftps://{}", server.implicit_addr());

    let target = local.path().join("implicit.bin");
    curl(&[
        "--cacert",
        &ca,
        "-u",
        &credentials(),
        "-o",
        &path_arg(&target),
        &format!("{base}/implicit.bin"),
    ])
    .assert_success();
    assert_bytes_eq(&std::fs::read(&target).unwrap(), &data, "implicit RETR");

    let source = write_file(local.path(), "up.bin", &data[..1_000_003]);
    curl(&[
        "--cacert",
        &ca,
        "-u",
        &credentials(),
        "-T",
        &path_arg(&source),
        &format!("{base}/up.bin"),
    ])
    .assert_success();
    let stored = std::fs::read(server.root().join("up.bin")).unwrap();
    assert_bytes_eq(&stored, &data[..1_000_003], "implicit STOR");

    let listing = curl(&["--cacert", &ca, "--list-only", &format!("{base}/")]);
    listing.assert_success();
    let mut names: Vec<String> = listing.stdout_text().lines().map(str::to_owned).collect();
    names.sort();
    assert_eq!(names, ["implicit.bin", "up.bin"]);
}

/// `--require-tls`: curl without TLS cannot log in (exit 67, CURLE_LOGIN_DENIED); with it, it can.
#[test]
fn curl_against_require_tls() {
    if !require_tool("curl") {
        return;
    }
    let server = TlsServer::start(&["--require-tls"]);
    write_file(server.root(), "file.txt", b"protected\n");
    let url = format!("ftp://{}/file.txt", server.addr());
    let plain = curl(&["-u", &credentials(), &url]);
    assert_eq!(plain.code(), Some(67), "{}", plain.describe());
    let anonymous = curl(&[&url]);
    assert_eq!(anonymous.code(), Some(67), "{}", anonymous.describe());
    let got = curl(&["--ssl-reqd", "--cacert", &server.ca(), &url]);
    got.assert_success();
    assert_eq!(got.stdout, b"protected\n");
}

// ---------------------------------------------------------------------------------------------------
// lftp

/// lftp's settings for FTPS: TLS forced on control and data, the test CA trusted (and the server's
/// name checked), fail fast, exit non-zero on the first error.
fn lftp_settings(ca: &str) -> String {
    format!(
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file \"{ca}\"; \
         set ssl:verify-certificate true; set ssl:check-hostname true; set net:max-retries 1; \
         set net:timeout 10; set cmd:fail-exit yes; set xfer:clobber on"
    )
}

/// Runs `script` in lftp after `open`; the protocol log goes to `log`.
fn lftp(ca: &str, open: &str, log: &Path, script: &str) -> ClientOutput {
    let full = format!(
        "{}; debug -o \"{}\" 5; open {open}; {script}",
        lftp_settings(ca),
        log.display()
    );
    let mut command = Command::new("lftp");
    command.arg("-c").arg(full);
    run_client(&mut command, Duration::from_secs(90))
}

/// The commands lftp sent and the replies it got, from its debug log.
fn lftp_lines(log: &Path, marker: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(marker).map(|(_, rest)| rest.to_owned()))
        .collect()
}

/// Checks lftp's log: TLS was used, every listed command was sent, and no transfer failed (lftp
/// retries a failed transfer on its own, which would hide a failure from its exit code).
fn check_lftp_log(log: &Path, server: &TlsServer, expect: &[&str]) {
    let sent = lftp_lines(log, "---> ");
    for prefix in expect {
        assert_sent(&sent, prefix);
    }
    let replies = lftp_lines(log, "<--- ");
    assert!(
        !replies
            .iter()
            .any(|r| r.starts_with("425") || r.starts_with("426")),
        "a transfer failed: {replies:?}"
    );
    assert!(
        !server.server.log().contains("aborted"),
        "{}",
        server.server.log()
    );
}

/// lftp with explicit FTPS: get, put and ls, byte for byte, in passive and active mode; several
/// uploads after downloads (an upload's data connection must not be reset at its end).
#[test]
fn lftp_explicit_ftps_get_put_ls() {
    if !require_tool("lftp") {
        return;
    }
    let server = TlsServer::start(&[]);
    let big = pseudo_random_bytes(3 * 1024 * 1024 + 11, 10);
    write_file(server.root(), "big.bin", &big);
    let local = TempDir::new("lftp-ftps");
    let up = pseudo_random_bytes(2 * 1024 * 1024 + 13, 11);
    let source = path_arg(&write_file(local.path(), "up.bin", &up));
    let dir = path_arg(local.path());
    let log = local.path().join("lftp.log");
    let open = format!("-u {USER},{PASSWORD} -p {} 127.0.0.1", server.addr().port());
    let script = format!(
        "get big.bin -o \"{dir}/got1.bin\"; put \"{source}\" -o up1.bin; \
         get big.bin -o \"{dir}/got2.bin\"; put \"{source}\" -o up2.bin; put \"{source}\" -o up3.bin; \
         ls; set ftp:passive-mode off; get big.bin -o \"{dir}/got3.bin\"; \
         put \"{source}\" -o up4.bin; put \"{source}\" -o up5.bin; ls"
    );
    let out = lftp(&server.ca(), &open, &log, &script);
    out.assert_success();
    for name in ["got1.bin", "got2.bin", "got3.bin"] {
        assert_bytes_eq(&std::fs::read(local.path().join(name)).unwrap(), &big, name);
    }
    for name in ["up1.bin", "up2.bin", "up3.bin", "up4.bin", "up5.bin"] {
        assert_bytes_eq(&std::fs::read(server.root().join(name)).unwrap(), &up, name);
    }
    let listing = out.stdout_text();
    assert!(
        listing.lines().any(|l| l.ends_with(" big.bin")),
        "{listing}"
    );
    assert!(
        listing.lines().any(|l| l.ends_with(" up5.bin")),
        "{listing}"
    );
    check_lftp_log(
        &log,
        &server,
        &[
            "AUTH TLS", "PBSZ 0", "PROT P", "PASV", "PORT ", "STOR ", "RETR ",
        ],
    );
}

/// lftp with `ftps://` against the implicit port.
#[test]
fn lftp_implicit_ftps_get_put_ls() {
    if !require_tool("lftp") {
        return;
    }
    let server = TlsServer::start(&["--implicit-tls-listen", "127.0.0.1:0"]);
    let data = pseudo_random_bytes(1024 * 1024 + 7, 12);
    write_file(server.root(), "file.bin", &data);
    let local = TempDir::new("lftp-implicit");
    let source = path_arg(&write_file(local.path(), "up.bin", &data));
    let dir = path_arg(local.path());
    let log = local.path().join("lftp.log");
    let open = format!(
        "-u {USER},{PASSWORD} ftps://127.0.0.1:{}",
        server.implicit_addr().port()
    );
    let script = format!(
        "get file.bin -o \"{dir}/got.bin\"; put \"{source}\" -o up1.bin; \
         put \"{source}\" -o up2.bin; cls -1"
    );
    let out = lftp(&server.ca(), &open, &log, &script);
    out.assert_success();
    assert_bytes_eq(
        &std::fs::read(local.path().join("got.bin")).unwrap(),
        &data,
        "get",
    );
    for name in ["up1.bin", "up2.bin"] {
        assert_bytes_eq(
            &std::fs::read(server.root().join(name)).unwrap(),
            &data,
            name,
        );
    }
    assert_eq!(out.stdout_text(), "file.bin\nup1.bin\nup2.bin\n");
    check_lftp_log(&log, &server, &["STOR ", "RETR "]);
    assert!(
        !lftp_lines(&log, "---> ")
            .iter()
            .any(|c| c.starts_with("AUTH")),
        "AUTH on the implicit port"
    );
}

// ---------------------------------------------------------------------------------------------------
// Python's ftplib.FTP_TLS

/// Runs the named classes of `tests/interop/ftplib_tls_suite.py` against a server with a certificate
/// and `server_args`; fails with the unittest report if any test fails.
fn ftplib_tls_suite(server_args: &[&str], classes: &[&str]) {
    if !require_tool("python3") {
        return;
    }
    let server = TlsServer::start(server_args);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ftplib_tls_suite.py");
    let addr = server.addr();
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(server.root())
        .arg(PathBuf::from(server.ca()))
        .args(classes)
        .env("FTP_USER", USER)
        .env("FTP_PASSWORD", PASSWORD)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = run_client(&mut command, Duration::from_secs(120));
    println!("{}", output.stdout_text());
    assert!(
        output.status.success() && output.stdout_text().contains("\nOK"),
        "ftplib TLS suite {classes:?} failed against a server with {server_args:?}:\n{}",
        output.describe()
    );
}

/// Protected transfers (passive, active, many on one session), listings, PBSZ/PROT/AUTH/CCC
/// replies, and the refusal (425) of data connections that do not resume this control
/// connection's TLS session: stock ftplib, a fresh context, another control connection's session.
#[test]
fn ftplib_tls_transfers_and_session_reuse() {
    ftplib_tls_suite(
        &[],
        &[
            "TestTlsTransfers",
            "TestProtectionCommands",
            "TestSessionReuse",
        ],
    );
}

/// `--allow-ccc`: CCC, then plaintext commands and protected transfers.
#[test]
fn ftplib_tls_clear_command_channel() {
    ftplib_tls_suite(&["--allow-ccc"], &["TestClearControl"]);
}

/// `--require-tls`: 530 for plaintext logins, 521 for `PROT C` transfers.
#[test]
fn ftplib_tls_require_tls() {
    ftplib_tls_suite(&["--require-tls"], &["TestRequireTls"]);
}

// A stranger's data connection whose handshake failed after the server stored its TLS session

#[allow(deprecated)]
fn tls12_client_config(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read the CA") {
        roots.add(cert.expect("CA PEM")).expect("add the CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A full TLS 1.2 handshake whose last flight (CKE, CCS, Finished) is followed, in the same write, by
/// an application-data record that cannot decrypt: the server stores the session on the Finished,
/// then fails the handshake on the bad record.
fn handshake_failing_after_finished(mut tcp: TcpStream, config: &Arc<ClientConfig>) {
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = ClientConnection::new(Arc::clone(config), name).expect("client connection");
    let mut flights = 0;
    loop {
        if tls.wants_write() {
            let mut out = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut out).unwrap();
            }
            flights += 1;
            if flights == 2 {
                out.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x20]);
                out.extend_from_slice(&[0u8; 0x20]);
            }
            tcp.write_all(&out).unwrap();
            if flights == 2 {
                break;
            }
            continue;
        }
        let n = tls.read_tls(&mut tcp).unwrap();
        assert!(n > 0, "server closed during the handshake");
        tls.process_new_packets().unwrap();
    }
    loop {
        match tls.read_tls(&mut tcp) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Err(e) = tls.process_new_packets() {
                    eprintln!("attacker: handshake ended with {e}");
                    break;
                }
            }
        }
    }
}

/// A stranger reaches the passive port first, completes a full TLS 1.2 handshake and breaks it right
/// after its Finished (rustls has stored the session by then). Its session must not become
/// resumable: on the next transfer it connects first again, resumes, and must get nothing.
#[test]
fn a_stranger_cannot_resume_a_session_its_failed_handshake_stored() {
    let server = TlsServer::start(&[]);
    let data = pseudo_random_bytes(100_000, 7);
    write_file(server.root(), "secret.bin", &data);
    let config = server.client_config();
    let mut ftp = Ftp::connect(server.addr()).auth_tls(&config);
    ftp.login(USER, PASSWORD);
    ftp.protect();
    let attacker = tls12_client_config(&server.pki.ca);

    // Round 1: the stranger connects first, its handshake fails after the server stored its session.
    let addr = ftp.epsv(server.addr());
    let tcp = tcp_connect(addr);
    ftp.expect("RETR secret.bin", 150);
    handshake_failing_after_finished(tcp, &attacker);
    let reply = ftp.reply();
    eprintln!("victim, round 1: {}", reply.text());

    // Round 2: the stranger connects first again and resumes the session it planted.
    let addr = ftp.epsv(server.addr());
    let tcp = tcp_connect(addr);
    ftp.expect("RETR secret.bin", 150);
    let mut got = Vec::new();
    if let Ok(mut tls) = tls_connect(tcp, &attacker) {
        let kind = tls.conn.handshake_kind();
        eprintln!("attacker, round 2: handshake {kind:?}");
        assert_ne!(
            kind,
            Some(rustls::HandshakeKind::Resumed),
            "the planted session resumed"
        );
        // The server resets the connection it refused: whatever arrives before that counts.
        let _ = tls.read_to_end(&mut got);
    }
    let reply = ftp.reply();
    eprintln!("victim, round 2: {}", reply.text());
    assert!(
        got.is_empty(),
        "the stranger got {} bytes of the victim's file",
        got.len()
    );
    assert_eq!(reply.code, 425, "{}", reply.text());
    // The victim's session goes on.
    ftp.expect("NOOP", 200);
}

/// An upload whose TLS ends with a bare TCP FIN, no `close_notify` (which an attacker on the path can
/// forge to cut the file short) over an existing file: by default it replaces the file, as vsftpd does
/// (many clients close so); with `--tls-strict-eof` it gets 426 and the old file stays. A clean end
/// (`close_notify`) is stored either way.
#[test]
fn tls_strict_eof_refuses_an_upload_cut_by_a_bare_fin() {
    for (flags, cut_is_stored) in [(&[][..], true), (&["--tls-strict-eof"][..], false)] {
        let server = TlsServer::start(flags);
        write_file(server.root(), "cut.bin", b"the old file");
        let config = server.client_config();
        let mut ftp = Ftp::connect(server.addr()).auth_tls(&config);
        ftp.login(USER, PASSWORD);
        ftp.protect();

        let mut tls = ftp.protected_data(server.addr(), "STOR cut.bin", &config);
        tls.write_all(&[7u8; 50_000]).unwrap();
        tls.flush().unwrap();
        tls.sock.shutdown(std::net::Shutdown::Write).unwrap();
        let reply = ftp.reply();
        let stored = std::fs::read(server.root().join("cut.bin")).unwrap();
        if cut_is_stored {
            assert_eq!(reply.code, 226, "{flags:?}: {}", reply.text());
            assert_eq!(stored.len(), 50_000, "{flags:?}");
        } else {
            assert_eq!(reply.code, 426, "{flags:?}: {}", reply.text());
            assert!(
                stored == b"the old file",
                "{flags:?}: the old file was replaced"
            );
        }
        drop(tls);

        let mut tls = ftp.protected_data(server.addr(), "STOR whole.bin", &config);
        tls.write_all(&[8u8; 50_000]).unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        tls.sock.shutdown(std::net::Shutdown::Write).unwrap();
        let reply = ftp.reply();
        assert_eq!(reply.code, 226, "{flags:?}: {}", reply.text());
        let stored = std::fs::read(server.root().join("whole.bin")).unwrap();
        assert_eq!(stored.len(), 50_000, "{flags:?}");
    }
}

/// `--allow-ccc`: a client that sends its `close_notify` and its first plaintext command in one
/// segment gets that command answered (the server reads the closing TLS records one at a time, so the
/// plaintext behind them is not swallowed by TLS).
#[test]
fn a_plaintext_command_right_behind_close_notify_is_answered() {
    let server = TlsServer::start(&["--allow-ccc"]);
    let config = server.client_config();
    let mut ftp = Ftp::connect(server.addr()).auth_tls(&config);
    ftp.login(USER, PASSWORD);
    ftp.expect("CCC", 200);
    let Ftp { stream: mut tls } = ftp;
    tls.conn.send_close_notify();
    let mut out = Vec::new();
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut out).unwrap();
    }
    out.extend_from_slice(b"NOOP\r\n");
    tls.sock.write_all(&out).unwrap();
    // The server's close_notify (which may have come with the 200), read record by record too.
    loop {
        if tls.conn.process_new_packets().unwrap().peer_has_closed() {
            break;
        }
        let mut header = [0u8; 5];
        tls.sock.read_exact(&mut header).unwrap();
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut record = header.to_vec();
        record.resize(5 + length, 0);
        tls.sock.read_exact(&mut record[5..]).unwrap();
        tls.conn.read_tls(&mut record.as_slice()).unwrap();
    }
    let mut plain = Ftp { stream: tls.sock };
    plain.expect_reply(200);
    plain.expect("PWD", 257);
}
