//! The `--user NAME:PASSWORD` table. Every listed user gets read-write access; FXP (data connections to
//! or from other hosts) only for the users `--allow-fxp` or `--fxp-user` name. Anonymous sessions never
//! get FXP: the session refuses it to them whatever a grant says.

use std::collections::HashMap;

use ftp_proto::command::{Password, Text};
use ftp_proto::server::{Access, Completion, Grant};

/// Users and their passwords, as given on the command line.
#[derive(Debug, Default)]
pub struct Users {
    passwords: HashMap<Vec<u8>, Account>,
}

#[derive(Debug)]
struct Account {
    password: Vec<u8>,
    /// Whether this user may use foreign data addresses (FXP).
    fxp: bool,
}

impl Users {
    /// Adds (or replaces) a user; `fxp` lets the user's sessions use foreign data addresses.
    pub fn insert(&mut self, name: &str, password: &str, fxp: bool) {
        let account = Account {
            password: password.as_bytes().to_vec(),
            fxp,
        };
        self.passwords.insert(name.as_bytes().to_vec(), account);
    }

    /// Checks a login, answering the session's `Authenticate` action.
    ///
    /// The comparison takes the same time whatever the position of the first wrong byte, and an unknown
    /// user is compared against a dummy, so response times say little about which part was wrong. (The
    /// session also delays every 530.)
    pub fn authenticate(&self, user: &Text, password: Option<&Password>) -> Completion {
        let given = password.map(Password::as_bytes).unwrap_or_default();
        let account = self.passwords.get(user.as_bytes());
        let expected = account.map_or(&b"\0unknown user\0"[..], |a| a.password.as_slice());
        match account {
            Some(account) if constant_time_eq(given, expected) => {
                let grant = Grant::new(Access::ReadWrite).with_foreign_data_address(account.fxp);
                Completion::Granted(grant)
            }
            _ => Completion::Denied,
        }
    }
}

/// Compares without an early exit; only the lengths leak.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let differences = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    differences == 0 && a.len() == b.len()
}
