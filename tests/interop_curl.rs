//! Interop with curl: downloads, uploads, listings, resume, active and passive modes, TYPE A and error
//! exit codes, each checked byte for byte against the example server's disk.
//!
//! Where curl hides what went over the wire (it turns CRLF back into LF when it downloads in ASCII mode),
//! the test reads curl's own `--trace` dump, and where a test claims a mode (EPSV, PASV, PORT) it checks
//! from curl's verbose log that this mode was really used.

#[path = "interop/mod.rs"]
mod interop;
#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use interop::{
    ClientOutput, PASSWORD, USER, USER_ARG, assert_bytes_eq, lf_to_crlf, pseudo_random_bytes,
    require_tool, run_client, text_lines, write_file,
};
use support::{ServerProcess, TempDir};

/// curl's exit code for "the remote file was not found" (CURLE_REMOTE_FILE_NOT_FOUND).
const CURLE_REMOTE_FILE_NOT_FOUND: i32 = 78;
/// curl's exit code for a refused upload (CURLE_UPLOAD_FAILED).
const CURLE_UPLOAD_FAILED: i32 = 25;

fn start() -> ServerProcess {
    ServerProcess::start(&["--user", USER_ARG, "--anonymous", "ro"])
}

fn url(server: &ServerProcess, path: &str) -> String {
    format!("ftp://{}/{path}", server.addr)
}

/// Runs curl with its own time limits and ours; `-sS`: no progress meter, but errors on stderr.
fn curl(args: &[&str]) -> ClientOutput {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--connect-timeout", "10", "--max-time", "30"])
        .args(args);
    run_client(&mut command, interop::CLIENT_TIMEOUT)
}

fn credentials() -> String {
    format!("{USER}:{PASSWORD}")
}

/// The commands curl sent, from its verbose log (`> CMD` lines on stderr).
fn sent_commands(output: &ClientOutput) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("> "))
        .map(str::to_owned)
        .collect()
}

/// The bytes of every `Recv data` (or `Send data`) block in a curl `--trace` file: the data connection's
/// bytes as they were on the wire, before curl's ASCII conversion.
fn traced_data(trace: &Path, direction: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(trace).expect("read trace");
    let header = format!("{direction} data");
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.contains(" data, ") || line.starts_with("==") || line.starts_with("<=") {
            inside = line.contains(&header);
            continue;
        }
        // `0000: 6c 31 0d 0a ...   l1..` : a hex offset (4 digits or more), then 16 hex bytes in 48
        // columns, then the same bytes as ASCII.
        let Some((offset, rest)) = line.split_once(": ") else {
            continue;
        };
        if inside && !offset.is_empty() && offset.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = rest.get(..rest.len().min(48)).unwrap_or_default();
            for byte in hex.split_whitespace() {
                out.push(u8::from_str_radix(byte, 16).expect("hex byte in trace"));
            }
        }
    }
    out
}

#[test]
fn download_binary_files_byte_for_byte() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    let big = pseudo_random_bytes(3 * 1024 * 1024 + 17, 1);
    let small = pseudo_random_bytes(1000, 2);
    write_file(&server.root, "pub/big.bin", &big);
    write_file(&server.root, "pub/small.bin", &small);
    write_file(&server.root, "empty.bin", b"");
    let out = TempDir::new("curl-get");

    let target = out.path().join("big.bin");
    curl(&["-o", target.to_str().unwrap(), &url(&server, "pub/big.bin")]).assert_success();
    assert_bytes_eq(
        &std::fs::read(&target).unwrap(),
        &big,
        "big.bin (anonymous)",
    );

    // The same as the read-write user, and a small file to stdout.
    let got = curl(&["-u", &credentials(), &url(&server, "pub/small.bin")]);
    got.assert_success();
    assert_bytes_eq(&got.stdout, &small, "small.bin (stdout)");

    let target = out.path().join("empty.bin");
    curl(&["-o", target.to_str().unwrap(), &url(&server, "empty.bin")]).assert_success();
    assert_eq!(std::fs::read(&target).unwrap(), b"");
}

