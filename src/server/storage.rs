//! Commands answered by one storage request (`CWD`, `SIZE`, `MDTM`, `DELE`, `MKD`, `RMD`, `RNFR`/`RNTO`,
//! `MFMT`), the [`Then`] that says what to do with each answer, and the routing of every answer the
//! session waits for ([`Pending`]) to its owner.
//!
//! A command makes its request, the session waits (input queues meanwhile), and the answer is turned
//! into the reply here. Storage failures get their reply code from [`storage_error_reply`], which
//! transfers use too.

use std::time::Instant;

use crate::command::{Pathname, TransferType};
use crate::listing::{DirEntry, EntryKind};
use crate::path::VirtualPath;
use crate::reply::{self, ReplyCode};
use crate::time::Timestamp;

use super::io::{Action, Completion, Grant, StorageError, StorageRequest};
use super::{Pending, Session};

/// What to do with the answer to a storage request made for a command.
#[derive(Debug)]
pub(super) enum Then {
    /// `CWD`: change to this directory if it is one.
    ChangeDirectory(VirtualPath),
    /// `SIZE`: report the size of a plain file.
    ReportSize,
    /// `MDTM`: report the modification time.
    ReportModified,
    /// `RNFR`: remember the path if it exists.
    RememberRenameSource(VirtualPath),
    /// `MLST`: the facts of this path on the control connection.
    ReportFacts(VirtualPath),
    /// `STAT path`: a listing on the control connection, with the entries of the parts so far.
    ReportListing {
        /// The path listed.
        path: VirtualPath,
        /// The entries of the parts received so far.
        entries: Vec<DirEntry>,
    },
    /// Send this reply on success.
    Reply(ReplyCode, Vec<u8>),
}

/// The reply code and text for a failed storage operation.
pub(super) fn storage_error_reply(error: &StorageError) -> (ReplyCode, String) {
    let code = match error {
        StorageError::NoSpace => ReplyCode::EXCEEDED_STORAGE,
        StorageError::InvalidName => ReplyCode::FILE_NAME_NOT_ALLOWED,
        StorageError::Busy => ReplyCode::FILE_UNAVAILABLE,
        StorageError::Other(_) => ReplyCode::LOCAL_ERROR,
        _ => ReplyCode::FILE_UNAVAILABLE_PERMANENT,
    };
    let text = match error {
        // The driver's own words may reveal server paths: keep them for its log.
        StorageError::Other(_) => "Local error in processing.".to_owned(),
        other => format!("{other}."),
    };
    (code, text)
}

impl Session {
    /// `PWD`.
    pub(super) fn print_working_directory(&mut self) {
        let mut text = reply::quote_pathname(self.cwd.as_bytes());
        text.extend_from_slice(b" is the current directory.");
        self.reply(ReplyCode::PATHNAME_CREATED, text);
    }

    /// `CWD path`: changes once the driver confirms a directory.
    pub(super) fn change_directory(&mut self, path: &Pathname) {
        self.with_path(path, |s, path| {
            s.storage(
                StorageRequest::Stat(path.clone()),
                Then::ChangeDirectory(path),
            )
        });
    }

    /// `CDUP`: the parent needs no check (the root is its own parent).
    pub(super) fn change_to_parent(&mut self) {
        self.cwd = self.cwd.parent().unwrap_or_else(VirtualPath::root);
        self.reply(ReplyCode::FILE_ACTION_OK, "Directory successfully changed.");
    }

    /// `SIZE path` (RFC 3659 §4).
    pub(super) fn size(&mut self, path: &Pathname) {
        if matches!(self.transfer_type, TransferType::Ascii(_)) {
            // Its TYPE A size needs the whole file read; vsftpd and ProFTPD refuse too.
            self.reply(
                ReplyCode::FILE_UNAVAILABLE_PERMANENT,
                "SIZE not allowed in ASCII mode.",
            );
        } else {
            self.with_path(path, |s, path| {
                s.storage(StorageRequest::Stat(path), Then::ReportSize)
            });
        }
    }

    /// `MDTM path` (RFC 3659 §3).
    pub(super) fn modification_time(&mut self, path: &Pathname) {
        self.with_path(path, |s, path| {
            s.storage(StorageRequest::Stat(path), Then::ReportModified)
        });
    }

    /// `DELE path`.
    pub(super) fn delete(&mut self, path: &Pathname) {
        self.write_op(path, |path| {
            let then = Then::Reply(ReplyCode::FILE_ACTION_OK, b"File deleted.".to_vec());
            (StorageRequest::Delete(path), then)
        });
    }

    /// `MKD path`.
    pub(super) fn make_directory(&mut self, path: &Pathname) {
        self.write_op(path, |path| {
            let mut text = reply::quote_pathname(path.as_bytes());
            text.extend_from_slice(b" created.");
            let then = Then::Reply(ReplyCode::PATHNAME_CREATED, text);
            (StorageRequest::MakeDirectory(path), then)
        });
    }

    /// `RMD path`.
    pub(super) fn remove_directory(&mut self, path: &Pathname) {
        self.write_op(path, |path| {
            let then = Then::Reply(ReplyCode::FILE_ACTION_OK, b"Directory removed.".to_vec());
            (StorageRequest::RemoveDirectory(path), then)
        });
    }

    /// `RNFR path`: remembered once the driver confirms it exists.
    pub(super) fn rename_source(&mut self, path: &Pathname) {
        self.write_op(path, |path| {
            (
                StorageRequest::Stat(path.clone()),
                Then::RememberRenameSource(path),
            )
        });
    }

