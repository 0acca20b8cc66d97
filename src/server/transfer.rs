//! One data transfer: a download, an upload or a listing, from opening to the final reply.
//!
//! The transfer pumps chunks between a source and a sink with at most `window` chunks in flight (the
//! shared [`Pump`]), so memory per session is bounded by `window × chunk size` whatever the file size, and
//! the driver's file and socket work can overlap. Every chunk passes through here as `Bytes`: counted (for
//! `STAT` and the log), converted in TYPE A, handed on untouched in TYPE I.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::data::{DataAction, LocalAction, NetworkEnd, Pump};
use crate::listing::{self, DirEntry, FactSet, Permissions};
use crate::path::VirtualPath;
use crate::time::Timestamp;
use crate::transcode::Transcoder;

use super::io::{Action, RequestId};

/// The largest chunk a listing is formatted into before it is sent.
const LISTING_CHUNK: usize = 64 * 1024;

/// Which way the bytes go and where they come from.
#[derive(Debug)]
pub(super) enum Direction {
    /// `RETR`: file to data connection.
    Download,
    /// `STOR`, `APPE`, `STOU`: data connection to file.
    Upload,
    /// `LIST`, `NLST`, `MLSD`: formatted entries to data connection.
    Listing(ListingSource),
}

/// How a listing prints its entries.
#[derive(Clone, Copy, Debug)]
pub(super) enum ListingFormat {
    /// `LIST`: `ls -l` lines.
    Long,
    /// `NLST`: names only.
    Names,
    /// `MLSD`: RFC 3659 fact lines.
    Facts(FactSet, Permissions),
}

/// A listing being formatted lazily, one chunk at a time, from entries the driver delivers whole or in
/// parts (see [`Completion::EntriesPart`](super::Completion::EntriesPart)).
#[derive(Debug)]
pub(super) struct ListingSource {
    pub(super) format: ListingFormat,
    /// `NLST dir` names its entries `dir/name`, the path as the client wrote it, so that `RETR` of each
    /// name works from the same working directory (`mget dir/*`). ProFTPD and vsftpd do the same.
    name_prefix: Option<Vec<u8>>,
    /// Whether the path listed is a directory (else `entries` is the file's single entry).
    directory: bool,
    /// The current part; `next` is the first entry not yet formatted.
    entries: Vec<DirEntry>,
    next: usize,
    now: Timestamp,
    /// Whether the driver has more parts, and whether the next one has been asked for.
    more: bool,
    asked: bool,
    /// Entries still accepted: the listing bound, over all parts, enforced here too so that a driver
    /// that sends more than asked cannot grow the session.
    room: usize,
}

/// What a listing has to send next.
#[derive(Debug)]
pub(super) enum ListingNext {
    /// Formatted entries.
    Chunk(Bytes),
    /// Everything delivered is sent; the driver's next part is needed.
    NeedMore,
    /// Every entry is sent.
    Done,
}

impl ListingSource {
    pub(super) fn new(format: ListingFormat, name_prefix: Option<Vec<u8>>, limit: usize) -> Self {
        ListingSource {
            format,
            name_prefix,
            directory: true,
            entries: Vec::new(),
            next: 0,
            now: Timestamp::UNIX_EPOCH,
            more: false,
            asked: false,
            room: limit,
        }
    }

    /// Installs a part the driver read (`more`: others follow), sorted by name as `ls` does. Returns
    /// `true` if the listing bound cut the listing short while the driver still had more: the driver
    /// must then be told to let go of the rest.
    pub(super) fn fill(
        &mut self,
        mut entries: Vec<DirEntry>,
        directory: bool,
        now: Timestamp,
        more: bool,
    ) -> bool {
        entries.truncate(self.room);
        self.room -= entries.len();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        self.entries = entries;
        self.next = 0;
        self.directory = directory;
        self.now = now;
        self.asked = false;
        self.more = more && self.room > 0;
        more && !self.more
    }

