//! [`PubSubError`]: what publishing or subscribing fails with. The Redis client's errors are
//! carried as a boxed source, never as a type of the public surface.

use std::time::Duration;

use deadpool_redis::redis;

/// What publishing or subscribing can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// `REDIS_URL` could not be used.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// Redis refused or failed the command (the Redis client's error is the source).
    #[error("Redis pub/sub failed")]
    Redis(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No connection to Redis could be had from the pool.
    #[error("no Redis connection: {0}")]
    Pool(String),
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The subscriber connection to Redis is down (being re-established).
    #[error("the Redis subscriber connection is down")]
    Disconnected,
}

impl PubSubError {
    /// A failed Redis command, its error kept as the source (for `map_err`).
    pub(crate) fn redis(error: redis::RedisError) -> Self {
        Self::Redis(Box::new(error))
    }

    /// No pooled connection (for `map_err`).
    pub(crate) fn pool(error: deadpool_redis::PoolError) -> Self {
        Self::Pool(error.to_string())
    }

    /// A `REDIS_URL` the client or the pool refused (for `map_err`).
    pub(crate) fn invalid_url(error: impl std::fmt::Display) -> Self {
        Self::InvalidUrl(error.to_string())
    }
}
