//! A real FTP server on tokio, driving the sans-IO [`ftp_proto::server::Session`].
//!
//! ```text
//! cargo run --release --example server -- --root /srv/ftp --user alice:secret
//! ```
//!
//! The first line on stdout is always `listening on <address>` (tests start the server with
//! `--listen 127.0.0.1:0` and read the port from it). Each session logs its commands, logins and transfers
//! to stderr, prefixed with its number.
//!
//! Modules: [`cli`] parses the options; [`session_task`] is the driver loop of one control connection;
//! [`data`] owns data connections (through [`data_channel`], shared with the example client), [`files`]
//! open files, [`storage`] the directory tree; [`auth`] checks passwords. [`limits`] counts connections
//! and passive listeners per address, [`login_throttle`] slows and bans password guessing across
//! sessions, [`privileges`] drops root and confines the process with Landlock, and [`logging`] writes
//! every log line, escaped. [`upload`] carries out the upload policy and [`locks`] keeps two uploads off
//! one name; [`storage`] is confined beneath a root directory handle.
//!
//! FTP over TLS (`--tls-cert`, `--tls-key`): [`tls`] holds the certificate and gives each control
//! connection its own TLS session cache, [`control`] is the control connection that switches to TLS
//! after `AUTH TLS` (or starts in TLS on the `--implicit-tls-listen` port), and [`data_channel`]
//! secures protected data connections with the control connection's sessions.

mod auth;
mod buffers;
mod cli;
#[path = "../common/control.rs"]
mod control;
mod data;
#[path = "../common/data_channel.rs"]
mod data_channel;
mod files;
mod limits;
mod locks;
mod logging;
mod login_throttle;
mod privileges;
#[path = "../common/run_loop.rs"]
mod run_loop;
mod session_task;
mod storage;
#[path = "../common/tls.rs"]
mod tls;
mod upload;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ftp_proto::framing::LineEnding;
use ftp_proto::server::{AnonymousPolicy, Config, TlsPolicy};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::auth::Users;
use crate::cli::{Options, Parsed};
use crate::data::PassivePorts;
use crate::limits::{AddressCounts, Refusal, Slot};
use crate::login_throttle::{LoginThrottle, Policy};
use crate::session_task::{Security, Server, TlsSettings};
use crate::storage::Storage;
use crate::tls::ServerTls;
use crate::upload::UploadPolicy;

