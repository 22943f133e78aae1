//! `thumbnail` jobs: an image in the store gets a PNG of at most 256 px next to it.

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
);

fn encoded(width: u32, height: u32, format: image::ImageFormat) -> Bytes {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, 90])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encoding");
    Bytes::from(out.into_inner())
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
    let media = uuid::Uuid::new_v4();
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
    for (name, bytes, content_type, _) in &cases {
        let key = format!("{media}/{name}");
        worker
            .store
            .put(&key, bytes.clone(), content_type)
            .await
            .expect("stored");
        broker
            .queue
            .enqueue(
                "thumbnail",
                json!({"media_id": media.to_string(), "key": key,
                       "thumbnail_key": format!("{media}/{name}.thumbnail.png")}),
                Some("req-upload"),
            )
            .await
            .expect("enqueued");
    }
    for (name, _, _, expected) in &cases {
        let thumbnail = thumbnail_of(&worker, &format!("{media}/{name}.thumbnail.png")).await;
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
    let media = uuid::Uuid::new_v4();
    let mut truncated = encoded(600, 600, image::ImageFormat::Png).to_vec();
    truncated.truncate(truncated.len() / 3);
    for (name, bytes) in [
        ("broken.png", Bytes::from(truncated)),
        (
            "notes.png",
            Bytes::from_static(b"just some text, not an image"),
        ),
    ] {
        let key = format!("{media}/{name}");
        worker
            .store
            .put(&key, bytes, "image/png")
            .await
            .expect("stored");
        broker
            .queue
            .enqueue(
                "thumbnail",
                json!({"media_id": media.to_string(), "key": key,
                       "thumbnail_key": format!("{media}/{name}.thumbnail.png")}),
                None,
            )
            .await
            .expect("enqueued");
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
    for name in ["broken.png", "notes.png"] {
        assert!(
            !worker
                .store
                .exists(&format!("{media}/{name}.thumbnail.png"))
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
