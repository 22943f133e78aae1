//! The in-process tier: a moka cache of up to 100 000 entries, each living for the TTL of its
//! kind (found or missing).

use std::time::{Duration, Instant};

use crate::{CacheSettings, Entry};

/// The in-process cache `settings` describe.
pub(crate) fn build(settings: &CacheSettings) -> moka::sync::Cache<String, Entry> {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .expire_after(EntryExpiry {
            ttl: settings.ttl,
            negative_ttl: settings.negative_ttl,
        })
        .build()
}

/// A found value lives `ttl`, a missing one `negative_ttl`.
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
