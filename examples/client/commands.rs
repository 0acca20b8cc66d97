//! The four commands, on top of the driver's [`Client`]: `ls`, `get`, `put` and `mirror`.
//!
//! Every failure carries what was being done (`RETR /pub/x`) and why, the server's reply included, so
//! that the user sees `error: RETR /pub/x: 550 No such file or directory.`.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ftp_proto::client::{ClientError, DataMode, Outcome, Request};
use ftp_proto::command::{FormatControl, Pathname, TransferType};
use ftp_proto::listing::{EntryKind, ListEntry, ListTime, MlsxEntry};
use ftp_proto::time::Timestamp;
use ftp_proto::url::{FtpUrl, TypeCode};
use tokio::io::AsyncSeekExt;

use crate::cli::{Command, Flags};
use crate::driver::tls::ClientTls;
use crate::driver::{Client, ClientOptions, DriverError, Ftps};
use crate::progress::{Progress, human};

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// The user asked for something impossible (exit status 2).
    Usage(String),
    /// `context` failed (exit status 1).
    Failed { context: String, error: DriverError },
    /// A local problem (exit status 1).
    Local(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message) | Failure::Local(message) => f.write_str(message),
            Failure::Failed { context, error } => write!(f, "{context}: {error}"),
        }
    }
}

/// Adds what was being done to a driver error.
trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T> Context<T> for Result<T, DriverError> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|error| Failure::Failed {
            context: what(),
            error,
        })
    }
}

/// Runs one command.
pub async fn run(command: Command, flags: Flags) -> Result<(), Failure> {
    let options = options(&flags, command.url())?;
    match command {
        Command::List { url } => list(&url, options).await,
        Command::Get { url, local } => get(&url, local, &flags, options).await,
        Command::Put { local, url } => put(&local, &url, &flags, options).await,
        Command::Mirror { url, local } => mirror(&url, &local, &flags, options).await,
    }
}

fn options(flags: &Flags, url: &FtpUrl) -> Result<ClientOptions, Failure> {
    let mut options = ClientOptions::default();
    if flags.uses_tls(url) {
        if flags.insecure {
            eprintln!(
                "warning: --insecure: the server's certificate is NOT checked; anyone on the path can \
                 read and change this session, password included"
            );
        }
        let trust = ClientTls::new(flags.ca_file.as_deref(), flags.insecure);
        let tls = trust
            .and_then(|tls| match flags.tls12_only {
                true => tls.tls12_only(),
                false => Ok(tls),
            })
            .map_err(|error| match &flags.ca_file {
                Some(file) => Failure::Local(format!("--ca-file {}: {error}", file.display())),
                None => Failure::Local(format!("TLS: {error}")),
            })?;
        // `connect_url` makes an ftps:// URL implicit FTPS.
        options.ftps = Ftps::Explicit(tls);
    }
    if let Some(timeout) = flags.timeout {
        options = options.with_timeout(timeout);
    }
    if flags.active {
        options.session.mode = DataMode::Active;
    }
    options.session.extended_first = !flags.no_epsv;
    Ok(options)
}

/// The URL's path as the user wrote it (decoded), for messages: `/pub/file`.
fn display_path(url: &FtpUrl) -> String {
    let mut path = String::new();
    for segment in url.path_segments() {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(segment));
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// Connects, logs in and changes to the URL's directory (one `CWD` per segment, RFC 1738 §3.2.2).
async fn open(url: &FtpUrl, options: ClientOptions) -> Result<Client, Failure> {
    let host = format!("{}:{}", url.host(), url.port());
    let mut client = Client::connect_url(url, options).await.context(|| {
        let user = url
            .user()
            .map_or("anonymous".into(), String::from_utf8_lossy);
        format!("connect to {host} as {user}")
    })?;
    for step in url.cwd_steps() {
        client
            .run(Request::Cwd(step.clone()))
            .await
            .context(|| format!("CWD {}", step.to_string_lossy()))?;
    }
    Ok(client)
}

/// `TYPE I`, or `TYPE A` for `--ascii` or a URL's `;type=a`.
fn transfer_type(url: &FtpUrl, flags: &Flags) -> TransferType {
    if flags.ascii || url.typecode() == Some(TypeCode::Ascii) {
        TransferType::Ascii(FormatControl::NonPrint)
    } else {
        TransferType::Image
    }
}

async fn set_type(client: &mut Client, transfer_type: TransferType) -> Result<(), Failure> {
    client
        .run(Request::SetType(transfer_type))
        .await
        .context(|| format!("TYPE {}", type_letter(transfer_type)))?;
    Ok(())
}

fn type_letter(transfer_type: TransferType) -> &'static str {
    match transfer_type {
        TransferType::Ascii(_) => "A",
        _ => "I",
    }
}

