//! Commands that report on the control connection: `STAT` (of the session or of a path), `MLST`,
//! `HELP`, `FEAT`, `OPTS` and `LANG`.
//!
//! None of them changes what the session does next (except `OPTS MLST`, which picks the facts `MLST`
//! and `MLSD` show); the replies built here are the multi-line ones.

use crate::command::{ListArgs, OptsArg, Pathname, Text, TransferType, Verb};
use crate::data::LocalAction;
use crate::feat::FeatureSet;
use crate::listing::{self, DirEntry, FactSet};
use crate::path::VirtualPath;
use crate::reply::{Reply, ReplyCode};
use crate::time::Timestamp;

use super::io::{Action, RequestId, StorageRequest};
use super::storage::Then;
use super::{Pending, Session};

/// Entries `STAT path` lists on the control connection. The reply is built in memory as one unit (it
/// cannot be streamed like a data-connection listing), so it gets a tighter bound than `LIST`.
const STAT_LISTING_LIMIT: usize = 10_000;

/// The `FEAT` lines that belong to no one verb of [`crate::command::VERBS`] (whose `feat` column gives
/// the rest): RFC 3659's `TVFS` (`/`-separated paths) and RFC 2640's `UTF8`.
const FEATURES_WITHOUT_A_VERB: &[&str] = &["TVFS", "UTF8"];

impl Session {
    // ---- informational commands ----

    /// `STAT` with no argument and no transfer: the session's state.
    pub(super) fn status(&mut self) {
        let user = self.user().unwrap_or("(not logged in)").to_owned();
        let mode = match self.transfer_type {
            TransferType::Ascii(_) => "ASCII",
            _ => "BINARY",
        };
        let lines = [
            "FTP server status:".to_owned(),
            format!("Connected to {}", self.info.peer),
            format!("Logged in as {user}"),
            format!("TYPE: {mode}, STRUcture: File, MODE: Stream"),
            format!(
                "Session timeout in seconds is {}",
                self.config.idle_timeout.as_secs()
            ),
            "End of status".to_owned(),
        ];
        self.send(&Reply::multiline(ReplyCode::SYSTEM_STATUS, lines));
    }

    /// `STAT` during a transfer (RFC 959 §4.1.3): how far it is.
    pub(super) fn transfer_status(&mut self) {
        let (verb, path, bytes) = match &self.transfer {
            Some(t) => (t.verb, t.path.to_string_lossy(), t.bytes()),
            None => return,
        };
        self.reply(
            ReplyCode::FILE_STATUS,
            format!("Status: {verb} {path}: {bytes} bytes transferred."),
        );
    }

    /// `STAT path`: a listing on the control connection, gathered part by part.
    pub(super) fn stat_path(&mut self, args: &ListArgs) {
        let target = match args.path() {
            Some(p) => self.resolve(p),
            None => Some(self.cwd.clone()),
        };
        if let Some(path) = target {
            let request = StorageRequest::List {
                path: path.clone(),
                limit: self.stat_listing_limit(),
            };
            let then = Then::ReportListing {
                path,
                entries: Vec::new(),
            };
            self.storage(request, then);
        }
    }