    /// Whether the next part has been asked for and not yet delivered.
    pub(super) fn is_asked(&self) -> bool {
        self.asked
    }

    /// Whether the driver still holds more of this listing.
    pub(super) fn has_more(&self) -> bool {
        self.more
    }

    /// The name `NLST` shows for an entry.
    fn nlst_name(&self, entry: &DirEntry, out: &mut Vec<u8>) {
        match (&self.name_prefix, self.directory) {
            (None, _) => listing::format_nlst_line(&entry.name, out),
            // A file argument names itself, as the client wrote it.
            (Some(prefix), false) => listing::format_nlst_line(prefix, out),
            (Some(prefix), true) => {
                let mut name = prefix.clone();
                if !name.ends_with(b"/") {
                    name.push(b'/');
                }
                name.extend_from_slice(&entry.name);
                listing::format_nlst_line(&name, out);
            }
        }
    }

    /// Formats the next chunk of at most about [`LISTING_CHUNK`] bytes.
    pub(super) fn next_chunk(&mut self) -> ListingNext {
        let mut out = Vec::new();
        while out.len() < LISTING_CHUNK {
            let Some(entry) = self.entries.get(self.next) else {
                break;
            };
            match self.format {
                ListingFormat::Long => listing::format_list_line(entry, self.now, &mut out),
                ListingFormat::Names => self.nlst_name(entry, &mut out),
                ListingFormat::Facts(facts, perms) => {
                    listing::format_mlsx_line(entry, facts, perms, None, &mut out)
                }
            }
            self.next += 1;
        }
        if !out.is_empty() {
            ListingNext::Chunk(Bytes::from(out))
        } else if self.more {
            // The formatted part is dropped before the next one arrives: one part in memory at a time.
            self.entries = Vec::new();
            self.next = 0;
            ListingNext::NeedMore
        } else {
            ListingNext::Done
        }
    }

    /// Marks the next part as asked for; `false` if it already was.
    fn ask(&mut self) -> bool {
        !std::mem::replace(&mut self.asked, true)
    }
}

/// Where the transfer is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for the driver to open the file or read the directory.
    Opening,
    /// Waiting for the data connection.
    Connecting,
    /// Waiting for the data connection's TLS handshake (the 150 is out).
    Securing,
    /// Moving bytes.
    Running,
    /// Upload: waiting for the driver to confirm the file is stored.
    Closing,
}

/// A transfer in progress.
#[derive(Debug)]
pub(super) struct Transfer {
    pub(super) id: RequestId,
    pub(super) verb: &'static str,
    pub(super) path: VirtualPath,
    pub(super) direction: Direction,
    pub(super) phase: Phase,
    /// The size the driver reported when it opened the file.
    pub(super) size: Option<u64>,
    /// Whether a file is open at the driver (so aborting must close it).
    pub(super) file_open: bool,
    /// The passive listener (the id of its `PASV`/`EPSV`) this transfer took its data connection from:
    /// it is closed with the transfer.
    pub(super) listener: Option<RequestId>,
    /// The data connection's TLS role (`None`: plaintext), fixed when it is opened: `PROT` and `SSCN`
    /// cannot change it half-way, nor can a one-shot `CPSV` that ended meanwhile.
    pub(super) tls: Option<crate::data::TlsRole>,
    pump: Pump,
}

/// What the session should do after the transfer took a step.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing yet: more chunks are in flight.
    Continue,
    /// Every byte is written: finish the transfer.
    Finished,
}

impl Transfer {
    pub(super) fn new(
        id: RequestId,
        verb: &'static str,
        path: VirtualPath,
        direction: Direction,
        transcoder: Transcoder,
    ) -> Self {
        // The bytes counted are those on the data connection: read from it for an upload, written to it
        // for a download or a listing.
        let network = match direction {
            Direction::Upload => NetworkEnd::Source,
            Direction::Download | Direction::Listing(_) => NetworkEnd::Sink,
        };
        Transfer {
            id,
            verb,
            path,
            direction,
            phase: Phase::Opening,
            size: None,
            file_open: false,
            listener: None,
            tls: None,
            pump: Pump::new(transcoder, network),
        }
    }

