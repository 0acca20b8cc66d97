//! Failed-login accounting shared by all sessions: growing back-off per address and per user name, and
//! temporary bans of an address (like ProFTPD's `mod_ban`).
//!
//! The session's own delay and strike count are per connection, so thirty sockets from one address got
//! thirty guesses a second (security review §3). Here every address and every user name that failed
//! recently has a queue of password checks: each check is booked in a slot no earlier than the previous
//! slot plus the back-off, and the back-off doubles with every failure (1 s, 2 s, 4 s, ... up to
//! `backoff_max`). Booking the slot when the attempt *arrives* (not when it fails) serialises parallel
//! attempts: N sockets from one address share one queue instead of getting N guesses per period.
//!
//! - An address or name with no recent failure is not queued: a user's parallel logins (lftp's `pget`,
//!   a crowd behind one NAT address) are checked at once. So the very first burst from a fresh address
//!   is checked in parallel; it is bounded by `--max-connections-per-ip` (one attempt in flight per
//!   connection), and its failures then put the address in the queue with a long back-off.
//! - A success forgets the address and the user: one typo costs the next attempt one second.
//! - An attempt whose slot would lie more than `backoff_max` ahead is refused without checking the
//!   password, after `backoff_max`: no attempt waits longer than that, and the queue cannot grow
//!   without bound.
//! - `ban_after` failures from one address (within `window`) ban it for `ban_time`: its new
//!   connections get 421 at once, and its attempts are refused.
//! - Records quiet for `window` are forgotten. The tables hold at most `table_size` records each; when
//!   full, new keys share one overflow record, so filling the table slows the attacker, not everyone.
//!
//! The user name is accounted whether or not the user exists, identically, so the delays do not tell
//! which names are real.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::limits::address_key;

/// The back-off after the first attempt; it doubles from here.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The knobs (`--login-backoff-max`, `--login-window`, `--ban-after`, `--ban-time`,
/// `--login-table-size`).
#[derive(Debug, Clone)]
pub struct Policy {
    pub backoff_max: Duration,
    pub window: Duration,
    /// 0: never ban.
    pub ban_after: u32,
    pub ban_time: Duration,
    pub table_size: usize,
}

/// What to do with a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password at this instant (not before).
    CheckAt(Instant),
    /// Answer "denied" at this instant without checking: the address is banned or its queue is full.
    RefuseAt(Instant),
}

/// The shared tables.
#[derive(Debug)]
pub struct LoginThrottle {
    policy: Policy,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    addresses: Table<IpAddr>,
    /// Keyed by a keyed hash of the name: a name can be 4 KB long, a table entry stays small. The
    /// hash keys are random per process, so nobody can pick two names that collide on purpose.
    users: Table<u64>,
    user_hasher: RandomState,
}

impl LoginThrottle {
    pub fn new(policy: Policy) -> LoginThrottle {
        let state = State {
            addresses: Table::new(policy.table_size),
            users: Table::new(policy.table_size),
            user_hasher: RandomState::new(),
        };
        LoginThrottle {
            policy,
            state: Mutex::new(state),
        }
    }

    /// How much longer `ip` is banned, if it is.
    pub fn banned(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let state = self.lock();
        state.addresses.get(&address_key(ip))?.ban_left(now)
    }

    /// Books a slot for an attempt by `ip` on `user`.
    pub fn reserve(&self, ip: IpAddr, user: &[u8], now: Instant) -> Verdict {
        let policy = &self.policy;
        let mut state = self.lock();
        let user_key = state.user_key(user);
        let State {
            addresses, users, ..
        } = &mut *state;
        let address = addresses.entry(address_key(ip), now, policy.window);
        if address.ban_left(now).is_some() {
            return Verdict::RefuseAt(now);
        }
        let user = users.entry(user_key, now, policy.window);
        let at = address.free_at(now).max(user.free_at(now));
        if at > now + policy.backoff_max {
            return Verdict::RefuseAt(now + policy.backoff_max);
        }
        address.book(at, now);
        user.book(at, now);
        Verdict::CheckAt(at)
    }

    /// Records a failed (or refused) attempt; true if it got the address banned just now. The slots
    /// booked meanwhile keep their places; the next one booked leaves the doubled gap.
    pub fn failed(&self, ip: IpAddr, user: &[u8], now: Instant) -> bool {
        let policy = &self.policy;
        let mut state = self.lock();
        let user_key = state.user_key(user);
        let State {
            addresses, users, ..
        } = &mut *state;
        users
            .entry(user_key, now, policy.window)
            .fail(now, policy.backoff_max);
        let address = addresses.entry(address_key(ip), now, policy.window);
        address.fail(now, policy.backoff_max);
        let ban = policy.ban_after > 0 && address.failures >= policy.ban_after;
        if ban {
            address.banned_until = Some(now + policy.ban_time);
            // A fresh count after the ban, as with mod_ban: one more failure must not re-ban at once.
            address.failures = 0;
        }
        ban
    }

    /// A successful login forgets the address's and the user's failures and back-off.
    pub fn succeeded(&self, ip: IpAddr, user: &[u8]) {
        let mut state = self.lock();
        let user_key = state.user_key(user);
        state.addresses.forget(&address_key(ip));
        state.users.forget(&user_key);
    }

