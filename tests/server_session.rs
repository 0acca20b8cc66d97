//! Server session transcripts: bytes in, replies and actions out, against the simulated driver in
//! `sim/`. No sockets, no files, no clock.

mod sim;

use std::time::Duration;

use bytes::Bytes;
use ftp_proto::server::{AnonymousPolicy, Config};
use proptest::prelude::*;
use sim::Sim;

fn codes(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ' && l.as_bytes()[0].is_ascii_digit())
        .map(|l| &l[..3])
        .collect()
}

#[test]
fn greeting_then_anonymous_login() {
    let mut s = Sim::new();
    assert_eq!(s.take_control(), "220 ftp-proto ready\r\n");
    assert_eq!(
        s.cmd("USER anonymous"),
        "331 Anonymous login ok, send your email address as password.\r\n"
    );
    assert_eq!(s.cmd("PASS a@b.c"), "230 Login successful.\r\n");
    assert_eq!(s.cmd("PWD"), "257 \"/\" is the current directory.\r\n");
    assert_eq!(s.cmd("QUIT"), "221 Goodbye.\r\n");
    assert!(s.closed);
}

#[test]
fn commands_before_login_get_530_and_sequence_errors_503() {
    let mut s = Sim::new();
    s.take_control();
    assert!(s.cmd("PWD").starts_with("530 "));
    assert!(s.cmd("RETR x").starts_with("530 "));
    assert!(
        s.cmd("RETR").starts_with("530 "),
        "argument errors of login-only verbs say 530 first"
    );
    assert!(s.cmd("PASS x").starts_with("503 "), "PASS without USER");
    assert!(s.cmd("SYST").starts_with("215 UNIX Type: L8"));
    assert!(s.cmd("FEAT").starts_with("211-"));
    assert!(s.cmd("NOOP").starts_with("200 "));
    assert!(s.cmd("XYZZY").starts_with("500 "));
}

#[test]
fn wrong_password_is_delayed_then_three_strikes_close() {
    let mut s = Sim::new();
    s.take_control();
    for attempt in 1..=3 {
        assert!(s.cmd("USER alice").starts_with("331"));
        assert_eq!(s.cmd("PASS wrong"), "", "the 530 waits for the delay");
        // Commands sent during the delay wait their turn.
        s.input(b"NOOP\r\n");
        assert_eq!(s.take_control(), "");
        s.advance(Duration::from_millis(999));
        assert_eq!(s.take_control(), "");
        s.advance(Duration::from_millis(1));
        let out = s.take_control();
        if attempt < 3 {
            assert_eq!(codes(&out), ["530", "200"], "{out}");
        } else {
            assert_eq!(codes(&out), ["530", "421"], "{out}");
            assert!(s.closed);
        }
    }
}

#[test]
fn authenticated_writer_and_anonymous_policies() {
    let mut s = Sim::new();
    s.login_writer();
    assert!(s.cmd("MKD new").starts_with("257 \"/new\" created."));

    let mut config = Config::default();
    config.anonymous = AnonymousPolicy::Disabled;
    let mut s = Sim::with_config(config);
    s.take_control();
    assert!(s.cmd("USER ftp").starts_with("530 "));

    let mut s = Sim::new();
    s.login_anonymous();
    for line in [
        "STOR x",
        "APPE x",
        "STOU",
        "DELE /pub/readme.txt",
        "MKD d",
        "RMD /pub",
        "RNFR /pub",
        "MFMT 20240101000000 /pub/data.bin",
    ] {
        assert!(s.cmd(line).starts_with("550 Permission denied."), "{line}");
    }
    assert!(s.file("/pub/readme.txt").is_some());
}

#[test]
fn directories_and_paths_never_climb_above_root() {
    let mut s = Sim::new();
    s.login_anonymous();
    assert!(s.cmd("CWD pub").starts_with("250 "));
    assert_eq!(s.cmd("PWD"), "257 \"/pub\" is the current directory.\r\n");
    assert!(s.cmd("CWD readme.txt").starts_with("550 "));
    assert!(s.cmd("CWD ../../../..").starts_with("250 "));
    assert_eq!(s.cmd("XPWD"), "257 \"/\" is the current directory.\r\n");
    assert!(s.cmd("CWD /nonexistent").starts_with("550 "));
    assert!(s.cmd("CWD pub").starts_with("250 "));
    assert!(s.cmd("CDUP").starts_with("250 "));
    assert_eq!(s.cmd("PWD"), "257 \"/\" is the current directory.\r\n");
    assert!(
        s.cmd("SIZE ../../pub/data.bin")
            .starts_with("550 SIZE not allowed in ASCII mode")
    );
    s.cmd("TYPE I");
    assert_eq!(s.cmd("SIZE ../../pub/data.bin"), "213 256\r\n");
    assert_eq!(s.cmd("MDTM /pub/data.bin"), "213 20240102130405\r\n");
    assert!(s.cmd("SIZE /pub").starts_with("550 "));
}

#[test]
fn file_management_as_writer() {
    let mut s = Sim::new();
    s.login_writer();
    assert!(
        s.cmd("MKD /upload/dir")
            .starts_with("257 \"/upload/dir\" created.")
    );
    assert!(s.cmd("MKD /upload/dir").starts_with("550 "));
    assert!(s.cmd("RNTO x").starts_with("503 "), "RNTO without RNFR");
    assert!(s.cmd("RNFR /upload/dir").starts_with("350 "));
    assert!(s.cmd("RNTO /upload/renamed").starts_with("250 "));
    assert!(s.fs.contains_key(&b"/upload/renamed"[..]));
    assert!(s.cmd("RNFR /upload/renamed").starts_with("350 "));
    s.cmd("NOOP");
    assert!(
        s.cmd("RNTO /upload/x").starts_with("503 "),
        "RNFR is forgotten after another command"
    );
    assert!(s.cmd("RMD /pub").starts_with("550 Directory not empty."));
    assert!(s.cmd("RMD /upload/renamed").starts_with("250 "));
    assert!(s.cmd("DELE /pub/readme.txt").starts_with("250 "));
    assert!(
        s.cmd("DELE /pub/readme.txt")
            .starts_with("550 No such file")
    );
    assert_eq!(
        s.cmd("MFMT 20200101000000 /pub/data.bin"),
        "213 Modify=20200101000000; /pub/data.bin\r\n"
    );
}

#[test]
fn passive_retrieve_binary_and_ascii() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("TYPE I");
    assert_eq!(
        s.cmd("PASV"),
        "227 Entering Passive Mode (127,0,0,1,156,64).\r\n"
    );
    let out = s.cmd("RETR /pub/data.bin");
    assert_eq!(
        out,
        "150 Opening BINARY mode data connection for /pub/data.bin (256 bytes).\r\n226 Transfer complete.\r\n"
    );
    assert_eq!(s.take_data(), (0..=255u8).collect::<Vec<_>>());
    assert_eq!(s.data_closes, [false]);
    assert_eq!(
        s.listener_closes,
        [false],
        "the listener goes with the transfer"
    );
    assert!(s.listeners.is_empty() && s.connections.is_empty());

    s.cmd("TYPE A");
    assert_eq!(
        s.cmd("EPSV"),
        "229 Entering Extended Passive Mode (|||40000|)\r\n"
    );
    assert_eq!(codes(&s.cmd("RETR /pub/readme.txt")), ["150", "226"]);
    assert_eq!(s.take_data(), b"line one\r\nline two\r\n");
}

#[test]
fn transfer_without_data_channel_gets_425_and_channel_is_single_use() {
    let mut s = Sim::new();
    s.login_anonymous();
    assert!(s.cmd("RETR /pub/data.bin").starts_with("425 "));
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("RETR /pub/data.bin")), ["150", "226"]);
    assert!(s.cmd("RETR /pub/data.bin").starts_with("425 "));
}

