//! Failed sign-ins throttled per account and per client address (governor's keyed limiters).
//!
//! Only failures spend the budget: each failed login takes a cell from the account's bucket
//! and the address's; when either is empty, that key is blocked until governor says a cell is
//! back, and every login on it (right or wrong) is answered 429 with `Retry-After` without
//! touching a password hash. So that a burst of parallel guesses cannot all pass the check
//! before the first failure is counted, attempts take turns: one at a time per account, a few
//! at a time per address, and each looks at the blocks again once it has its turn.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

/// Attempts of one address checked at once.
pub const TURNS_PER_ADDRESS: usize = 4;
/// How long an attempt waits for its turn before it is answered 429.
const TURN_WAIT: Duration = Duration::from_secs(10);

/// An account, by the SHA-256 of its lower-cased email: bounded whatever was sent.
type AccountKey = [u8; 32];

/// Who a failure is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Account(AccountKey),
    Address(IpAddr),
}

/// A login's turn: while it is held, no other attempt on the account is checked.
pub struct Attempt {
    account: AccountKey,
    address: IpAddr,
    _account_turn: OwnedMutexGuard<()>,
    _address_turn: OwnedSemaphorePermit,
}

/// The failure budgets, blocks and turns.
pub struct LoginThrottle {
    accounts: DefaultKeyedRateLimiter<AccountKey>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    /// Keys out of budget, and when they may try again.
    blocked: moka::sync::Cache<Key, Instant>,
    /// One attempt at a time per account.
    account_turns: moka::sync::Cache<AccountKey, Arc<Mutex<()>>>,
    /// [`TURNS_PER_ADDRESS`] attempts at a time per address.
    address_turns: moka::sync::Cache<IpAddr, Arc<Semaphore>>,
}

/// How long a key is remembered without attempts, and so the longest period a budget may be
/// counted over: a blocked key's wait (period ÷ budget) never outlives its entry.
pub const MAX_PERIOD_SECS: u64 = 3600;

fn cache<K, V>() -> moka::sync::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_idle(Duration::from_secs(MAX_PERIOD_SECS))
        .build()
}

/// `budget` cells per `period`, all of them available at once.
fn quota(budget: NonZeroU32, period: Duration) -> Quota {
    Quota::with_period((period / budget.get()).max(Duration::from_nanos(1)))
        .expect("a period of at least 1 ns")
        .allow_burst(budget)
}

impl LoginThrottle {
    /// `per_account` and `per_address` failures per `period` (each also the burst; a spent
    /// budget comes back one failure every `period / budget`).
    pub fn new(per_account: NonZeroU32, per_address: NonZeroU32, period: Duration) -> Self {
        Self {
            accounts: RateLimiter::keyed(quota(per_account, period)),
            addresses: RateLimiter::keyed(quota(per_address, period)),
            blocked: cache(),
            account_turns: cache(),
            address_turns: cache(),
        }
    }

    /// Waits for the attempt's turn on `account` (a lower-cased email) from `address`;
    /// `Err(wait)` while either is blocked, or when no turn came within 10 s.
    pub async fn begin(&self, account: &str, address: IpAddr) -> Result<Attempt, Duration> {
        let account: AccountKey = Sha256::digest(account.as_bytes()).into();
        self.check(account, address)?;
        let busy = |_| Duration::from_secs(1);
        let address_turns = self
            .address_turns
            .get_with(address, || Arc::new(Semaphore::new(TURNS_PER_ADDRESS)));
        let address_turn = tokio::time::timeout(TURN_WAIT, address_turns.acquire_owned())
            .await
            .map_err(busy)?
            .map_err(|_| Duration::from_secs(1))?;
        let account_turns = self
            .account_turns
            .get_with(account, || Arc::new(Mutex::new(())));
        let account_turn = tokio::time::timeout(TURN_WAIT, account_turns.lock_owned())
            .await
            .map_err(busy)?;
        // The attempts that went before may have spent the budget.
        self.check(account, address)?;
        Ok(Attempt {
            account,
            address,
            _account_turn: account_turn,
            _address_turn: address_turn,
        })
    }

