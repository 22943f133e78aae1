//! Thumbnails of deleted media: not written when the item went before the write, taken back
//! when it went during it, and swept when the worker died before it could tell.

use std::time::Duration;

use bytes::Bytes;
use worker::{
    context::JobContext,
    decode::{DecodeBudget, Thumbnail},
    orphans,
    outcome::Outcome,
    repository::TaskRecorder,
    thumbnail::{MEDIA_GONE, MediaKeys, ThumbnailPayload},
};

use crate::helpers::{Broker, TestBroker, TestWorker, quick, spawn_worker};

fn context(worker: &TestWorker) -> JobContext {
    JobContext {
        repository: worker.repository.clone(),
        tasks: TaskRecorder::start(worker.repository.clone()),
        store: worker.store.clone(),
        budget: DecodeBudget::new(
            64 << 20,
            24_000_000,
            prometheus::IntGauge::new("test_gauge", "test").expect("a gauge"),
        ),
        logger: runtime::test_logger("test"),
    }
}

fn keys(id: uuid::Uuid) -> MediaKeys {
    MediaKeys::of(&ThumbnailPayload {
        media_id: id.to_string(),
        key: format!("{id}/cat.png"),
    })
    .expect("keys")
}

fn thumbnail() -> Thumbnail {
    Thumbnail {
        png: Bytes::from_static(b"a thumbnail"),
        width: 1,
        height: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_is_written_only_while_its_media_item_exists() {
    let broker = TestBroker::new(Broker::Embedded).await;
    let worker = spawn_worker(&broker, quick()).await;
    let context = context(&worker);
    let (live, gone) = (keys(uuid::Uuid::new_v4()), keys(uuid::Uuid::new_v4()));
    worker
        .store
        .put(&live.original, Bytes::from_static(b"png"), "image/png")
        .await
        .expect("stored");
    let written = worker::thumbnail::write(&context, &live, thumbnail())
        .await
        .expect("written");
    assert_eq!(written, Outcome::Done);
    assert!(worker.store.exists(&live.thumbnail).await.expect("exists"));
    let skipped = worker::thumbnail::write(&context, &gone, thumbnail())
        .await
        .expect("settled");
    assert_eq!(skipped, Outcome::Skipped(MEDIA_GONE));
    assert!(!worker.store.exists(&gone.thumbnail).await.expect("exists"));
    // Both writes were checked: nothing is left for the sweep.
    assert!(
        worker
            .repository
            .stale_thumbnail_writes(Duration::ZERO, 10)
            .await
            .expect("pending")
            .is_empty()
    );
    worker.stop().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_thumbnails_whose_media_item_is_gone_and_keeps_the_others() {
    let broker = TestBroker::new(Broker::Embedded).await;
    let worker = spawn_worker(&broker, quick()).await;
    // Two writes whose worker died after the write, before its check: one item is still there,
    // the other was deleted meanwhile (its delete found no thumbnail yet).
    let (live, gone) = (keys(uuid::Uuid::new_v4()), keys(uuid::Uuid::new_v4()));
    for keys in [&live, &gone] {
        worker
            .repository
            .begin_thumbnail_write(&keys.thumbnail, &keys.original)
            .await
            .expect("recorded");
        worker
            .store
            .put(&keys.thumbnail, Bytes::from_static(b"thumb"), "image/png")
            .await
            .expect("stored");
    }
    worker
        .store
        .put(&live.original, Bytes::from_static(b"png"), "image/png")
        .await
        .expect("stored");
    // Writes younger than the grace may be in progress: left alone.
    let young = orphans::sweep(&worker.store, &worker.repository, orphans::GRACE)
        .await
        .expect("swept");
    assert_eq!(young, orphans::Swept::default());
    let swept = orphans::sweep(&worker.store, &worker.repository, Duration::ZERO)
        .await
        .expect("swept");
    assert_eq!(
        swept,
        orphans::Swept {
            checked: 2,
            deleted: 1
        }
    );
    assert!(!worker.store.exists(&gone.thumbnail).await.expect("exists"));
    assert!(worker.store.exists(&live.thumbnail).await.expect("exists"));
    assert!(
        worker
            .repository
            .stale_thumbnail_writes(Duration::ZERO, 10)
            .await
            .expect("pending")
            .is_empty()
    );
    worker.stop().await;
    broker.cleanup().await;
}
