//! [`Cache`], the handle every request holds, and the state its clones share: the tier that
//! keeps entries, the loads under way, Redis' back-off and the invalidations it missed.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64},
    },
    time::Instant,
};

use slog::Logger;
use tokio::sync::OnceCell;

use runtime::Metrics;

use crate::{CacheSettings, Entry};

/// A cache-aside handle; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    /// Shared state of every clone.
    pub(crate) inner: Arc<Inner>,
}

/// What the clones of a [`Cache`] share.
pub(crate) struct Inner {
    pub(crate) settings: CacheSettings,
    pub(crate) store: Store,
    /// The look-ups under way, by key: later missers wait for the first one's load.
    pub(crate) flights: Mutex<HashMap<String, Arc<Flight>>>,
    pub(crate) metrics: Metrics,
    pub(crate) logger: Logger,
    /// Redis is not asked before this instant (milliseconds since `epoch`) after an error.
    pub(crate) redis_resume_at_ms: AtomicU64,
    pub(crate) epoch: Instant,
    /// Keys whose invalidation could not reach Redis yet.
    pub(crate) pending_invalidations: Mutex<HashSet<String>>,
    /// Counts every invalidation (under the flights lock): a batch load stores what it read
    /// only when none came while it ran.
    pub(crate) invalidations: AtomicU64,
}

/// One load under way, shared by every request that missed the key meanwhile.
#[derive(Default)]
pub(crate) struct Flight {
    /// The loaded entry.
    pub(crate) cell: OnceCell<Entry>,
    /// A write invalidated the key while this load ran: what it read may be older than the
    /// write, so it must not be cached.
    pub(crate) invalidated: AtomicBool,
}

/// What one look-up found.
pub(crate) enum Lookup {
    Hit(Entry),
    Miss,
    /// Redis failed or is being left alone: neither hit nor miss.
    Unavailable,
}

/// Where entries are kept.
pub(crate) enum Store {
    /// In this process (no `REDIS_URL`).
    Local(moka::sync::Cache<String, Entry>),
    /// In Redis, shared by every process.
    Redis(deadpool_redis::Pool),
}
