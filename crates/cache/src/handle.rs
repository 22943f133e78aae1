//! [`Cache`]'s requests: single-flight loads
//! ([`Cache::get_or_load`]), invalidation, the counted look-ups and the readiness ping; the
//! tiers themselves are in `local` and `redis`, the batches in `batch`.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use slog::Logger;

use runtime::Metrics;

use crate::{
    CacheSettings, CacheStatus, Entry,
    state::{Cache, Flight, Inner, Lookup, Store},
};

impl Cache {
    /// A cache as `settings` say. Connecting to Redis is lazy: a Redis that is down at start
    /// only means misses.
    pub fn new(settings: CacheSettings, metrics: Metrics, logger: Logger) -> anyhow::Result<Self> {
        let store = match &settings.redis_url {
            None => Store::Local(crate::local::build(&settings)),
            Some(url) => Store::Redis(crate::redis::pool(url, &settings)?),
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
        // This cache's series at 0 from the start, so `rate()` and the dashboards see the
        // first look-up and the first load.
        let name = cache.inner.settings.name;
        for result in ["hit", "miss", "bypass", "error"] {
            cache
                .inner
                .metrics
                .cache_requests
                .with_label_values(&[name, result]);
        }
        cache.inner.metrics.cache_loads.with_label_values(&[name]);
        cache.retry_pending_invalidations_in_background();
        Ok(cache)
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
            self.invalidate_in_redis_twice(key).await;
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
            Store::Redis(pool) => self.ping_redis(pool).await,
        }
    }

    /// `key` under this cache's namespace.
    pub(crate) fn full_key(&self, key: &str) -> String {
        format!("{}:{key}", self.inner.settings.namespace)
    }

    /// Counts one look-up's result (`hit`, `miss`, `bypass`, `error`).
    pub(crate) fn count(&self, result: &str) {
        self.inner
            .metrics
            .cache_requests
            .with_label_values(&[self.inner.settings.name, result])
            .inc();
    }

    /// Counts a look-up as a hit, miss or bypass (errors are counted where they happen).
    pub(crate) fn counted(&self, lookup: Lookup) -> Option<Entry> {
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
    pub(crate) async fn lookup_many(&self, keys: &[String]) -> Vec<Lookup> {
        match &self.inner.store {
            Store::Local(cache) => keys
                .iter()
                .map(|key| cache.get(key).map_or(Lookup::Miss, Lookup::Hit))
                .collect(),
            Store::Redis(pool) => self.lookup_in_redis(pool, keys).await,
        }
    }
}

impl runtime::Probe for Cache {
    fn probe(&self) -> runtime::ProbeFuture<'_> {
        Box::pin(self.ping())
    }
}
