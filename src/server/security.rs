//! FTP over TLS (RFC 4217): `AUTH`, `PBSZ`, `PROT`, `CCC`, `SSCN`/`CPSV`, and the policy that makes
//! TLS a condition of logging in or of a transfer.
//!
//! The session only decides *when*: it answers `234` and asks the driver for the control connection's
//! handshake ([`Action::SecureControl`]), marks a protected transfer's data actions with a
//! [`TlsRole`], and checks the driver's report that a data connection resumed the control
//! connection's TLS session. Certificates, handshakes and session caches are the driver's.
//!
//! One rule is here for safety rather than protocol: nothing the client sent after its `AUTH` line and
//! before the handshake is read as a command. A client (or a man in the middle) that pipelines commands
//! behind `AUTH TLS` would otherwise have them run as if they had come over TLS (the STARTTLS command
//! injection of CVE-2011-0411 and its kin).

use crate::command::{ProtectionLevel, Text};
pub(super) use crate::control_tls::ControlTls;
use crate::data::TlsRole;
use crate::framing::LineFramer;
use crate::reply::ReplyCode;

use super::io::Action;
use super::{Login, Pending, Session};

/// The TLS state of one session: the control connection's, and what `PBSZ`, `PROT` and `SSCN` set
/// for data connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Security {
    pub(super) control: ControlTls,
    /// `PBSZ` was accepted (RFC 4217 §8: `PROT` needs it first).
    pub(super) pbsz_seen: bool,
    /// `PROT P` is in force: data connections are TLS.
    pub(super) data_protected: bool,
    /// `SSCN ON`: this server is the TLS client of data connections.
    pub(super) data_tls_client: bool,
    /// `CPSV` made it the TLS client for the next data connection only.
    pub(super) tls_client_once: bool,
    /// The connection was TLS from its first byte (implicit FTPS): that is its new-connection state,
    /// which `REIN` returns to.
    pub(super) implicit: bool,
}

impl Security {
    /// A plaintext connection (explicit FTPS starts here).
    pub(super) fn plain() -> Self {
        Security {
            control: ControlTls::Plain,
            pbsz_seen: false,
            data_protected: false,
            data_tls_client: false,
            tls_client_once: false,
            implicit: false,
        }
    }

    /// A connection that was TLS from its first byte (implicit FTPS): data is protected by default,
    /// as the clients of implicit FTPS expect.
    pub(super) fn implicit() -> Self {
        Security {
            control: ControlTls::Secured,
            pbsz_seen: true,
            data_protected: true,
            data_tls_client: false,
            tls_client_once: false,
            implicit: true,
        }
    }
}

/// `AUTH` mechanisms that mean TLS on the control connection: RFC 4217's `TLS`, and the spellings of
/// the drafts before it that clients still send. `SSL` and `TLS-P` also protected data from the start.
fn tls_mechanism(mechanism: &[u8]) -> Option<bool> {
    let is = |name: &str| mechanism.eq_ignore_ascii_case(name.as_bytes());
    if is("TLS") || is("TLS-C") {
        Some(false)
    } else if is("SSL") || is("TLS-P") {
        Some(true)
    } else {
        None
    }
}

impl Session {
    /// Whether the control connection is protected by TLS now.
    pub fn is_control_secured(&self) -> bool {
        self.security.control == ControlTls::Secured
    }

    /// Whether data connections are protected (`PROT P`, or implicit FTPS).
    pub fn is_data_protected(&self) -> bool {
        self.security.data_protected
    }

    /// `AUTH mechanism`: `234` and the handshake, if TLS is offered and not yet up.
    pub(super) fn auth(&mut self, mechanism: &Text) {
        if !self.config.tls.offered {
            return self.reply(ReplyCode::NOT_IMPLEMENTED, "AUTH not supported.");
        }
        if self.security.control != ControlTls::Plain {
            return self.reply(ReplyCode::BAD_SEQUENCE, "TLS is already in use.");
        }
        let Some(protects_data) = tls_mechanism(mechanism.as_bytes()) else {
            return self.reply(
                ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                "Unknown AUTH mechanism; use AUTH TLS.",
            );
        };
        // RFC 4217 §4: the security of a login must not change half-way through it.
        if matches!(self.login, Login::AwaitingPassword { .. }) {
            return self.reply(
                ReplyCode::BAD_SEQUENCE,
                "AUTH must not come between USER and PASS.",
            );
        }
        self.reply(ReplyCode::SECURITY_EXCHANGE_OK, "Proceed with negotiation.");
        self.drop_plaintext_input();
        if protects_data {
            self.security.pbsz_seen = true;
            self.security.data_protected = true;
        }
        self.security.control = ControlTls::Handshaking;
        let id = self.next_id();
        self.actions.push_back(Action::SecureControl { id });
        self.wait_for(Pending::Handshake { id });
    }

