//! Spawning media-service the way the binary does (port 0, a fresh database, a fresh data
//! directory), on the fs store or on a real S3-compatible server (`s3s-fs`, started per test
//! with SigV4 credentials), and building multipart bodies byte by byte.
//!
//! A test app's `client` (and so `get`, `delete`, `upload`…) sends the token of [`ADMIN`]: the
//! tests of uploads, downloads and stores act as an admin, and those of who may do what
//! (`access`) choose their caller with [`TestApp::send_as`]. Signed URLs are fetched without a
//! token (they need none, and an S3 presigned URL must carry no other `Authorization`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use media_service::{Application, DEFAULT_PORT, NAME, Settings, signing::UrlSigner};
use reqwest::{Method, Response};
use runtime::{DatabaseUrl, test_logger};
use serde_json::Value;
use store::{ObjectStore, StoreKind};
use testing::{TestBackend, TestService, admin_token, fresh_database, service_settings};

pub use testing::Who;

/// The caller of the helpers that name none.
pub const ADMIN: Who = Who::Admin(1);

/// A client without proxies, redirects or default headers.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a reqwest client")
}

/// The signing key every test instance uses (so tests can forge expired URLs).
pub const SIGNING_KEY: &str = "test-signing-key-of-at-least-32-bytes!";
/// The S3 credentials s3s-fs checks.
pub const S3_ACCESS_KEY: &str = "media-test-access";
/// The S3 secret.
pub const S3_SECRET_KEY: &str = "media-test-secret-key";
/// The default limit (5 MiB).
pub const MAX: usize = 5 * 1024 * 1024;

/// Which store a test instance runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Files under the data directory.
    Fs,
    /// A fresh s3s-fs server.
    S3,
}

/// A running media-service and what it runs on.
pub struct TestApp {
    /// The server and its client.
    pub service: TestService,
    /// What it was started with.
    pub options: Settings,
    /// The S3 server, for S3 instances.
    pub s3: Option<S3Server>,
    /// A second handle on the same store, to look at objects.
    pub store: ObjectStore,
}

impl std::ops::Deref for TestApp {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.service
    }
}

/// A fresh data directory.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("media-test-{label}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// media-service on a fresh database of `backend` and a fresh `store`.
pub async fn spawn_app(backend: TestBackend, store: Store) -> TestApp {
    spawn_with(backend, store, |_| {}).await
}

/// The same, after `adjust` changed the options.
pub async fn spawn_with(
    backend: TestBackend,
    store: Store,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let data_dir = temp_dir("data");
    let mut options = Settings::embedded(&data_dir);
    options.media.signing_key = Some(SIGNING_KEY.to_owned());
    let s3 = match store {
        Store::Fs => None,
        Store::S3 => {
            let server = S3Server::start();
            server.configure(&mut options);
            Some(server)
        }
    };
    adjust(&mut options);
    start(backend, data_dir, options, s3).await
}

/// Starts an instance with exactly these options.
pub async fn start(
    backend: TestBackend,
    data_dir: PathBuf,
    options: Settings,
    s3: Option<S3Server>,
) -> TestApp {
    let database_url = fresh_database(backend)
        .await
        .expect("a fresh test database");
    start_on(database_url, data_dir, options, s3).await
}

/// Starts an instance with these options on an existing database.
pub async fn start_on(
    database_url: DatabaseUrl,
    data_dir: PathBuf,
    options: Settings,
    s3: Option<S3Server>,
) -> TestApp {
    let settings = service_settings(NAME, DEFAULT_PORT, database_url);
    let build_options = options.clone();
    let service = TestService::start(settings, test_logger(NAME), move |settings, logger| {
        Application::build(settings, build_options, logger)
    })
    .await
    .with_token(&admin_token(1));
    let store = ObjectStore::connect(&options.store, test_logger("media-test"))
        .await
        .expect("a second store handle");
    let _ = data_dir;
    TestApp {
        service,
        options,
        s3,
        store,
    }
}

