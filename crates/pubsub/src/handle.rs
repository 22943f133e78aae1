//! [`PubSub`]: the handle every task holds, over the in-process backend ([`Channels`]) or the
//! Redis one ([`RedisBackend`]).

use std::sync::Arc;

use bytes::Bytes;
use slog::Logger;

use crate::{Leases, PubSubError, Subscription, local::Channels, redis::RedisBackend};

/// A pub/sub handle; cheap to clone, shared by every task of the process.
#[derive(Clone)]
pub struct PubSub {
    /// The backend behind every clone.
    inner: Arc<Backend>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

/// The backend behind a [`PubSub`] (and kept by each [`Subscription`], to unsubscribe).
pub(crate) enum Backend {
    Local(Channels),
    Redis(Arc<RedisBackend>),
}

impl PubSub {
    /// Pub/sub inside this process only (no `REDIS_URL`).
    pub fn in_process() -> Self {
        Self {
            inner: Arc::new(Backend::Local(Channels::default())),
        }
    }

    /// Redis pub/sub when `redis_url` is given (waiting up to 2 s for the first subscriber
    /// connection, which is retried in the background if Redis is not there yet), in-process
    /// otherwise. Must be called within a tokio runtime that outlives the handle.
    pub async fn connect(redis_url: Option<&str>, logger: Logger) -> Result<Self, PubSubError> {
        let Some(url) = redis_url else {
            return Ok(Self::in_process());
        };
        let redis = RedisBackend::connect(url, logger).await?;
        Ok(Self {
            inner: Arc::new(Backend::Redis(redis)),
        })
    }

    /// `redis` or `memory`, for logs.
    pub fn kind(&self) -> &'static str {
        match *self.inner {
            Backend::Local(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Sends `payload` to every subscriber of `channel` (in every process, with Redis).
    /// Nobody subscribing is not an error.
    pub async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), PubSubError> {
        match &*self.inner {
            Backend::Local(channels) => {
                channels.deliver(channel, payload);
                Ok(())
            }
            Backend::Redis(redis) => redis.publish(channel, payload).await,
        }
    }

    /// Subscribes to `channel`. Returns once the subscription is active (with Redis: confirmed
    /// by Redis, unless the subscriber connection is down, see the crate docs).
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, PubSubError> {
        let (subscriber, receiver) = match &*self.inner {
            Backend::Local(channels) => {
                let (subscriber, receiver, _) = channels.subscribe(channel);
                (subscriber, receiver)
            }
            Backend::Redis(redis) => redis.subscribe(channel).await,
        };
        Ok(Subscription::new(
            receiver,
            subscriber.missed,
            channel,
            subscriber.id,
            self.inner.clone(),
        ))
    }

    /// Keys held across every instance on this Redis (over its publishing pool); `None`
    /// in-process, where this process is the only instance.
    pub fn leases(&self) -> Option<Leases> {
        match &*self.inner {
            Backend::Local(_) => None,
            Backend::Redis(redis) => Some(Leases {
                backend: redis.clone(),
            }),
        }
    }

    /// Whether pub/sub works (for `/readyz`): always in-process; with Redis, the subscriber
    /// connection is up and Redis answers a PING.
    pub async fn check(&self) -> Result<(), PubSubError> {
        match &*self.inner {
            Backend::Local(_) => Ok(()),
            Backend::Redis(redis) => redis.check().await,
        }
    }

    /// The in-process channels (for tests).
    #[cfg(test)]
    pub(crate) fn local_channels(&self) -> Option<&Channels> {
        match &*self.inner {
            Backend::Local(channels) => Some(channels),
            Backend::Redis(_) => None,
        }
    }
}

impl runtime::Probe for PubSub {
    fn probe(&self) -> runtime::ProbeFuture<'_> {
        Box::pin(async move { self.check().await.map_err(anyhow::Error::from) })
    }
}
