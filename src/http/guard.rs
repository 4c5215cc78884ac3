//! Slows and shows guessing of the admin token (API bearer and dashboard
//! login share it, so their failures count together).
//!
//! Two fixed windows of `auth_window_secs`, started by a failure:
//! - **per address**: past `auth_failures_per_address` failures, every
//!   attempt from that address is answered 429 until the window ends, *the
//!   right token included*: if a locked-out address could still succeed, a
//!   guesser would learn a right guess at full speed and nothing would be
//!   slowed.
//! - **per account** (the one admin): past `auth_failures_total` failures
//!   from all addresses, only addresses that presented the right token in
//!   the last 24 hours may try; so a spray from many addresses is slowed
//!   too, while the admin's usual address keeps working.
//!
//! The address is the TCP peer (`PeerAddr`). `X-Forwarded-For` is not
//! trusted: anyone can send it. Behind a reverse proxy every client then
//! shares the proxy's address (and its lockout); the account limit still
//! holds. IPv6 addresses count by their /64, the block one host is usually
//! given, so one host cannot get a fresh address per guess.
//!
//! Memory is bounded: at most `MAX_TRACKED` addresses; when full, expired
//! windows are dropped (at most once a second, so a full map is not swept
//! per request), and a further address is not tracked on its own but
//! still counts against the account. Hand-rolled rather than `governor`:
//! a lockout must be checked *before* the token is compared without
//! counting as an attempt, and only failures count; governor's keyed
//! limiters consume a cell on every check.

use dashmap::DashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at once (~64 bytes each: a few MiB at most).
const MAX_TRACKED: usize = 65_536;
/// Addresses remembered as having presented the right token.
const MAX_TRUSTED: usize = 1_024;
/// How long a right token keeps an address trusted during an account lockout.
const TRUST: Duration = Duration::from_secs(24 * 60 * 60);

/// The client's TCP peer address, put into each request's extensions by the
/// accept loop (`serve`), except on hooks, which do not need it.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub IpAddr);

/// Attempts are refused until `retry_after` has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: Duration,
}

impl Locked {
    /// Whole seconds for `Retry-After`, rounded up so a client that waits
    /// exactly that long is let in.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        if self.retry_after.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs.max(1)
        }
    }
}

/// Failures within one window.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    fn fresh(now: Instant) -> Self {
        Self {
            start: now,
            count: 0,
        }
    }

    fn ends(&self, length: Duration) -> Instant {
        self.start + length
    }

    /// Counts one failure, starting a new window when the old one ended.
    fn bump(&mut self, now: Instant, length: Duration) -> u32 {
        if now >= self.ends(length) {
            *self = Self::fresh(now);
        }
        self.count = self.count.saturating_add(1);
        self.count
    }

    /// `Some` while this window has reached `max` and not ended.
    fn locked(&self, now: Instant, length: Duration, max: u32) -> Option<Locked> {
        let ends = self.ends(length);
        (self.count >= max && now < ends).then(|| Locked {
            retry_after: ends - now,
        })
    }
}

pub struct AuthGuard {
    per_address: u32,
    total: u32,
    window: Duration,
    failures: DashMap<IpAddr, Window>,
    trusted: DashMap<IpAddr, Instant>,
    account: Mutex<Window>,
    last_prune: Mutex<Instant>,
}

impl AuthGuard {
    pub fn new(per_address: u32, total: u32, window: Duration) -> Self {
        let now = Instant::now();
        Self {
            per_address: per_address.max(1),
            total: total.max(1),
            window: window.max(Duration::from_secs(1)),
            failures: DashMap::new(),
            trusted: DashMap::new(),
            account: Mutex::new(Window::fresh(now)),
            last_prune: Mutex::new(now),
        }
    }

    pub fn from_config(config: &crate::config::Config) -> Self {
        Self::new(
            config.auth_failures_per_address,
            config.auth_failures_total,
            Duration::from_secs(config.auth_window_secs),
        )
    }

    /// Before comparing a token: is this address (or the account) locked?
    /// Costs a shard read and an uncontended mutex, so a right token is not
    /// slowed.
    pub fn check(&self, addr: IpAddr) -> Result<(), Locked> {
        let key = bucket(addr);
        let now = Instant::now();
        if let Some(locked) = self
            .failures
            .get(&key)
            .and_then(|w| w.locked(now, self.window, self.per_address))
        {
            return Err(locked);
        }
        let account = self.account_window();
        match account.locked(now, self.window, self.total) {
            Some(locked) if !self.is_trusted(key, now) => Err(locked),
            _ => Ok(()),
        }
    }