#[test]
fn missing_file_is_550_without_touching_the_data_connection() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    assert_eq!(s.cmd("RETR /nope"), "550 No such file or directory.\r\n");
    assert_eq!(s.listener_closes, [true], "the unused listener is closed");
    assert!(s.data_closes.is_empty(), "no data connection was made");
    assert!(s.listeners.is_empty());
}

#[test]
fn restart_applies_to_the_next_transfer_only() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("TYPE I");
    assert!(s.cmd("REST 250").starts_with("350 Restarting at 250."));
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("RETR /pub/data.bin")), ["150", "226"]);
    assert_eq!(s.take_data(), (250..=255u8).collect::<Vec<_>>());
    s.cmd("PASV");
    s.cmd("RETR /pub/data.bin");
    assert_eq!(s.take_data().len(), 256);
}

#[test]
fn active_mode_checks_the_address() {
    let mut s = Sim::new();
    s.login_anonymous();
    assert!(
        s.cmd("PORT 10,0,0,1,200,1").starts_with("501 "),
        "foreign address"
    );
    assert!(
        s.cmd("PORT 127,0,0,1,0,21").starts_with("501 "),
        "privileged port"
    );
    assert!(s.cmd("PORT 300,0,0,1,0,21").starts_with("501 "));
    assert!(
        s.cmd("EPRT |2|::1|5000|").starts_with("522 "),
        "wrong family"
    );
    assert!(s.cmd("EPRT |3|::1|5000|").starts_with("522 "));
    assert!(s.cmd("PORT 127,0,0,1,200,1").starts_with("200 "));
    assert_eq!(codes(&s.cmd("LIST /pub")), ["150", "226"]);
    assert_eq!(s.connected_to, Some("127.0.0.1:51201".parse().unwrap()));
    assert!(s.cmd("EPRT |1|127.0.0.1|5000|").starts_with("200 "));
    assert!(s.cmd("EPSV ALL").starts_with("200 "));
    assert!(s.cmd("PORT 127,0,0,1,200,1").starts_with("503 "));
    assert!(s.cmd("PASV").starts_with("503 "));
    assert!(s.cmd("EPSV").starts_with("229 "));
}

#[test]
fn passive_connection_from_a_foreign_address_is_refused() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.data_peer = "10.9.9.9:4000".parse().unwrap();
    s.cmd("PASV");
    let out = s.cmd("RETR /pub/data.bin");
    assert!(out.starts_with("425 "), "{out}");
    assert!(s.take_data().is_empty());
    assert!(s.cmd("NOOP").starts_with("200"), "the session goes on");
}

#[test]
fn listings() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    assert_eq!(
        s.cmd("LIST -la /pub"),
        "150 Here comes the directory listing.\r\n226 Directory send OK.\r\n"
    );
    let body = String::from_utf8(s.take_data()).unwrap();
    assert_eq!(
        body,
        "-rw-r--r--   1 ftp      ftp           256 Jan 02 13:04 data.bin\r\n\
         -rw-r--r--   1 ftp      ftp            18 Jan 02 13:04 readme.txt\r\n"
    );
    s.cmd("PASV");
    s.cmd("NLST /pub");
    assert_eq!(s.take_data(), b"/pub/data.bin\r\n/pub/readme.txt\r\n");
    s.cmd("CWD /pub");
    s.cmd("PASV");
    s.cmd("NLST");
    assert_eq!(s.take_data(), b"data.bin\r\nreadme.txt\r\n");
    s.cmd("PASV");
    s.cmd("NLST readme.txt");
    assert_eq!(s.take_data(), b"readme.txt\r\n");
    s.cmd("CWD /");
    s.cmd("PASV");
    s.cmd("NLST pub/");
    assert_eq!(s.take_data(), b"pub/data.bin\r\npub/readme.txt\r\n");
    s.cmd("PASV");
    s.cmd("MLSD /");
    let body = String::from_utf8(s.take_data()).unwrap();
    assert!(
        body.contains("type=dir;modify=20240102130405;perm=el; pub\r\n"),
        "{body}"
    );
    s.cmd("PASV");
    s.cmd("LIST /pub/readme.txt");
    assert!(
        String::from_utf8(s.take_data())
            .unwrap()
            .ends_with(" readme.txt\r\n")
    );
    let out = s.cmd("MLST /pub/data.bin");
    assert_eq!(
        out,
        "250-Listing /pub/data.bin\r\n type=file;size=256;modify=20240102130405;perm=r; /pub/data.bin\r\n250 End\r\n"
    );
    let out = s.cmd("STAT /pub");
    assert!(
        out.starts_with("213-Status of /pub:\r\n-rw-r--r--"),
        "{out}"
    );
    assert!(out.ends_with("213 End of status.\r\n"));
}

#[test]
fn store_append_resume_and_unique() {
    let mut s = Sim::new();
    s.login_writer();
    s.cmd("TYPE I");
    s.upload = [Bytes::from_static(b"hello "), Bytes::from_static(b"world")].into();
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("STOR /upload/f")), ["150", "226"]);
    assert_eq!(s.file("/upload/f"), Some(&b"hello world"[..]));

    s.upload = [Bytes::from_static(b"!")].into();
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("APPE /upload/f")), ["150", "226"]);
    assert_eq!(s.file("/upload/f"), Some(&b"hello world!"[..]));

    s.upload = [Bytes::from_static(b"W0rld?")].into();
    s.cmd("REST 6");
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("STOR /upload/f")), ["150", "226"]);
    assert_eq!(s.file("/upload/f"), Some(&b"hello W0rld?"[..]));

    s.cmd("REST 1000");
    s.cmd("PASV");
    assert!(
        s.cmd("STOR /upload/f")
            .starts_with("550 Invalid restart offset")
    );

    s.upload = [Bytes::from_static(b"u")].into();
    s.cmd("PASV");
    let out = s.cmd("STOU /upload/f");
    assert_eq!(out, "150 FILE: f.1\r\n226 Transfer complete.\r\n");
    assert_eq!(s.file("/upload/f.1"), Some(&b"u"[..]));
}

#[test]
fn ascii_upload_converts_crlf_across_chunks() {
    let mut s = Sim::new();
    s.login_writer();
    s.upload = [Bytes::from_static(b"a\r"), Bytes::from_static(b"\nb\r\n")].into();
    s.cmd("TYPE A");
    s.cmd("PASV");
    s.cmd("STOR /upload/t.txt");
    assert_eq!(s.file("/upload/t.txt"), Some(&b"a\nb\n"[..]));
}

#[test]
fn ascii_upload_of_lone_carriage_returns_keeps_the_window_full() {
    let mut config = Config::default();
    config.transfer_window = 1;
    let mut s = Sim::with_config(config);
    s.login_writer();
    // Each "\r" chunk converts to nothing until the next byte arrives; the transfer must keep reading.
    s.upload = ["\r", "\r", "\r", "\n", "x", "\r"]
        .map(|c| Bytes::from_static(c.as_bytes()))
        .into();
    s.cmd("TYPE A");
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("STOR /upload/cr.txt")), ["150", "226"]);
    assert_eq!(s.file("/upload/cr.txt"), Some(&b"\r\r\nx\r"[..]));
}

#[test]
fn abort_during_a_transfer_sends_426_then_226() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("TYPE I");
    s.cmd("PASV");
    s.stall = true;
    assert!(s.cmd("RETR /pub/data.bin").starts_with("150 "));
    assert_eq!(
        s.cmd("STAT"),
        "213 Status: RETR /pub/data.bin: 0 bytes transferred.\r\n"
    );
    // Telnet IP and DM before ABOR, as RFC 959 asks clients to send it.
    s.input(b"\xff\xf4\xff\xf2ABOR\r\n");
    assert_eq!(
        s.take_control(),
        "426 Connection closed; transfer aborted.\r\n226 Abort successful.\r\n"
    );
    assert_eq!(s.data_closes.last(), Some(&true));
    s.release(); // late answers to the aborted reads are ignored
    assert_eq!(s.take_control(), "");
    assert!(s.cmd("ABOR").starts_with("226 "), "ABOR with no transfer");
}

