//! An FTP client on tokio, driving the sans-IO [`ftp_proto::client::Session`].
//!
//! ```text
//! cargo run --example client -- ls ftp://ftp.example.com/pub/
//! cargo run --example client -- get --resume ftp://user:pw@host:2121/big.iso
//! cargo run --example client -- put --active notes.txt ftp://user:pw@host/incoming/
//! cargo run --example client -- mirror ftp://host/pub/project ./project
//! cargo run --example client -- get --tls ftp://user:pw@host/file          # explicit FTPS (AUTH TLS)
//! cargo run --example client -- ls --ca-file ca.pem ftps://user:pw@host/    # implicit FTPS, port 990
//! ```
//!
//! * [`driver`]: the session's task and the async [`driver::Client`] handle (reusable on its own).
//! * [`commands`]: `ls`, `get`, `put`, `mirror` on top of it.
//! * [`progress`]: the progress line on stderr.
//! * [`cli`]: the arguments.
//!
//! Exit status: 0 on success, 1 when the transfer failed (the message names the command and quotes the
//! server's reply), 2 on a usage error.

mod cli;
mod commands;
mod driver;
mod progress;

use std::process::ExitCode;

use cli::Parsed;
use commands::Failure;

fn main() -> ExitCode {
    let parsed = match cli::parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("error: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let (command, flags) = match parsed {
        Parsed::Help => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Parsed::Run(command, flags) => (command, flags),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(command, flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure @ Failure::Usage(_)) => {
            eprintln!("error: {failure}");
            ExitCode::from(2)
        }
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::FAILURE
        }
    }
}
