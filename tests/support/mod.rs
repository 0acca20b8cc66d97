//! Shared helpers for integration tests that run the example server (`examples/server`) as a child
//! process and talk to it over real sockets.
//!
//! ```ignore
//! mod support;
//! use support::{Control, ServerProcess};
//!
//! let server = ServerProcess::start(&["--user", "alice:secret"]);
//! std::fs::write(server.root.join("hello.txt"), b"hi\n").unwrap();
//! let mut ftp = Control::connect(server.addr);
//! ftp.expect_reply(220);
//! ftp.login("alice", "secret");
//! ```
//!
//! The binary is `target/<profile>/examples/server`, which `cargo test` builds along with the tests
//! (`cargo test --test NAME` alone does not: then run `cargo build --example server` first).
//!
//! Every blocking read here is bounded by [`TIMEOUT`], so a wedged server fails the test instead of
//! hanging it. Std only: no extra crates.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long any single wait (server start, a reply, a data read) may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A running example server: killed, and its root removed, when dropped.
///
/// If the test panics, the server's stderr log (every session's commands and transfers) is printed, so
/// the failure shows what the server saw.
pub struct ServerProcess {
    /// The control connection address (from the server's `listening on` line).
    pub addr: SocketAddr,
    /// The implicit FTPS address (from the `implicit FTPS on` line that follows it), if `args` asked
    /// for one with `--implicit-tls-listen`.
    pub implicit_addr: Option<SocketAddr>,
    /// The served directory: a fresh temporary directory (unless `args` gave another `--root`).
    pub root: PathBuf,
    /// The server process.
    pub child: Child,
    log: Arc<Mutex<String>>,
    // Declared last: dropped (removed) after `Drop::drop` has killed the server.
    _root_dir: TempDir,
}

impl ServerProcess {
    /// Starts the server with `--root <fresh temp dir> --listen 127.0.0.1:0`, then `args` (later flags
    /// win, so `args` may override either), and waits for its `listening on` line.
    ///
    /// Panics if the binary is missing or the server does not start within [`TIMEOUT`].
    pub fn start(args: &[&str]) -> ServerProcess {
        let root_dir = TempDir::new("server-root");
        let binary = server_binary();
        let mut child = Command::new(&binary)
            .arg("--root")
            .arg(root_dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        drain_lines(stderr, Arc::clone(&log));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (first_lines, first_lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            // `listening on ...`, then `implicit FTPS on ...` if there is an implicit port.
            for line in lines.by_ref().take(2) {
                let Ok(line) = line else { break };
                let _ = first_lines.send(line);
            }
            // Keep draining, so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let implicit = args
            .iter()
            .any(|arg| arg.starts_with("--implicit-tls-listen"));
        let lines = first_lines_rx.recv_timeout(TIMEOUT).and_then(|first| {
            let second = if implicit {
                Some(first_lines_rx.recv_timeout(TIMEOUT)?)
            } else {
                None
            };
            Ok((first, second))
        });
        let (addr, implicit_addr) = match lines {
            Ok((first, second)) => (
                parse_listening_line(&first),
                second.map(|line| parse_implicit_line(&line)),
            ),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100)); // let the stderr thread catch up
                panic!("server did not start; its stderr:\n{}", log.lock().unwrap());
            }
        };
        ServerProcess {
            addr,
            implicit_addr,
            root: root_dir.path().to_path_buf(),
            child,
            log,
            _root_dir: root_dir,
        }
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- example server log ---\n{}--- end ---", self.log());
        }
    }
}

/// The example server binary next to this test binary: `target/<profile>/deps/<test>` →
/// `target/<profile>/examples/server`.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("server{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} not found: run `cargo test` (all targets) or `cargo build --example server` first",
                binary.display()
            )
        });
    // `cargo test --test NAME` builds only that test: refuse to test an old server by mistake.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sources in [
        manifest.join("examples/server"),
        manifest.join("examples/common"),
        manifest.join("src"),
    ] {
        if newest_modification(&sources).is_some_and(|changed| changed > built) {
            panic!(
                "{} is older than {}: run `cargo build --example server` (or plain `cargo test`)",
                binary.display(),
                sources.display()
            );
        }
    }
    binary
}

/// The latest modification time of any file under `dir`.
fn newest_modification(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let time = if metadata.is_dir() {
            newest_modification(&entry.path())
        } else {
            metadata.modified().ok()
        };
        newest = newest.max(time);
    }
    newest
}