#[test]
fn commands_sent_during_a_transfer_wait_and_quit_comes_after_its_reply() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    s.stall = true;
    s.cmd("RETR /pub/data.bin");
    s.input(b"PWD\r\nQUIT\r\n");
    assert_eq!(
        s.take_control(),
        "",
        "PWD waits for the transfer; so does QUIT behind it"
    );
    s.release();
    let out = s.take_control();
    assert_eq!(codes(&out), ["226", "257", "221"], "{out}");
    assert!(s.closed);
}

#[test]
fn quit_during_a_transfer_answers_after_the_transfer() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    s.stall = true;
    s.cmd("RETR /pub/data.bin");
    assert_eq!(s.cmd("QUIT"), "");
    s.release();
    assert_eq!(codes(&s.take_control()), ["226", "221"]);
    assert!(s.closed);
}

/// Regression: `QUIT` then `ABOR` during a transfer left the 221 owed until some later transfer ended;
/// the abort ends the transfer, so the quit is answered right after the abort's replies.
#[test]
fn quit_then_abor_during_a_transfer_answers_the_quit_after_the_abort() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    s.stall = true;
    s.cmd("RETR /pub/data.bin");
    assert_eq!(s.cmd("QUIT"), "");
    assert_eq!(codes(&s.cmd("ABOR")), ["426", "226", "221"]);
    assert!(s.closed);
}

#[test]
fn data_connection_timeout_gives_425_and_the_session_goes_on() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    s.stall_accept = true;
    assert_eq!(s.cmd("RETR /pub/data.bin"), "");
    s.advance(Duration::from_secs(59));
    assert_eq!(s.take_control(), "");
    s.advance(Duration::from_secs(1));
    assert!(s.take_control().starts_with("425 "));
    s.stall_accept = false;
    s.stalled.clear();
    assert!(s.cmd("NOOP").starts_with("200 "));
}

#[test]
fn idle_timeout_closes_with_421_and_a_trickled_line_does_not_reset_it() {
    let mut s = Sim::new();
    s.login_anonymous();
    for _ in 0..299 {
        s.input(b"N");
        s.advance(Duration::from_secs(1));
    }
    assert!(!s.closed);
    s.advance(Duration::from_secs(1));
    assert!(s.take_control().starts_with("421 "));
    assert!(s.closed);
}

#[test]
fn a_transfer_longer_than_the_idle_timeout_does_not_end_the_session() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    s.stall = true;
    assert!(s.cmd("RETR /pub/data.bin").starts_with("150 "));
    // Two chunks every 30 s: the data timeout never fires, and the whole transfer takes 960 s.
    let mut out = String::new();
    for _ in 0..40 {
        s.advance(std::time::Duration::from_secs(30));
        s.release_stalled();
        out.push_str(&s.take_control());
    }
    assert_eq!(out, "226 Transfer complete.\r\n");
    assert!(!s.closed);
    assert_eq!(s.cmd("NOOP"), "200 NOOP ok.\r\n");
}

#[test]
fn framing_errors_are_answered_in_order_and_the_session_goes_on() {
    let mut s = Sim::new();
    s.login_anonymous();
    let mut input = b"NOOP\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'A', 10_000));
    input.extend_from_slice(b"\r\nPWD\r\n\r\nNOOP\n");
    s.input(&input);
    let out = s.take_control();
    assert_eq!(codes(&out), ["200", "500", "257", "200"], "{out}");
    // A Telnet DO gets a WONT, RFC 1123 §4.1.2.12.
    s.input(b"\xff\xfd\x01NOOP\r\n");
    assert_eq!(s.take_control_bytes(), b"\xff\xfc\x01200 NOOP ok.\r\n");
}

#[test]
fn flooding_pipelined_commands_is_bounded() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    s.stall = true;
    s.cmd("RETR /pub/data.bin");
    let flood = b"PWD\r\n".repeat(30_000);
    s.input(&flood);
    let out = s.take_control();
    assert!(out.contains("421 "), "{out}");
    assert!(s.closed);
}

#[test]
fn rein_resets_login() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("CWD pub");
    assert!(s.cmd("REIN").starts_with("220 "));
    assert!(s.cmd("PWD").starts_with("530 "));
    s.login_anonymous();
    assert_eq!(s.cmd("PWD"), "257 \"/\" is the current directory.\r\n");
}

#[test]
fn informational_commands() {
    let mut s = Sim::new();
    s.login_anonymous();
    // The whole reply, byte for byte: the lines come from the verb table, sorted.
    assert_eq!(
        s.cmd("FEAT"),
        "211-Features:\r\n EPRT\r\n EPSV\r\n HOST\r\n MDTM\r\n MFMT\r\n \
         MLST type*;size*;modify*;perm*;unique*;UNIX.mode;\r\n PASV\r\n REST STREAM\r\n SIZE\r\n \
         TVFS\r\n UTF8\r\n211 End\r\n"
    );
    assert!(s.cmd("OPTS UTF8 ON").starts_with("200 "));
    assert_eq!(
        s.cmd("OPTS MLST type;size;"),
        "200 MLST OPTS type;size;\r\n"
    );
    assert!(
        s.cmd("FEAT")
            .contains(" MLST type*;size*;modify;perm;unique;UNIX.mode;\r\n")
    );
    assert!(s.cmd("OPTS FOO").starts_with("501 "));
    assert!(s.cmd("HELP").starts_with("214-"));
    assert!(
        s.cmd("HELP RETR")
            .starts_with("214 Syntax: RETR <SP> <pathname>")
    );
    // Aliases and case name the canonical verb.
    assert!(
        s.cmd("HELP xmkd")
            .starts_with("214 Syntax: MKD <SP> <pathname>")
    );
    assert!(s.cmd("STAT").starts_with("211-"));
    assert!(s.cmd("SITE CHMOD 777 x").starts_with("500 "));
    assert!(s.cmd("TYPE E").starts_with("504 "));
    assert!(s.cmd("MODE B").starts_with("504 "));
    assert!(s.cmd("STRU R").starts_with("504 "));
    assert!(s.cmd("ALLO 100").starts_with("202 "));
    assert!(s.cmd("PROT P").starts_with("503 "));
    assert!(
        s.cmd("HOST example.com").starts_with("503 "),
        "HOST after login"
    );
}

/// The control replies for a whole session, fed in the given chunks.
fn transcript(chunks: &[&[u8]]) -> String {
    let mut s = Sim::new();
    s.chunk_size = 7;
    for chunk in chunks {
        s.input(chunk);
    }
    let mut out = s.take_control();
    out.push_str(&String::from_utf8_lossy(&s.take_data()));
    out
}

const SCRIPT: &[u8] = b"USER anonymous\r\nPASS x\r\nTYPE I\r\nCWD pub\r\nPASV\r\nRETR data.bin\r\n\
EPSV\r\nLIST\r\nTYPE A\r\nPASV\r\nRETR readme.txt\r\nSIZE data.bin\r\nBOGUS\r\n\xff\xff\r\nQUIT\r\n";