/// `SIZE`; `None` if the server does not know or does not say (many refuse it in TYPE A).
async fn remote_size(client: &mut Client, path: &Pathname) -> Result<Option<u64>, Failure> {
    match client.run(Request::Size(path.clone())).await {
        Ok(Outcome::Size(size)) => Ok(Some(size)),
        Ok(_) | Err(DriverError::Session(ClientError::Reply(_))) => Ok(None),
        Err(error) => Err(Failure::Failed {
            context: format!("SIZE {}", path.to_string_lossy()),
            error,
        }),
    }
}

async fn quit(client: Client) {
    // The work is done: a server that does not answer QUIT politely changes nothing.
    let _ = client.quit().await;
}

// ---- ls ----

/// One line of `ls` output, from either listing format.
struct Line {
    kind: &'static str,
    size: Option<u64>,
    modified: Option<Timestamp>,
    name: Vec<u8>,
}

async fn list(url: &FtpUrl, options: ClientOptions) -> Result<(), Failure> {
    let mut client = open(url, options).await?;
    let target = url.file_name();
    let shown = display_path(url);
    let features = client.features().await.context(|| "FEAT".into())?;
    let mut lines = None;
    if features.mlst.is_some() {
        match client
            .run(Request::Mlsd {
                path: target.clone(),
            })
            .await
        {
            Ok(Outcome::Facts(entries)) => lines = Some(list_lines(mlsd_entries(entries))),
            // A path that is a file, or a server that offers MLST but not MLSD: fall back to LIST.
            Ok(_) | Err(DriverError::Session(ClientError::Reply(_))) => {}
            Err(error) => {
                return Err(Failure::Failed {
                    context: format!("MLSD {shown}"),
                    error,
                });
            }
        }
    }
    let lines = match lines {
        Some(lines) => lines,
        None => {
            let now = Timestamp::from_system_time(std::time::SystemTime::now())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            let request = Request::List { path: target, now };
            match client
                .run(request)
                .await
                .context(|| format!("LIST {shown}"))?
            {
                Outcome::Listing(entries) => list_lines(entries),
                _ => Vec::new(),
            }
        }
    };
    print_lines(&lines);
    quit(client).await;
    Ok(())
}

/// `MLSD` entries as `LIST` entries (one entry kind), without the directory itself and its parent.
fn mlsd_entries(
    entries: Vec<Result<MlsxEntry, ftp_proto::listing::ListLineError>>,
) -> Vec<Result<ListEntry, ftp_proto::listing::ListLineError>> {
    let listed = entries
        .into_iter()
        .flatten()
        .filter(|e| !e.is_self_or_parent());
    listed.map(|e| Ok(ListEntry::from(e))).collect()
}

fn list_lines(entries: Vec<Result<ListEntry, ftp_proto::listing::ListLineError>>) -> Vec<Line> {
    let mut lines = Vec::new();
    for entry in entries.into_iter().flatten() {
        if entry.name == b"." || entry.name == b".." {
            continue;
        }
        lines.push(Line {
            kind: kind_name(entry.kind),
            size: entry.size,
            modified: entry.modified.as_ref().map(ListTime::timestamp),
            name: entry.name,
        });
    }
    lines
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "file",
        EntryKind::Directory => "dir",
        EntryKind::Symlink => "link",
        _ => "?",
    }
}

