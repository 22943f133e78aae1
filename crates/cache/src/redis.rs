//! The Redis tier, kept off the critical path: every command runs within `redis_timeout`; a
//! failure is logged and counted, and Redis is left alone for `redis_backoff` (look-ups are
//! then bypasses). Invalidations that could not reach Redis are kept, replayed before the next
//! read from Redis and retried in the background, so a write made while Redis was away never
//! leaves a stale entry. Values are stored as `+<json>` (found) or `-` (missing).

use std::{
    collections::HashSet,
    future::Future,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context;
use bytes::Bytes;
use deadpool_redis::{Runtime, redis};

use crate::{
    Cache, CacheSettings, Entry,
    state::{Lookup, Store},
};

/// How long after an invalidation Redis is told again, for a load in another process that
/// read the old row before the write and stores it after the first delete.
const SECOND_INVALIDATION: Duration = Duration::from_millis(500);

/// The connection pool of `url`: 16 connections, each wait, connect and recycle within
/// `redis_timeout`. Nothing connects until the first command.
pub(crate) fn pool(url: &str, settings: &CacheSettings) -> anyhow::Result<deadpool_redis::Pool> {
    let timeout = Some(settings.redis_timeout);
    deadpool_redis::Config::from_url(url.to_owned())
        .builder()
        .context("reading REDIS_URL")?
        .max_size(16)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .runtime(Runtime::Tokio1)
        .build()
        .context("creating the Redis pool")
}

impl Cache {
    /// With Redis: retries invalidations that could not reach it, once per backoff, so Redis
    /// forgets stale entries as soon as it is back even if this process reads none of those
    /// keys (other replicas read them from Redis). Stops when the cache is dropped.
    pub(crate) fn retry_pending_invalidations_in_background(&self) {
        let (Store::Redis(_), Ok(runtime)) =
            (&self.inner.store, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let interval = self
            .inner
            .settings
            .redis_backoff
            .max(Duration::from_millis(100));
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                let cache = Cache { inner };
                if let Store::Redis(pool) = &cache.inner.store
                    && !cache.pending().is_empty()
                    && cache.redis_allowed()
                {
                    cache.flush_pending_invalidations(pool).await;
                }
            }
        });
    }

    /// Deletes `key` from Redis now and once more [`SECOND_INVALIDATION`] later.
    pub(crate) async fn invalidate_in_redis_twice(&self, key: String) {
        self.invalidate_in_redis(key.clone()).await;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let cache = self.clone();
            runtime.spawn(async move {
                tokio::time::sleep(SECOND_INVALIDATION).await;
                cache.invalidate_in_redis(key).await;
            });
        }
    }

    /// Records `key` as pending and deletes the pending keys from Redis unless it is being
    /// left alone.
    pub(crate) async fn invalidate_in_redis(&self, key: String) {
        if let Store::Redis(pool) = &self.inner.store {
            self.pending().insert(key);
            if self.redis_allowed() {
                self.flush_pending_invalidations(pool).await;
            }
        }
    }

    /// Redis answers a PING within `redis_timeout`.
    pub(crate) async fn ping_redis(&self, pool: &deadpool_redis::Pool) -> anyhow::Result<()> {
        let timeout = self.inner.settings.redis_timeout;
        tokio::time::timeout(timeout, async {
            let mut connection = pool.get().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut *connection)
                .await?;
            anyhow::Ok(())
        })
        .await
        .with_context(|| format!("Redis did not answer within {timeout:?}"))?
    }

    /// One `MGET` of `keys`, after replaying the invalidations Redis missed; all unavailable
    /// while Redis is left alone or when it fails.
    pub(crate) async fn lookup_in_redis(
        &self,
        pool: &deadpool_redis::Pool,
        keys: &[String],
    ) -> Vec<Lookup> {
        let reachable = self.redis_allowed()
            && (self.pending().is_empty() || self.flush_pending_invalidations(pool).await);
        let values = if reachable && !keys.is_empty() {
            self.redis(
                pool,
                |mut connection, keys| async move {
                    redis::cmd("MGET")
                        .arg(keys)
                        .query_async::<Vec<Option<Vec<u8>>>>(&mut *connection)
                        .await
                },
                keys,
            )
            .await
        } else {
            None
        };
        match values {
            Some(values) if values.len() == keys.len() => values
                .into_iter()
                .map(|value| value.and_then(decode).map_or(Lookup::Miss, Lookup::Hit))
                .collect(),
            _ => keys.iter().map(|_| Lookup::Unavailable).collect(),
        }
    }

    /// Stores entries in Redis with their TTLs, in one round trip however many (skipped while
    /// Redis is left alone; a key with an invalidation waiting is left out).
    pub(crate) async fn write_to_redis(
        &self,
        pool: &deadpool_redis::Pool,
        entries: &[(&str, &Entry)],
    ) {
        if !self.redis_allowed() {
            return;
        }
        let mut pipeline = redis::pipe();
        {
            let pending = self.pending();
            for (key, entry) in entries {
                if pending.contains(*key) {
                    continue;
                }
                let ttl_ms = match entry {
                    Entry::Found(_) => self.inner.settings.ttl,
                    Entry::Missing => self.inner.settings.negative_ttl,
                }
                .as_millis() as u64;
                pipeline
                    .cmd("SET")
                    .arg(*key)
                    .arg(encode(entry))
                    .arg("PX")
                    .arg(ttl_ms)
                    .ignore();
            }
        }
        if pipeline.is_empty() {
            return;
        }
        self.redis(
            pool,
            |mut connection, pipeline| async move {
                pipeline.query_async::<()>(&mut *connection).await
            },
            pipeline,
        )
        .await;
    }

    /// Deletes every pending invalidation from Redis; `true` when none is left.
    async fn flush_pending_invalidations(&self, pool: &deadpool_redis::Pool) -> bool {
        let keys: Vec<String> = self.pending().iter().cloned().collect();
        if keys.is_empty() {
            return true;
        }
        let deleted = self
            .redis(
                pool,
                |mut connection, keys| async move {
                    redis::cmd("DEL")
                        .arg(keys)
                        .query_async::<i64>(&mut *connection)
                        .await
                },
                keys.as_slice(),
            )
            .await
            .is_some();
        if deleted {
            let mut pending = self.pending();
            for key in &keys {
                pending.remove(key);
            }
        }
        deleted
    }

    /// The keys whose invalidation has not reached Redis yet.
    pub(crate) fn pending(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner
            .pending_invalidations
            .lock()
            .expect("pending invalidations lock")
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// Whether the backoff after a failure is over.
    fn redis_allowed(&self) -> bool {
        self.now_ms() >= self.inner.redis_resume_at_ms.load(Ordering::Relaxed)
    }

    /// Runs one Redis command within the timeout; on failure logs, counts, backs off, `None`.
    async fn redis<T, A, F, Fut>(
        &self,
        pool: &deadpool_redis::Pool,
        command: F,
        argument: A,
    ) -> Option<T>
    where
        F: FnOnce(deadpool_redis::Connection, A) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let timeout = self.inner.settings.redis_timeout;
        let outcome = tokio::time::timeout(timeout, async {
            let connection = pool
                .get()
                .await
                .map_err(|error| anyhow::anyhow!("getting a Redis connection: {error}"))?;
            command(connection, argument).await.context("Redis command")
        })
        .await;
        let error = match outcome {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(error)) => error,
            Err(_) => anyhow::anyhow!("Redis did not answer within {timeout:?}"),
        };
        self.count("error");
        let resume_at = self.now_ms() + self.inner.settings.redis_backoff.as_millis() as u64;
        self.inner
            .redis_resume_at_ms
            .store(resume_at, Ordering::Relaxed);
        slog::warn!(self.inner.logger, "cache unavailable, serving from the database";
            "cache" => self.inner.settings.name, "error" => format!("{error:#}"),
            "retry_in_ms" => self.inner.settings.redis_backoff.as_millis() as u64);
        None
    }
}

/// The Redis value of an entry: `+` and the JSON, or `-`.
fn encode(entry: &Entry) -> Vec<u8> {
    match entry {
        Entry::Found(bytes) => {
            let mut value = Vec::with_capacity(bytes.len() + 1);
            value.push(b'+');
            value.extend_from_slice(bytes);
            value
        }
        Entry::Missing => vec![b'-'],
    }
}

/// The entry of a Redis value; `None` for a value this cache did not write.
fn decode(mut value: Vec<u8>) -> Option<Entry> {
    match value.first() {
        Some(b'+') => {
            value.remove(0);
            Some(Entry::Found(Bytes::from(value)))
        }
        Some(b'-') => Some(Entry::Missing),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_encoding() {
        for entry in [
            Entry::Found(Bytes::from_static(b"{\"id\":1}")),
            Entry::Missing,
            Entry::Found(Bytes::new()),
        ] {
            assert_eq!(decode(encode(&entry)), Some(entry));
        }
        assert_eq!(decode(b"garbage".to_vec()), None);
    }
}
