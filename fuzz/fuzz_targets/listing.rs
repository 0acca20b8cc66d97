//! Directory listings: the client-side parsers on arbitrary bytes, and format→parse round trips of
//! arbitrary entries.
//!
//! Input: `[mode] ...`. An even `mode` feeds the rest, after eight bytes of "now", to `parse_list_line`,
//! `parse_mlsx_line`, `parse_listing` and `parse_mlsx_listing`. An odd `mode` builds a `DirEntry` (every
//! field from the input, times anywhere in years 0..=9999, with sub-second parts) and formats it.
//!
//! Oracles:
//! - parsers: no panic; every parsed entry has a non-empty name (all formats document it); a whole body
//!   gives the same results as its non-empty lines parsed one by one; MLSx facts are lowercased and the
//!   decoded `type`/`size`/`modify` agree with the raw facts;
//! - `format_list_line` → `parse_list_line`: one CRLF line; name (CR/LF written as `?`), kind, size,
//!   symlink target and time (to the minute if recent, else to the day, as the six-month rule says) come
//!   back. Documented exception, skipped: a symlink whose name makes an earlier ` -> `.
//! - `format_mlsx_line` → `parse_mlsx_line`: one CRLF line; name, type, size (not for directories),
//!   modify (whole seconds), perm, unique (when a valid token) and `UNIX.mode` come back. When no fact is
//!   written (none selected, or only facts the entry lacks) the line is ` name`, which reads as an MLST
//!   body line when the name looks like facts (the proptest's exception): then only a fact-less parse
//!   must give the name back. Each entry is also checked with `type` added to its facts.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use ftp_proto::listing::{
    DirEntry, EntryKind, FactSet, ListFormat, ListTime, Metadata, MlsxKind, MlsxType, Permissions,
    format_list_line, format_mlsx_line, parse_list_line, parse_listing, parse_mlsx_line,
    parse_mlsx_listing,
};
use ftp_proto::time::Timestamp;
use ftp_proto_fuzz::Reader;
use libfuzzer_sys::fuzz_target;

/// Half of the average Gregorian year, the six-month rule of `format_list_line`.
const SIX_MONTHS_SECS: i64 = 15_778_476;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

fn secs(s: i64) -> Timestamp {
    Timestamp::from_unix_seconds(s).expect("in range")
}

/// Any timestamp of years 0..=9999, with a sub-second part if `fraction`.
fn timestamp(input: &mut Reader<'_>, fraction: bool) -> Timestamp {
    let span = (MAX_SECS - MIN_SECS + 1) as u64;
    let s = MIN_SECS + (input.u64() % span) as i64;
    let nanos = if fraction {
        input.u32() % 1_000_000_000
    } else {
        0
    };
    let t = if s >= 0 {
        UNIX_EPOCH + Duration::new(s.unsigned_abs(), nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs()) + Duration::from_nanos(nanos.into())
    };
    let t = Timestamp::from_system_time(t).expect("in range");
    assert_eq!((t.unix_seconds(), t.subsec_nanos()), (s, nanos));
    t
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn line_safe(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| if b == b'\r' || b == b'\n' { b'?' } else { b })
        .collect()
}

/// The line ends with CRLF and has no other CR or LF.
fn is_single_line(out: &[u8]) -> bool {
    out.ends_with(b"\r\n")
        && out.iter().position(|&b| b == b'\r' || b == b'\n') == Some(out.len() - 2)
}

