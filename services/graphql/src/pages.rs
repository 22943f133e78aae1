//! Pages of the post list kept in memory between writes.
//!
//! `posts(limit, offset)` is the service's hottest read, and through sqlx's SQLite driver each
//! one costs thread hand-offs per row (`docs/benchmarks.md`). Posts belong to this service, so
//! it knows every write: each one empties the cache at once on the instance that made it, and
//! on every other instance when the announcement on the pub/sub channel reaches it (Redis when
//! `REDIS_URL` is set). A page is also dropped after the configured time, which bounds how
//! stale a page may be on another instance when an announcement is lost (Redis restarting).
//!
//! A read that raced a write never stores what it read: each write bumps a generation first,
//! and a page is kept only when the generation it was read under is still the current one.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use pubsub::PubSub;
use server::Page;

use crate::model::PostRow;

/// Which page: limit, offset, author filter.
type PageKey = (i64, i64, Option<i64>);

/// The cached pages of one instance.
#[derive(Clone)]
pub struct PageCache {
    /// Pages by key, weighed by their text.
    pages: moka::sync::Cache<PageKey, Arc<[PostRow]>>,
    /// Bumped by every write, before the pages are dropped.
    generation: Arc<AtomicU64>,
    /// Off when the configured time is zero.
    enabled: bool,
    /// Where writes are announced to the other instances.
    announce: Option<(PubSub, String)>,
    /// For announcements that fail.
    logger: slog::Logger,
}

/// What one page costs in memory, roughly: its text plus a fixed overhead per row.
fn weigh(_key: &PageKey, rows: &Arc<[PostRow]>) -> u32 {
    let bytes: usize = rows
        .iter()
        .map(|row| {
            96 + row.title.len()
                + row.content.as_ref().map_or(0, String::len)
                + row.created_at.len()
        })
        .sum();
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl PageCache {
    /// Pages kept for `ttl` (zero: no cache), up to `max_bytes` of post text.
    pub fn new(ttl: Duration, max_bytes: u64, logger: slog::Logger) -> Self {
        Self {
            pages: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(weigh)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
            generation: Arc::new(AtomicU64::new(0)),
            enabled: !ttl.is_zero(),
            announce: None,
            logger,
        }
    }

    /// Announces writes on `channel` of `pubsub`, and empties this cache whenever any instance
    /// announces one there (its own included).
    pub async fn follow(mut self, pubsub: PubSub, channel: String) -> anyhow::Result<Self> {
        if self.enabled {
            let mut announcements = pubsub.subscribe(&channel).await?;
            let cache = self.clone();
            tokio::spawn(async move {
                while announcements.next().await.is_some() {
                    cache.forget_all();
                }
            });
        }
        self.announce = Some((pubsub, channel));
        Ok(self)
    }

    /// The page under `key`, or `load`'s rows (kept unless a write came in between).
    pub async fn get_or_load<F, Fut>(
        &self,
        page: Page,
        author_id: Option<i64>,
        load: F,
    ) -> sqlx::Result<Vec<PostRow>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = sqlx::Result<Vec<PostRow>>>,
    {
        if !self.enabled {
            return load().await;
        }
        let key = (page.limit, page.offset, author_id);
        if let Some(rows) = self.pages.get(&key) {
            return Ok(rows.to_vec());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let rows = load().await?;
        self.store_if_current(key, generation, Arc::from(rows.as_slice()));
        Ok(rows)
    }

    fn store_if_current(&self, key: PageKey, generation: u64, rows: Arc<[PostRow]>) {
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        self.pages.insert(key, rows);
        // A write that began between the check and the insert has bumped the generation by
        // now; its `forget_all` may have run before the insert, so the page goes here.
        if self.generation.load(Ordering::SeqCst) != generation {
            self.pages.invalidate(&key);
        }
    }

    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.pages.invalidate_all();
    }

    /// Call after a write has committed: empties this instance's pages, then tells the others
    /// (also when this instance keeps none: others may). A failed announcement is logged: the
    /// write stands, and the others' pages expire.
    pub async fn written(&self) {
        self.forget_all();
        if let Some((pubsub, channel)) = &self.announce
            && let Err(error) = pubsub.publish(channel, Bytes::new()).await
        {
            slog::warn!(self.logger, "post change not announced to other instances";
                "error" => format!("{error:#}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> PostRow {
        PostRow {
            id,
            title: format!("Post {id}"),
            content: None,
            author_id: 1,
            created_at: "2026-11-28T00:00:00Z".to_owned(),
        }
    }

    fn cache() -> PageCache {
        PageCache::new(
            Duration::from_secs(60),
            1 << 20,
            slog::Logger::root(slog::Discard, slog::o!()),
        )
    }

    const PAGE: Page = Page {
        limit: 10,
        offset: 0,
    };

    #[tokio::test]
    async fn a_page_is_read_once_until_a_write() {
        let cache = cache();
        let loads = AtomicU64::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(vec![row(1)])
        };
        assert_eq!(
            cache.get_or_load(PAGE, None, load).await.expect("rows"),
            [row(1)]
        );
        assert_eq!(
            cache.get_or_load(PAGE, None, load).await.expect("rows"),
            [row(1)]
        );
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        cache.get_or_load(PAGE, Some(1), load).await.expect("rows");
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "another author, another page"
        );
        cache.written().await;
        cache.get_or_load(PAGE, None, load).await.expect("rows");
        assert_eq!(loads.load(Ordering::SeqCst), 3, "a write empties the cache");
    }

    #[tokio::test]
    async fn a_page_read_while_a_write_happened_is_not_kept() {
        let cache = cache();
        let stale = cache
            .get_or_load(PAGE, None, || async {
                // The write commits and empties the cache while these rows are on their way.
                cache.written().await;
                Ok(vec![row(1)])
            })
            .await
            .expect("rows");
        assert_eq!(stale, [row(1)], "the reader still gets what it read");
        let fresh = cache
            .get_or_load(PAGE, None, || async { Ok(vec![row(1), row(2)]) })
            .await
            .expect("rows");
        assert_eq!(fresh, [row(1), row(2)], "but it was not kept");
    }

    #[tokio::test]
    async fn a_zero_time_turns_the_cache_off() {
        let cache = PageCache::new(
            Duration::ZERO,
            1 << 20,
            slog::Logger::root(slog::Discard, slog::o!()),
        );
        let loads = AtomicU64::new(0);
        for _ in 0..2 {
            cache
                .get_or_load(PAGE, None, || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(vec![])
                })
                .await
                .expect("rows");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }
}
