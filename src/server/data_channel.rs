//! Setting up the data channel for the next transfer: `PORT`/`EPRT` (active, with the RFC 2577 address
//! checks) and `PASV`/`EPSV` (passive: the driver binds a listener, named by the request's id).
//!
//! A channel set up here is used up by the next transfer (see `transfer_phases`); a passive listener no
//! transfer took is closed by [`Session::close_listener`].

use std::net::SocketAddr;

use crate::data::{DataAction, DataCompletion};
use crate::hostport::{self, HostPort, NetworkProtocol};
use crate::reply::ReplyCode;

use super::io::{Action, Completion, RequestId};
use super::{DataChannel, Pending, Session};

impl Session {
    /// `PORT` and `EPRT`: check the address (RFC 2577 bounce protection) and remember it.
    pub(super) fn port(&mut self, addr: SocketAddr, verb: &str) {
        if self.epsv_all {
            self.reply(
                ReplyCode::BAD_SEQUENCE,
                format!("{verb} not allowed after EPSV ALL."),
            );
            return;
        }
        let peer_ip = self.info.peer.ip().to_canonical();
        let family_matches =
            NetworkProtocol::of(&addr) == NetworkProtocol::of(&SocketAddr::new(peer_ip, 0));
        if !family_matches {
            let code = if verb == "EPRT" {
                ReplyCode::EXTENDED_PORT_FAILURE
            } else {
                ReplyCode::SYNTAX_ERROR_ARGUMENTS
            };
            self.reply(
                code,
                "Network protocol not supported, use EPRT with the control connection's.",
            );
            return;
        }
        if !self.foreign_data_allowed() && !self.info.is_peer(addr.ip()) {
            self.reply(
                ReplyCode::SYNTAX_ERROR_ARGUMENTS,
                format!("Illegal {verb} command: the address is not yours."),
            );
            return;
        }
        if !self.config.allow_privileged_data_port && addr.port() < 1024 {
            self.reply(
                ReplyCode::SYNTAX_ERROR_ARGUMENTS,
                format!("Illegal {verb} command: privileged port."),
            );
            return;
        }
        self.close_listener();
        self.data = DataChannel::Active(addr);
        self.reply(ReplyCode::COMMAND_OK, format!("{verb} command successful."));
    }

    /// `PASV` and `EPSV`: ask the driver for a listener.
    pub(super) fn passive(&mut self, extended: bool, protocol: Option<NetworkProtocol>) {
        let local_protocol =
            NetworkProtocol::of(&SocketAddr::new(self.info.local.ip().to_canonical(), 0));
        if !extended && self.epsv_all {
            self.reply(ReplyCode::BAD_SEQUENCE, "PASV not allowed after EPSV ALL.");
            return;
        }
        if !extended && local_protocol != NetworkProtocol::V4 {
            self.reply(
                ReplyCode::SYNTAX_ERROR_ARGUMENTS,
                "PASV is IPv4 only; use EPSV.",
            );
            return;
        }
        if protocol.is_some_and(|p| p != local_protocol) {
            let text = format!(
                "Network protocol not supported, use ({}).",
                local_protocol.number()
            );
            self.reply(ReplyCode::EXTENDED_PORT_FAILURE, text);
            return;
        }
        // The new listener replaces the old one, which no transfer used.
        self.close_listener();
        let id = self.next_id();
        // PASV can describe only an IPv4 address (and is refused above on an IPv6 connection).
        let family = if extended {
            local_protocol
        } else {
            NetworkProtocol::V4
        };
        self.actions
            .push_back(Action::Data(DataAction::Listen { id, family }));
        self.wait_for(Pending::Listen { id, extended });
    }

    /// The driver's answer to `PASV`/`EPSV`: the listener's address goes in the 227/229 reply.
    pub(super) fn listening(&mut self, id: RequestId, extended: bool, completion: Completion) {
        let addr = match completion {
            Completion::Data(DataCompletion::Listening(addr)) => addr,
            _ => {
                self.reply(ReplyCode::CANT_OPEN_DATA, "Can't open passive connection.");
                return;
            }
        };
        // A dual-stack driver reports an IPv4 listener as ::ffff:a.b.c.d; PASV can still describe it.
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let text = match (extended, addr) {
            (true, addr) => hostport::epsv_reply_text(addr.port()),
            (false, SocketAddr::V4(v4)) => HostPort::from(v4).pasv_reply_text(),
            (false, SocketAddr::V6(_)) => {
                // A listener PASV cannot describe is of no use: let it go.
                self.actions
                    .push_back(Action::Data(DataAction::Close { id, aborted: true }));
                self.reply(ReplyCode::CANT_OPEN_DATA, "Can't open passive connection.");
                return;
            }
        };
        self.data = DataChannel::Passive(id);
        let code = if extended {
            ReplyCode::ENTERING_EXTENDED_PASSIVE
        } else {
            ReplyCode::ENTERING_PASSIVE
        };
        self.reply(code, text);
    }

    /// Lets go of the passive listener that `PASV`/`EPSV` bound and no transfer has taken, if there is
    /// one.
    pub(super) fn close_listener(&mut self) {
        if let DataChannel::Passive(listener) = self.data {
            self.data = DataChannel::None;
            self.actions.push_back(Action::Data(DataAction::Close {
                id: listener,
                aborted: true,
            }));
        }
    }
}
