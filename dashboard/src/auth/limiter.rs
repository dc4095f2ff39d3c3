//! The login attempt limiter: a sliding window of attempts per user name
//! and per client address, with bounded memory.
//!
//! An attempt is *reserved* before its password is checked, in one step
//! under the caller's lock: the check of both limits and the recording of
//! the attempt cannot be separated, so N guesses sent at once take at most
//! `limit` slots and the others are refused without hashing. A reservation
//! stays in the window as a failure unless it is *released*: the caller
//! releases it when the password was right, or when the password was never
//! checked (no hashing slot free in time).
//!
//! Every user name is tracked, configured or not: a name that does not
//! exist is limited exactly like one that does, so the limiter does not
//! tell which names exist. Names are cut to [`MAX_NAME_CHARS`] characters
//! (no configured name is longer). IPv6 clients are grouped by their /64
//! prefix, the block one subscriber usually holds.
//!
//! Memory: each table holds at most `max_tracked` keys, each with at most
//! `limit` instants. When a table is full, keys whose window has passed are
//! dropped first, then the key seen least recently. An attacker who can
//! fill the user table from many addresses can make it forget a name's
//! failures; the per-address limit makes that cost `max_tracked` attempts
//! from `max_tracked / per_ip` addresses.
//!
//! No clock inside: the caller passes `now`.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// User names are compared on their first this many characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Attempts per user name in `window`.
    pub per_user: u32,
    /// Attempts per client address in `window`.
    pub per_ip: u32,
    /// The sliding window.
    pub window: Duration,
    /// Keys kept at most per table.
    pub max_tracked: usize,
}

/// Which limit refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The user name's.
    User,
    /// The client address's.
    Ip,
}

/// A refused attempt: which limit, and when a slot frees up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub scope: Scope,
    pub retry_after: Duration,
}

/// One reserved attempt, to release if it must not count as a failure.
#[derive(Debug, PartialEq, Eq)]
pub struct Reservation {
    id: u64,
    user: String,
    ip: IpAddr,
}

#[derive(Debug)]
struct Slot {
    /// (reservation id, when), oldest first.
    hits: VecDeque<(u64, Instant)>,
    last: Instant,
}

