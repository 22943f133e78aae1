//! Cache-aside for reads by key: Redis when `REDIS_URL` is set, an in-process moka cache otherwise.
//!
//! - [`Cache::get_or_load`] answers from the cache, or loads once per key and process however
//!   many requests miss at the same time (single-flight), then stores the value for
//!   `CACHE_TTL_SECS`; a missing row is remembered briefly too (negative caching).
//! - Writers call [`Cache::invalidate`] after they commit.
//! - Redis is never on the critical path: an error or a slow answer is logged and counted, the
//!   request is served from the database, and Redis is left alone for a second before it is
//!   tried again. An invalidation that could not reach Redis is kept and retried before that key
//!   is read from Redis again, so a write made while Redis was away never leaves a stale entry.
//!
//! # Modules (private; everything public is re-exported here)
//!
//! | module | holds |
//! |---|---|
//! | `entry` | [`Entry`] (a value's JSON, or missing) and [`CacheStatus`] (hit or miss) |
//! | `settings` | [`CacheSettings`], [`DEFAULT_CACHE_NAMESPACE`] |
//! | `state` | [`Cache`] and what its clones share: the tier, the loads under way, Redis' back-off, missed invalidations |
//! | `handle` | [`Cache`]'s operations: single-flight [`Cache::get_or_load`], [`Cache::invalidate`], counted look-ups, [`Cache::ping`] |
//! | `batch` | [`Cache::get_many`]: many keys, one look-up, one load |
//! | `local` | the in-process moka tier and its per-entry expiry |
//! | `redis` | the Redis tier: the pool, the timeout and backoff around every command, pending invalidations, the value encoding |
//!
//! No public item names a Redis or pool type: Redis failures are logged and counted, and
//! [`Cache::ping`] answers an [`anyhow::Error`].

mod batch;
mod entry;
mod handle;
mod local;
mod redis;
mod settings;
mod state;
#[cfg(test)]
mod tests;

pub use entry::{CacheStatus, Entry};
pub use settings::{CacheSettings, DEFAULT_CACHE_NAMESPACE};
pub use state::Cache;
