//! Counting what each client address holds (control connections, passive listeners) against caps.
//!
//! Without caps, one address could open connections until the process ran out of file descriptors, and
//! then nobody got a greeting (security review §4). A [`Slot`] is taken before the resource is created
//! and given back when it is dropped, so the count cannot drift whatever path ends the session: an
//! ordinary end, an error, or a panicking task.
//!
//! Addresses are counted by [`address_key`]: IPv4 per address, IPv6 per /64, because one IPv6 host
//! normally has a whole /64 to pick source addresses from.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// The unit a per-address cap applies to: the IPv4 address (an IPv4-mapped IPv6 address counts as its
/// IPv4 form), or the /64 prefix of an IPv6 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Why [`AddressCounts::try_acquire`] said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot of the whole server is taken.
    Total,
    /// This address holds its maximum.
    PerAddress,
}

/// Slots in use, in total and per address, against their caps.
#[derive(Debug)]
pub struct AddressCounts {
    total_cap: usize,
    per_address_cap: usize,
    state: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Only addresses holding at least one slot: the map never outgrows `total_cap` entries.
    by_address: HashMap<IpAddr, usize>,
}

impl AddressCounts {
    /// At most `total_cap` slots in all and `per_address_cap` for one address.
    pub fn new(total_cap: usize, per_address_cap: usize) -> Arc<AddressCounts> {
        Arc::new(AddressCounts {
            total_cap,
            per_address_cap,
            state: Mutex::new(Counts::default()),
        })
    }

    /// Takes a slot for `ip`, unless a cap is reached.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let address = address_key(ip);
        let mut counts = self.lock();
        if counts.total >= self.total_cap {
            return Err(Refusal::Total);
        }
        let held = counts.by_address.entry(address).or_insert(0);
        if *held >= self.per_address_cap {
            return Err(Refusal::PerAddress);
        }
        *held += 1;
        counts.total += 1;
        Ok(Slot {
            owner: Arc::clone(self),
            address,
        })
    }

    fn release(&self, address: IpAddr) {
        let mut counts = self.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(held) = counts.by_address.get_mut(&address) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.by_address.remove(&address);
            }
        }
    }

    /// The counts stay consistent even if a thread panicked while holding the lock (each update is a
    /// few integer operations that cannot panic half-way), so a poisoned lock is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One slot held; given back on drop.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<AddressCounts>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.owner.release(self.address);
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit (`None`: unlimited
/// or unknown). The common default soft limit is 1024, far below what `--max-connections` plus their
/// data connections and files need; the hard limit is what the administrator allowed.
pub fn raise_open_files_limit() -> std::io::Result<Option<u64>> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised)?;
    }
    Ok(getrlimit(Resource::Nofile).current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_release() {
        let counts = AddressCounts::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = counts.try_acquire(a).unwrap();
        let _second = counts.try_acquire(a).unwrap();
        assert_eq!(counts.try_acquire(a).unwrap_err(), Refusal::PerAddress);
        let _third = counts.try_acquire(b).unwrap();
        assert_eq!(counts.try_acquire(b).unwrap_err(), Refusal::Total);
        drop(first);
        assert!(counts.try_acquire(a).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let one: IpAddr = "2001:db8::1".parse().unwrap();
        let other: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert_eq!(address_key(one), address_key(other));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), IpAddr::from([127, 0, 0, 1]));
    }
}
