//! A started transfer's way through its [`Phase`]s: the driver's answers (file opened, data connection
//! up, chunk written, end of data), and the three ways it ends (226, a failure reply, an abort).
//!
//! The [`Transfer`] value itself (pump, listing source) is in `transfer`; this module is what the
//! session does around it: replies, `DataAction`/`LocalAction` closes, the transfer's events, and a
//! `QUIT` that waited for the transfer.

use std::net::SocketAddr;
use std::time::Instant;

use crate::command::TransferType;
use crate::data::{DataAction, DataCompletion, LocalAction};
use crate::listing::DirEntry;
use crate::reply::ReplyCode;
use crate::time::Timestamp;

use super::io::{Action, Completion, Event, RequestId};
use super::storage::storage_error_reply;
use super::timers::ServerTimer;
use super::transfer::{Direction, Phase, Step, Transfer};
use super::{DataChannel, Session};

impl Session {
    /// The driver answered the transfer's current step.
    pub(super) fn transfer_completion(&mut self, now: Instant, completion: Completion) {
        let Some(phase) = self.transfer.as_ref().map(|t| t.phase) else {
            return;
        };
        match (phase, completion) {
            (Phase::Opening, Completion::FileOpened { size, path }) => {
                if let Some(t) = self.transfer.as_mut() {
                    t.size = size;
                    t.path = path;
                    t.file_open = true;
                }
                self.connect_data(now);
            }
            (
                Phase::Opening | Phase::Running,
                Completion::Entries {
                    entries,
                    directory,
                    now: wall_clock,
                },
            ) => self.listing_part(now, entries, directory, wall_clock, false),
            (
                Phase::Opening | Phase::Running,
                Completion::EntriesPart {
                    entries,
                    now: wall_clock,
                },
            ) => self.listing_part(now, entries, true, wall_clock, true),
            (Phase::Connecting, Completion::Data(DataCompletion::Connected { peer })) => {
                self.data_connected(now, peer)
            }
            (Phase::Securing, Completion::Data(DataCompletion::Secured { resumed })) => {
                self.data_secured(now, resumed)
            }
            (
                Phase::Opening | Phase::Connecting | Phase::Securing,
                Completion::Data(DataCompletion::Failed(_)),
            )
            | (Phase::Connecting | Phase::Securing, Completion::Failed(_)) => self.fail_transfer(
                ReplyCode::CANT_OPEN_DATA,
                "Failed to establish data connection.",
            ),
            (Phase::Running, Completion::Data(DataCompletion::Written)) => {
                let step = self.transfer.as_mut().map(|t| t.on_written());
                self.after_step(now, step);
            }
            (Phase::Running, Completion::Data(DataCompletion::EndOfData)) => {
                let step = self
                    .transfer
                    .as_mut()
                    .map(|t| t.on_end_of_source(&mut self.actions));
                self.after_step(now, step);
            }
            // The upload's file is stored (the answer to its `LocalAction::Close`).
            (Phase::Closing, Completion::Data(DataCompletion::Written)) => {
                self.reply(ReplyCode::CLOSING_DATA, "Transfer complete.");
                self.end_transfer(true);
            }
            (Phase::Running | Phase::Closing, Completion::Data(DataCompletion::Failed(_))) => self
                .fail_transfer(
                    ReplyCode::TRANSFER_ABORTED,
                    "Connection closed; transfer aborted.",
                ),
            (_, Completion::Failed(error)) => {
                let (code, text) = storage_error_reply(&error);
                self.fail_transfer(code, &text);
            }
            // `check_answer` turns away every answer that does not fit the phase (the driver gets
            // an `UnexpectedCompletion`), so this arm is not reached; it fails safe if it ever is.
            (_, _) => self.fail_transfer(ReplyCode::LOCAL_ERROR, "Local error in processing."),
        }
    }

