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

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use deadpool_redis::{Runtime, redis};
use slog::Logger;
use tokio::sync::OnceCell;

use runtime::metrics::Metrics;

/// A cached answer: the serialized value, or the knowledge that there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The value's bytes (JSON, ready to send).
    Found(Bytes),
    /// The source of truth has no such key.
    Missing,
}

impl Entry {
    /// `Found` with `value` as JSON, or `Missing` for `None`.
    pub fn json<T: serde::Serialize>(value: Option<&T>) -> Self {
        match value {
            Some(value) => Self::Found(
                serde_json::to_vec(value)
                    .expect("API values serialize to JSON")
                    .into(),
            ),
            None => Self::Missing,
        }
    }
}

/// Whether a look-up was answered by the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// From the cache.
    Hit,
    /// Loaded from the source of truth (by this request or the one it waited for).
    Miss,
}

impl CacheStatus {
    /// `hit` or `miss`, for the `X-Cache` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

/// How a [`Cache`] is set up.
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

/// The prefix of cache keys when `CACHE_NAMESPACE` is not set.
pub use runtime::config::DEFAULT_CACHE_NAMESPACE;

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

/// A cache-aside handle; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    /// Shared state of every clone.
    inner: Arc<Inner>,
}

struct Inner {
    settings: CacheSettings,
    store: Store,
    /// The look-ups under way, by key: later missers wait for the first one's load.
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    metrics: Metrics,
    logger: Logger,
    /// Redis is not asked before this instant (milliseconds since `epoch`) after an error.
    redis_resume_at_ms: AtomicU64,
    epoch: Instant,
    /// Keys whose invalidation could not reach Redis yet.
    pending_invalidations: Mutex<HashSet<String>>,
    /// Counts every invalidation (under the flights lock): a batch load stores what it read
    /// only when none came while it ran.
    invalidations: AtomicU64,
}

/// One load under way, shared by every request that missed the key meanwhile.
#[derive(Default)]
struct Flight {
    /// The loaded entry.
    cell: OnceCell<Entry>,
    /// A write invalidated the key while this load ran: what it read may be older than the
    /// write, so it must not be cached.
    invalidated: std::sync::atomic::AtomicBool,
}

/// How long after an invalidation Redis is told again, for a load in another process that
/// read the old row before the write and stores it after the first delete.
const SECOND_INVALIDATION: Duration = Duration::from_millis(500);

/// What one look-up found.
enum Lookup {
    Hit(Entry),
    Miss,
    /// Redis failed or is being left alone: neither hit nor miss.
    Unavailable,
}

enum Store {
    Local(moka::sync::Cache<String, Entry>),
    Redis(deadpool_redis::Pool),
}

struct EntryExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl moka::Expiry<String, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(match value {
            Entry::Found(_) => self.ttl,
            Entry::Missing => self.negative_ttl,
        })
    }
}

impl Cache {
    /// A cache as `settings` say. Connecting to Redis is lazy: a Redis that is down at start
    /// only means misses.
    pub fn new(settings: CacheSettings, metrics: Metrics, logger: Logger) -> anyhow::Result<Self> {
        let store = match &settings.redis_url {
            None => Store::Local(
                moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .expire_after(EntryExpiry {
                        ttl: settings.ttl,
                        negative_ttl: settings.negative_ttl,
                    })
                    .build(),
            ),
            Some(url) => {
                let timeout = Some(settings.redis_timeout);
                let pool = deadpool_redis::Config::from_url(url.clone())
                    .builder()
                    .context("reading REDIS_URL")?
                    .max_size(16)
                    .wait_timeout(timeout)
                    .create_timeout(timeout)
                    .recycle_timeout(timeout)
                    .runtime(Runtime::Tokio1)
                    .build()
                    .context("creating the Redis pool")?;
                Store::Redis(pool)
            }
        };
        let cache = Self {
            inner: Arc::new(Inner {
                settings,
                store,
                flights: Mutex::new(HashMap::new()),
                metrics,
                logger,
                redis_resume_at_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                pending_invalidations: Mutex::new(HashSet::new()),
                invalidations: AtomicU64::new(0),
            }),
        };
        cache.retry_pending_invalidations_in_background();
        Ok(cache)
    }

