//! The `--user NAME:PASSWORD` table. Every listed user gets read-write access.

use std::collections::HashMap;

use ftp_proto::command::{Password, Text};
use ftp_proto::server::{Access, Completion};

/// Users and their passwords, as given on the command line.
#[derive(Debug, Default)]
pub struct Users {
    passwords: HashMap<Vec<u8>, Vec<u8>>,
}

impl Users {
    /// Adds (or replaces) a user.
    pub fn insert(&mut self, name: &str, password: &str) {
        self.passwords
            .insert(name.as_bytes().to_vec(), password.as_bytes().to_vec());
    }

    /// Checks a login, answering the session's `Authenticate` action.
    ///
    /// The comparison takes the same time whatever the position of the first wrong byte, and an unknown
    /// user is compared against a dummy, so response times say little about which part was wrong. (The
    /// session also delays every 530.)
    pub fn authenticate(&self, user: &Text, password: Option<&Password>) -> Completion {
        let given = password.map(Password::as_bytes).unwrap_or_default();
        let (expected, known) = match self.passwords.get(user.as_bytes()) {
            Some(expected) => (expected.as_slice(), true),
            None => (&b"\0unknown user\0"[..], false),
        };
        if constant_time_eq(given, expected) && known {
            Completion::LoggedIn(Access::ReadWrite)
        } else {
            Completion::Denied
        }
    }
}

/// Compares without an early exit; only the lengths leak.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let differences = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    differences == 0 && a.len() == b.len()
}
