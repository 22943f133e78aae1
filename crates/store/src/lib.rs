//! Object storage for uploaded media and derived files (thumbnails): a directory on local disk
//! (`MEDIA_STORE=fs`, the embedded default) or an S3-compatible bucket (`MEDIA_STORE=s3`).
//!
//! media-service writes objects; the worker reads them and writes thumbnails.
//!
//! - [`StoreArgs`] (flattened into a service's clap `Config`; [`StoreArgs::embedded`] for the
//!   stack and tests) → [`ObjectStore::connect`].
//! - Whole objects: [`ObjectStore::put`], [`ObjectStore::get`], [`ObjectStore::exists`],
//!   [`ObjectStore::delete`], and [`ObjectStore::check`] for `/readyz`.
//! - Streaming writes: [`ObjectStore::stage`] gives a [`StagedObject`] backed by a temporary
//!   file; chunks are written to it as they arrive, and [`StagedObject::commit`] publishes it
//!   under its key (a rename on fs, one `PutObject` streamed from the file on S3). Dropping a
//!   staged object that was not committed removes its temporary file, so an upload that fails
//!   or whose client disconnects leaves nothing behind. Memory use does not grow with the size.
//!   Staged files a killed process left behind are removed at the next start, after a day.
//! - Streaming reads, whole or ranged: [`ObjectStore::read`] with an optional [`ByteRange`].
//! - [`ObjectStore::presigned_get`]: a presigned S3 URL (`None` on fs, where the service signs
//!   its own download URLs).
//!
//! Keys are `/`-separated relative paths (`<uuid>/<name>`); [`validate_key`] refuses anything
//! that could leave the store's root on fs (`..`, absolute paths, backslashes, control
//! characters, components starting with `.`).
//!
//! The content type of a streamed object is given at [`StagedObject::commit`], once the bytes
//! decided it; credentials are also flags (`--aws-access-key-id`, `--aws-secret-access-key`) read from the
//! same variables; `S3_CREATE_BUCKET=false` disables creating the bucket at start.

use std::{
    io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use anyhow::Context;
use aws_sdk_s3::{
    config::{
        BehaviorVersion, Credentials, Region, RequestChecksumCalculation,
        ResponseChecksumValidation, retry::RetryConfig, timeout::TimeoutConfig,
    },
    error::SdkError,
    presigning::PresigningConfig,
    primitives::ByteStream,
};
use bytes::Bytes;
use futures_util::{Stream, stream};
use slog::Logger;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Where objects live.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Files under `MEDIA_DIR`.
    Fs,
    /// An S3-compatible bucket.
    S3,
}

/// The flags and variables of the object store (docs/contracts.md, "Configuration").
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// `fs` (files under MEDIA_DIR) or `s3` (S3_ENDPOINT / S3_BUCKET)
    #[arg(long, env = "MEDIA_STORE", value_enum, default_value_t = StoreKind::Fs)]
    pub media_store: StoreKind,
    /// Root directory of the fs store (and where the S3 store spools uploads)
    #[arg(long, env = "MEDIA_DIR", default_value = "data/media")]
    pub media_dir: PathBuf,
    /// S3 endpoint URL (e.g. `http://127.0.0.1:9000`); unset: AWS's endpoint for the region
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 bucket (required with MEDIA_STORE=s3)
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 region
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Path-style bucket addressing (`endpoint/bucket/key`), as S3-compatible servers want
    #[arg(long, env = "S3_FORCE_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub s3_force_path_style: bool,
    /// Create the bucket at start when it does not exist
    #[arg(long, env = "S3_CREATE_BUCKET", default_value_t = true, action = clap::ArgAction::Set)]
    pub s3_create_bucket: bool,
    /// S3 access key; unset: the SDK's default credential chain
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub aws_access_key_id: Option<String>,
    /// S3 secret key
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub aws_secret_access_key: Option<String>,
}

