//! Interop with lftp: `mirror` of a nested tree (down, and up with `-R`) compared byte for byte, and
//! `ls`/`cls` output. lftp parses the server's MLSD and, with `ftp:use-mlsd off`, its `ls -l` LIST lines,
//! so a listing the client misreads shows up as a wrong tree.
//!
//! Each run also writes lftp's protocol log (`debug -o`), from which the tests check that the mode they
//! claim to test (MLSD or LIST, PASV, EPSV or active) is the one lftp really used.

#[path = "interop/mod.rs"]
mod interop;
#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use interop::{
    ClientOutput, PASSWORD, USER, USER_ARG, assert_bytes_eq, assert_same_tree, pseudo_random_bytes,
    require_tool, run_client, text_lines, write_file,
};
use support::{ServerProcess, TempDir};

/// The settings every run starts with: no TLS attempt, fail fast, exit non-zero on the first error.
const SETTINGS: &str = "set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 10; \
                        set cmd:fail-exit yes; set net:reconnect-interval-base 1";

fn start() -> ServerProcess {
    ServerProcess::start(&["--user", USER_ARG, "--anonymous", "ro"])
}

/// Who lftp logs in as.
#[derive(Clone, Copy)]
enum Login {
    Anonymous,
    Writer,
}

/// Runs `script` in lftp against the server; lftp's protocol log goes to `log`.
fn lftp(server: &ServerProcess, login: Login, log: &Path, script: &str) -> ClientOutput {
    let port = server.addr.port();
    let user = match login {
        Login::Anonymous => String::new(),
        Login::Writer => format!("-u {USER},{PASSWORD} "),
    };
    let full = format!(
        "{SETTINGS}; debug -o \"{}\" 5; open {user}-p {port} 127.0.0.1; {script}",
        log.display()
    );
    let mut command = Command::new("lftp");
    command.arg("-c").arg(full);
    run_client(&mut command, interop::CLIENT_TIMEOUT)
}

/// The commands lftp sent, from its debug log (`---> CMD` lines).
fn sent_commands(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once("---> ").map(|(_, cmd)| cmd.to_owned()))
        .collect()
}

/// A nested tree with several levels, an empty directory, binary and text files (text with CRLF and
/// bare CR inside, which a binary transfer must keep), an empty file, names with spaces, a dot file
/// a UTF-8 name and names with glob, escape and shell characters.
fn build_tree(root: &Path) {
    write_file(root, "readme.txt", &text_lines(50, "readme"));
    write_file(root, ".hidden", b"dot file\n");
    write_file(root, "zero.bin", b"");
    write_file(root, "crlf.txt", b"dos\r\nline\r\nand a bare\rcr\n");
    write_file(
        root,
        "bin/one.bin",
        &pseudo_random_bytes(1024 * 1024 + 7, 21),
    );
    write_file(root, "bin/two.bin", &pseudo_random_bytes(65_536, 22));
    write_file(root, "a/b/c/d/deep.txt", &text_lines(10, "deep"));
    write_file(root, "a/b/c/d/deep.bin", &pseudo_random_bytes(33_333, 23));
    write_file(root, "a/b/sibling.bin", &pseudo_random_bytes(4096, 24));
    write_file(
        root,
        "with space/file name with spaces.txt",
        b"spaces in both names\n",
    );
    write_file(root, "with space/  leading.txt", b"two leading spaces\n");
    write_file(
        root,
        "unicode/\u{e9}t\u{e9} \u{2603}.txt",
        "snow\u{2603}\n".as_bytes(),
    );
    for odd in [
        "percent%20name.txt",
        "brackets[1].txt",
        "hash#.txt",
        "star*.txt",
        "back\\slash.txt",
        "quote'single.txt",
        "semi;colon.txt",
        "-dash.txt",
    ] {
        write_file(root, &format!("odd/{odd}"), odd.as_bytes());
    }
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("a/empty too")).unwrap();
}

