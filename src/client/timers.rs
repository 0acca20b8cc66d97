//! The client session's timers, kept in one [`TimerTable`]: each is started or stopped where the state
//! changes that starts or ends it, [`Session::poll_timeout`] is the earliest deadline in the table, and
//! closing stops them all.

use std::time::Instant;

use crate::timer::Timer;

use super::Session;

/// The deadlines a client session keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClientTimer {
    /// The final reply the server owes (the greeting included) is overdue: the session cannot tell what
    /// the server is doing and closes. Runs while a final reply is owed, except while a transfer's data
    /// flows or a raw command got its preliminary reply (see [`Session::suspend_reply_timer`]).
    Reply,
    /// The current transfer's data connection (on its way, open) or its local end (writes to the sink
    /// after the data ended, the sink's flush) made no progress: only the transfer fails.
    Data,
}

impl Timer for ClientTimer {
    // A reply timeout closes the session, so it is handled first when both are due.
    const ALL: &'static [Self] = &[ClientTimer::Reply, ClientTimer::Data];

    fn index(self) -> usize {
        match self {
            ClientTimer::Reply => 0,
            ClientTimer::Data => 1,
        }
    }
}

impl Session {
    /// A final reply is owed from `now` on (a command was sent, or a reply came and more are owed).
    pub(super) fn start_reply_timer(&mut self, now: Instant) {
        self.timers
            .start(ClientTimer::Reply, now, self.config.reply_timeout);
    }

    /// A reply arrived, or the data stopped flowing: the reply timer runs from `now` if the server still
    /// owes a final reply, and stops otherwise.
    pub(super) fn restart_reply_timer(&mut self, now: Instant) {
        if self.outstanding > 0 {
            self.start_reply_timer(now);
        } else {
            self.timers.stop(ClientTimer::Reply);
        }
    }

    /// No final reply is owed any more.
    pub(super) fn stop_reply_timer(&mut self) {
        self.timers.stop(ClientTimer::Reply);
    }

    /// While a transfer's data flows, its final reply may take as long as the data does: the reply timer
    /// stops and the data timer runs instead. The same after a preliminary reply to a raw command (an FXP
    /// `STOR`/`RETR`, whose data the session does not see): no timer runs until the final reply;
    /// [`Request::Abort`](super::Request::Abort) ends the wait. Whatever ends the wait (the data's end,
    /// a reply, `ABOR`) starts the reply timer afresh.
    pub(super) fn suspend_reply_timer(&mut self) {
        self.timers.stop(ClientTimer::Reply);
    }

    /// The data connection or the local end made progress (or was asked for) at `now`.
    pub(super) fn start_data_timer(&mut self, now: Instant) {
        self.timers
            .start(ClientTimer::Data, now, self.config.data_timeout);
    }

    /// Neither the data connection nor the local end is at work any more.
    pub(super) fn stop_data_timer(&mut self) {
        self.timers.stop(ClientTimer::Data);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;
    use crate::timer::TimerTable;

    #[test]
    fn every_timer_has_its_own_slot_in_the_table() {
        let indices: HashSet<usize> = ClientTimer::ALL.iter().map(|t| t.index()).collect();
        assert_eq!(
            indices.len(),
            ClientTimer::ALL.len(),
            "two timers share a slot"
        );
        // A slot beyond the table would be silently ignored: setting it must show.
        let now = Instant::now();
        for &timer in ClientTimer::ALL {
            let mut table = TimerTable::<ClientTimer>::default();
            table.start(timer, now, Duration::from_secs(1));
            assert_eq!(
                table.get(timer),
                Some(now + Duration::from_secs(1)),
                "{timer:?}"
            );
        }
        // Every variant is in ALL: the match names each one, so a new variant fails to compile here
        // until it is added to the list below (and then the assertion wants it in ALL).
        let named = |timer: ClientTimer| match timer {
            ClientTimer::Reply | ClientTimer::Data => timer,
        };
        for timer in [ClientTimer::Reply, ClientTimer::Data] {
            assert!(ClientTimer::ALL.contains(&named(timer)), "{timer:?}");
        }
    }
}