fn parse_arbitrary(input: &mut Reader<'_>) {
    let now = timestamp(input, false);
    let body = input.rest();

    let list = parse_list_line(body, now);
    if let Ok(entry) = &list {
        assert!(!entry.name.is_empty(), "empty LIST name: {entry:?}");
        if entry.format != ListFormat::Unix {
            assert!(entry.symlink_target.is_none());
        }
    }
    let mlsx = parse_mlsx_line(body);
    if let Ok(entry) = &mlsx {
        assert!(!entry.name.is_empty(), "empty MLSx name: {entry:?}");
        for (name, _) in &entry.facts {
            assert!(!name.is_empty() && *name == name.to_ascii_lowercase());
        }
        let fact = |wanted: &str| {
            entry
                .facts
                .iter()
                .rev()
                .find(|(n, _)| n == wanted)
                .map(|(_, v)| v.as_slice())
        };
        assert_eq!(entry.kind.is_some(), fact("type").is_some());
        assert_eq!(
            entry.size,
            fact("size").map(|v| lossy(v).parse::<u64>().expect("size parsed"))
        );
        assert_eq!(
            entry.modified,
            fact("modify").map(|v| Timestamp::parse_ftp(v).expect("modify parsed"))
        );
    }

    // A body is its non-empty lines, each parsed alone.
    let lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .map(|line| {
            let end = line.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1);
            &line[..end]
        })
        .filter(|line| !line.is_empty())
        .collect();
    let listing = parse_listing(body, now);
    let one_by_one: Vec<_> = lines.iter().map(|l| parse_list_line(l, now)).collect();
    assert_eq!(listing, one_by_one, "parse_listing differs from its lines");
    let mlsx_listing = parse_mlsx_listing(body);
    let one_by_one: Vec<_> = lines.iter().map(|l| parse_mlsx_line(l)).collect();
    assert_eq!(
        mlsx_listing, one_by_one,
        "parse_mlsx_listing differs from its lines"
    );
    for entry in listing.iter().flatten() {
        assert!(!entry.name.is_empty() && !entry.name.contains(&b'\n'));
    }
    for entry in mlsx_listing.iter().flatten() {
        assert!(!entry.name.is_empty() && !entry.name.contains(&b'\n'));
    }
}