    /// Forgets control input that arrived before the handshake: complete lines waiting their turn and
    /// the partial line in the framer. Only what TLS decrypts is read from now on.
    fn drop_plaintext_input(&mut self) {
        self.queue.clear();
        self.queued_bytes = 0;
        self.framer = LineFramer::new(self.config.framer);
    }

    /// The driver's handshake on the control connection succeeded.
    pub(super) fn control_secured(&mut self) {
        self.security.control = ControlTls::Secured;
    }

    /// Whether the control connection's TLS handshake is under way (from the `234` to
    /// [`Completion::ControlSecured`](super::Completion::ControlSecured)). The session drops any input
    /// it is handed meanwhile (it was not decrypted by that handshake), so a driver should not read
    /// the socket for it then: those bytes are the start of the handshake.
    pub fn is_control_handshaking(&self) -> bool {
        self.security.control == ControlTls::Handshaking
    }

    /// `PBSZ size`: only `0` makes sense over TLS (RFC 4217 §8), and it is what the reply says.
    pub(super) fn protection_buffer_size(&mut self) {
        if self.security.control == ControlTls::Plain {
            return self.reply(ReplyCode::BAD_SEQUENCE, "PBSZ requires AUTH first.");
        }
        self.security.pbsz_seen = true;
        self.reply(ReplyCode::COMMAND_OK, "PBSZ=0");
    }

    /// `PROT level`: `C` or `P`; TLS has no integrity-only or confidential-only level.
    pub(super) fn protection_level(&mut self, level: ProtectionLevel) {
        if self.security.control == ControlTls::Plain && !self.security.data_protected {
            return self.reply(ReplyCode::BAD_SEQUENCE, "PROT requires AUTH first.");
        }
        if !self.security.pbsz_seen {
            return self.reply(ReplyCode::BAD_SEQUENCE, "PROT requires PBSZ first.");
        }
        match level {
            ProtectionLevel::Clear => {
                self.security.data_protected = false;
                self.reply(ReplyCode::COMMAND_OK, "Data connections are not protected.");
            }
            ProtectionLevel::Private => {
                self.security.data_protected = true;
                self.reply(ReplyCode::COMMAND_OK, "Data connections are protected.");
            }
            ProtectionLevel::Safe | ProtectionLevel::Confidential => self.reply(
                ReplyCode::PROT_LEVEL_NOT_SUPPORTED,
                "PROT level not supported by TLS; use C or P.",
            ),
        }
    }

    /// `CCC`: back to a plaintext control connection, if the policy allows.
    pub(super) fn clear_command_channel(&mut self) {
        if !self.config.tls.offered {
            return self.reply(ReplyCode::NOT_IMPLEMENTED, "CCC not supported.");
        }
        if self.security.control != ControlTls::Secured {
            return self.reply(
                ReplyCode::BAD_SEQUENCE,
                "The control connection is not protected.",
            );
        }
        if !self.config.tls.allow_clear_control {
            return self.reply(
                ReplyCode::PROTECTION_LEVEL_DENIED,
                "CCC refused: the control connection stays protected.",
            );
        }
        // As for `AUTH`: the security of a login must not change half-way through it, or the
        // password would cross in the clear after a `USER` that TLS let through.
        if matches!(self.login, Login::AwaitingPassword { .. }) {
            return self.reply(
                ReplyCode::BAD_SEQUENCE,
                "CCC must not come between USER and PASS.",
            );
        }
        self.reply(
            ReplyCode::COMMAND_OK,
            "Control connection is plaintext now.",
        );
        self.clear_control();
    }

    /// Ends TLS on the control connection (after `CCC`, or `REIN` where allowed).
    fn clear_control(&mut self) {
        self.security.control = ControlTls::Plain;
        self.actions.push_back(Action::ClearControl);
    }

    /// `REIN` on a protected control connection: whether it may go on (after which the connection is
    /// plaintext, as a new one is), or was refused with a reply.
    pub(super) fn reinitialize_security(&mut self) -> bool {
        // Implicit FTPS: a new connection is TLS, so REIN keeps it (`reset_security`).
        if self.security.control == ControlTls::Plain || self.security.implicit {
            return true;
        }
        if !self.config.tls.allow_clear_control {
            self.reply(
                ReplyCode::NOT_IMPLEMENTED,
                "REIN is not available on a protected control connection; use QUIT.",
            );
            return false;
        }
        true
    }

