//! The commands that start a transfer (`RETR`, `STOR`, `APPE`, `STOU`, `LIST`, `NLST`, `MLSD`) and the
//! parameters they consume (`TYPE`, `REST`).
//!
//! Each checks rights and paths, chooses the converter and the storage request, and hands over to
//! [`Session::start_transfer`]; what happens after that is in `transfer_phases`.

use crate::command::{FormatControl, ListArgs, Pathname, TransferType};
use crate::path::VirtualPath;
use crate::reply::ReplyCode;
use crate::transcode::{CrLfToLf, LfToCrLf, Transcoder};

use super::io::{Action, StorageRequest, WriteMode};
use super::timers::ServerTimer;
use super::transfer::{Direction, ListingFormat, ListingSource, Transfer};
use super::{DataChannel, Session};

impl Session {
    /// `TYPE`: A (non-print), I, and L 8 (the same as I).
    pub(super) fn set_type(&mut self, t: TransferType) {
        let (normalised, text) = match t {
            TransferType::Ascii(FormatControl::NonPrint) => (t, "Switching to ASCII mode."),
            TransferType::Image | TransferType::Local(8) => {
                (TransferType::Image, "Switching to Binary mode.")
            }
            _ => {
                self.reply(
                    ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                    "Only TYPE A, I and L 8 are supported.",
                );
                return;
            }
        };
        self.transfer_type = normalised;
        self.reply(ReplyCode::COMMAND_OK, text);
    }

    /// `RETR path`, from the `REST` offset if one was given.
    pub(super) fn retrieve(&mut self, path: &Pathname) {
        let Some(path) = self.resolve(path) else {
            return;
        };
        let offset = std::mem::take(&mut self.restart_offset);
        let transcoder = match self.transfer_type {
            TransferType::Ascii(_) => Transcoder::ToNetwork(LfToCrLf::new()),
            _ => Transcoder::Identity,
        };
        let request = StorageRequest::OpenRead {
            path: path.clone(),
            offset,
        };
        self.start_transfer("RETR", path, Direction::Download, transcoder, request);
    }

    /// `STOR path` and `APPE path` (`verb`), from the `REST` offset for `STOR`.
    pub(super) fn store(&mut self, path: &Pathname, verb: &'static str) {
        let offset = std::mem::take(&mut self.restart_offset);
        let access = self.access();
        // Only a plain STOR creates without touching what exists; APPE and a resumed STOR change a file.
        let creates = verb == "STOR" && offset == 0;
        if !self.require(access.can_write() || (creates && access.can_create_files())) {
            return;
        }
        let Some(path) = self.resolve(path) else {
            return;
        };
        let mode = match (verb, offset) {
            ("APPE", 0) => WriteMode::Append,
            ("APPE", _) => {
                self.reply(
                    ReplyCode::FILE_UNAVAILABLE_PERMANENT,
                    "REST not allowed with APPE.",
                );
                return;
            }
            // The driver refuses to replace an existing file (550 File exists).
            (_, 0) if !access.can_write() => WriteMode::CreateNew,
            (_, 0) => WriteMode::Truncate,
            (_, offset) => WriteMode::Resume(offset),
        };
        self.start_upload(verb, path, mode);
    }

    /// `STOU [hint]`: the driver picks a new name near `hint`.
    pub(super) fn store_unique(&mut self, hint: Option<&Pathname>) {
        self.restart_offset = 0;
        if !self.require(self.access().can_create_files()) {
            return;
        }
        let path = match hint {
            Some(hint) => self.resolve(hint),
            None => self.cwd.join(b"ftp.upload").ok(),
        };
        let Some(path) = path else { return };
        self.start_upload("STOU", path, WriteMode::Unique);
    }

    /// Starts an upload to `path`, converting line ends in TYPE A.
    fn start_upload(&mut self, verb: &'static str, path: VirtualPath, mode: WriteMode) {
        let transcoder = match self.transfer_type {
            TransferType::Ascii(_) => Transcoder::FromNetwork(CrLfToLf::new()),
            _ => Transcoder::Identity,
        };
        let request = StorageRequest::OpenWrite {
            path: path.clone(),
            mode,
        };
        self.start_transfer(verb, path, Direction::Upload, transcoder, request);
    }

    /// `LIST`, `NLST` and `MLSD` (`verb`), printed in `format`.
    pub(super) fn list(&mut self, args: ListArgs, verb: &'static str, format: ListingFormat) {
        self.restart_offset = 0;
        let path = match args.path() {
            Some(p) => self.resolve(p),
            None => Some(self.cwd.clone()),
        };
        let Some(path) = path else { return };
        let request = StorageRequest::List {
            path: path.clone(),
            limit: self.config.max_listing_entries,
        };
        let name_prefix = match format {
            ListingFormat::Names => args.path().map(|p| p.as_bytes().to_vec()),
            _ => None,
        };
        let limit = self.config.max_listing_entries;
        let direction = Direction::Listing(ListingSource::new(format, name_prefix, limit));
        self.start_transfer(verb, path, direction, Transcoder::Identity, request);
    }

    /// Opens the storage side first (so a missing file gets 550 without touching the data connection),
    /// then the data connection, then moves bytes.
    fn start_transfer(
        &mut self,
        verb: &'static str,
        path: VirtualPath,
        direction: Direction,
        transcoder: Transcoder,
        request: StorageRequest,
    ) {
        if self.data == DataChannel::None {
            self.reply(
                ReplyCode::CANT_OPEN_DATA,
                "Use PORT, PASV, EPRT or EPSV first.",
            );
            return;
        }
        if !self.transfer_allowed_with_protection() {
            return;
        }
        let id = self.next_id();
        self.transfer = Some(Transfer::new(id, verb, path, direction, transcoder));
        // The driver works for the client now; the data timer starts once the file is open.
        self.timers.stop(ServerTimer::Idle);
        self.actions.push_back(Action::Storage { id, request });
    }

    /// `REST offset`: the next `RETR` or `STOR` starts at `offset`.
    pub(super) fn restart_at(&mut self, offset: u64) {
        self.restart_offset = offset;
        self.reply(
            ReplyCode::FILE_ACTION_PENDING,
            format!("Restarting at {offset}. Send STORE or RETRIEVE."),
        );
    }
}