fn print_lines(lines: &[Line]) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        let size = line.size.map_or("-".to_owned(), |s| s.to_string());
        let time = line.modified.map_or("-".to_owned(), |t| {
            let c = t.to_civil();
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                c.year, c.month, c.day, c.hour, c.minute
            )
        });
        let name = String::from_utf8_lossy(&line.name);
        let _ = writeln!(out, "{:<4} {size:>12} {time:<16} {name}", line.kind);
    }
}

// ---- get ----

async fn get(
    url: &FtpUrl,
    local: Option<PathBuf>,
    flags: &Flags,
    options: ClientOptions,
) -> Result<(), Failure> {
    let Some(file) = url.file_name() else {
        return Err(Failure::Usage(format!(
            "{} names a directory, not a file",
            display_path(url)
        )));
    };
    let transfer_type = transfer_type(url, flags);
    if flags.resume && transfer_type != TransferType::Image {
        return Err(Failure::Usage(
            "--resume needs binary mode (byte offsets differ in TYPE A)".into(),
        ));
    }
    let name = local_name(file.as_bytes())?;
    let local = match local {
        Some(path) if path.is_dir() => path.join(name),
        Some(path) => path,
        None => PathBuf::from(name),
    };
    let shown = display_path(url);
    let mut client = open(url, options).await?;
    set_type(&mut client, transfer_type).await?;
    let size = match transfer_type {
        TransferType::Image => remote_size(&mut client, &file).await?,
        _ => None,
    };
    let offset = match (flags.resume, size) {
        (false, _) => 0,
        (true, size) => {
            let have = std::fs::metadata(&local).map(|m| m.len()).unwrap_or(0);
            if size.is_some_and(|size| have > size) {
                return Err(Failure::Local(format!(
                    "{}: the local file ({have} bytes) is larger than the remote one",
                    local.display()
                )));
            }
            if size == Some(have) && have > 0 {
                eprintln!("{shown}: already complete ({have} bytes)");
                quit(client).await;
                return Ok(());
            }
            have
        }
    };
    let mut file_out = tokio::fs::OpenOptions::new();
    file_out.write(true).create(true);
    if offset > 0 {
        file_out.append(true);
    } else {
        file_out.truncate(true);
    }
    let sink = file_out
        .open(&local)
        .await
        .map_err(|e| Failure::Local(format!("{}: {e}", local.display())))?;
    let label = format!("RETR {shown}");
    let mut progress = Progress::new(label.clone(), size, offset);
    let result = client
        .download(file, offset, sink, &mut |bytes| progress.update(bytes))
        .await;
    let bytes = result.context(|| label)?;
    progress.finish(bytes, "done");
    quit(client).await;
    Ok(())
}

/// A remote name as a local file name: one path component, nothing that climbs out of the directory.
fn local_name(name: &[u8]) -> Result<String, Failure> {
    let name = String::from_utf8_lossy(name).into_owned();
    if !is_safe_name(name.as_bytes()) {
        return Err(Failure::Local(format!("unsafe file name {name:?}")));
    }
    Ok(name)
}

fn is_safe_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name != b"."
        && name != b".."
        && !name.iter().any(|&b| b == b'/' || b == b'\\' || b == 0)
}

// ---- put ----

