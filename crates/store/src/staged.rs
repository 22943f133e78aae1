//! Streamed writes: a [`StagedObject`] is a temporary `.part` file under the staging directory
//! that [`StagedObject::commit`] publishes under its key; dropped uncommitted, it is removed.
//! [`remove_stale_staged`] clears what a killed process left there.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use tokio::io::AsyncWriteExt;

use crate::{
    StoreError,
    backend::{Backend, Shared},
    validate_key,
};

/// The directory where staged (not yet committed) uploads are written, under the store's root.
pub(crate) const STAGING_DIR: &str = ".staging";

/// Staged files older than this were left by a process that died mid-upload; they are removed
/// at start. (Processes sharing the directory may be staging files right now: young ones stay.)
pub(crate) const STALE_STAGED: Duration = Duration::from_secs(24 * 3600);

/// An object being written: chunks go to a temporary file; [`StagedObject::commit`] publishes
/// it. Dropped without a commit (an error, a client that went away), the file is removed.
pub struct StagedObject {
    /// The store it will be committed to.
    store: Arc<Shared>,
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
    /// A new empty `.part` file in the store's staging directory, to be committed to it.
    pub(crate) async fn create(store: Arc<Shared>) -> Result<Self, StoreError> {
        let path = store
            .staging
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .with_context(|| format!("creating the staging file {}", path.display()))
            .map_err(StoreError::Other)?;
        Ok(Self {
            store,
            file: Some(file),
            path,
            written: 0,
            committed: false,
        })
    }

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
    /// left under `key` and the temporary file is removed. The content type is stored with the
    /// object on S3; the fs store keeps none.
    #[cfg_attr(not(feature = "s3"), allow(unused_variables))]
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
        match &self.store.backend {
            Backend::Fs(fs) => {
                fs.publish(&self.path, key).await?;
                self.committed = true;
                Ok(())
            }
            // Drop removes the temporary file once S3 has a copy.
            #[cfg(feature = "s3")]
            Backend::S3(s3) => {
                s3.put_file(key, content_type, &self.path, self.written)
                    .await
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
pub(crate) async fn remove_stale_staged(staging: &Path, age: Duration) -> usize {
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