/// Mirrors the server's `tree` into a fresh local directory with extra settings, then compares.
fn mirror_down(server: &ServerProcess, settings: &str, expect_commands: &[&str]) {
    let local = TempDir::new("lftp-mirror");
    let log = local.path().join("lftp.log");
    let target = local.path().join("copy");
    let script = format!("{settings}; mirror tree \"{}\"", target.display());
    lftp(server, Login::Anonymous, &log, &script).assert_success();
    assert_same_tree(&server.root.join("tree"), &target);
    let commands = sent_commands(&log);
    for prefix in expect_commands {
        assert!(
            commands.iter().any(|c| c.starts_with(prefix)),
            "[{settings}] lftp never sent {prefix}: {commands:?}"
        );
    }
}

#[test]
fn mirror_downloads_a_nested_tree_over_mlsd() {
    if !require_tool("lftp") {
        return;
    }
    let server = start();
    build_tree(&server.root.join("tree"));
    mirror_down(&server, "set ftp:use-mlsd yes", &["MLSD", "PASV", "RETR "]);
}

#[test]
fn mirror_downloads_a_nested_tree_over_list_with_epsv() {
    if !require_tool("lftp") {
        return;
    }
    let server = start();
    build_tree(&server.root.join("tree"));
    // LIST lines must be parsed by lftp: names with leading and inner spaces included.
    mirror_down(
        &server,
        "set ftp:use-mlsd no; set ftp:prefer-epsv yes",
        &["LIST", "EPSV", "RETR "],
    );
}

#[test]
fn mirror_downloads_in_active_mode_and_in_parallel() {
    if !require_tool("lftp") {
        return;
    }
    let server = start();
    build_tree(&server.root.join("tree"));
    // lftp speaks PORT for IPv4 (EPRT only over IPv6).
    mirror_down(&server, "set ftp:passive-mode off", &["PORT 127,0,0,1,"]);
    // Several connections at once.
    let local = TempDir::new("lftp-parallel");
    let log = local.path().join("lftp.log");
    let target = local.path().join("copy");
    let script = format!("mirror --parallel=4 tree \"{}\"", target.display());
    lftp(&server, Login::Anonymous, &log, &script).assert_success();
    assert_same_tree(&server.root.join("tree"), &target);
}

#[test]
fn mirror_reverse_uploads_a_nested_tree() {
    if !require_tool("lftp") {
        return;
    }
    let server = start();
    let local = TempDir::new("lftp-upload");
    let source = local.path().join("source");
    build_tree(&source);
    let log = local.path().join("lftp.log");

    let script = format!("mirror -R \"{}\" uploaded", source.display());
    lftp(&server, Login::Writer, &log, &script).assert_success();
    assert_same_tree(&source, &server.root.join("uploaded"));
    let commands = sent_commands(&log);
    assert!(
        commands.iter().any(|c| c.starts_with("STOR ")),
        "{commands:?}"
    );
    assert!(
        commands.iter().any(|c| c.starts_with("MKD ")),
        "{commands:?}"
    );

    // Once more after changes: a grown file, a new one, a deleted one (`--delete`).
    write_file(&source, "bin/two.bin", &pseudo_random_bytes(100_000, 25));
    write_file(&source, "a/new.txt", b"new\n");
    std::fs::remove_file(source.join("readme.txt")).unwrap();
    let script = format!(
        "mirror -R --delete --ignore-time \"{}\" uploaded",
        source.display()
    );
    lftp(&server, Login::Writer, &log, &script).assert_success();
    assert_same_tree(&source, &server.root.join("uploaded"));

    // Anonymous users are read-only: the upload fails and creates nothing.
    let script = format!("mirror -R \"{}\" anonymous", source.display());
    let refused = lftp(&server, Login::Anonymous, &log, &script);
    assert!(!refused.status.success(), "{}", refused.describe());
    assert!(!server.root.join("anonymous").exists());
}

