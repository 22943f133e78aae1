//! The local backend: objects are files under `MEDIA_DIR`, one directory level per key
//! component; writes are staged files renamed into place.

use std::{
    io,
    path::{Path, PathBuf},
};

use anyhow::Context;
use bytes::Bytes;
use futures_util::stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{ByteRange, ObjectRead, StoreError};

/// Read buffer of streamed file reads.
const READ_CHUNK: usize = 64 * 1024;

/// Objects under a directory.
pub(crate) struct FsStore {
    /// `MEDIA_DIR`.
    root: PathBuf,
    /// Where staged uploads (and the readiness probe's file) are written.
    staging: PathBuf,
}

impl FsStore {
    /// The store under `root`, staging in `staging` (both exist).
    pub(crate) fn new(root: PathBuf, staging: PathBuf) -> Self {
        Self { root, staging }
    }

    /// The file of `key` (a validated key).
    fn path(&self, key: &str) -> PathBuf {
        key.split('/')
            .fold(self.root.clone(), |path, component| path.join(component))
    }

    /// Moves a staged file into place under `key`, creating the key's directories.
    pub(crate) async fn publish(&self, staged: &Path, key: &str) -> Result<(), StoreError> {
        let target = self.path(key);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .with_context(|| format!("creating {}", parent.display()))
                .map_err(StoreError::Other)?;
        }
        tokio::fs::rename(staged, &target)
            .await
            .with_context(|| format!("moving the upload to {}", target.display()))
            .map_err(StoreError::Other)?;
        Ok(())
    }

    /// The whole file of `key`.
    pub(crate) async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        match tokio::fs::read(self.path(key)).await {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(key.to_owned()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Whether `key` is a file.
    pub(crate) async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(metadata) => Ok(metadata.is_file()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes the file of `key` (a missing one is fine), then its directories once empty.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        // The key's directories, once empty (never the root itself).
        let mut dir = path.parent();
        while let Some(parent) = dir.filter(|d| *d != self.root) {
            if tokio::fs::remove_dir(parent).await.is_err() {
                break;
            }
            dir = parent.parent();
        }
        Ok(())
    }

    /// The root is a writable directory: a probe file is written and removed.
    pub(crate) async fn check(&self) -> anyhow::Result<()> {
        let probe = self
            .staging
            .join(format!("{}.probe", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&probe, b"ok")
            .await
            .with_context(|| format!("MEDIA_DIR {} is not writable", self.root.display()))?;
        tokio::fs::remove_file(&probe).await?;
        Ok(())
    }

    /// A streamed read of the file, or of `range` of it.
    pub(crate) async fn read(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectRead, StoreError> {
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use futures_util::StreamExt;
    use slog::Logger;

    use crate::{
        ObjectStore, Presign, StoreArgs,
        staged::{STAGING_DIR, STALE_STAGED},
    };

    use super::*;

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
        assert_eq!(store.kind(), "fs");
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
