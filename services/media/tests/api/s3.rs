//! The S3 store against a real S3-compatible server (s3s-fs, checking SigV4): the bucket is
//! created, uploads land as objects, presigned URLs return the same bytes and are refused by the
//! server once expired or tampered with, failures leave nothing, and an unreachable S3 is a 503.

use std::time::{Duration, SystemTime};

use serde_json::Value;
use store::Presign;
use testing::{TestBackend, error_code, on_both_backends};

use crate::helpers::{MAX, Multipart, S3Server, Store, free_port, png, spawn_app, spawn_with};

on_both_backends!(
    s3_uploads_download_identically_through_presigned_urls,
    s3_limits_and_types_leave_nothing_behind,
    s3_delete_removes_the_objects_and_the_row,
);

async fn s3_uploads_download_identically_through_presigned_urls(backend: TestBackend) {
    testing::skip_unless!(S3sFs);
    let app = spawn_app(backend, Store::S3).await;
    let s3 = app.s3.as_ref().expect("an S3 server");
    assert!(
        s3.root.join(&s3.bucket).is_dir(),
        "the bucket was created at start"
    );

    let content = png(300_000, 42);
    let file = app.upload_ok("cat photo é.png", &content).await;
    let id = file["id"].as_str().expect("id");
    assert_eq!(file["type"], "image/png");
    let url = file["url"].as_str().expect("url");
    assert!(url.starts_with(&s3.endpoint), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(url.contains("X-Amz-Expires=3600"), "{url}");

    let response = app.fetch(url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(
        response.bytes().await.expect("bytes").as_ref(),
        content.as_slice()
    );
    assert_eq!(app.objects(), vec![format!("{id}/cat photo é.png")]);

    // Tampered with: the server refuses it.
    let tampered = url.replace("X-Amz-Expires=3600", "X-Amz-Expires=7200");
    let response = app.fetch(&tampered).await;
    assert_eq!(response.status(), 403, "tampered expiry");
    let mut wrong_signature = url.to_owned();
    let at = wrong_signature.find("X-Amz-Signature=").expect("signature") + 16;
    let flipped = if &wrong_signature[at..=at] == "0" {
        "1"
    } else {
        "0"
    };
    wrong_signature.replace_range(at..=at, flipped);
    assert_eq!(
        app.fetch(&wrong_signature).await.status(),
        403,
        "tampered signature"
    );
    // Expired: signed two hours ago for one hour.
    let expired = app
        .store
        .presigned_get(
            &format!("{id}/cat photo é.png"),
            &Presign {
                start: SystemTime::now() - Duration::from_secs(7200),
                ttl: Duration::from_secs(3600),
                content_disposition: None,
            },
        )
        .await
        .expect("presign")
        .expect("an S3 URL");
    assert_eq!(app.fetch(&expired).await.status(), 403, "expired");

    // The metadata read presigns afresh, and the service's own download route works too.
    let read: Value = app
        .get(&format!("/api/media/{id}"))
        .await
        .json()
        .await
        .expect("JSON");
    let fresh = read["url"].as_str().expect("url");
    assert_eq!(app.fetch(fresh).await.status(), 200);
    let range = app.fetch_range(fresh, "bytes=0-7").await;
    assert_eq!(range.status(), 206);
    assert_eq!(
        range.bytes().await.expect("bytes").as_ref(),
        b"\x89PNG\r\n\x1a\n"
    );

    // The service's own signed route streams from S3 as well, whole or by range.
    let expires = chrono::Utc::now().timestamp() + 60;
    let own = format!(
        "/api/media/{id}/content?expires={expires}&sig={}",
        app.signer()
            .sign(media_service::signing::Purpose::Content, id, expires)
    );
    let whole = app.fetch(&own).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-length"], "300000");
    assert_eq!(
        whole.bytes().await.expect("bytes").as_ref(),
        content.as_slice()
    );
    let tail = app.fetch_range(&own, "bytes=-10").await;
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.headers()["content-range"],
        "bytes 299990-299999/300000"
    );
    assert_eq!(
        tail.bytes().await.expect("bytes").as_ref(),
        &content[299_990..]
    );
    assert_eq!(app.fetch_range(&own, "bytes=300000-").await.status(), 416);

    // A thumbnail in the bucket shows up as a presigned URL.
    let thumbnail_url = &app.put_thumbnail(id, png(64, 1)).await;
    let thumbnail = app.fetch(thumbnail_url).await;
    assert_eq!(thumbnail.status(), 200);
    assert_eq!(
        thumbnail.bytes().await.expect("bytes").as_ref(),
        png(64, 1).as_slice()
    );
}

async fn s3_limits_and_types_leave_nothing_behind(backend: TestBackend) {
    testing::skip_unless!(S3sFs);
    let app = spawn_app(backend, Store::S3).await;
    let file = app.upload_ok("exact.png", &png(MAX, 1)).await;
    assert_eq!(file["size"], MAX);
    let id = file["id"].as_str().expect("id");
    let after_first = app.objects();
    assert_eq!(after_first, vec![format!("{id}/exact.png")]);

    let response = app.upload("over.png", &png(MAX + 1, 1)).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");
    let mut zip = b"PK\x03\x04".to_vec();
    zip.resize(10_000, 1);
    let response = app.upload("fake.png", &zip).await;
    assert_eq!(response.status(), 415);
    assert_eq!(error_code(response).await, "unsupported_media_type");
    let (content_type, body) = Multipart::new()
        .file("attachment", "a.txt", "text/plain", b"hello")
        .finish();
    let response = app.post_form("/api/media", &content_type, body).await;
    assert_eq!(response.status(), 400);

    // Concurrent uploads all land.
    let uploads = (0..6_u8).map(|n| {
        let app = &app;
        async move {
            app.upload_ok(&format!("c{n}.txt"), &vec![b'a' + n; 50_000])
                .await
        }
    });
    let files = futures_util::future::join_all(uploads).await;
    for (n, file) in (0_u8..).zip(&files) {
        let bytes = app
            .fetch(file["url"].as_str().expect("url"))
            .await
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(bytes.as_ref(), vec![b'a' + n; 50_000].as_slice());
    }
    assert_eq!(app.row_count().await, 7);
    assert_eq!(app.objects().len(), 7, "{:?}", app.objects());

    // Hostile names stay inside the bucket, under their id.
    let file = app.upload_ok("../../etc/passwd", b"root:x:0:0").await;
    assert_eq!(file["name"], "passwd");
    let id = file["id"].as_str().expect("id");
    assert!(app.objects().contains(&format!("{id}/passwd")));
    let long = app
        .upload_ok(&format!("{}.txt", "l".repeat(1000)), b"long name")
        .await;
    assert_eq!(long["name"].as_str().expect("name").len(), 255);

    // Lists carry URLs that work: presigned for the image, the service's own for text.
    let response = app.get("/api/media?limit=2&count=exact").await;
    assert_eq!(testing::total_count(&response), 9);
    let page: Vec<Value> = response.json().await.expect("JSON");
    assert_eq!(page.len(), 2);
    let s3 = app.s3.as_ref().expect("an S3 server");
    for item in &page {
        let url = item["url"].as_str().expect("url");
        let presigned = item["type"] == "image/png";
        assert_eq!(url.starts_with(&s3.endpoint), presigned, "{url}");
        assert_eq!(app.fetch(url).await.status(), 200);
    }
}

async fn s3_delete_removes_the_objects_and_the_row(backend: TestBackend) {
    testing::skip_unless!(S3sFs);
    let app = spawn_app(backend, Store::S3).await;
    let file = app
        .upload_ok("gone.webp", b"RIFF\x24\x00\x00\x00WEBPVP8 ")
        .await;
    assert_eq!(file["type"], "image/webp");
    let id = file["id"].as_str().expect("id");
    app.store
        .put(
            &format!("{id}/thumbnail.png"),
            bytes::Bytes::from(png(64, 1)),
            "image/png",
        )
        .await
        .expect("a thumbnail");
    assert_eq!(app.objects().len(), 2);
    let response = app.delete(&format!("/api/media/{id}")).await;
    assert_eq!(response.status(), 204);
    assert_eq!(app.objects(), Vec::<String>::new());
    assert_eq!(app.row_count().await, 0);
    assert_eq!(
        app.fetch(file["url"].as_str().expect("url")).await.status(),
        404
    );
}

#[tokio::test]
async fn an_unreachable_s3_is_a_503_and_readyz_names_the_store() {
    // Nothing listens there: the service still starts.
    let port = free_port();
    let app = spawn_with(TestBackend::Sqlite, Store::Fs, |options| {
        options.store.media_store = store::StoreKind::S3;
        options.store.s3_endpoint = Some(format!("http://127.0.0.1:{port}"));
        options.store.s3_bucket = Some("unreachable".to_owned());
        options.store.aws_access_key_id = Some("a".to_owned());
        options.store.aws_secret_access_key = Some("b".to_owned());
        options.media.signing_key = None;
    })
    .await;
    assert!(
        app.options.media.signing_key_file.exists(),
        "a key file for the S3 store too (its non-image downloads are the service's)"
    );
    let response = app.upload("a.txt", b"hello").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "unavailable");
    // The cause (with the endpoint) is logged, not sent.
    assert_eq!(body["error"]["message"], "the object store is unavailable");
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("store"), "{message}");
    assert_eq!(body["error"]["details"][0]["field"], "store");
    assert_eq!(app.row_count().await, 0);
    assert_eq!(
        crate::helpers::files_under(&app.options.store.media_dir),
        Vec::<String>::new(),
        "no spooled upload left"
    );
}