proptest! {
    /// Chunking never matters: the same bytes split anywhere give the same replies and data.
    #[test]
    fn chunking_never_matters(cuts in proptest::collection::vec(0..SCRIPT.len(), 0..20)) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts {
            chunks.push(&SCRIPT[start..cut]);
            start = cut;
        }
        chunks.push(&SCRIPT[start..]);
        prop_assert_eq!(transcript(&chunks), transcript(&[SCRIPT]));
    }

    /// Arbitrary bytes never panic the session, and it keeps answering or closes with 421.
    #[test]
    fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut s = Sim::new();
        s.input(b"USER anonymous\r\nPASS x\r\n");
        s.input(&input);
        // Whatever state the input left the framer in (mid-line, inside a Telnet subnegotiation, ...), an
        // overlong line resynchronises it, and a login delay it caused runs out.
        s.input(b"\r\n");
        s.input(&[b'x'; 5000]);
        s.input(b"\r\n");
        s.advance(Duration::from_secs(2));
        s.input(b"NOOP\r\n");
        let out = s.take_control();
        prop_assert!(s.closed || out.ends_with("200 NOOP ok.\r\n"), "{}", out);
    }
}

#[test]
fn byte_at_a_time_equals_whole() {
    let whole = transcript(&[SCRIPT]);
    let bytes: Vec<&[u8]> = SCRIPT.chunks(1).collect();
    assert_eq!(transcript(&bytes), whole);
    assert!(whole.contains("221 Goodbye."));
}

// ---- regressions from the code review ----

#[test]
fn user_keeps_transfer_parameters_but_rein_resets_them() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("TYPE I");
    s.cmd("EPSV ALL");
    s.login_anonymous(); // USER again: RFC 959 §4.1.1 keeps transfer parameters
    assert!(s.cmd("STAT").contains("TYPE: BINARY"));
    assert!(s.cmd("PASV").starts_with("503 "), "EPSV ALL survives USER");
    assert!(s.cmd("REIN").starts_with("220 "));
    s.login_anonymous();
    assert!(s.cmd("STAT").contains("TYPE: ASCII"));
    assert!(s.cmd("PASV").starts_with("227 "), "REIN forgets EPSV ALL");
}

#[test]
fn a_bad_line_between_rnfr_and_rnto_forgets_the_rename() {
    let mut s = Sim::new();
    s.login_writer();
    assert!(s.cmd("RNFR /pub/data.bin").starts_with("350 "));
    assert!(s.cmd("R3TR x").starts_with("500 "));
    assert!(s.cmd("RNTO /pub/moved.bin").starts_with("503 "));
    assert!(s.file("/pub/data.bin").is_some());
}

#[test]
fn pasv_accepts_an_ipv4_mapped_listener_address() {
    use ftp_proto::data::{DataAction, DataCompletion};
    use ftp_proto::server::{Action, Completion};
    let mut s = Sim::new();
    s.login_anonymous();
    s.session.handle_control_input(s.now, b"PASV\r\n");
    let mut replies = Vec::new();
    while let Some(action) = s.session.poll_action() {
        match action {
            Action::Data(DataAction::Listen { id, .. }) => {
                let mapped = "[::ffff:127.0.0.1]:40000".parse().unwrap();
                let listening = Completion::Data(DataCompletion::Listening(mapped));
                s.session
                    .handle_completion(s.now, id, listening)
                    .expect("the answer fits");
            }
            Action::SendControl(bytes) => replies.extend_from_slice(&bytes),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        replies,
        b"227 Entering Passive Mode (127,0,0,1,156,64).\r\n"
    );
}

#[test]
fn a_file_opened_after_abor_is_closed() {
    use ftp_proto::data::LocalAction;
    use ftp_proto::path::VirtualPath;
    use ftp_proto::server::{Action, Completion, StorageRequest};
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    s.session
        .handle_control_input(s.now, b"RETR /pub/data.bin\r\n");
    let open_id = match s.session.poll_action() {
        Some(Action::Storage {
            id,
            request: StorageRequest::OpenRead { .. },
        }) => id,
        other => panic!("expected OpenRead, got {other:?}"),
    };
    s.input(b"ABOR\r\n");
    assert!(s.take_control().contains("226 "));
    // The driver finishes opening the file only now.
    let path = VirtualPath::root().join(b"x").unwrap();
    let opened = Completion::FileOpened {
        size: Some(1),
        path,
    };
    s.session
        .handle_completion(s.now, open_id, opened)
        .expect("the answer fits");
    assert_eq!(
        s.session.poll_action(),
        Some(Action::Local(LocalAction::Close {
            id: open_id,
            aborted: true
        }))
    );
}

#[test]
fn abor_after_an_upload_is_complete_waits_for_its_226() {
    use ftp_proto::data::DataCompletion;
    let mut s = Sim::new();
    s.login_writer();
    s.upload = [Bytes::from_static(b"data")].into();
    s.hold_upload_close = true;
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("STOR /upload/f")), ["150"]);
    let close_id = s
        .held_upload_close
        .take()
        .expect("the upload reached its LocalAction::Close");
    s.input(b"ABOR\r\n");
    assert_eq!(
        s.take_control(),
        "",
        "ABOR waits while the upload is being stored"
    );
    s.session
        .handle_completion(s.now, close_id, DataCompletion::Written.into())
        .expect("the answer fits");
    s.run();
    assert_eq!(codes(&s.take_control()), ["226", "226"]);
    assert_eq!(
        s.data_closes,
        [false],
        "the data connection was closed once, cleanly"
    );
}

#[test]
fn huge_timeouts_mean_never_rather_than_a_panic() {
    let mut config = Config::default();
    config.idle_timeout = Duration::MAX;
    config.data_timeout = Duration::MAX;
    config.failed_login_delay = Duration::MAX;
    config.login_timeout = Duration::MAX;
    let mut s = Sim::with_config(config);
    assert_eq!(s.session.poll_timeout(), None, "no login deadline either");
    s.login_anonymous();
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("RETR /pub/data.bin")), ["150", "226"]);
    assert_eq!(s.session.poll_timeout(), None);
    s.cmd("USER alice");
    assert_eq!(s.cmd("PASS wrong"), "", "the 530 waits for ever");
}

#[test]
fn undrained_events_are_bounded() {
    let mut s = Sim::new();
    s.login_anonymous();
    for _ in 0..5_000 {
        s.session.handle_control_input(s.now, b"NOOP\r\n");
        while s.session.poll_action().is_some() {}
    }
    let mut kept = 0;
    while s.session.poll_event().is_some() {
        kept += 1;
    }
    assert_eq!(kept, Config::default().max_queued_events);
    assert!(s.session.events_dropped() > 3_900);
}

#[test]
fn user_names_are_passed_on_as_bytes() {
    use ftp_proto::server::Action;
    let mut s = Sim::new();
    s.take_control();
    // "\xff\xff" is Telnet's escaped 0xFF: the name is the two bytes FF C3, which are not UTF-8.
    s.session
        .handle_control_input(s.now, b"USER \xff\xff\xc3\r\nPASS x\r\n");
    let mut user = None;
    while let Some(action) = s.session.poll_action() {
        if let Action::Authenticate { user: u, .. } = action {
            user = Some(u.as_bytes().to_vec());
        }
    }
    assert_eq!(user.as_deref(), Some(&b"\xff\xc3"[..]));
}

// ---- the example server made safe: login deadline, upload-only access, per-user FXP, log hygiene ----

#[test]
fn login_timeout_fires_at_the_deadline_even_with_noops() {
    let mut s = Sim::new();
    let start = s.now;
    s.take_control();
    assert_eq!(
        s.session.poll_timeout(),
        Some(start + Duration::from_secs(60))
    );
    // A NOOP every 5 s keeps the idle timer away, but not the login deadline.
    for _ in 0..11 {
        assert_eq!(s.cmd("NOOP"), "200 NOOP ok.\r\n");
        s.advance(Duration::from_secs(5));
    }
    assert_eq!(s.cmd("NOOP"), "200 NOOP ok.\r\n");
    s.advance(Duration::from_secs(4));
    assert!(!s.closed);
    assert_eq!(s.take_control(), "");
    s.advance(Duration::from_secs(1));
    assert_eq!(
        s.take_control(),
        "421 Login timeout: closing control connection.\r\n"
    );
    assert!(s.closed);
    assert_eq!(s.session.poll_timeout(), None);
}

