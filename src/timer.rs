//! A session's timers as one table, as quinn-proto keeps them: each timer is set or stopped where the
//! state changes that starts or ends it, `poll_timeout` is the earliest deadline in the table, and
//! closing stops them all. A deadline that would overflow `Instant` (a timeout of "forever") is
//! `None`, the same as a stopped timer.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// The most timers a table holds; each session's enum has fewer.
const MAX_TIMERS: usize = 8;

/// A session's kinds of timer: a field-less enum whose variants each name one slot.
pub(crate) trait Timer: Copy + Eq + std::fmt::Debug + 'static {
    /// Every variant, in the order expired timers are reported (and ties broken).
    const ALL: &'static [Self];

    /// The variant's slot, below [`MAX_TIMERS`] (a unit test of each session checks every variant).
    fn index(self) -> usize;
}

/// When each timer of kind `T` fires, if it is set.
#[derive(Clone, Debug)]
pub(crate) struct TimerTable<T> {
    deadlines: [Option<Instant>; MAX_TIMERS],
    kind: PhantomData<T>,
}

impl<T: Timer> Default for TimerTable<T> {
    fn default() -> Self {
        TimerTable {
            deadlines: [None; MAX_TIMERS],
            kind: PhantomData,
        }
    }
}

impl<T: Timer> TimerTable<T> {
    /// Sets `timer` to fire at `deadline` (`None`: never), replacing what it was set to.
    pub(crate) fn set(&mut self, timer: T, deadline: Option<Instant>) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = deadline;
        }
    }

    /// Sets `timer` to fire `after` from `now`; never, if that is past what `Instant` can hold.
    pub(crate) fn start(&mut self, timer: T, now: Instant, after: Duration) {
        self.set(timer, now.checked_add(after));
    }

    /// Stops `timer`.
    pub(crate) fn stop(&mut self, timer: T) {
        self.set(timer, None);
    }

    /// Stops every timer (the session closed).
    pub(crate) fn stop_all(&mut self) {
        self.deadlines = [None; MAX_TIMERS];
    }

    /// When `timer` fires, if it is set.
    pub(crate) fn get(&self, timer: T) -> Option<Instant> {
        self.deadlines.get(timer.index()).copied().flatten()
    }

    /// Whether `timer` is set and its deadline is at or before `now`.
    pub(crate) fn is_expired(&self, timer: T, now: Instant) -> bool {
        self.get(timer).is_some_and(|deadline| deadline <= now)
    }

    /// The earliest deadline of all, for `poll_timeout`.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        T::ALL.iter().filter_map(|&timer| self.get(timer)).min()
    }

    /// The first timer (in [`Timer::ALL`] order) that has expired at `now`, if any. A caller handles
    /// it (which stops or restarts it) and asks again, so one `handle_timeout` serves every timer that
    /// is due, and a spurious call finds none.
    pub(crate) fn first_expired(&self, now: Instant) -> Option<T> {
        T::ALL
            .iter()
            .copied()
            .find(|&timer| self.is_expired(timer, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Kind {
        Idle,
        Data,
    }

    impl Timer for Kind {
        const ALL: &'static [Self] = &[Kind::Idle, Kind::Data];
        fn index(self) -> usize {
            self as usize
        }
    }

    #[test]
    fn the_next_deadline_is_the_earliest_set_timer() {
        let now = Instant::now();
        let mut table = TimerTable::<Kind>::default();
        assert_eq!(table.next_deadline(), None);
        table.start(Kind::Idle, now, Duration::from_secs(10));
        table.start(Kind::Data, now, Duration::from_secs(5));
        assert_eq!(table.next_deadline(), Some(now + Duration::from_secs(5)));
        table.stop(Kind::Data);
        assert_eq!(table.next_deadline(), Some(now + Duration::from_secs(10)));
        table.stop_all();
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn expiry_is_at_or_after_the_deadline_and_in_table_order() {
        let now = Instant::now();
        let mut table = TimerTable::<Kind>::default();
        table.start(Kind::Data, now, Duration::from_secs(1));
        table.start(Kind::Idle, now, Duration::from_secs(2));
        assert_eq!(table.first_expired(now), None);
        assert_eq!(
            table.first_expired(now + Duration::from_secs(1)),
            Some(Kind::Data)
        );
        assert_eq!(
            table.first_expired(now + Duration::from_secs(3)),
            Some(Kind::Idle)
        );
        table.stop(Kind::Idle);
        assert_eq!(
            table.first_expired(now + Duration::from_secs(3)),
            Some(Kind::Data)
        );
    }

    #[test]
    fn a_timeout_past_what_instant_holds_never_fires() {
        let now = Instant::now();
        let mut table = TimerTable::<Kind>::default();
        table.start(Kind::Idle, now, Duration::MAX);
        assert_eq!(table.get(Kind::Idle), None);
        assert_eq!(table.next_deadline(), None);
    }
}
