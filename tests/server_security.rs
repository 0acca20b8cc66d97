//! Security regressions of the example server's storage (security review 0.1, §1, §4 and §6), spoken over
//! raw FTP: a two-session rename race that made `STOR` follow a symlink out of the root, outward links as
//! an existence oracle, FIFOs that hung the session, uploads that destroyed the old file when cut short or
//! raced, and idle transfers that starved every other storage request.
//!
//! Each test failed against the server before the fix (commit 9216b67) and passes now. None asserts on
//! timing: "promptly" means the reply arrives within the support module's read timeout.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{
    Control, ServerProcess, TempDir, pasv_address, pattern, read_all, write_all_and_close,
};

const USER: &str = "alice";
const PASSWORD: &str = "secret";
const USER_ARG: &str = "alice:secret";

/// A logged-in read-write session in TYPE I.
fn writer(server: &ServerProcess) -> Control {
    let mut control = Control::connect(server.addr);
    control.expect_reply(220);
    control.login(USER, PASSWORD);
    control.expect("TYPE I", 200);
    control
}

/// An anonymous (read-only) session in TYPE I.
fn anonymous(server: &ServerProcess) -> Control {
    let mut control = Control::connect(server.addr);
    control.expect_reply(220);
    control.login("anonymous", "guest@example.com");
    control.expect("TYPE I", 200);
    control
}

/// `STAT` during a transfer: the bytes moved so far (`213 Status: STOR /x: N bytes transferred.`).
fn bytes_transferred(control: &mut Control) -> u64 {
    let text = control.expect("STAT", 213).text();
    text.rsplit(": ")
        .next()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected STAT reply {text:?}"))
}