    /// Each update leaves the tables consistent, so a lock poisoned by a panic elsewhere is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn user_key(&self, user: &[u8]) -> u64 {
        self.user_hasher.hash_one(user)
    }
}

/// What is known about one address or user name.
#[derive(Debug, Default, Clone)]
struct Record {
    /// The earliest instant the next attempt may be checked (meaningful once `failures > 0`).
    next: Option<Instant>,
    /// The gap each booking leaves after its slot: 0 before the first failure, then 1 s, doubling.
    backoff: Duration,
    failures: u32,
    last_seen: Option<Instant>,
    banned_until: Option<Instant>,
}

impl Record {
    fn free_at(&self, now: Instant) -> Instant {
        self.next.map_or(now, |next| next.max(now))
    }

    /// Takes the slot at `at`: the next one is a back-off later (no gap while nothing failed).
    fn book(&mut self, at: Instant, now: Instant) {
        if !self.backoff.is_zero() {
            self.next = Some(at + self.backoff);
        }
        self.last_seen = Some(now);
    }

    /// A failure doubles the back-off (from 1 s, at most `max`), and the next check waits at least
    /// that long from now.
    fn fail(&mut self, now: Instant, max: Duration) {
        self.failures = self.failures.saturating_add(1);
        self.backoff = (self.backoff * 2).clamp(FIRST_BACKOFF, max);
        self.next = Some(self.free_at(now).max(now + self.backoff));
        self.last_seen = Some(now);
    }

    fn ban_left(&self, now: Instant) -> Option<Duration> {
        self.banned_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Quiet for `window` (and not banned, and no slot booked ahead): nothing worth keeping.
    fn expired(&self, now: Instant, window: Duration) -> bool {
        let quiet = self
            .last_seen
            .is_none_or(|seen| now.saturating_duration_since(seen) >= window);
        let pending = self.next.is_some_and(|next| next > now);
        quiet && !pending && self.ban_left(now).is_none()
    }
}

/// Records by key, at most `capacity` of them, plus the shared overflow record.
#[derive(Debug)]
struct Table<K> {
    records: HashMap<K, Record>,
    overflow: Record,
    capacity: usize,
}

impl<K: Eq + Hash> Table<K> {
    fn new(capacity: usize) -> Table<K> {
        Table {
            records: HashMap::new(),
            overflow: Record::default(),
            capacity,
        }
    }

    /// The key's record, without creating one.
    fn get<Q>(&self, key: &Q) -> Option<&Record>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.records.get(key)
    }

    /// The key's record, created if needed. An expired record starts over. When the table is full
    /// even after dropping expired records, the overflow record stands in for the key.
    fn entry(&mut self, key: K, now: Instant, window: Duration) -> &mut Record {
        if !self.records.contains_key(&key) && self.records.len() >= self.capacity {
            self.records
                .retain(|_, record| !record.expired(now, window));
        }
        if self.records.contains_key(&key) || self.records.len() < self.capacity {
            let record = self.records.entry(key).or_default();
            if record.expired(now, window) {
                *record = Record::default();
            }
            record
        } else {
            &mut self.overflow
        }
    }

    fn forget<Q>(&mut self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.records.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            backoff_max: Duration::from_secs(8),
            window: Duration::from_secs(600),
            ban_after: 5,
            ban_time: Duration::from_secs(60),
            table_size: 2,
        }
    }

    #[test]
    fn without_failures_attempts_are_checked_at_once() {
        let throttle = LoginThrottle::new(policy());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..4 {
            assert_eq!(throttle.reserve(ip, b"u", now), Verdict::CheckAt(now));
        }
    }

    #[test]
    fn after_failures_parallel_attempts_are_serialised_with_growing_gaps() {
        let throttle = LoginThrottle::new(policy());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        let secs = |n| now + Duration::from_secs(n);
        assert_eq!(throttle.reserve(ip, b"u", now), Verdict::CheckAt(now));
        throttle.failed(ip, b"u", now); // back-off 1 s
        throttle.failed(ip, b"v", now); // the address: 2 s
        let slots: Vec<Verdict> = (0..5).map(|_| throttle.reserve(ip, b"u", now)).collect();
        let check = |n| Verdict::CheckAt(secs(n));
        let refused = Verdict::RefuseAt(secs(8));
        assert_eq!(slots, [check(2), check(4), check(6), check(8), refused]);
        throttle.succeeded(ip, b"u");
        assert_eq!(throttle.reserve(ip, b"u", now), Verdict::CheckAt(now));
    }

    #[test]
    fn bans_after_the_configured_failures() {
        let throttle = LoginThrottle::new(policy());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        let bans: Vec<bool> = (0..5).map(|_| throttle.failed(ip, b"u", now)).collect();
        assert_eq!(bans, [false, false, false, false, true]);
        assert_eq!(throttle.banned(ip, now), Some(Duration::from_secs(60)));
        assert_eq!(throttle.reserve(ip, b"u", now), Verdict::RefuseAt(now));
        assert_eq!(throttle.banned(ip, now + Duration::from_secs(60)), None);
    }
}
