//! Uploads on the fs store, on SQLite and PostgreSQL: the seed's response, the limit, types from
//! the bytes, hostile names, malformed forms, concurrency — and nothing left after a failure.

use std::time::Duration;

use queue::{ConsumeOptions, JobQueue};
use runtime::test_logger;
use serde_json::Value;
use testing::{TestBackend, error_code, on_both_backends};

use crate::helpers::{MAX, Multipart, Store, TestApp, png, spawn_app};

on_both_backends!(
    an_upload_answers_like_the_seed_and_downloads_identically,
    exactly_the_limit_is_accepted_and_one_byte_more_is_refused,
    a_spoofed_type_is_refused,
    text_and_pdf_are_recognised_whatever_the_client_claims,
    hostile_file_names_are_made_safe,
    a_missing_or_misnamed_file_field_is_a_bad_request,
    concurrent_uploads_all_land,
    an_image_upload_enqueues_a_thumbnail_job,
);

async fn an_upload_answers_like_the_seed_and_downloads_identically(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let content = png(10_000, 7);
    for path in ["/api/upload", "/api/media"] {
        let (content_type, body) = Multipart::new()
            .text("note", "ignored")
            .file("file", "cat.png", "text/plain", &content)
            .finish();
        let response = app.post_form(path, &content_type, body).await;
        assert_eq!(response.status(), 201, "{path}");
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("Location")
            .to_owned();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["message"], "File uploaded successfully");
        let file = &body["file"];
        let id = file["id"].as_str().expect("id");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_eq!(location, format!("/api/media/{id}"));
        assert_eq!(file["name"], "cat.png");
        assert_eq!(file["type"], "image/png", "from the bytes, not the claim");
        assert_eq!(file["size"], 10_000);
        assert_eq!(file["thumbnail_url"], Value::Null);
        assert!(file["created_at"].is_string());
        let url = file["url"].as_str().expect("url");
        assert!(
            url.starts_with(&format!("/api/media/{id}/content?expires=")),
            "{url}"
        );

        let download = app.fetch(url).await;
        assert_eq!(download.status(), 200);
        assert_eq!(download.headers()["content-type"], "image/png");
        assert_eq!(download.headers()["content-length"], "10000");
        assert_eq!(
            download.bytes().await.expect("bytes").as_ref(),
            content.as_slice()
        );

        let read: Value = app.get(&location).await.json().await.expect("JSON");
        assert_eq!(read["id"], file["id"]);
        assert_eq!(read["size"], 10_000);
        assert_eq!(read["type"], "image/png");
        let fresh = read["url"].as_str().expect("url");
        assert_eq!(app.fetch(fresh).await.status(), 200);
        assert!(
            app.objects().contains(&format!("{id}/cat.png")),
            "stored under <uuid>/<name>: {:?}",
            app.objects()
        );
    }
    assert_eq!(app.row_count().await, 2);
}

async fn exactly_the_limit_is_accepted_and_one_byte_more_is_refused(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let file = app.upload_ok("exact.png", &png(MAX, 1)).await;
    assert_eq!(file["size"], MAX);
    let before = app.objects();

    let response = app.upload("over.png", &png(MAX + 1, 1)).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");
    // A body declared far over the limit is refused before it is read.
    let response = app.upload("huge.png", &png(4 * MAX, 1)).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");

    assert_eq!(app.row_count().await, 1);
    assert_eq!(app.objects(), before, "nothing left by the refused uploads");
    let outcome = |label| [("outcome", label)];
    assert_eq!(
        app.metric("media_uploads_total", &outcome("stored")).await,
        1.0
    );
    assert_eq!(
        app.metric("media_uploads_total", &outcome("too_large"))
            .await,
        2.0
    );
    assert_eq!(
        app.metric("media_upload_bytes_total", &[]).await,
        MAX as f64
    );
}

async fn a_spoofed_type_is_refused(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    zip.resize(20_000, 0x41);
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.resize(9000, 0);
    let cases: [(&str, Vec<u8>); 5] = [
        ("cat.png", zip),
        ("photo.jpg", elf),
        ("notes.txt", b"text with a \0 NUL byte".to_vec()),
        ("latin1.txt", b"caf\xe9 au lait".to_vec()),
        ("cut.txt", "ends mid-character ö".as_bytes()[..20].to_vec()),
    ];
    for (name, content) in cases {
        let (content_type, body) = Multipart::new()
            .file("file", name, "image/png", &content)
            .finish();
        let response = app.post_form("/api/upload", &content_type, body).await;
        assert_eq!(response.status(), 415, "{name}");
        assert_eq!(error_code(response).await, "unsupported_media_type");
    }
    assert_eq!(app.row_count().await, 0);
    assert_eq!(app.objects(), Vec::<String>::new());
    let unsupported = [("outcome", "unsupported")];
    assert_eq!(app.metric("media_uploads_total", &unsupported).await, 5.0);
}

async fn text_and_pdf_are_recognised_whatever_the_client_claims(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let text = "Grüße, 世界\n".repeat(3000);
    let file = app.upload_ok("hello.txt", text.as_bytes()).await;
    assert_eq!(file["type"], "text/plain");
    assert_eq!(file["size"], text.len());
    let downloaded = app.fetch(file["url"].as_str().expect("url")).await;
    assert_eq!(downloaded.headers()["content-type"], "text/plain");
    assert_eq!(downloaded.text().await.expect("text"), text);

    let pdf = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n";
    let file = app.upload_ok("paper", pdf).await;
    assert_eq!(file["type"], "application/pdf");
}

