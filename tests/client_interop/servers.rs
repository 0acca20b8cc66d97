//! Real FTP servers for the client interop tests, each started on 127.0.0.1 and a free port, with a
//! fresh served directory, and stopped (its files removed) when the [`Server`] is dropped.
//!
//! * [`pyftpdlib`]: `tests/client_interop/pyftpd_server.py` (a user with read-write access, anonymous
//!   read-only on a second directory).
//! * [`proftpd`]: `/usr/sbin/proftpd --nodaemon` with a generated non-root-style configuration: its own
//!   scoreboard, pid file and logs in the temporary directory, an `AuthUserFile` with one crypt(3) user,
//!   an `<Anonymous>` block, `DefaultRoot ~`, a `PassivePorts` range. Run as root (as here and in CI) the
//!   daemon and the user map to `nobody`/`nogroup` and the served files are chowned to them. Run as
//!   another user, everything is that user's, and since only root may `chroot`, there is neither
//!   `DefaultRoot` (the user starts in its directory but could leave it) nor anonymous access.
//! * [`example_server`]: this crate's `examples/server` binary.
//!
//! A missing server program is a skip (`SKIPPED: ...` on stdout) unless the environment says `CI=true`,
//! where it fails the test. Every wait is bounded.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::support::{TempDir, pattern};

/// How long a server may take to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The read-write user every server is given.
pub const USER: &str = "tester";
/// Its password.
pub const PASSWORD: &str = "s3cret-pw";

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pyftpdlib,
    Proftpd,
    Example,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pyftpdlib => "pyftpdlib",
            Kind::Proftpd => "proftpd",
            Kind::Example => "example-server",
        }
    }

    /// Starts this server (`None`: skipped).
    pub fn start(self) -> Option<Server> {
        match self {
            Kind::Pyftpdlib => pyftpdlib(&[]),
            Kind::Proftpd => proftpd(),
            Kind::Example => example_server(&[]),
        }
    }
}

/// A running server.
pub struct Server {
    pub kind: Kind,
    /// The control connection address.
    pub addr: SocketAddr,
    /// The read-write user's directory (`/` of its session).
    pub root: PathBuf,
    /// What anonymous users see (`/` of their session), if the server takes anonymous logins.
    pub anon_root: Option<PathBuf>,
    /// Who must own files the server may overwrite (ProFTPD run as root serves as `nobody`).
    owner: Option<(u32, u32)>,
    child: Child,
    /// Kept open: the pyftpdlib script stops when it closes.
    _stdin: Option<ChildStdin>,
    log: Arc<Mutex<String>>,
    log_files: Vec<PathBuf>,
    // Declared last: removed after `Drop::drop` stopped the server.
    _dir: TempDir,
}

impl Server {
    /// `ftp://tester:s3cret-pw@127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ftp://{USER}:{PASSWORD}@{}{path}", self.addr)
    }

    /// Writes a file under the user's root (creating directories), owned so that the server may
    /// replace or extend it.
    pub fn put_file(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
            self.chown(parent);
        }
        std::fs::write(&path, bytes).unwrap();
        self.chown(&path);
        path
    }

    /// Creates a directory under the user's root.
    pub fn put_dir(&self, relative: &str) -> PathBuf {
        let path = self.root.join(relative);
        std::fs::create_dir_all(&path).unwrap();
        self.chown(&path);
        path
    }

    /// Gives `path` to the server's user, if the server runs as another one.
    pub fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }

    /// What the server logged so far (its output and, for ProFTPD, its system and command logs).
    pub fn log(&self) -> String {
        let mut log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        for file in &self.log_files {
            log.push_str(&std::fs::read_to_string(file).unwrap_or_default());
        }
        log
    }

    /// Whether the server's log shows a command line starting with `command` (each server logs
    /// commands its own way: `> EPSV`, `<- EPSV`, `"EPSV"`).
    pub fn received(&self, command: &str) -> bool {
        let log = self.log();
        ["> ", "<- ", "\""]
            .iter()
            .any(|prefix| log.contains(&format!("{prefix}{command}")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.kind.name(), self.log());
        }
        // SIGTERM first: ProFTPD then also ends its session processes.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Skips (prints and returns `None`) unless `CI=true`, where a missing peer is a failure.
pub fn skip<T>(reason: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason} (required when CI=true)");
    }
    println!("SKIPPED: {reason}");
    None
}