    /// One more part of a `STAT path` listing: ask for the next, or reply if the bound is reached.
    pub(super) fn stat_listing_part(
        &mut self,
        id: RequestId,
        path: VirtualPath,
        mut entries: Vec<DirEntry>,
        part: Vec<DirEntry>,
        now: Timestamp,
    ) {
        self.append_bounded(&mut entries, part);
        if entries.len() >= self.stat_listing_limit() {
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted: true }));
            return self.report_listing(&path, entries, now);
        }
        self.actions.push_back(Action::ReadEntries { id });
        let then = Then::ReportListing { path, entries };
        self.wait_for(Pending::Storage { id, then });
    }

    /// Appends a part of a `STAT path` listing, up to the entries it shows at most.
    pub(super) fn append_bounded(&self, entries: &mut Vec<DirEntry>, part: Vec<DirEntry>) {
        let room = self.stat_listing_limit().saturating_sub(entries.len());
        entries.extend(part.into_iter().take(room));
    }

    /// Entries `STAT path` shows at most.
    fn stat_listing_limit(&self) -> usize {
        self.config.max_listing_entries.min(STAT_LISTING_LIMIT)
    }

    /// The reply of `STAT path`: its entries as `ls -l` lines, sorted by name.
    pub(super) fn report_listing(
        &mut self,
        path: &VirtualPath,
        mut entries: Vec<DirEntry>,
        now: Timestamp,
    ) {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut body = Vec::new();
        for entry in &entries {
            listing::format_list_line(entry, now, &mut body);
        }
        let mut lines = vec![format!("Status of {}:", path.to_string_lossy()).into_bytes()];
        lines.extend(listing::body_lines(&body).map(<[u8]>::to_vec));
        lines.push(b"End of status.".to_vec());
        self.send(&Reply::multiline(ReplyCode::FILE_STATUS, lines));
    }

    /// `MLST [path]`: the facts of one path (the working directory by default).
    pub(super) fn mlst(&mut self, path: Option<&Pathname>) {
        let target = match path {
            Some(p) => self.resolve(p),
            None => Some(self.cwd.clone()),
        };
        if let Some(path) = target {
            self.storage(StorageRequest::Stat(path.clone()), Then::ReportFacts(path));
        }
    }

    /// `MLST`: RFC 3659 §7.2, one fact line (starting with a space) between `250-` and `250 End`.
    pub(super) fn report_facts(&mut self, path: VirtualPath, metadata: crate::listing::Metadata) {
        let entry = DirEntry {
            name: path.as_bytes().to_vec(),
            metadata,
        };
        let mut line = vec![b' '];
        listing::format_mlsx_line(&entry, self.mlst_facts, self.permissions(), None, &mut line);
        while matches!(line.last(), Some(b'\r' | b'\n')) {
            line.pop();
        }
        let first = format!("Listing {}", path.to_string_lossy()).into_bytes();
        self.send(&Reply::multiline(
            ReplyCode::FILE_ACTION_OK,
            [first, line, b"End".to_vec()],
        ));
    }

    /// `HELP [verb]`: the syntax of one verb, or every verb the server knows.
    pub(super) fn help(&mut self, topic: Option<&[u8]>) {
        if let Some(topic) = topic {
            if let Some(verb) = Verb::lookup(topic) {
                self.reply(ReplyCode::HELP, format!("Syntax: {}", verb.syntax));
            } else {
                self.reply(ReplyCode::SYNTAX_ERROR_ARGUMENTS, "Unknown command.");
            }
            return;
        }
        let verbs: Vec<&str> = crate::command::known_verbs().collect();
        let mut lines = vec!["The following commands are recognized.".to_owned()];
        lines.extend(verbs.chunks(8).map(|row| format!(" {}", row.join(" "))));
        lines.push("Help OK.".to_owned());
        self.send(&Reply::multiline(ReplyCode::HELP, lines));
    }

    /// `FEAT` (RFC 2389): the `feat` column of the verb table, the features of no one verb, and `MLST`.
    pub(super) fn features(&mut self) {
        let verb_features = crate::command::VERBS.iter().filter_map(|verb| verb.feat);
        let mlst = self.mlst_facts.feat_line();
        // RFC 4217 §6: a server that offers TLS lists it (and its data protection commands) here.
        let tls: &[&str] = match (self.config.tls.offered, self.config.tls.allow_clear_control) {
            (false, _) => &[],
            (true, false) => &["AUTH TLS", "PBSZ", "PROT", "SSCN"],
            (true, true) => &["AUTH TLS", "PBSZ", "PROT", "SSCN", "CCC"],
        };
        let lines = verb_features
            .chain(FEATURES_WITHOUT_A_VERB.iter().copied())
            .chain(tls.iter().copied())
            .chain(std::iter::once(mlst.as_str()));
        let reply = FeatureSet::from_lines(lines).to_reply();
        self.send(&reply);
    }

    /// `OPTS` (RFC 2389): `UTF8` and `MLST` facts.
    pub(super) fn options(&mut self, arg: OptsArg) {
        match arg {
            OptsArg::Utf8(true) => self.reply(ReplyCode::COMMAND_OK, "Always in UTF8 mode."),
            OptsArg::Utf8(false) => self.reply(
                ReplyCode::COMMAND_OK,
                "Pathnames pass as bytes; no conversion is made.",
            ),
            OptsArg::Mlst(facts) => {
                self.mlst_facts = FactSet::parse_opts(&facts);
                let text = self.mlst_facts.opts_reply_text();
                self.reply(ReplyCode::COMMAND_OK, text);
            }
            _ => self.reply(ReplyCode::SYNTAX_ERROR_ARGUMENTS, "Option not understood."),
        }
    }

    /// `LANG [tag]` (RFC 2640): English is the only language.
    pub(super) fn language(&mut self, tag: Option<&Text>) {
        match tag {
            Some(t) if !t.as_bytes().to_ascii_uppercase().starts_with(b"EN") => self.reply(
                ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                "Only English is available.",
            ),
            _ => self.reply(
                ReplyCode::COMMAND_OK,
                "Using the default language, English.",
            ),
        }
    }
}
