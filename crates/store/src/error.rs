//! [`StoreError`]: what a store operation fails with. Backend errors (I/O, the AWS SDK) are
//! carried as an [`anyhow::Error`] source, never as a type of the public surface.

use std::io;

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