    /// Bytes that crossed the data connection so far.
    pub(super) fn bytes(&self) -> u64 {
        self.pump.bytes()
    }

    /// Asks for chunks until the window is full. Listings produce their chunks right here (asking the
    /// driver for a listing's next part when the current one is all sent).
    pub(super) fn pump(&mut self, window: usize, actions: &mut VecDeque<Action>) {
        let id = self.id;
        while self.pump.ask(window) {
            match &mut self.direction {
                Direction::Download => actions.push_back(Action::Local(LocalAction::Read { id })),
                Direction::Upload => actions.push_back(Action::Data(DataAction::Receive { id })),
                Direction::Listing(source) => match source.next_chunk() {
                    ListingNext::Chunk(data) => {
                        if let Some(data) = self.pump.made(data) {
                            actions.push_back(Action::Data(DataAction::Send { id, data }));
                        }
                    }
                    ListingNext::NeedMore => {
                        self.pump.release();
                        if source.ask() {
                            actions.push_back(Action::ReadEntries { id });
                        }
                        break;
                    }
                    ListingNext::Done => {
                        self.pump.release();
                        self.pump.finish_source();
                        break;
                    }
                },
            }
        }
    }

    /// A chunk arrived from the source (the file for a download, the data connection for an upload).
    /// Converts it and passes it to the sink; a chunk that converted to nothing (a lone CR held back)
    /// frees its window slot instead.
    pub(super) fn on_chunk(&mut self, chunk: Bytes, actions: &mut VecDeque<Action>) {
        let id = self.id;
        match self.direction {
            Direction::Download => {
                if let Some(data) = self.pump.chunk(chunk) {
                    actions.push_back(Action::Data(DataAction::Send { id, data }));
                }
            }
            Direction::Upload => {
                if let Some(data) = self.pump.chunk(chunk) {
                    actions.push_back(Action::Local(LocalAction::Write { id, data }));
                }
            }
            // A listing has no external source; a stray chunk is the driver's mistake and is dropped.
            Direction::Listing(_) => {}
        }
    }

    /// The source has no more bytes: flush the converter.
    pub(super) fn on_end_of_source(&mut self, actions: &mut VecDeque<Action>) -> Step {
        if let Some(data) = self.pump.source_ended() {
            let id = self.id;
            let action = match self.direction {
                Direction::Upload => Action::Local(LocalAction::Write { id, data }),
                Direction::Download | Direction::Listing(_) => {
                    Action::Data(DataAction::Send { id, data })
                }
            };
            actions.push_back(action);
        }
        self.step()
    }

    /// A chunk was written by the sink.
    pub(super) fn on_written(&mut self) -> Step {
        self.pump.written();
        self.step()
    }

    pub(super) fn step(&self) -> Step {
        if self.pump.is_finished() {
            Step::Finished
        } else {
            Step::Continue
        }
    }

    /// Whether this transfer reads from the data connection.
    pub(super) fn is_upload(&self) -> bool {
        matches!(self.direction, Direction::Upload)
    }

    /// Whether the transfer waits for listing entries from the driver: a listing's first answer while
    /// opening, or a part it asked for with `ReadEntries`.
    pub(super) fn awaits_entries(&self) -> bool {
        match &self.direction {
            Direction::Listing(source) => self.phase == Phase::Opening || source.is_asked(),
            Direction::Download | Direction::Upload => false,
        }
    }

    /// The listing being filled, if this is a listing.
    pub(super) fn listing_mut(&mut self) -> Option<&mut ListingSource> {
        match &mut self.direction {
            Direction::Listing(source) => Some(source),
            _ => None,
        }
    }
}
