//! The answer to `FEAT` (RFC 2389 §3), as a typed [`FeatureSet`]: one model that the server formats
//! ([`FeatureSet::to_reply`]) and the client parses ([`FeatureSet::from_reply`]).
//!
//! A server lists one feature per inner line of a multi-line 211 reply, each line starting with a space:
//! the feature name, then optional parameters (`REST STREAM`, `MLST type*;size*;`, `AUTH TLS`). Names are
//! case-insensitive (RFC 2389 §3.2). A single-line 211 reply means "no extensions".

use crate::reply::{Reply, ReplyCode};

/// The most `AUTH` mechanisms kept. Servers name two or three (`TLS`, `SSL`, `TLS-C`); without a bound a
/// 1 MiB `FEAT` reply could name 170 000, each checked against all kept before.
const MAX_AUTH_MECHANISMS: usize = 64;

/// One fact a server offers in its `MLST` feature line (RFC 3659 §7.8): `size*` is offered and enabled,
/// `unique` is offered but disabled (enable it with `OPTS MLST`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlstFact {
    /// The fact name, as the server wrote it (compare case-insensitively).
    pub name: String,
    /// Whether the server currently includes it (it was marked with `*`).
    pub enabled: bool,
}

/// The extensions a server announced in its `FEAT` reply.
///
/// ```
/// use ftp_proto::feat::FeatureSet;
/// use ftp_proto::reply::{Reply, ReplyCode};
///
/// let reply = Reply::multiline(
///     ReplyCode::SYSTEM_STATUS,
///     ["Features:", " EPSV", " MLST type*;size*;modify;", " REST STREAM", " UTF8", "End"],
/// );
/// let features = FeatureSet::from_reply(&reply);
/// assert!(features.epsv && features.rest_stream && features.utf8);
/// assert!(!features.eprt);
/// let facts = features.mlst.as_ref().unwrap();
/// assert_eq!((facts[1].name.as_str(), facts[1].enabled), ("size", true));
/// assert_eq!((facts[2].name.as_str(), facts[2].enabled), ("modify", false));
/// assert_eq!(features.parameters("rest"), Some(&b"STREAM"[..]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FeatureSet {
    /// `UTF8` (RFC 2640): pathnames are UTF-8.
    pub utf8: bool,
    /// `MLST` (RFC 3659 §7): the facts offered; `None` if MLST/MLSD are not supported.
    pub mlst: Option<Vec<MlstFact>>,
    /// `EPSV` (RFC 2428).
    pub epsv: bool,
    /// `EPRT` (RFC 2428).
    pub eprt: bool,
    /// `REST STREAM` (RFC 3659 §5): restarted transfers in stream mode.
    pub rest_stream: bool,
    /// `SIZE` (RFC 3659 §4).
    pub size: bool,
    /// `MDTM` (RFC 3659 §3).
    pub mdtm: bool,
    /// `MFMT` (draft-somers-ftp-mfxx).
    pub mfmt: bool,
    /// `TVFS` (RFC 3659 §6): `/`-separated pathnames.
    pub tvfs: bool,
    /// `HOST` (RFC 7151).
    pub host: bool,
    /// The mechanisms of the `AUTH` feature lines (RFC 4217), e.g. `["TLS", "SSL"]`, upper case, without
    /// duplicates, at most the first 64.
    pub auth: Vec<String>,
    /// Every feature line as sent, without its leading space.
    pub lines: Vec<Vec<u8>>,
}

impl FeatureSet {
    /// Reads the feature lines of a `FEAT` reply: every line between the first and the last. Lines
    /// nobody defined are kept in [`FeatureSet::lines`] only.
    pub fn from_reply(reply: &Reply) -> FeatureSet {
        let count = reply.line_count();
        let inner = reply
            .lines()
            .take(count.saturating_sub(1))
            .skip(1)
            .map(<[u8]>::trim_ascii);
        let mut set = FeatureSet::default();
        for line in inner.filter(|line| !line.is_empty()) {
            set.add_line(line);
        }
        set
    }

