//! What one client may take: connections per client address, and messages per connection,
//! per account and per address.
//!
//! - **Connections per address** ([`Limits::admit`]): a handshake from an address that already
//!   holds [`Limits`]' cap of open connections is refused before the upgrade with 429
//!   `rate_limited` and `Retry-After`. The slot is a [`Seat`], given back when the connection
//!   ends, whatever ends it.
//! - **Messages** ([`Limits::check_message`]): a chat message (any text or binary frame) must
//!   fit the connection's budget, then its account's (all its connections together; a guest
//!   is its connection), then its address's (all connections from it). One that does not is
//!   dropped with a `rate_limited` error event, the connection kept: what the protocol does
//!   for the connection's own budget, for every budget. Checked narrowest first, so a flood on
//!   one connection spends that connection's budget, not its neighbours'.
//!
//! The client address is [`server::client_address`]'s (the peer, or the gateway's
//! `X-Forwarded-For` entry when the peer is a trusted proxy). IPv6 clients are counted by
//! their /64, the block one subscriber is given (one host can use every address in it).
//! The budgets hold per instance: with N instances behind the gateway, an address may get N
//! times them at most.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use server::ApiError;

/// A budget of messages: an average rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Messages per second, on average.
    pub per_second: u32,
    /// Messages at once.
    pub burst: u32,
}

impl Rate {
    /// `per_second` on average, `burst` at once.
    pub const fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }

    fn quota(self) -> Quota {
        Quota::per_second(non_zero(self.per_second)).allow_burst(non_zero(self.burst))
    }

    /// A limiter of one connection's messages.
    pub fn direct_limiter(self) -> DefaultDirectRateLimiter {
        RateLimiter::direct(self.quota())
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages per second (burst {})",
            self.per_second, self.burst
        )
    }
}

fn non_zero(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN)
}

/// A client address as the limits count it: an IPv4 address, or an IPv6 /64 (IPv4-mapped
/// IPv6 addresses count as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    /// The key of `address`.
    pub fn of(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & (u128::MAX << 64);
                Self(IpAddr::from(network.to_be_bytes()))
            }
            v4 => Self(v4),
        }
    }
}

impl std::fmt::Display for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(_) => write!(f, "{}/64", self.0),
            IpAddr::V4(_) => write!(f, "{}", self.0),
        }
    }
}

/// Which budget refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The connection's own.
    Connection,
    /// Its account's, over all the account's connections.
    Account,
    /// Its address's, over all connections from it.
    Address,
}

impl Scope {
    /// The `scope` label of `chat_rate_limited_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Account => "account",
            Self::Address => "address",
        }
    }
}

/// The settings of [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Open connections one address may hold.
    pub connections_per_address: u32,
    /// One connection's messages.
    pub connection: Rate,
    /// One account's messages, over its connections.
    pub account: Rate,
    /// One address's messages, over its connections.
    pub address: Rate,
}

impl LimitSettings {
    /// The defaults (the variables' too).
    pub const DEFAULT: Self = Self {
        // A household or an office behind one address, a few tabs each.
        connections_per_address: 20,
        // Faster than anyone types; a paste of lines in a burst.
        connection: Rate::new(10, 20),
        // One person, however many tabs.
        account: Rate::new(10, 20),
        // Two people typing flat out behind one address.
        address: Rate::new(20, 40),
    };
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How long a client refused for its connections is told to wait.
const RETRY_CONNECTING_AFTER: Duration = Duration::from_secs(10);

/// The connection counts and message budgets of this instance; cheap to clone.
#[derive(Clone)]
pub struct Limits(Arc<LimitsInner>);

struct LimitsInner {
    settings: LimitSettings,
    /// Open connections per address (an address with none has no entry).
    connections: Mutex<HashMap<AddressKey, usize>>,
    accounts: DefaultKeyedRateLimiter<i64>,
    addresses: DefaultKeyedRateLimiter<AddressKey>,
}

impl Limits {
    /// Limits with these settings.
    pub fn new(settings: LimitSettings) -> Self {
        Self(Arc::new(LimitsInner {
            settings,
            connections: Mutex::new(HashMap::new()),
            accounts: RateLimiter::keyed(settings.account.quota()),
            addresses: RateLimiter::keyed(settings.address.quota()),
        }))
    }

    /// The settings.
    pub fn settings(&self) -> &LimitSettings {
        &self.0.settings
    }

