//! What the logged-in user may reach: the rights of their [`Grant`](super::Grant), and the paths they
//! name, resolved against the working directory within the configured limits.
//!
//! Every command that touches storage or a data address goes through these checks, so they live apart
//! from any one command.

use crate::command::Pathname;
use crate::listing::Permissions;
use crate::path::VirtualPath;
use crate::reply::ReplyCode;

use super::io::Access;
use super::{Login, Session};

impl Session {
    /// The logged-in user's rights; read-only before login.
    pub(super) fn access(&self) -> Access {
        match self.login {
            Login::LoggedIn { grant, .. } => grant.access,
            _ => Access::ReadOnly,
        }
    }

    /// Whether data connections may go to, or come from, another host than the client (FXP). Never
    /// before login: the grant decides, and there is none yet.
    pub(super) fn foreign_data_allowed(&self) -> bool {
        match self.login {
            Login::LoggedIn { grant, .. } => grant.foreign_data_address,
            _ => false,
        }
    }

    /// The `perm` fact `MLST`/`MLSD` show, from the user's rights.
    pub(super) fn permissions(&self) -> Permissions {
        Permissions {
            read: true,
            write: self.access().can_write(),
        }
    }

    /// Resolves a client path against the working directory, answering 550 if it cannot be.
    pub(super) fn resolve(&mut self, path: &Pathname) -> Option<VirtualPath> {
        match self.cwd.resolve(path.as_bytes(), self.config.path_limits) {
            Ok(path) => Some(path),
            Err(error) => {
                self.reply(
                    ReplyCode::FILE_UNAVAILABLE_PERMANENT,
                    format!("Invalid pathname: {error}."),
                );
                None
            }
        }
    }

    /// Runs `then` with the resolved path, if it resolves (else 550 is already sent).
    pub(super) fn with_path(&mut self, path: &Pathname, then: impl FnOnce(&mut Self, VirtualPath)) {
        if let Some(path) = self.resolve(path) {
            then(self, path);
        }
    }

    /// Answers 550 unless the user may change existing storage; returns whether they may.
    pub(super) fn require_write(&mut self) -> bool {
        self.require(self.access().can_write())
    }

    /// Answers 550 unless `allowed`; returns `allowed`.
    pub(super) fn require(&mut self, allowed: bool) -> bool {
        if !allowed {
            self.reply(ReplyCode::FILE_UNAVAILABLE_PERMANENT, "Permission denied.");
        }
        allowed
    }
}
