//! Hostile load on media: one user uploads as fast as eight connections go, far past their quota
//! (`MEDIA_QUOTA_BYTES`), then tries a large declared upload and an endless streamed one; another
//! user uploads and downloads pictures alongside. Every platform process runs on real backends
//! (PostgreSQL, RabbitMQ, S3), all through the gateway.
//!
//! Past the quota every upload is a 413 `payload_too_large` naming the quota, and nothing is kept
//! past it: the attacker's stored bytes stay within the quota, every object in the bucket belongs
//! to a row, nothing stays staged. The other user gets a 2xx for every upload and download.
//! media-service's peak RSS (`VmHWM`) stays under [`RSS_BOUND`]. HTML and SVG, which the
//! operator lets in here, are served as sandboxed attachments.

use std::{collections::BTreeSet, path::Path, time::Duration, time::Instant};

use e2e::{Platform, Session, Tuning};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The attacker's quota.
const QUOTA: u64 = 8 * 1024 * 1024;
/// The size of each of the attacker's files.
const FILE: usize = 512 * 1024;
/// How many uploads the attacker tries (sixteen times the quota).
const ATTEMPTS: usize = 256;
/// The attacker's connections.
const CONNECTIONS: usize = 8;
/// media-service's peak RSS bound during the whole run.
const RSS_BOUND: u64 = 160 * 1024 * 1024;

fn text(len: usize) -> Vec<u8> {
    vec![b'x'; len]
}

fn png(len: usize, fill: u8) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(len, fill);
    bytes
}

/// Uploads `content` as `name` for `session`; the status and the JSON answer.
async fn upload(
    client: &reqwest::Client,
    gateway: &str,
    session: &Session,
    name: &str,
    content: Vec<u8>,
) -> (u16, Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(content).file_name(name.to_owned()),
    );
    let response = client
        .post(format!("{gateway}/api/upload"))
        .bearer_auth(&session.access_token)
        .multipart(form)
        .send()
        .await
        .expect("the upload answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A 413 for the quota, with the contract's body.
fn assert_over_quota(status: u16, body: &Value, label: &str) {
    assert_eq!(status, 413, "{label}: {body}");
    assert_eq!(
        body["error"]["code"], "payload_too_large",
        "{label}: {body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("quota"), "{label}: {message}");
}

/// How an endless upload ended.
struct Endless {
    /// The status line the client got.
    status: String,
    /// The bytes of file sent.
    sent: u64,
    /// Whether a write stalled for 5 s (nobody read the body any more) with no answer come.
    stalled: bool,
}

/// Sends a chunked upload of up to `total` bytes of text to `/api/upload` through the gateway,
/// stopping once an answer came or once a write stalls for 5 s (then the body is ended with the
/// connection's write side, and the answer awaited).
async fn endless_upload(gateway: &str, session: &Session, total: u64) -> Endless {
    let address = gateway.trim_start_matches("http://");
    let stream = TcpStream::connect(address).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut answer = tokio::spawn(async move {
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
    let boundary = "e2e-endless-boundary";
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        session.access_token
    );
    let part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"endless.txt\"\r\n\r\n"
    );
    let chunk = text(256 * 1024);
    let mut sent = 0;
    let mut ok = writer.write_all(head.as_bytes()).await.is_ok()
        && writer
            .write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes())
            .await
            .is_ok();
    let mut stalled = false;
    let mut early = None;
    while ok && sent < total {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        // The answer may come while a write is blocked (nobody reads the rest of the body once
        // it is answered): it ends the upload as soon as it comes.
        tokio::select! {
            biased;
            status = &mut answer => {
                early = Some(status.expect("the reader task"));
                break;
            }
            written = tokio::time::timeout(Duration::from_secs(5), writer.write_all(&framed)) => {
                match written {
                    Ok(written) => ok = written.is_ok(),
                    Err(_) => {
                        stalled = true;
                        break;
                    }
                }
            }
        }
        sent += chunk.len() as u64;
    }
    let _ = writer.shutdown().await;
    let status = match early {
        Some(status) => status,
        None => tokio::time::timeout(Duration::from_secs(60), answer)
            .await
            .expect("an answer within 60 s")
            .expect("the reader task"),
    };
    Endless {
        status,
        sent,
        stalled,
    }
}

/// The ids and total size of what `session` owns.
async fn holdings(
    client: &reqwest::Client,
    gateway: &str,
    session: &Session,
) -> (Vec<String>, u64) {
    let items: Vec<Value> = client
        .get(format!("{gateway}/api/media?limit=1000"))
        .bearer_auth(&session.access_token)
        .send()
        .await
        .expect("the list answers")
        .json()
        .await
        .expect("a list");
    let ids = items
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect();
    let size = items
        .iter()
        .map(|item| item["size"].as_u64().expect("size"))
        .sum();
    (ids, size)
}

/// Files under `root`, as relative paths.
fn files_under(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// A download answered by media-service as a sandboxed attachment.
fn assert_sandboxed_attachment(response: &reqwest::Response, label: &str) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        header("content-disposition").starts_with("attachment;"),
        "{label}: {:?}",
        response.headers()
    );
    assert!(
        header("content-security-policy").contains("sandbox"),
        "{label}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff", "{label}");
}

