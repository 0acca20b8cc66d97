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
//! * [`vsftpd`]: `vsftpd CONFIG` in the foreground (`listen=YES`, `background=NO`), serving anonymous
//!   users only (as the system user `ftp`, chrooted into the served directory, which it may write):
//!   local users would need a PAM service file and a system account.
//! * [`pure_ftpd`]: `pure-ftpd` in the foreground with one virtual user in a PureDB made by
//!   `pure-pw mkdb` (mapped to `nobody`), chrooted.
//!
//! FTPS ([`TlsMode`]): each server gets a fresh test CA and a certificate it signed for `127.0.0.1`
//! and `localhost` (`tests/support/certs.rs`); [`Server::ca`] is the CA for the client to trust. TLS
//! servers *require* it, for logins and data (a client that fell back to plaintext fails), and those
//! that can be told to require TLS session reuse on data connections do (vsftpd `require_ssl_reuse`,
//! ProFTPD by default, the example server always). Explicit FTPS (`AUTH TLS`) for all; implicit FTPS
//! from vsftpd (`implicit_ssl`), ProFTPD (`UseImplicitSSL`) and the example server
//! (`--implicit-tls-listen`).
//!
//! vsftpd and pure-ftpd, like proftpd-core, "conflict" with every other FTP server in Debian (they
//! all provide `ftp-server`), so `.ci/run` unpacks their packages into [`PEERS_DIR`] instead of
//! installing them; a system-wide installation (`/usr/sbin`) is used first if there is one.
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

use crate::certs::TestPki;
pub use crate::support::{TempDir, pattern};

/// Where `.ci/run` unpacks the FTP servers whose Debian packages conflict with each other.
pub const PEERS_DIR: &str = "/opt/ftp-proto-peers";

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
    Vsftpd,
    PureFtpd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pyftpdlib => "pyftpdlib",
            Kind::Proftpd => "proftpd",
            Kind::Example => "example-server",
            Kind::Vsftpd => "vsftpd",
            Kind::PureFtpd => "pure-ftpd",
        }
    }

    /// Starts this server in plaintext (`None`: skipped).
    pub fn start(self) -> Option<Server> {
        self.start_with(TlsMode::Plain)
    }

    /// Starts this server with FTPS as `mode` says (`None`: skipped; a server that cannot do `mode`
    /// is a test mistake and panics).
    pub fn start_with(self, mode: TlsMode) -> Option<Server> {
        match self {
            Kind::Pyftpdlib => pyftpdlib_with(&[], mode),
            Kind::Proftpd => proftpd_with(mode),
            Kind::Example => example_server_with(&[], mode),
            Kind::Vsftpd => vsftpd(mode),
            Kind::PureFtpd => pure_ftpd(mode),
        }
    }
}

/// Whether and how a server speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext FTP.
    Plain,
    /// Explicit FTPS (`AUTH TLS`), required for logins and data.
    Explicit,
    /// Implicit FTPS: TLS from the first byte, at [`Server::implicit_addr`].
    Implicit,
}

/// A running server.
pub struct Server {
    pub kind: Kind,
    /// The control connection address (for a server that only speaks implicit FTPS, the same as
    /// `implicit_addr`).
    pub addr: SocketAddr,
    /// The implicit FTPS address, if the server has one.
    pub implicit_addr: Option<SocketAddr>,
    /// The CA that signed the server's certificate (a TLS server's), for the client to trust.
    pub ca: Option<PathBuf>,
    /// The read-write login (`None`: the server takes anonymous logins only, and they may write).
    pub login: Option<(&'static str, &'static str)>,
    /// Whether [`Server::received`] can tell (the server logs the commands it receives).
    pub logs_commands: bool,
    /// Where [`Server::root`] is, relative to where the login starts, if elsewhere (a `CWD` away).
    pub home: Option<&'static str>,
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
    /// `ftp://tester:s3cret-pw@127.0.0.1:PORT` + `path` (without the user for an anonymous-only server).
    pub fn url(&self, path: &str) -> String {
        format!("ftp://{}{}{path}", self.userinfo(), self.addr)
    }

    /// `ftps://tester:s3cret-pw@127.0.0.1:PORT` + `path`, at the implicit FTPS address.
    pub fn ftps_url(&self, path: &str) -> String {
        let addr = self
            .implicit_addr
            .expect("the server has an implicit FTPS port");
        format!("ftps://{}{addr}{path}", self.userinfo())
    }

