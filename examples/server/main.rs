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
//! [`data`] owns data connections, [`files`] open files, [`storage`] the directory tree (confined beneath
//! a root handle), [`upload`] the upload policy and [`locks`] the upload locks; [`auth`] checks passwords.

mod auth;
mod buffers;
mod cli;
mod data;
mod files;
mod locks;
mod session_task;
mod storage;
mod upload;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ftp_proto::framing::LineEnding;
use ftp_proto::server::{AnonymousPolicy, Config};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;

use crate::auth::Users;
use crate::cli::{Options, Parsed};
use crate::data::PassivePorts;
use crate::session_task::Server;
use crate::storage::Storage;
use crate::upload::UploadPolicy;

/// Bytes per chunk read from a file or a data connection. 256 KiB keeps the per-chunk costs (a few
/// channel messages, one trip through the session) far below the cost of moving the bytes, while the
/// session's window of two chunks keeps memory per transfer at half a megabyte.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// How long to pause accepting after an error such as running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections the kernel may queue before we accept them (see [`listen`]).
const ACCEPT_BACKLOG: u32 = 1024;

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("server: {message}\nTry `server --help`.");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(options))
}

async fn serve(options: Options) -> ExitCode {
    let storage = match Storage::new(&options.root, upload_policy(&options)) {
        Ok(storage) => storage,
        Err(error) => {
            eprintln!("server: --root {}: {error}", options.root.display());
            return ExitCode::from(2);
        }
    };
    let listener = match listen(options.listen) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("server: cannot listen on {}: {error}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    let Ok(bound) = listener.local_addr() else {
        return ExitCode::FAILURE;
    };
    let server = Arc::new(server_state(&options, storage));
    announce(bound, &server, &options);

    let mut sessions = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    sessions += 1;
                    tokio::spawn(session_task::run(server.clone(), sessions, stream));
                }
                Err(error) => {
                    eprintln!("server: accept failed: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("server: interrupted, shutting down");
                return ExitCode::SUCCESS;
            }
        }
    }
}

/// Binds the control listener with a deep accept queue.
///
/// `TcpListener::bind` asks for a backlog of 128. When more clients than that connect at once, Linux
/// answers the surplus with SYN cookies and then drops their final ACK while the queue is still full: the
/// client believes it is connected and waits for a greeting that never comes. 1024 pending connections
/// (the kernel caps it at `net.core.somaxconn`) absorb a burst of hundreds of clients.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

fn upload_policy(options: &Options) -> UploadPolicy {
    UploadPolicy {
        atomic: !options.storage.in_place_uploads,
        delete_failed: options.storage.delete_failed_uploads,
        max_file_size: options.storage.max_file_size,
        min_free_space: options.storage.min_free_space,
    }
}

fn server_state(options: &Options, storage: Storage) -> Server {
    let mut users = Users::default();
    for (name, password) in &options.users {
        users.insert(name, password);
    }
    Server {
        config: Arc::new(session_config(options)),
        storage: Arc::new(storage),
        users,
        passive_ports: PassivePorts::new(options.passive_ports.clone()),
        masquerade: options.masquerade,
        transfers: Arc::new(Semaphore::new(options.storage.max_transfers)),
    }
}

fn session_config(options: &Options) -> Config {
    let mut config = Config::default();
    config.anonymous = options.anonymous;
    config.allow_foreign_data_address = options.allow_fxp;
    if options.strict_crlf {
        config.framer.line_ending = LineEnding::CrLfOnly;
    }
    if let Some(timeout) = options.idle_timeout {
        config.idle_timeout = timeout;
    }
    if let Some(timeout) = options.data_timeout {
        config.data_timeout = timeout;
    }
    config
}

/// Prints the `listening on` line (flushed at once: tests wait for it), then how to connect.
fn announce(bound: SocketAddr, server: &Server, options: &Options) {
    let anonymous = match options.anonymous {
        AnonymousPolicy::Disabled => "anonymous login off",
        AnonymousPolicy::ReadWrite => "anonymous users may read and write",
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
    let _ = writeln!(
        stdout,
        "serving {} ({anonymous}, {} user(s)); try `curl ftp://{connect}/` or `lftp -p {} {host}`",
        server.storage.root().display(),
        options.users.len(),
        bound.port(),
    );
    let _ = stdout.flush();
}