#[tokio::test]
async fn one_user_past_their_quota_is_refused_while_another_keeps_uploading() {
    testing::skip_unless!(Postgres, Redis, RabbitMq, S3sFs);
    let root = std::env::temp_dir().join(format!(
        "platform-e2e-media-load-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let s3 = crate::journey::S3::start().await;
    let backends = s3.backends.clone();
    let media_dir = root.join("media");
    let media = |key: &str, value: String| ("media".to_owned(), key.to_owned(), value);
    let tuning = Tuning {
        env: vec![
            media("MEDIA_QUOTA_BYTES", QUOTA.to_string()),
            media("MEDIA_DIR", media_dir.display().to_string()),
            // The default list, and HTML and XML.
            media(
                "MEDIA_ALLOWED_TYPES",
                "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,\
                 text/html,text/xml"
                    .to_owned(),
            ),
        ],
        gateway_server: String::new(),
    };
    let mut platform = Platform::processes_tuned(&backends, &tuning)
        .await
        .expect("every process starts");
    let gateway = platform.gateway.clone();
    let client = reqwest::Client::new();
    let attacker = platform.sign_up("Mallory").await;
    let user = platform.sign_up("Alice").await;
    let rss_before = platform.process("media").rss_bytes();

    // The attack: eight connections of uploads until ATTEMPTS were made.
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let attack = async {
        let workers = (0..CONNECTIONS).map(|_| async {
            let mut answers = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < ATTEMPTS {
                answers.push(upload(&client, &gateway, &attacker, "flood.txt", text(FILE)).await);
            }
            answers
        });
        futures_util::future::join_all(workers).await.concat()
    };
    // Alongside: the other user's pictures, each uploaded then downloaded.
    let normal = async {
        let mut statuses = Vec::new();
        for n in 0..12_u8 {
            let (status, body) = upload(
                &client,
                &gateway,
                &user,
                &format!("holiday-{n}.png"),
                png(40_000, n),
            )
            .await;
            statuses.push(status);
            if let Some(url) = body["file"]["url"].as_str() {
                let url = if url.starts_with('/') {
                    format!("{gateway}{url}")
                } else {
                    url.to_owned()
                };
                let download = client.get(url).send().await.expect("the download answers");
                statuses.push(download.status().as_u16());
            }
        }
        statuses
    };
    let (answers, normal_statuses) = tokio::join!(attack, normal);
    let attack_secs = started.elapsed().as_secs_f64();
    assert!(
        normal_statuses
            .iter()
            .all(|status| (200..300).contains(status)),
        "the other user's uploads and downloads: {normal_statuses:?}"
    );
    assert_eq!(
        normal_statuses.len(),
        24,
        "every upload gave a URL: {normal_statuses:?}"
    );

    let stored = answers.iter().filter(|(status, _)| *status == 201).count();
    for (status, body) in answers.iter().filter(|(status, _)| *status != 201) {
        assert_over_quota(*status, body, "an attacker upload");
    }
    let (attacker_ids, attacker_bytes) = holdings(&client, &gateway, &attacker).await;
    assert_eq!(attacker_ids.len(), stored, "one row per 201");
    assert!(
        attacker_bytes <= QUOTA,
        "{attacker_bytes} bytes stored, quota {QUOTA}"
    );
    assert!(
        attacker_bytes + 2 * FILE as u64 > QUOTA,
        "the attack filled the quota: {attacker_bytes} bytes"
    );

    // Declared over the quota: refused (before the body, nothing stored).
    let (status, body) = upload(
        &client,
        &gateway,
        &attacker,
        "big.txt",
        text(4 * 1024 * 1024),
    )
    .await;
    assert_over_quota(status, &body, "a declared 4 MiB upload");
    // Streamed without a length: media-service refuses it at the first chunk past the quota
    // and stops reading; the client is not left waiting, and sends far less than it meant to.
    let media_url = platform.services["media"].clone();
    let over_quota = || {
        e2e::metric(
            &media_url,
            "media_uploads_total",
            &[("outcome", "over_quota")],
        )
    };
    let refused_before = over_quota().await;
    let endless = endless_upload(&gateway, &attacker, 256 * 1024 * 1024).await;
    assert_eq!(
        over_quota().await,
        refused_before + 1.0,
        "media refused the endless upload"
    );
    assert!(
        endless.status.contains(" 413 "),
        "the endless upload: {}",
        endless.status
    );
    // The gateway relays media's early answer while the body is still coming: the client is
    // never left writing into a connection nobody reads.
    assert!(
        !endless.stalled,
        "the 413 came only after the client stopped sending ({} KiB sent)",
        endless.sent / 1024
    );
    assert!(
        endless.sent < 256 * 1024 * 1024,
        "the endless upload was cut ({} bytes sent)",
        endless.sent
    );

    // The operator lets HTML and XML in: they are saved, never shown, and sandboxed.
    let html = b"<!DOCTYPE HTML><html><script>alert(document.cookie)</script></html>".to_vec();
    let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"
        .to_vec();
    let bare_svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec();
    for (name, content, content_type) in [
        ("page.html", html, "text/html"),
        ("drawing.svg", svg, "text/xml"),
        ("bare.svg", bare_svg, "text/plain"),
    ] {
        let (status, body) = upload(&client, &gateway, &user, name, content.clone()).await;
        assert_eq!(status, 201, "{name}: {body}");
        assert_eq!(body["file"]["type"], content_type, "{name}");
        let url = body["file"]["url"].as_str().expect("a url");
        assert!(
            url.starts_with("/api/media/"),
            "{name} is served by media-service: {url}"
        );
        let whole = client
            .get(format!("{gateway}{url}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(whole.status(), 200, "{name}");
        assert_sandboxed_attachment(&whole, name);
        assert_eq!(
            whole.bytes().await.expect("bytes").as_ref(),
            content.as_slice()
        );
        let ranged = client
            .get(format!("{gateway}{url}"))
            .header("range", "bytes=0-4")
            .send()
            .await
            .expect("GET range");
        assert_eq!(ranged.status(), 206, "{name}");
        assert_sandboxed_attachment(&ranged, &format!("{name}, ranged"));
    }

    // Nothing kept past the quota: every object belongs to a row, nothing stays staged.
    let (user_ids, _) = holdings(&client, &gateway, &user).await;
    let rows: BTreeSet<String> = attacker_ids.iter().chain(&user_ids).cloned().collect();
    let objects = files_under(&s3.root().join(&backends.s3_bucket));
    let owners: BTreeSet<String> = objects
        .iter()
        .filter_map(|key| key.split('/').next().map(str::to_owned))
        .collect();
    assert!(
        owners.is_subset(&rows),
        "objects without a row: {:?}",
        owners.difference(&rows)
    );
    let originals = objects
        .iter()
        .filter(|key| !key.ends_with("/thumbnail.png"))
        .count();
    assert_eq!(originals, rows.len(), "one object per row: {objects:?}");
    assert_eq!(
        files_under(&media_dir.join(".staging")),
        Vec::<String>::new()
    );

    let peak = platform.process("media").peak_rss_bytes();
    let refused = answers.len() - stored;
    eprintln!(
        "media hostile load: {} uploads of {} KiB on {CONNECTIONS} connections in {attack_secs:.1} s: \
         {stored} stored ({attacker_bytes} bytes, quota {QUOTA}), {refused} refused with 413; \
         the other user: {} uploads and downloads, all 2xx; endless upload: {:?} after {} KiB sent \
         (stalled: {}); \
         media RSS {} MiB before, peak {} MiB",
        answers.len(),
        FILE / 1024,
        normal_statuses.len(),
        endless.status,
        endless.sent / 1024,
        endless.stalled,
        rss_before / (1024 * 1024),
        peak / (1024 * 1024),
    );
    assert!(
        peak < RSS_BOUND,
        "media-service peak RSS {} MiB, bound {} MiB",
        peak / (1024 * 1024),
        RSS_BOUND / (1024 * 1024)
    );
    platform
        .stop(Duration::from_secs(15))
        .expect("every process exits 0 on SIGTERM");
    drop(s3);
    let _ = std::fs::remove_dir_all(&root);
}
