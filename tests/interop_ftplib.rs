//! Interop with Python's ftplib: runs the `unittest` suite in `tests/interop/ftplib_suite.py` against
//! the example server, one Rust test per server configuration. A failing Python test fails the Rust test,
//! whose message carries the whole unittest report.
//!
//! The suite is run as `python3 ftplib_suite.py HOST PORT ROOT [TestClass ...]`: ROOT is the server's
//! root, where the Python tests put their fixtures and check uploads byte for byte.

#[path = "interop/mod.rs"]
mod interop;
#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use interop::{PASSWORD, USER, USER_ARG, require_tool, run_client};
use support::ServerProcess;

/// The suite for a default server takes about ten seconds; this is the kill deadline, far above it.
const SUITE_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts a server with `--user alice:secret` plus `server_args`, runs the named test classes against
/// it and fails with the unittest report if any of them fails.
fn run_suite(server_args: &[&str], classes: &[&str]) {
    if !require_tool("python3") {
        return;
    }
    let mut args = vec!["--user", USER_ARG];
    args.extend_from_slice(server_args);
    let server = ServerProcess::start(&args);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ftplib_suite.py");
    let addr = server.addr;
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(&server.root)
        .args(classes)
        .env("FTP_USER", USER)
        .env("FTP_PASSWORD", PASSWORD)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = run_client(&mut command, SUITE_TIMEOUT);
    // Shown by `cargo test -- --nocapture`, and in the failure message otherwise.
    println!("{}", output.stdout_text());
    assert!(
        output.status.success(),
        "ftplib suite {classes:?} failed against a server with {server_args:?}:\n{}",
        output.describe()
    );
    assert!(
        output.stdout_text().contains("\nOK"),
        "{}",
        output.describe()
    );
}

/// Authentication, per-command login and argument rules, file-system commands, store, retrieve,
/// listings, abort (in band), anonymous read-only and corner cases, against a default server.
#[test]
fn ftplib_default_server() {
    run_suite(
        &["--anonymous", "ro"],
        &[
            "TestAuthentication",
            "TestLoginRules",
            "TestArguments",
            "TestFilesystem",
            "TestStore",
            "TestRetrieve",
            "TestListing",
            "TestAbort",
            "TestAnonymousReadOnly",
            "TestCornerCases",
        ],
    );
}

/// `--idle-timeout 2`: an idle session gets 421 and is closed; commands keep it alive.
#[test]
fn ftplib_idle_timeout() {
    run_suite(&["--idle-timeout", "2"], &["TestIdleTimeout"]);
}

/// `--idle-timeout 2`: a transfer longer than the idle timeout must not end the session right after
/// its 226.
#[test]
fn ftplib_idle_timer_restarts_after_a_long_transfer() {
    run_suite(&["--idle-timeout", "2"], &["TestIdleAfterTransfer"]);
}

/// `--data-timeout 2`: PASV or PORT without a data connection gets 425, a stalled upload 426, and the
/// session goes on.
#[test]
fn ftplib_data_timeout() {
    run_suite(&["--data-timeout", "2"], &["TestDataTimeout"]);
}

/// `--anonymous off` refuses anonymous logins with 530.
#[test]
fn ftplib_anonymous_off() {
    run_suite(&["--anonymous", "off"], &["TestAnonymousOff"]);
}

/// `--anonymous rw` lets anonymous users write.
#[test]
fn ftplib_anonymous_read_write() {
    run_suite(&["--anonymous", "rw"], &["TestAnonymousReadWrite"]);
}

/// ftplib's `FTP.abort()` sends `ABOR\r\n` as TCP urgent data.
#[test]
fn ftplib_abort_with_urgent_data() {
    run_suite(&[], &["TestOobAbort"]);
}

/// NLST of a subdirectory must name files so that RETR finds them from the working directory.
#[test]
fn ftplib_nlst_of_a_directory_gives_retrievable_names() {
    run_suite(&[], &["TestNlstOfADirectory"]);
}