    /// A set of these feature lines (each without its leading space), read as a client would.
    ///
    /// ```
    /// use ftp_proto::feat::{FeatureSet, MlstFact};
    ///
    /// let facts = [MlstFact::new("type", true), MlstFact::new("unique", false)];
    /// let set = FeatureSet::from_lines(["UTF8", "EPSV", &MlstFact::feature_line(&facts)]);
    /// let wire = set.to_reply().to_bytes();
    /// assert_eq!(wire, b"211-Features:\r\n EPSV\r\n MLST type*;unique;\r\n UTF8\r\n211 End\r\n");
    /// let parsed = FeatureSet::from_reply(&set.to_reply());
    /// assert!(parsed.utf8 && parsed.epsv && !parsed.eprt);
    /// assert_eq!(parsed.mlst.as_deref(), Some(&facts[..]));
    /// ```
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> FeatureSet {
        let mut set = FeatureSet::default();
        for line in lines
            .into_iter()
            .map(str::trim_ascii)
            .filter(|line| !line.is_empty())
        {
            set.add_line(line.as_bytes());
        }
        set
    }

    /// The `211` reply listing these features, sorted by name as vsftpd and ProFTPD list them (a set
    /// with no features still lists none between `Features:` and `End`, which clients accept).
    pub fn to_reply(&self) -> Reply {
        let mut lines: Vec<&[u8]> = self.lines.iter().map(Vec::as_slice).collect();
        lines.sort_unstable();
        let inner = lines.into_iter().map(|line| {
            let mut text = Vec::with_capacity(line.len() + 1);
            text.push(b' ');
            text.extend_from_slice(line);
            text
        });
        let all = std::iter::once(b"Features:".to_vec())
            .chain(inner)
            .chain(std::iter::once(b"End".to_vec()));
        Reply::multiline(ReplyCode::SYSTEM_STATUS, all)
    }

    /// Whether the server named feature `name` (case-insensitive), with or without parameters.
    pub fn supports(&self, name: &str) -> bool {
        self.parameters(name).is_some()
    }

    /// The parameters of feature `name` (case-insensitive): empty if it has none, `None` if the server
    /// did not name it. For a feature named on several lines (`AUTH`), the first line's.
    pub fn parameters(&self, name: &str) -> Option<&[u8]> {
        self.lines.iter().find_map(|line| {
            let (feature, params) = split_feature(line);
            feature
                .eq_ignore_ascii_case(name.as_bytes())
                .then_some(params)
        })
    }

    fn add_line(&mut self, line: &[u8]) {
        let (name, params) = split_feature(line);
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        match name.as_str() {
            "UTF8" => self.utf8 = true,
            "EPSV" => self.epsv = true,
            "EPRT" => self.eprt = true,
            "SIZE" => self.size = true,
            "MDTM" => self.mdtm = true,
            "MFMT" => self.mfmt = true,
            "TVFS" => self.tvfs = true,
            "HOST" => self.host = true,
            "REST" => {
                self.rest_stream |= params
                    .split(|&b| b == b' ')
                    .any(|word| word.eq_ignore_ascii_case(b"STREAM"))
            }
            "MLST" => self.mlst = Some(parse_mlst_facts(params)),
            "AUTH" => {
                let mechanisms = params
                    .split(|&b| matches!(b, b' ' | b';' | b','))
                    .filter(|m| !m.is_empty());
                for mechanism in mechanisms {
                    // The bound keeps the duplicate check linear in the reply, whatever it names.
                    if self.auth.len() >= MAX_AUTH_MECHANISMS {
                        break;
                    }
                    let mechanism = String::from_utf8_lossy(mechanism).to_ascii_uppercase();
                    if !self.auth.contains(&mechanism) {
                        self.auth.push(mechanism);
                    }
                }
            }
            _ => {}
        }
        self.lines.push(line.to_vec());
    }
}

impl MlstFact {
    /// A fact `name`, marked `enabled` or not.
    pub fn new(name: impl Into<String>, enabled: bool) -> Self {
        MlstFact {
            name: name.into(),
            enabled,
        }
    }

    /// The `MLST` feature line for these facts (RFC 3659 §7.8), without the leading space:
    /// `MLST type*;size*;unique;`.
    pub fn feature_line(facts: &[MlstFact]) -> String {
        let mut line = String::from("MLST ");
        for fact in facts {
            line.push_str(&fact.name);
            if fact.enabled {
                line.push('*');
            }
            line.push(';');
        }
        line
    }
}

/// `fact*;fact;` into facts (RFC 3659 §7.8).
fn parse_mlst_facts(params: &[u8]) -> Vec<MlstFact> {
    params
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|fact| !fact.is_empty())
        .map(|fact| {
            let (name, enabled) = match fact.strip_suffix(b"*") {
                Some(name) => (name, true),
                None => (fact, false),
            };
            MlstFact {
                name: String::from_utf8_lossy(name).into_owned(),
                enabled,
            }
        })
        .collect()
}