fn parse_listening_line(line: &str) -> SocketAddr {
    line.strip_prefix("listening on ")
        .and_then(|addr| addr.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
}

fn parse_implicit_line(line: &str) -> SocketAddr {
    line.strip_prefix("implicit FTPS on ")
        .and_then(|addr| addr.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected second line from the server: {line:?}"))
}

/// Copies `stream` line by line into `into` on a thread of its own (a child's log).
pub fn drain_lines(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut log) = into.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
}

/// A directory under [`std::env::temp_dir`] with a unique name, removed (with its contents) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `ftp-proto-<prefix>-<pid>-<n>-<nanos>`.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "ftp-proto-{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        // World-traversable whatever the umask: ProFTPD serves it as another user.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One reply: its code and all its lines (CRLF removed).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Every line of the reply, the code included.
    pub lines: Vec<String>,
}

impl Reply {
    /// All lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A raw FTP control connection, for tests that check exact reply codes.
pub struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    server: SocketAddr,
}

impl Control {
    /// Connects (every read bounded by [`TIMEOUT`]). Does not read the greeting.
    pub fn connect(addr: SocketAddr) -> Control {
        let stream = TcpStream::connect(addr).expect("connect to the control port");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let writer = stream.try_clone().unwrap();
        Control {
            reader: BufReader::new(stream),
            writer,
            server: addr,
        }
    }

    /// Sends one command line (CRLF added).
    pub fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending {line:?}: {e}"));
    }

    /// Reads one complete reply, single- or multi-line (RFC 959 §4.2).
    pub fn reply(&mut self) -> Reply {
        let first = self.line();
        let code = parse_code(&first);
        let mut lines = vec![first.clone()];
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let line = self.line();
                let done = line.starts_with(&end);
                lines.push(line);
                if done {
                    break;
                }
            }
        }
        Reply { code, lines }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("control connection closed while waiting for a reply"),
            Ok(_) => line.trim_end_matches(['\r', '\n']).to_owned(),
            Err(e) => panic!("reading a reply: {e}"),
        }
    }

    /// Reads a reply and checks its code.
    pub fn expect_reply(&mut self, code: u16) -> Reply {
        let reply = self.reply();
        assert_eq!(reply.code, code, "unexpected reply: {}", reply.text());
        reply
    }

    /// Sends a command and checks the reply's code.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        self.send(line);
        let reply = self.reply();
        assert_eq!(reply.code, code, "{line:?} got: {}", reply.text());
        reply
    }

    /// `USER` + `PASS`, expecting 331 then 230.
    pub fn login(&mut self, user: &str, password: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {password}"), 230);
    }

    /// `EPSV`, then connects to the announced port on the server's address.
    pub fn epsv(&mut self) -> TcpStream {
        let reply = self.expect("EPSV", 229);
        // 229 Entering Extended Passive Mode (|||port|)
        let text = reply.text();
        let port = text
            .split('|')
            .nth(3)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse {text:?}"));
        data_connect(SocketAddr::new(self.server.ip(), port))
    }

    /// `PASV`, then connects to the announced address.
    pub fn pasv(&mut self) -> TcpStream {
        let reply = self.expect("PASV", 227);
        data_connect(pasv_address(&reply.text()))
    }

    /// Whether the server closed the control connection (reads EOF within [`TIMEOUT`]).
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }
}

fn parse_code(line: &str) -> u16 {
    line.get(..3)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a reply line: {line:?}"))
}

/// Opens a data connection (reads and writes bounded by [`TIMEOUT`]).
pub fn data_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("data connect {addr}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Reads a data connection to its end.
pub fn read_all(mut stream: TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("reading the data connection: {e}"));
    bytes
}

/// Writes everything, then closes the sending side (the end of an upload).
pub fn write_all_and_close(mut stream: TcpStream, bytes: &[u8]) {
    stream
        .write_all(bytes)
        .expect("writing the data connection");
    stream
        .shutdown(Shutdown::Write)
        .expect("closing the data connection");
}

/// `len` bytes of a fixed pseudo-random sequence (xorshift), so misplaced chunks cannot match.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The address in a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` reply.
pub fn pasv_address(reply: &str) -> SocketAddr {
    let numbers: Vec<u8> = reply
        .split(['(', ')'])
        .nth(1)
        .map(|inner| {
            inner
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [h1, h2, h3, h4, p1, p2] = numbers[..] else {
        panic!("cannot parse {reply:?}");
    };
    SocketAddr::from(([h1, h2, h3, h4], u16::from(p1) << 8 | u16::from(p2)))
}
