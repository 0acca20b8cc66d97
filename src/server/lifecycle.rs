//! The session's life: open, waiting to quit after a transfer, closed; and the transitions between
//! them, all here.
//!
//! `QUIT` during a transfer is answered after the transfer's own reply (RFC 959 §4.1.1: "the server
//! will then close it"), so a quit can be owed for a while. Closing is final: it lets go of a passive
//! listener, stops every timer and sends [`Action::CloseControl`]; every `handle_*` call after it does
//! nothing.

use crate::reply::ReplyCode;

use super::Session;
use super::io::Action;

/// Where the session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lifecycle {
    /// Serving commands.
    Open,
    /// `QUIT` came during a transfer: 221 and close once the transfer's reply is out.
    QuitAfterTransfer,
    /// [`Action::CloseControl`] is sent; nothing more happens.
    Closed,
}

impl Lifecycle {
    /// Whether the session has ended.
    pub(super) fn is_closed(self) -> bool {
        self == Lifecycle::Closed
    }
}

impl Session {
    /// `QUIT` with no transfer running: 221, then close.
    pub(super) fn quit(&mut self) {
        let goodbye = self.config.goodbye.clone();
        self.reply(ReplyCode::CLOSING_CONTROL, goodbye);
        self.close();
    }

    /// `QUIT` during a transfer: the transfer's own reply goes first, then 221 (see
    /// [`Session::after_transfer`]).
    pub(super) fn quit_after_transfer(&mut self) {
        if self.lifecycle == Lifecycle::Open {
            self.lifecycle = Lifecycle::QuitAfterTransfer;
        }
    }

    /// The transfer's reply is out: a `QUIT` that arrived during the transfer is answered now.
    pub(super) fn after_transfer(&mut self) {
        if self.lifecycle == Lifecycle::QuitAfterTransfer {
            self.lifecycle = Lifecycle::Open;
            self.quit();
        }
    }

    /// Ends the session (once): lets go of an unused passive listener, stops every timer and tells the
    /// driver to close the control connection.
    pub(super) fn close(&mut self) {
        if !self.lifecycle.is_closed() {
            self.close_listener();
            self.lifecycle = Lifecycle::Closed;
            self.timers.stop_all();
            self.actions.push_back(Action::CloseControl);
        }
    }
}