/// Bytes per chunk read from a file or a data connection. 256 KiB keeps the per-chunk costs (a few
/// channel messages, one trip through the session) far below the cost of moving the bytes, while the
/// session's window of two chunks keeps memory per transfer at half a megabyte.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// How long to pause accepting after an error such as running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections the kernel may queue before we accept them (see [`listen`]).
const ACCEPT_BACKLOG: i32 = 1024;

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(options)) => *options,
        Ok(Parsed::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            logging::server(format_args!("{message}"));
            logging::server(format_args!("try `server --help`"));
            return ExitCode::from(2);
        }
    };
    let started = match start_up(&options) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            logging::server(format_args!("cannot start the runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(options, started))
}

/// What [`start_up`] prepared while the process had a single thread.
struct Started {
    storage: Storage,
    /// The control port (`--listen`).
    listener: std::net::TcpListener,
    /// The implicit FTPS port (`--implicit-tls-listen`).
    implicit: Option<std::net::TcpListener>,
    /// The certificate and key (`--tls-cert`, `--tls-key`).
    tls: Option<ServerTls>,
}

/// Everything that must happen while the process has a single thread (see [`privileges`]), in order:
/// refuse root on a public address, read start-up files (the certificate and its key included, which
/// may be readable by root only) and open the root, bind the control ports (they may be privileged),
/// raise the descriptor limit, switch to `--run-as`, confine with Landlock.
fn start_up(options: &Options) -> Result<Started, ExitCode> {
    let run_as = options.limits.run_as.as_deref();
    for addr in std::iter::once(options.listen).chain(options.tls.implicit_listen) {
        match privileges::root_policy(addr, run_as) {
            Ok(Some(warning)) => logging::server(format_args!("warning: {warning}")),
            Ok(None) => {}
            Err(message) => return Err(fail(2, &message)),
        }
    }
    let account = run_as.map(privileges::lookup).transpose();
    let account = account.map_err(|message| fail(2, &message))?;
    let tls = match &options.tls.cert_and_key {
        Some((cert, key)) => Some(ServerTls::load(cert, key).map_err(|error| {
            let (cert, key) = (cert.display(), key.display());
            fail(2, &format!("--tls-cert {cert} --tls-key {key}: {error}"))
        })?),
        None => None,
    };
    let storage = Storage::new(&options.root, upload_policy(options))
        .map_err(|error| fail(2, &format!("--root {}: {error}", options.root.display())))?;
    let listener = listen(options.listen)
        .map_err(|error| fail(1, &format!("cannot listen on {}: {error}", options.listen)))?;
    let implicit = match options.tls.implicit_listen {
        Some(addr) => Some(listen(addr).map_err(|error| {
            fail(
                1,
                &format!("--implicit-tls-listen: cannot listen on {addr}: {error}"),
            )
        })?),
        None => None,
    };
    match limits::raise_open_files_limit() {
        Ok(Some(limit)) => logging::server(format_args!("open file limit: {limit}")),
        Ok(None) => logging::server(format_args!("open file limit: unlimited")),
        Err(error) => logging::server(format_args!("cannot raise the open file limit: {error}")),
    }
    if let Some(account) = account {
        privileges::drop_to(&account).map_err(|message| fail(1, &message))?;
        logging::server(format_args!(
            "running as {} (uid {}, gid {})",
            account.name, account.uid, account.gid
        ));
    }
    confine(options, storage.root());
    Ok(Started {
        storage,
        listener,
        implicit,
        tls,
    })
}

fn fail(code: u8, message: &str) -> ExitCode {
    logging::server(format_args!("{message}"));
    ExitCode::from(code)
}

/// Landlock, best effort: the outcome is logged, and a kernel without it does not stop the server.
fn confine(options: &Options, root: &std::path::Path) {
    if !options.limits.landlock {
        logging::server(format_args!("landlock: off (--no-landlock)"));
        return;
    }
    // Read-write beneath the root only if some login may write.
    let writable = !options.users.is_empty()
        || matches!(
            options.anonymous,
            AnonymousPolicy::ReadWrite | AnonymousPolicy::UploadOnly
        );
    let mode = if writable { "read-write" } else { "read-only" };
    match privileges::confine_to(root, writable) {
        Ok(privileges::Confinement::Full) => logging::server(format_args!(
            "landlock: fully enforced ({mode} beneath {})",
            root.display()
        )),
        Ok(privileges::Confinement::Partial) => logging::server(format_args!(
            "landlock: partially enforced, the kernel lacks some rights ({mode} beneath {})",
            root.display()
        )),
        Ok(privileges::Confinement::None) => logging::server(format_args!(
            "landlock: not enforced (not supported by the kernel)"
        )),
        Err(error) => logging::server(format_args!("landlock: not enforced ({error})")),
    }
}

fn into_tokio(listener: std::net::TcpListener) -> std::io::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

async fn serve(options: Options, started: Started) -> ExitCode {
    let Started {
        storage,
        listener,
        implicit,
        tls,
    } = started;
    let listener = match into_tokio(listener) {
        Ok(listener) => listener,
        Err(error) => return fail(1, &format!("cannot listen: {error}")),
    };
    let implicit = match implicit.map(into_tokio).transpose() {
        Ok(implicit) => implicit,
        Err(error) => return fail(1, &format!("cannot listen: {error}")),
    };
    let Ok(bound) = listener.local_addr() else {
        return ExitCode::FAILURE;
    };
    let implicit_bound = match implicit.as_ref().map(TcpListener::local_addr).transpose() {
        Ok(bound) => bound,
        Err(_) => return ExitCode::FAILURE,
    };
    let server = Arc::new(server_state(&options, storage, tls));
    announce(bound, implicit_bound, &server, &options);

    let mut sessions = 0u64;
    loop {
        // Both ports go through the same admission (bans, per-address and total caps): the slot is
        // taken before an implicit connection's handshake, so a handshake cannot get around a cap.
        let (accepted, security) = tokio::select! {
            accepted = listener.accept() => (accepted, Security::Explicit),
            accepted = accept_implicit(implicit.as_ref()) => (accepted, Security::Implicit),
            _ = tokio::signal::ctrl_c() => {
                logging::server(format_args!("interrupted, shutting down"));
                return ExitCode::SUCCESS;
            }
        };
        match accepted {
            Ok((stream, peer)) => match admit(&server, peer.ip()) {
                Ok(slot) => {
                    sessions += 1;
                    let server = server.clone();
                    tokio::spawn(async move {
                        session_task::run(server, sessions, stream, security).await;
                        // The connection counts until its session has ended.
                        drop(slot);
                    });
                }
                Err(refusal) => refuse(stream, peer, &refusal, security),
            },
            Err(error) => {
                logging::server(format_args!("accept failed: {error}"));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// The next connection to the implicit FTPS port; never, without one.
async fn accept_implicit(
    listener: Option<&TcpListener>,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Why a connection is turned away before it gets a session.
enum Unwelcome {
    Cap(Refusal),
    Banned(Duration),
}

/// A connection slot for `ip`, unless it is banned or over a cap.
fn admit(server: &Server, ip: IpAddr) -> Result<Slot, Unwelcome> {
    let now = tokio::time::Instant::now().into_std();
    if let Some(left) = server.throttle.banned(ip, now) {
        return Err(Unwelcome::Banned(left));
    }
    server.connections.try_acquire(ip).map_err(Unwelcome::Cap)
}

/// Writes the 421 and closes, without a task or an allocation: a flood of refused connections costs a
/// system call or two each. The send goes straight to the socket (a fresh socket's send buffer is
/// empty, so it does not block), and a client that cannot take 21 bytes just misses the text.
///
/// On the implicit FTPS port the client expects a TLS handshake, not a reply: it is just closed (a
/// handshake only to say 421 would cost the server more than the connection it refuses).
fn refuse(stream: TcpStream, peer: SocketAddr, why: &Unwelcome, security: Security) {
    let (reply, reason): (&[u8], String) = match why {
        Unwelcome::Cap(Refusal::Total) => (
            b"421 Too many connections (server full), try again later.\r\n",
            "the server is full".into(),
        ),
        Unwelcome::Cap(Refusal::PerAddress) => (
            b"421 Too many connections (from your address), try again later.\r\n",
            "too many connections from this address".into(),
        ),
        Unwelcome::Banned(left) => (
            b"421 Too many failed logins from your address, try again later.\r\n",
            format!("banned for another {} s", left.as_secs().max(1)),
        ),
    };
    if security == Security::Explicit {
        let _ = socket2::SockRef::from(&stream).send(reply);
    }
    logging::server(format_args!("refused {peer}: {reason}"));
}

/// Binds the control listener with a deep accept queue.
///
/// `TcpListener::bind` asks for a backlog of 128. When more clients than that connect at once, Linux
/// answers the surplus with SYN cookies and then drops their final ACK while the queue is still full: the
/// client believes it is connected and waits for a greeting that never comes. 1024 pending connections
/// (the kernel caps it at `net.core.somaxconn`) absorb a burst of hundreds of clients.
///
/// A std listener, because it is bound before the runtime exists (see [`start_up`]).
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    Ok(socket.into())
}

fn upload_policy(options: &Options) -> UploadPolicy {
    UploadPolicy {
        atomic: !options.storage.in_place_uploads,
        delete_failed: options.storage.delete_failed_uploads,
        max_file_size: options.storage.max_file_size,
        min_free_space: options.storage.min_free_space,
    }
}

fn server_state(options: &Options, storage: Storage, tls: Option<ServerTls>) -> Server {
    let mut users = Users::default();
    for (name, password) in &options.users {
        let fxp = options.allow_fxp || options.fxp_users.iter().any(|user| user == name);
        users.insert(name, password, fxp);
    }
    let limits = &options.limits;
    Server {
        config: Arc::new(session_config(options)),
        storage: Arc::new(storage),
        users,
        passive_ports: PassivePorts::new(
            options.passive_ports.clone(),
            limits.passive_bind_attempts,
        ),
        masquerade: options.masquerade,
        connections: AddressCounts::new(limits.max_connections, limits.max_connections_per_ip),
        // One listener per session at most, so the total is bounded by the connection cap already.
        passive_listeners: AddressCounts::new(limits.max_connections, limits.max_passive_per_ip),
        throttle: LoginThrottle::new(Policy {
            backoff_max: limits.login_backoff_max,
            window: limits.login_window,
            ban_after: limits.ban_after,
            ban_time: limits.ban_time,
            table_size: limits.login_table_size,
        }),
        transfers: Arc::new(Semaphore::new(options.storage.max_transfers)),
        listings: Arc::new(Semaphore::new(options.storage.max_listings)),
        tls: tls.map(|tls| TlsSettings {
            tls,
            handshake_timeout: options.tls.handshake_timeout(),
            strict_eof: options.tls.strict_eof,
        }),
    }
}

fn session_config(options: &Options) -> Config {
    let mut config = Config::default();
    config.anonymous = options.anonymous;
    // FXP is granted per user at login (see `auth`), never by default, never to anonymous users.
    config.allow_foreign_data_address = false;
    if let Some(timeout) = options.login_timeout {
        config.login_timeout = timeout;
    }
    if options.strict_crlf {
        config.framer.line_ending = LineEnding::CrLfOnly;
    }
    if let Some(timeout) = options.idle_timeout {
        config.idle_timeout = timeout;
    }
    if let Some(timeout) = options.data_timeout {
        config.data_timeout = timeout;
    }
    config.tls = tls_policy(&options.tls);
    config
}

/// What the session offers and requires of TLS: nothing without a certificate (`AUTH` gets 502, `FEAT`
/// does not list it), as before FTPS existed.
fn tls_policy(options: &cli::TlsOptions) -> TlsPolicy {
    if options.cert_and_key.is_none() {
        return TlsPolicy::default();
    }
    let mut policy = if options.require {
        TlsPolicy::required()
    } else {
        TlsPolicy::offered()
    };
    policy.anonymous_exempt = options.exempt_anonymous;
    policy.allow_clear_control = options.allow_ccc;
    policy
}

/// Prints the `listening on` line (flushed at once: tests wait for it), then the implicit FTPS port's
/// `implicit FTPS on` line if there is one, then how to connect.
fn announce(bound: SocketAddr, implicit: Option<SocketAddr>, server: &Server, options: &Options) {
    let anonymous = match options.anonymous {
        AnonymousPolicy::Disabled => "anonymous login off",
        AnonymousPolicy::ReadWrite => "anonymous users may read and write",
        AnonymousPolicy::UploadOnly => "anonymous users may read and upload new files",
        _ => "anonymous users may read",
    };
    // A wildcard address is no place to connect to; suggest loopback of the same family.
    let host = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let connect = SocketAddr::new(host, bound.port());
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {bound}");
    if let Some(implicit) = implicit {
        let _ = writeln!(stdout, "implicit FTPS on {implicit}");
    }
    let _ = writeln!(
        stdout,
        "serving {} ({anonymous}, {} user(s)); try `curl ftp://{connect}/` or `lftp -p {} {host}`",
        server.storage.root().display(),
        options.users.len(),
        bound.port(),
    );
    if server.tls.is_some() {
        let tls = match (options.tls.require, options.tls.exempt_anonymous) {
            (false, _) => "offered (AUTH TLS)",
            (true, false) => "required for logins and data (AUTH TLS)",
            (true, true) => "required except for anonymous users (AUTH TLS)",
        };
        let _ = writeln!(
            stdout,
            "FTPS {tls}; try `curl --ssl-reqd ftp://{connect}/` (with --cacert for your CA)"
        );
    }
    let _ = stdout.flush();
}
