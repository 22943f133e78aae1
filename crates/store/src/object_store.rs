//! [`ObjectStore`]: the handle every caller holds; it validates keys and hands each operation
//! to the backend `MEDIA_STORE` chose ([`crate::fs`], or the `s3` module with the `s3` feature).

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use bytes::Bytes;
use slog::Logger;

use crate::{
    ByteRange, ObjectRead, StagedObject, StoreArgs, StoreError, StoreKind,
    backend::{Backend, Shared},
    fs::FsStore,
    staged::{STAGING_DIR, STALE_STAGED, remove_stale_staged},
    validate_key,
};

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
    /// The backend and staging directory, shared by the clones and their staged objects.
    inner: Arc<Shared>,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("kind", &self.kind())
            .finish()
    }
}

/// The start-up error of `MEDIA_STORE=s3` in a build without the `s3` feature.
#[cfg(not(feature = "s3"))]
const NO_S3: &str = "MEDIA_STORE=s3, but this build has no S3 support (the store crate's `s3` \
                     feature is off): use MEDIA_STORE=fs or a build with the feature";

impl ObjectStore {
    /// Opens the store `args` describe: creates the fs root, or builds the S3 client and
    /// creates the bucket when missing (unless disabled). An unreachable S3 does not fail the
    /// start: it is logged, `check` reports it, and the bucket is created once S3 answers.
    /// `MEDIA_STORE=s3` in a build without the `s3` feature fails with one line saying so.
    pub async fn connect(args: &StoreArgs, logger: Logger) -> anyhow::Result<Self> {
        #[cfg(not(feature = "s3"))]
        if args.media_store == StoreKind::S3 {
            anyhow::bail!(NO_S3);
        }
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
                Backend::Fs(FsStore::new(args.media_dir.clone(), staging.clone()))
            }
            #[cfg(feature = "s3")]
            StoreKind::S3 => Backend::S3(crate::s3::S3Store::connect(args, &logger).await?),
            #[cfg(not(feature = "s3"))]
            StoreKind::S3 => unreachable!("refused above"),
        };
        Ok(Self {
            inner: Arc::new(Shared { staging, backend }),
        })
    }

    /// The backend.
    fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// `fs` or `s3`.
    pub fn kind(&self) -> &'static str {
        match self.backend() {
            Backend::Fs(_) => "fs",
            #[cfg(feature = "s3")]
            Backend::S3(_) => "s3",
        }
    }

    /// Writes a whole object (replacing any object with this key).
    pub async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        match self.backend() {
            // A rename is what makes an fs write atomic: stage, then commit.
            Backend::Fs(_) => {
                let mut staged = self.stage().await?;
                staged.write(&body).await?;
                staged.commit(key, content_type).await
            }
            #[cfg(feature = "s3")]
            Backend::S3(s3) => s3.put(key, body, content_type).await,
        }
    }

    /// Starts a streamed write: a temporary file, removed unless committed.
    pub async fn stage(&self) -> Result<StagedObject, StoreError> {
        StagedObject::create(Arc::clone(&self.inner)).await
    }

    /// The whole object (fine for thumbnails, not for large files).
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        validate_key(key)?;
        match self.backend() {
            Backend::Fs(fs) => fs.get(key).await,
            #[cfg(feature = "s3")]
            Backend::S3(s3) => s3.get(key).await,
        }
    }

    /// A streamed read of the object, or of `range` of it.
    pub async fn read(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectRead, StoreError> {
        validate_key(key)?;
        match self.backend() {
            Backend::Fs(fs) => fs.read(key, range).await,
            #[cfg(feature = "s3")]
            Backend::S3(s3) => s3.read(key, range).await,
        }
    }

    /// Whether an object has this key.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        validate_key(key)?;
        match self.backend() {
            Backend::Fs(fs) => fs.exists(key).await,
            #[cfg(feature = "s3")]
            Backend::S3(s3) => s3.exists(key).await,
        }
    }

    /// Removes an object; removing a missing one succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        match self.backend() {
            Backend::Fs(fs) => fs.delete(key).await,
            #[cfg(feature = "s3")]
            Backend::S3(s3) => s3.delete(key).await,
        }
    }

    /// A presigned GET URL for the object (S3); `None` on fs.
    #[cfg_attr(not(feature = "s3"), allow(unused_variables))]
    pub async fn presigned_get(
        &self,
        key: &str,
        presign: &Presign,
    ) -> Result<Option<String>, StoreError> {
        validate_key(key)?;
        match self.backend() {
            Backend::Fs(_) => Ok(None),
            #[cfg(feature = "s3")]
            Backend::S3(s3) => s3.presigned_get(key, presign).await.map(Some),
        }
    }

    /// Whether the store answers (for `/readyz`): the fs root is a writable directory, or the
    /// bucket exists (created first if needed) within 3 s.
    pub async fn check(&self) -> anyhow::Result<()> {
        let outcome = tokio::time::timeout(Duration::from_secs(3), async {
            match self.backend() {
                Backend::Fs(fs) => fs.check().await,
                #[cfg(feature = "s3")]
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

impl runtime::Probe for ObjectStore {
    fn probe(&self) -> runtime::ProbeFuture<'_> {
        Box::pin(self.check())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the `s3` feature, asking for S3 fails at start with one line that says why,
    /// before anything is created on disk.
    #[cfg(not(feature = "s3"))]
    #[tokio::test]
    async fn s3_without_the_feature_is_refused_at_start() {
        let dir = std::env::temp_dir().join(format!("platform-store-{}", uuid::Uuid::new_v4()));
        let mut args = StoreArgs::embedded(&dir);
        args.media_store = StoreKind::S3;
        args.s3_bucket = Some("media".to_owned());
        let error = ObjectStore::connect(&args, Logger::root(slog::Discard, slog::o!()))
            .await
            .expect_err("no S3 in this build");
        let message = format!("{error:#}");
        assert!(
            message.contains("MEDIA_STORE=s3") && message.contains("`s3` feature"),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
        assert!(!dir.exists(), "nothing created");
    }

    /// With the feature, `MEDIA_STORE=s3` gets past the build check to S3's own settings.
    #[cfg(feature = "s3")]
    #[tokio::test]
    async fn s3_with_the_feature_reads_its_settings() {
        let dir = std::env::temp_dir().join(format!("platform-store-{}", uuid::Uuid::new_v4()));
        let mut args = StoreArgs::embedded(&dir);
        args.media_store = StoreKind::S3;
        let error = ObjectStore::connect(&args, Logger::root(slog::Discard, slog::o!()))
            .await
            .expect_err("no bucket");
        assert!(
            format!("{error:#}").contains("S3_BUCKET is required"),
            "{error:#}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
