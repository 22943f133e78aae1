//! Reading, listing and deleting media, the signed downloads of the fs store (expiry,
//! tampering, ranges), thumbnails once they exist, and the service's own documents.

use serde_json::Value;
use testing::{TestBackend, error_code, on_both_backends, total_count};

use crate::helpers::{Store, png, spawn_app};
use media_service::signing::Purpose;

on_both_backends!(
    lists_are_paginated_oldest_first,
    delete_removes_the_object_the_thumbnail_and_the_row,
    signed_urls_refuse_expired_tampered_and_unsigned_requests,
    range_requests_are_served,
    the_thumbnail_url_appears_once_the_thumbnail_exists,
);

async fn lists_are_paginated_oldest_first(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let file = app
            .upload_ok(&format!("f{n}.txt"), format!("file {n}").as_bytes())
            .await;
        ids.push(file["id"].as_str().expect("id").to_owned());
    }
    let response = app.get("/api/media?limit=2&count=exact").await;
    assert_eq!(response.status(), 200);
    assert_eq!(total_count(&response), 5);
    let page: Vec<Value> = response.json().await.expect("JSON");
    let names: Vec<&str> = page
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["f0.txt", "f1.txt"]);
    assert!(page[0]["url"].is_string());

    let response = app.get("/api/media?limit=2&offset=4&count=exact").await;
    assert_eq!(total_count(&response), 5);
    let page: Vec<Value> = response.json().await.expect("JSON");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], ids[4].as_str());

    let all: Vec<Value> = app.get("/api/media").await.json().await.expect("JSON");
    assert_eq!(all.len(), 5);

    for bad in [
        "/api/media?limit=1001",
        "/api/media?limit=-1",
        "/api/media?offset=x",
    ] {
        let response = app.get(bad).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(error_code(response).await, "bad_request");
    }
}

async fn delete_removes_the_object_the_thumbnail_and_the_row(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let file = app.upload_ok("cat.png", &png(3000, 9)).await;
    let kept = app.upload_ok("dog.png", &png(3000, 8)).await;
    let id = file["id"].as_str().expect("id");
    app.store
        .put(
            &format!("{id}/thumbnail.png"),
            bytes::Bytes::from(png(100, 0)),
            "image/png",
        )
        .await
        .expect("a thumbnail");
    let url = file["url"].as_str().expect("url").to_owned();

    let response = app.delete(&format!("/api/media/{id}")).await;
    assert_eq!(response.status(), 204);
    assert_eq!(app.get(&format!("/api/media/{id}")).await.status(), 404);
    assert_eq!(
        app.fetch(&url).await.status(),
        404,
        "the signed URL finds nothing"
    );
    let response = app.delete(&format!("/api/media/{id}")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(response).await, "not_found");
    let kept_id = kept["id"].as_str().expect("id");
    assert_eq!(app.objects(), vec![format!("{kept_id}/dog.png")]);
    assert_eq!(app.row_count().await, 1);

    let response = app.delete("/api/media/not-a-uuid").await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "bad_request");
    let response = app
        .get(&format!("/api/media/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(response.status(), 404);
}

async fn signed_urls_refuse_expired_tampered_and_unsigned_requests(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let file = app.upload_ok("doc.pdf", b"%PDF-1.4\n%%EOF\n").await;
    let other = app.upload_ok("other.txt", b"other").await;
    let id = file["id"].as_str().expect("id");
    let url = file["url"].as_str().expect("url");

    let response = app.fetch(url).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["content-length"], "15");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"doc.pdf\"; filename*=UTF-8''doc.pdf"
    );
    assert_eq!(
        headers["content-security-policy"],
        media_service::serving::ATTACHMENT_POLICY
    );

    let signer = app.signer();
    let past = chrono::Utc::now().timestamp() - 10;
    let expired = format!(
        "/api/media/{id}/content?expires={past}&sig={}",
        signer.sign(Purpose::Content, id, past)
    );
    let future = chrono::Utc::now().timestamp() + 600;
    let good_sig = signer.sign(Purpose::Content, id, future);
    let mut flipped = good_sig.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("hex");
    let other_id = other["id"].as_str().expect("id");
    let refused = [
        ("expired", expired),
        (
            "tampered signature",
            format!("/api/media/{id}/content?expires={future}&sig={flipped}"),
        ),
        (
            "extended expiry",
            format!(
                "/api/media/{id}/content?expires={}&sig={good_sig}",
                future + 1
            ),
        ),
        (
            "another id",
            format!("/api/media/{other_id}/content?expires={future}&sig={good_sig}"),
        ),
        (
            "thumbnail signature",
            format!(
                "/api/media/{id}/content?expires={future}&sig={}",
                signer.sign(Purpose::Thumbnail, id, future)
            ),
        ),
        ("unsigned", format!("/api/media/{id}/content")),
        (
            "garbage",
            format!("/api/media/{id}/content?expires=soon&sig=zz"),
        ),
    ];
    for (label, url) in refused {
        let response = app.fetch(&url).await;
        assert_eq!(response.status(), 403, "{label}");
        assert_eq!(error_code(response).await, "forbidden", "{label}");
    }
    let good = format!("/api/media/{id}/content?expires={future}&sig={good_sig}");
    assert_eq!(app.fetch(&good).await.status(), 200);
}

