//! [`Cache::get_many`]: many keys in one look-up (one `MGET` with Redis) and one load of
//! what was not cached, stored in one round trip unless a write raced the load.

use std::{future::Future, sync::atomic::Ordering};

use crate::{Cache, Entry, state::Store};

impl Cache {
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
}