#[test]
fn login_timeout_runs_during_a_password_check_and_a_failed_login_delay() {
    use ftp_proto::server::{Access, Action, Completion};
    // The driver never answers Authenticate.
    let mut s = Sim::new();
    let start = s.now;
    s.take_control();
    s.session
        .handle_control_input(start, b"USER bob\r\nPASS pw\r\n");
    let mut auth = None;
    while let Some(action) = s.session.poll_action() {
        if let Action::Authenticate { id, .. } = action {
            auth = Some(id);
        }
    }
    let auth = auth.expect("Authenticate");
    let deadline = start + Duration::from_secs(60);
    assert_eq!(s.session.poll_timeout(), Some(deadline));
    s.session.handle_timeout(deadline);
    let mut out = Vec::new();
    while let Some(action) = s.session.poll_action() {
        out.push(action);
    }
    assert_eq!(
        out,
        [
            Action::SendControl(Bytes::from_static(
                b"421 Login timeout: closing control connection.\r\n"
            )),
            Action::CloseControl
        ]
    );
    // A late answer finds a closed session.
    s.session
        .handle_completion(deadline, auth, Completion::LoggedIn(Access::ReadWrite))
        .expect("the answer fits");
    assert_eq!(s.session.poll_action(), None);
    assert_eq!(s.session.user(), None);

    // A failed login's delay running past the deadline: the 421 comes at the deadline.
    let mut config = Config::default();
    config.failed_login_delay = Duration::from_secs(10);
    let mut s = Sim::with_config(config);
    s.take_control();
    s.advance(Duration::from_secs(55));
    assert!(s.cmd("USER alice").starts_with("331 "));
    assert_eq!(s.cmd("PASS wrong"), "");
    s.advance(Duration::from_secs(4));
    assert_eq!(s.take_control(), "");
    s.advance(Duration::from_secs(1));
    assert_eq!(
        s.take_control(),
        "421 Login timeout: closing control connection.\r\n"
    );
    assert!(s.closed);
}

#[test]
fn login_timeout_beats_input_handed_over_late() {
    // A driver that passes on a USER/PASS which arrived after the deadline before calling
    // handle_timeout must not get a login out of it.
    let mut s = Sim::new();
    s.take_control();
    s.now += Duration::from_secs(61);
    let out = s.cmd("USER anonymous");
    assert_eq!(out, "421 Login timeout: closing control connection.\r\n");
    assert!(s.closed);

    // Nor does a password check answered late.
    use ftp_proto::server::{Access, Action, Completion};
    let mut s = Sim::new();
    let start = s.now;
    s.take_control();
    s.session
        .handle_control_input(start, b"USER bob\r\nPASS pw\r\n");
    let mut auth = None;
    while let Some(action) = s.session.poll_action() {
        if let Action::Authenticate { id, .. } = action {
            auth = Some(id);
        }
    }
    let late = start + Duration::from_secs(61);
    s.session
        .handle_completion(
            late,
            auth.expect("Authenticate"),
            Completion::LoggedIn(Access::ReadWrite),
        )
        .expect("the answer fits");
    s.run();
    assert_eq!(
        s.take_control(),
        "421 Login timeout: closing control connection.\r\n"
    );
    assert!(s.closed);
    assert_eq!(s.session.user(), None);
}

#[test]
fn login_timeout_is_not_armed_after_login() {
    let mut s = Sim::new();
    s.advance(Duration::from_secs(59));
    s.login_anonymous();
    assert_eq!(
        s.session.poll_timeout(),
        Some(s.now + Duration::from_secs(300)),
        "only the idle timer runs"
    );
    s.advance(Duration::from_secs(200));
    assert!(!s.closed);
    assert_eq!(s.cmd("NOOP"), "200 NOOP ok.\r\n");
    s.advance(Duration::from_secs(200));
    assert!(!s.closed);
    assert_eq!(s.cmd("PWD"), "257 \"/\" is the current directory.\r\n");
}

#[test]
fn rein_and_user_restart_the_login_timeout_but_only_after_a_login() {
    // REIN logs out: the deadline counts again from the REIN.
    let mut s = Sim::new();
    s.login_anonymous();
    s.advance(Duration::from_secs(100));
    assert!(s.cmd("REIN").starts_with("220 "));
    s.advance(Duration::from_secs(59));
    assert!(!s.closed);
    s.advance(Duration::from_secs(1));
    assert!(s.take_control().starts_with("421 Login timeout"));
    assert!(s.closed);

    // USER while logged in logs out too.
    let mut s = Sim::new();
    s.login_anonymous();
    s.advance(Duration::from_secs(100));
    assert!(s.cmd("USER bob").starts_with("331 "));
    s.advance(Duration::from_secs(59));
    assert!(!s.closed);
    s.advance(Duration::from_secs(1));
    assert!(s.take_control().starts_with("421 Login timeout"));

    // Before any login, REIN and USER do not postpone the deadline.
    let mut s = Sim::new();
    s.take_control();
    s.advance(Duration::from_secs(30));
    assert!(s.cmd("REIN").starts_with("220 "));
    s.advance(Duration::from_secs(20));
    assert!(s.cmd("USER bob").starts_with("331 "));
    s.advance(Duration::from_secs(10));
    assert!(s.take_control().starts_with("421 Login timeout"));
    assert!(s.closed);
}

#[test]
fn upload_only_creates_new_files_and_changes_nothing() {
    use ftp_proto::path::VirtualPath;
    use ftp_proto::server::{Access, StorageRequest, WriteMode};
    let mut config = Config::default();
    config.anonymous = AnonymousPolicy::UploadOnly;
    let mut s = Sim::with_config(config);
    s.login_anonymous();
    assert_eq!(
        s.session.grant().map(|g| g.access),
        Some(Access::UploadOnly)
    );
    s.cmd("TYPE I");

    s.upload = [Bytes::from_static(b"new")].into();
    s.cmd("PASV");
    s.storage_requests.clear();
    assert_eq!(codes(&s.cmd("STOR /upload/new")), ["150", "226"]);
    assert_eq!(
        s.storage_requests,
        [StorageRequest::OpenWrite {
            path: VirtualPath::root()
                .join(b"upload")
                .and_then(|p| p.join(b"new"))
                .unwrap(),
            mode: WriteMode::CreateNew,
        }]
    );
    assert_eq!(s.file("/upload/new"), Some(&b"new"[..]));

    // The driver refuses to replace an existing file.
    s.upload = [Bytes::from_static(b"overwritten")].into();
    s.cmd("PASV");
    assert_eq!(s.cmd("STOR /upload/new"), "550 File exists.\r\n");
    assert_eq!(s.file("/upload/new"), Some(&b"new"[..]));
    assert_eq!(
        s.listener_closes.last(),
        Some(&true),
        "the listener is closed"
    );
    assert!(s.listeners.is_empty());

    // STOU picks a fresh name as before; reading and listing work.
    s.upload = [Bytes::from_static(b"u")].into();
    s.cmd("PASV");
    assert_eq!(
        s.cmd("STOU /upload/new"),
        "150 FILE: new.1\r\n226 Transfer complete.\r\n"
    );
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("RETR /pub/data.bin")), ["150", "226"]);
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("LIST /upload")), ["150", "226"]);

    // Everything that changes what exists is refused before the driver is asked.
    s.cmd("PASV");
    s.storage_requests.clear();
    for line in [
        "APPE /upload/new",
        "DELE /upload/new",
        "RNFR /upload/new",
        "MKD /upload/d",
        "RMD /upload",
        "MFMT 20240101000000 /upload/new",
    ] {
        assert_eq!(s.cmd(line), "550 Permission denied.\r\n", "{line}");
    }
    assert!(s.cmd("REST 1").starts_with("350 "));
    assert_eq!(s.cmd("STOR /upload/new"), "550 Permission denied.\r\n");
    assert!(s.storage_requests.is_empty(), "{:?}", s.storage_requests);
    assert_eq!(s.file("/upload/new"), Some(&b"new"[..]));
    // The refused REST is used up: the next STOR is a plain create again.
    s.upload = [Bytes::from_static(b"x")].into();
    assert_eq!(codes(&s.cmd("STOR /upload/other")), ["150", "226"]);
    assert_eq!(s.file("/upload/other"), Some(&b"x"[..]));
}

