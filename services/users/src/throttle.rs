//! Failed sign-ins throttled per account and per client address (governor's keyed limiters).
//!
//! Only failures spend the budget: each failed login takes a cell from the account's bucket
//! and the address's; when either is empty, that key is blocked until governor says a cell is
//! back, and every login on it (right or wrong) is answered 429 with `Retry-After` without
//! touching a password hash.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

/// Who a failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

/// The failure budgets and blocks.
pub struct LoginThrottle {
    accounts: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    /// Keys out of budget, and when they may try again.
    blocked: moka::sync::Cache<Key, std::time::Instant>,
}

impl LoginThrottle {
    /// `per_account` and `per_address` failures a minute (each also the burst).
    pub fn new(per_account: NonZeroU32, per_address: NonZeroU32) -> Self {
        Self {
            accounts: RateLimiter::keyed(Quota::per_minute(per_account)),
            addresses: RateLimiter::keyed(Quota::per_minute(per_address)),
            blocked: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    /// `Err(wait)` while the account (lower-cased email) or the address is blocked.
    pub fn check(&self, account: &str, address: IpAddr) -> Result<(), Duration> {
        let now = std::time::Instant::now();
        let keys = [Key::Account(account.to_owned()), Key::Address(address)];
        let wait = keys
            .iter()
            .filter_map(|key| self.blocked.get(key))
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failure; `Err(wait)` when it used up a budget (the key is blocked for `wait`).
    pub fn failed(&self, account: &str, address: IpAddr) -> Result<(), Duration> {
        let clock = governor::clock::DefaultClock::default();
        let mut wait = None;
        if let Err(not_until) = self.accounts.check_key(&account.to_owned()) {
            let until = not_until.wait_time_from(clock.now());
            self.block(Key::Account(account.to_owned()), until);
            wait = Some(until);
        }
        if let Err(not_until) = self.addresses.check_key(&address) {
            let until = not_until.wait_time_from(clock.now());
            self.block(Key::Address(address), until);
            wait = wait.max(Some(until));
        }
        // The limiters keep a cell per key ever seen: drop the ones back to a full bucket.
        if self.accounts.len() > 10_000 {
            self.accounts.retain_recent();
            self.addresses.retain_recent();
        }
        wait.map_or(Ok(()), Err)
    }

    fn block(&self, key: Key, wait: Duration) {
        self.blocked.insert(key, std::time::Instant::now() + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(
            NonZeroU32::new(3).expect("3"),
            NonZeroU32::new(5).expect("5"),
        )
    }

    #[test]
    fn an_account_is_blocked_after_its_budget_of_failures() {
        let throttle = throttle();
        let address: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(throttle.check("a@x.io", address).is_ok());
            assert!(throttle.failed("a@x.io", address).is_ok());
        }
        let wait = throttle
            .failed("a@x.io", address)
            .expect_err("fourth failure");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(throttle.check("a@x.io", address).is_err());
        // Another account from another address is not affected.
        assert!(throttle.check("b@x.io", [10, 0, 0, 2].into()).is_ok());
    }

    #[test]
    fn an_address_is_blocked_across_accounts() {
        let throttle = throttle();
        let address: IpAddr = [10, 0, 0, 3].into();
        for n in 0..5 {
            assert!(throttle.failed(&format!("{n}@x.io"), address).is_ok());
        }
        assert!(throttle.failed("6@x.io", address).is_err());
        assert!(throttle.check("fresh@x.io", address).is_err());
        assert!(throttle.check("fresh@x.io", [10, 0, 0, 4].into()).is_ok());
    }
}
