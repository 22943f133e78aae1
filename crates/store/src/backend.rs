//! The backend an [`crate::ObjectStore`] hands its operations to, and what its clones share:
//! the staging directory, where [`crate::StagedObject`]s are written on both backends.

use std::path::PathBuf;

use crate::fs::FsStore;

/// The backend `MEDIA_STORE` chose.
pub(crate) enum Backend {
    /// A local directory.
    Fs(FsStore),
    /// An S3 bucket.
    #[cfg(feature = "s3")]
    S3(crate::s3::S3Store),
}

/// The backend and staging directory an object store's clones (and its staged objects) share.
pub(crate) struct Shared {
    /// Where staged objects are written.
    pub(crate) staging: PathBuf,
    /// Where objects live.
    pub(crate) backend: Backend,
}
