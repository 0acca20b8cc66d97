//! `LIST`, `MLSD` and `STAT`: directory entries and what each one shows.
//!
//! A symlink whose target stays beneath the root is listed as `name -> target`, as `ls -l` does. A link
//! that leads out (or that cannot be followed beneath the root at all) is listed as a symlink with no
//! target and size 0: the entry is there (hiding it would surprise whoever made it, and `DELE`/`RNFR`
//! still act on it), but the host path it names is not shown, not even its length. `ls -l` shows a link
//! whose target it cannot read the same way, so clients parse the line as an ordinary symlink entry.

use cap_std::fs::MetadataExt;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use cap_std::fs::{Dir, FileType, Metadata as FsMetadata};
use ftp_proto::listing::{DirEntry, EntryKind, Metadata};
use ftp_proto::path::VirtualPath;
use ftp_proto::server::{Completion, StorageError};
use ftp_proto::time::Timestamp;

use super::resolve::{is_escape, relative, storage_error};

/// Host user and group names, for the owner and group columns.
#[derive(Debug, Default)]
pub struct IdNames {
    pub users: HashMap<u32, String>,
    pub groups: HashMap<u32, String>,
}

impl IdNames {
    /// Reads `/etc/passwd` and `/etc/group` (empty maps if unreadable).
    pub fn load() -> IdNames {
        IdNames {
            users: read_id_names(Path::new("/etc/passwd")),
            groups: read_id_names(Path::new("/etc/group")),
        }
    }
}

/// A directory's entries (at most `limit`), or the single entry of a file.
pub fn list(
    root: &Dir,
    names: &IdNames,
    path: &VirtualPath,
    limit: usize,
) -> Result<Completion, StorageError> {
    let rel = relative(path);
    let metadata = root.metadata(&rel).map_err(storage_error)?;
    let directory = metadata.is_dir();
    let entries = if directory {
        read_directory(root, &rel, names, limit)?
    } else {
        let name = path.file_name().unwrap_or(b"/").to_vec();
        vec![DirEntry::new(name, to_metadata(names, &metadata, None))]
    };
    let now = Timestamp::from_system_time(SystemTime::now()).unwrap_or(Timestamp::UNIX_EPOCH);
    Ok(Completion::Entries {
        entries,
        directory,
        now,
    })
}

fn read_directory(
    root: &Dir,
    rel: &Path,
    names: &IdNames,
    limit: usize,
) -> Result<Vec<DirEntry>, StorageError> {
    let dir = root.open_dir(rel).map_err(storage_error)?;
    let mut entries = Vec::new();
    for item in dir.entries().map_err(storage_error)?.take(limit) {
        // An entry that vanished or cannot be read is left out rather than failing the listing.
        let Ok(item) = item else { continue };
        let Ok(metadata) = item.metadata() else {
            continue;
        };
        let name = item.file_name();
        let link = metadata
            .file_type()
            .is_symlink()
            .then(|| link_target(root, &dir, &rel.join(&name), &name));
        let shown = to_metadata(names, &metadata, link);
        entries.push(DirEntry::new(name.as_bytes().to_vec(), shown));
    }
    Ok(entries)
}

/// What a symlink entry shows as its target: `Some(text)` if following it stays beneath the root
/// (checked from the root, not from `dir`: a `../x` link in a subdirectory may well stay inside), `None`
/// for a link leading out.
fn link_target(root: &Dir, dir: &Dir, from_root: &Path, name: &std::ffi::OsStr) -> Option<Vec<u8>> {
    if matches!(root.metadata(from_root), Err(ref e) if is_escape(e)) {
        return None;
    }
    let target = dir.read_link_contents(name).ok()?;
    Some(target.as_os_str().as_bytes().to_vec())
}

/// What `LIST`, `MLSD` and `SIZE`/`MDTM` show for one entry. `link`: `Some` for a symlink, with the
/// target to show (`None` inside: hidden).
pub fn to_metadata(
    names: &IdNames,
    metadata: &FsMetadata,
    link: Option<Option<Vec<u8>>>,
) -> Metadata {
    let mut m = match &link {
        Some(Some(target)) => Metadata::symlink(target.clone()),
        _ => Metadata::file(metadata.len()),
    };
    m.kind = entry_kind(metadata.file_type());
    m.size = match link {
        Some(None) => 0, // a hidden target's length is not shown either
        _ => metadata.len(),
    };
    m.modified = metadata
        .modified()
        .ok()
        .and_then(|t| Timestamp::from_system_time(t.into_std()));
    m.mode = metadata.mode() & 0o7777;
    m.nlink = metadata.nlink();
    m.owner = id_name(&names.users, metadata.uid());
    m.group = id_name(&names.groups, metadata.gid());
    m.unique = Some(format!("{:x}g{:x}", metadata.dev(), metadata.ino()));
    m
}

fn entry_kind(file_type: FileType) -> EntryKind {
    if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        // Devices, FIFOs and sockets: listed, never opened as files.
        EntryKind::Other
    }
}

fn id_name(names: &HashMap<u32, String>, id: u32) -> String {
    names.get(&id).cloned().unwrap_or_else(|| id.to_string())
}

/// Reads `name:x:id:...` lines (`/etc/passwd`, `/etc/group`) into an id → name map; empty if unreadable.
fn read_id_names(path: &Path) -> HashMap<u32, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse().ok()?;
            Some((id, name.to_owned()))
        })
        .collect()
}