#[test]
fn ls_and_cls() {
    if !require_tool("lftp") {
        return;
    }
    let server = start();
    let root = &server.root;
    write_file(root, "dir/b.bin", &pseudo_random_bytes(12_345, 26));
    write_file(root, "dir/a file.txt", b"hello\n");
    std::fs::create_dir(root.join("dir/sub")).unwrap();
    let local = TempDir::new("lftp-ls");
    let log = local.path().join("lftp.log");

    // cls: names (directories with a slash), sorted; then exact sizes in bytes.
    let out = lftp(&server, Login::Anonymous, &log, "cls -1 dir/");
    out.assert_success();
    assert_eq!(out.stdout_text(), "dir/a file.txt\ndir/b.bin\ndir/sub/\n");
    let out = lftp(
        &server,
        Login::Anonymous,
        &log,
        "cls -1 -s --block-size=1 dir/a*.txt dir/b.bin",
    );
    out.assert_success();
    let sizes: Vec<(String, String)> = out
        .stdout_text()
        .lines()
        .map(|l| {
            let (size, name) = l.trim_start().split_once(' ').unwrap();
            (size.to_owned(), name.to_owned())
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("6".to_owned(), "dir/a file.txt".to_owned()),
            ("12345".to_owned(), "dir/b.bin".to_owned())
        ]
    );

    // ls: the server's LIST lines as they are.
    let out = lftp(&server, Login::Anonymous, &log, "cd dir; ls");
    out.assert_success();
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text:?}");
    for (line, (kind, size, name)) in lines.iter().zip([
        ('-', Some(6), "a file.txt"),
        ('-', Some(12_345), "b.bin"),
        ('d', None, "sub"),
    ]) {
        assert!(line.starts_with(kind), "{line:?}");
        assert!(line.ends_with(&format!(" {name}")), "{line:?}");
        if let Some(size) = size {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields[4], size.to_string(), "{line:?}");
        }
    }
    assert!(sent_commands(&log).contains(&"LIST".to_owned()));

    // A missing directory fails the command (and with cmd:fail-exit, lftp).
    let out = lftp(&server, Login::Anonymous, &log, "cls -1 missing/");
    assert!(!out.status.success(), "{}", out.describe());
}

#[test]
fn pget_segments_and_resumed_get_and_put() {
    if !require_tool("lftp") {
        return;
    }
    let server = start();
    let data = pseudo_random_bytes(5 * 1024 * 1024 + 99, 27);
    write_file(&server.root, "big.bin", &data);
    let local = TempDir::new("lftp-resume");
    let log = local.path().join("lftp.log");

    // pget: up to four connections, each RETR after a REST at its own offset, closed at the next
    // segment. (On loopback the first connection may well finish before the others start: no
    // assertion on how many segments there were.)
    let target = local.path().join("pget.bin");
    let script = format!("pget -n 4 big.bin -o \"{}\"", target.display());
    lftp(&server, Login::Anonymous, &log, &script).assert_success();
    assert_bytes_eq(&std::fs::read(&target).unwrap(), &data, "pget -n 4");

    // get -c: SIZE, then REST at the local length.
    let partial = 1_000_000;
    let target = write_file(local.path(), "get-c.bin", &data[..partial]);
    let script = format!("get -c big.bin -o \"{}\"", target.display());
    lftp(&server, Login::Anonymous, &log, &script).assert_success();
    assert!(sent_commands(&log).contains(&format!("REST {partial}")));
    assert_bytes_eq(&std::fs::read(&target).unwrap(), &data, "get -c");

    // put -c: SIZE of the remote partial file, then REST + STOR.
    let remote_partial = 1_500_001;
    write_file(&server.root, "put-c.bin", &data[..remote_partial]);
    let source = local.path().join("pget.bin");
    let script = format!("put -c \"{}\" -o put-c.bin", source.display());
    lftp(&server, Login::Writer, &log, &script).assert_success();
    assert!(sent_commands(&log).contains(&format!("REST {remote_partial}")));
    let stored = std::fs::read(server.root.join("put-c.bin")).unwrap();
    assert_bytes_eq(&stored, &data, "put -c");
}