/// The pyftpdlib server (`extra`: `--no-mlst`).
pub fn pyftpdlib(extra: &[&str]) -> Option<Server> {
    let available = Command::new("python3")
        .args(["-c", "import pyftpdlib"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        return skip("python3 with pyftpdlib is not installed (pip install pyftpdlib)");
    }
    let dir = TempDir::new("pyftpdlib");
    let root = dir.path().join("root");
    let anon_root = dir.path().join("anon");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&anon_root).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client_interop/pyftpd_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(&root)
        .arg(&anon_root)
        .args([USER, PASSWORD])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let stdin = child.stdin.take();
    let log = Arc::new(Mutex::new(String::new()));
    let addr = listening_line(&mut child, &log);
    Some(Server {
        kind: Kind::Pyftpdlib,
        addr,
        root,
        anon_root: Some(anon_root),
        owner: None,
        child,
        _stdin: stdin,
        log,
        log_files: Vec::new(),
        _dir: dir,
    })
}

/// The example server of this crate (`extra`: more flags, e.g. `--allow-fxp`).
pub fn example_server(extra: &[&str]) -> Option<Server> {
    let binary = match example_server_binary() {
        Ok(binary) => binary,
        Err(reason) => return skip_example(&reason),
    };
    let dir = TempDir::new("example-server");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut child = Command::new(&binary)
        .arg("--root")
        .arg(&root)
        .args(["--listen", "127.0.0.1:0", "--anonymous", "ro"])
        .args(["--user", &format!("{USER}:{PASSWORD}")])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let log = Arc::new(Mutex::new(String::new()));
    let addr = listening_line(&mut child, &log);
    Some(Server {
        kind: Kind::Example,
        addr,
        anon_root: Some(root.clone()),
        root,
        owner: None,
        child,
        _stdin: None,
        log,
        log_files: Vec::new(),
        _dir: dir,
    })
}

/// The example server is another engineer's work: before it is merged there is nothing to test (a skip
/// even in CI); once its sources are here, `cargo test` builds it and a missing binary is a failure.
fn skip_example<T>(reason: &str) -> Option<T> {
    let merged = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/server")
        .is_dir();
    if merged {
        skip(reason)
    } else {
        println!("SKIPPED: {reason} (examples/server is not in this tree)");
        None
    }
}

/// `$FTP_PROTO_EXAMPLE_SERVER`, else `target/<profile>/examples/server` beside this test binary.
fn example_server_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("FTP_PROTO_EXAMPLE_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/client_interop-HASH -> target/<profile>/examples/server
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("examples").join("server"))
        .ok_or("no target directory")?;
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} not built (run `cargo test` or `cargo build --example server`)",
            binary.display()
        ))
    }
}

/// `target/<profile>/examples/client`, which `cargo test` builds with the tests.
pub fn client_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let binary = exe.parent()?.parent()?.join("examples").join("client");
    if binary.is_file() {
        Some(binary)
    } else {
        skip(&format!(
            "{} not built (run `cargo test` or `cargo build --example client`)",
            binary.display()
        ))
    }
}