    /// A listing's entries, all of them or a part (`more`: others follow). The first answer opens the
    /// data connection; a later one, asked for with `ReadEntries`, refills the window.
    fn listing_part(
        &mut self,
        now: Instant,
        entries: Vec<DirEntry>,
        directory: bool,
        wall_clock: Timestamp,
        more: bool,
    ) {
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        let (id, phase) = (transfer.id, transfer.phase);
        let Some(source) = transfer.listing_mut() else {
            // Entries for a file transfer, or a part nobody asked for: the driver's mistake, which
            // `check_answer` already turned away; failing safe if it ever gets here.
            return self.fail_transfer(ReplyCode::LOCAL_ERROR, "Local error in processing.");
        };
        if phase == Phase::Running && !source.is_asked() {
            return self.fail_transfer(ReplyCode::LOCAL_ERROR, "Local error in processing.");
        }
        let cut = source.fill(entries, directory, wall_clock, more);
        transfer.file_open = source.has_more();
        if cut {
            // The listing bound is reached: the driver may let go of the directory now.
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted: true }));
        }
        if phase == Phase::Opening {
            return self.connect_data(now);
        }
        let window = self.config.transfer_window;
        transfer.pump(window, &mut self.actions);
        let step = transfer.step();
        self.after_step(now, Some(step));
    }

    /// The file (or listing) is open: connect or accept the data connection.
    fn connect_data(&mut self, now: Instant) {
        let tls = self.take_data_tls_role();
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        transfer.phase = Phase::Connecting;
        transfer.tls = tls;
        (self.timers).start(ServerTimer::Data, now, self.config.data_timeout);
        let id = transfer.id;
        let action = match std::mem::replace(&mut self.data, DataChannel::None) {
            DataChannel::Active(addr) => DataAction::Connect { id, addr, tls },
            DataChannel::Passive(listener) => {
                // The listener is the transfer's now: it is closed with the transfer.
                transfer.listener = Some(listener);
                DataAction::Accept { id, listener, tls }
            }
            // `start_transfer` checked for a channel, and nothing forgets it during a transfer.
            DataChannel::None => {
                return self.fail_transfer(
                    ReplyCode::CANT_OPEN_DATA,
                    "Failed to establish data connection.",
                );
            }
        };
        self.actions.push_back(Action::Data(action));
    }

    /// The data connection is up: 150, then its TLS handshake if it is protected (clients such as
    /// Python's `ftplib` start theirs only after the 150), then bytes flow.
    fn data_connected(&mut self, now: Instant, peer: SocketAddr) {
        if !self.foreign_data_allowed() && !self.info.is_peer(peer.ip()) {
            // RFC 2577 §5: someone else connected to our listener first ("PASV port theft").
            self.fail_transfer(
                ReplyCode::CANT_OPEN_DATA,
                "Data connection from a foreign address refused.",
            );
            return;
        }
        let binary = !matches!(self.transfer_type, TransferType::Ascii(_));
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        let text = opening_text(transfer, binary);
        (self.timers).start(ServerTimer::Data, now, self.config.data_timeout);
        if let Some(role) = transfer.tls {
            transfer.phase = Phase::Securing;
            let id = transfer.id;
            self.reply(ReplyCode::FILE_STATUS_OK, text);
            self.actions
                .push_back(Action::Data(DataAction::Secure { id, role }));
            return;
        }
        transfer.phase = Phase::Running;
        self.reply(ReplyCode::FILE_STATUS_OK, text);
        self.start_moving(now);
    }

    /// The data connection's TLS handshake is done: bytes flow, unless the connection did not resume
    /// the control connection's TLS session and the policy requires it (someone else may have
    /// connected to the passive port first).
    fn data_secured(&mut self, now: Instant, resumed: bool) {
        let role = (self.transfer.as_ref())
            .and_then(|t| t.tls)
            .unwrap_or(crate::data::TlsRole::Server);
        if !self.data_session_acceptable(role, resumed) {
            return self.fail_transfer(
                ReplyCode::CANT_OPEN_DATA,
                "TLS session of data connection not resumed.",
            );
        }
        if let Some(transfer) = self.transfer.as_mut() {
            transfer.phase = Phase::Running;
        }
        (self.timers).start(ServerTimer::Data, now, self.config.data_timeout);
        self.start_moving(now);
    }

    /// The data connection is ready: fill the window.
    fn start_moving(&mut self, now: Instant) {
        let window = self.config.transfer_window;
        let step = self.transfer.as_mut().map(|t| {
            t.pump(window, &mut self.actions);
            t.step()
        });
        self.after_step(now, step);
    }

    /// After a chunk moved: finish, or refill the window and restart the data timer.
    fn after_step(&mut self, now: Instant, step: Option<Step>) {
        match step {
            Some(Step::Finished) => self.finish_transfer(),
            Some(Step::Continue) => {
                let window = self.config.transfer_window;
                if let Some(t) = self.transfer.as_mut() {
                    (self.timers).start(ServerTimer::Data, now, self.config.data_timeout);
                    t.pump(window, &mut self.actions);
                }
            }
            None => {}
        }
    }

    /// Every byte is through: close what is open and send 226 (an upload first waits for the driver to
    /// confirm the file is stored).
    fn finish_transfer(&mut self) {
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        let (id, listener, aborted) = (transfer.id, transfer.listener, false);
        let upload = transfer.is_upload();
        if upload {
            transfer.phase = Phase::Closing;
        }
        let listing = transfer.listing_mut().is_some();
        let file_open = transfer.file_open;
        self.close_data_connection(id, listener, aborted);
        if upload {
            // The driver stores the file; the data connection is done with.
            self.timers.stop(ServerTimer::Data);
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted }));
            return;
        }
        if file_open {
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted }));
        }
        let text = if listing {
            "Directory send OK."
        } else {
            "Transfer complete."
        };
        self.reply(ReplyCode::CLOSING_DATA, text);
        self.end_transfer(true);
    }

    /// Cuts the transfer short with `code text`.
    fn fail_transfer(&mut self, code: ReplyCode, text: &str) {
        self.abort_transfer();
        self.reply(code, text);
        self.after_transfer();
    }

    /// The data connection made no progress within `data_timeout`: 425 or 426.
    pub(super) fn transfer_timed_out(&mut self) {
        let connecting = self
            .transfer
            .as_ref()
            .is_some_and(|t| matches!(t.phase, Phase::Connecting | Phase::Securing));
        if connecting {
            self.fail_transfer(
                ReplyCode::CANT_OPEN_DATA,
                "Failed to establish data connection.",
            );
        } else {
            self.fail_transfer(
                ReplyCode::TRANSFER_ABORTED,
                "Data connection timed out; transfer aborted.",
            );
        }
    }

    /// Lets go of a transfer's data connection, then of the listener it came through (if passive).
    fn close_data_connection(&mut self, id: RequestId, listener: Option<RequestId>, aborted: bool) {
        self.actions
            .push_back(Action::Data(DataAction::Close { id, aborted }));
        if let Some(listener) = listener {
            let close = DataAction::Close {
                id: listener,
                aborted,
            };
            self.actions.push_back(Action::Data(close));
        }
    }

    /// Drops the transfer and tells the driver to close what it had open.
    pub(super) fn abort_transfer(&mut self) {
        let Some(transfer) = self.transfer.take() else {
            return;
        };
        self.timers.stop(ServerTimer::Data);
        let (id, aborted) = (transfer.id, true);
        // The transfer's listener, or the one it had not used yet (its file was still opening): the
        // channel was for this transfer, so it goes too.
        self.close_data_connection(id, transfer.listener, aborted);
        self.close_listener();
        self.data = DataChannel::None;
        if transfer.file_open {
            self.actions
                .push_back(Action::Local(LocalAction::Close { id, aborted }));
        }
        self.event(Event::TransferEnded {
            id,
            verb: transfer.verb,
            bytes: transfer.bytes(),
            path: transfer.path,
            completed: false,
        });
    }

    /// The transfer is over (its final reply is sent): log it and answer a waiting `QUIT`.
    fn end_transfer(&mut self, completed: bool) {
        if let Some(transfer) = self.transfer.take() {
            self.timers.stop(ServerTimer::Data);
            self.event(Event::TransferEnded {
                id: transfer.id,
                verb: transfer.verb,
                bytes: transfer.bytes(),
                path: transfer.path,
                completed,
            });
        }
        self.after_transfer();
    }
}

/// The text of the 150 that opens the data connection: what is sent, how, and its size if known.
fn opening_text(transfer: &Transfer, binary: bool) -> String {
    match (&transfer.direction, transfer.verb) {
        (Direction::Listing(_), _) => "Here comes the directory listing.".to_owned(),
        (_, "STOU") => format!(
            "FILE: {}",
            String::from_utf8_lossy(transfer.path.file_name().unwrap_or_default())
        ),
        _ => {
            let mode = if binary { "BINARY" } else { "ASCII" };
            let size = transfer
                .size
                .map(|s| format!(" ({s} bytes)"))
                .unwrap_or_default();
            format!(
                "Opening {mode} mode data connection for {}{size}.",
                transfer.path.to_string_lossy()
            )
        }
    }
}