#[test]
fn upload_with_dash_t_as_the_read_write_user() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    std::fs::create_dir(server.root.join("incoming")).unwrap();
    let local = TempDir::new("curl-put");
    let data = pseudo_random_bytes(2 * 1024 * 1024 + 3, 3);
    let source = write_file(local.path(), "upload.bin", &data);

    // A trailing slash: curl appends the local file name.
    curl(&[
        "-u",
        &credentials(),
        "-T",
        source.to_str().unwrap(),
        &url(&server, "incoming/"),
    ])
    .assert_success();
    let stored = std::fs::read(server.root.join("incoming/upload.bin")).unwrap();
    assert_bytes_eq(&stored, &data, "uploaded incoming/upload.bin");

    // Overwriting with other content truncates: the old tail must not survive.
    let shorter = pseudo_random_bytes(5000, 4);
    let source = write_file(local.path(), "shorter.bin", &shorter);
    curl(&[
        "-u",
        &credentials(),
        "-T",
        source.to_str().unwrap(),
        &url(&server, "incoming/upload.bin"),
    ])
    .assert_success();
    let stored = std::fs::read(server.root.join("incoming/upload.bin")).unwrap();
    assert_bytes_eq(&stored, &shorter, "overwritten incoming/upload.bin");

    // Anonymous users are read-only here: STOR gets 550, curl says the upload failed.
    let refused = curl(&[
        "-T",
        source.to_str().unwrap(),
        &url(&server, "incoming/anon.bin"),
    ]);
    assert_eq!(
        refused.code(),
        Some(CURLE_UPLOAD_FAILED),
        "{}",
        refused.describe()
    );
    assert!(!server.root.join("incoming/anon.bin").exists());
}

#[test]
fn directory_listing_and_list_only() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    write_file(&server.root, "dir/alpha.txt", b"12345");
    write_file(&server.root, "dir/beta.bin", &pseudo_random_bytes(4321, 5));
    write_file(&server.root, "dir/with space.txt", b"x");
    std::fs::create_dir(server.root.join("dir/sub")).unwrap();

    // LIST: `ls -l` lines, one per entry, sorted by name.
    let listing = curl(&[&url(&server, "dir/")]);
    listing.assert_success();
    let text = listing.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text:?}");
    let expected = [
        ('-', 5, "alpha.txt"),
        ('-', 4321, "beta.bin"),
        ('d', -1, "sub"),
        ('-', 1, "with space.txt"),
    ];
    for (line, (kind, size, name)) in lines.iter().zip(expected) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields.len() >= 9, "not an ls -l line: {line:?}");
        assert!(line.starts_with(kind), "{line:?} should start with {kind}");
        assert_eq!(fields[0].len(), 10, "mode field of {line:?}");
        if size >= 0 {
            assert_eq!(fields[4], size.to_string(), "size of {line:?}");
        }
        // The name is everything after the time field, spaces included.
        assert!(
            line.ends_with(&format!(" {name}")),
            "{line:?} should end with {name:?}"
        );
    }

    // NLST: exactly the names.
    let names = curl(&["--list-only", &url(&server, "dir/")]);
    names.assert_success();
    assert_eq!(
        names.stdout_text(),
        "alpha.txt\nbeta.bin\nsub\nwith space.txt\n"
    );

    // The root, listed by a logged-in user.
    let root = curl(&["--list-only", "-u", &credentials(), &url(&server, "")]);
    root.assert_success();
    assert_eq!(root.stdout_text(), "dir\n");
}

#[test]
fn resume_download_with_continue_at() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    let data = pseudo_random_bytes(1024 * 1024 + 123, 6);
    write_file(&server.root, "resume.bin", &data);
    let local = TempDir::new("curl-resume");
    let partial = 300_001;
    let target = write_file(local.path(), "resume.bin", &data[..partial]);

    let got = curl(&[
        "-v",
        "-C",
        "-",
        "-w",
        "%{size_download}",
        "-o",
        target.to_str().unwrap(),
        &url(&server, "resume.bin"),
    ]);
    got.assert_success();
    assert!(
        sent_commands(&got).contains(&format!("REST {partial}")),
        "{}",
        got.describe()
    );
    // Only the missing part crossed the wire, and the file is whole.
    assert_eq!(got.stdout_text(), (data.len() - partial).to_string());
    assert_bytes_eq(&std::fs::read(&target).unwrap(), &data, "resumed download");

    // A local prefix that differs from the server's proves the server skipped exactly `partial` bytes.
    let marker = vec![b'#'; partial];
    write_file(local.path(), "resume.bin", &marker);
    curl(&[
        "-C",
        "-",
        "-o",
        target.to_str().unwrap(),
        &url(&server, "resume.bin"),
    ])
    .assert_success();
    let mut expected = marker;
    expected.extend_from_slice(&data[partial..]);
    assert_bytes_eq(&std::fs::read(&target).unwrap(), &expected, "prefix + tail");
}