fn arbitrary_entry(input: &mut Reader<'_>) -> Option<DirEntry> {
    let kind = match input.u8() % 4 {
        0 => EntryKind::File,
        1 => EntryKind::Directory,
        2 => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    let flags = input.u8();
    let mut meta = Metadata::file(input.u64());
    meta.kind = kind;
    meta.mode = input.u32();
    meta.nlink = input.u64();
    meta.modified = (flags & 1 != 0).then(|| timestamp(input, flags & 2 != 0));
    meta.owner = lossy(input.short_bytes());
    meta.group = lossy(input.short_bytes());
    let unique = input.short_bytes();
    meta.unique = (flags & 4 != 0).then(|| lossy(unique));
    let target = input.short_bytes();
    meta.symlink_target = (flags & 8 != 0).then(|| target.to_vec());
    let name = input.short_bytes();
    // A directory entry has a name; the formatters are not asked to print a nameless one.
    (!name.is_empty()).then(|| DirEntry::new(name.to_vec(), meta))
}

fn list_round_trip(entry: &DirEntry, now: Timestamp) {
    let meta = &entry.metadata;
    let name = line_safe(&entry.name);
    let target = match meta.kind {
        EntryKind::Symlink => meta.symlink_target.as_deref().map(line_safe),
        _ => None,
    };
    // The parser splits `name -> target` at the first arrow after the name's first byte: a symlink
    // whose own name makes an earlier arrow can't come back (documented on parse_list_line).
    if meta.kind == EntryKind::Symlink {
        let mut shown = name.clone();
        if let Some(target) = &target {
            shown.extend_from_slice(b" -> ");
            shown.extend_from_slice(target);
        }
        let first_arrow = shown
            .get(1..)
            .and_then(|tail| memchr_find(tail, b" -> "))
            .map(|i| i + 1);
        let expected_arrow = target.as_ref().map(|_| name.len());
        if first_arrow != expected_arrow {
            return;
        }
    }

    let mut out = Vec::new();
    format_list_line(entry, now, &mut out);
    assert!(is_single_line(&out), "not one line: {:?}", lossy(&out));
    let parsed = parse_list_line(&out, now)
        .unwrap_or_else(|e| panic!("{e}: {:?} does not parse back", lossy(&out)));
    assert_eq!(parsed.format, ListFormat::Unix);
    assert_eq!(parsed.name, name, "name of {:?}", lossy(&out));
    assert_eq!(parsed.kind, meta.kind, "kind of {:?}", lossy(&out));
    assert_eq!(parsed.size, Some(meta.size), "size of {:?}", lossy(&out));
    assert_eq!(parsed.symlink_target, target, "target of {:?}", lossy(&out));
    let t = meta
        .modified
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .unix_seconds();
    let age = now.unix_seconds() - t;
    let expected_time = if meta.modified.is_some() && (0..SIX_MONTHS_SECS).contains(&age) {
        ListTime::Minute(secs(t - t.rem_euclid(60)))
    } else {
        ListTime::Day(secs(t - t.rem_euclid(86_400)))
    };
    assert_eq!(
        parsed.modified,
        Some(expected_time),
        "time of {:?} (now {now})",
        lossy(&out)
    );
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_fact_token(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b",.:!@#$%^&()-_+?/\\'\"".contains(&b))
}

fn mlsx_round_trip(
    entry: &DirEntry,
    facts: FactSet,
    perms: Permissions,
    mlsx_type: Option<MlsxType>,
) {
    let meta = &entry.metadata;
    let mut out = Vec::new();
    format_mlsx_line(entry, facts, perms, mlsx_type, &mut out);
    assert!(is_single_line(&out), "not one line: {:?}", lossy(&out));
    let parsed = parse_mlsx_line(&out);
    if out.starts_with(b" ") {
        // No fact was written (none selected, or only ones this entry lacks: `size` of a directory,
        // `modify` without a time, an invalid `unique`). ` name` is a fact-less MLSD line unless the name
        // itself reads as facts, when it is an MLST body line (documented on parse_mlsx_line).
        if let Ok(parsed) = &parsed {
            assert!(parsed.name == line_safe(&entry.name) || !parsed.facts.is_empty());
        }
        return;
    }
    let parsed = parsed.unwrap_or_else(|e| panic!("{e}: {:?} does not parse back", lossy(&out)));
    assert_eq!(
        parsed.name,
        line_safe(&entry.name),
        "name of {:?}",
        lossy(&out)
    );
    let is_dir = mlsx_type.is_some() || meta.kind == EntryKind::Directory;
    let expected_kind = match (mlsx_type, meta.kind) {
        (Some(MlsxType::Cdir), _) => MlsxKind::Cdir,
        (Some(MlsxType::Pdir), _) => MlsxKind::Pdir,
        (None, EntryKind::File) => MlsxKind::File,
        (None, EntryKind::Directory) => MlsxKind::Dir,
        (None, EntryKind::Symlink) => MlsxKind::Symlink,
        (None, _) => MlsxKind::Other("OS.unix=other".into()),
    };
    assert_eq!(
        parsed.kind,
        facts.contains(FactSet::TYPE).then_some(expected_kind)
    );
    assert_eq!(
        parsed.size,
        (facts.contains(FactSet::SIZE) && !is_dir).then_some(meta.size)
    );
    let whole_seconds = meta.modified.map(|t| secs(t.unix_seconds()));
    assert_eq!(
        parsed.modified,
        whole_seconds.filter(|_| facts.contains(FactSet::MODIFY))
    );
    assert_eq!(
        parsed.perm.as_deref(),
        facts
            .contains(FactSet::PERM)
            .then(|| perms.fact_value(is_dir))
    );
    let expected_unique = meta
        .unique
        .clone()
        .filter(|u| facts.contains(FactSet::UNIQUE) && is_fact_token(u.as_bytes()));
    assert_eq!(parsed.unique, expected_unique);
    let mode = format!("{:04o}", meta.mode & 0o7777).into_bytes();
    assert_eq!(
        parsed
            .facts
            .iter()
            .find(|(n, _)| n == "unix.mode")
            .map(|(_, v)| v.clone()),
        facts.contains(FactSet::UNIX_MODE).then_some(mode)
    );
}

/// A fact set from the bits of `bits`, built with the public API.
fn fact_set(bits: u8) -> FactSet {
    [
        FactSet::TYPE,
        FactSet::SIZE,
        FactSet::MODIFY,
        FactSet::PERM,
        FactSet::UNIQUE,
        FactSet::UNIX_MODE,
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| bits & (1 << i) != 0)
    .fold(FactSet::empty(), |set, (_, fact)| set.union(fact))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let mode = input.u8();
    if mode & 1 == 0 {
        parse_arbitrary(&mut input);
        return;
    }
    let now = timestamp(&mut input, false);
    let options = input.u8();
    let Some(entry) = arbitrary_entry(&mut input) else {
        return;
    };
    list_round_trip(&entry, now);
    let perms = Permissions {
        read: options & 0x40 != 0,
        write: options & 0x80 != 0,
    };
    let mlsx_type = match mode >> 1 & 3 {
        1 => Some(MlsxType::Cdir),
        2 => Some(MlsxType::Pdir),
        _ => None,
    };
    mlsx_round_trip(&entry, fact_set(options), perms, mlsx_type);
    mlsx_round_trip(
        &entry,
        fact_set(options).union(FactSet::TYPE),
        perms,
        mlsx_type,
    );
});