impl StoreArgs {
    /// The fs store under `data_dir/media`: what the stack and tests run.
    pub fn embedded(data_dir: &Path) -> Self {
        Self {
            media_store: StoreKind::Fs,
            media_dir: data_dir.join("media"),
            s3_endpoint: None,
            s3_bucket: None,
            s3_region: "us-east-1".to_owned(),
            s3_force_path_style: true,
            s3_create_bucket: true,
            aws_access_key_id: None,
            aws_secret_access_key: None,
        }
    }
}

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No object has this key.
    #[error("no object with key {0}")]
    NotFound(String),
    /// The key is not a safe relative path.
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    /// The requested range starts beyond the object's end.
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable {
        /// The object's size.
        size: u64,
    },
    /// The store cannot be reached (S3 down, timeout): a 503 for clients.
    #[error("object store unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// Anything else (disk full, permissions, an S3 error response).
    #[error("object store error: {0:#}")]
    Other(anyhow::Error),
}

impl From<io::Error> for StoreError {
    fn from(error: io::Error) -> Self {
        Self::Other(error.into())
    }
}

/// A byte range of a read (HTTP `Range: bytes=…` semantics, end inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=start-`.
    From(u64),
    /// `bytes=start-end` (inclusive).
    FromTo(u64, u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses one `Range` header value; `None` for anything but a single valid bytes range
    /// (callers then serve the whole object, as RFC 9110 allows).
    pub fn parse_header(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let (start, end) = (start.trim(), end.trim());
        match (start.is_empty(), end.is_empty()) {
            (true, false) => end.parse().ok().map(Self::Suffix),
            (false, true) => start.parse().ok().map(Self::From),
            (false, false) => {
                let (start, end) = (start.parse().ok()?, end.parse().ok()?);
                (start <= end).then_some(Self::FromTo(start, end))
            }
            (true, true) => None,
        }
    }

    /// The inclusive `(first, last)` byte positions within an object of `size` bytes, or
    /// `None` when the range is not satisfiable.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            Self::From(start) if start < size => Some((start, size - 1)),
            Self::FromTo(start, end) if start < size => Some((start, end.min(size - 1))),
            Self::Suffix(n) if n > 0 && size > 0 => Some((size.saturating_sub(n), size - 1)),
            _ => None,
        }
    }
}

/// A stream of an object's bytes.
pub type ByteStreamBox = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An object being read.
pub struct ObjectRead {
    /// The whole object's size.
    pub size: u64,
    /// The inclusive byte positions being sent, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// The bytes.
    pub body: ByteStreamBox,
}

impl ObjectRead {
    /// How many bytes [`ObjectRead::body`] yields.
    pub fn content_length(&self) -> u64 {
        self.range
            .map_or(self.size, |(first, last)| last - first + 1)
    }
}

impl std::fmt::Debug for ObjectRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRead")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// How to presign a download URL.
#[derive(Debug, Clone)]
pub struct Presign {
    /// When the URL starts being valid (normally now).
    pub start: SystemTime,
    /// How long it stays valid.
    pub ttl: Duration,
    /// The `Content-Disposition` the store should answer with.
    pub content_disposition: Option<String>,
}

/// An object store: a directory or an S3 bucket. Cheap to clone.
#[derive(Clone)]
pub struct ObjectStore {
    /// The backend, shared by the clones.
    inner: Arc<Backend>,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("kind", &self.kind())
            .finish()
    }
}

enum Backend {
    Fs(FsStore),
    S3(S3Store),
}

/// The directory where staged (not yet committed) uploads are written, under the store's root.
const STAGING_DIR: &str = ".staging";
/// Read buffer of streamed file reads.
const READ_CHUNK: usize = 64 * 1024;
/// Staged files older than this were left by a process that died mid-upload; they are removed
/// at start. (Processes sharing the directory may be staging files right now: young ones stay.)
const STALE_STAGED: Duration = Duration::from_secs(24 * 3600);

