//! Helpers shared by the interop tests, which drive the example server (`tests/support`) with real FTP
//! clients (curl, lftp, Python's ftplib) and with raw sockets.
//!
//! The server itself is started by `tests/support` ([`crate::support::ServerProcess`]). The raw
//! [`Control`] here differs from the one there where the robustness tests need it: it reads EOF as
//! `None` rather than failing, sends raw bytes, and lets a test reach the socket (to clone or shut it).
//!
//! Everything here is bounded in time: client processes run under a deadline and are killed when they
//! overrun it, sockets have read and write timeouts. Everything is cleaned up by `Drop` guards, even
//! when an assertion fails half-way: temporary directories are removed and child processes killed.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// Every test file that includes this module includes `tests/support` too.
use crate::support::data_connect;

/// The read-write user every interop server is started with (`--user alice:secret`).
pub const USER: &str = "alice";
/// Its password.
pub const PASSWORD: &str = "secret";
/// The `--user` argument for [`USER`] and [`PASSWORD`].
pub const USER_ARG: &str = "alice:secret";

/// How long one client process may run before it is killed and the test fails.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Read/write timeout of raw sockets: far above any honest reply time on loopback.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------------
// Tools

/// Whether the client program `tool` can be run. When it cannot, prints `SKIPPED: <tool> not
/// installed` and returns `false` so the test can return early, unless the environment variable `CI`
/// is `true`: there a missing tool is a failure, not a skip.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{tool} is not installed, and CI=true requires every interop peer");
    }
    println!("SKIPPED: {tool} not installed");
    false
}

// ---------------------------------------------------------------------------------------------------
// Client processes under a deadline

/// What a client process did.
#[derive(Debug)]
pub struct ClientOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
    /// The command line, for messages.
    pub command: String,
}

impl ClientOutput {
    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The whole story, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.status,
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }

    /// Panics with the whole story unless the process exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "{}", self.describe());
        self
    }

    /// stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A child process killed (and reaped) when dropped, so no test leaves one behind, even on panic.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn drain(stream: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut stream) = stream {
            let _ = stream.read_to_end(&mut out);
        }
        out
    })
}

/// Runs a client to completion with stdin closed and both outputs captured, killing it (and failing the
/// test with what it printed) if it is still running after `timeout`.
pub fn run_client(command: &mut Command, timeout: Duration) -> ClientOutput {
    let description = format!("{command:?}");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let mut guard = ChildGuard(child);
    let stdout = drain(guard.0.stdout.take());
    let stderr = drain(guard.0.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match guard.0.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {description}: {e}"),
        }
    };
    let Some(status) = status else {
        let _ = guard.0.kill();
        let _ = guard.0.wait();
        let out = stdout.join().unwrap_or_default();
        let err = stderr.join().unwrap_or_default();
        panic!(
            "{description} did not finish within {timeout:?}; killed.\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        );
    };
    ClientOutput {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        command: description,
    }
}

// ---------------------------------------------------------------------------------------------------
// Test data

/// Deterministic bytes that look random (xorshift64*), with every byte value present in any file of a few
/// hundred bytes or more: CR, LF, NUL and 0xFF included, which is what binary-mode bugs trip over.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `lines` lines of text ending in LF (Unix text, as a server stores it).
pub fn text_lines(lines: usize, tag: &str) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..lines {
        let _ = writeln!(
            out,
            "{tag} line {i}: the quick brown fox jumps over the lazy dog"
        );
    }
    out.into_bytes()
}

/// Converts LF line ends to CRLF (what TYPE A puts on the wire for Unix text).
pub fn lf_to_crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 16);
    for &b in text {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Writes `bytes` to `root/rel`, creating parent directories.
pub fn write_file(root: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent directories");
    }
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A node of a directory tree as read from disk.
#[derive(Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory (its children are separate entries).
    Dir,
    /// A regular file and its contents.
    File(Vec<u8>),
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Dir => write!(f, "Dir"),
            Node::File(bytes) => write!(f, "File({} bytes)", bytes.len()),
        }
    }
}

/// Every entry under `root` (not `root` itself), by path relative to it.
pub fn read_tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                out.insert(rel, Node::Dir);
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                out.insert(rel, Node::File(bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts that two trees hold the same directories and byte-identical files, naming the first
/// difference (and the first differing offset of a file) rather than dumping megabytes.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let want = read_tree(expected);
    let got = read_tree(actual);
    let want_names: Vec<_> = want.keys().collect();
    let got_names: Vec<_> = got.keys().collect();
    assert_eq!(
        got_names,
        want_names,
        "entries differ between {} (expected) and {}",
        expected.display(),
        actual.display()
    );
    for (path, node) in &want {
        let other = &got[path];
        if let (Node::File(a), Node::File(b)) = (node, other) {
            assert_bytes_eq(b, a, &path.display().to_string());
        } else {
            assert_eq!(other, node, "{}", path.display());
        }
    }
}

/// Asserts byte equality with a short message: lengths and the first differing offset.
pub fn assert_bytes_eq(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let first = actual
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(actual.len().min(expected.len()));
    let around = |bytes: &[u8]| {
        let start = first.saturating_sub(8);
        let end = (first + 8).min(bytes.len());
        format!(
            "{:?}",
            String::from_utf8_lossy(bytes.get(start..end).unwrap_or_default())
        )
    };
    panic!(
        "{what}: {} bytes, expected {}; first difference at offset {first}: got {} expected {}",
        actual.len(),
        expected.len(),
        around(actual),
        around(expected)
    );
}

// ---------------------------------------------------------------------------------------------------
// A raw FTP control connection

/// One reply: its code and its lines as received (CRLF removed).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Every line, the first and the last included.
    pub lines: Vec<String>,
}