    fn userinfo(&self) -> String {
        match self.login {
            Some((user, password)) => format!("{user}:{password}@"),
            None => String::new(),
        }
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
    /// commands its own way: `> EPSV`, `<- EPSV`, `"EPSV"`). Always false for a server that does not
    /// log commands ([`Server::logs_commands`]).
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
    pyftpdlib_with(extra, TlsMode::Plain)
}

/// The pyftpdlib server; with TLS, its `TLS_FTPHandler` (pyOpenSSL) requiring TLS on the control and
/// data connections. pyftpdlib has no implicit FTPS.
pub fn pyftpdlib_with(extra: &[&str], mode: TlsMode) -> Option<Server> {
    assert_ne!(mode, TlsMode::Implicit, "pyftpdlib has no implicit FTPS");
    let module = match mode {
        TlsMode::Plain => "import pyftpdlib",
        _ => "import pyftpdlib, OpenSSL",
    };
    let available = Command::new("python3")
        .args(["-c", module])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        return skip(
            "python3 with pyftpdlib (and pyOpenSSL for FTPS) is not installed (pip install pyftpdlib pyopenssl)",
        );
    }
    let dir = TempDir::new("pyftpdlib");
    let root = dir.path().join("root");
    let anon_root = dir.path().join("anon");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&anon_root).unwrap();
    let pki = (mode != TlsMode::Plain).then(|| TestPki::new(dir.path()));
    let mut tls_args = Vec::new();
    if let Some(pki) = &pki {
        tls_args.push("--tls".as_ref());
        tls_args.push(pki.cert.as_os_str());
        tls_args.push(pki.key.as_os_str());
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client_interop/pyftpd_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(&root)
        .arg(&anon_root)
        .args([USER, PASSWORD])
        .args(extra)
        .args(tls_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let stdin = child.stdin.take();
    let log = Arc::new(Mutex::new(String::new()));
    let (addr, _) = listening_lines(&mut child, &log, false);
    Some(Server {
        kind: Kind::Pyftpdlib,
        addr,
        implicit_addr: None,
        ca: pki.map(|pki| pki.ca),
        login: Some((USER, PASSWORD)),
        logs_commands: true,
        home: None,
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
    example_server_with(extra, TlsMode::Plain)
}

/// The example server; with TLS, `--require-tls` and both an explicit and an implicit FTPS port
/// (`mode` only says which one the tests are meant to use: both are there).
pub fn example_server_with(extra: &[&str], mode: TlsMode) -> Option<Server> {
    let binary = match example_server_binary() {
        Ok(binary) => binary,
        Err(reason) => return skip_example(&reason),
    };
    let dir = TempDir::new("example-server");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let pki = (mode != TlsMode::Plain).then(|| TestPki::new(dir.path()));
    let mut tls_args: Vec<&std::ffi::OsStr> = Vec::new();
    if let Some(pki) = &pki {
        tls_args.extend(["--tls-cert".as_ref(), pki.cert.as_os_str()]);
        tls_args.extend(["--tls-key".as_ref(), pki.key.as_os_str()]);
        let flags = ["--require-tls", "--implicit-tls-listen", "127.0.0.1:0"];
        tls_args.extend(flags.map(std::ffi::OsStr::new));
    }
    let mut child = Command::new(&binary)
        .arg("--root")
        .arg(&root)
        .args(["--listen", "127.0.0.1:0", "--anonymous", "ro"])
        .args(["--user", &format!("{USER}:{PASSWORD}")])
        .args(tls_args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let log = Arc::new(Mutex::new(String::new()));
    let (addr, implicit_addr) = listening_lines(&mut child, &log, pki.is_some());
    Some(Server {
        kind: Kind::Example,
        addr,
        implicit_addr,
        ca: pki.map(|pki| pki.ca),
        login: Some((USER, PASSWORD)),
        logs_commands: true,
        home: None,
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
    proftpd_with(TlsMode::Plain)
}

/// ProFTPD; with TLS, `mod_tls` (Debian's proftpd-mod-crypto) loaded from the modules beside the
/// binary, `TLSRequired on` and the default session reuse requirement on data connections
/// (no `NoSessionReuseRequired`); implicit FTPS is `TLSOptions UseImplicitSSL` on the one port.
pub fn proftpd_with(mode: TlsMode) -> Option<Server> {
    let Some(binary) = find_program(
        &["/usr/sbin/proftpd", "/usr/local/sbin/proftpd"],
        "usr/sbin/proftpd",
    ) else {
        return skip("proftpd is not installed (apt-get install proftpd-core, or see .ci/run)");
    };
    // /usr/sbin/proftpd -> /usr/lib/proftpd/mod_tls.so
    let modules = binary
        .parent()
        .and_then(Path::parent)
        .map(|prefix| prefix.join("lib/proftpd"))
        .unwrap_or_default();
    if mode != TlsMode::Plain && !modules.join("mod_tls.so").is_file() {
        return skip(&format!(
            "ProFTPD's mod_tls is not installed ({}/mod_tls.so: apt-get install proftpd-mod-crypto)",
            modules.display()
        ));
    }
    let dir = TempDir::new("proftpd");
    let pki = (mode != TlsMode::Plain).then(|| TestPki::new(dir.path()));
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
        let tls = match &pki {
            None => String::new(),
            Some(pki) => format!(
                r#"ModulePath {modules}
LoadModule mod_tls.c
TLSEngine on
TLSRequired on
TLSProtocol TLSv1.2 TLSv1.3
TLSRSACertificateFile {cert}
TLSRSACertificateKeyFile {key}
TLSVerifyClient off
TLSLog {d}/tls.log
{implicit}"#,
                modules = modules.display(),
                cert = pki.cert.display(),
                key = pki.key.display(),
                implicit = if mode == TlsMode::Implicit {
                    "TLSOptions UseImplicitSSL\n"
                } else {
                    ""
                },
            ),
        };
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
{tls}{anonymous}"#,
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
        // ProFTPD prints nothing when ready: wait until it greets (or, speaking TLS at once, accepts).
        let deadline = Instant::now() + START_TIMEOUT;
        let started = loop {
            if ready(addr, mode) {
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
    let mut log_files = vec![log_file, dir.path().join("commands.log")];
    if pki.is_some() {
        log_files.push(dir.path().join("tls.log"));
    }
    Some(Server {
        kind: Kind::Proftpd,
        addr,
        implicit_addr: (mode == TlsMode::Implicit).then_some(addr),
        ca: pki.map(|pki| pki.ca),
        login: Some((USER, PASSWORD)),
        logs_commands: true,
        home: None,
        root,
        anon_root: as_root.then_some(anon_root),
        owner: as_root.then_some((uid, gid)),
        child,
        _stdin: None,
        log,
        log_files,
        _dir: dir,
    })
}

/// The first of `system` that exists, else `relative` under [`PEERS_DIR`].
fn find_program(system: &[&str], relative: &str) -> Option<PathBuf> {
    system
        .iter()
        .map(PathBuf::from)
        .chain(std::iter::once(Path::new(PEERS_DIR).join(relative)))
        .find(|p| p.is_file())
}

/// Whether this process runs as root (the owner of a directory it just created).
fn is_root(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| m.uid() == 0)
}

/// A system account's uid, gid and home directory (`getent passwd NAME`).
fn system_user(name: &str) -> Option<(u32, u32, PathBuf)> {
    let output = Command::new("getent")
        .args(["passwd", name])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let line = String::from_utf8(output.stdout).ok()?;
    let fields: Vec<&str> = line.trim().split(':').collect();
    match fields.as_slice() {
        [_, _, uid, gid, _, home, ..] => Some((uid.parse().ok()?, gid.parse().ok()?, home.into())),
        _ => None,
    }
}

/// Starts a server program that prints nothing when ready, on a fresh port, until it is `ready`
/// (at most three ports, in case another process takes the one chosen). `command` gets the port.
fn start_silent(
    name: &str,
    mode: TlsMode,
    mut command: impl FnMut(u16) -> Command,
) -> (SocketAddr, Child, Arc<Mutex<String>>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port();
        let mut child = command(port)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        drain(child.stdout.take(), log.clone());
        drain(child.stderr.take(), log.clone());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        let started = loop {
            if ready(addr, mode) {
                break Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = log.lock().map(|l| l.clone()).unwrap_or_default();
                break Err(format!(
                    "{name} exited ({status}) before it listened:\n{log}"
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not start within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        match started {
            Ok(()) => return (addr, child, log),
            Err(message) if attempt < 3 => eprintln!("{message}\nretrying on another port"),
            Err(message) => panic!("{message}"),
        }
    }
}

/// vsftpd, run as root in the foreground with a generated configuration: anonymous users only
/// (the system user `ftp`, no password asked), chrooted; [`Server::root`] is `/pub` of their session,
/// which they own and may write (vsftpd refuses to chroot anonymous users into a directory they may
/// write, `allow_writeable_chroot` or not). With TLS: required for the login and every data connection (`force_anon_*`),
/// TLS 1.2 or 1.3 (vsftpd 3.0.3 has no `ssl_tlsv1_2` option: it takes whatever OpenSSL offers beyond
/// the versions switched off), and `require_ssl_reuse=YES`: a data connection must resume the control
/// connection's TLS session. `mode == Implicit` is `implicit_ssl=YES` on the one port.
pub fn vsftpd(mode: TlsMode) -> Option<Server> {
    let Some(binary) = find_program(&["/usr/sbin/vsftpd"], "usr/sbin/vsftpd") else {
        return skip("vsftpd is not installed (see .ci/run: unpacked into /opt/ftp-proto-peers)");
    };
    let dir = TempDir::new("vsftpd");
    if !is_root(dir.path()) {
        return skip("vsftpd must be started as root (it chroots its sessions)");
    }
    // vsftpd changes to the anonymous user's home before the chroot: it must exist.
    let Some((uid, gid, home)) = system_user("ftp").filter(|(_, _, home)| home.is_dir()) else {
        return skip(
            "no system user `ftp` with a home directory (useradd --system --home-dir /srv/ftp --create-home ftp)",
        );
    };
    let _ = home;
    let chroot = dir.path().join("chroot");
    let root = chroot.join("pub");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
    let pki = (mode != TlsMode::Plain).then(|| TestPki::new(dir.path()));
    let log_file = dir.path().join("vsftpd.log");
    let config_path = dir.path().join("vsftpd.conf");
    let (addr, child, log) = start_silent("vsftpd", mode, |port| {
        let passive_low = port.saturating_add(1).min(65_000);
        let tls = match &pki {
            None => String::new(),
            Some(pki) => format!(
                "ssl_enable=YES\n\
                 allow_anon_ssl=YES\n\
                 force_anon_logins_ssl=YES\n\
                 force_anon_data_ssl=YES\n\
                 require_ssl_reuse=YES\n\
                 ssl_sslv2=NO\n\
                 ssl_sslv3=NO\n\
                 ssl_tlsv1=NO\n\
                 ssl_ciphers=HIGH\n\
                 rsa_cert_file={cert}\n\
                 rsa_private_key_file={key}\n\
                 implicit_ssl={implicit}\n\
                 debug_ssl=YES\n",
                cert = pki.cert.display(),
                key = pki.key.display(),
                implicit = if mode == TlsMode::Implicit {
                    "YES"
                } else {
                    "NO"
                },
            ),
        };
        let config = format!(
            "# Generated by tests/client_interop/servers.rs\n\
             listen=YES\n\
             listen_ipv6=NO\n\
             listen_address=127.0.0.1\n\
             listen_port={port}\n\
             background=NO\n\
             anonymous_enable=YES\n\
             local_enable=NO\n\
             no_anon_password=YES\n\
             ftp_username=ftp\n\
             anon_root={chroot}\n\
             write_enable=YES\n\
             anon_upload_enable=YES\n\
             anon_mkdir_write_enable=YES\n\
             anon_other_write_enable=YES\n\
             anon_umask=022\n\
             secure_chroot_dir={empty}\n\
             seccomp_sandbox=NO\n\
             pasv_enable=YES\n\
             pasv_min_port={passive_low}\n\
             pasv_max_port={passive_high}\n\
             port_enable=YES\n\
             connect_from_port_20=NO\n\
             idle_session_timeout=60\n\
             data_connection_timeout=30\n\
             xferlog_enable=YES\n\
             xferlog_std_format=NO\n\
             log_ftp_protocol=YES\n\
             vsftpd_log_file={log}\n\
             {tls}",
            chroot = chroot.display(),
            empty = empty.display(),
            passive_high = passive_low.saturating_add(40),
            log = log_file.display(),
        );
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new(&binary);
        command.arg(&config_path);
        command
    });
    Some(Server {
        kind: Kind::Vsftpd,
        addr,
        implicit_addr: (mode == TlsMode::Implicit).then_some(addr),
        ca: pki.map(|pki| pki.ca),
        login: None,
        logs_commands: true,
        home: Some("pub"),
        root,
        anon_root: None,
        owner: Some((uid, gid)),
        child,
        _stdin: None,
        log,
        log_files: vec![log_file],
        _dir: dir,
    })
}

/// pure-ftpd, run as root in the foreground: one virtual user ([`USER`], mapped to `nobody`) in a
/// PureDB made with `pure-pw mkdb`, chrooted, no anonymous logins. With TLS (`-Y 3`), plaintext
/// sessions and data connections are refused. pure-ftpd has no implicit FTPS, and logs commands only
/// to syslog ([`Server::received`] cannot tell).
pub fn pure_ftpd(mode: TlsMode) -> Option<Server> {
    assert_ne!(mode, TlsMode::Implicit, "pure-ftpd has no implicit FTPS");
    let Some(binary) = find_program(&["/usr/sbin/pure-ftpd"], "usr/sbin/pure-ftpd") else {
        return skip(
            "pure-ftpd is not installed (see .ci/run: unpacked into /opt/ftp-proto-peers)",
        );
    };
    let Some(pure_pw) = find_program(&["/usr/bin/pure-pw"], "usr/bin/pure-pw") else {
        return skip("pure-pw is not installed (Debian's pure-ftpd-common)");
    };
    let dir = TempDir::new("pure-ftpd");
    if !is_root(dir.path()) {
        return skip("pure-ftpd must be started as root (it chroots its sessions)");
    }
    let (uid, gid) = (65534, 65534);
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
    let Some(hash) = crypt_hash(PASSWORD) else {
        return skip("cannot hash a password for pure-ftpd (openssl not found)");
    };
    // pure-pw's format; `/./` at the end of the home is the chroot point.
    let passwd = dir.path().join("pureftpd.passwd");
    let database = dir.path().join("pureftpd.pdb");
    write_private(
        &passwd,
        &format!(
            "{USER}:{hash}:{uid}:{gid}::{}/./::::::::::::\n",
            root.display()
        ),
    );
    let made = Command::new(&pure_pw)
        .arg("mkdb")
        .arg(&database)
        .arg("-f")
        .arg(&passwd)
        .output()
        .expect("run pure-pw");
    assert!(
        made.status.success(),
        "pure-pw mkdb: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pki = (mode != TlsMode::Plain).then(|| TestPki::new(dir.path()));
    let (addr, child, log) = start_silent("pure-ftpd", mode, |port| {
        let passive_low = port.saturating_add(1).min(65_000);
        let mut command = Command::new(&binary);
        command
            .arg("-S")
            .arg(format!("127.0.0.1,{port}"))
            .arg("-p")
            .arg(format!("{passive_low}:{}", passive_low.saturating_add(40)))
            .arg("-l")
            .arg(format!("puredb:{}", database.display()))
            // No anonymous logins, chroot everyone, no DNS, no syslog, 60 s idle.
            .args(["-E", "-A", "-H", "-f", "none", "-I", "1"]);
        if let Some(pki) = &pki {
            command.args(["-Y", "3", "-2"]).arg(format!(
                "{},{}",
                pki.cert.display(),
                pki.key.display()
            ));
        }
        command
    });
    Some(Server {
        kind: Kind::PureFtpd,
        addr,
        implicit_addr: None,
        ca: pki.map(|pki| pki.ca),
        login: Some((USER, PASSWORD)),
        logs_commands: false,
        home: None,
        root,
        anon_root: None,
        owner: Some((uid, gid)),
        child,
        _stdin: None,
        log,
        log_files: Vec::new(),
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

/// Whether a server at `addr` is ready: it greets (plaintext, explicit FTPS) or accepts connections
/// (implicit FTPS: the greeting would need a handshake first).
fn ready(addr: SocketAddr, mode: TlsMode) -> bool {
    match mode {
        TlsMode::Implicit => TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok(),
        _ => greets(addr),
    }
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

/// Reads the server's `listening on ADDR` line and, if `implicit`, the `implicit FTPS on ADDR` line
/// (the rest of its output goes to the log).
fn listening_lines(
    child: &mut Child,
    log: &Arc<Mutex<String>>,
    implicit: bool,
) -> (SocketAddr, Option<SocketAddr>) {
    let stdout = child.stdout.take().expect("piped stdout");
    drain(child.stderr.take(), log.clone());
    let (found, wait) = std::sync::mpsc::channel();
    let log_lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            for prefix in ["listening on ", "implicit FTPS on "] {
                if let Some(addr) = line.strip_prefix(prefix) {
                    let _ = found.send((prefix, addr.trim().to_owned()));
                }
            }
            if let Ok(mut log) = log_lines.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    let mut next = |expected: &str| match wait.recv_timeout(START_TIMEOUT) {
        Ok((prefix, addr)) if prefix == expected => addr
            .parse::<SocketAddr>()
            .unwrap_or_else(|_| panic!("bad address in `{prefix}{addr}`")),
        _ => {
            let _ = child.kill();
            let log = log.lock().map(|l| l.clone()).unwrap_or_default();
            panic!("the server did not say where it listens ({expected}...):\n{log}");
        }
    };
    let addr = next("listening on ");
    let implicit_addr = implicit.then(|| next("implicit FTPS on "));
    (addr, implicit_addr)
}

fn drain(stream: Option<impl Read + Send + 'static>, into: Arc<Mutex<String>>) {
    if let Some(stream) = stream {
        crate::support::drain_lines(stream, into);
    }
}