#[test]
fn upload_only_for_an_authenticated_user() {
    use ftp_proto::server::{Access, Completion, Grant};
    let mut s = Sim::new();
    s.alice_login = Completion::Granted(Grant::new(Access::UploadOnly));
    s.login_writer();
    s.cmd("PASV");
    assert_eq!(s.cmd("STOR /pub/data.bin"), "550 File exists.\r\n");
    assert_eq!(s.cmd("DELE /pub/data.bin"), "550 Permission denied.\r\n");
    assert_eq!(s.file("/pub/data.bin").map(<[u8]>::len), Some(256));
}

#[test]
fn foreign_data_addresses_need_a_per_user_grant() {
    use ftp_proto::server::{Access, Completion, Grant};
    let fxp = Grant::new(Access::ReadWrite).with_foreign_data_address(true);

    // Granted with the right: PORT elsewhere, and a passive connection from elsewhere.
    let mut s = Sim::new();
    s.alice_login = Completion::Granted(fxp);
    s.login_writer();
    assert_eq!(s.session.grant(), Some(fxp));
    assert!(s.cmd("PORT 10,0,0,1,200,1").starts_with("200 "));
    assert_eq!(codes(&s.cmd("LIST /pub")), ["150", "226"]);
    assert_eq!(s.connected_to, Some("10.0.0.1:51201".parse().unwrap()));
    s.data_peer = "10.9.9.9:4000".parse().unwrap();
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("RETR /pub/data.bin")), ["150", "226"]);

    // Granted without it: refused, even though the config allows FXP for LoggedIn users.
    let mut config = Config::default();
    config.allow_foreign_data_address = true;
    let mut s = Sim::with_config(config.clone());
    s.alice_login = Completion::Granted(Grant::new(Access::ReadWrite));
    s.login_writer();
    assert!(s.cmd("PORT 10,0,0,1,200,1").starts_with("501 "));
    s.data_peer = "10.9.9.9:4000".parse().unwrap();
    s.cmd("PASV");
    assert!(s.cmd("RETR /pub/data.bin").starts_with("425 "));

    // LoggedIn follows the config.
    let mut s = Sim::with_config(config.clone());
    s.login_writer();
    assert!(s.cmd("PORT 10,0,0,1,200,1").starts_with("200 "));

    // Anonymous: never, whatever the config says.
    let mut s = Sim::with_config(config);
    s.login_anonymous();
    assert!(s.cmd("PORT 10,0,0,1,200,1").starts_with("501 "));
    assert!(s.cmd("EPRT |1|10.0.0.1|5000|").starts_with("501 "));
    s.data_peer = "10.9.9.9:4000".parse().unwrap();
    s.cmd("PASV");
    assert!(s.cmd("RETR /pub/data.bin").starts_with("425 "));
    assert!(s.take_data().is_empty());
}

#[test]
fn the_next_user_does_not_inherit_a_foreign_port() {
    use ftp_proto::server::{Access, Completion, Grant};
    let mut s = Sim::new();
    s.alice_login =
        Completion::Granted(Grant::new(Access::ReadWrite).with_foreign_data_address(true));
    s.login_writer();
    assert!(s.cmd("PORT 10,0,0,1,200,1").starts_with("200 "));
    s.login_anonymous(); // USER again: transfer parameters stay, but not a bounce target
    assert!(s.cmd("LIST /pub").starts_with("425 "));
    assert_eq!(s.connected_to, None);
    // The client's own address is kept across USER, as RFC 959 asks.
    s.login_writer();
    assert!(s.cmd("PORT 127,0,0,1,200,1").starts_with("200 "));
    s.login_anonymous();
    assert_eq!(codes(&s.cmd("LIST /pub")), ["150", "226"]);
}

/// The `Event::Command` lines logged for `input`.
fn logged(s: &mut Sim, input: &[u8]) -> Vec<String> {
    use ftp_proto::server::Event;
    s.session.handle_control_input(s.now, input);
    let mut lines = Vec::new();
    while let Some(event) = s.session.poll_event() {
        if let Event::Command(line) = event {
            lines.push(line);
        }
    }
    s.run();
    lines
}

#[test]
fn logged_commands_mask_secrets_and_escape_control_bytes() {
    let mut s = Sim::new();
    s.take_control();
    assert_eq!(logged(&mut s, b"ACCT hunter2\r\n"), ["ACCT ****"]);
    assert_eq!(logged(&mut s, b"acct hunter2\r\n"), ["ACCT ****"]);
    assert_eq!(logged(&mut s, b"AdAt c2VjcmV0\r\n"), ["ADAT ****"]);
    assert_eq!(logged(&mut s, b"pass secret\r\n"), ["PASS ****"]);
    // A CR inside the line is data (the framer keeps it): it must not start a forged log line.
    assert_eq!(
        logged(&mut s, b"NOOP x\r200 user root logged in\r\n"),
        ["NOOP x\\x0d200 user root logged in"]
    );
    assert_eq!(
        logged(&mut s, b"SYST \x1b[2J\x7f\x01\r\n"),
        ["SYST \\x1b[2J\\x7f\\x01"]
    );
    // Invalid UTF-8 stays lossy; a C1 control (here CSI, U+009B) and a Unicode line separator are escaped.
    assert_eq!(
        logged(&mut s, b"CWD \xfe\xc2\x9b2J\xe2\x80\xa8x\r\n"),
        ["CWD \u{fffd}\\u{9b}2J\\u{2028}x"]
    );
    assert_eq!(
        logged(&mut s, b"CWD /pub/caf\xc3\xa9\r\n"),
        ["CWD /pub/caf\u{e9}"]
    );
}

/// A directory `/big` with `n` empty files `f00`, `f01`, ...
fn with_big_directory(s: &mut Sim, n: usize) {
    s.fs.insert(b"/big".to_vec(), sim::Node::Dir);
    for i in 0..n {
        s.fs.insert(
            format!("/big/f{i:02}").into_bytes(),
            sim::Node::File(Bytes::new()),
        );
    }
}

fn names(n: usize) -> String {
    (0..n).map(|i| format!("f{i:02}\r\n")).collect()
}

#[test]
fn a_listing_answered_in_parts_asks_for_each_part_once_and_closes_nothing_at_the_end() {
    let mut s = Sim::new();
    with_big_directory(&mut s, 10);
    s.list_part_size = Some(3);
    s.login_anonymous();
    s.cmd("CWD /big");
    s.cmd("PASV");
    assert_eq!(
        s.cmd("NLST"),
        "150 Here comes the directory listing.\r\n226 Directory send OK.\r\n"
    );
    assert_eq!(String::from_utf8(s.take_data()).unwrap(), names(10));
    // Parts of 3, 3, 3 and 1: the first answers the `List` request, the rest are read.
    assert_eq!(s.entries_reads, 3);
    assert!(s.file_closes.is_empty(), "{:?}", s.file_closes);
    let out = s.cmd("STAT /big");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("-rw")).count(),
        10,
        "{out}"
    );
    assert!(out.ends_with("213 End of status.\r\n"), "{out}");
    assert_eq!(s.entries_reads, 6);
}

