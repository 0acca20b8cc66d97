//! `VirtualPath::resolve` from the root and from an arbitrary working directory, with small limits.
//!
//! Input: `[max_len] [max_depth] [cwd length] [cwd bytes] [name length] [name bytes] [path ...]`. The
//! limits are small (`max_len % 80`, `max_depth % 12`; a 255 byte selects the defaults) so both limit errors
//! happen. The working directory is the cwd bytes resolved from `/` with default limits (the root if they
//! don't resolve).
//!
//! Oracles:
//! - `resolve` equals a plain model (a stack of components; NUL refused first, then `TooLong` on the resolved
//!   length, then `TooDeep`), error kind included;
//! - a resolved path keeps the invariant: starts with `/`, no `""`/`.`/`..` component, no trailing `/`
//!   except the root, no NUL, within the limits;
//! - re-resolving its bytes, from the root or from the working directory, gives it back;
//! - `parent().join(file_name())` gives it back, `starts_with(parent)` holds, `file_name` has no `/`;
//! - `join(name)` accepts exactly the valid single components and then `parent`/`file_name` undo it.
#![no_main]

use ftp_proto::path::{PathError, PathLimits, VirtualPath};
use ftp_proto_fuzz::Reader;
use libfuzzer_sys::fuzz_target;

/// The components of `cwd` resolved with `input`, as the module docs describe it.
fn model(cwd: &VirtualPath, input: &[u8], limits: PathLimits) -> Result<Vec<u8>, PathError> {
    if input.contains(&0) {
        return Err(PathError::Nul);
    }
    let mut stack: Vec<&[u8]> = if input.starts_with(b"/") {
        Vec::new()
    } else {
        cwd.components().collect()
    };
    for component in input.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                stack.pop();
            }
            name => stack.push(name),
        }
    }
    let mut bytes = Vec::new();
    for component in &stack {
        bytes.push(b'/');
        bytes.extend_from_slice(component);
    }
    if bytes.is_empty() {
        bytes.push(b'/');
    }
    if bytes.len() > limits.max_len {
        return Err(PathError::TooLong);
    }
    if stack.len() > limits.max_depth {
        return Err(PathError::TooDeep);
    }
    Ok(bytes)
}

/// The invariant of the type's docs, plus the limits.
fn check_invariant(p: &VirtualPath, limits: PathLimits) {
    let b = p.as_bytes();
    assert!(b.starts_with(b"/"), "{p:?} is not absolute");
    assert!(!b.contains(&0), "{p:?} has a NUL");
    assert!(b.len() <= limits.max_len, "{p:?} is over max_len");
    if b != b"/" {
        assert!(!b.ends_with(b"/"), "{p:?} has a trailing slash");
        for component in b[1..].split(|&c| c == b'/') {
            assert!(
                !matches!(component, b"" | b"." | b".."),
                "{p:?} has a bad component"
            );
        }
    }
    assert_eq!(p.is_root(), b == b"/");
    assert!(p.components().count() <= limits.max_depth, "{p:?} too deep");
    assert!(p.components().all(|c| !matches!(c, b"" | b"." | b"..")));
}

fn check_parent_and_name(p: &VirtualPath) {
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => {
            assert!(!p.is_root());
            assert!(!name.is_empty() && !name.contains(&b'/'));
            assert_eq!(parent.join(name).as_ref(), Ok(p), "parent/join round trip");
            assert!(p.starts_with(&parent) && p.starts_with(p));
            assert!(!parent.starts_with(p));
            assert_eq!(parent.components().count() + 1, p.components().count());
        }
        (None, None) => assert!(p.is_root()),
        other => panic!("parent and file_name disagree on {p:?}: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let (len, depth) = (input.u8(), input.u8());
    let limits = if len == 255 || depth == 255 {
        PathLimits::default()
    } else {
        PathLimits::new(usize::from(len % 80), usize::from(depth % 12))
    };
    let cwd_bytes = input.short_bytes();
    let name = input.short_bytes();
    let path = input.rest();

    let root = VirtualPath::root();
    let cwd = root
        .resolve(cwd_bytes, PathLimits::default())
        .unwrap_or_else(|_| VirtualPath::root());
    check_invariant(&cwd, PathLimits::default());
    check_parent_and_name(&cwd);

    for base in [&root, &cwd] {
        let resolved = base.resolve(path, limits);
        assert_eq!(
            resolved.as_ref().map(VirtualPath::as_bytes).map_err(|e| *e),
            model(base, path, limits).as_deref().map_err(|e| *e),
            "resolve differs from the model"
        );
        if let Ok(p) = resolved {
            check_invariant(&p, limits);
            assert_eq!(root.resolve(p.as_bytes(), limits).as_ref(), Ok(&p));
            assert_eq!(cwd.resolve(p.as_bytes(), limits).as_ref(), Ok(&p));
            assert_eq!(p.resolve(b"", limits).as_ref(), Ok(&p));
            assert_eq!(p.resolve(b".", limits).as_ref(), Ok(&p));
            check_parent_and_name(&p);
        }
    }

    let valid_name =
        !matches!(name, b"" | b"." | b"..") && !name.contains(&b'/') && !name.contains(&0);
    match cwd.join(name) {
        Ok(joined) => {
            assert!(valid_name, "join accepted {name:?}");
            assert_eq!(joined.file_name(), Some(name));
            assert_eq!(joined.parent().as_ref(), Some(&cwd));
            assert!(joined.starts_with(&cwd));
            check_invariant(&joined, PathLimits::new(usize::MAX, usize::MAX));
        }
        Err(e) => {
            assert!(!valid_name, "join refused {name:?}");
            assert_eq!(e, PathError::InvalidName);
        }
    }
});