#[tokio::test]
async fn a_missing_bucket_stops_the_start_when_creation_is_disabled() {
    testing::skip_unless!(S3sFs);
    let s3 = S3Server::start();
    let mut options = media_service::Settings::embedded(&crate::helpers::temp_dir("nobucket"));
    s3.configure(&mut options);
    options.store.s3_create_bucket = false;
    let database_url = testing::fresh_database(TestBackend::Sqlite)
        .await
        .expect("a database");
    let settings = testing::service_settings(
        media_service::NAME,
        media_service::DEFAULT_PORT,
        database_url,
    );
    let logger = runtime::test_logger("media");
    let Err(error) = media_service::Application::build(settings, options, logger).await else {
        panic!("the start must fail");
    };
    let message = format!("{error:#}");
    assert!(
        message.contains(&s3.bucket) && message.contains("does not exist"),
        "{message}"
    );
    assert!(!s3.root.join(&s3.bucket).exists(), "no bucket created");
}

#[tokio::test]
async fn s3_going_down_turns_uploads_and_readiness_to_503() {
    testing::skip_unless!(S3sFs);
    let mut app = spawn_app(TestBackend::Sqlite, Store::S3).await;
    app.upload_ok("before.txt", b"while S3 is up").await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.s3.as_mut().expect("an S3 server").kill();

    let response = app.upload("after.txt", b"while S3 is down").await;
    assert_eq!(response.status(), 503);
    assert_eq!(error_code(response).await, "unavailable");
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["details"][0]["field"], "store");
    assert_eq!(app.row_count().await, 1);
    let response = app
        .delete(&format!(
            "/api/media/{}",
            app.get("/api/media")
                .await
                .json::<Vec<Value>>()
                .await
                .expect("JSON")[0]["id"]
                .as_str()
                .expect("id")
        ))
        .await;
    assert_eq!(
        response.status(),
        503,
        "delete keeps the row when S3 is down"
    );
    assert_eq!(app.row_count().await, 1);
}

#[tokio::test]
async fn the_s3_tests_need_s3s_fs() {
    testing::skip_unless!(S3sFs);
    // Starting and stopping the server is the check: under CI=true a missing binary fails.
    let server = S3Server::start();
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_ok());
}
