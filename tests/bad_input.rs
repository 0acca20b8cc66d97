//! A catalogue of malformed and hostile control input. Each entry asserts the exact reply code and that the
//! session still works afterwards (a `NOOP` gets 200 and the working directory is still `/`).

mod sim;

use ftp_proto::framing::{FramerConfig, LineEnding};
use ftp_proto::server::Config;
use sim::Sim;

/// (what it is, the bytes sent, the replies expected in order: each the start of a reply line).
const CATALOGUE: &[(&str, &[u8], &[&str])] = &[
    ("empty line is ignored", b"\r\n", &[]),
    ("only spaces", b"   \r\n", &["500 "]),
    ("NUL as verb", b"\x00\r\n", &["500 "]),
    ("NUL before verb", b"\x00NOOP\r\n", &["500 "]),
    ("NUL in argument", b"RETR a\x00b\r\n", &["501 "]),
    ("NUL in path of CWD", b"CWD /pub\x00/etc\r\n", &["501 "]),
    ("invalid UTF-8 verb", b"\xc3\xa9\xc3\xa9\r\n", &["500 "]),
    ("invalid UTF-8 path is just bytes", b"CWD \xc3\x28\r\n", &["550 "]),
    ("bare CR inside verb", b"NO\rOP\r\n", &["500 "]),
    ("bare CR inside path", b"CWD pu\rb\r\n", &["501 "]),
    ("Telnet NOP inside verb", b"NO\xff\xf1OP\r\n", &["200 "]),
    ("Telnet IAC IAC in path", b"CWD a\xff\xffb\r\n", &["550 "]),
    ("Telnet IP DM before NOOP", b"\xff\xf4\xff\xf2NOOP\r\n", &["200 "]),
    ("Telnet subnegotiation", b"\xff\xfa\x18\x01\xff\xf0NOOP\r\n", &["200 "]),
    ("Telnet IAC at line end", b"NOOP\xff\r\n", &["200 "]),
    ("verb too long", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n", &["500 "]),
    ("unknown verb", b"XYZZY\r\n", &["500 "]),
    ("verb with digits", b"R3TR x\r\n", &["500 "]),
    ("tab separator", b"CWD\t/pub\r\n", &["500 "]),
    ("leading space", b" NOOP\r\n", &["500 "]),
    ("argument where none allowed", b"PWD /etc\r\n", &["501 "]),
    ("QUIT with argument does not quit", b"QUIT now\r\n", &["501 "]),
    ("two spaces make a non-empty argument", b"NOOP  \r\n", &["501 "]),
    ("USER without name", b"USER\r\n", &["501 "]),
    ("RETR without path", b"RETR\r\n", &["501 "]),
    ("SIZE without path", b"SIZE \r\n", &["501 "]),
    ("PORT octet over 255", b"PORT 300,1,1,1,1,1\r\n", &["501 "]),
    ("PORT with five numbers", b"PORT 1,2,3,4,5\r\n", &["501 "]),
    ("PORT negative", b"PORT -1,2,3,4,5,6\r\n", &["501 "]),
    ("PORT port byte over 255", b"PORT 127,0,0,1,256,1\r\n", &["501 "]),
    ("PORT overflowing number", b"PORT 99999999999999999999,0,0,1,1,1\r\n", &["501 "]),
    ("PORT with spaces", b"PORT 127, 0, 0, 1, 200, 1\r\n", &["501 "]),
    ("PORT privileged port", b"PORT 127,0,0,1,0,80\r\n", &["501 "]),
    ("PORT foreign address (bounce)", b"PORT 10,0,0,1,200,1\r\n", &["501 "]),
    ("PORT without argument", b"PORT\r\n", &["501 "]),
    ("EPRT unknown protocol", b"EPRT |3|1.2.3.4|5000|\r\n", &["522 "]),
    ("EPRT family mismatch", b"EPRT |2|127.0.0.1|5000|\r\n", &["501 "]),
    ("EPRT v4 tag with v6 address", b"EPRT |1|::1|5000|\r\n", &["501 "]),
    ("EPRT port zero", b"EPRT |1|127.0.0.1|0|\r\n", &["501 "]),
    ("EPRT port too big", b"EPRT |1|127.0.0.1|70000|\r\n", &["501 "]),
    ("EPRT without delimiters", b"EPRT 127.0.0.1\r\n", &["501 "]),
    ("EPRT IPv6 when control is IPv4", b"EPRT |2|::1|5000|\r\n", &["522 "]),
    ("EPSV unknown protocol", b"EPSV 3\r\n", &["522 "]),
    ("EPSV garbage", b"EPSV foo\r\n", &["501 "]),
    ("EPSV IPv6 on an IPv4 control connection", b"EPSV 2\r\n", &["522 "]),
    ("REST overflowing", b"REST 99999999999999999999\r\n", &["501 "]),
    ("REST negative", b"REST -5\r\n", &["501 "]),
    ("REST not a number", b"REST abc\r\n", &["501 "]),
    ("TYPE unknown", b"TYPE X\r\n", &["501 "]),
    ("TYPE L 16", b"TYPE L 16\r\n", &["504 "]),
    ("TYPE E", b"TYPE E\r\n", &["504 "]),
    ("MODE unknown", b"MODE Z\r\n", &["501 "]),
    ("STRU unknown", b"STRU Q\r\n", &["501 "]),
    ("MFMT month 13", b"MFMT 20231301000000 /pub/data.bin\r\n", &["501 "]),
    ("MFMT 29 February of a common year", b"MFMT 20230229000000 /pub/data.bin\r\n", &["501 "]),
    ("MFMT hour 25", b"MFMT 20230101250000 /pub/data.bin\r\n", &["501 "]),
    ("MFMT without path", b"MFMT 20230101000000\r\n", &["501 "]),
    ("HOST with a port", b"HOST example.com:21\r\n", &["501 "]),
    ("HOST IPv6 with a port", b"HOST [::1]:21\r\n", &["501 "]),
    ("HOST after login", b"HOST example.com\r\n", &["503 "]),
    ("RNTO without RNFR", b"RNTO /x\r\n", &["503 "]),
    ("PROT without PBSZ", b"PROT P\r\n", &["503 "]),
    ("PBSZ without AUTH", b"PBSZ 0\r\n", &["503 "]),
    ("PBSZ overflowing", b"PBSZ 99999999999\r\n", &["501 "]),
    ("AUTH unsupported", b"AUTH TLS\r\n", &["502 "]),
    ("ABOR with no transfer", b"ABOR\r\n", &["226 "]),
    ("PASS when logged in", b"PASS again\r\n", &["503 "]),
    ("OPTS with a bad UTF8 value", b"OPTS UTF8 MAYBE\r\n", &["501 "]),
    ("SITE command", b"SITE EXEC /bin/sh\r\n", &["500 "]),
    ("traversal with ..", b"CWD ../../../../etc\r\n", &["550 "]),
    ("traversal with backslashes", b"CWD ..\\..\\..\\etc\r\n", &["550 "]),
    ("traversal percent-encoded", b"CWD %2e%2e/%2e%2e/etc\r\n", &["550 "]),
    ("traversal to an absolute system path", b"RETR /../../etc/passwd\r\n", &["425 "]),
    ("DELE outside the root", b"DELE ../../../etc/passwd\r\n", &["550 "]),
    ("many slashes", b"CWD ////\r\n", &["250 "]),
    ("dots", b"CWD ./././..\r\n", &["250 "]),
    ("very deep path", b"CWD a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a\r\n", &["550 "]),
    ("RETR of a directory", b"PASV\r\nRETR /pub\r\n", &["227 ", "550 "]),
    ("SIZE of a directory", b"TYPE I\r\nSIZE /pub\r\n", &["200 ", "550 "]),
    ("MKD of an existing directory", b"MKD /pub\r\n", &["550 "]),
    ("RMD of a non-empty directory", b"RMD /pub\r\n", &["550 "]),
    ("RMD of a file", b"RMD /pub/data.bin\r\n", &["550 "]),
    ("STOR into a missing directory", b"PASV\r\nSTOR /nope/x\r\n", &["227 ", "550 "]),
    ("STOR onto a directory", b"PASV\r\nSTOR /pub\r\n", &["227 ", "550 "]),
    ("APPE after REST", b"REST 5\r\nPASV\r\nAPPE /upload/x\r\n", &["350 ", "227 ", "550 "]),
    ("lower-case verbs are fine", b"noop\r\n", &["200 "]),
];

#[test]
fn catalogue_of_bad_input() {
    assert!(CATALOGUE.len() >= 50);
    for (what, input, expected) in CATALOGUE {
        let mut s = Sim::new();
        s.login_writer();
        s.input(input);
        let out = s.take_control();
        let lines: Vec<&str> = out
            .split("\r\n")
            .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
            .collect();
        assert_eq!(lines.len(), expected.len(), "{what}: {out:?}");
        for (line, prefix) in lines.iter().zip(expected.iter()) {
            assert!(
                line.contains(prefix),
                "{what}: expected {prefix:?}, got {out:?}"
            );
        }
        assert!(!s.closed, "{what}: session closed");
        assert_eq!(s.cmd("NOOP"), "200 NOOP ok.\r\n", "{what}: session broken");
        assert_eq!(
            s.cmd("PWD"),
            "257 \"/\" is the current directory.\r\n",
            "{what}"
        );
    }
}

#[test]
fn out_of_order_login() {
    let mut s = Sim::new();
    s.take_control();
    assert!(s.cmd("PASS x").starts_with("503 "));
    assert!(s.cmd("HOST example.com:21").starts_with("501 "));
    assert!(s.cmd("HOST example.com").starts_with("220 "));
    assert!(s.cmd("ACCT x").starts_with("202 "));
    assert!(s.cmd("CWD /").starts_with("530 "));
    assert!(s.cmd("LIST").starts_with("530 "));
    s.login_anonymous();
    assert!(s.cmd("NOOP").starts_with("200 "));
}

#[test]
fn bare_lf_in_strict_mode() {
    let mut config = Config::default();
    config.framer = FramerConfig::default().with_line_ending(LineEnding::CrLfOnly);
    let mut s = Sim::with_config(config);
    s.take_control();
    s.input(b"NOOP\n");
    assert!(
        s.take_control()
            .starts_with("500 Lines must end with CRLF.")
    );
    assert_eq!(s.cmd("NOOP"), "200 NOOP ok.\r\n");
}

#[test]
fn pipelined_commands_with_a_transfer_in_the_middle() {
    let mut s = Sim::new();
    s.login_anonymous();
    s.input(b"TYPE I\r\nPASV\r\nRETR /pub/data.bin\r\nPWD\r\nPASV\r\nLIST /pub\r\nNOOP\r\n");
    let out = s.take_control();
    let codes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        [
            "200", "227", "150", "226", "257", "227", "150", "226", "200"
        ],
        "{out}"
    );
    let data = s.take_data();
    assert_eq!(data[..256], (0..=255u8).collect::<Vec<_>>());
    assert!(data.ends_with(b" readme.txt\r\n"));
}

#[test]
fn hundred_mib_without_a_line_end_stays_bounded() {
    let mut s = Sim::new();
    s.login_anonymous();
    let chunk = vec![b'A'; 64 * 1024];
    let bound = Config::default().framer.max_line_len + Config::default().max_pending_commands;
    for _ in 0..1600 {
        s.input(&chunk);
        assert!(s.session.buffered_input_len() <= bound);
    }
    assert_eq!(s.take_control(), "");
    s.input(b"\r\nNOOP\r\n");
    assert_eq!(
        s.take_control(),
        "500 Command line too long.\r\n200 NOOP ok.\r\n"
    );
}
