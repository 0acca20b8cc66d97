//! `LIST`, `MLSD` and `STAT`: directory entries and what each one shows.
//!
//! A large directory is listed in parts of [`LISTING_PART`] entries ([`DirCursor`]), each sent when the
//! session asks for it. Its names are read and sorted up front (a listing is in name order, as `ls` and
//! vsftpd give it, and clients and people expect); the expensive part (a `stat` per entry, owner names,
//! the formatted line) is done a part at a time, so a client that stalls its listing holds the names and
//! one part, not every entry's metadata.
//!
//! A symlink whose target stays beneath the root is listed as `name -> target`, as `ls -l` does. A link
//! that leads out (or that cannot be followed beneath the root at all) is listed as a symlink with no
//! target and size 0: the entry is there (hiding it would surprise whoever made it, and `DELE`/`RNFR`
//! still act on it), but the host path it names is not shown, not even its length. `ls -l` shows a link
//! whose target it cannot read the same way, so clients parse the line as an ordinary symlink entry.

use cap_std::fs::MetadataExt;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
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

/// Entries per part of a streamed listing: about 200 KiB of metadata in memory per listing, however large
/// the directory. A directory that fits in one part (nearly all) is listed in one.
pub const LISTING_PART: usize = 1000;

/// A directory being listed a part at a time: its open handle and the sorted names not yet listed.
/// Between parts it holds one file descriptor and those names (at most the listing bound of them).
pub struct DirCursor {
    dir: Dir,
    /// The directory's path from the root, to check where each symlink leads.
    rel: PathBuf,
    /// The names still to list, in name order.
    rest: std::vec::IntoIter<OsString>,
}

impl std::fmt::Debug for DirCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirCursor")
            .field("rel", &self.rel)
            .field("rest", &self.rest.len())
            .finish_non_exhaustive()
    }
}

/// The first part of a listing: a file's single entry, a whole directory (`None`: nothing more), or the
/// first [`LISTING_PART`] entries of a large one with the cursor for the rest.
pub fn list(
    root: &Dir,
    names: &IdNames,
    path: &VirtualPath,
    limit: usize,
) -> Result<(Completion, Option<DirCursor>), StorageError> {
    let rel = relative(path);
    let metadata = root.metadata(&rel).map_err(storage_error)?;
    if !metadata.is_dir() {
        let name = path.file_name().unwrap_or(b"/").to_vec();
        let entries = vec![DirEntry::new(name, to_metadata(names, &metadata, None))];
        let completion = Completion::Entries {
            entries,
            directory: false,
            now: wall_clock(),
        };
        return Ok((completion, None));
    }
    let dir = root.open_dir(&rel).map_err(storage_error)?;
    // An entry that cannot be read is left out rather than failing the listing. Bytewise order, as the
    // session sorts each part.
    let mut sorted: Vec<OsString> = dir
        .entries()
        .map_err(storage_error)?
        .filter_map(|item| item.ok().map(|item| item.file_name()))
        .take(limit)
        .collect();
    sorted.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut cursor = DirCursor {
        dir,
        rel,
        rest: sorted.into_iter(),
    };
    let (completion, more) = cursor.next_part(root, names);
    Ok((completion, more.then_some(cursor)))
}

impl DirCursor {
    /// The next part (`EntriesPart`, or `Entries` for the last one) and whether more follow.
    pub fn next_part(&mut self, root: &Dir, names: &IdNames) -> (Completion, bool) {
        let mut entries = Vec::new();
        for name in self.rest.by_ref().take(LISTING_PART) {
            // An entry that vanished since the names were read is left out.
            let Ok(metadata) = self.dir.symlink_metadata(&name) else {
                continue;
            };
            let link = metadata
                .file_type()
                .is_symlink()
                .then(|| link_target(root, &self.dir, &self.rel.join(&name), &name));
            let shown = to_metadata(names, &metadata, link);
            entries.push(DirEntry::new(name.into_vec(), shown));
        }
        let now = wall_clock();
        let more = self.rest.len() > 0;
        let completion = if more {
            Completion::EntriesPart { entries, now }
        } else {
            Completion::Entries {
                entries,
                directory: true,
                now,
            }
        };
        (completion, more)
    }
}

fn wall_clock() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now()).unwrap_or(Timestamp::UNIX_EPOCH)
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
