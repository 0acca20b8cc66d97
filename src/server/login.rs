//! The login: `USER`, `PASS`, `REIN`, `HOST`, anonymous logins, the failed-login delay, and what logging
//! out resets.
//!
//! The session decides anonymous logins itself (from [`Config::anonymous`](super::Config::anonymous));
//! any other password goes to the driver as [`Action::Authenticate`]. Kept in one place because the
//! rules interlock: who is logged in decides the rights, the login deadline and what `USER`/`REIN`
//! forget.

use std::time::Instant;

use crate::command::{Text, TransferType};
use crate::listing::FactSet;
use crate::path::VirtualPath;
use crate::reply::ReplyCode;

use super::io::{Access, Action, Event, Grant};
use super::timers::ServerTimer;
use super::{AnonymousPolicy, DataChannel, Login, Pending, Session};

/// Names a client may use for anonymous login (RFC 1635).
fn is_anonymous_name(user: &[u8]) -> bool {
    user.eq_ignore_ascii_case(b"anonymous") || user.eq_ignore_ascii_case(b"ftp")
}

impl Session {
    /// Whether an anonymous user is logged in.
    pub(super) fn is_anonymous(&self) -> bool {
        matches!(
            self.login,
            Login::LoggedIn {
                anonymous: true,
                ..
            }
        )
    }

    /// Whether a user is logged in.
    pub(super) fn is_logged_in(&self) -> bool {
        matches!(self.login, Login::LoggedIn { .. })
    }

    /// The 530 for a command that needs a login.
    pub(super) fn reply_not_logged_in(&mut self) {
        self.reply(ReplyCode::NOT_LOGGED_IN, "Please login with USER and PASS.");
    }

    /// `USER name`: logs out whoever was logged in and waits for `PASS`.
    pub(super) fn handle_user(&mut self, now: Instant, name: Text) {
        let anonymous = is_anonymous_name(name.as_bytes());
        // USER logs the current user out (even when the new name is refused).
        self.logging_out(now);
        if anonymous && self.config.anonymous == AnonymousPolicy::Disabled {
            self.login = Login::AwaitingUser;
            self.reply(ReplyCode::NOT_LOGGED_IN, "Anonymous access is not allowed.");
            return;
        }
        if !self.login_allowed_in_clear(anonymous) {
            self.login = Login::AwaitingUser;
            return;
        }
        // RFC 959 §4.1.1: USER may be sent at any time to change users. It logs the old one out, but "all
        // transfer parameters are unchanged" (TYPE, the data channel, ...).
        self.forget_login();
        // The name is passed on as the bytes the client sent: two names that differ only in invalid
        // UTF-8 must not authenticate as the same user.
        self.login = Login::AwaitingPassword {
            user: name,
            anonymous,
        };
        let text = if anonymous {
            "Anonymous login ok, send your email address as password."
        } else {
            "Please specify the password."
        };
        self.reply(ReplyCode::NEED_PASSWORD, text);
    }

    /// `PASS [password]`: an anonymous login is decided here; any other goes to the driver.
    pub(super) fn pass(&mut self, password: Option<crate::command::Password>) {
        let (user, anonymous) = match &self.login {
            Login::AwaitingPassword { user, anonymous } => (user.clone(), *anonymous),
            Login::LoggedIn { .. } => {
                self.reply(ReplyCode::BAD_SEQUENCE, "Already logged in.");
                return;
            }
            Login::AwaitingUser => {
                self.reply(ReplyCode::BAD_SEQUENCE, "Login with USER first.");
                return;
            }
        };
        if anonymous {
            let access = match self.config.anonymous {
                AnonymousPolicy::ReadWrite => Access::ReadWrite,
                AnonymousPolicy::UploadOnly => Access::UploadOnly,
                _ => Access::ReadOnly,
            };
            // Never foreign data addresses: an anonymous FXP right would make the server a bounce
            // relay for anyone (RFC 2577 §3), whatever `allow_foreign_data_address` says.
            self.logged_in(&user, Grant::new(access));
            return;
        }
        let id = self.next_id();
        self.actions.push_back(Action::Authenticate {
            id,
            user: user.clone(),
            password,
        });
        self.wait_for(Pending::Login { id, user });
    }

    /// The login succeeded with these rights: 230.
    pub(super) fn logged_in(&mut self, user: &Text, grant: Grant) {
        let anonymous = is_anonymous_name(user.as_bytes());
        let user = user.to_string_lossy().into_owned();
        self.login_failures = 0;
        self.event(Event::LoggedIn {
            user: user.clone(),
            access: grant.access,
        });
        self.login = Login::LoggedIn {
            user,
            grant,
            anonymous,
        };
        self.timers.stop(ServerTimer::Login);
        self.reply(ReplyCode::LOGGED_IN, "Login successful.");
    }

    /// The driver refused the password: the 530 waits out `failed_login_delay`, and too many failures
    /// close the session.
    pub(super) fn login_failed(&mut self, now: Instant, user: &Text) {
        let user = user.to_string_lossy().into_owned();
        self.event(Event::LoginFailed { user });
        self.login = Login::AwaitingUser;
        self.login_failures += 1;
        let close = self.login_failures >= self.config.max_login_failures;
        // The 530 waits out the delay in `handle_timeout`; input queues meanwhile.
        self.wait_for(Pending::LoginDelay { close });
        let delay = self.config.failed_login_delay;
        self.timers.start(ServerTimer::LoginDelay, now, delay);
        self.handle_timeout(now);
    }

    /// `REIN` (RFC 959 §4.1.1): "all parameters are reset to the default settings", as if the client
    /// had just connected.
    pub(super) fn reinitialize(&mut self, now: Instant) {
        if !self.reinitialize_security() {
            return;
        }
        self.logging_out(now);
        self.login = Login::AwaitingUser;
        self.forget_login();
        self.transfer_type = TransferType::DEFAULT;
        self.mlst_facts = FactSet::default();
        self.epsv_all = false;
        self.close_listener();
        self.data = DataChannel::None;
        let greeting = self.config.greeting.clone();
        self.reply(ReplyCode::SERVICE_READY, greeting);
        // After the 220, which still goes out over TLS if the connection had it.
        self.reset_security();
    }

    /// Forgets what belongs to the logged-in user: where they were and what they were about to do.
    fn forget_login(&mut self) {
        self.cwd = VirtualPath::root();
        self.restart_offset = 0;
        self.rename_from = None;
        // A PORT to another host was checked against the old user's grant; the next user must not
        // inherit it (an anonymous login after an FXP user's PORT would otherwise bounce).
        if matches!(self.data, DataChannel::Active(addr) if !self.info.is_peer(addr.ip())) {
            self.data = DataChannel::None;
        }
    }

    /// Called before `USER` and `REIN` change the login: if someone was logged in, they are logged out and
    /// the login deadline starts again from now. A session that was not logged in keeps its deadline, or
    /// repeating `REIN` or `USER` would postpone it for ever.
    fn logging_out(&mut self, now: Instant) {
        if self.is_logged_in() {
            let timeout = self.config.login_timeout;
            self.timers.start(ServerTimer::Login, now, timeout);
        }
    }

    /// `HOST` (RFC 7151): accepted (and ignored: the session serves one site) before `USER` only.
    pub(super) fn host(&mut self) {
        if matches!(self.login, Login::AwaitingUser) {
            self.reply(ReplyCode::SERVICE_READY, "Host accepted.");
        } else {
            // RFC 7151 §3: HOST must come before USER.
            self.reply(ReplyCode::BAD_SEQUENCE, "HOST must come before USER.");
        }
    }
}
