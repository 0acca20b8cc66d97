//! Virtual paths: the server-side view of a client's pathname, which can never climb above `/`.
//!
//! RFC 959 §4.1 lets the client name files with any `pathname` (a string of bytes with no defined
//! syntax or character set; RFC 2640 later suggests UTF-8 but does not require it), relative to the
//! working directory set with CWD/CDUP (§4.1.1). A server must map those names onto its storage without
//! ever letting `..` escape the tree it exports. [`VirtualPath`] is that map's input: an absolute,
//! normalised byte path in which `..` has already been applied, so a storage driver only has to join
//! [`VirtualPath::components`] onto its own root.
//!
//! Rules ([`VirtualPath::resolve`]):
//! - a path starting with `/` is absolute, anything else is relative to the working directory;
//! - repeated `/` collapse, `.` is dropped, `..` removes the previous component and is ignored at the root
//!   (`/../../etc` is `/etc`), exactly as a chrooted Unix process would see it;
//! - there is no percent-decoding or other escaping in FTP: `%2e%2e` is a file name;
//! - `\` is an ordinary byte. A driver on Unix maps components 1:1 onto directory entries; a driver
//!   must never hand a component to an OS API that treats `\` (or `:`, drive letters, ...) as special:
//!   [`VirtualPath::components`] makes each component easy to check;
//! - a NUL byte is refused (it would truncate the name in every C API);
//! - the length and depth are bounded by [`PathLimits`].
//!
//! ```
//! use ftp_proto::path::{PathLimits, VirtualPath};
//!
//! let cwd = VirtualPath::root().resolve(b"/pub/linux", PathLimits::default()).unwrap();
//! assert_eq!(cwd.resolve(b"../../../../etc//passwd", PathLimits::default()).unwrap().as_bytes(), b"/etc/passwd");
//! assert_eq!(cwd.resolve(b"./kernel/", PathLimits::default()).unwrap().as_bytes(), b"/pub/linux/kernel");
//! assert_eq!(cwd.resolve(b"", PathLimits::default()).unwrap(), cwd);
//! ```

use std::fmt;

/// An absolute, normalised virtual path.
///
/// Invariant (held by construction): starts with `/`; no empty, `.` or `..` component; no trailing `/`
/// except for the root itself; no NUL byte. The only ways to build one are [`VirtualPath::root`],
/// [`VirtualPath::resolve`], [`VirtualPath::join`] and [`VirtualPath::parent`], each of which keeps the
/// invariant.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualPath(Vec<u8>);

/// Bounds applied by [`VirtualPath::resolve`].
///
/// The defaults match Linux's `PATH_MAX` (4096 bytes) and allow 256 components: generous for any real
/// tree, small enough that a hostile client cannot make the server hold or hand to its storage a
/// pathologically long path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathLimits {
    /// Maximum length of the resolved path in bytes, counting every `/` (default 4096).
    pub max_len: usize,
    /// Maximum number of components of the resolved path (default 256).
    pub max_depth: usize,
}

impl PathLimits {
    /// Limits with the given maximum length (bytes) and depth (components).
    pub const fn new(max_len: usize, max_depth: usize) -> Self {
        PathLimits { max_len, max_depth }
    }
}

impl Default for PathLimits {
    fn default() -> Self {
        PathLimits::new(4096, 256)
    }
}

/// Why a client-supplied path or name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The input contains a NUL byte.
    #[error("path contains a NUL byte")]
    Nul,
    /// The resolved path is longer than [`PathLimits::max_len`].
    #[error("path too long")]
    TooLong,
    /// The resolved path has more components than [`PathLimits::max_depth`].
    #[error("path has too many components")]
    TooDeep,
    /// Not a single valid component: empty, `.`, `..`, or containing `/` or NUL.
    #[error("invalid file name")]
    InvalidName,
}

impl VirtualPath {
    /// The root directory `/`.
    pub fn root() -> Self {
        VirtualPath(vec![b'/'])
    }

