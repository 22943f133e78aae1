//! How bytes are served, per type, on every path: the fs store's signed URLs (whole and ranged,
//! file and thumbnail), and on S3 the presigned URLs (raster images only) and the service's own
//! signed URLs (everything else). Raster images are inline; anything else, HTML and XML (SVG)
//! included even when the allow-list takes them, is an attachment; every answer of the service
//! carries a `Content-Security-Policy` sandbox and `nosniff`.

use reqwest::Response;
use serde_json::Value;
use testing::{TestBackend, on_both_backends};

use media_service::{
    serving::{ATTACHMENT_POLICY, INLINE_POLICY},
    signing::Purpose,
};

use crate::helpers::{Store, TestApp, png, spawn_with};

on_both_backends!(fs_downloads_are_inline_only_for_raster_images);

/// The files uploaded, with the type the service finds and how it must serve them.
fn samples() -> Vec<(&'static str, Vec<u8>, &'static str, &'static str)> {
    vec![
        ("cat.png", png(2000, 7), "image/png", "inline"),
        (
            "doc.pdf",
            b"%PDF-1.4\n%%EOF\n".to_vec(),
            "application/pdf",
            "attachment",
        ),
        (
            "notes.txt",
            b"just text".to_vec(),
            "text/plain",
            "attachment",
        ),
        (
            "page.html",
            b"<!DOCTYPE HTML><html><script>alert(document.cookie)</script></html>".to_vec(),
            "text/html",
            "attachment",
        ),
        (
            "drawing.svg",
            b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\">\
              <script>alert(1)</script></svg>"
                .to_vec(),
            "text/xml",
            "attachment",
        ),
        (
            "bare.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
            "text/plain",
            "attachment",
        ),
    ]
}

/// A service whose operator also allows HTML and XML.
async fn permissive(backend: TestBackend, store: Store) -> TestApp {
    spawn_with(backend, store, |options| {
        options
            .media
            .allowed_types
            .extend(["text/html".to_owned(), "text/xml".to_owned()]);
    })
    .await
}

/// Checks an answer of the service: status, type, disposition, sandbox, nosniff.
fn assert_served(
    response: &Response,
    status: u16,
    content_type: &str,
    disposition: &str,
    label: &str,
) {
    assert_eq!(response.status(), status, "{label}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("{label}: no {name}"))
            .to_str()
            .expect("an ASCII header")
            .to_owned()
    };
    assert_eq!(header("content-type"), content_type, "{label}");
    assert!(
        header("content-disposition").starts_with(&format!("{disposition}; filename=")),
        "{label}: {}",
        header("content-disposition")
    );
    let policy = if disposition == "inline" {
        INLINE_POLICY
    } else {
        ATTACHMENT_POLICY
    };
    assert_eq!(header("content-security-policy"), policy, "{label}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{label}");
}

/// The service's own signed URL of `purpose` for `id`.
fn own_url(app: &TestApp, purpose: Purpose, id: &str) -> String {
    let expires = chrono::Utc::now().timestamp() + 600;
    format!(
        "/api/media/{id}/{}?expires={expires}&sig={}",
        purpose.as_str(),
        app.signer().sign(purpose, id, expires)
    )
}

async fn fs_downloads_are_inline_only_for_raster_images(backend: TestBackend) {
    let app = permissive(backend, Store::Fs).await;
    for (name, content, content_type, disposition) in samples() {
        let file = app.upload_ok(name, &content).await;
        assert_eq!(file["type"], content_type, "{name}");
        let url = file["url"].as_str().expect("url");
        assert!(url.starts_with("/api/media/"), "{name}: {url}");
        let whole = app.fetch(url).await;
        assert_served(&whole, 200, content_type, disposition, name);
        assert_eq!(
            whole.bytes().await.expect("bytes").as_ref(),
            content.as_slice()
        );
        let ranged = app.fetch_range(url, "bytes=1-4").await;
        assert_served(
            &ranged,
            206,
            content_type,
            disposition,
            &format!("{name}, ranged"),
        );
        assert_eq!(
            ranged.bytes().await.expect("bytes").as_ref(),
            &content[1..=4]
        );
    }
    // A thumbnail is a PNG: inline, sandboxed.
    let file = app.upload_ok("dog.png", &png(3000, 1)).await;
    let id = file["id"].as_str().expect("id");
    let thumbnail = &app.put_thumbnail(id, png(90, 2)).await;
    assert_served(
        &app.fetch(thumbnail).await,
        200,
        "image/png",
        "inline",
        "thumbnail",
    );
    let ranged = app.fetch_range(thumbnail, "bytes=0-7").await;
    assert_served(&ranged, 206, "image/png", "inline", "thumbnail, ranged");
}

#[tokio::test]
async fn s3_presigns_raster_images_only_and_serves_the_rest_itself() {
    testing::skip_unless!(S3sFs);
    let app = permissive(TestBackend::Sqlite, Store::S3).await;
    let endpoint = app.s3.as_ref().expect("an S3 server").endpoint.clone();
    for (name, content, content_type, disposition) in samples() {
        let file = app.upload_ok(name, &content).await;
        assert_eq!(file["type"], content_type, "{name}");
        let id = file["id"].as_str().expect("id");
        let url = file["url"].as_str().expect("url");
        if disposition == "inline" {
            // S3 answers presigned URLs itself; it shows the picture in place.
            assert!(url.starts_with(&endpoint), "{name}: {url}");
            let response = app.fetch(url).await;
            assert_eq!(response.status(), 200, "{name}");
            assert_eq!(response.headers()["content-type"], content_type, "{name}");
            assert!(
                response.headers()["content-disposition"]
                    .to_str()
                    .expect("ASCII")
                    .starts_with("inline;"),
                "{name}"
            );
        } else {
            assert!(
                url.starts_with(&format!("/api/media/{id}/content?")),
                "{name}: {url}"
            );
        }
        // The service's own URL, which every file has, streams from S3 with the headers.
        let own = own_url(&app, Purpose::Content, id);
        let whole = app.fetch(&own).await;
        assert_served(&whole, 200, content_type, disposition, name);
        assert_eq!(
            whole.bytes().await.expect("bytes").as_ref(),
            content.as_slice()
        );
        let ranged = app.fetch_range(&own, "bytes=-3").await;
        assert_served(
            &ranged,
            206,
            content_type,
            disposition,
            &format!("{name}, ranged"),
        );
        let tail = &content[content.len() - 3..];
        assert_eq!(ranged.bytes().await.expect("bytes").as_ref(), tail);
        // Lists hand out the same kind of URL as reads.
        let read: Value = app
            .get(&format!("/api/media/{id}"))
            .await
            .json()
            .await
            .expect("JSON");
        let again = read["url"].as_str().expect("url");
        assert_eq!(
            again.starts_with(&endpoint),
            disposition == "inline",
            "{name}: {again}"
        );
    }
}
