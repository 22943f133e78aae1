//! Per-user quotas (`MEDIA_QUOTA_BYTES`, `MEDIA_QUOTA_FILES`) on SQLite and PostgreSQL: past
//! either, an upload is a 413 `payload_too_large` naming the quota and stores nothing (no
//! object, no staged file, no row, no reservation left); a declared length over the quota is
//! refused before the body is read, a streamed one as soon as it passes; concurrent uploads of
//! one user never take more than the quota; other users and deletes are unaffected; admins are
//! held to it too.

use std::time::Duration;

use serde_json::Value;
use testing::{TestBackend, Who, eventually, on_both_backends};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, tcp::OwnedWriteHalf},
    task::JoinHandle,
};

use crate::helpers::{BOUNDARY, Store, TestApp, spawn_with};

on_both_backends!(
    uploads_past_the_byte_or_file_quota_are_refused_and_store_nothing,
    concurrent_uploads_of_one_user_never_pass_the_quota,
    a_streamed_upload_stops_at_the_quota_and_a_declared_one_before_its_body,
);

const ALICE: Who = Who::User(2);
const BOB: Who = Who::User(3);

/// A service whose users may keep `bytes` bytes and `files` files (0: no limit).
async fn app_with_quota(backend: TestBackend, bytes: u64, files: u64) -> TestApp {
    spawn_with(backend, Store::Fs, |options| {
        options.media.quota_bytes = bytes;
        options.media.quota_files = files;
    })
    .await
}

/// Text of `len` bytes.
fn text(len: usize) -> Vec<u8> {
    vec![b'q'; len]
}

/// The answer of an upload expected to be refused for the quota: 413, the contract's body, a
/// message naming `quota`.
async fn expect_over_quota(response: reqwest::Response, quota: &str, label: &str) {
    assert_eq!(response.status(), 413, "{label}");
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(
        body["error"]["code"], "payload_too_large",
        "{label}: {body}"
    );
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("quota") && message.contains(quota),
        "{label}: {message}"
    );
}

/// The item ids `who` owns, and their total size.
async fn holdings(app: &TestApp, who: Who) -> (Vec<String>, u64) {
    let items: Vec<Value> = app
        .send_as(who, reqwest::Method::GET, "/api/media?limit=1000")
        .await
        .json()
        .await
        .expect("a list");
    let ids = items
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect();
    let bytes = items
        .iter()
        .map(|item| item["size"].as_u64().expect("size"))
        .sum();
    (ids, bytes)
}

async fn uploads_past_the_byte_or_file_quota_are_refused_and_store_nothing(backend: TestBackend) {
    let app = app_with_quota(backend, 10_000, 3).await;
    app.upload_ok_as(ALICE, "/api/upload", "a.txt", &text(4000))
        .await;
    app.upload_ok_as(ALICE, "/api/upload", "b.txt", &text(4000))
        .await;
    let objects = app.objects();
    let response = app
        .upload_as(ALICE, "/api/upload", "c.txt", &text(2001))
        .await;
    expect_over_quota(response, "10000 bytes", "one byte past the bytes").await;
    assert_eq!(app.objects(), objects, "nothing stored or staged");
    assert_eq!(holdings(&app, ALICE).await.1, 8000);
    assert_eq!(
        app.reservations().await,
        0,
        "the refused upload's room is back"
    );

    // Exactly the quota fits; then the bytes are full, and so are the files.
    app.upload_ok_as(ALICE, "/api/upload", "c.txt", &text(2000))
        .await;
    let response = app.upload_as(ALICE, "/api/media", "d.txt", &text(1)).await;
    expect_over_quota(response, "3 files", "a fourth file").await;
    let (ids, bytes) = holdings(&app, ALICE).await;
    assert_eq!((ids.len(), bytes), (3, 10_000));

    // Another user keeps uploading; so does Alice once she deleted a file.
    app.upload_ok_as(BOB, "/api/upload", "bob.txt", &text(9000))
        .await;
    let response = app
        .send_as(
            ALICE,
            reqwest::Method::DELETE,
            &format!("/api/media/{}", ids[0]),
        )
        .await;
    assert_eq!(response.status(), 204);
    app.upload_ok_as(ALICE, "/api/upload", "e.txt", &text(4000))
        .await;

    // Admins are held to their own quota like anyone.
    let response = app
        .upload_as(Who::Admin(1), "/api/upload", "big.txt", &text(10_001))
        .await;
    expect_over_quota(response, "10000 bytes", "an admin past the bytes").await;
    assert_eq!(
        app.metric("media_uploads_total", &[("outcome", "over_quota")])
            .await,
        3.0
    );
    assert_eq!(app.row_count().await, 4);
    assert_eq!(app.reservations().await, 0);
}

/// An upload sent over its own connection, its body held back after the first bytes.
struct HeldUpload {
    writer: OwnedWriteHalf,
    /// The status line, once the service answers.
    answer: JoinHandle<String>,
    /// The rest of the body.
    rest: Vec<u8>,
}

