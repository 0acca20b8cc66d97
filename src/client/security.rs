//! FTP over TLS (RFC 4217) on the client: `AUTH TLS` and its handshake, `PBSZ 0` + `PROT P` before the
//! first protected transfer, `CCC`, and implicit FTPS.
//!
//! The session decides *when*; the driver runs the handshakes ([`Action::SecureControl`],
//! [`DataAction::Secure`](crate::data::DataAction::Secure)) with its TLS library and trust store.
//! Every data connection's handshake must offer the control connection's TLS session for resumption:
//! servers that require session reuse (vsftpd `require_ssl_reuse`, ProFTPD, FileZilla Server) refuse
//! the data connection otherwise.
//!
//! Nothing the server sent after its `234` and before the handshake is read as a reply: a man in the
//! middle could otherwise slip in replies that the client would take as protected ones.

use std::time::Instant;

use crate::command::{Command, ProtectionLevel, Text};
pub(super) use crate::control_tls::ControlTls;
use crate::data::{DataCompletion, TlsRole};
use crate::reply::{Reply, ReplyCode, ReplyParser};

use super::Session;
use super::io::{Action, ClientError, Outcome, RequestId};
use super::ops::{Flow, Op, refusal};

/// The TLS state of a client session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Security {
    pub(super) control: ControlTls,
    /// The server acknowledged `PBSZ 0` and `PROT P`: data connections are TLS.
    pub(super) data_protected: bool,
}

/// Where a [`Request::ClearControl`](super::Request::ClearControl) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClearStep {
    /// `PBSZ 0` is sent (data protection first).
    Pbsz,
    /// `PROT P` is sent.
    Prot,
    /// `CCC` is sent.
    Ccc,
}

/// Where a [`Request::SecureControl`](super::Request::SecureControl) is.
#[derive(Debug)]
pub(super) enum SecureStep {
    /// `AUTH TLS` is sent.
    Auth,
    /// The `234` arrived (kept for the outcome); the handshake runs.
    Handshake(Reply),
}

impl Session {
    /// Whether the control connection is protected by TLS.
    pub fn is_control_secured(&self) -> bool {
        self.security.control == ControlTls::Secured
    }

    /// Whether the server has `PROT P` in force, so that data connections are TLS.
    pub fn is_data_protected(&self) -> bool {
        self.security.data_protected
    }

    /// Starts `AUTH TLS`.
    pub(super) fn begin_secure_control(&mut self, now: Instant) -> Op {
        self.send(now, &Command::Auth(Text::constant("TLS")));
        Op::SecureControl(SecureStep::Auth)
    }

    /// The reply to `AUTH TLS`: `234` starts the handshake, anything else fails the request (and the
    /// user decides whether to go on in plaintext; the session never does on its own).
    pub(super) fn secure_control_reply(
        &mut self,
        now: Instant,
        id: RequestId,
        step: &mut SecureStep,
        reply: Reply,
    ) -> Flow {
        if !matches!(step, SecureStep::Auth) || reply.code() != ReplyCode::SECURITY_EXCHANGE_OK {
            return Flow::Done(Err(refusal(reply)));
        }
        self.security.control = ControlTls::Handshaking;
        // Whatever the parser holds arrived before the handshake: forget it (see the module docs).
        self.parser = ReplyParser::new(self.config.reply_limits);
        self.held_cr = false;
        self.actions.push_back(Action::SecureControl { id });
        // The handshake is owed within the reply timeout, as a reply would be.
        self.start_reply_timer(now);
        *step = SecureStep::Handshake(reply);
        Flow::Continue
    }

    /// The driver's answer to [`Action::SecureControl`].
    pub(super) fn secure_control_completion(
        &mut self,
        now: Instant,
        step: &mut SecureStep,
        completion: DataCompletion,
    ) -> Flow {
        let SecureStep::Handshake(reply) = step else {
            return Flow::Continue;
        };
        match completion {
            DataCompletion::Secured { .. } => {
                self.security.control = ControlTls::Secured;
                self.restart_reply_timer(now);
                Flow::Done(Ok(Outcome::Done(reply.clone())))
            }
            DataCompletion::Failed(error) => Flow::Done(Err(ClientError::DataConnection(error))),
            _ => Flow::Continue,
        }
    }