#[test]
fn resume_upload_with_continue_at() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    let data = pseudo_random_bytes(700_000, 7);
    write_file(&server.root, "part.bin", &data[..250_000]);
    let local = TempDir::new("curl-resume-up");
    let source = write_file(local.path(), "part.bin", &data);

    let got = curl(&[
        "-v",
        "-u",
        &credentials(),
        "-C",
        "-",
        "-T",
        source.to_str().unwrap(),
        &url(&server, "part.bin"),
    ]);
    got.assert_success();
    // curl asks the size, then appends the rest.
    let commands = sent_commands(&got);
    assert!(
        commands.contains(&"SIZE part.bin".to_owned()),
        "{commands:?}"
    );
    assert!(
        commands.contains(&"APPE part.bin".to_owned()),
        "{commands:?}"
    );
    let stored = std::fs::read(server.root.join("part.bin")).unwrap();
    assert_bytes_eq(&stored, &data, "resumed upload");
}

#[test]
fn active_mode_with_ftp_port() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    let data = pseudo_random_bytes(1024 * 1024, 8);
    write_file(&server.root, "active.bin", &data);
    let local = TempDir::new("curl-active");
    let target = local.path().join("active.bin");

    let got = curl(&[
        "-v",
        "--ftp-port",
        "127.0.0.1",
        "-o",
        target.to_str().unwrap(),
        &url(&server, "active.bin"),
    ]);
    got.assert_success();
    let commands = sent_commands(&got);
    assert!(
        commands.iter().any(|c| c.starts_with("EPRT |1|127.0.0.1|")),
        "curl should have used EPRT: {commands:?}"
    );
    assert_bytes_eq(&std::fs::read(&target).unwrap(), &data, "active download");

    // Plain PORT (curl's --disable-eprt), for a listing and an upload.
    let listing = curl(&[
        "-v",
        "--ftp-port",
        "127.0.0.1",
        "--disable-eprt",
        "--list-only",
        &url(&server, ""),
    ]);
    listing.assert_success();
    assert!(
        sent_commands(&listing)
            .iter()
            .any(|c| c.starts_with("PORT 127,0,0,1,")),
        "{}",
        listing.describe()
    );
    assert_eq!(listing.stdout_text(), "active.bin\n");

    let upload = curl(&[
        "-u",
        &credentials(),
        "--ftp-port",
        "127.0.0.1",
        "--disable-eprt",
        "-T",
        target.to_str().unwrap(),
        &url(&server, "copy.bin"),
    ]);
    upload.assert_success();
    let stored = std::fs::read(server.root.join("copy.bin")).unwrap();
    assert_bytes_eq(&stored, &data, "active upload");
}

#[test]
fn epsv_by_default_and_pasv_when_disabled() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    let data = pseudo_random_bytes(200_000, 9);
    write_file(&server.root, "p.bin", &data);

    let epsv = curl(&["-v", &url(&server, "p.bin")]);
    epsv.assert_success();
    let commands = sent_commands(&epsv);
    assert!(commands.contains(&"EPSV".to_owned()), "{commands:?}");
    assert!(!commands.contains(&"PASV".to_owned()), "{commands:?}");
    assert_bytes_eq(&epsv.stdout, &data, "EPSV download");

    let pasv = curl(&["-v", "--disable-epsv", &url(&server, "p.bin")]);
    pasv.assert_success();
    let commands = sent_commands(&pasv);
    assert!(commands.contains(&"PASV".to_owned()), "{commands:?}");
    assert!(!commands.contains(&"EPSV".to_owned()), "{commands:?}");
    assert!(
        String::from_utf8_lossy(&pasv.stderr).contains("< 227 Entering Passive Mode (127,0,0,1,"),
        "{}",
        pasv.describe()
    );
    assert_bytes_eq(&pasv.stdout, &data, "PASV download");
}

#[test]
fn type_a_download_turns_lf_into_crlf_on_the_wire() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    let mut text = text_lines(2000, "ascii");
    text.extend_from_slice(b"\nlast line without a newline");
    write_file(&server.root, "notes.txt", &text);
    let local = TempDir::new("curl-ascii");

    for (label, args) in [
        ("type=a", vec![url(&server, "notes.txt;type=a")]),
        (
            "--use-ascii",
            vec!["--use-ascii".to_owned(), url(&server, "notes.txt")],
        ),
    ] {
        let trace = local.path().join("trace.txt");
        let target = local.path().join("notes.txt");
        let mut all = vec![
            "-v".to_owned(),
            "--trace".to_owned(),
            trace.to_str().unwrap().to_owned(),
            "-o".to_owned(),
            target.to_str().unwrap().to_owned(),
        ];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        curl(&refs).assert_success();
        let trace_text = std::fs::read_to_string(&trace).unwrap();
        assert!(
            trace_text.contains("TYPE A"),
            "{label}: curl did not ask for TYPE A"
        );
        // On the wire: every LF preceded by CR.
        let wire = traced_data(&trace, "Recv");
        assert_bytes_eq(
            &wire,
            &lf_to_crlf(&text),
            &format!("{label}: bytes on the wire"),
        );
        // curl converts back on Unix, so the saved file is the original.
        assert_bytes_eq(&std::fs::read(&target).unwrap(), &text, label);
    }
}

