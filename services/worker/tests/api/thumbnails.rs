//! `thumbnail` jobs: an image in the store gets a PNG of at most 256 px next to it, at the key
//! its media id gives; bombs are dead-lettered with the reason; deleted media get nothing.

use std::{io::Cursor, time::Duration};

use bytes::Bytes;
use serde_json::json;

use crate::{
    helpers::{Broker, TestBroker, TestWorker, eventually, quick, spawn_worker},
    on_every_broker,
};

on_every_broker!(
    png_and_jpeg_uploads_get_png_thumbnails_of_at_most_256_px,
    a_corrupt_image_goes_to_the_dead_letters_without_a_thumbnail,
    a_bomb_is_dead_lettered_with_its_reason_and_never_retried,
    a_thumbnail_of_deleted_media_is_neither_retried_nor_written,
);

fn encoded(width: u32, height: u32, format: image::ImageFormat) -> Bytes {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, 90])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encoding");
    Bytes::from(out.into_inner())
}

/// Puts an upload of media `id` in the store and enqueues its thumbnail job, as media-service
/// does.
async fn upload(
    broker: &TestBroker,
    worker: &TestWorker,
    id: uuid::Uuid,
    name: &str,
    bytes: Bytes,
    content_type: &str,
) {
    let key = format!("{id}/{name}");
    worker
        .store
        .put(&key, bytes, content_type)
        .await
        .expect("stored");
    enqueue(broker, id, &key).await;
}

async fn enqueue(broker: &TestBroker, id: uuid::Uuid, key: &str) {
    broker
        .queue
        .enqueue(
            "thumbnail",
            json!({"media_id": id.to_string(), "key": key,
                   "thumbnail_key": format!("{id}/thumbnail.png")}),
            Some("req-upload"),
        )
        .await
        .expect("enqueued");
}

async fn thumbnail_of(worker: &TestWorker, key: &str) -> image::DynamicImage {
    eventually(
        "the thumbnail is written",
        Duration::from_secs(20),
        || async { worker.store.exists(key).await.expect("exists") },
    )
    .await;
    let bytes = worker.store.get(key).await.expect("the thumbnail");
    assert_eq!(
        image::guess_format(&bytes).expect("a known format"),
        image::ImageFormat::Png
    );
    image::load_from_memory(&bytes).expect("a decodable PNG")
}

async fn png_and_jpeg_uploads_get_png_thumbnails_of_at_most_256_px(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    let cases = [
        (
            "photo.png",
            encoded(800, 600, image::ImageFormat::Png),
            "image/png",
            (256, 192),
        ),
        (
            "wide.jpg",
            encoded(1024, 300, image::ImageFormat::Jpeg),
            "image/jpeg",
            (256, 75),
        ),
        (
            "icon.png",
            encoded(64, 48, image::ImageFormat::Png),
            "image/png",
            (64, 48),
        ),
    ];
    let mut media = Vec::new();
    for (name, bytes, content_type, _) in &cases {
        let id = uuid::Uuid::new_v4();
        upload(&broker, &worker, id, name, bytes.clone(), content_type).await;
        media.push(id);
    }
    for ((name, _, _, expected), id) in cases.iter().zip(&media) {
        let thumbnail = thumbnail_of(&worker, &format!("{id}/thumbnail.png")).await;
        assert_eq!((thumbnail.width(), thumbnail.height()), *expected, "{name}");
    }
    eventually(
        "three thumbnail jobs counted",
        Duration::from_secs(10),
        || async {
            worker
                .metric("worker_jobs_processed_total", &[("kind", "thumbnail")])
                .await
                == 3.0
        },
    )
    .await;
    worker.stop().await;
    broker.cleanup().await;
}

async fn a_corrupt_image_goes_to_the_dead_letters_without_a_thumbnail(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    let mut truncated = encoded(600, 600, image::ImageFormat::Png).to_vec();
    truncated.truncate(truncated.len() / 3);
    let mut media = Vec::new();
    for (name, bytes) in [
        ("broken.png", Bytes::from(truncated)),
        (
            "notes.png",
            Bytes::from_static(b"just some text, not an image"),
        ),
    ] {
        let id = uuid::Uuid::new_v4();
        upload(&broker, &worker, id, name, bytes, "image/png").await;
        media.push(id);
    }
    let letters = broker.dead_letters(2).await;
    for letter in &letters {
        let error = letter.error.as_deref().expect("an error");
        assert!(
            error.contains("decoding the image") || error.contains("not an image"),
            "{error}"
        );
        assert_eq!(
            letter.envelope().expect("the job").attempt,
            1,
            "not retried"
        );
    }
    for id in media {
        assert!(
            !worker
                .store
                .exists(&format!("{id}/thumbnail.png"))
                .await
                .expect("exists")
        );
    }
    assert_eq!(
        worker
            .metric(
                "worker_jobs_dead_lettered_total",
                &[("kind", "thumbnail"), ("reason", "permanent")]
            )
            .await,
        2.0
    );
    worker.stop().await;
    broker.cleanup().await;
}

/// A PNG of a few hundred bytes declaring 20 000 × 20 000 RGBA pixels (1.6 GB decoded).
fn bomb() -> Bytes {
    Bytes::from(worker::decode::testing::bomb(20_000, 20_000))
}

async fn a_bomb_is_dead_lettered_with_its_reason_and_never_retried(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    let bomb_id = uuid::Uuid::new_v4();
    upload(&broker, &worker, bomb_id, "bomb.png", bomb(), "image/png").await;
    let normal = uuid::Uuid::new_v4();
    let photo = encoded(640, 480, image::ImageFormat::Jpeg);
    upload(&broker, &worker, normal, "photo.jpg", photo, "image/jpeg").await;
    let letters = broker.dead_letters(1).await;
    let error = letters[0].error.as_deref().expect("an error");
    assert!(
        error.contains("20000×20000") && error.contains("WORKER_MAX_IMAGE_PIXELS"),
        "{error}"
    );
    assert_eq!(letters[0].envelope().expect("the job").attempt, 1);
    let thumbnail = thumbnail_of(&worker, &format!("{normal}/thumbnail.png")).await;
    assert_eq!((thumbnail.width(), thumbnail.height()), (256, 192));
    assert!(
        !worker
            .store
            .exists(&format!("{bomb_id}/thumbnail.png"))
            .await
            .expect("exists")
    );
    assert_eq!(
        worker
            .metric("worker_jobs_retried_total", &[("kind", "thumbnail")])
            .await,
        0.0
    );
    worker.stop().await;
    broker.cleanup().await;
}

async fn a_thumbnail_of_deleted_media_is_neither_retried_nor_written(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    // Uploaded, then deleted (media-service removes the objects, then the row) before the job.
    let id = uuid::Uuid::new_v4();
    enqueue(&broker, id, &format!("{id}/gone.png")).await;
    eventually("the job skipped", Duration::from_secs(20), || async {
        worker
            .metric("worker_jobs_skipped_total", &[("kind", "thumbnail")])
            .await
            == 1.0
    })
    .await;
    assert_eq!(
        worker
            .metric("worker_jobs_retried_total", &[("kind", "thumbnail")])
            .await,
        0.0
    );
    assert!(
        !worker
            .store
            .exists(&format!("{id}/thumbnail.png"))
            .await
            .expect("exists")
    );
    let depth = broker.queue.depth().await.expect("depth");
    assert_eq!((depth.ready, depth.dead), (0, 0));
    worker.stop().await;
    broker.cleanup().await;
}