impl Reply {
    /// The text of the last line after the code (`"226 Transfer complete."` gives
    /// `"Transfer complete."`).
    pub fn text(&self) -> &str {
        self.lines
            .last()
            .and_then(|l| l.get(4..))
            .unwrap_or_default()
    }

    /// All lines joined with `\n`.
    pub fn full(&self) -> String {
        self.lines.join("\n")
    }
}

/// A control connection spoken by hand, with timeouts on every read and write.
#[derive(Debug)]
pub struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Control {
    /// Connects and reads the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Control {
        let mut control = Control::connect_without_greeting(addr);
        let greeting = control.reply();
        assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
        control
    }

    /// Connects without reading anything.
    pub fn connect_without_greeting(addr: SocketAddr) -> Control {
        let stream = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT).expect("connect control");
        Control::from_stream(stream)
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> Control {
        stream
            .set_read_timeout(Some(SOCKET_TIMEOUT))
            .expect("timeout");
        stream
            .set_write_timeout(Some(SOCKET_TIMEOUT))
            .expect("timeout");
        let _ = stream.set_nodelay(true);
        let writer = stream.try_clone().expect("clone stream");
        Control {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Changes the read timeout (e.g. to wait out a server timer).
    pub fn set_read_timeout(&self, timeout: Duration) {
        self.writer
            .set_read_timeout(Some(timeout))
            .expect("timeout");
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write control");
    }

    /// Sends `line` + CRLF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads one line (without CRLF); `None` at EOF. Panics on timeout.
    pub fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert!(buf.ends_with(b"\r\n"), "reply line without CRLF: {buf:?}");
                buf.truncate(buf.len() - 2);
                Some(String::from_utf8_lossy(&buf).into_owned())
            }
            Err(e) => panic!("reading a reply: {e}"),
        }
    }

    /// Reads one complete (possibly multi-line) reply. Panics at EOF or timeout.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .expect("connection closed instead of a reply")
    }

    /// Reads one complete reply; `None` if the connection closed first.
    pub fn try_reply(&mut self) -> Option<Reply> {
        let first = self.line()?;
        let code: u16 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not a reply: {first:?}"));
        let mut lines = vec![first.clone()];
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let line = self.line().expect("EOF inside a multi-line reply");
                let done = line.starts_with(&end);
                lines.push(line);
                if done {
                    break;
                }
            }
        }
        Some(Reply { code, lines })
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.reply()
    }

    /// Sends a command and asserts the reply code.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.cmd(line);
        assert_eq!(reply.code, code, "{line} -> {}", reply.full());
        reply
    }

    /// Logs in as `user`.
    pub fn login(&mut self, user: &str, password: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {password}"), 230);
    }

    /// `EPSV`: the address to connect the data connection to.
    pub fn epsv(&mut self) -> SocketAddr {
        let reply = self.expect("EPSV", 229);
        let text = reply.text();
        let port = text
            .split("(|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("bad EPSV reply {text:?}"));
        SocketAddr::new(self.writer.peer_addr().expect("peer").ip(), port)
    }

    /// `PASV`: the address from the reply.
    pub fn pasv(&mut self) -> SocketAddr {
        let reply = self.expect("PASV", 227);
        let text = reply.text();
        let inside = text
            .split('(')
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("bad PASV reply {text:?}"));
        let n: Vec<u16> = inside.split(',').filter_map(|p| p.parse().ok()).collect();
        assert_eq!(n.len(), 6, "bad PASV reply {text:?}");
        let ip = std::net::Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8);
        SocketAddr::from((ip, n[4] * 256 + n[5]))
    }

    /// `EPSV`, then connects to the announced port.
    pub fn open_passive(&mut self) -> TcpStream {
        let addr = self.epsv();
        data_connect(addr)
    }

    /// The local end of the control connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().expect("local addr")
    }

    /// The underlying stream (for shutdowns).
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }
}

// ---------------------------------------------------------------------------------------------------
// Process inspection

/// How many file descriptors process `pid` has open (Linux `/proc`); `None` where that is unknown.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|dir| dir.count())
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes; returns its last answer.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
