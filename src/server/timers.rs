//! The server session's timers: one [`TimerTable`](crate::timer::TimerTable) of [`ServerTimer`]s,
//! and what happens when each fires.
//!
//! Each timer is set or stopped where the state that starts or ends it changes (a login, a request to
//! the driver, a transfer's progress, the client's activity), so [`Session::poll_timeout`] is just the
//! table's earliest deadline and [`Session::handle_timeout`] serves the expired timers in table order.
//! Closing the session stops them all.
//!
//! The rules the table encodes:
//! - `LoginDelay` runs while a failed login's 530 is held back.
//! - `Login` runs while no one is logged in, whatever else runs: a password check or a failed login's
//!   delay must not hold a session that never logs in open past it.
//! - `Data` runs while a transfer waits for its data connection or moves bytes (not while an upload's
//!   file is being stored).
//! - `Idle` runs only while the session waits on the client: not while the driver works for it (a
//!   request pending or a transfer), and it restarts from the last thing the client or the driver did.

use std::time::Instant;

use crate::reply::ReplyCode;
use crate::timer::Timer;

use super::{Pending, Session};

/// The server session's kinds of timer; [`Timer::ALL`] is the order in which expired ones are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ServerTimer {
    /// A failed login's 530 is held back until this fires ([`Config::failed_login_delay`]).
    ///
    /// [`Config::failed_login_delay`]: super::Config::failed_login_delay
    LoginDelay,
    /// Not logged in by then: 421 and close ([`Config::login_timeout`]).
    ///
    /// [`Config::login_timeout`]: super::Config::login_timeout
    Login,
    /// The transfer made no progress: 425 or 426 ([`Config::data_timeout`]).
    ///
    /// [`Config::data_timeout`]: super::Config::data_timeout
    Data,
    /// The client did nothing: 421 and close ([`Config::idle_timeout`]).
    ///
    /// [`Config::idle_timeout`]: super::Config::idle_timeout
    Idle,
}

impl Timer for ServerTimer {
    const ALL: &'static [Self] = &[
        ServerTimer::LoginDelay,
        ServerTimer::Login,
        ServerTimer::Data,
        ServerTimer::Idle,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

impl Session {
    /// Serves every timer that has expired at `now`, earliest in table order first; each handler stops
    /// or restarts its timer, so the loop ends. A spurious call finds none.
    pub(super) fn serve_expired_timers(&mut self, now: Instant) {
        while !self.is_closed() {
            let Some(timer) = self.timers.first_expired(now) else {
                break;
            };
            match timer {
                ServerTimer::LoginDelay => self.login_delay_over(now),
                ServerTimer::Login => self.login_timed_out(),
                ServerTimer::Data => {
                    // Ending the transfer stops the timer too; stopping it first guarantees the loop ends.
                    self.timers.stop(ServerTimer::Data);
                    self.transfer_timed_out();
                    // The session is idle from now on, not from before the transfer.
                    self.restart_idle_timer(now);
                }
                ServerTimer::Idle => {
                    self.reply(
                        ReplyCode::SERVICE_NOT_AVAILABLE,
                        "Timeout: closing control connection.",
                    );
                    self.close();
                }
            }
        }
    }

    /// The client or the driver did something: the idle timer starts again from `now`, if it runs (not
    /// while the driver works for us, and not once the session is closed).
    pub(super) fn restart_idle_timer(&mut self, now: Instant) {
        if self.is_closed() || self.pending.is_some() || self.transfer.is_some() {
            self.timers.stop(ServerTimer::Idle);
        } else {
            self.timers
                .start(ServerTimer::Idle, now, self.config.idle_timeout);
        }
    }

    /// Waits for the driver (or a failed login's delay) before reading the next command; the client is
    /// not idle meanwhile.
    pub(super) fn wait_for(&mut self, pending: Pending) {
        self.pending = Some(pending);
        self.timers.stop(ServerTimer::Idle);
    }

    /// A failed login's delay is over: the held-back 530 goes out (and 421, after too many).
    fn login_delay_over(&mut self, now: Instant) {
        self.timers.stop(ServerTimer::LoginDelay);
        let close = matches!(self.pending, Some(Pending::LoginDelay { close: true }));
        self.pending = None;
        self.restart_idle_timer(now);
        self.reply(ReplyCode::NOT_LOGGED_IN, "Login incorrect.");
        if close {
            self.reply(
                ReplyCode::SERVICE_NOT_AVAILABLE,
                "Too many failed logins, closing control connection.",
            );
            self.close();
        }
    }

    /// If the session is still not logged in at its login deadline, answers 421 and closes (once);
    /// returns whether the deadline has passed.
    pub(super) fn login_expired(&mut self, now: Instant) -> bool {
        let expired = self.login_overdue(now);
        if expired && !self.is_closed() {
            self.login_timed_out();
        }
        expired
    }

    /// Whether the session is still not logged in at its login deadline (the `Login` timer runs only
    /// while no one is logged in).
    pub(super) fn login_overdue(&self, now: Instant) -> bool {
        self.timers.is_expired(ServerTimer::Login, now)
    }

    /// The login deadline passed: 421 and close.
    fn login_timed_out(&mut self) {
        // Whatever the driver was doing for us (a password check) is abandoned: its answer, if it
        // comes, finds a closed session.
        self.pending = None;
        self.reply(
            ReplyCode::SERVICE_NOT_AVAILABLE,
            "Login timeout: closing control connection.",
        );
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::timer::TimerTable;

    /// Every variant, by an exhaustive match: a new variant fails to compile here until it is listed.
    fn every_variant() -> Vec<ServerTimer> {
        let all = [
            ServerTimer::LoginDelay,
            ServerTimer::Login,
            ServerTimer::Data,
            ServerTimer::Idle,
        ];
        for timer in all {
            match timer {
                ServerTimer::LoginDelay
                | ServerTimer::Login
                | ServerTimer::Data
                | ServerTimer::Idle => {}
            }
        }
        all.to_vec()
    }

    #[test]
    fn every_timer_has_its_own_slot_in_the_table() {
        let variants = every_variant();
        assert_eq!(ServerTimer::ALL, variants.as_slice());
        let mut indices: Vec<usize> = variants.iter().map(|t| t.index()).collect();
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(indices.len(), variants.len(), "indices are distinct");
        // A slot past the table's size is silently ignored by `set`, so each timer set to its own
        // deadline and read back shows its slot exists and is shared with no other timer.
        let now = Instant::now();
        let mut table = TimerTable::<ServerTimer>::default();
        for (n, &timer) in (1u64..).zip(&variants) {
            table.start(timer, now, Duration::from_secs(n));
        }
        for (n, &timer) in (1u64..).zip(&variants) {
            assert_eq!(
                table.get(timer),
                Some(now + Duration::from_secs(n)),
                "{timer:?}"
            );
        }
    }
}