async fn hostile_file_names_are_made_safe(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let content = b"just some text\n";
    let file = app.upload_ok("../../etc/passwd", content).await;
    assert_eq!(file["name"], "passwd");
    let id = file["id"].as_str().expect("id");
    assert!(app.objects().contains(&format!("{id}/passwd")));

    let file = app.upload_ok("..\\..\\windows\\win.ini", content).await;
    assert_eq!(file["name"], "win.ini");

    // A NUL (and a newline) through RFC 5987's filename*.
    let (content_type, body) = Multipart::new()
        .part(
            b"form-data; name=\"file\"; filename*=UTF-8''evil%00na%0Ame.txt",
            Some("text/plain"),
            content,
        )
        .finish();
    let response = app.post_form("/api/upload", &content_type, body).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["file"]["name"], "evilname.txt");

    // A raw NUL in the quoted name: refused as malformed or stripped, never stored as is.
    let (content_type, body) = Multipart::new()
        .part(
            b"form-data; name=\"file\"; filename=\"nul\0byte.txt\"",
            Some("text/plain"),
            content,
        )
        .finish();
    let response = app.post_form("/api/upload", &content_type, body).await;
    match response.status().as_u16() {
        201 => {
            let body: Value = response.json().await.expect("JSON");
            let name = body["file"]["name"].as_str().expect("name");
            assert!(!name.contains('\0'), "{name:?}");
        }
        400 => assert_eq!(error_code(response).await, "bad_request"),
        other => panic!("unexpected status {other}"),
    }

    let long = format!("{}.txt", "n".repeat(1000));
    let file = app.upload_ok(&long, content).await;
    let name = file["name"].as_str().expect("name");
    assert_eq!(name.len(), 255);
    assert!(name.ends_with(".txt"));

    let file = app.upload_ok("..", content).await;
    assert_eq!(file["name"], "file");

    // Every object is a file directly under its id.
    for key in app.objects() {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 2, "{key}");
        assert!(uuid::Uuid::parse_str(parts[0]).is_ok(), "{key}");
    }
}

async fn a_missing_or_misnamed_file_field_is_a_bad_request(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let forms = [
        ("only text", Multipart::new().text("title", "x").finish()),
        (
            "wrong field",
            Multipart::new()
                .file("upload", "cat.png", "image/png", &png(100, 0))
                .finish(),
        ),
        ("empty form", Multipart::new().finish()),
        (
            "two files",
            Multipart::new()
                .file("file", "a.txt", "text/plain", b"first")
                .file("file", "b.txt", "text/plain", b"second")
                .finish(),
        ),
        ("file as text", Multipart::new().text("file", "hello").finish()),
        (
            "empty file",
            Multipart::new()
                .file("file", "empty.txt", "text/plain", b"")
                .finish(),
        ),
        (
            "not multipart",
            ("application/json".to_owned(), b"{\"file\":\"x\"}".to_vec()),
        ),
        (
            "cut short",
            (
                format!("multipart/form-data; boundary={}", crate::helpers::BOUNDARY),
                format!(
                    "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello",
                    crate::helpers::BOUNDARY
                )
                .into_bytes(),
            ),
        ),
    ];
    for (label, (content_type, body)) in forms {
        let response = app.post_form("/api/upload", &content_type, body).await;
        assert_eq!(response.status(), 400, "{label}");
        assert_eq!(error_code(response).await, "bad_request", "{label}");
    }
    let response = app
        .client
        .post(app.url("/api/upload"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400, "no body at all");
    assert_eq!(app.row_count().await, 0);
    assert_eq!(app.objects(), Vec::<String>::new());
}

async fn concurrent_uploads_all_land(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let uploads = (0..12_u8).map(|n| {
        let app = &app;
        async move {
            let content = png(200_000 + usize::from(n), n);
            let file = app.upload_ok(&format!("img-{n}.png"), &content).await;
            (file, content)
        }
    });
    let results = futures_util::future::join_all(uploads).await;
    let mut ids: Vec<&str> = results
        .iter()
        .map(|(file, _)| file["id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12);
    for (file, content) in &results {
        let bytes = app
            .fetch(file["url"].as_str().expect("url"))
            .await
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(bytes.as_ref(), content.as_slice(), "{}", file["name"]);
    }
    assert_eq!(app.row_count().await, 12);
}

async fn an_image_upload_enqueues_a_thumbnail_job(backend: TestBackend) {
    let app: TestApp = spawn_app(backend, Store::Fs).await;
    let (content_type, body) = Multipart::new()
        .file("file", "thumbnail.png", "image/png", &png(500, 3))
        .finish();
    let response = app
        .client
        .post(app.url("/api/upload"))
        .header("content-type", content_type)
        .header("x-request-id", "media-test-request-42")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("JSON");
    let id = body["file"]["id"].as_str().expect("id").to_owned();
    // Text gets no job.
    app.upload_ok("notes.txt", b"no thumbnail for me").await;

    let queue = JobQueue::connect(&app.options.queue, test_logger("media-test"))
        .await
        .expect("the embedded queue");
    let mut consumer = queue
        .consume(ConsumeOptions::default())
        .await
        .expect("a consumer");
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a job within 10 s")
        .expect("a delivery");
    let envelope = delivery.envelope().expect("an envelope");
    assert_eq!(envelope.kind, "thumbnail");
    assert_eq!(
        envelope.request_id.as_deref(),
        Some("media-test-request-42")
    );
    assert_eq!(envelope.payload["media_id"], id.as_str());
    // The original may not be called thumbnail.png: that key is the thumbnail's.
    assert_eq!(
        envelope.payload["key"],
        format!("{id}/original-thumbnail.png").as_str()
    );
    assert_eq!(
        envelope.payload["thumbnail_key"],
        format!("{id}/thumbnail.png").as_str()
    );
    delivery.ack().await.expect("ack");
    assert_eq!(queue.depth().await.expect("depth").ready, 0, "one job only");
}