    /// A connection slot for `address`, or 429 when it holds its cap already.
    pub fn admit(&self, address: IpAddr) -> Result<Seat, ApiError> {
        let key = AddressKey::of(address);
        let cap = self.0.settings.connections_per_address;
        let mut connections = self.0.connections.lock().expect("connections lock");
        let open = connections.entry(key).or_default();
        if *open >= usize::try_from(cap).unwrap_or(usize::MAX) {
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "{key} has {cap} chat connections open, the most one address may \
                     (CHAT_CONNECTIONS_PER_ADDRESS): close one first"
                ),
                retry_after: RETRY_CONNECTING_AFTER,
            });
        }
        *open += 1;
        Ok(Seat {
            limits: self.clone(),
            key,
        })
    }

    /// Open connections from `address`.
    pub fn open_from(&self, address: IpAddr) -> usize {
        let key = AddressKey::of(address);
        let connections = self.0.connections.lock().expect("connections lock");
        connections.get(&key).copied().unwrap_or(0)
    }

    /// Whether one more message of a connection fits its budget (`connection`), its
    /// account's (`account`, `None` for a guest) and its address's; the first that refuses,
    /// with why, otherwise.
    pub fn check_message(
        &self,
        connection: &DefaultDirectRateLimiter,
        account: Option<i64>,
        seat: &Seat,
    ) -> Result<(), (Scope, String)> {
        let settings = &self.0.settings;
        if connection.check().is_err() {
            return Err((
                Scope::Connection,
                format!("over {}: message dropped", settings.connection),
            ));
        }
        if let Some(account) = account
            && self.0.accounts.check_key(&account).is_err()
        {
            return Err((
                Scope::Account,
                format!(
                    "this account is over {} across its connections: message dropped",
                    settings.account
                ),
            ));
        }
        if self.0.addresses.check_key(&seat.key).is_err() {
            return Err((
                Scope::Address,
                format!(
                    "{} is over {} across its connections: message dropped",
                    seat.key, settings.address
                ),
            ));
        }
        Ok(())
    }

    /// Forgets the budgets that are full again (an account or address idle long enough), so
    /// their memory follows the clients that are sending. Call it now and then.
    pub fn forget_idle(&self) {
        self.0.accounts.retain_recent();
        self.0.addresses.retain_recent();
        self.0.accounts.shrink_to_fit();
        self.0.addresses.shrink_to_fit();
    }

    /// Runs [`Self::forget_idle`] every `interval` until the task is aborted.
    pub fn forget_idle_every(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let limits = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                limits.forget_idle();
            }
        })
    }

    /// The accounts and addresses with budgets kept.
    pub fn budgets_kept(&self) -> usize {
        self.0.accounts.len() + self.0.addresses.len()
    }

    fn release(&self, key: AddressKey) {
        let mut connections = self.0.connections.lock().expect("connections lock");
        if let Some(open) = connections.get_mut(&key) {
            *open -= 1;
            if *open == 0 {
                connections.remove(&key);
            }
        }
    }
}

/// One open connection's slot in its address's count, given back when dropped.
pub struct Seat {
    limits: Limits,
    key: AddressKey,
}

impl Seat {
    /// The address it counts against.
    pub fn address(&self) -> AddressKey {
        self.key
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.limits.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        assert_eq!(
            AddressKey::of(address("2001:db8:1:2:aaaa::1")),
            AddressKey::of(address("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            AddressKey::of(address("2001:db8:1:2::1")),
            AddressKey::of(address("2001:db8:1:3::1"))
        );
        assert_eq!(
            AddressKey::of(address("::ffff:192.0.2.1")),
            AddressKey::of(address("192.0.2.1"))
        );
        assert_ne!(
            AddressKey::of(address("192.0.2.1")),
            AddressKey::of(address("192.0.2.2"))
        );
        assert_eq!(
            AddressKey::of(address("2001:db8:1:2::9")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn an_address_holds_its_cap_of_connections_and_gets_them_back() {
        let limits = Limits::new(LimitSettings {
            connections_per_address: 3,
            ..LimitSettings::default()
        });
        let attacker = address("198.51.100.7");
        let seats: Vec<Seat> = (0..3)
            .map(|_| limits.admit(attacker).expect("under the cap"))
            .collect();
        let refused = limits.admit(attacker).err().expect("over the cap");
        assert!(
            matches!(&refused, ApiError::TooManyRequests { message, .. } if message.contains("198.51.100.7")),
            "{refused:?}"
        );
        // Another address is not affected.
        let _neighbour = limits
            .admit(address("198.51.100.8"))
            .expect("another address");
        drop(seats);
        assert_eq!(limits.open_from(attacker), 0);
        let _again = limits.admit(attacker).expect("slots given back");
        assert_eq!(limits.open_from(attacker), 1);
    }

    #[test]
    fn messages_fit_the_connection_then_the_account_then_the_address() {
        let limits = Limits::new(LimitSettings {
            connection: Rate::new(1, 3),
            account: Rate::new(1, 4),
            address: Rate::new(1, 6),
            ..LimitSettings::default()
        });
        let home = address("192.0.2.1");
        let (one, two, three) = (
            limits.admit(home).expect("a seat"),
            limits.admit(home).expect("a seat"),
            limits.admit(home).expect("a seat"),
        );
        let scopes = |seat: &Seat, account: Option<i64>, tries: usize| {
            let connection = Rate::new(1, 3).direct_limiter();
            (0..tries)
                .map(|_| {
                    limits
                        .check_message(&connection, account, seat)
                        .err()
                        .map(|(scope, _)| scope)
                })
                .collect::<Vec<_>>()
        };
        // One connection: its own burst of 3.
        assert_eq!(
            scopes(&one, Some(7), 4),
            [None, None, None, Some(Scope::Connection)]
        );
        // The same account on another connection: one left of its 4.
        assert_eq!(scopes(&two, Some(7), 2), [None, Some(Scope::Account)]);
        // A guest at the same address: two left of the address's 6.
        assert_eq!(scopes(&three, None, 3), [None, None, Some(Scope::Address)]);
        // Another address has its own budget.
        let elsewhere = limits.admit(address("192.0.2.2")).expect("a seat");
        assert_eq!(scopes(&elsewhere, None, 1), [None]);
        assert_eq!(limits.budgets_kept(), 3);
    }
}