    /// The path as bytes, e.g. `b"/pub/file.txt"`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0 == b"/"
    }

    /// Resolves a client-supplied path against `self`, the working directory.
    ///
    /// Absolute if `input` starts with `/`, else relative; empty input is the working directory. Repeated
    /// `/` collapse, `.` is dropped and `..` pops one component but never goes above `/`. `\` and `%` are
    /// ordinary bytes (see the [module docs](self)).
    ///
    /// Errors: [`PathError::Nul`] if `input` contains a NUL byte anywhere (even in a component a later
    /// `..` would remove); [`PathError::TooLong`] / [`PathError::TooDeep`] if the *resolved* path exceeds
    /// `limits`. The work and memory are linear in `self` plus `input`; it never panics.
    ///
    /// ```
    /// use ftp_proto::path::{PathError, PathLimits, VirtualPath};
    ///
    /// let home = VirtualPath::root().join(b"home").unwrap();
    /// let limits = PathLimits::default();
    /// assert_eq!(home.resolve(b"a/../../../b", limits).unwrap().as_bytes(), b"/b");
    /// assert_eq!(home.resolve(b"...", limits).unwrap().as_bytes(), b"/home/..."); // a legal name
    /// assert_eq!(home.resolve(b"a\0b", limits), Err(PathError::Nul));
    /// ```
    pub fn resolve(&self, input: &[u8], limits: PathLimits) -> Result<VirtualPath, PathError> {
        if memchr::memchr(0, input).is_some() {
            return Err(PathError::Nul);
        }
        // `buf` holds "/c1/c2..." with no leading root slash for the root itself (empty = root), so
        // pushing is "/" + name and popping is truncating at the last '/'.
        let mut buf = Vec::new();
        let mut depth = 0usize;
        if !input.starts_with(b"/") && !self.is_root() {
            buf.reserve(self.0.len() + input.len() + 1);
            buf.extend_from_slice(&self.0);
            depth = self.components().count();
        } else {
            buf.reserve(input.len() + 1);
        }
        for component in input.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => {
                    if depth > 0 {
                        let last_slash = memchr::memrchr(b'/', &buf).unwrap_or(0);
                        buf.truncate(last_slash);
                        depth -= 1;
                    }
                }
                name => {
                    buf.push(b'/');
                    buf.extend_from_slice(name);
                    depth += 1;
                }
            }
        }
        if buf.is_empty() {
            buf.push(b'/');
        }
        if buf.len() > limits.max_len {
            return Err(PathError::TooLong);
        }
        if depth > limits.max_depth {
            return Err(PathError::TooDeep);
        }
        Ok(VirtualPath(buf))
    }

    /// The parent directory; `None` for the root.
    ///
    /// ```
    /// use ftp_proto::path::VirtualPath;
    /// let p = VirtualPath::root().join(b"a").unwrap().join(b"b").unwrap();
    /// assert_eq!(p.parent().unwrap().as_bytes(), b"/a");
    /// assert!(VirtualPath::root().parent().is_none());
    /// ```
    pub fn parent(&self) -> Option<VirtualPath> {
        if self.is_root() {
            return None;
        }
        match memchr::memrchr(b'/', &self.0) {
            Some(0) | None => Some(VirtualPath::root()),
            Some(i) => self.0.get(..i).map(|p| VirtualPath(p.to_vec())),
        }
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&[u8]> {
        if self.is_root() {
            return None;
        }
        let start = memchr::memrchr(b'/', &self.0).map_or(0, |i| i + 1);
        self.0.get(start..)
    }

    /// Appends a single component `name`.
    ///
    /// `name` must be one valid component: not empty, not `.` or `..`, no `/` and no NUL, else
    /// [`PathError::InvalidName`]. No [`PathLimits`] are applied: `join` is meant for names coming from
    /// storage (directory entries), not from the client; client input goes through [`resolve`](Self::resolve).
    ///
    /// ```
    /// use ftp_proto::path::{PathError, VirtualPath};
    /// assert_eq!(VirtualPath::root().join(b"etc").unwrap().as_bytes(), b"/etc");
    /// assert_eq!(VirtualPath::root().join(b".."), Err(PathError::InvalidName));
    /// assert_eq!(VirtualPath::root().join(b"a/b"), Err(PathError::InvalidName));
    /// ```
    pub fn join(&self, name: &[u8]) -> Result<VirtualPath, PathError> {
        if matches!(name, b"" | b"." | b"..") || name.iter().any(|&b| b == b'/' || b == 0) {
            return Err(PathError::InvalidName);
        }
        let mut buf = Vec::with_capacity(self.0.len() + 1 + name.len());
        if !self.is_root() {
            buf.extend_from_slice(&self.0);
        }
        buf.push(b'/');
        buf.extend_from_slice(name);
        Ok(VirtualPath(buf))
    }

    /// The components from the root down; empty for the root. Never yields `""`, `"."` or `".."`.
    ///
    /// ```
    /// use ftp_proto::path::{PathLimits, VirtualPath};
    /// let p = VirtualPath::root().resolve(b"/a/./b//c", PathLimits::default()).unwrap();
    /// assert_eq!(p.components().collect::<Vec<_>>(), [&b"a"[..], b"b", b"c"]);
    /// ```
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// Whether `base` is this path or one of its ancestors, compared component-wise (`/ab` does not
    /// start with `/a`).
    pub fn starts_with(&self, base: &VirtualPath) -> bool {
        if base.is_root() {
            return true;
        }
        match self.0.strip_prefix(base.0.as_slice()) {
            Some(rest) => rest.is_empty() || rest.starts_with(b"/"),
            None => false,
        }
    }

    /// The path as text, with invalid UTF-8 replaced by U+FFFD (for logs and messages only).
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl AsRef<[u8]> for VirtualPath {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtualPath({:?})", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(path: &[u8]) -> VirtualPath {
        VirtualPath::root()
            .resolve(path, PathLimits::default())
            .unwrap()
    }

    fn resolve(cwd: &[u8], input: &[u8]) -> Result<Vec<u8>, PathError> {
        at(cwd)
            .resolve(input, PathLimits::default())
            .map(|p| p.as_bytes().to_vec())
    }

    /// The invariant every VirtualPath must hold.
    fn holds_invariant(p: &VirtualPath, limits: PathLimits) -> bool {
        let b = p.as_bytes();
        b.starts_with(b"/")
            && !b.contains(&0)
            && (b == b"/" || !b.ends_with(b"/"))
            && b.get(1..)
                .unwrap_or_default()
                .split(|&c| c == b'/')
                .all(|c| !matches!(c, b"" | b"." | b"..") || b == b"/")
            && b.len() <= limits.max_len
            && p.components().count() <= limits.max_depth
    }

    #[test]
    fn traversal_table() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[
            // (working dir, input, expected)
            (b"/", b"..", b"/"),
            (b"/", b"../..", b"/"),
            (b"/pub", b"..", b"/"),
            (b"/pub/a", b"../..", b"/"),
            (b"/pub/a", b"../../../../..", b"/"),
            (b"/pub", b"/../../etc/passwd", b"/etc/passwd"),
            (b"/pub", b"../../etc/passwd", b"/etc/passwd"),
            (b"/pub", b"a/../../b", b"/b"),
            (b"/pub", b"a/../b", b"/pub/b"),
            (b"/pub", b"//", b"/"),
            (b"/pub", b"///a//b/", b"/a/b"),
            (b"/pub", b"./.", b"/pub"),
            (b"/pub", b".", b"/pub"),
            (b"/pub", b"...", b"/pub/..."),
            (b"/pub", b"..../x", b"/pub/..../x"),
            (b"/pub", b".hidden", b"/pub/.hidden"),
            (b"/pub", b"..\\..\\x", b"/pub/..\\..\\x"),
            (b"/pub", b"%2e%2e/x", b"/pub/%2e%2e/x"),
            (b"/pub", b"%2e%2e%2fx", b"/pub/%2e%2e%2fx"),
            (b"/pub", b"dir/", b"/pub/dir"),
            (b"/pub", b"dir//", b"/pub/dir"),
            (b"/pub", b"/", b"/"),
            (b"/pub", b"", b"/pub"),
            (b"/", b"", b"/"),
            (b"/pub/a", b"b/c/../../d", b"/pub/a/d"),
            (b"/pub", b" spaced name ", b"/pub/ spaced name "),
            (b"/pub", b"\xff\xfe", b"/pub/\xff\xfe"),
            (b"/pub", b"C:\\Windows", b"/pub/C:\\Windows"),
            (b"/a/b/c", b"..", b"/a/b"),
            (b"/a/b/c", b"../../..", b"/"),
            (b"/a/b/c", b"../../../x/./y/..", b"/x"),
        ];
        for (cwd, input, expected) in cases {
            assert_eq!(
                resolve(cwd, input),
                Ok(expected.to_vec()),
                "cwd {:?} input {:?}",
                String::from_utf8_lossy(cwd),
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn nul_is_refused_anywhere() {
        for input in [&b"\0"[..], b"a\0", b"/x/\0/..", b"ok/../\0"] {
            assert_eq!(resolve(b"/pub", input), Err(PathError::Nul));
        }
    }

    #[test]
    fn limits_apply_to_the_resolved_path() {
        let limits = PathLimits::new(10, 3);
        let root = VirtualPath::root();
        assert_eq!(
            root.resolve(b"/123456789", limits)
                .unwrap()
                .as_bytes()
                .len(),
            10
        );
        assert_eq!(
            root.resolve(b"/1234567890", limits),
            Err(PathError::TooLong)
        );
        assert_eq!(
            root.resolve(b"a/b/c", limits).unwrap().as_bytes(),
            b"/a/b/c"
        );
        assert_eq!(root.resolve(b"a/b/c/d", limits), Err(PathError::TooDeep));
        // A long input that resolves to something short is fine.
        let mut long = b"x/../".repeat(10_000);
        long.extend_from_slice(b"ok");
        assert_eq!(root.resolve(&long, limits).unwrap().as_bytes(), b"/ok");
        // The working directory counts towards the limits of a relative path.
        let cwd = root.resolve(b"/a/b", limits).unwrap();
        assert_eq!(cwd.resolve(b"c/d", limits), Err(PathError::TooDeep));
        assert_eq!(cwd.resolve(b"/c/d", limits).unwrap().as_bytes(), b"/c/d");
    }

    #[test]
    fn deep_paths_with_default_limits() {
        let deep = b"d/".repeat(256);
        assert_eq!(
            at(b"/")
                .resolve(&deep, PathLimits::default())
                .unwrap()
                .components()
                .count(),
            256
        );
        let deeper = b"d/".repeat(257);
        assert_eq!(
            at(b"/").resolve(&deeper, PathLimits::default()),
            Err(PathError::TooDeep)
        );
        let long = vec![b'x'; 4096];
        assert_eq!(
            at(b"/").resolve(&long, PathLimits::default()),
            Err(PathError::TooLong)
        );
        assert!(
            at(b"/")
                .resolve(&long[..4095], PathLimits::default())
                .is_ok()
        );
    }

    #[test]
    fn parent_file_name_join() {
        let p = at(b"/a/b");
        assert_eq!(p.file_name(), Some(&b"b"[..]));
        assert_eq!(p.parent(), Some(at(b"/a")));
        assert_eq!(at(b"/a").parent(), Some(VirtualPath::root()));
        assert_eq!(VirtualPath::root().file_name(), None);
        assert!(VirtualPath::root().is_root());
        assert!(!p.is_root());
        assert_eq!(at(b"/a").join(b"b"), Ok(p.clone()));
        assert_eq!(VirtualPath::root().join(b"..."), Ok(at(b"/...")));
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0"] {
            assert_eq!(p.join(bad), Err(PathError::InvalidName), "{bad:?}");
        }
        assert_eq!(p.join(b"a\\b").unwrap().as_bytes(), b"/a/b/a\\b");
    }

    #[test]
    fn starts_with_is_component_wise() {
        assert!(at(b"/a/b").starts_with(&at(b"/a")));
        assert!(at(b"/a/b").starts_with(&at(b"/a/b")));
        assert!(at(b"/a/b").starts_with(&VirtualPath::root()));
        assert!(VirtualPath::root().starts_with(&VirtualPath::root()));
        assert!(!at(b"/ab").starts_with(&at(b"/a")));
        assert!(!at(b"/a").starts_with(&at(b"/a/b")));
        assert!(!VirtualPath::root().starts_with(&at(b"/a")));
    }

    #[test]
    fn formatting() {
        let p = at(b"/caf\xc3\xa9/\xff");
        assert_eq!(p.to_string(), "/café/\u{fffd}");
        assert_eq!(format!("{p:?}"), "VirtualPath(\"/café/\u{fffd}\")");
        assert_eq!(p.to_string_lossy(), "/café/\u{fffd}");
    }

    fn arb_path_bytes() -> impl Strategy<Value = Vec<u8>> {
        // Mostly path-like bytes so that "..", "." and "//" occur often, plus any byte at all.
        proptest::collection::vec(
            prop_oneof![
                4 => Just(b'/'),
                4 => Just(b'.'),
                2 => Just(b'a'),
                1 => Just(b'\\'),
                1 => Just(0u8),
                1 => any::<u8>(),
            ],
            0..64,
        )
    }

    proptest! {
        #[test]
        fn resolve_keeps_the_invariant(
            cwd in arb_path_bytes(),
            input in arb_path_bytes(),
            max_len in 1usize..80,
            max_depth in 0usize..12,
        ) {
            let limits = PathLimits::new(max_len, max_depth);
            let Ok(cwd) = VirtualPath::root().resolve(&cwd, PathLimits::default()) else {
                return Ok(());
            };
            prop_assert!(holds_invariant(&cwd, PathLimits::default()));
            match cwd.resolve(&input, limits) {
                Ok(p) => {
                    prop_assert!(holds_invariant(&p, limits), "{:?}", p);
                    // Idempotent: the result's own bytes resolve to itself, from anywhere.
                    prop_assert_eq!(VirtualPath::root().resolve(p.as_bytes(), limits), Ok(p.clone()));
                    prop_assert_eq!(cwd.resolve(p.as_bytes(), limits), Ok(p.clone()));
                    for c in p.components() {
                        prop_assert!(!matches!(c, b"" | b"." | b".."));
                    }
                }
                Err(PathError::Nul) => prop_assert!(input.contains(&0)),
                Err(PathError::TooLong | PathError::TooDeep) => {}
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
            }
        }

        #[test]
        fn parent_and_join_are_inverse(input in arb_path_bytes()) {
            let Ok(p) = VirtualPath::root().resolve(&input, PathLimits::default()) else {
                return Ok(());
            };
            if let (Some(parent), Some(name)) = (p.parent(), p.file_name()) {
                prop_assert!(holds_invariant(&parent, PathLimits::default()));
                prop_assert_eq!(parent.join(name), Ok(p.clone()));
                prop_assert!(p.starts_with(&parent));
            } else {
                prop_assert!(p.is_root());
            }
        }
    }
}