/// The port of a test app.
fn port(app: &TestApp) -> u16 {
    app.address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

impl HeldUpload {
    /// Sends the head (`Content-Length` declared when `declared`, chunked otherwise) and the
    /// first `first` bytes of `file` as `who`.
    async fn start(port: u16, who: Who, file: &[u8], first: usize, declared: bool) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (mut reader, writer) = stream.into_split();
        let answer = tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buffer = [0_u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        });
        let mut body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"held.txt\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let framing = if declared {
            format!("Content-Length: {}", body.len())
        } else {
            "Transfer-Encoding: chunked".to_owned()
        };
        let head = format!(
            "POST /api/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n\r\n",
            who.token().expect("a signed-in caller")
        );
        let split = body.len() - file.len() - (BOUNDARY.len() + 8) + first;
        let rest = body.split_off(split);
        let mut upload = Self {
            writer,
            answer,
            rest: Vec::new(),
        };
        let _ = upload.writer.write_all(head.as_bytes()).await;
        upload.send(&body, declared).await;
        upload.rest = if declared {
            rest
        } else {
            // The rest, then the last chunk.
            let mut chunked = format!("{:x}\r\n", rest.len()).into_bytes();
            chunked.extend_from_slice(&rest);
            chunked.extend_from_slice(b"\r\n0\r\n\r\n");
            chunked
        };
        upload
    }

    async fn send(&mut self, bytes: &[u8], declared: bool) {
        if declared {
            let _ = self.writer.write_all(bytes).await;
        } else {
            let _ = self
                .writer
                .write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
                .await;
            let _ = self.writer.write_all(bytes).await;
            let _ = self.writer.write_all(b"\r\n").await;
        }
    }

    /// Sends the rest unless the service answered already; returns the status line.
    async fn finish(mut self) -> String {
        if !self.answer.is_finished() {
            let _ = self.writer.write_all(&self.rest).await;
        }
        tokio::time::timeout(Duration::from_secs(30), self.answer)
            .await
            .expect("an answer within 30 s")
            .expect("the reader task")
    }
}

async fn concurrent_uploads_of_one_user_never_pass_the_quota(backend: TestBackend) {
    let staging = |app: &TestApp| {
        crate::helpers::files_under(&app.options.store.media_dir.join(".staging")).len()
    };
    // Each case: quotas, then how many of twelve concurrent 3000-byte uploads fit.
    for (bytes, files, fit) in [(0, 3, 3), (10_000, 0, 3)] {
        let app = app_with_quota(backend, bytes, files).await;
        let file = text(3000);
        let mut held = Vec::new();
        for _ in 0..12 {
            held.push(HeldUpload::start(port(&app), ALICE, &file, 2000, true).await);
        }
        // Every upload is either refused or has its file staged (so all of them overlap).
        let answered = |held: &[HeldUpload]| held.iter().filter(|u| u.answer.is_finished()).count();
        eventually(
            "every upload refused or staged",
            Duration::from_secs(20),
            || {
                let seen = answered(&held) + staging(&app);
                async move { seen >= 12 }
            },
        )
        .await;
        let mut statuses = Vec::new();
        for upload in held {
            statuses.push(upload.finish().await);
        }
        let stored = statuses.iter().filter(|s| s.contains(" 201 ")).count();
        let refused = statuses.iter().filter(|s| s.contains(" 413 ")).count();
        let label = format!("bytes {bytes}, files {files}: {statuses:?}");
        assert_eq!((stored, refused), (fit, 12 - fit), "{label}");
        let (ids, total) = holdings(&app, ALICE).await;
        assert_eq!((ids.len(), total), (fit, 3000 * fit as u64), "{label}");
        assert_eq!(app.objects().len(), fit, "{label}: {:?}", app.objects());
        assert_eq!(app.reservations().await, 0, "{label}");
        app.stop().await;
    }
}

async fn a_streamed_upload_stops_at_the_quota_and_a_declared_one_before_its_body(
    backend: TestBackend,
) {
    let quota: usize = 256 * 1024;
    let app = app_with_quota(backend, quota as u64, 0).await;
    app.upload_ok_as(ALICE, "/api/upload", "first.txt", &text(128 * 1024))
        .await;
    let objects = app.objects();

    // Chunked: nothing declared, up to 512 MiB sent in 64 KiB chunks until the service answers
    // (the socket buffers hold a few MiB: far less than that). Once the handler has let go of
    // the body, actix reads and drops what still comes while the refusal is finished (its
    // reservation released), so a loaded machine lets a few hundred MiB through first.
    let chunk = text(64 * 1024);
    let total = 512 * 1024 * 1024;
    let mut upload = HeldUpload::start(port(&app), ALICE, b"q", 1, false).await;
    let mut sent = 0;
    while sent < total && !upload.answer.is_finished() {
        upload.send(&chunk, false).await;
        sent += chunk.len();
        tokio::task::yield_now().await;
    }
    let status = upload.finish().await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(
        sent < total,
        "the service answered before the whole body came ({sent} bytes sent)"
    );
    assert_eq!(app.objects(), objects, "nothing stored or staged");
    assert_eq!(app.reservations().await, 0);

    // Declared over what is left: refused with nothing of the file sent.
    let over = text(quota);
    let upload = HeldUpload::start(port(&app), ALICE, &over, 0, true).await;
    let status = tokio::time::timeout(Duration::from_secs(10), upload.answer)
        .await
        .expect("an answer before the body")
        .expect("the reader task");
    assert!(status.contains(" 413 "), "{status}");
    assert_eq!(app.objects(), objects);

    // What is left still fits, to the byte, declared or streamed.
    let left = quota - 128 * 1024;
    let status = HeldUpload::start(port(&app), ALICE, &text(left - 10), 100, false)
        .await
        .finish()
        .await;
    assert!(status.contains(" 201 "), "{status}");
    app.upload_ok_as(ALICE, "/api/upload", "last.txt", &text(10))
        .await;
    assert_eq!(holdings(&app, ALICE).await.1, quota as u64);
    assert_eq!(app.reservations().await, 0);
}