impl TestApp {
    /// Uploads `content` as file `name` to `/api/upload` (as [`ADMIN`]).
    pub async fn upload(&self, name: &str, content: &[u8]) -> Response {
        self.upload_as(ADMIN, "/api/upload", name, content).await
    }

    /// Uploads `content` as file `name` to `path` (`/api/upload?visibility=public`…) as `who`.
    pub async fn upload_as(&self, who: Who, path: &str, name: &str, content: &[u8]) -> Response {
        let (content_type, body) = Multipart::new()
            .file("file", name, "application/octet-stream", content)
            .finish();
        who.sign(plain_client().post(self.url(path)))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    /// Uploads as `who` to `path` and returns the `file` object of the 201.
    pub async fn upload_ok_as(&self, who: Who, path: &str, name: &str, content: &[u8]) -> Value {
        let response = self.upload_as(who, path, name, content).await;
        assert_eq!(response.status(), 201, "uploading {name} as {who:?}");
        let body: Value = response.json().await.expect("upload JSON");
        body["file"].clone()
    }

    /// A request without a body as `who`.
    pub async fn send_as(&self, who: Who, method: Method, path: &str) -> Response {
        who.sign(plain_client().request(method, self.url(path)))
            .send()
            .await
            .expect("a response")
    }

    /// Uploads and returns the `file` object of the 201.
    pub async fn upload_ok(&self, name: &str, content: &[u8]) -> Value {
        let response = self.upload(name, content).await;
        assert_eq!(response.status(), 201, "uploading {name}");
        let body: Value = response.json().await.expect("upload JSON");
        body["file"].clone()
    }

    /// Writes `png` as media item `id`'s thumbnail (what the worker does) and returns the
    /// `thumbnail_url` the item then reads with.
    pub async fn put_thumbnail(&self, id: &str, png: Vec<u8>) -> String {
        self.store
            .put(
                &format!("{id}/thumbnail.png"),
                bytes::Bytes::from(png),
                "image/png",
            )
            .await
            .expect("a thumbnail");
        let read: Value = self
            .get(&format!("/api/media/{id}"))
            .await
            .json()
            .await
            .expect("JSON");
        read["thumbnail_url"]
            .as_str()
            .expect("a thumbnail URL")
            .to_owned()
    }

    /// `POST` of a raw body with this content type.
    pub async fn post_form(&self, path: &str, content_type: &str, body: Vec<u8>) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    /// A `GET` of a URL the service returned (a path on fs, a presigned URL on S3), without a
    /// token.
    pub async fn fetch(&self, url: &str) -> Response {
        let absolute = if url.starts_with('/') {
            self.url(url)
        } else {
            url.to_owned()
        };
        plain_client().get(absolute).send().await.expect("GET url")
    }

    /// The same with a `Range` header.
    pub async fn fetch_range(&self, url: &str, range: &str) -> Response {
        let absolute = if url.starts_with('/') {
            self.url(url)
        } else {
            url.to_owned()
        };
        plain_client()
            .get(absolute)
            .header("range", range)
            .send()
            .await
            .expect("GET range")
    }

    /// How many media rows the service lists (to an admin: all of them).
    pub async fn row_count(&self) -> u64 {
        let response = self.get("/api/media?limit=0&count=exact").await;
        assert_eq!(response.status(), 200);
        testing::total_count(&response)
    }

    /// Every object stored, as `key` paths (sorted), and any staged upload left over.
    pub fn objects(&self) -> Vec<String> {
        let mut found = match &self.s3 {
            None => files_under(&self.options.store.media_dir),
            Some(s3) => files_under(&s3.root.join(&s3.bucket)),
        };
        if self.s3.is_some() {
            // The S3 store spools uploads under MEDIA_DIR.
            found.extend(files_under(&self.options.store.media_dir));
        }
        found.sort();
        found
    }

    /// The quota reservations in the service's database (uploads in progress).
    pub async fn reservations(&self) -> i64 {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.service.settings.database_url.0)
            .await
            .expect("the service's database");
        let count = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM media_reservations")
            .fetch_one(&pool)
            .await
            .expect("the reservations");
        pool.close().await;
        count
    }