async fn put(
    local: &Path,
    url: &FtpUrl,
    flags: &Flags,
    options: ClientOptions,
) -> Result<(), Failure> {
    let transfer_type = transfer_type(url, flags);
    if flags.resume && transfer_type != TransferType::Image {
        return Err(Failure::Usage(
            "--resume needs binary mode (byte offsets differ in TYPE A)".into(),
        ));
    }
    let mut source = tokio::fs::File::open(local)
        .await
        .map_err(|e| Failure::Local(format!("{}: {e}", local.display())))?;
    let local_size = source
        .metadata()
        .await
        .map_err(|e| Failure::Local(format!("{}: {e}", local.display())))?
        .len();
    // `ftp://h/dir/` uploads into dir under the local file's name.
    let (remote, shown) = match url.file_name() {
        Some(name) => (name, display_path(url)),
        None => {
            let name = local
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| Failure::Usage(format!("{} has no file name", local.display())))?;
            let pathname = Pathname::new(name.clone())
                .map_err(|e| Failure::Usage(format!("{name:?}: {e}")))?;
            let dir = display_path(url);
            (pathname, format!("{}/{name}", dir.trim_end_matches('/')))
        }
    };
    let mut client = open(url, options).await?;
    set_type(&mut client, transfer_type).await?;
    let offset = if flags.resume {
        let have = remote_size(&mut client, &remote).await?.unwrap_or(0);
        if have > local_size {
            return Err(Failure::Local(format!(
                "{shown}: the remote file ({have} bytes) is larger than {} ({local_size} bytes)",
                local.display()
            )));
        }
        if have == local_size && have > 0 {
            eprintln!("{shown}: already complete ({have} bytes)");
            quit(client).await;
            return Ok(());
        }
        have
    } else {
        0
    };
    if offset > 0 {
        source
            .seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| Failure::Local(format!("{}: {e}", local.display())))?;
    }
    let label = format!("STOR {shown}");
    let mut progress = Progress::new(label.clone(), Some(local_size), offset);
    let result = client
        .upload(remote, offset, false, source, &mut |bytes| {
            progress.update(bytes)
        })
        .await;
    let bytes = result.context(|| label)?;
    progress.finish(bytes, "done");
    quit(client).await;
    Ok(())
}

// ---- mirror ----

/// How deep `mirror` descends: deeper trees are most likely a symlink loop the listing hid.
const MAX_DEPTH: usize = 32;

/// One entry worth mirroring, from either listing format.
struct Item {
    name: Vec<u8>,
    kind: EntryKind,
    size: Option<u64>,
    modified: Option<Timestamp>,
}

#[derive(Default)]
struct Totals {
    files: u64,
    directories: u64,
    bytes: u64,
    skipped: u64,
}

async fn mirror(
    url: &FtpUrl,
    local: &Path,
    flags: &Flags,
    options: ClientOptions,
) -> Result<(), Failure> {
    let mut client = open(url, options).await?;
    // `ftp://h/pub` mirrors pub: go into it too, so every path below is relative to the tree's root.
    if let Some(last) = url.file_name() {
        client
            .run(Request::Cwd(last.clone()))
            .await
            .context(|| format!("CWD {}", last.to_string_lossy()))?;
    }
    set_type(&mut client, transfer_type(url, flags)).await?;
    let features = client.features().await.context(|| "FEAT".into())?;
    let mut use_mlsd = features.mlst.is_some();
    std::fs::create_dir_all(local)
        .map_err(|e| Failure::Local(format!("{}: {e}", local.display())))?;
    let started = std::time::Instant::now();
    let mut totals = Totals::default();
    // Depth-first, without recursion: (remote path relative to the root, local directory, depth).
    let mut pending: Vec<(Vec<u8>, PathBuf, usize)> = vec![(Vec::new(), local.to_owned(), 0)];
    while let Some((remote_dir, local_dir, depth)) = pending.pop() {
        let items = list_dir(&mut client, &remote_dir, &mut use_mlsd).await?;
        for item in items {
            if !is_safe_name(&item.name) {
                eprintln!(
                    "skipping unsafe name {:?}",
                    String::from_utf8_lossy(&item.name)
                );
                totals.skipped += 1;
                continue;
            }
            let remote = join(&remote_dir, &item.name);
            let local_path = local_dir.join(String::from_utf8_lossy(&item.name).as_ref());
            match item.kind {
                EntryKind::Directory if depth + 1 < MAX_DEPTH => {
                    std::fs::create_dir_all(&local_path)
                        .map_err(|e| Failure::Local(format!("{}: {e}", local_path.display())))?;
                    totals.directories += 1;
                    pending.push((remote, local_path, depth + 1));
                }
                EntryKind::File => {
                    let bytes = fetch(&mut client, &remote, &local_path, &item).await?;
                    totals.files += 1;
                    totals.bytes += bytes;
                }
                _ => {
                    eprintln!("skipping {} (not a file or directory)", show(&remote));
                    totals.skipped += 1;
                }
            }
        }
    }
    eprintln!(
        "mirror {}: {} files, {} directories, {} in {:.2} s{}",
        display_path(url),
        totals.files,
        totals.directories,
        human(totals.bytes),
        started.elapsed().as_secs_f64(),
        match totals.skipped {
            0 => String::new(),
            n => format!(", {n} skipped"),
        }
    );
    quit(client).await;
    Ok(())
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut path = dir.to_vec();
    path.push(b'/');
    path.extend_from_slice(name);
    path
}