#[derive(Debug)]
struct Table<K> {
    map: HashMap<K, Slot>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Table {
            map: HashMap::new(),
        }
    }

    /// The hits of `key` still in the window (expired ones dropped).
    fn live(&mut self, key: &K, now: Instant, window: Duration) -> usize {
        let Some(slot) = self.map.get_mut(key) else {
            return 0;
        };
        while slot
            .hits
            .front()
            .is_some_and(|(_, t)| now.saturating_duration_since(*t) >= window)
        {
            slot.hits.pop_front();
        }
        slot.hits.len()
    }

    fn retry_after(&self, key: &K, now: Instant, window: Duration) -> Duration {
        self.map
            .get(key)
            .and_then(|s| s.hits.front())
            .map_or(Duration::ZERO, |(_, t)| {
                window.saturating_sub(now.saturating_duration_since(*t))
            })
    }

    /// Records a hit; returns how many keys were evicted to make room.
    fn push(&mut self, key: &K, id: u64, now: Instant, lim: &Limits) -> u64 {
        let mut evicted = 0;
        if !self.map.contains_key(key) && self.map.len() >= lim.max_tracked {
            let before = self.map.len();
            self.map.retain(|_, s| {
                s.hits
                    .back()
                    .is_some_and(|(_, t)| now.saturating_duration_since(*t) < lim.window)
            });
            while self.map.len() >= lim.max_tracked {
                let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                self.map.remove(&oldest);
            }
            evicted = (before - self.map.len()) as u64;
        }
        let slot = self.map.entry(key.clone()).or_insert_with(|| Slot {
            hits: VecDeque::new(),
            last: now,
        });
        slot.hits.push_back((id, now));
        slot.last = now;
        evicted
    }

    fn remove(&mut self, key: &K, id: u64) {
        if let Some(slot) = self.map.get_mut(key) {
            slot.hits.retain(|(i, _)| *i != id);
            if slot.hits.is_empty() {
                self.map.remove(key);
            }
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The attempts of the last window, per user name and per client address.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    users: Table<String>,
    ips: Table<IpAddr>,
    next_id: u64,
    /// Keys forgotten to keep the tables within `max_tracked`.
    pub evicted: u64,
}

/// The key of a user name: its first [`MAX_NAME_CHARS`] characters.
fn user_key(user: &str) -> String {
    user.chars().take(MAX_NAME_CHARS).collect()
}

/// The key of a client address: IPv4 as is (IPv4-mapped IPv6 too), IPv6
/// by its /64 prefix.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

impl Limiter {
    /// An empty limiter.
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            users: Table::new(),
            ips: Table::new(),
            next_id: 0,
            evicted: 0,
        }
    }

    /// Reserves an attempt for `user` from `ip`, or says which limit is
    /// reached and for how long. Both limits are checked before either is
    /// charged: a refused attempt takes no slot.
    pub fn reserve(
        &mut self,
        user: &str,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Reservation, Refused> {
        let (user, ip) = (user_key(user), ip_key(ip));
        let lim = self.limits;
        if self.users.live(&user, now, lim.window) >= lim.per_user as usize {
            return Err(Refused {
                scope: Scope::User,
                retry_after: self.users.retry_after(&user, now, lim.window),
            });
        }
        if self.ips.live(&ip, now, lim.window) >= lim.per_ip as usize {
            return Err(Refused {
                scope: Scope::Ip,
                retry_after: self.ips.retry_after(&ip, now, lim.window),
            });
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.evicted = self
            .evicted
            .saturating_add(self.users.push(&user, id, now, &lim))
            .saturating_add(self.ips.push(&ip, id, now, &lim));
        Ok(Reservation { id, user, ip })
    }

    /// Takes a reserved attempt back out of the window.
    pub fn release(&mut self, r: &Reservation) {
        self.users.remove(&r.user, r.id);
        self.ips.remove(&r.ip, r.id);
    }

    /// Keys tracked now: (user names, client addresses).
    pub fn tracked(&self) -> (usize, usize) {
        (self.users.len(), self.ips.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};

    const LIMITS: Limits = Limits {
        per_user: 5,
        per_ip: 20,
        window: Duration::from_secs(900),
        max_tracked: 100,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parallel_reservations_never_exceed_the_user_limit() {
        let l = Arc::new(Mutex::new(Limiter::new(LIMITS)));
        let now = Instant::now();
        let threads: Vec<_> = (0..30)
            .map(|i| {
                let l = l.clone();
                std::thread::spawn(move || {
                    l.lock()
                        .unwrap()
                        .reserve("张工", ip(&format!("10.0.0.{i}")), now)
                        .is_ok()
                })
            })
            .collect();
        let ok = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(ok, 5);
    }

    #[test]
    fn the_address_limit_holds_across_user_names() {
        let mut l = Limiter::new(LIMITS);
        let now = Instant::now();
        for i in 0..20 {
            l.reserve(&format!("u{i}"), ip("192.0.2.7"), now).unwrap();
        }
        let e = l.reserve("someone", ip("192.0.2.7"), now).unwrap_err();
        assert_eq!(e.scope, Scope::Ip);
        assert_eq!(e.retry_after, Duration::from_secs(900));
        // Another address is not affected.
        l.reserve("someone", ip("192.0.2.8"), now).unwrap();
    }

    #[test]
    fn a_refused_attempt_takes_no_slot_and_the_window_slides() {
        let mut l = Limiter::new(LIMITS);
        let t0 = Instant::now();
        for s in 0..5 {
            l.reserve("a", ip("192.0.2.1"), t0 + Duration::from_secs(s))
                .unwrap();
        }
        let e = l
            .reserve("a", ip("192.0.2.1"), t0 + Duration::from_secs(100))
            .unwrap_err();
        assert_eq!(e.scope, Scope::User);
        assert_eq!(e.retry_after, Duration::from_secs(800));
        // The refused one did not count against the address.
        assert_eq!(l.ips.live(&ip("192.0.2.1"), t0, LIMITS.window), 5);
        // After the first attempt leaves the window, one slot is free.
        let later = t0 + Duration::from_secs(900);
        l.reserve("a", ip("192.0.2.1"), later).unwrap();
        assert!(l.reserve("a", ip("192.0.2.1"), later).is_err());
    }

    #[test]
    fn a_released_reservation_frees_its_slot_in_both_tables() {
        let mut l = Limiter::new(LIMITS);
        let now = Instant::now();
        let rs: Vec<_> = (0..5)
            .map(|_| l.reserve("a", ip("192.0.2.1"), now).unwrap())
            .collect();
        assert!(l.reserve("a", ip("192.0.2.1"), now).is_err());
        l.release(&rs[2]);
        let r = l.reserve("a", ip("192.0.2.1"), now).unwrap();
        assert!(l.reserve("a", ip("192.0.2.1"), now).is_err());
        for r in rs.iter().chain([&r]) {
            l.release(r);
        }
        assert_eq!(l.tracked(), (0, 0));
    }

    #[test]
    fn unknown_and_long_names_are_limited_like_any_other() {
        let mut l = Limiter::new(LIMITS);
        let now = Instant::now();
        let long = "x".repeat(10_000);
        for i in 0..5 {
            // Differing only after the 64th character: one key.
            l.reserve(&format!("{long}{i}"), ip("192.0.2.1"), now)
                .unwrap();
        }
        assert_eq!(
            l.reserve(&long, ip("192.0.2.2"), now).unwrap_err().scope,
            Scope::User
        );
        assert_eq!(l.users.map.keys().next().unwrap().chars().count(), 64);
    }

    #[test]
    fn ipv6_clients_share_their_64_prefix_and_mapped_ipv4_is_ipv4() {
        let mut l = Limiter::new(LIMITS);
        let now = Instant::now();
        for i in 0..20 {
            l.reserve(&format!("u{i}"), ip(&format!("2001:db8:1:2::{i:x}")), now)
                .unwrap();
        }
        assert_eq!(
            l.reserve("v", ip("2001:db8:1:2:ffff::1"), now)
                .unwrap_err()
                .scope,
            Scope::Ip
        );
        l.reserve("v", ip("2001:db8:1:3::1"), now).unwrap();
        assert_eq!(ip_key(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
    }

    #[test]
    fn full_tables_forget_expired_keys_first_then_the_least_recently_seen() {
        let limits = Limits {
            max_tracked: 3,
            ..LIMITS
        };
        let mut l = Limiter::new(limits);
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        l.reserve("old", ip("192.0.2.1"), at(0)).unwrap();
        l.reserve("b", ip("192.0.2.2"), at(500)).unwrap();
        l.reserve("c", ip("192.0.2.3"), at(600)).unwrap();
        // "old" has left the window: it goes, nothing live is lost.
        l.reserve("d", ip("192.0.2.4"), at(950)).unwrap();
        assert_eq!(l.tracked(), (3, 3));
        assert!(!l.users.map.contains_key("old"));
        // All live now: the least recently seen ("b") goes.
        l.reserve("c", ip("192.0.2.3"), at(960)).unwrap();
        l.reserve("e", ip("192.0.2.5"), at(970)).unwrap();
        assert_eq!(l.tracked(), (3, 3));
        assert!(!l.users.map.contains_key("b"));
        assert!(l.users.map.contains_key("c"));
        assert_eq!(l.evicted, 4);
        // Many distinct names: memory stays bounded.
        for i in 0..1000 {
            let _ = l.reserve(
                &format!("n{i}"),
                ip(&format!("198.51.100.{}", i % 250)),
                at(980),
            );
        }
        assert!(l.tracked().0 <= 3 && l.tracked().1 <= 3);
    }
}
