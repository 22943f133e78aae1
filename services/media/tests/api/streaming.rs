//! Uploads are streamed: the `media-service` binary, run as its own process so its memory can
//! be read from /proc, refuses a 1 GiB chunked upload at the limit and takes a large accepted
//! upload without its peak RSS growing with the size; a client that disconnects mid-upload
//! leaves nothing behind (its quota reservation included). The process checks tokens against a JWKS this test serves (what
//! users-service publishes), so that the uploads can be signed in.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{BOUNDARY, Store, eventually, files_under, free_port, spawn_app, temp_dir};
use testing::{TestBackend, admin_token, test_keys};

/// Serves the JWKS of the tests' signing keys on a free port, for as long as the test runs;
/// returns its URL.
async fn serve_jwks() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the JWKS");
    let address = listener.local_addr().expect("its address");
    let body = serde_json::to_string(&test_keys().jwks()).expect("JWKS JSON");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0_u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{address}/.well-known/jwks.json")
}

/// The binary, started with its data under `dir`; killed when dropped.
struct Process {
    child: Child,
    port: u16,
}

impl Process {
    fn start(dir: &Path, max_bytes: u64, jwks_url: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_media-service"))
            .current_dir(dir)
            .env_clear()
            .env("PORT", port.to_string())
            .env("AUTH_JWKS_URL", jwks_url)
            .env("MEDIA_MAX_BYTES", max_bytes.to_string())
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the media-service binary starts");
        let process = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "media-service did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    /// A `/proc/<pid>/status` value in KiB (`VmRSS`, `VmHWM`).
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("a memory figure")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a chunked multipart upload of `file_bytes` bytes (a PNG signature then zeros) to
/// `/api/upload` while reading the answer, and returns its status line. Stops sending as soon
/// as the answer came.
async fn chunked_upload(port: u16, file_bytes: u64) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
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
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        admin_token(1)
    );
    let mut first = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    first.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let zeros = vec![0_u8; 256 * 1024];
    let mut sent: u64 = 8;
    let mut ok = writer.write_all(head.as_bytes()).await.is_ok()
        && writer
            .write_all(format!("{:x}\r\n", first.len()).as_bytes())
            .await
            .is_ok()
        && writer.write_all(&first).await.is_ok()
        && writer.write_all(b"\r\n").await.is_ok();
    while ok && sent < file_bytes && !answer.is_finished() {
        let n = zeros
            .len()
            .min(usize::try_from(file_bytes - sent).unwrap_or(usize::MAX));
        ok = writer
            .write_all(format!("{n:x}\r\n").as_bytes())
            .await
            .is_ok()
            && writer.write_all(&zeros[..n]).await.is_ok()
            && writer.write_all(b"\r\n").await.is_ok();
        sent += n as u64;
    }
    if ok && !answer.is_finished() {
        let tail = format!("\r\n--{BOUNDARY}--\r\n");
        let _ = writer
            .write_all(format!("{:x}\r\n{tail}\r\n0\r\n\r\n", tail.len()).as_bytes())
            .await;
    }
    tokio::time::timeout(Duration::from_secs(60), answer)
        .await
        .expect("an answer within 60 s")
        .expect("the reader task")
}

#[tokio::test]
async fn a_1_gib_upload_is_cut_at_the_limit_with_flat_memory() {
    let dir = temp_dir("rss");
    let process = Process::start(&dir, 5 * 1024 * 1024, &serve_jwks().await);
    let before = process.status_kib("VmRSS");
    let status = chunked_upload(process.port, 1024 * 1024 * 1024).await;
    assert!(status.contains(" 413 "), "{status}");
    let peak = process.status_kib("VmHWM");
    assert!(
        peak < before + 48 * 1024,
        "peak RSS {peak} KiB grew more than 48 MiB over {before} KiB"
    );
    assert_eq!(
        files_under(&dir.join("data/media")),
        Vec::<String>::new(),
        "nothing stored or staged"
    );
    drop(process);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_large_accepted_upload_streams_to_disk() {
    let dir = temp_dir("rss-ok");
    let process = Process::start(&dir, 200 * 1024 * 1024, &serve_jwks().await);
    let before = process.status_kib("VmRSS");
    let size: u64 = 96 * 1024 * 1024;
    let status = chunked_upload(process.port, size).await;
    assert!(status.contains(" 201 "), "{status}");
    let peak = process.status_kib("VmHWM");
    assert!(
        peak < before + 48 * 1024,
        "peak RSS {peak} KiB grew more than 48 MiB over {before} KiB for a 96 MiB upload"
    );
    let stored = files_under(&dir.join("data/media"));
    assert_eq!(stored.len(), 1, "{stored:?}");
    let length = std::fs::metadata(dir.join("data/media").join(&stored[0]))
        .expect("the stored file")
        .len();
    assert_eq!(length, size);
    drop(process);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_nothing() {
    let app = spawn_app(TestBackend::Sqlite, Store::Fs).await;
    let port: u16 = app
        .address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let part = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n"
    );
    let declared = part.len() + 3 * 1024 * 1024;
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {declared}\r\n\r\n{part}",
        admin_token(1)
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&vec![b'x'; 1024 * 1024])
        .await
        .expect("a third of the file");
    let staging = app.options.store.media_dir.join(".staging");
    eventually("the upload to be staged", Duration::from_secs(10), || {
        let staging = staging.clone();
        async move { !files_under(&staging).is_empty() }
    })
    .await;
    drop(stream);
    eventually(
        "the staged upload to be removed",
        Duration::from_secs(10),
        || {
            let staging = staging.clone();
            async move { files_under(&staging).is_empty() }
        },
    )
    .await;
    assert_eq!(app.objects(), Vec::<String>::new());
    assert_eq!(app.row_count().await, 0);
    let app = &app;
    eventually(
        "the upload's quota reservation to be released",
        Duration::from_secs(10),
        || async move { app.reservations().await == 0 },
    )
    .await;
}