    fn check(&self, account: AccountKey, address: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let wait = [Key::Account(account), Key::Address(address)]
            .iter()
            .filter_map(|key| self.blocked.get(key))
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Counts the attempt's failure; `Err(wait)` when it used up a budget (the key is blocked
    /// for `wait`).
    pub fn failed(&self, attempt: &Attempt) -> Result<(), Duration> {
        let clock = governor::clock::DefaultClock::default();
        let mut wait = None;
        if let Err(not_until) = self.accounts.check_key(&attempt.account) {
            let until = not_until.wait_time_from(clock.now());
            self.block(Key::Account(attempt.account), until);
            wait = Some(until);
        }
        if let Err(not_until) = self.addresses.check_key(&attempt.address) {
            let until = not_until.wait_time_from(clock.now());
            self.block(Key::Address(attempt.address), until);
            wait = wait.max(Some(until));
        }
        // The limiters keep a cell per key ever seen: drop the ones back to a full bucket.
        if self.accounts.len() > 10_000 || self.addresses.len() > 10_000 {
            self.accounts.retain_recent();
            self.addresses.retain_recent();
        }
        wait.map_or(Ok(()), Err)
    }

    fn block(&self, key: Key, wait: Duration) {
        self.blocked.insert(key, Instant::now() + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(
            NonZeroU32::new(3).expect("3"),
            NonZeroU32::new(5).expect("5"),
            Duration::from_secs(3600),
        )
    }

    async fn fail(
        throttle: &LoginThrottle,
        account: &str,
        address: IpAddr,
    ) -> Result<(), Duration> {
        let attempt = throttle.begin(account, address).await?;
        throttle.failed(&attempt)
    }

    #[tokio::test]
    async fn an_account_is_blocked_after_its_budget_of_failures() {
        let throttle = throttle();
        let address: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(fail(&throttle, "a@x.io", address).await.is_ok());
        }
        let wait = fail(&throttle, "a@x.io", address)
            .await
            .expect_err("fourth failure");
        // 3 an hour: the next failure is allowed 20 minutes after the budget's first.
        assert!(
            wait > Duration::from_secs(19 * 60) && wait <= Duration::from_secs(20 * 60),
            "{wait:?}"
        );
        assert!(throttle.begin("a@x.io", address).await.is_err());
        // Another account from another address is not affected.
        assert!(throttle.begin("b@x.io", [10, 0, 0, 2].into()).await.is_ok());
    }

    #[tokio::test]
    async fn an_address_is_blocked_across_accounts() {
        let throttle = throttle();
        let address: IpAddr = [10, 0, 0, 3].into();
        for n in 0..5 {
            assert!(fail(&throttle, &format!("{n}@x.io"), address).await.is_ok());
        }
        assert!(fail(&throttle, "6@x.io", address).await.is_err());
        assert!(throttle.begin("fresh@x.io", address).await.is_err());
        assert!(
            throttle
                .begin("fresh@x.io", [10, 0, 0, 4].into())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn parallel_guesses_on_one_account_take_turns_and_stop_at_the_budget() {
        let throttle = Arc::new(throttle());
        let guesses: Vec<_> = (0..20)
            .map(|n| {
                let throttle = throttle.clone();
                // Spread over addresses so that only the account's budget applies.
                tokio::spawn(async move {
                    let attempt = throttle
                        .begin("victim@x.io", IpAddr::from([10, 1, 0, n]))
                        .await?;
                    // The password check, while the turn is held.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let _ = throttle.failed(&attempt);
                    Ok::<_, Duration>(())
                })
            })
            .collect();
        let mut checked = 0;
        for guess in guesses {
            if guess.await.expect("task").is_ok() {
                checked += 1;
            }
        }
        // The budget's three, and the fourth whose failure spent it: no more were checked.
        assert_eq!(checked, 4);
        assert!(
            throttle
                .begin("victim@x.io", [10, 0, 0, 5].into())
                .await
                .is_err()
        );
    }
}
