//! The crate's tests: single-flight loads, batches, races with writes, expiry, and Redis
//! losing an invalidation (cut and restored with `testing::TcpSwitch`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use runtime::Metrics;
use slog::Logger;

use crate::{Cache, CacheSettings, CacheStatus, Entry};

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
    testing::skip_unless!(Redis);
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
            Ok::<_, std::convert::Infallible>(Entry::Found(Bytes::from_static(value.as_bytes())))
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
    testing::skip_unless!(Redis);
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
    testing::eventually(
        "the invalidation reached Redis without a read",
        Duration::from_secs(5),
        || async { cache.pending().is_empty() },
    )
    .await;

    // Until the invalidation reaches Redis, the key is read from the database, never from
    // Redis's stale copy; once it has, the cache works again.
    let (cache_ref, value_ref) = (&cache, &value);
    testing::eventually(
        "Redis serves again",
        Duration::from_secs(5),
        move || async move {
            let (status, entry) = cache_ref
                .get_or_load("k", value_ref("new"))
                .await
                .expect("load");
            assert_eq!(
                entry,
                Entry::Found(Bytes::from_static(b"new")),
                "never the stale value"
            );
            status == CacheStatus::Hit
        },
    )
    .await;
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

/// An invalidation left pending (here one without the second, delayed delete that
/// [`Cache::invalidate`] also schedules) reaches Redis from the background retry alone.
#[tokio::test]
async fn a_pending_invalidation_is_retried_in_the_background() {
    testing::skip_unless!(Redis);
    let (switch, switch_url) = testing::TcpSwitch::for_url(&testing::redis_url()).await;
    let mut settings = CacheSettings::new("test", Some(switch_url), Duration::from_secs(60));
    settings.namespace = format!("unit:{}", uuid::Uuid::new_v4().simple());
    settings.redis_backoff = Duration::from_millis(20);
    let cache = Cache::new(
        settings,
        Metrics::new("test"),
        Logger::root(slog::Discard, slog::o!()),
    )
    .expect("cache");
    switch.cut();
    cache.invalidate_in_redis(cache.full_key("k")).await;
    assert_eq!(cache.pending().len(), 1, "Redis did not hear of it");
    switch.restore();
    testing::eventually(
        "the background retry tells Redis",
        Duration::from_secs(5),
        || async { cache.pending().is_empty() },
    )
    .await;
}
