//! Smoke test of the example server (`examples/server`): starts the real binary and talks FTP to it over
//! loopback with a raw `TcpStream`: login, `EPSV` + `RETR`, `PASV` + `LIST`, `STOR`, `STAT` and `ABOR`
//! during a transfer, `QUIT`.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::process::{Command, Stdio};

use support::{Control, ServerProcess, pattern, read_all, server_binary, write_all_and_close};

#[test]
fn download_list_upload_and_quit() {
    let server = ServerProcess::start(&["--user", "alice:secret"]);
    let content = pattern(1 << 20, 7);
    std::fs::write(server.root.join("big.bin"), &content).unwrap();

    let mut ftp = Control::connect(server.addr);
    ftp.expect_reply(220);
    ftp.login("anonymous", "guest@example.com");
    ftp.expect("TYPE I", 200);

    // EPSV + RETR: every byte, in order.
    let data = ftp.epsv();
    ftp.expect("RETR big.bin", 150);
    let received = read_all(data);
    ftp.expect_reply(226);
    assert_eq!(received.len(), content.len());
    assert!(received == content, "RETR returned different bytes");

    // PASV + LIST: the file shows up as a plain file with its size.
    let data = ftp.pasv();
    ftp.expect("LIST", 150);
    let listing = String::from_utf8(read_all(data)).unwrap();
    ftp.expect_reply(226);
    let line = listing
        .lines()
        .find(|l| l.ends_with(" big.bin"))
        .unwrap_or_else(|| panic!("big.bin not listed:\n{listing}"));
    assert!(line.starts_with('-'), "{line}");
    assert!(line.contains(" 1048576 "), "{line}");

    // Anonymous users read only (the default policy).
    ftp.expect("STOR denied.bin", 550);
    assert!(!server.root.join("denied.bin").exists());

    // USER again changes users; alice may write.
    ftp.login("alice", "secret");
    ftp.expect("TYPE I", 200);
    let upload = pattern(300_000, 11);
    let data = ftp.epsv();
    ftp.expect("STOR up.bin", 150);
    write_all_and_close(data, &upload);
    ftp.expect_reply(226);
    let stored = std::fs::read(server.root.join("up.bin")).unwrap();
    assert!(stored == upload, "the stored file differs from the upload");

    ftp.expect("QUIT", 221);
    assert!(ftp.is_closed_by_server());
}

#[test]
fn stat_and_abor_work_during_an_upload() {
    let server = ServerProcess::start(&["--anonymous", "rw"]);
    let mut ftp = Control::connect(server.addr);
    ftp.expect_reply(220);
    ftp.login("anonymous", "guest@");
    ftp.expect("TYPE I", 200);

    let mut data = ftp.epsv();
    ftp.expect("STOR partial.bin", 150);
    data.write_all(&[42; 1000]).unwrap();

    // The upload is still open: the server must be reading the control connection anyway.
    let status = ftp.expect("STAT", 213);
    assert!(status.text().contains("STOR"), "{}", status.text());

    ftp.send("ABOR");
    ftp.expect_reply(426);
    ftp.expect_reply(226);
    // The data connection is gone: EOF or a reset, not a timeout.
    let mut buffer = [0u8; 16];
    match data.read(&mut buffer) {
        Ok(0) => {}
        Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("data connection still open after ABOR: {other:?}"),
    }

    ftp.expect("NOOP", 200);
    ftp.expect("QUIT", 221);
}

#[test]
fn a_bad_flag_exits_with_status_2() {
    let output = Command::new(server_binary())
        .arg("--no-such-flag")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--no-such-flag"));
}