impl ObjectStore {
    /// Opens the store `args` describe: creates the fs root, or builds the S3 client and
    /// creates the bucket when missing (unless disabled). An unreachable S3 does not fail the
    /// start: it is logged, `check` reports it, and the bucket is created once S3 answers.
    pub async fn connect(args: &StoreArgs, logger: Logger) -> anyhow::Result<Self> {
        let staging = args.media_dir.join(STAGING_DIR);
        tokio::fs::create_dir_all(&staging)
            .await
            .with_context(|| format!("creating MEDIA_DIR {}", args.media_dir.display()))?;
        let removed = remove_stale_staged(&staging, STALE_STAGED).await;
        if removed > 0 {
            slog::info!(logger, "removed uploads left staged by a stopped process";
                "files" => removed);
        }
        let backend = match args.media_store {
            StoreKind::Fs => {
                slog::info!(logger, "object store ready"; "store" => "fs",
                    "media_dir" => args.media_dir.display().to_string());
                Backend::Fs(FsStore {
                    root: args.media_dir.clone(),
                    staging,
                })
            }
            StoreKind::S3 => {
                let store = S3Store::new(args, staging, logger.clone()).await?;
                match store.ensure_bucket().await {
                    Ok(()) => slog::info!(logger, "object store ready"; "store" => "s3",
                        "bucket" => &store.bucket),
                    Err(StoreError::Unavailable(error)) => slog::warn!(logger,
                        "S3 is unreachable: uploads fail with 503 until it answers";
                        "bucket" => &store.bucket, "error" => format!("{error:#}")),
                    Err(other) => {
                        return Err(anyhow::Error::new(other).context("preparing the S3 bucket"));
                    }
                }
                Backend::S3(store)
            }
        };
        Ok(Self {
            inner: Arc::new(backend),
        })
    }

    /// `fs` or `s3`.
    pub fn kind(&self) -> &'static str {
        match &*self.inner {
            Backend::Fs(_) => "fs",
            Backend::S3(_) => "s3",
        }
    }

    /// Writes a whole object (replacing any object with this key).
    pub async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        match &*self.inner {
            // A rename is what makes an fs write atomic: stage, then commit.
            Backend::Fs(_) => {
                let mut staged = self.stage().await?;
                staged.write(&body).await?;
                staged.commit(key, content_type).await
            }
            // S3 puts are atomic already, and the bytes are in memory: no staging file.
            Backend::S3(s3) => {
                let length = i64::try_from(body.len()).unwrap_or(i64::MAX);
                s3.put_object(key, content_type, length, ByteStream::from(body))
                    .await
            }
        }
    }

    /// Starts a streamed write: a temporary file, removed unless committed.
    pub async fn stage(&self) -> Result<StagedObject, StoreError> {
        let staging = match &*self.inner {
            Backend::Fs(fs) => &fs.staging,
            Backend::S3(s3) => &s3.staging,
        };
        let path = staging.join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .with_context(|| format!("creating the staging file {}", path.display()))
            .map_err(StoreError::Other)?;
        Ok(StagedObject {
            store: self.clone(),
            file: Some(file),
            path,
            written: 0,
            committed: false,
        })
    }

    /// The whole object (fine for thumbnails, not for large files).
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        validate_key(key)?;
        match &*self.inner {
            Backend::Fs(fs) => match tokio::fs::read(fs.path(key)).await {
                Ok(bytes) => Ok(Bytes::from(bytes)),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    Err(StoreError::NotFound(key.to_owned()))
                }
                Err(error) => Err(error.into()),
            },
            Backend::S3(s3) => {
                let output = s3
                    .client
                    .get_object()
                    .bucket(&s3.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|error| classify(error, key))?;
                let bytes = output
                    .body
                    .collect()
                    .await
                    .map_err(|error| StoreError::Unavailable(error.into()))?;
                Ok(bytes.into_bytes())
            }
        }
    }

    /// A streamed read of the object, or of `range` of it.
    pub async fn read(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectRead, StoreError> {
        validate_key(key)?;
        match &*self.inner {
            Backend::Fs(fs) => fs.read(key, range).await,
            Backend::S3(s3) => s3.read(key, range).await,
        }
    }

    /// Whether an object has this key.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        validate_key(key)?;
        match &*self.inner {
            Backend::Fs(fs) => match tokio::fs::metadata(fs.path(key)).await {
                Ok(metadata) => Ok(metadata.is_file()),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(error) => Err(error.into()),
            },
            Backend::S3(s3) => match s3
                .client
                .head_object()
                .bucket(&s3.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(error) => match classify(error, key) {
                    StoreError::NotFound(_) => Ok(false),
                    other => Err(other),
                },
            },
        }
    }

    /// Removes an object; removing a missing one succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        match &*self.inner {
            Backend::Fs(fs) => {
                let path = fs.path(key);
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error.into()),
                }
                // The key's directories, once empty (never the root itself).
                let mut dir = path.parent();
                while let Some(parent) = dir.filter(|d| *d != fs.root) {
                    if tokio::fs::remove_dir(parent).await.is_err() {
                        break;
                    }
                    dir = parent.parent();
                }
                Ok(())
            }
            Backend::S3(s3) => {
                s3.client
                    .delete_object()
                    .bucket(&s3.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|error| classify(error, key))?;
                Ok(())
            }
        }
    }

    /// A presigned GET URL for the object (S3); `None` on fs.
    pub async fn presigned_get(
        &self,
        key: &str,
        presign: &Presign,
    ) -> Result<Option<String>, StoreError> {
        validate_key(key)?;
        match &*self.inner {
            Backend::Fs(_) => Ok(None),
            Backend::S3(s3) => {
                let config = PresigningConfig::builder()
                    .start_time(presign.start)
                    .expires_in(presign.ttl)
                    .build()
                    .map_err(|error| StoreError::Other(error.into()))?;
                let request = s3
                    .client
                    .get_object()
                    .bucket(&s3.bucket)
                    .key(key)
                    .set_response_content_disposition(presign.content_disposition.clone())
                    .presigned(config)
                    .await
                    .map_err(|error| StoreError::Other(error.into()))?;
                Ok(Some(request.uri().to_owned()))
            }
        }
    }

    /// Whether the store answers (for `/readyz`): the fs root is a writable directory, or the
    /// bucket exists (created first if needed) within 3 s.
    pub async fn check(&self) -> anyhow::Result<()> {
        let outcome = tokio::time::timeout(Duration::from_secs(3), async {
            match &*self.inner {
                Backend::Fs(fs) => {
                    let probe = fs
                        .staging
                        .join(format!("{}.probe", uuid::Uuid::new_v4().simple()));
                    tokio::fs::write(&probe, b"ok").await.with_context(|| {
                        format!("MEDIA_DIR {} is not writable", fs.root.display())
                    })?;
                    tokio::fs::remove_file(&probe).await?;
                    Ok(())
                }
                Backend::S3(s3) => s3.ensure_bucket().await.map_err(anyhow::Error::new),
            }
        })
        .await;
        outcome.unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the object store did not answer within 3 s"
            ))
        })
    }
}