#[test]
fn the_listing_bound_counts_over_all_parts_and_lets_go_of_the_rest() {
    let mut config = Config::default();
    config.max_listing_entries = 5;
    let mut s = Sim::with_config(config);
    with_big_directory(&mut s, 10);
    s.list_part_size = Some(3);
    s.list_ignores_limit = true;
    s.login_anonymous();
    s.cmd("PASV");
    assert!(s.cmd("NLST /big").ends_with("226 Directory send OK.\r\n"));
    let listed = String::from_utf8(s.take_data()).unwrap();
    assert_eq!(listed.lines().count(), 5, "{listed}");
    assert_eq!(s.file_closes, [true], "the driver is told to let go");
    let out = s.cmd("STAT /big");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("-rw")).count(),
        5,
        "{out}"
    );
    assert_eq!(s.file_closes, [true, true]);
    assert!(s.cmd("NOOP").starts_with("200"));
}

#[test]
fn abor_during_a_listing_in_parts_lets_go_and_a_late_part_is_closed_too() {
    let mut s = Sim::new();
    with_big_directory(&mut s, 10);
    s.list_part_size = Some(3);
    s.login_anonymous();
    s.cmd("PASV");
    s.stall = true;
    assert!(s.cmd("LIST /big").starts_with("150 "));
    assert!(
        s.stalled
            .iter()
            .any(|a| matches!(a, ftp_proto::server::Action::ReadEntries { .. })),
        "{:?}",
        s.stalled
    );
    assert_eq!(
        s.cmd("ABOR"),
        "426 Connection closed; transfer aborted.\r\n226 Abort successful.\r\n"
    );
    assert_eq!(s.file_closes, [true]);
    s.listing_rest = Some(Default::default()); // the driver still answers the read it was given
    s.fs.remove(b"/big/f09".as_slice());
    s.release();
    assert_eq!(s.take_control(), "");
    assert!(s.cmd("NOOP").starts_with("200"), "the session goes on");
}

proptest! {
    /// How a driver cuts a listing into parts never changes what the client receives (given parts in
    /// name order, as the simulated driver sends them).
    #[test]
    fn listing_parts_never_matter(n in 0usize..40, part in 1usize..12, window in 1usize..4) {
        let mut config = Config::default();
        config.transfer_window = window;
        let mut whole = Sim::with_config(config.clone());
        let mut parted = Sim::with_config(config);
        for s in [&mut whole, &mut parted] {
            with_big_directory(s, n);
            s.login_anonymous();
            s.cmd("PASV");
        }
        parted.list_part_size = Some(part);
        prop_assert_eq!(whole.cmd("LIST /big"), parted.cmd("LIST /big"));
        prop_assert_eq!(whole.take_data(), parted.take_data());
        prop_assert!(parted.file_closes.is_empty());
    }
}

/// The script with a failed login (a pending login delay, so a timer is set while commands queue).
const TIMED_SCRIPT: &[u8] = b"USER alice\r\nPASS wrong\r\nUSER anonymous\r\nPASS x\r\nTYPE I\r\n\
PASV\r\nRETR pub/data.bin\r\nPASV\r\nLIST pub\r\nSTAT pub\r\nNOOP\r\n";

/// Runs `TIMED_SCRIPT` cut at `cuts`; after chunk `i`, `extra[i]` spurious `handle_timeout` calls: at the
/// current time (before every deadline) and, every other one, at a time 10 s in the past.
fn timed_transcript(cuts: &[usize], extra: &[u8]) -> String {
    let mut s = Sim::new();
    s.chunk_size = 5;
    // What the client has seen at each step, so a reply sent early shows.
    let mut out = String::new();
    let mut start = 0;
    for (i, &cut) in cuts
        .iter()
        .chain(std::iter::once(&TIMED_SCRIPT.len()))
        .enumerate()
    {
        s.input(&TIMED_SCRIPT[start..cut]);
        start = cut;
        for k in 0..extra.get(i).copied().unwrap_or(0) {
            let now = if k % 2 == 0 {
                s.now
            } else {
                s.now.checked_sub(Duration::from_secs(10)).unwrap_or(s.now)
            };
            s.session.handle_timeout(now);
            s.run();
        }
        // Time moves on by less than any timer, so only the driver's own calls can fire one.
        s.advance(Duration::from_millis(100));
        out.push_str(&s.take_control());
        out.push_str("--- step\n");
    }
    // The login delay runs out; the queued commands run.
    s.advance(Duration::from_secs(2));
    out.push_str(&s.take_control());
    out.push_str(&String::from_utf8_lossy(&s.take_data()));
    out
}

proptest! {
    /// The driver contract: a spurious `handle_timeout` (early, or with a time from the past) changes
    /// nothing.
    #[test]
    fn spurious_timeouts_are_harmless(
        cuts in proptest::collection::vec(0..TIMED_SCRIPT.len(), 0..8),
        extra in proptest::collection::vec(0u8..4, 0..9),
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let expected = timed_transcript(&cuts, &[]);
        prop_assert!(expected.contains("226 Directory send OK."), "{}", expected);
        prop_assert_eq!(timed_transcript(&cuts, &extra), expected);
    }
}

#[test]
fn every_passive_listener_is_closed_by_its_id() {
    use ftp_proto::data::DataAction;
    use ftp_proto::hostport::NetworkProtocol;
    use ftp_proto::server::Action;
    let mut s = Sim::new();
    s.login_anonymous();
    // A second PASV replaces the first listener, which the session lets go of before binding anew.
    s.cmd("PASV");
    let first = *s.listeners.iter().next().unwrap();
    s.session.handle_control_input(s.now, b"EPSV\r\n");
    let close = s.session.poll_action();
    assert_eq!(
        close,
        Some(Action::Data(DataAction::Close {
            id: first,
            aborted: true
        }))
    );
    s.answer_for_test(close);
    s.run();
    assert_eq!(
        s.take_control(),
        "229 Entering Extended Passive Mode (|||40000|)\r\n"
    );
    assert_eq!(s.listener_closes, [true]);
    assert_eq!(s.listeners.len(), 1);
    assert!(!s.listeners.contains(&first));
    assert_eq!(
        s.listen_families,
        [NetworkProtocol::V4, NetworkProtocol::V4]
    );
    // The transfer accepts from the listener that is open, and closes both when it ends.
    assert_eq!(codes(&s.cmd("RETR /pub/data.bin")), ["150", "226"]);
    assert!(s.listeners.is_empty() && s.connections.is_empty());
    assert_eq!(s.listener_closes, [true, false]);
    assert_eq!(s.data_closes, [false]);

    // PORT, REIN and QUIT let go of an unused listener too.
    s.cmd("PASV");
    assert!(s.cmd("PORT 127,0,0,1,200,1").starts_with("200 "));
    assert!(s.listeners.is_empty());
    s.cmd("PASV");
    assert!(s.cmd("REIN").starts_with("220 "));
    assert!(s.listeners.is_empty());
    s.login_anonymous();
    s.cmd("EPSV");
    assert!(s.cmd("QUIT").starts_with("221 "));
    assert!(s.closed);
    assert!(s.listeners.is_empty());
    assert_eq!(s.listener_closes, [true, false, true, true, true]);
}

#[test]
fn a_data_connection_that_fails_gets_425_before_and_426_during_the_transfer() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.fail_data = true;
    s.cmd("PASV");
    assert_eq!(
        s.cmd("RETR /pub/data.bin"),
        "425 Failed to establish data connection.\r\n"
    );
    assert!(s.listeners.is_empty(), "the listener is closed");
    s.fail_data = false;
    s.fail_sends = true;
    assert!(s.cmd("PORT 127,0,0,1,200,1").starts_with("200 "));
    assert_eq!(
        s.cmd("RETR /pub/data.bin"),
        "150 Opening ASCII mode data connection for /pub/data.bin (256 bytes).\r\n\
         426 Connection closed; transfer aborted.\r\n"
    );
    assert!(s.connections.is_empty(), "the broken connection is closed");
    assert_eq!(s.data_closes, [true]);
    assert_eq!(s.file_closes, [true, true], "both files were closed");
    assert!(s.cmd("NOOP").starts_with("200 "));
}