    /// A wrong token from `addr`: counted and logged (the address and the
    /// counts, never the guessed value). The log is bounded by the limits:
    /// locked attempts are refused before they get here.
    pub fn failed(&self, addr: IpAddr, channel: &'static str) {
        let key = bucket(addr);
        let now = Instant::now();
        let from_address = self.count_failure(key, now);
        let all = match self.account.lock() {
            Ok(mut account) => account.bump(now, self.window),
            Err(poisoned) => poisoned.into_inner().bump(now, self.window),
        };
        tracing::warn!(
            address = %addr,
            channel,
            failures_from_address = from_address,
            failures_all_addresses = all,
            window_secs = self.window.as_secs(),
            "wrong admin token"
        );
    }

    /// The right token: the address's failures are forgotten and it is
    /// trusted through an account lockout.
    pub fn succeeded(&self, addr: IpAddr) {
        let key = bucket(addr);
        let now = Instant::now();
        if self.failures.contains_key(&key) {
            self.failures.remove(&key);
        }
        // A read first: the admin's every API call lands here, and a write
        // lock per call is avoidable when the mark is fresh.
        let fresh = self
            .trusted
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < self.window);
        if fresh {
            return;
        }
        if self.trusted.len() >= MAX_TRUSTED {
            self.trusted.retain(|_, at| now.duration_since(*at) < TRUST);
        }
        if self.trusted.len() < MAX_TRUSTED || self.trusted.contains_key(&key) {
            self.trusted.insert(key, now);
        }
    }

    /// Counts against the address's window; 0 when the address cannot be
    /// tracked (the map is full of live windows).
    fn count_failure(&self, key: IpAddr, now: Instant) -> u32 {
        if !self.failures.contains_key(&key) && self.failures.len() >= MAX_TRACKED {
            self.prune(now);
            if self.failures.len() >= MAX_TRACKED {
                return 0;
            }
        }
        let mut window = self
            .failures
            .entry(key)
            .or_insert_with(|| Window::fresh(now));
        window.bump(now, self.window)
    }

    /// Drops ended windows, at most once a second.
    fn prune(&self, now: Instant) {
        {
            let Ok(mut last) = self.last_prune.lock() else {
                return;
            };
            if now.duration_since(*last) < Duration::from_secs(1) {
                return;
            }
            *last = now;
        }
        let window = self.window;
        self.failures.retain(|_, w| now < w.ends(window));
    }

    fn account_window(&self) -> Window {
        match self.account.lock() {
            Ok(account) => *account,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn is_trusted(&self, key: IpAddr, now: Instant) -> bool {
        self.trusted
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < TRUST)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.failures.len()
    }
}

/// The key an address counts under: IPv4 as is (IPv4-mapped IPv6 too),
/// IPv6 by its /64.
fn bucket(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn an_address_is_locked_after_its_limit_and_the_right_token_too() {
        let guard = AuthGuard::new(3, 1000, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(guard.check(ip(1)).is_ok());
            guard.failed(ip(1), "test");
        }
        let locked = guard.check(ip(1)).expect_err("locked");
        assert!(locked.retry_after_secs() <= 60 && locked.retry_after_secs() >= 59);
        assert!(guard.check(ip(2)).is_ok(), "another address is not locked");
    }

    #[test]
    fn a_success_forgets_the_failures() {
        let guard = AuthGuard::new(3, 1000, Duration::from_secs(60));
        guard.failed(ip(1), "test");
        guard.failed(ip(1), "test");
        guard.succeeded(ip(1));
        guard.failed(ip(1), "test");
        guard.failed(ip(1), "test");
        assert!(guard.check(ip(1)).is_ok());
    }

    #[test]
    fn a_spray_of_addresses_locks_the_account_but_not_a_trusted_address() {
        let guard = AuthGuard::new(3, 10, Duration::from_secs(60));
        guard.succeeded(ip(7));
        for n in 100..110 {
            guard.failed(ip(n), "test");
        }
        assert!(guard.check(ip(5000)).is_err(), "a fresh address waits");
        assert!(
            guard.check(ip(7)).is_ok(),
            "the admin's address still may try"
        );
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_block() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let guard = AuthGuard::new(2, 1000, Duration::from_secs(60));
        guard.failed(a, "test");
        guard.failed(b, "test");
        assert!(guard.check(a).is_err());
    }

    #[test]
    fn the_map_of_addresses_stays_bounded_under_a_spray() {
        let guard = AuthGuard::new(3, u32::MAX, Duration::from_secs(60));
        for n in 0..(MAX_TRACKED as u32 + 5_000) {
            guard.failed(ip(n), "test");
        }
        assert!(guard.tracked() <= MAX_TRACKED);
    }

    #[test]
    fn a_window_ends() {
        let mut window = Window::fresh(Instant::now());
        let start = window.start;
        window.bump(start, Duration::from_secs(1));
        window.bump(start, Duration::from_secs(1));
        assert!(window.locked(start, Duration::from_secs(1), 2).is_some());
        let later = start + Duration::from_secs(2);
        assert!(window.locked(later, Duration::from_secs(1), 2).is_none());
        assert_eq!(window.bump(later, Duration::from_secs(1)), 1);
    }
}