/// Splits a feature line at its first space into name and parameters.
fn split_feature(line: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', line) {
        Some(space) => {
            let (name, rest) = line.split_at(space);
            (name, rest.trim_ascii())
        }
        None => (line, b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::{ReplyParser, ReplyParserLimits};

    fn parse(wire: &[u8]) -> FeatureSet {
        let mut parser = ReplyParser::new(ReplyParserLimits::default());
        let (consumed, outcome) = parser.parse(wire);
        assert_eq!(consumed, wire.len());
        let Some(Ok(reply)) = outcome else {
            panic!("not a reply: {outcome:?}");
        };
        FeatureSet::from_reply(&reply)
    }

    #[test]
    fn vsftpd_with_tls() {
        let f = parse(
            b"211-Features:\r\n AUTH SSL\r\n AUTH TLS\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n PBSZ\r\n \
              PROT\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End\r\n",
        );
        assert!(f.eprt && f.epsv && f.mdtm && f.rest_stream && f.size && f.tvfs && f.utf8);
        assert!(!f.mfmt && f.mlst.is_none());
        assert_eq!(f.auth, ["SSL", "TLS"]);
        assert_eq!(f.lines.len(), 12);
        assert!(f.supports("pasv") && f.supports("PBSZ") && !f.supports("MLST"));
    }

    #[test]
    fn proftpd() {
        let f = parse(
            b"211-Features:\r\n LANG en-US*\r\n MDTM\r\n MFMT\r\n TVFS\r\n UTF8\r\n \
              MFF modify;UNIX.group;UNIX.mode;\r\n \
              MLST modify*;perm*;size*;type*;unique*;UNIX.group*;UNIX.groupname*;UNIX.mode*;UNIX.owner*;UNIX.ownername*;\r\n \
              REST STREAM\r\n SIZE\r\n211 End\r\n",
        );
        assert!(f.mdtm && f.mfmt && f.tvfs && f.utf8 && f.rest_stream && f.size);
        assert!(!f.epsv && !f.eprt);
        let facts = f.mlst.clone().unwrap();
        assert_eq!(facts.len(), 10);
        assert!(facts.iter().all(|fact| fact.enabled));
        assert_eq!(facts[5].name, "UNIX.group");
        assert_eq!(f.parameters("LANG"), Some(&b"en-US*"[..]));
    }

    #[test]
    fn pyftpdlib() {
        let f = parse(
            b"211-Features supported:\r\n EPRT\r\n EPSV\r\n MDTM\r\n MFMT\r\n \
              MLST type*;perm*;size*;modify*;unique;unix.mode;unix.uid;unix.gid;\r\n REST STREAM\r\n \
              SIZE\r\n TVFS\r\n UTF8\r\n211 End FEAT.\r\n",
        );
        assert!(
            f.eprt && f.epsv && f.mdtm && f.mfmt && f.rest_stream && f.size && f.tvfs && f.utf8
        );
        let facts = f.mlst.unwrap();
        let enabled: Vec<&str> = facts
            .iter()
            .filter(|f| f.enabled)
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(enabled, ["type", "perm", "size", "modify"]);
        assert_eq!(facts.len(), 8);
    }

    /// Regression: every `AUTH` mechanism was checked against all kept before: quadratic (a 960 KB
    /// `FEAT` of 171 000 mechanisms took 41 s). At most `MAX_AUTH_MECHANISMS` are kept now.
    #[test]
    fn auth_mechanisms_are_bounded() {
        let mut wire = b"211-Features:\r\n AUTH TLS SSL tls".to_vec();
        for i in 0..1000 {
            wire.extend_from_slice(format!(" M{i}").as_bytes());
        }
        wire.extend_from_slice(b"\r\n AUTH GSSAPI\r\n211 End\r\n");
        let f = parse(&wire);
        assert_eq!(f.auth.len(), 64);
        assert_eq!(
            f.auth[..3],
            ["TLS", "SSL", "M0"],
            "duplicates dropped, order kept"
        );
        assert!(f.supports("AUTH") && f.lines.len() == 2);
    }

    #[test]
    fn no_features_and_oddities() {
        assert_eq!(parse(b"211 No features\r\n"), FeatureSet::default());
        // Lines without the leading space, mixed case, blank lines and an AUTH list on one line.
        let f = parse(b"211-Extensions:\r\nepsv\r\n\r\n Auth tls;ssl\r\n rest\r\n211 END\r\n");
        assert!(f.epsv && !f.rest_stream);
        assert_eq!(f.auth, ["TLS", "SSL"]);
        assert_eq!(
            f.lines,
            [b"epsv".to_vec(), b"Auth tls;ssl".to_vec(), b"rest".to_vec()]
        );
    }
}