    /// Whether the control connection is protected, being secured, or will be by a queued request.
    pub(super) fn secured_or_securing(&self) -> bool {
        let running = self
            .current
            .as_ref()
            .is_some_and(|c| matches!(c.op, Op::SecureControl(_)));
        let queued = (self.queue.iter()).any(|(_, r)| matches!(r, super::Request::SecureControl));
        self.security.control != ControlTls::Plain || running || queued
    }

    /// Whether a raw command would change the control connection's TLS behind the session's back:
    /// `AUTH` and `CCC` (use [`Request::SecureControl`](super::Request::SecureControl) and
    /// [`Request::ClearControl`](super::Request::ClearControl)), and `REIN` on a protected connection
    /// (the server may end TLS). A raw `PROT` is allowed (FXP sends it): the session follows it.
    pub(super) fn is_security_command(&self, command: &Command) -> bool {
        match command {
            Command::Auth(_) | Command::Ccc => true,
            Command::Rein => self.security.control != ControlTls::Plain,
            _ => false,
        }
    }

    /// Whether control input is to be dropped: the handshake is under way.
    pub(super) fn is_handshaking(&self) -> bool {
        self.security.control == ControlTls::Handshaking
    }

    /// Starts `CCC`, after `PBSZ 0` and `PROT P` if data protection is not set up yet: once the
    /// control connection is plaintext the server would refuse them, and data would go in the clear.
    pub(super) fn begin_clear_control(&mut self, now: Instant) -> Op {
        if self.needs_data_protection() {
            let [pbsz, _] = Session::protection_commands();
            self.send(now, &pbsz);
            return Op::ClearControl(ClearStep::Pbsz);
        }
        self.send(now, &Command::Ccc);
        Op::ClearControl(ClearStep::Ccc)
    }

    /// A reply on the way to `CCC`: `PBSZ` and `PROT` lead to the next command (a refusal fails the
    /// request, and the control connection stays protected); `CCC`'s `200` returns it to plaintext
    /// (with [`Action::ClearControl`] if it was protected).
    pub(super) fn clear_control_reply(
        &mut self,
        now: Instant,
        step: &mut ClearStep,
        reply: Reply,
    ) -> Flow {
        if !reply.code().is_positive_completion() {
            return Flow::Done(Err(refusal(reply)));
        }
        match step {
            ClearStep::Pbsz => {
                let [_, prot] = Session::protection_commands();
                self.send(now, &prot);
                *step = ClearStep::Prot;
                return Flow::Continue;
            }
            ClearStep::Prot => {
                self.security.data_protected = true;
                self.send(now, &Command::Ccc);
                *step = ClearStep::Ccc;
                return Flow::Continue;
            }
            ClearStep::Ccc => {}
        }
        // A server that says yes to `CCC` on a plaintext connection leaves nothing to end: the driver
        // is told only when there is TLS to end.
        if std::mem::replace(&mut self.security.control, ControlTls::Plain) == ControlTls::Secured {
            self.actions.push_back(Action::ClearControl);
        }
        Flow::Done(Ok(Outcome::Done(reply)))
    }

    /// Whether the next transfer must first send `PBSZ 0` and `PROT P`.
    pub(super) fn needs_data_protection(&self) -> bool {
        self.config.protect_data
            && self.security.control == ControlTls::Secured
            && !self.security.data_protected
    }

    /// The commands that set up data protection, in order.
    pub(super) fn protection_commands() -> [Command; 2] {
        [Command::Pbsz(0), Command::Prot(ProtectionLevel::Private)]
    }

    /// The TLS role of the next data connection, `None` for plaintext.
    pub(super) fn data_tls(&self) -> Option<TlsRole> {
        self.security.data_protected.then_some(TlsRole::Client)
    }
}