/// Polls `STAT` until the server has taken at least `bytes` of the running transfer (bounded).
fn wait_for_transferred(control: &mut Control, bytes: u64) {
    let deadline = Instant::now() + support::TIMEOUT;
    while bytes_transferred(control) < bytes {
        assert!(
            Instant::now() < deadline,
            "the server never took {bytes} bytes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether `check` holds within the support module's timeout (polled).
fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + support::TIMEOUT;
    while !check() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Waits (bounded) until the server's log has `count` lines containing `text`.
fn wait_for_log(server: &ServerProcess, text: &str, count: usize) {
    let deadline = Instant::now() + support::TIMEOUT;
    while server.log().matches(text).count() < count {
        assert!(
            Instant::now() < deadline,
            "the server never logged {count} × {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- §1.4: the two-session swap attack ----

/// Most attempts per variant; on the old server the race was won after 2 to a few hundred attempts.
const SWAP_ATTEMPTS: usize = 1500;
/// Wall-clock bound per variant, whichever comes first.
const SWAP_TIME: Duration = Duration::from_secs(6);

/// Session B: swaps `/links` (holding the outward link) in for the empty `/up/t` and back, moves a
/// non-empty `/up/t` away and recreates it, batch after batch, until `stop`.
fn swapper(server: &ServerProcess, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let mut control = writer(server);
    std::thread::spawn(move || {
        let mut round = 0;
        while !stop.load(Ordering::Relaxed) {
            round += 1;
            let batch = [
                "RNFR /links".to_owned(),
                "RNTO /up/t".to_owned(),
                "RNFR /up/t".to_owned(),
                "RNTO /links".to_owned(),
                "RNFR /up/t".to_owned(),
                format!("RNTO /trash/{round}"),
                "MKD /up/t".to_owned(),
            ];
            // Pipelined in one write, then every reply read: the server's input stays bounded.
            control.send(&batch.join("\r\n"));
            for _ in &batch {
                control.reply();
            }
        }
    })
}

/// Session A: one `PASV` + `STOR up/t/escapefile` with `payload`, whatever the answer.
fn store_through_race(control: &mut Control, payload: &[u8]) {
    let data = control.pasv();
    control.send("STOR up/t/escapefile");
    let reply = control.reply();
    if reply.code == 150 {
        write_all_and_close(data, payload);
        control.reply(); // 226, or an error: either way the attempt is over
    }
}

/// Runs the race against a link `links/escapefile -> target` (outside the root); returns the attempts.
fn run_swap_attack(target: &Path) -> usize {
    let server = ServerProcess::start(&["--user", USER_ARG]);
    for dir in ["links", "up/t", "trash"] {
        std::fs::create_dir_all(server.root.join(dir)).unwrap();
    }
    symlink(target, server.root.join("links/escapefile")).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let b = swapper(&server, stop.clone());
    let mut a = writer(&server);
    let started = Instant::now();
    let mut attempts = 0;
    while attempts < SWAP_ATTEMPTS && started.elapsed() < SWAP_TIME {
        attempts += 1;
        store_through_race(&mut a, b"PWNED-BY-FTP-USER");
    }
    stop.store(true, Ordering::Relaxed);
    b.join().expect("swapper thread");
    attempts
}

#[test]
fn two_session_swap_cannot_make_stor_write_outside_the_root() {
    let outside = TempDir::new("outside");
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, b"original victim contents\n").unwrap();

    // Variant 1: the link points at an existing outside file (overwrite).
    let attempts = run_swap_attack(&victim);
    println!("swap attack on an existing outside file: {attempts} STOR attempts");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"original victim contents\n",
        "the outside file was overwritten through the root"
    );

    // Variant 2: a dangling link (create).
    let created = outside.path().join("created_by_ftp.txt");
    let attempts = run_swap_attack(&created);
    println!("swap attack through a dangling link: {attempts} STOR attempts");
    assert_eq!(
        names_in(outside.path()),
        ["victim.txt"],
        "a file was created outside the root"
    );
}

// ---- §1.3: outward links ----

#[test]
fn a_link_leading_out_answers_like_a_missing_file_and_lists_without_its_target() {
    let server = ServerProcess::start(&["--anonymous", "ro"]);
    symlink("/", server.root.join("rootlink")).unwrap();
    std::fs::create_dir(server.root.join("pub")).unwrap();
    std::fs::write(server.root.join("pub/inside.txt"), b"inside\n").unwrap();
    symlink("pub/inside.txt", server.root.join("inlink")).unwrap();
    let mut ftp = anonymous(&server);

    // /etc/passwd exists on the host, /etc/nonexistent_zz does not: the answers must not tell.
    for verb in ["SIZE", "MDTM"] {
        let missing = ftp.expect(&format!("{verb} no-such-file"), 550).text();
        for probe in [
            "rootlink/etc/passwd",
            "rootlink/etc/nonexistent_zz",
            "rootlink",
        ] {
            let reply = ftp.expect(&format!("{verb} {probe}"), 550).text();
            assert_eq!(reply, missing, "{verb} {probe}");
        }
    }
    let missing_dir = ftp.expect("CWD no-such-dir", 550).text();
    assert_eq!(ftp.expect("CWD rootlink/etc", 550).text(), missing_dir);
    assert_eq!(ftp.expect("CWD rootlink", 550).text(), missing_dir);

    let retr = |ftp: &mut Control, path: &str| {
        let _data = ftp.pasv();
        ftp.send(&format!("RETR {path}"));
        ftp.reply().text()
    };
    let missing = retr(&mut ftp, "no-such-file");
    assert!(missing.starts_with("550"), "{missing}");
    assert_eq!(retr(&mut ftp, "rootlink/etc/passwd"), missing);
    assert_eq!(retr(&mut ftp, "rootlink/etc/nonexistent_zz"), missing);

    // The listing shows both links; only the inward one says where it points.
    let data = ftp.pasv();
    ftp.send("LIST");
    assert_eq!(ftp.reply().code, 150);
    let listing = String::from_utf8(read_all(data)).unwrap();
    ftp.expect_reply(226);
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} in {listing:?}"))
            .to_owned()
    };
    assert!(line("rootlink").ends_with(" rootlink"), "{listing}");
    assert!(line("rootlink").starts_with('l'), "{listing}");
    assert!(
        line("inlink").ends_with(" inlink -> pub/inside.txt"),
        "{listing}"
    );
}

// ---- §1.5: FIFOs ----

#[test]
fn fifo_is_refused_at_once_by_mfmt_retr_and_stor() {
    fifo_is_refused(&["--user", USER_ARG, "--no-landlock"]);
}

/// Under Landlock (the default) cap-std cannot read `/proc/self/fd` and falls back to paths that open
/// files; MFMT used to block on the FIFO there.
#[test]
fn fifo_is_refused_at_once_under_landlock() {
    fifo_is_refused(&["--user", USER_ARG]);
}

fn fifo_is_refused(args: &[&str]) {
    let server = ServerProcess::start(args);
    let fifo = server.root.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let mut ftp = writer(&server);

    // Before the fix MFMT opened the FIFO and waited for a writer for good; the session never answered.
    ftp.expect("MFMT 20200101000000 fifo", 550);
    ftp.expect("NOOP", 200);
    for verb in ["RETR", "STOR"] {
        let _data = ftp.pasv();
        ftp.expect(&format!("{verb} fifo"), 550);
        ftp.expect("NOOP", 200);
    }
    assert!(server.root.join("fifo").exists());
}

// ---- §6: uploads cut short or raced ----

/// Starts `STOR name` and sends `head`; returns once the server has taken it.
fn start_upload(control: &mut Control, name: &str, head: &[u8]) -> TcpStream {
    let mut data = control.pasv();
    control.expect(&format!("STOR {name}"), 150);
    data.write_all(head).expect("send the first bytes");
    wait_for_transferred(control, head.len() as u64);
    data
}

#[test]
fn abor_or_a_broken_data_connection_mid_upload_leaves_the_old_file_intact() {
    let server = ServerProcess::start(&["--user", USER_ARG]);
    let old = pattern(100_000, 7);
    for name in ["keep.txt", "keep2.txt"] {
        std::fs::write(server.root.join(name), &old).unwrap();
    }
    let mut ftp = writer(&server);

    // ABOR after 1000 bytes (the review saw the 100 kB file cut to 1 kB).
    let data = start_upload(&mut ftp, "keep.txt", &[b'x'; 1000]);
    ftp.send("ABOR");
    assert_eq!(ftp.reply().code, 426);
    ftp.expect_reply(226);
    drop(data);
    assert_eq!(std::fs::read(server.root.join("keep.txt")).unwrap(), old);

    // The data connection reset (SO_LINGER 0: an RST, not the FIN that means "end of file").
    let data = start_upload(&mut ftp, "keep2.txt", &[b'y'; 1000]);
    socket2::SockRef::from(&data)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(data);
    let reply = ftp.reply();
    assert!(
        reply.code >= 400,
        "a reset upload must fail: {}",
        reply.text()
    );
    ftp.expect("NOOP", 200);
    assert_eq!(std::fs::read(server.root.join("keep2.txt")).unwrap(), old);
    // And no temporary file is left behind (removed as the transfer's file task ends).
    let settled = eventually(|| names_in(&server.root) == ["keep.txt", "keep2.txt"]);
    assert!(settled, "{:?}", names_in(&server.root));
}

#[test]
fn a_second_upload_to_a_name_being_uploaded_gets_450() {
    let server = ServerProcess::start(&["--user", USER_ARG]);
    let first = pattern(300_000, 1);
    let second = pattern(200_000, 2);
    let mut a = writer(&server);
    let mut b = writer(&server);

    let mut data = start_upload(&mut a, "same.bin", &first[..1000]);
    let _unused = b.pasv();
    b.expect("STOR same.bin", 450);
    data.write_all(&first[1000..]).unwrap();
    write_all_and_close(data, b"");
    a.expect_reply(226);
    assert_eq!(std::fs::read(server.root.join("same.bin")).unwrap(), first);

    // Once the first upload is over the name is free again.
    let data = b.pasv();
    b.expect("STOR same.bin", 150);
    write_all_and_close(data, &second);
    b.expect_reply(226);
    assert_eq!(std::fs::read(server.root.join("same.bin")).unwrap(), second);
}

#[test]
fn an_upload_past_max_file_size_gets_552_and_the_old_file_stays() {
    let server = ServerProcess::start(&["--user", USER_ARG, "--max-file-size", "100000"]);
    let old = pattern(50_000, 3);
    std::fs::write(server.root.join("limited.bin"), &old).unwrap();
    let mut ftp = writer(&server);

    let mut data = ftp.pasv();
    ftp.expect("STOR limited.bin", 150);
    // The server may reset the connection once it refuses: a failed write here is expected.
    let _ = data.write_all(&pattern(300_000, 4));
    let _ = data.shutdown(std::net::Shutdown::Write);
    ftp.expect_reply(552);
    drop(data);
    assert_eq!(std::fs::read(server.root.join("limited.bin")).unwrap(), old);

    // At the limit exactly is fine.
    let data = ftp.pasv();
    ftp.expect("STOR limited.bin", 150);
    write_all_and_close(data, &pattern(100_000, 5));
    ftp.expect_reply(226);
    assert_eq!(names_in(&server.root), ["limited.bin"]);
}

// ---- §4: blocking-pool starvation ----

/// More than tokio's 512 blocking threads: before the fix each of these parked one for good.
const IDLE_TRANSFERS: usize = 530;

#[test]
fn idle_transfers_do_not_freeze_other_sessions_storage() {
    let server = ServerProcess::start(&[
        "--anonymous",
        "ro",
        "--max-transfers",
        "2000",
        "--max-connections",
        "2000",
        "--max-connections-per-ip",
        "2000",
        "--max-passive-per-ip",
        "2000",
    ]);
    std::fs::create_dir(server.root.join("pub")).unwrap();
    let file = pattern(64 * 1024, 9);
    std::fs::write(server.root.join("pub/file.bin"), &file).unwrap();

    // Each attacker opens a file for RETR and never makes the data connection (the 150 would come
    // only once it did).
    let mut attackers = Vec::with_capacity(IDLE_TRANSFERS);
    for _ in 0..IDLE_TRANSFERS {
        let mut control = anonymous(&server);
        let passive = control.expect("PASV", 227).text();
        control.send("RETR pub/file.bin");
        attackers.push((control, passive));
    }
    wait_for_log(&server, "> RETR pub/file.bin", IDLE_TRANSFERS);
    println!("{IDLE_TRANSFERS} transfers waiting for their data connections");

    // Another client's storage requests are answered (before the fix: after the data timeout at best).
    let mut victim = anonymous(&server);
    victim.expect("CWD pub", 250);
    let data = victim.pasv();
    victim.expect("LIST", 150);
    assert!(String::from_utf8_lossy(&read_all(data)).contains("file.bin"));
    victim.expect_reply(226);
    let data = victim.pasv();
    victim.expect("RETR file.bin", 150);
    assert_eq!(read_all(data), file);
    victim.expect_reply(226);

    // The attack was real: the first attacker's transfer is still waiting, and runs once connected.
    let (mut first, passive) = attackers.swap_remove(0);
    let data = support::data_connect(pasv_address(&passive));
    first.expect_reply(150);
    assert_eq!(read_all(data), file);
    first.expect_reply(226);
}

#[test]
fn opens_past_max_transfers_get_450() {
    let server = ServerProcess::start(&["--anonymous", "ro", "--max-transfers", "2"]);
    std::fs::write(server.root.join("file.bin"), b"data").unwrap();
    let mut holders: Vec<Control> = (0..2).map(|_| anonymous(&server)).collect();
    for control in &mut holders {
        control.expect("PASV", 227);
        control.send("RETR file.bin");
    }
    // Logged once the session has carried the RETR out, its transfer slot taken.
    wait_for_log(&server, "> RETR file.bin", 2);
    let mut third = anonymous(&server);
    third.expect("PASV", 227);
    third.expect("RETR file.bin", 450);
    // A slot frees when a transfer ends (here: its session goes away).
    drop(holders.pop());
    let deadline = Instant::now() + support::TIMEOUT;
    loop {
        let mut data = third.pasv();
        third.send("RETR file.bin");
        match third.reply().code {
            150 => {
                let mut got = Vec::new();
                data.read_to_end(&mut got).unwrap();
                assert_eq!(got, b"data");
                third.expect_reply(226);
                break;
            }
            450 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            code => panic!("RETR after a slot freed: {code}"),
        }
    }
}

// ---- what must keep working ----

#[test]
fn links_inside_the_root_keep_working() {
    let server = ServerProcess::start(&["--user", USER_ARG]);
    for dir in ["pub", "other"] {
        std::fs::create_dir(server.root.join(dir)).unwrap();
    }
    std::fs::write(server.root.join("other/file.txt"), b"through a link\n").unwrap();
    // Relative links that climb out of their own directory but stay inside the root.
    symlink("../other", server.root.join("pub/dirlink")).unwrap();
    symlink("../other/file.txt", server.root.join("pub/filelink")).unwrap();
    let mut ftp = writer(&server);

    ftp.expect("SIZE pub/filelink", 213);
    ftp.expect("MFMT 20200101000000 pub/filelink", 213);
    ftp.expect("CWD pub/dirlink", 250);
    let data = ftp.pasv();
    ftp.expect("RETR file.txt", 150);
    assert_eq!(read_all(data), b"through a link\n");
    ftp.expect_reply(226);
    ftp.expect("CWD /pub", 250);
    let data = ftp.pasv();
    ftp.expect("LIST", 150);
    let listing = String::from_utf8(read_all(data)).unwrap();
    ftp.expect_reply(226);
    assert!(listing.contains(" dirlink -> ../other\r\n"), "{listing}");
    assert!(
        listing.contains(" filelink -> ../other/file.txt\r\n"),
        "{listing}"
    );
    // DELE removes the link, never its target.
    ftp.expect("DELE filelink", 250);
    assert!(server.root.join("other/file.txt").exists());
}

#[test]
fn in_place_uploads_and_delete_failed_uploads_flags() {
    // --in-place-uploads: the old behaviour, an aborted STOR leaves its partial file under the name.
    let server = ServerProcess::start(&["--user", USER_ARG, "--in-place-uploads"]);
    std::fs::write(server.root.join("f.bin"), pattern(100_000, 11)).unwrap();
    let mut ftp = writer(&server);
    let data = start_upload(&mut ftp, "f.bin", &[b'z'; 1000]);
    ftp.send("ABOR");
    assert_eq!(ftp.reply().code, 426);
    ftp.expect_reply(226);
    drop(data);
    // (The server's file task may still be writing the last chunk when 226 arrives.)
    let partial = || std::fs::read(server.root.join("f.bin")).unwrap() == [b'z'; 1000];
    assert!(eventually(partial), "the partial upload is not in place");
    drop(ftp);
    drop(server);

    // --delete-failed-uploads: an aborted upload to a new name leaves nothing.
    let server = ServerProcess::start(&["--user", USER_ARG, "--delete-failed-uploads"]);
    let mut ftp = writer(&server);
    let data = start_upload(&mut ftp, "new.bin", &[b'z'; 1000]);
    ftp.send("ABOR");
    assert_eq!(ftp.reply().code, 426);
    ftp.expect_reply(226);
    drop(data);
    let settled = eventually(|| names_in(&server.root).is_empty());
    assert!(settled, "{:?}", names_in(&server.root));
}

// ---- session policies wired into the example server ----

/// A client that never logs in is closed at `--login-timeout`, however often it sends `NOOP`.
#[test]
fn noop_does_not_keep_an_unauthenticated_session_open() {
    let server = ServerProcess::start(&["--login-timeout", "1"]);
    let mut control = Control::connect(server.addr);
    control.expect_reply(220);
    let deadline = Instant::now() + support::TIMEOUT;
    loop {
        control.send("NOOP");
        let reply = control.reply();
        if reply.code == 421 {
            assert!(reply.text().contains("Login timeout"), "{}", reply.text());
            break;
        }
        assert_eq!(reply.code, 200, "{}", reply.text());
        assert!(
            Instant::now() < deadline,
            "NOOPs kept the session open past the login timeout"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(control.is_closed_by_server());
}

/// `--anonymous upload`: new files only; nothing existing can be replaced, appended, deleted or renamed.
#[test]
fn anonymous_upload_only_creates_new_files() {
    let server = ServerProcess::start(&["--anonymous", "upload"]);
    std::fs::write(server.root.join("old.txt"), b"keep me").unwrap();
    let mut control = anonymous(&server);

    let data = control.pasv();
    control.send("STOR new.txt");
    assert_eq!(control.reply().code, 150);
    write_all_and_close(data, b"fresh");
    control.expect_reply(226);
    assert_eq!(
        std::fs::read(server.root.join("new.txt")).unwrap(),
        b"fresh"
    );

    for name in ["old.txt", "new.txt"] {
        let data = control.pasv();
        control.send(&format!("STOR {name}"));
        let reply = control.reply();
        drop(data);
        assert_eq!(reply.code, 550, "STOR over {name}: {}", reply.text());
    }
    for command in [
        "DELE old.txt",
        "RNFR old.txt",
        "MKD d",
        "APPE old.txt",
        "RMD /",
    ] {
        let reply = control.expect(command, 550);
        assert!(
            reply.text().contains("Permission denied"),
            "{command}: {}",
            reply.text()
        );
    }
    assert_eq!(
        std::fs::read(server.root.join("old.txt")).unwrap(),
        b"keep me"
    );
    assert_eq!(
        std::fs::read(server.root.join("new.txt")).unwrap(),
        b"fresh"
    );
}

/// `--allow-fxp` lets named users send `PORT` to another host; anonymous users never may, and
/// `--fxp-user` narrows it to the users named.
#[test]
fn fxp_is_granted_per_user_and_never_to_anonymous() {
    const FOREIGN_PORT: &str = "PORT 127,0,0,2,200,1";
    let server = ServerProcess::start(&["--user", USER_ARG, "--allow-fxp"]);
    let mut user = writer(&server);
    user.expect(FOREIGN_PORT, 200);
    let mut guest = anonymous(&server);
    guest.expect(FOREIGN_PORT, 501);

    let server = ServerProcess::start(&[
        "--user",
        USER_ARG,
        "--user",
        "bob:builder",
        "--fxp-user",
        "bob",
    ]);
    let mut alice = writer(&server);
    alice.expect(FOREIGN_PORT, 501);
    let mut bob = Control::connect(server.addr);
    bob.expect_reply(220);
    bob.login("bob", "builder");
    bob.expect(FOREIGN_PORT, 200);
}

/// MFMT sets times through a handle on the parent, never by opening: through a link inside the root
/// it sets the target's time (as `touch` does) and leaves the link alone; `/` is the root itself.
#[test]
fn mfmt_follows_links_inside_the_root_and_sets_the_root_itself() {
    let server = ServerProcess::start(&["--user", USER_ARG]);
    std::fs::create_dir(server.root.join("sub")).unwrap();
    std::fs::write(server.root.join("sub/inner"), b"x").unwrap();
    std::os::unix::fs::symlink("sub/inner", server.root.join("link")).unwrap();
    let mut ftp = writer(&server);
    let mtime = |p: &str| {
        std::fs::metadata(server.root.join(p))
            .unwrap()
            .modified()
            .unwrap()
    };
    let link_time = std::fs::symlink_metadata(server.root.join("link"))
        .unwrap()
        .modified()
        .unwrap();
    let y2020 = std::time::UNIX_EPOCH + Duration::from_secs(1_577_836_800);

    ftp.expect("MFMT 20200101000000 link", 213);
    assert_eq!(mtime("sub/inner"), y2020);
    let link_after = std::fs::symlink_metadata(server.root.join("link"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(link_after, link_time, "the link itself is untouched");

    ftp.expect("MFMT 20200101000000 /", 213);
    assert_eq!(mtime(""), y2020);
}