    /// A signer with the instance's key.
    pub fn signer(&self) -> UrlSigner {
        UrlSigner::new(SIGNING_KEY.as_bytes()).expect("the test key")
    }

    /// Stops the server (and its S3 server).
    pub async fn stop(self) {
        self.service.server.stop().await;
    }
}

/// Files under `root`, as `/`-separated relative paths.
pub fn files_under(root: &Path) -> Vec<String> {
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
            } else {
                let relative = path.strip_prefix(root).expect("under the root");
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

pub use testing::{eventually, free_port};

/// A PNG signature followed by `len - 8` bytes of `fill`: enough for type detection.
pub fn png(len: usize, fill: u8) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(len.max(8), fill);
    bytes
}

/// A multipart/form-data body written byte by byte (so tests control every header).
#[derive(Default)]
pub struct Multipart {
    /// The body so far.
    body: Vec<u8>,
}

/// The boundary of test bodies.
pub const BOUNDARY: &str = "media-test-boundary-7MA4YWxkTrZu0gW";

impl Multipart {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file part with `filename="…"` (quotes and backslashes escaped).
    pub fn file(self, field: &str, filename: &str, content_type: &str, content: &[u8]) -> Self {
        let escaped = filename.replace('\\', "\\\\").replace('"', "\\\"");
        let disposition = format!("form-data; name=\"{field}\"; filename=\"{escaped}\"");
        self.part(disposition.as_bytes(), Some(content_type), content)
    }

    /// A plain (non-file) field.
    pub fn text(self, field: &str, value: &str) -> Self {
        let disposition = format!("form-data; name=\"{field}\"");
        self.part(disposition.as_bytes(), None, value.as_bytes())
    }

    /// A part with this exact `Content-Disposition` value.
    pub fn part(mut self, disposition: &[u8], content_type: Option<&str>, content: &[u8]) -> Self {
        self.body
            .extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: ").as_bytes());
        self.body.extend_from_slice(disposition);
        self.body.extend_from_slice(b"\r\n");
        if let Some(content_type) = content_type {
            self.body
                .extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        self.body.extend_from_slice(b"\r\n");
        self.body.extend_from_slice(content);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// The `Content-Type` header and the body.
    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body
            .extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        (
            format!("multipart/form-data; boundary={BOUNDARY}"),
            self.body,
        )
    }
}

/// An `s3s-fs` process serving a temporary directory on a free port, with SigV4 credentials;
/// killed when dropped.
pub struct S3Server {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// Its port.
    pub port: u16,
    /// The directory it serves (`<root>/<bucket>/<key>`).
    pub root: PathBuf,
    /// The bucket the service uses.
    pub bucket: String,
    /// The process.
    child: Option<Child>,
}

impl S3Server {
    /// Starts s3s-fs and waits until it accepts connections. Fails the test when s3s-fs is not
    /// installed (`cargo install s3s-fs --version 0.14.1 --features binary --locked`).
    pub fn start() -> Self {
        let root = temp_dir("s3");
        let port = free_port();
        let child = Command::new("s3s-fs")
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "s3s-fs must be installed for the S3 tests: \
                 cargo install s3s-fs --version 0.14.1 --features binary --locked",
            );
        let mut server = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            root,
            bucket: format!("media-{}", uuid::Uuid::new_v4().simple()),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                panic!("s3s-fs exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "s3s-fs did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Points `options` at this server.
    pub fn configure(&self, options: &mut Settings) {
        options.store.media_store = StoreKind::S3;
        options.store.s3_endpoint = Some(self.endpoint.clone());
        options.store.s3_bucket = Some(self.bucket.clone());
        options.store.aws_access_key_id = Some(S3_ACCESS_KEY.to_owned());
        options.store.aws_secret_access_key = Some(S3_SECRET_KEY.to_owned());
    }

    /// Kills the server (S3 becomes unreachable).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