fn show(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

/// Lists one directory: MLSD while the server takes it, else LIST (and LIST from then on).
async fn list_dir(
    client: &mut Client,
    dir: &[u8],
    use_mlsd: &mut bool,
) -> Result<Vec<Item>, Failure> {
    let path = match dir.is_empty() {
        true => None,
        false => Some(
            Pathname::new(dir.to_vec())
                .map_err(|e| Failure::Local(format!("{}: {e}", show(dir))))?,
        ),
    };
    if *use_mlsd {
        match client.run(Request::Mlsd { path: path.clone() }).await {
            Ok(Outcome::Facts(entries)) => return Ok(list_items(mlsd_entries(entries))),
            Ok(_) | Err(DriverError::Session(ClientError::Reply(_))) => *use_mlsd = false,
            Err(error) => {
                return Err(Failure::Failed {
                    context: format!("MLSD {}", show(dir)),
                    error,
                });
            }
        }
    }
    let now =
        Timestamp::from_system_time(std::time::SystemTime::now()).unwrap_or(Timestamp::UNIX_EPOCH);
    match client
        .run(Request::List { path, now })
        .await
        .context(|| format!("LIST {}", show(dir)))?
    {
        Outcome::Listing(entries) => Ok(list_items(entries)),
        _ => Ok(Vec::new()),
    }
}

fn list_items(entries: Vec<Result<ListEntry, ftp_proto::listing::ListLineError>>) -> Vec<Item> {
    entries
        .into_iter()
        .flatten()
        .filter(|e| e.name != b"." && e.name != b"..")
        .map(|e| Item {
            name: e.name,
            kind: e.kind,
            size: e.size,
            modified: e.modified.as_ref().map(ListTime::timestamp),
        })
        .collect()
}

/// Downloads one file of the tree and gives it the listed modification time.
async fn fetch(
    client: &mut Client,
    remote: &[u8],
    local: &Path,
    item: &Item,
) -> Result<u64, Failure> {
    let label = format!("RETR {}", show(remote));
    let path =
        Pathname::new(remote.to_vec()).map_err(|e| Failure::Local(format!("{label}: {e}")))?;
    let file = tokio::fs::File::create(local)
        .await
        .map_err(|e| Failure::Local(format!("{}: {e}", local.display())))?;
    let mut progress = Progress::new(label.clone(), item.size, 0);
    let bytes = client
        .download(path, 0, file, &mut |bytes| progress.update(bytes))
        .await
        .context(|| label)?;
    progress.finish(bytes, "done");
    if let Some(modified) = item.modified.and_then(|t| t.to_system_time()) {
        // Best effort: a file system that cannot keep the time keeps the file all the same.
        if let Ok(file) = std::fs::File::options().write(true).open(local) {
            let _ = file.set_modified(modified);
        }
    }
    Ok(bytes)
}