#[test]
fn abor_while_accepting_closes_the_transfer_and_its_listener_by_id() {
    use ftp_proto::data::{DataAction, DataCompletion};
    use ftp_proto::server::Action;
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    let listener = *s.listeners.iter().next().unwrap();
    s.stall_accept = true;
    s.cmd("RETR /pub/data.bin");
    let transfer = match s.stalled.as_slice() {
        [
            Action::Data(DataAction::Accept {
                id,
                listener: l,
                tls: None,
            }),
        ] if *l == listener => *id,
        other => panic!("expected a stalled accept from {listener:?}, got {other:?}"),
    };
    s.stalled.clear();
    s.session.handle_control_input(s.now, b"ABOR\r\n");
    let closes: Vec<_> = std::iter::from_fn(|| s.session.poll_action())
        .filter_map(|action| match action {
            Action::Data(DataAction::Close { id, aborted }) => Some((id, aborted)),
            _ => None,
        })
        .collect();
    // The accept still in progress is cancelled by the close of its transfer's id.
    assert_eq!(closes, [(transfer, true), (listener, true)]);
    // An accept that completes anyway is not the session's business any more.
    let peer = s.data_peer;
    s.session
        .handle_completion(s.now, transfer, DataCompletion::Connected { peer }.into())
        .expect("the answer fits");
    assert_eq!(s.session.poll_action(), None);
    assert!(s.cmd("NOOP").starts_with("200 "));
}

// ---- which timer runs when (the session's timer table) ----

#[test]
fn the_idle_timer_waits_for_the_driver_and_restarts_from_its_answer() {
    use ftp_proto::server::{Action, Completion, StorageError};
    let mut s = Sim::new();
    s.login_anonymous();
    s.session.handle_control_input(s.now, b"CWD /pub\r\n");
    let id = match s.session.poll_action() {
        Some(Action::Storage { id, .. }) => id,
        other => panic!("expected a storage request, got {other:?}"),
    };
    assert_eq!(
        s.session.poll_timeout(),
        None,
        "no timer while the driver works"
    );
    s.now += Duration::from_secs(1_000);
    s.session.handle_timeout(s.now);
    assert_eq!(
        s.session.poll_action(),
        None,
        "a spurious timeout does nothing"
    );
    s.session
        .handle_completion(s.now, id, Completion::Failed(StorageError::NotFound))
        .expect("the answer fits");
    s.run();
    assert!(s.take_control().starts_with("550 "));
    let idle = Config::default().idle_timeout;
    assert_eq!(s.session.poll_timeout(), Some(s.now + idle));
}

#[test]
fn the_data_timer_runs_during_a_transfer_and_abor_restarts_the_idle_timer() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.cmd("PASV");
    s.stall = true;
    assert!(s.cmd("RETR /pub/data.bin").starts_with("150 "));
    let config = Config::default();
    assert_eq!(s.session.poll_timeout(), Some(s.now + config.data_timeout));
    s.advance(Duration::from_secs(30));
    assert_eq!(codes(&s.cmd("ABOR")), ["426", "226"]);
    assert_eq!(s.session.poll_timeout(), Some(s.now + config.idle_timeout));
}

#[test]
fn an_upload_being_stored_runs_no_timer() {
    let mut s = Sim::new();
    s.login_writer();
    s.upload = [Bytes::from_static(b"data")].into();
    s.hold_upload_close = true;
    s.cmd("PASV");
    assert_eq!(codes(&s.cmd("STOR /upload/f")), ["150"]);
    assert!(s.held_upload_close.is_some());
    assert_eq!(s.session.poll_timeout(), None);
}

#[test]
fn no_timer_runs_once_the_session_is_closed() {
    let mut s = Sim::new();
    assert!(s.session.poll_timeout().is_some());
    s.cmd("QUIT");
    assert!(s.closed);
    assert_eq!(s.session.poll_timeout(), None);
    // Closed by a timer: the login deadline.
    let mut s = Sim::new();
    s.advance(Config::default().login_timeout);
    assert!(s.closed);
    assert_eq!(s.session.poll_timeout(), None);
}

/// A driver that answers with the wrong kind of completion is told so, and the peer sees nothing: the
/// session keeps waiting for an answer that fits (review 0.1 §1.2 #9: a `Written` for an
/// `Authenticate` used to become "530 Login incorrect", a stray `Metadata` for a transfer a 451).
#[test]
fn a_driver_answer_of_the_wrong_kind_is_an_error_for_the_driver_not_a_reply() {
    use ftp_proto::data::DataCompletion;
    use ftp_proto::listing::Metadata;
    use ftp_proto::server::{Access, Action, Completion, StorageRequest};

    let mut s = Sim::new();
    let now = s.now;
    s.take_control();
    s.session
        .handle_control_input(now, b"USER bob\r\nPASS pw\r\n");
    let drain = |s: &mut Sim| std::iter::from_fn(|| s.session.poll_action()).collect::<Vec<_>>();
    let replies = |actions: Vec<Action>| {
        let sent = actions.into_iter().filter_map(|a| match a {
            Action::SendControl(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            _ => None,
        });
        sent.collect::<String>()
    };
    let auth = drain(&mut s).into_iter().find_map(|a| match a {
        Action::Authenticate { id, .. } => Some(id),
        _ => None,
    });
    let auth = auth.expect("Authenticate");
    let mistake = s
        .session
        .handle_completion(now, auth, DataCompletion::Written.into())
        .expect_err("Written cannot answer Authenticate");
    assert_eq!((mistake.id, mistake.got), (auth, "Data(Written)"));
    assert!(mistake.to_string().contains("LoggedIn"), "{mistake}");
    assert_eq!(drain(&mut s), [], "nothing for the peer");
    // The right answer still works.
    s.session
        .handle_completion(now, auth, Completion::LoggedIn(Access::ReadWrite))
        .expect("fits");
    assert!(replies(drain(&mut s)).starts_with("230 "));

    // A transfer opening its file takes FileOpened, not Metadata; and a listing part nobody asked for
    // is no answer either.
    s.session
        .handle_control_input(now, b"PASV\r\nRETR a.txt\r\n");
    let mut open = None;
    let mut sent = String::new();
    let bound = "127.0.0.1:40000".parse().expect("address");
    // Answered as soon as popped: `handle_*` may be called in the middle of a drain.
    while let Some(action) = s.session.poll_action() {
        match action {
            Action::Data(ftp_proto::data::DataAction::Listen { id, .. }) => s
                .session
                .handle_completion(now, id, DataCompletion::Listening(bound).into())
                .expect("fits"),
            Action::Storage {
                id,
                request: StorageRequest::OpenRead { .. },
            } => open = Some(id),
            Action::SendControl(bytes) => sent.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let open = open.unwrap_or_else(|| panic!("no OpenRead: {sent}"));
    assert!(sent.starts_with("227 "), "{sent}");
    let metadata = Metadata::file(1);
    let mistake = s
        .session
        .handle_completion(now, open, Completion::Metadata(metadata))
        .expect_err("Metadata cannot answer OpenRead");
    assert_eq!(mistake.got, "Metadata");
    let part = Completion::EntriesPart {
        entries: Vec::new(),
        now: ftp_proto::time::Timestamp::UNIX_EPOCH,
    };
    assert!(s.session.handle_completion(now, open, part).is_err());
    assert_eq!(drain(&mut s), [], "no 451 for the peer");
    // Answers for requests nobody waits for are stale, not mistakes.
    assert_eq!(
        s.session.handle_completion(now, auth, Completion::Denied),
        Ok(())
    );
    assert_eq!(drain(&mut s), []);
}
