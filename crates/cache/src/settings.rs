//! [`CacheSettings`]: a cache's name, key namespace, backend, lifetimes and Redis timeouts.

use std::time::Duration;

/// The prefix of cache keys when `CACHE_NAMESPACE` is not set.
pub use runtime::DEFAULT_CACHE_NAMESPACE;

/// How a [`Cache`](crate::Cache) is set up.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// The label of its metrics (`users`, `products`).
    pub name: &'static str,
    /// Prefix of every key, so several services (or test runs) can share one Redis.
    pub namespace: String,
    /// Redis, or `None` for the in-process cache.
    pub redis_url: Option<String>,
    /// Lifetime of a found value.
    pub ttl: Duration,
    /// Lifetime of a "missing" answer.
    pub negative_ttl: Duration,
    /// The longest a Redis connect or command may take before the cache is bypassed.
    pub redis_timeout: Duration,
    /// How long Redis is left alone after it failed.
    pub redis_backoff: Duration,
}

impl CacheSettings {
    /// Defaults for a cache named `name`: a 5 s negative TTL (capped by `ttl`), 250 ms for Redis.
    pub fn new(name: &'static str, redis_url: Option<String>, ttl: Duration) -> Self {
        Self {
            name,
            namespace: format!("{DEFAULT_CACHE_NAMESPACE}:{name}"),
            redis_url,
            ttl,
            negative_ttl: ttl.min(Duration::from_secs(5)),
            redis_timeout: Duration::from_millis(250),
            redis_backoff: Duration::from_secs(1),
        }
    }
}