async fn range_requests_are_served(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let content: Vec<u8> = (0..1000_u32)
        .map(|n| b'a' + u8::try_from(n % 26).expect("a letter"))
        .collect();
    let file = app.upload_ok("letters.txt", &content).await;
    let url = file["url"].as_str().expect("url");
    for (range, first, last) in [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=500-5000", 500, 999),
    ] {
        let response = app.fetch_range(url, range).await;
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {first}-{last}/1000").as_str()
        );
        assert_eq!(
            response.headers()["content-length"],
            (last - first + 1).to_string().as_str()
        );
        let bytes = response.bytes().await.expect("bytes");
        assert_eq!(bytes.as_ref(), &content[first..=last], "{range}");
    }
    let response = app.fetch_range(url, "bytes=1000-").await;
    assert_eq!(response.status(), 416);
    assert_eq!(response.headers()["content-range"], "bytes */1000");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("application/json")
    );
    // Several ranges, or a malformed one: the whole file, as RFC 9110 allows.
    for ignored in ["bytes=0-1,5-6", "bytes=9-1", "pages=1"] {
        let response = app.fetch_range(url, ignored).await;
        assert_eq!(response.status(), 200, "{ignored}");
        assert_eq!(response.bytes().await.expect("bytes").len(), 1000);
    }
}

async fn the_thumbnail_url_appears_once_the_thumbnail_exists(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let file = app
        .upload_ok("cat.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
        .await;
    assert_eq!(file["type"], "image/gif");
    let id = file["id"].as_str().expect("id");
    let read: Value = app
        .get(&format!("/api/media/{id}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(read["thumbnail_url"], Value::Null);

    // What the worker does.
    let thumbnail = png(700, 5);
    let thumbnail_url = &app.put_thumbnail(id, thumbnail.clone()).await;
    assert!(thumbnail_url.starts_with(&format!("/api/media/{id}/thumbnail?")));
    let response = app.fetch(thumbnail_url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(
        response.bytes().await.expect("bytes").as_ref(),
        thumbnail.as_slice()
    );
    // Recorded: the list shows it too (lists do not look in the store).
    let list: Vec<Value> = app.get("/api/media").await.json().await.expect("JSON");
    assert!(list[0]["thumbnail_url"].is_string());

    // Text never has one, and its thumbnail path is a 404 even when signed.
    let text = app.upload_ok("a.txt", b"text").await;
    let text_id = text["id"].as_str().expect("id");
    let future = chrono::Utc::now().timestamp() + 60;
    let url = format!(
        "/api/media/{text_id}/thumbnail?expires={future}&sig={}",
        app.signer().sign(Purpose::Thumbnail, text_id, future)
    );
    assert_eq!(app.fetch(&url).await.status(), 404);
}

#[tokio::test]
async fn readiness_names_the_store_and_the_queue_and_the_openapi_document_is_served() {
    let app = spawn_app(TestBackend::Sqlite, Store::Fs).await;
    let ready: Value = app.get("/readyz").await.json().await.expect("JSON");
    assert_eq!(ready["checks"]["store"], "ok", "{ready}");
    assert_eq!(ready["checks"]["queue"], "ok", "{ready}");
    let document: Value = app
        .get("/api/media/openapi.json")
        .await
        .json()
        .await
        .expect("JSON");
    for path in [
        "/api/upload",
        "/api/media",
        "/api/media/{id}",
        "/api/media/{id}/content",
        "/api/media/{id}/thumbnail",
    ] {
        assert!(document["paths"][path].is_object(), "{path}");
    }
    assert!(document["components"]["schemas"]["Media"].is_object());
}

#[tokio::test]
async fn a_generated_signing_key_survives_a_restart() {
    let data_dir = crate::helpers::temp_dir("restart");
    let options = media_service::Settings::embedded(&data_dir);
    let app =
        crate::helpers::start(TestBackend::Sqlite, data_dir.clone(), options.clone(), None).await;
    let file = app.upload_ok("a.txt", b"kept across restarts").await;
    let url = file["url"].as_str().expect("url").to_owned();
    let database_url = app.service.settings.database_url.clone();
    app.stop().await;
    assert!(data_dir.join("media-signing.key").is_file());

    let mut settings = testing::service_settings(
        media_service::NAME,
        media_service::DEFAULT_PORT,
        database_url,
    );
    settings.workers = 1;
    let service = testing::TestService::start(
        settings,
        runtime::test_logger("media"),
        move |settings, logger| media_service::Application::build(settings, options, logger),
    )
    .await;
    let response = service
        .client
        .get(service.url(&url))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("text"), "kept across restarts");
}