    /// After `REIN`'s `220`: the security state of a new connection.
    pub(super) fn reset_security(&mut self) {
        // Implicit FTPS (unless `CCC` ended its TLS): a new connection of its port is TLS.
        if self.security.implicit && self.security.control == ControlTls::Secured {
            self.security = Security::implicit();
            return;
        }
        if self.security.control == ControlTls::Secured {
            self.clear_control();
        }
        self.security = Security::plain();
    }

    /// `SSCN [ON|OFF]`: which side of the data connection's TLS handshake this server takes.
    pub(super) fn set_secure_client_negotiation(&mut self, on: Option<bool>) {
        if !self.config.tls.offered {
            return self.reply(ReplyCode::NOT_IMPLEMENTED, "SSCN not supported.");
        }
        if on == Some(true) && !self.foreign_data_allowed() {
            return self.refuse_tls_client_role();
        }
        if let Some(on) = on {
            self.security.data_tls_client = on;
            self.security.tls_client_once = false;
        }
        let text = if self.security.data_tls_client {
            "SSCN:CLIENT METHOD"
        } else {
            "SSCN:SERVER METHOD"
        };
        self.reply(ReplyCode::COMMAND_OK, text);
    }

    /// `SSCN ON` and `CPSV` are for server-to-server copies: as the TLS client of a data connection
    /// this server cannot check that its peer resumed the control connection's session, so only users
    /// whose grant allows foreign data addresses (FXP) may ask; anyone else's transfers stay guarded.
    fn refuse_tls_client_role(&mut self) {
        self.reply(
            ReplyCode::REQUEST_DENIED_POLICY,
            "SSCN and CPSV are for server-to-server transfers, which this user may not do.",
        );
    }

    /// `CPSV`: `PASV`, with this server the TLS client of the next data connection only (unless
    /// `SSCN ON` is in force anyway).
    pub(super) fn client_passive(&mut self) {
        if !self.config.tls.offered {
            return self.reply(ReplyCode::NOT_IMPLEMENTED, "CPSV not supported.");
        }
        if !self.foreign_data_allowed() {
            return self.refuse_tls_client_role();
        }
        // For this one data connection (`take_data_tls_role`); `SSCN ON` is what lasts.
        if !self.security.data_tls_client {
            self.security.data_tls_client = true;
            self.security.tls_client_once = true;
        }
        self.passive(false, None);
    }

    /// The `USER` of an `anonymous` (or not) user may go on, or was refused with 530 because the
    /// policy wants TLS first.
    pub(super) fn login_allowed_in_clear(&mut self, anonymous: bool) -> bool {
        let policy = self.config.tls;
        let exempt = anonymous && policy.anonymous_exempt;
        if !policy.required_for_login || exempt || self.is_control_secured() {
            return true;
        }
        self.reply(
            ReplyCode::NOT_LOGGED_IN,
            "This server requires TLS: use AUTH TLS before USER.",
        );
        false
    }

    /// A transfer may go on with the current `PROT`, or was refused with 521.
    pub(super) fn transfer_allowed_with_protection(&mut self) -> bool {
        let policy = self.config.tls;
        let exempt = policy.anonymous_exempt && self.is_anonymous();
        if !policy.required_for_data || exempt || self.security.data_protected {
            return true;
        }
        self.reply(
            ReplyCode::PROT_SETTING_REFUSED,
            "Data connections must be protected: use PBSZ 0 and PROT P.",
        );
        false
    }

    /// The TLS role of the data connection being opened now (`SSCN` decides which), `None` for
    /// plaintext; a `CPSV`'s client role is used up by it.
    pub(super) fn take_data_tls_role(&mut self) -> Option<TlsRole> {
        let role = match self.security.data_tls_client {
            true => TlsRole::Client,
            false => TlsRole::Server,
        };
        if std::mem::take(&mut self.security.tls_client_once) {
            self.security.data_tls_client = false;
        }
        self.security.data_protected.then_some(role)
    }

    /// Whether a data connection secured in `role` with `resumed` is acceptable.
    ///
    /// A user allowed foreign data addresses (FXP) is exempt: in a secure server-to-server copy the
    /// other end of the data connection is the other server, which cannot resume this control
    /// connection's session; and that user's passive connections may come from any host anyway, so
    /// session reuse would guard nothing the grant did not already give away.
    pub(super) fn data_session_acceptable(&self, role: TlsRole, resumed: bool) -> bool {
        resumed
            || role == TlsRole::Client
            || !self.config.tls.require_session_reuse
            || self.foreign_data_allowed()
    }
}