/// An object being written: chunks go to a temporary file; [`StagedObject::commit`] publishes
/// it. Dropped without a commit (an error, a client that went away), the file is removed.
pub struct StagedObject {
    /// The store it will be committed to.
    store: ObjectStore,
    /// The open temporary file (`None` once closed).
    file: Option<tokio::fs::File>,
    /// Its path.
    path: PathBuf,
    /// Bytes written so far.
    written: u64,
    /// Set once published (the file then no longer exists under `path`, or is removed).
    committed: bool,
}

impl std::fmt::Debug for StagedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedObject")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl StagedObject {
    /// Appends a chunk.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("the staged object is closed")))?;
        file.write_all(chunk)
            .await
            .context("writing the staging file")
            .map_err(StoreError::Other)?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Publishes the bytes under `key` (replacing any object there). On failure nothing is
    /// left under `key` and the temporary file is removed.
    pub async fn commit(mut self, key: &str, content_type: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        if let Some(mut file) = self.file.take() {
            file.flush()
                .await
                .context("flushing the staging file")
                .map_err(StoreError::Other)?;
            file.sync_all()
                .await
                .context("syncing the staging file")
                .map_err(StoreError::Other)?;
        }
        match &*self.store.inner {
            Backend::Fs(fs) => {
                let target = fs.path(key);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .with_context(|| format!("creating {}", parent.display()))
                        .map_err(StoreError::Other)?;
                }
                tokio::fs::rename(&self.path, &target)
                    .await
                    .with_context(|| format!("moving the upload to {}", target.display()))
                    .map_err(StoreError::Other)?;
                self.committed = true;
                Ok(())
            }
            Backend::S3(s3) => {
                let body = ByteStream::from_path(&self.path)
                    .await
                    .map_err(|error| StoreError::Other(error.into()))?;
                let length = i64::try_from(self.written).unwrap_or(i64::MAX);
                s3.put_object(key, content_type, length, body).await?;
                // Drop removes the temporary file.
                Ok(())
            }
        }
    }
}