/// ProFTPD, configured from scratch in a temporary directory.
pub fn proftpd() -> Option<Server> {
    let binary = ["/usr/sbin/proftpd", "/usr/local/sbin/proftpd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let Some(binary) = binary else {
        return skip("proftpd is not installed (apt-get install proftpd-core)");
    };
    let dir = TempDir::new("proftpd");
    let root = dir.path().join("root");
    let anon_root = dir.path().join("anon");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&anon_root).unwrap();
    // Who we are: the owner of a directory we just created.
    let me = std::fs::metadata(dir.path()).unwrap();
    let as_root = me.uid() == 0;
    // As root the daemon drops to nobody:nogroup and so does the user; otherwise all is ours.
    let (uid, gid) = if as_root {
        (65534, 65534)
    } else {
        (me.uid(), me.gid())
    };
    // ProFTPD resolves `User`/`Group` in the system's databases, before reading its own files.
    let (daemon_user, daemon_group) = if as_root {
        ("nobody".to_owned(), "nogroup".to_owned())
    } else {
        (id("-un"), id("-gn"))
    };
    let hash = match crypt_hash(PASSWORD) {
        Some(hash) => hash,
        None => return skip("cannot hash a password for ProFTPD (openssl not found)"),
    };
    // ftpasswd format: name:hash:uid:gid:gecos:home:shell. Not world-readable, or ProFTPD refuses it.
    let passwd = dir.path().join("ftpd.passwd");
    let group = dir.path().join("ftpd.group");
    write_private(
        &passwd,
        &format!("{USER}:{hash}:{uid}:{gid}::{}:/bin/sh\n", root.display()),
    );
    write_private(&group, &format!("{daemon_group}:x:{gid}:\n"));
    if as_root {
        for path in [dir.path(), &root] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }
    let log_file = dir.path().join("proftpd.log");
    let mut attempt = 0;
    let (addr, child, log) = loop {
        attempt += 1;
        let port = free_port();
        // A passive range of its own near the control port; ProFTPD falls back to any port if all are busy.
        let passive_low = port.saturating_add(1).min(65_000);
        let d = dir.path().display();
        let anonymous = format!(
            r#"<Anonymous {anon}>
  User {daemon_user}
  Group {daemon_group}
  UserAlias anonymous {daemon_user}
  RequireValidShell off
  <Limit WRITE>
    DenyAll
  </Limit>
</Anonymous>
"#,
            anon = anon_root.display()
        );
        let config = format!(
            r#"# Generated by tests/client_interop/servers.rs
ServerName "ftp-proto client interop"
ServerType standalone
DefaultServer on
Port {port}
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
User {daemon_user}
Group {daemon_group}
ScoreboardFile {d}/proftpd.scoreboard
PidFile {d}/proftpd.pid
DelayTable {d}/proftpd.delay
DelayEngine off
WtmpLog off
TransferLog NONE
SystemLog {d}/proftpd.log
ExtendedLog {d}/commands.log ALL
ControlsEngine off
AuthPAM off
AuthOrder mod_auth_file.c mod_auth_unix.c
AuthUserFile {passwd}
AuthGroupFile {group}
RequireValidShell off
UseFtpUsers off
UseReverseDNS off
{default_root}AllowOverwrite on
AllowStoreRestart on
AllowRetrieveRestart on
PassivePorts {passive_low} {passive_high}
Umask 022
MaxInstances 50
TimeoutIdle 60
{anonymous}"#,
            passwd = passwd.display(),
            group = group.display(),
            passive_high = passive_low.saturating_add(40),
            default_root = if as_root { "DefaultRoot ~\n" } else { "" },
            anonymous = if as_root { anonymous } else { String::new() },
        );
        let config_path = dir.path().join("proftpd.conf");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(&binary)
            .arg("--nodaemon")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let log = Arc::new(Mutex::new(String::new()));
        drain(child.stdout.take(), log.clone());
        drain(child.stderr.take(), log.clone());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // ProFTPD prints nothing when ready: wait until it greets.
        let deadline = Instant::now() + START_TIMEOUT;
        let started = loop {
            if greets(addr) {
                break Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = log.lock().map(|l| l.clone()).unwrap_or_default();
                break Err(format!(
                    "proftpd exited ({status}) before it listened:\n{log}"
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("proftpd did not start within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        match started {
            Ok(()) => break (addr, child, log),
            // The port was free when chosen, but something may have taken it since: choose again.
            Err(message) if attempt < 3 => eprintln!("{message}\nretrying on another port"),
            Err(message) => panic!("{message}"),
        }
    };
    Some(Server {
        kind: Kind::Proftpd,
        addr,
        root,
        anon_root: as_root.then_some(anon_root),
        owner: as_root.then_some((uid, gid)),
        child,
        _stdin: None,
        log,
        log_files: vec![log_file, dir.path().join("commands.log")],
        _dir: dir,
    })
}

/// `id -un` / `id -gn`: the current user's or group's name.
fn id(flag: &str) -> String {
    let output = Command::new("id").arg(flag).output().expect("run id");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A crypt(3) hash ProFTPD's `AuthUserFile` accepts: SHA-512 (`$6$`), else MD5 (`$1$`).
fn crypt_hash(password: &str) -> Option<String> {
    ["-6", "-1"].into_iter().find_map(|algorithm| {
        let output = Command::new("openssl")
            .args(["passwd", algorithm, password])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let hash = String::from_utf8(output.stdout).ok()?.trim().to_owned();
        (output.status.success() && hash.starts_with('$')).then_some(hash)
    })
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Whether a server at `addr` answers with a 220 greeting.
fn greets(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut greeting = [0u8; 4];
    let ok = stream.read_exact(&mut greeting).is_ok() && greeting.starts_with(b"220");
    let _ = stream.write_all(b"QUIT\r\n");
    ok
}

/// Reads the server's `listening on ADDR` line (the rest of its output goes to the log).
fn listening_line(child: &mut Child, log: &Arc<Mutex<String>>) -> SocketAddr {
    let stdout = child.stdout.take().expect("piped stdout");
    drain(child.stderr.take(), log.clone());
    let (found, wait) = std::sync::mpsc::channel();
    let log_lines = log.clone();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                if let Some(found) = found.take() {
                    let _ = found.send(addr.trim().to_owned());
                }
            }
            if let Ok(mut log) = log_lines.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    match wait.recv_timeout(START_TIMEOUT) {
        Ok(addr) => addr
            .parse()
            .unwrap_or_else(|_| panic!("bad address in `listening on {addr}`")),
        Err(_) => {
            let _ = child.kill();
            let log = log.lock().map(|l| l.clone()).unwrap_or_default();
            panic!("the server did not say where it listens:\n{log}");
        }
    }
}

fn drain(stream: Option<impl Read + Send + 'static>, into: Arc<Mutex<String>>) {
    if let Some(stream) = stream {
        crate::support::drain_lines(stream, into);
    }
}
