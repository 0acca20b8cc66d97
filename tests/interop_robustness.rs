//! Robustness of the example server against clients that misbehave or come in crowds, spoken by hand over
//! raw sockets: clients vanishing in the middle of RETR and STOR (an interrupted upload to a new name is
//! published as a partial file, which REST + STOR then completes), a control line trickled in one byte at a time, 500 concurrent
//! sessions, and afterwards the server's open file descriptors back at their baseline.

#[path = "interop/mod.rs"]
mod interop;
#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use interop::{
    Control, PASSWORD, USER, USER_ARG, assert_bytes_eq, eventually, open_fds, pseudo_random_bytes,
    write_file,
};
use support::{ServerProcess, read_all};

/// Larger than what the loopback socket buffers can hold, so a transfer of it is still running when
/// the client walks away.
const BIG: usize = 8 * 1024 * 1024;

/// How many descriptors above the baseline still count as "back to normal" (a log file rotated, a
/// lazily opened resource of the runtime); a leak of one per session would be far above it.
const FD_SLACK: usize = 4;

fn start(extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--user", USER_ARG, "--anonymous", "ro"];
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

fn server_pid(server: &mut ServerProcess) -> u32 {
    server.child.id()
}

/// A logged-in read-write session in TYPE I.
fn writer(addr: SocketAddr) -> Control {
    let mut control = Control::connect(addr);
    control.login(USER, PASSWORD);
    control.expect("TYPE I", 200);
    control
}

/// Downloads `name` in a fresh session and compares it with `expected`; also checks the server process
/// is still running.
fn assert_still_serves(server: &mut ServerProcess, name: &str, expected: &[u8]) {
    assert!(
        matches!(server.child.try_wait(), Ok(None)),
        "the server process exited"
    );
    let mut control = writer(server.addr);
    let data = control.open_passive();
    control.send(&format!("RETR {name}"));
    assert_eq!(control.reply().code, 150);
    let got = read_all(data);
    assert_eq!(control.reply().full(), "226 Transfer complete.");
    assert_bytes_eq(&got, expected, name);
    control.expect("QUIT", 221);
}

/// `STAT` during a transfer: the bytes moved so far.
fn bytes_transferred(control: &mut Control) -> u64 {
    let reply = control.expect("STAT", 213);
    let text = reply.text();
    text.rsplit(": ")
        .next()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected STAT reply {text:?}"))
}

#[test]
fn client_vanishing_in_the_middle_of_retr() {
    let mut server = start(&[]);
    let big = pseudo_random_bytes(BIG, 31);
    write_file(&server.root, "big.bin", &big);

    // Both connections dropped mid-transfer.
    for _ in 0..3 {
        let mut control = writer(server.addr);
        let mut data = control.open_passive();
        control.send("RETR big.bin");
        assert_eq!(control.reply().code, 150);
        let mut head = vec![0; 256 * 1024];
        data.read_exact(&mut head).expect("read the first bytes");
        assert_bytes_eq(&head, &big[..head.len()], "first bytes");
        let moved = bytes_transferred(&mut control);
        assert!(moved < BIG as u64, "the transfer should still be running");
        drop(control);
        drop(data);
    }
    assert_still_serves(&mut server, "big.bin", &big);

    // Only the data connection dropped: the session answers 426 and goes on.
    let mut control = writer(server.addr);
    let mut data = control.open_passive();
    control.send("RETR big.bin");
    assert_eq!(control.reply().code, 150);
    let mut head = vec![0; 64 * 1024];
    data.read_exact(&mut head).expect("read the first bytes");
    drop(data); // unread bytes pending: the kernel answers further data with a reset
    assert_eq!(
        control.reply().full(),
        "426 Connection closed; transfer aborted."
    );
    control.expect("NOOP", 200);
    write_file(&server.root, "small.bin", b"still here");
    let data = control.open_passive();
    control.send("RETR small.bin");
    assert_eq!(control.reply().code, 150);
    assert_eq!(read_all(data), b"still here");
    assert_eq!(control.reply().full(), "226 Transfer complete.");
}

#[test]
fn interrupted_stor_leaves_the_partial_file_and_rest_stor_completes_it() {
    let mut server = start(&[]);
    let full = pseudo_random_bytes(3 * 1024 * 1024 + 11, 32);
    let sent = 1_000_003;
    let path = server.root.join("upload.bin");

    let mut control = writer(server.addr);
    let mut data = control.open_passive();
    control.send("STOR upload.bin");
    assert_eq!(control.reply().code, 150);
    data.write_all(&full[..sent]).expect("send the first part");
    data.flush().expect("flush");
    // Wait until the server has written what it received, then vanish: the control connection first, so
    // that the server sees an interrupted session, not the end of the file. Uploads go to a hidden
    // temporary file (`.in.upload.bin.*`) until they finish, so that is the file that grows.
    let on_disk = || temp_upload_len(&server.root, "upload.bin");
    assert!(
        eventually(Duration::from_secs(10), || on_disk() == sent as u64),
        "the server wrote {} of {sent} bytes",
        on_disk()
    );
    control
        .stream()
        .shutdown(Shutdown::Both)
        .expect("shutdown control");
    drop(control);
    std::thread::sleep(Duration::from_millis(200));
    drop(data);

    // The partial upload to a new name is published under it, intact (once the server has seen the
    // session end).
    assert!(
        eventually(Duration::from_secs(10), || {
            std::fs::metadata(&path).is_ok_and(|m| m.len() == sent as u64)
        }),
        "the partial upload was not published"
    );
    let mut control = writer(server.addr);
    let size = control.expect("SIZE upload.bin", 213);
    assert_eq!(size.text(), sent.to_string());
    assert_bytes_eq(
        &std::fs::read(&path).unwrap(),
        &full[..sent],
        "partial file",
    );

    // Resume where it stopped.
    control.expect(&format!("REST {sent}"), 350);
    let mut data = control.open_passive();
    control.send("STOR upload.bin");
    assert_eq!(control.reply().code, 150);
    data.write_all(&full[sent..]).expect("send the rest");
    drop(data);
    assert_eq!(control.reply().full(), "226 Transfer complete.");
    assert_bytes_eq(&std::fs::read(&path).unwrap(), &full, "resumed upload");
    control.expect("QUIT", 221);
    assert_still_serves(&mut server, "upload.bin", &full);
}

/// The size of the temporary file an atomic upload to `name` writes (`.in.NAME.RANDOM`), 0 if none.
fn temp_upload_len(dir: &std::path::Path, name: &str) -> u64 {
    let prefix = format!(".in.{name}.");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// A thread writing bytes one at a time, 100 ms apart, until done, stopped, or the connection fails.
struct Trickle {
    written: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Trickle {
    fn start(mut stream: std::net::TcpStream, bytes: Vec<u8>) -> Trickle {
        let written = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (written.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for byte in bytes {
                if stopped.load(Ordering::SeqCst) || stream.write_all(&[byte]).is_err() {
                    break;
                }
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Trickle {
            written,
            stop,
            thread,
        }
    }

    /// Stops the thread; returns how many bytes it had written.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("trickle thread");
        self.written.load(Ordering::SeqCst)
    }
}

#[test]
fn control_line_trickled_byte_by_byte_gets_421() {
    let server = start(&["--idle-timeout", "2"]);
    // 60 bytes at 10 per second: 6 s for a line that never ends, three times the idle timeout.
    let line = b"MKD trickled-directory-name-that-never-ends-xxxxxxxxxxxxxxxx".to_vec();
    assert_eq!(line.len(), 60);

    let mut logged_in = writer(server.addr);
    let mut anonymous = Control::connect(server.addr);
    let trickles = [
        Trickle::start(logged_in.stream().try_clone().unwrap(), line.clone()),
        Trickle::start(anonymous.stream().try_clone().unwrap(), line.clone()),
    ];
    for (control, trickle) in [&mut logged_in, &mut anonymous].into_iter().zip(&trickles) {
        let reply = control.reply();
        assert_eq!(reply.full(), "421 Timeout: closing control connection.");
        let written = trickle.written.load(Ordering::SeqCst);
        assert!(
            written > 0 && written < line.len(),
            "421 after {written} bytes: the line must still be incomplete"
        );
        assert!(control.try_reply().is_none(), "the connection should close");
    }
    for trickle in trickles {
        trickle.stop();
    }
    assert!(!server.root.join("trickled-directory-name").exists());
    let mut fresh = writer(server.addr);
    fresh.expect("NOOP", 200);
}

/// One client's session: login, LIST, RETR with byte checks, QUIT. Errors are returned, not panicked, so
/// that the main thread reports which session failed and how.
fn crowd_session(addr: SocketAddr, index: usize, files: &[Vec<u8>]) -> Result<(), String> {
    let run = || -> Result<(), String> {
        // 500 sessions on two cores: give each reply more time than a lone client needs, so the test
        // measures correctness under load, not the scheduler.
        let mut control = Control::connect_without_greeting(addr);
        control.set_read_timeout(Duration::from_secs(60));
        let greeting = control.reply();
        if greeting.code != 220 {
            return Err(format!("greeting: {}", greeting.full()));
        }
        if index % 2 == 0 {
            control.login(USER, PASSWORD);
        } else {
            control.login("anonymous", "crowd@example.com");
        }
        control.expect("TYPE I", 200);

        let data = control.open_passive();
        control.send("LIST");
        let opening = control.reply();
        if opening.code != 150 {
            return Err(format!("LIST: {}", opening.full()));
        }
        let listing = String::from_utf8(read_all(data)).map_err(|e| e.to_string())?;
        let done = control.reply();
        if done.full() != "226 Directory send OK." {
            return Err(format!("LIST end: {}", done.full()));
        }
        let lines = listing.lines().count();
        if lines != files.len() || !listing.contains(" small-7.bin\r\n") {
            return Err(format!("LIST gave {lines} lines: {listing:?}"));
        }

        let which = index % files.len();
        let data = control.open_passive();
        control.send(&format!("RETR small-{which}.bin"));
        let opening = control.reply();
        if opening.code != 150 {
            return Err(format!("RETR: {}", opening.full()));
        }
        let got = read_all(data);
        let done = control.reply();
        if done.full() != "226 Transfer complete." {
            return Err(format!("RETR end: {}", done.full()));
        }
        if got != files[which] {
            return Err(format!(
                "RETR small-{which}.bin: {} bytes, expected {} (or different content)",
                got.len(),
                files[which].len()
            ));
        }
        control.expect("QUIT", 221);
        if control.try_reply().is_some() {
            return Err("data after 221".into());
        }
        Ok(())
    };
    // Control panics on timeouts and protocol surprises: turn them into errors too.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {message}"))
        })
        .map_err(|e| format!("session {index}: {e}"))
}

#[test]
fn five_hundred_concurrent_sessions_then_descriptors_back_to_baseline() {
    const SESSIONS: usize = 500;
    // All 500 come from 127.0.0.1: lift the per-address caps (and the total one) above the crowd.
    let mut server = start(&[
        "--max-connections",
        "1000",
        "--max-connections-per-ip",
        "1000",
        "--max-passive-per-ip",
        "1000",
    ]);
    let pid = server_pid(&mut server);
    let files: Vec<Vec<u8>> = (0..10)
        .map(|i| pseudo_random_bytes(20_000 + i * 1000, 40 + i as u64))
        .collect();
    for (i, bytes) in files.iter().enumerate() {
        write_file(&server.root, &format!("small-{i}.bin"), bytes);
    }
    let files = Arc::new(files);
    let addr = server.addr;

    // Warm up (the runtime's lazily created pieces), then take the baseline.
    crowd_session(addr, 0, &files).unwrap();
    let Some(baseline) = open_fds(pid) else {
        println!("SKIPPED: /proc/{pid}/fd is not readable here");
        return;
    };

    let barrier = Arc::new(Barrier::new(SESSIONS));
    let (results, received) = mpsc::channel();
    for index in 0..SESSIONS {
        let (barrier, files, results) = (barrier.clone(), files.clone(), results.clone());
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                barrier.wait();
                let _ = results.send(crowd_session(addr, index, &files));
            })
            .expect("spawn client thread");
    }
    drop(results);
    let mut failures = Vec::new();
    for _ in 0..SESSIONS {
        match received.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failures.push(error),
            Err(error) => panic!("sessions did not finish in time: {error}"),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {SESSIONS} sessions failed, e.g.:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    assert_still_serves(&mut server, "small-3.bin", &files[3]);
    let settled = eventually(Duration::from_secs(10), || {
        open_fds(pid).is_some_and(|now| now <= baseline + FD_SLACK)
    });
    assert!(
        settled,
        "open descriptors: {:?} after the load, {baseline} before",
        open_fds(pid)
    );
}

#[test]
fn abrupt_disconnects_leak_no_descriptors() {
    let mut server = start(&[]);
    let pid = server_pid(&mut server);
    let big = pseudo_random_bytes(BIG, 33);
    write_file(&server.root, "big.bin", &big);
    write_file(&server.root, "small.bin", b"small");
    let addr = server.addr;

    assert_still_serves(&mut server, "small.bin", b"small");
    let Some(baseline) = open_fds(pid) else {
        println!("SKIPPED: /proc/{pid}/fd is not readable here");
        return;
    };

    for round in 0..10 {
        // Gone right after connecting, mid-command, after PASV, while the server waits for the data
        // connection, mid-RETR and mid-STOR.
        drop(Control::connect_without_greeting(addr));
        let mut control = Control::connect(addr);
        control.send_raw(b"USER alic");
        drop(control);

        let mut control = writer(addr);
        let _ = control.epsv();
        drop(control);

        let mut control = writer(addr);
        let _ = control.epsv();
        control.send("RETR big.bin");
        drop(control);

        let mut control = writer(addr);
        let mut data = control.open_passive();
        control.send("RETR big.bin");
        assert_eq!(control.reply().code, 150);
        let mut head = [0; 4096];
        data.read_exact(&mut head).expect("first bytes");
        drop(control);
        drop(data);

        let mut control = writer(addr);
        let mut data = control.open_passive();
        control.send(&format!("STOR vanished-{round}.bin"));
        assert_eq!(control.reply().code, 150);
        data.write_all(&big[..100_000]).expect("send");
        drop(control);
        drop(data);
    }

    assert_still_serves(&mut server, "small.bin", b"small");
    let settled = eventually(Duration::from_secs(10), || {
        open_fds(pid).is_some_and(|now| now <= baseline + FD_SLACK)
    });
    assert!(
        settled,
        "open descriptors: {:?} after the disconnects, {baseline} before",
        open_fds(pid)
    );
}