impl Drop for StagedObject {
    fn drop(&mut self) {
        if !self.committed {
            drop(self.file.take());
            // Synchronous on purpose: it runs when the request's future is dropped.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes the `.part` files in `staging` last written more than `age` ago; returns how many.
async fn remove_stale_staged(staging: &Path, age: Duration) -> usize {
    let Ok(mut entries) = tokio::fs::read_dir(staging).await else {
        return 0;
    };
    let mut removed = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        let stale = entry
            .metadata()
            .await
            .and_then(|metadata| metadata.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        if stale
            && path.extension().is_some_and(|ext| ext == "part")
            && tokio::fs::remove_file(&path).await.is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Refuses keys that are not plain relative paths: empty, over 1024 bytes, absolute, with
/// `\`, control characters, or an empty, `.`-leading (`.`, `..`, `.staging`) component.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = key.is_empty()
        || key.len() > 1024
        || key.contains('\\')
        || key.chars().any(char::is_control)
        || key
            .split('/')
            .any(|component| component.is_empty() || component.starts_with('.'));
    if bad {
        Err(StoreError::InvalidKey(key.to_owned()))
    } else {
        Ok(())
    }
}

struct FsStore {
    root: PathBuf,
    staging: PathBuf,
}

impl FsStore {
    fn path(&self, key: &str) -> PathBuf {
        key.split('/')
            .fold(self.root.clone(), |path, component| path.join(component))
    }

    async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<ObjectRead, StoreError> {
        let mut file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(key.to_owned()));
            }
            Err(error) => return Err(error.into()),
        };
        let metadata = file.metadata().await?;
        if !metadata.is_file() {
            return Err(StoreError::NotFound(key.to_owned()));
        }
        let size = metadata.len();
        let range = match range {
            None => None,
            Some(range) => Some(
                range
                    .resolve(size)
                    .ok_or(StoreError::RangeNotSatisfiable { size })?,
            ),
        };
        let (start, length) = range.map_or((0, size), |(first, last)| (first, last - first + 1));
        if start > 0 {
            file.seek(io::SeekFrom::Start(start)).await?;
        }
        let body = stream::unfold(
            (file.take(length), vec![0_u8; READ_CHUNK]),
            |(mut reader, mut buffer)| async move {
                match reader.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(n) => Some((Ok(Bytes::copy_from_slice(&buffer[..n])), (reader, buffer))),
                    Err(error) => Some((Err(error), (reader, buffer))),
                }
            },
        );
        Ok(ObjectRead {
            size,
            range,
            body: Box::pin(body),
        })
    }
}

struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    region: String,
    create_bucket: bool,
    /// Set once the bucket is known to exist.
    bucket_ready: AtomicBool,
    staging: PathBuf,
    logger: Logger,
}

impl S3Store {
    /// One `PutObject`: the path of every write to S3.
    async fn put_object(
        &self,
        key: &str,
        content_type: &str,
        length: i64,
        body: ByteStream,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(length)
            .body(body)
            .send()
            .await
            .map_err(|error| match classify(error, key) {
                // A 404 to a put: the bucket is missing, the store unusable.
                StoreError::NotFound(_) => StoreError::Unavailable(anyhow::anyhow!(
                    "the bucket {} does not exist",
                    self.bucket
                )),
                other => other,
            })?;
        Ok(())
    }