#[test]
fn type_a_upload_stores_lf() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    let text = text_lines(500, "upload");
    let local = TempDir::new("curl-ascii-up");
    let source = write_file(local.path(), "up.txt", &text);
    let trace = local.path().join("trace.txt");

    curl(&[
        "--trace",
        trace.to_str().unwrap(),
        "-u",
        &credentials(),
        "--use-ascii",
        "-T",
        source.to_str().unwrap(),
        &url(&server, "up.txt"),
    ])
    .assert_success();
    // curl sends CRLF; the server stores the local (LF) form.
    assert_bytes_eq(&traced_data(&trace, "Send"), &lf_to_crlf(&text), "sent");
    let stored = std::fs::read(server.root.join("up.txt")).unwrap();
    assert_bytes_eq(&stored, &text, "stored text");
}

#[test]
fn ftp_create_dirs_makes_every_level() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    std::fs::create_dir(server.root.join("a")).unwrap();
    let local = TempDir::new("curl-mkdirs");
    let data = pseudo_random_bytes(10_000, 10);
    let source = write_file(local.path(), "deep.bin", &data);

    let got = curl(&[
        "-v",
        "-u",
        &credentials(),
        "--ftp-create-dirs",
        "-T",
        source.to_str().unwrap(),
        &url(&server, "a/b/c%20d/e/"),
    ]);
    got.assert_success();
    let commands = sent_commands(&got);
    for dir in ["b", "c d", "e"] {
        assert!(commands.contains(&format!("MKD {dir}")), "{commands:?}");
    }
    assert!(
        !commands.contains(&"MKD a".to_owned()),
        "a exists: {commands:?}"
    );
    let stored = std::fs::read(server.root.join("a/b/c d/e/deep.bin")).unwrap();
    assert_bytes_eq(&stored, &data, "a/b/c d/e/deep.bin");

    // Without the option the missing directory is an error and nothing is created.
    let refused = curl(&[
        "-u",
        &credentials(),
        "-T",
        source.to_str().unwrap(),
        &url(&server, "x/y/"),
    ]);
    assert!(!refused.status.success(), "{}", refused.describe());
    assert!(!server.root.join("x").exists());
}

#[test]
fn missing_file_gives_exit_code_78() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    write_file(&server.root, "dir/here.txt", b"here");
    let local = TempDir::new("curl-missing");
    let target = local.path().join("nothing");

    // With CWD into the directory, without CWD (the whole path in RETR), and a directory as a file.
    for (method, path) in [
        ("multicwd", "nothing.bin"),
        ("multicwd", "dir/nothing.bin"),
        ("nocwd", "dir/nothing.bin"),
        ("singlecwd", "dir/nothing.bin"),
        ("nocwd", "dir"),
    ] {
        let got = curl(&[
            "--ftp-method",
            method,
            "-o",
            target.to_str().unwrap(),
            &url(&server, path),
        ]);
        assert_eq!(
            got.code(),
            Some(CURLE_REMOTE_FILE_NOT_FOUND),
            "{method} {path}: {}",
            got.describe()
        );
    }
    // The server is unharmed.
    let got = curl(&[&url(&server, "dir/here.txt")]);
    got.assert_success();
    assert_eq!(got.stdout, b"here");
}

#[test]
fn large_directory_listing_is_complete() {
    if !require_tool("curl") {
        return;
    }
    let server = start();
    let dir = server.root.join("many");
    std::fs::create_dir(&dir).unwrap();
    let mut names: Vec<String> = (0..3000).map(|i| format!("entry-{i:05}.dat")).collect();
    for name in &names {
        std::fs::write(dir.join(name), name.as_bytes()).unwrap();
    }
    names.sort();

    let nlst = curl(&["--list-only", &url(&server, "many/")]);
    nlst.assert_success();
    let expected: String = names.iter().map(|n| format!("{n}\n")).collect();
    assert_eq!(nlst.stdout_text(), expected);

    let list = curl(&[&url(&server, "many/")]);
    list.assert_success();
    let text = list.stdout_text();
    let listed: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(listed, names);
}