    /// `RNTO path`, with the source the `RNFR` just before it remembered (if it did).
    pub(super) fn rename_target(&mut self, to: &Pathname, rename_from: Option<VirtualPath>) {
        match rename_from {
            None => self.reply(ReplyCode::BAD_SEQUENCE, "RNFR required first."),
            Some(from) => self.write_op(to, |to| {
                let then = Then::Reply(ReplyCode::FILE_ACTION_OK, b"Rename successful.".to_vec());
                (StorageRequest::Rename { from, to }, then)
            }),
        }
    }

    /// `MFMT time path` (draft-somers-ftp-mfxx).
    pub(super) fn set_modification_time(&mut self, path: &Pathname, time: Timestamp) {
        self.write_op(path, |path| {
            let mut text = format!("Modify={}; ", time.to_ftp_string()).into_bytes();
            text.extend_from_slice(path.as_bytes());
            let then = Then::Reply(ReplyCode::FILE_STATUS, text);
            (StorageRequest::SetModified { path, time }, then)
        });
    }

    // ---- making the request ----

    /// A command that changes storage: check access, resolve, then ask the driver.
    fn write_op(
        &mut self,
        path: &Pathname,
        make: impl FnOnce(VirtualPath) -> (StorageRequest, Then),
    ) {
        if !self.require_write() {
            return;
        }
        if let Some(path) = self.resolve(path) {
            let (request, then) = make(path);
            self.storage(request, then);
        }
    }

    /// Sends a storage request; the session waits for its answer before it reads the next command.
    pub(super) fn storage(&mut self, request: StorageRequest, then: Then) {
        let id = self.next_id();
        self.actions.push_back(Action::Storage { id, request });
        self.wait_for(Pending::Storage { id, then });
    }

    // ---- the answers ----

    /// Routes the answer to the request the session was waiting for to its owner: a password check to
    /// the login, a listener to the data channel, a storage request to its [`Then`].
    pub(super) fn pending_completion(
        &mut self,
        now: Instant,
        pending: Pending,
        completion: Completion,
    ) {
        match pending {
            Pending::Login { user, .. } => match completion {
                Completion::LoggedIn(access) => {
                    let fxp = self.config.allow_foreign_data_address;
                    self.logged_in(&user, Grant::new(access).with_foreign_data_address(fxp))
                }
                Completion::Granted(grant) => self.logged_in(&user, grant),
                _ => self.login_failed(now, &user),
            },
            Pending::Listen { id, extended } => self.listening(id, extended, completion),
            Pending::Storage { id, then } => match (then, completion) {
                (
                    Then::ReportListing { path, entries },
                    Completion::EntriesPart { entries: part, now },
                ) => self.stat_listing_part(id, path, entries, part, now),
                (then, completion) => self.storage_answer(then, completion),
            },
            Pending::Handshake { .. } => self.control_secured(),
            Pending::LoginDelay { .. } => {}
        }
    }

    /// Turns the answer to a command's storage request into its reply.
    fn storage_answer(&mut self, then: Then, completion: Completion) {
        if let Completion::Failed(error) = &completion {
            let (code, text) = storage_error_reply(error);
            let text = match then {
                Then::ChangeDirectory(_) => "Failed to change directory.".to_owned(),
                _ => text,
            };
            self.reply(code, text);
            return;
        }
        match (then, completion) {
            (Then::ChangeDirectory(path), Completion::Metadata(m)) => {
                if m.kind == EntryKind::Directory {
                    self.cwd = path;
                    self.reply(ReplyCode::FILE_ACTION_OK, "Directory successfully changed.");
                } else {
                    self.reply(
                        ReplyCode::FILE_UNAVAILABLE_PERMANENT,
                        "Failed to change directory.",
                    );
                }
            }
            (Then::ReportSize, Completion::Metadata(m)) if m.kind == EntryKind::File => {
                self.reply(ReplyCode::FILE_STATUS, m.size.to_string())
            }
            (Then::ReportSize, Completion::Metadata(_)) => {
                self.reply(ReplyCode::FILE_UNAVAILABLE_PERMANENT, "Not a plain file.")
            }
            (Then::ReportModified, Completion::Metadata(m)) => match m.modified {
                Some(time) => self.reply(ReplyCode::FILE_STATUS, time.to_ftp_string()),
                None => self.reply(
                    ReplyCode::FILE_UNAVAILABLE_PERMANENT,
                    "Modification time unknown.",
                ),
            },
            (Then::RememberRenameSource(path), Completion::Metadata(_)) => {
                self.rename_from = Some(path);
                self.reply(ReplyCode::FILE_ACTION_PENDING, "Ready for RNTO.");
            }
            (Then::ReportFacts(path), Completion::Metadata(metadata)) => {
                self.report_facts(path, metadata)
            }
            (
                Then::ReportListing {
                    path,
                    entries: mut earlier,
                },
                Completion::Entries { entries, now, .. },
            ) => {
                self.append_bounded(&mut earlier, entries);
                self.report_listing(&path, earlier, now);
            }
            (Then::Reply(code, text), Completion::Done) => self.reply(code, text),
            // Not reached: `check_answer` turns away answers of the wrong kind (the driver gets an
            // `UnexpectedCompletion`). Failing safe if it ever is.
            _ => self.reply(ReplyCode::LOCAL_ERROR, "Local error in processing."),
        }
    }
}