    async fn new(args: &StoreArgs, staging: PathBuf, logger: Logger) -> anyhow::Result<Self> {
        let bucket = args
            .s3_bucket
            .clone()
            .filter(|bucket| !bucket.is_empty())
            .context("S3_BUCKET is required with MEDIA_STORE=s3")?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .read_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(300))
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(args.s3_region.clone()))
            .force_path_style(args.s3_force_path_style)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            // Plain signed payloads: S3-compatible servers do not all take the aws-chunked
            // checksum trailers the SDK would otherwise add.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = args.s3_endpoint.as_ref().filter(|e| !e.is_empty()) {
            builder = builder.endpoint_url(endpoint);
        }
        match (&args.aws_access_key_id, &args.aws_secret_access_key) {
            (Some(access), Some(secret)) => {
                builder = builder.credentials_provider(Credentials::new(
                    access,
                    secret,
                    None,
                    None,
                    "environment",
                ));
            }
            (None, None) => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(args.s3_region.clone()))
                    .load()
                    .await;
                let provider = shared.credentials_provider().context(
                    "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                )?;
                builder = builder.credentials_provider(provider);
            }
            _ => anyhow::bail!("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither"),
        }
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket,
            region: args.s3_region.clone(),
            create_bucket: args.s3_create_bucket,
            bucket_ready: AtomicBool::new(false),
            staging,
            logger,
        })
    }

    /// Checks the bucket exists, creating it when allowed; remembered once true.
    async fn ensure_bucket(&self) -> Result<(), StoreError> {
        let head = self.client.head_bucket().bucket(&self.bucket).send().await;
        match head.map_err(|error| classify(error, &self.bucket)) {
            Ok(_) => {
                self.bucket_ready.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(StoreError::NotFound(_)) if self.create_bucket => {
                let mut request = self.client.create_bucket().bucket(&self.bucket);
                if self.region != "us-east-1" {
                    request = request.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(self.region.as_str().into())
                            .build(),
                    );
                }
                match request.send().await {
                    Ok(_) => {
                        slog::info!(self.logger, "created the S3 bucket"; "bucket" => &self.bucket);
                    }
                    Err(error) => {
                        let code = error
                            .as_service_error()
                            .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
                            .unwrap_or_default()
                            .to_owned();
                        // Another instance created it meanwhile.
                        if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
                            return Err(classify(error, &self.bucket));
                        }
                    }
                }
                self.bucket_ready.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(StoreError::NotFound(_)) => Err(StoreError::Other(anyhow::anyhow!(
                "the bucket {} does not exist (and S3_CREATE_BUCKET is false)",
                self.bucket
            ))),
            Err(other) => {
                self.bucket_ready.store(false, Ordering::Relaxed);
                Err(other)
            }
        }
    }

    async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<ObjectRead, StoreError> {
        let (size, resolved) = match range {
            None => (None, None),
            Some(range) => {
                let head = self
                    .client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|error| classify(error, key))?;
                let size = u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0);
                let resolved = range
                    .resolve(size)
                    .ok_or(StoreError::RangeNotSatisfiable { size })?;
                (Some(size), Some(resolved))
            }
        };
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(resolved.map(|(first, last)| format!("bytes={first}-{last}")))
            .send()
            .await
            .map_err(|error| classify(error, key))?;
        let size = size
            .unwrap_or_else(|| u64::try_from(output.content_length().unwrap_or(0)).unwrap_or(0));
        let body = stream::unfold(output.body, |mut body| async move {
            body.next()
                .await
                .map(|chunk| (chunk.map_err(io::Error::other), body))
        });
        Ok(ObjectRead {
            size,
            range: resolved,
            body: Box::pin(body),
        })
    }
}

/// Turns an SDK error into a [`StoreError`]: no connection or a timeout or a 5xx → unavailable,
/// 404 → not found.
fn classify<E, R>(error: SdkError<E, R>, key: &str) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static + HasStatus,
{
    match &error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(anyhow::Error::new(error).context("S3 did not answer"))
        }
        SdkError::ServiceError(service) if service.raw().status() == 404 => {
            StoreError::NotFound(key.to_owned())
        }
        SdkError::ServiceError(service) if service.raw().status() >= 500 => {
            StoreError::Unavailable(anyhow::Error::new(error).context("S3 failed"))
        }
        _ => StoreError::Other(anyhow::Error::new(error).context("S3 refused the request")),
    }
}

/// The HTTP status of a raw SDK response.
trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