    /// With Redis: retries invalidations that could not reach it, once per backoff, so Redis
    /// forgets stale entries as soon as it is back even if this process reads none of those
    /// keys (other replicas read them from Redis). Stops when the cache is dropped.
    fn retry_pending_invalidations_in_background(&self) {
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

    /// Whether this cache is Redis (`redis`) or in-process (`memory`).
    pub fn kind(&self) -> &'static str {
        match self.inner.store {
            Store::Local(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// The cached entry of `key`, or `load`'s answer (stored for the next readers).
    ///
    /// Concurrent misses of one key in this process share one `load`. An error of `load` is
    /// returned to the caller that ran it and nothing is cached.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        key: &str,
        load: F,
    ) -> Result<(CacheStatus, Entry), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Entry, E>>,
    {
        let key = self.full_key(key);
        if let Some(entry) = self.read(&key).await {
            return Ok((CacheStatus::Hit, entry));
        }
        let flight = {
            let mut flights = self.inner.flights.lock().expect("flights lock");
            flights.entry(key.clone()).or_default().clone()
        };
        let result = flight
            .cell
            .get_or_try_init(|| async {
                // Another flight may have filled the cache between our miss and this one.
                if let Lookup::Hit(entry) = self.read_quietly(&key).await {
                    return Ok(entry);
                }
                self.inner
                    .metrics
                    .cache_loads
                    .with_label_values(&[self.inner.settings.name])
                    .inc();
                let entry = load().await?;
                self.store_unless_invalidated(&key, &flight, &entry).await;
                Ok(entry)
            })
            .await
            .cloned();
        {
            let mut flights = self.inner.flights.lock().expect("flights lock");
            if flights
                .get(&key)
                .is_some_and(|current| Arc::ptr_eq(current, &flight))
            {
                flights.remove(&key);
            }
        }
        result.map(|entry| (CacheStatus::Miss, entry))
    }

    /// The entries of `keys` (distinct), in their order: those cached, and the others from one
    /// call of `load` with their positions in `keys` (it answers one entry per position, in
    /// order), stored in one round trip with Redis.
    /// What `load` read is stored unless a write invalidated any key while it ran. Unlike
    /// [`Cache::get_or_load`], concurrent batches missing the same keys each load them: a
    /// batch costs one statement whatever it misses.
    pub async fn get_many<F, Fut, E>(&self, keys: &[String], load: F) -> Result<Vec<Entry>, E>
    where
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Entry>, E>>,
    {
        let keys: Vec<String> = keys.iter().map(|key| self.full_key(key)).collect();
        let mut entries = self.read_many(&keys).await;
        let missing: Vec<usize> = (0..keys.len())
            .filter(|&index| entries[index].is_none())
            .collect();
        if !missing.is_empty() {
            self.inner
                .metrics
                .cache_loads
                .with_label_values(&[self.inner.settings.name])
                .inc_by(missing.len() as u64);
            let invalidations = self.inner.invalidations.load(Ordering::SeqCst);
            let loaded = load(missing.clone()).await?;
            let unchanged = || self.inner.invalidations.load(Ordering::SeqCst) == invalidations;
            match &self.inner.store {
                Store::Local(cache) => {
                    // Under the flights lock, so an invalidation is wholly before or after this.
                    let _flights = self.inner.flights.lock().expect("flights lock");
                    if unchanged() {
                        for (&index, entry) in missing.iter().zip(&loaded) {
                            cache.insert(keys[index].clone(), entry.clone());
                        }
                    }
                }
                Store::Redis(pool) => {
                    if unchanged() {
                        let stored: Vec<(&str, &Entry)> = missing
                            .iter()
                            .zip(&loaded)
                            .map(|(&index, entry)| (keys[index].as_str(), entry))
                            .collect();
                        self.write_to_redis(pool, &stored).await;
                        // An invalidation during the SETs would be undone by them.
                        if !unchanged() {
                            for &index in &missing {
                                self.invalidate_in_redis(keys[index].clone()).await;
                            }
                        }
                    }
                }
            }
            for (index, entry) in missing.into_iter().zip(loaded) {
                entries[index] = Some(entry);
            }
        }
        Ok(entries
            .into_iter()
            .map(|entry| entry.unwrap_or(Entry::Missing))
            .collect())
    }

    /// Look-ups of many keys (one `MGET` with Redis), each counted as a hit, miss or bypass.
    async fn read_many(&self, keys: &[String]) -> Vec<Option<Entry>> {
        self.lookup_many(keys)
            .await
            .into_iter()
            .map(|lookup| self.counted(lookup))
            .collect()
    }

    /// Counts a look-up as a hit, miss or bypass (errors are counted where they happen).
    fn counted(&self, lookup: Lookup) -> Option<Entry> {
        match lookup {
            Lookup::Hit(entry) => {
                self.count("hit");
                Some(entry)
            }
            Lookup::Miss => {
                self.count("miss");
                None
            }
            Lookup::Unavailable => {
                self.count("bypass");
                None
            }
        }
    }

    /// Forgets `key` (call after the write that changed it has committed). A load of the key
    /// under way is told not to cache what it read; with Redis, the key is deleted once more a
    /// moment later, for loads in other processes.
    pub async fn invalidate(&self, key: &str) {
        let key = self.full_key(key);
        {
            let mut flights = self.inner.flights.lock().expect("flights lock");
            self.inner.invalidations.fetch_add(1, Ordering::SeqCst);
            if let Some(flight) = flights.remove(&key) {
                flight.invalidated.store(true, Ordering::SeqCst);
            }
            if let Store::Local(cache) = &self.inner.store {
                cache.invalidate(&key);
            }
        }
        if let Store::Redis(_) = &self.inner.store {
            self.invalidate_in_redis(key.clone()).await;
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let cache = self.clone();
                runtime.spawn(async move {
                    tokio::time::sleep(SECOND_INVALIDATION).await;
                    cache.invalidate_in_redis(key).await;
                });
            }
        }
    }

    async fn invalidate_in_redis(&self, key: String) {
        if let Store::Redis(pool) = &self.inner.store {
            self.pending().insert(key);
            if self.redis_allowed() {
                self.flush_pending_invalidations(pool).await;
            }
        }
    }

    /// Caches what a load read, unless a write invalidated the key meanwhile.
    async fn store_unless_invalidated(&self, key: &str, flight: &Flight, entry: &Entry) {
        match &self.inner.store {
            Store::Local(cache) => {
                // Under the flights lock, so an invalidation is wholly before or after this.
                let _flights = self.inner.flights.lock().expect("flights lock");
                if !flight.invalidated.load(Ordering::SeqCst) {
                    cache.insert(key.to_owned(), entry.clone());
                }
            }
            Store::Redis(pool) => {
                if flight.invalidated.load(Ordering::SeqCst) {
                    return;
                }
                self.write_to_redis(pool, &[(key, entry)]).await;
                // An invalidation between the check and the SET would be undone by it.
                if flight.invalidated.load(Ordering::SeqCst) {
                    self.invalidate_in_redis(key.to_owned()).await;
                }
            }
        }
    }

    /// Whether the cache answers (for `/readyz`); the in-process cache always does.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match &self.inner.store {
            Store::Local(_) => Ok(()),
            Store::Redis(pool) => {
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
        }
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}:{key}", self.inner.settings.namespace)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner
            .pending_invalidations
            .lock()
            .expect("pending invalidations lock")
    }

    fn count(&self, result: &str) {
        self.inner
            .metrics
            .cache_requests
            .with_label_values(&[self.inner.settings.name, result])
            .inc();
    }

    /// A look-up that counts its hit, miss or bypass.
    async fn read(&self, key: &str) -> Option<Entry> {
        let lookup = self.read_quietly(key).await;
        self.counted(lookup)
    }

    async fn read_quietly(&self, key: &str) -> Lookup {
        match &self.inner.store {
            // The hot path of a cached GET: no batch around one key.
            Store::Local(cache) => cache.get(key).map_or(Lookup::Miss, Lookup::Hit),
            Store::Redis(_) => self
                .lookup_many(&[key.to_owned()])
                .await
                .pop()
                .unwrap_or(Lookup::Unavailable),
        }
    }

    /// Uncounted look-ups of many keys: the in-process cache, or one `MGET` (after replaying
    /// the invalidations Redis missed; all unavailable while Redis is left alone).
    async fn lookup_many(&self, keys: &[String]) -> Vec<Lookup> {
        match &self.inner.store {
            Store::Local(cache) => keys
                .iter()
                .map(|key| cache.get(key).map_or(Lookup::Miss, Lookup::Hit))
                .collect(),
            Store::Redis(pool) => {
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
        }
    }

    /// Stores entries in Redis with their TTLs, in one round trip however many (skipped while
    /// Redis is left alone; a key with an invalidation waiting is left out).
    async fn write_to_redis(&self, pool: &deadpool_redis::Pool, entries: &[(&str, &Entry)]) {
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

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

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

impl runtime::Probe for Cache {
    fn probe(&self) -> runtime::ProbeFuture<'_> {
        Box::pin(self.ping())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_cache(ttl: Duration) -> Cache {
        let mut settings = CacheSettings::new("test", None, ttl);
        settings.negative_ttl = ttl;
        Cache::new(
            settings,
            Metrics::new("test"),
            Logger::root(slog::Discard, slog::o!()),
        )
        .expect("cache")
    }

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

    #[tokio::test]
    async fn concurrent_misses_share_one_load() {
        let cache = local_cache(Duration::from_secs(60));
        let loads = Arc::new(AtomicU64::new(0));
        let lookups = (0..50).map(|_| {
            let cache = cache.clone();
            let loads = loads.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load("k", || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok::<_, std::convert::Infallible>(Entry::Found(Bytes::from_static(b"v")))
                    })
                    .await
            })
        });
        for lookup in futures_util::future::join_all(lookups).await {
            let (_, entry) = lookup.expect("task").expect("load");
            assert_eq!(entry, Entry::Found(Bytes::from_static(b"v")));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    fn found(text: &'static str) -> Entry {
        Entry::Found(Bytes::from_static(text.as_bytes()))
    }

    fn redis_cache() -> Cache {
        let mut settings =
            CacheSettings::new("test", Some(testing::redis_url()), Duration::from_secs(60));
        settings.namespace = format!("unit:{}", uuid::Uuid::new_v4().simple());
        Cache::new(
            settings,
            Metrics::new("test"),
            Logger::root(slog::Discard, slog::o!()),
        )
        .expect("cache")
    }

    #[tokio::test]
    async fn a_batch_loads_only_what_is_not_cached_in_one_call_and_caches_it() {
        batch_loads_only_what_is_not_cached(local_cache(Duration::from_secs(60))).await;
    }

    #[tokio::test]
    async fn a_batch_over_redis_loads_only_what_is_not_cached() {
        batch_loads_only_what_is_not_cached(redis_cache()).await;
    }

    async fn batch_loads_only_what_is_not_cached(cache: Cache) {
        cache
            .get_or_load("2", || async {
                Ok::<_, std::convert::Infallible>(found("two"))
            })
            .await
            .expect("load");
        let keys: Vec<String> = ["1", "2", "3"].map(String::from).to_vec();
        let calls = AtomicU64::new(0);
        let entries = cache
            .get_many(&keys, |missing| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert_eq!(missing, [0, 2], "only the keys not cached");
                    Ok::<_, std::convert::Infallible>(vec![found("one"), Entry::Missing])
                }
            })
            .await
            .expect("batch");
        assert_eq!(entries, [found("one"), found("two"), Entry::Missing]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Now every key is cached, "missing" included; a single look-up finds the batch's.
        let entries = cache
            .get_many(&keys, |_| async {
                panic!("nothing left to load");
                #[allow(unreachable_code)]
                Ok::<_, std::convert::Infallible>(vec![])
            })
            .await
            .expect("batch");
        assert_eq!(entries, [found("one"), found("two"), Entry::Missing]);
        let (status, entry) = cache
            .get_or_load("1", || async {
                Ok::<_, std::convert::Infallible>(found("other"))
            })
            .await
            .expect("load");
        assert_eq!((status, entry), (CacheStatus::Hit, found("one")));
    }

    #[tokio::test]
    async fn a_batch_that_raced_a_write_is_not_cached() {
        let cache = local_cache(Duration::from_secs(60));
        let keys = vec!["1".to_owned()];
        let entries = cache
            .get_many(&keys, |_| async {
                // The write commits and invalidates while the batch reads the old row.
                cache.invalidate("1").await;
                Ok::<_, std::convert::Infallible>(vec![found("old")])
            })
            .await
            .expect("batch");
        assert_eq!(entries, [found("old")], "the reader gets what it read");
        let (status, entry) = cache
            .get_or_load("1", || async {
                Ok::<_, std::convert::Infallible>(found("new"))
            })
            .await
            .expect("load");
        assert_eq!(
            (status, entry),
            (CacheStatus::Miss, found("new")),
            "but it was not kept"
        );
    }

    #[tokio::test]
    async fn invalidation_and_expiry_force_a_new_load() {
        let cache = local_cache(Duration::from_millis(300));
        let load = |value: &'static str| {
            move || async move {
                Ok::<_, std::convert::Infallible>(Entry::Found(Bytes::from_static(
                    value.as_bytes(),
                )))
            }
        };
        assert_eq!(
            cache.get_or_load("k", load("a")).await.expect("load").0,
            CacheStatus::Miss
        );
        assert_eq!(
            cache.get_or_load("k", load("b")).await.expect("load"),
            (CacheStatus::Hit, Entry::Found(Bytes::from_static(b"a")))
        );
        cache.invalidate("k").await;
        assert_eq!(
            cache.get_or_load("k", load("c")).await.expect("load"),
            (CacheStatus::Miss, Entry::Found(Bytes::from_static(b"c")))
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            cache.get_or_load("k", load("d")).await.expect("load"),
            (CacheStatus::Miss, Entry::Found(Bytes::from_static(b"d")))
        );
    }

    #[tokio::test]
    async fn an_invalidation_redis_missed_is_replayed_before_the_next_read() {
        let (switch, switch_url) = testing::TcpSwitch::for_url(&testing::redis_url()).await;
        let mut settings =
            CacheSettings::new("test", Some(switch_url.clone()), Duration::from_secs(60));
        settings.namespace = format!("unit:{}", uuid::Uuid::new_v4().simple());
        settings.redis_backoff = Duration::from_millis(20);
        let cache = Cache::new(
            settings,
            Metrics::new("test"),
            Logger::root(slog::Discard, slog::o!()),
        )
        .expect("cache");
        let value = |v: &'static str| {
            move || async move {
                Ok::<_, std::convert::Infallible>(Entry::Found(Bytes::from_static(v.as_bytes())))
            }
        };

        assert_eq!(
            cache.get_or_load("k", value("old")).await.expect("load").0,
            CacheStatus::Miss
        );
        assert_eq!(
            cache
                .get_or_load("k", value("unused"))
                .await
                .expect("load")
                .0,
            CacheStatus::Hit
        );

        switch.cut();
        cache.invalidate("k").await; // the write happened; Redis did not hear of it
        assert_eq!(cache.pending().len(), 1);
        switch.restore();
        // Nothing reads the key: the background retry alone tells Redis.
        for _ in 0..200 {
            if cache.pending().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            cache.pending().is_empty(),
            "the invalidation reached Redis without a read"
        );

        // Until the invalidation reaches Redis, the key is read from the database, never from
        // Redis's stale copy; once it has, the cache works again.
        let mut seen = Vec::new();
        for _ in 0..200 {
            let (status, entry) = cache.get_or_load("k", value("new")).await.expect("load");
            assert_eq!(
                entry,
                Entry::Found(Bytes::from_static(b"new")),
                "never the stale value"
            );
            seen.push(status);
            if status == CacheStatus::Hit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            seen.last(),
            Some(&CacheStatus::Hit),
            "Redis serves again: {seen:?}"
        );
        assert!(cache.pending().is_empty());
    }

    #[tokio::test]
    async fn a_load_that_raced_a_write_is_not_cached() {
        let cache = local_cache(Duration::from_secs(60));
        let read_old_row = Arc::new(tokio::sync::Notify::new());
        let finish_load = Arc::new(tokio::sync::Notify::new());
        let loader = {
            let (cache, read_old_row, finish_load) =
                (cache.clone(), read_old_row.clone(), finish_load.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load("k", || async move {
                        read_old_row.notify_one();
                        finish_load.notified().await;
                        Ok::<_, std::convert::Infallible>(Entry::Found(Bytes::from_static(b"old")))
                    })
                    .await
            })
        };
        // The load has read the old row; now a write commits and invalidates the key.
        read_old_row.notified().await;
        cache.invalidate("k").await;
        finish_load.notify_one();
        let (_, raced) = loader.await.expect("task").expect("load");
        assert_eq!(
            raced,
            Entry::Found(Bytes::from_static(b"old")),
            "the racing reader sees what it read"
        );
        let (status, entry) = cache
            .get_or_load("k", || async {
                Ok::<_, std::convert::Infallible>(Entry::Found(Bytes::from_static(b"new")))
            })
            .await
            .expect("load");
        assert_eq!(
            (status, entry),
            (CacheStatus::Miss, Entry::Found(Bytes::from_static(b"new"))),
            "not the old row"
        );
    }

    #[tokio::test]
    async fn a_failed_load_is_not_cached() {
        let cache = local_cache(Duration::from_secs(60));
        let failed = cache
            .get_or_load("k", || async { Err::<Entry, _>("db down") })
            .await;
        assert_eq!(failed, Err("db down"));
        let (status, entry) = cache
            .get_or_load("k", || async { Ok::<_, &str>(Entry::Missing) })
            .await
            .expect("load");
        assert_eq!((status, entry), (CacheStatus::Miss, Entry::Missing));
    }
}