impl runtime::Probe for ObjectStore {
    fn probe(&self) -> runtime::ProbeFuture<'_> {
        Box::pin(self.check())
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[test]
    fn keys_must_be_plain_relative_paths() {
        for good in ["a/b.png", "0b6e/cat picture.png", "x"] {
            assert!(validate_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/",
            ".staging/x",
            "a\\b",
            "a\0b",
            "a/\nb",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges_parse_and_resolve_like_http() {
        assert_eq!(
            ByteRange::parse_header("bytes=0-9"),
            Some(ByteRange::FromTo(0, 9))
        );
        assert_eq!(
            ByteRange::parse_header("bytes=5-"),
            Some(ByteRange::From(5))
        );
        assert_eq!(
            ByteRange::parse_header("bytes=-3"),
            Some(ByteRange::Suffix(3))
        );
        for ignored in [
            "bytes=0-1,3-4",
            "bytes=9-1",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
        ] {
            assert_eq!(ByteRange::parse_header(ignored), None, "{ignored}");
        }
        assert_eq!(ByteRange::FromTo(0, 99).resolve(10), Some((0, 9)));
        assert_eq!(ByteRange::From(10).resolve(10), None);
        assert_eq!(ByteRange::Suffix(20).resolve(10), Some((0, 9)));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::From(0).resolve(0), None);
    }

    async fn fs_store() -> (ObjectStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("platform-store-{}", uuid::Uuid::new_v4()));
        let logger = Logger::root(slog::Discard, slog::o!());
        let store = ObjectStore::connect(&StoreArgs::embedded(&dir), logger)
            .await
            .expect("fs store");
        (store, dir)
    }

    #[tokio::test]
    async fn fs_objects_round_trip_and_leave_nothing_behind() {
        let (store, dir) = fs_store().await;
        store
            .put("k1/a.txt", Bytes::from_static(b"hello world"), "text/plain")
            .await
            .expect("put");
        assert!(store.exists("k1/a.txt").await.expect("exists"));
        assert_eq!(store.get("k1/a.txt").await.expect("get"), "hello world");
        let read = store
            .read("k1/a.txt", Some(ByteRange::FromTo(6, 100)))
            .await
            .expect("read");
        assert_eq!(
            (read.size, read.range, read.content_length()),
            (11, Some((6, 10)), 5)
        );
        let chunks: Vec<_> = read.body.collect().await;
        let bytes: Vec<u8> = chunks.into_iter().flat_map(|c| c.expect("chunk")).collect();
        assert_eq!(bytes, b"world");
        assert!(matches!(
            store.read("k1/a.txt", Some(ByteRange::From(11))).await,
            Err(StoreError::RangeNotSatisfiable { size: 11 })
        ));

        let mut staged = store.stage().await.expect("stage");
        staged.write(b"partial").await.expect("write");
        drop(staged);
        let mut staged = store.stage().await.expect("stage");
        staged.write(b"kept").await.expect("write");
        staged
            .commit("k2/b.txt", "text/plain")
            .await
            .expect("commit");
        assert_eq!(store.get("k2/b.txt").await.expect("get"), "kept");
        let staging: Vec<_> = std::fs::read_dir(dir.join("media").join(STAGING_DIR))
            .expect("staging dir")
            .collect();
        assert!(staging.is_empty(), "{staging:?}");

        store.delete("k1/a.txt").await.expect("delete");
        store
            .delete("k1/a.txt")
            .await
            .expect("deleting twice is fine");
        assert!(!store.exists("k1/a.txt").await.expect("exists"));
        assert!(
            !dir.join("media").join("k1").exists(),
            "empty key directory removed"
        );
        assert!(matches!(
            store.get("k1/a.txt").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.get("../x").await,
            Err(StoreError::InvalidKey(_))
        ));
        store.check().await.expect("fs store is ready");

        // A staged file left by a dead process is removed at the next start; a young one stays.
        let staging_dir = dir.join("media").join(STAGING_DIR);
        let old = staging_dir.join("dead.part");
        let young = staging_dir.join("busy.part");
        for path in [&old, &young] {
            std::fs::write(path, b"x").expect("staged file");
        }
        std::fs::File::options()
            .write(true)
            .open(&old)
            .and_then(|file| file.set_modified(SystemTime::now() - 2 * STALE_STAGED))
            .expect("aged");
        let logger = Logger::root(slog::Discard, slog::o!());
        ObjectStore::connect(&StoreArgs::embedded(&dir), logger)
            .await
            .expect("reopened");
        assert!(!old.exists() && young.exists());
        assert_eq!(
            store
                .presigned_get(
                    "k2/b.txt",
                    &Presign {
                        start: SystemTime::now(),
                        ttl: Duration::from_secs(60),
                        content_disposition: None
                    }
                )
                .await
                .expect("presign"),
            None
        );
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}
