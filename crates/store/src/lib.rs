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
//!
//! # Cargo feature
//!
//! `s3` (on by default) compiles the S3 backend and the AWS SDK. Without it only `fs` runs:
//! `MEDIA_STORE=s3` is still parsed, and [`ObjectStore::connect`] refuses it with one line
//! saying the build has no S3 support. Errors never name an AWS type: [`StoreError`] carries
//! backend failures as an [`anyhow::Error`].
//!
//! # Modules (private; everything public is re-exported here)
//!
//! | module | holds |
//! |---|---|
//! | `args` | [`StoreKind`], [`StoreArgs`]: the flags and variables |
//! | `error` | [`StoreError`] |
//! | `key` | [`validate_key`] |
//! | `range` | [`ByteRange`], [`ObjectRead`], [`ByteStreamBox`]: reads, whole or ranged |
//! | `object_store` | [`ObjectStore`] (validates keys, picks the backend), [`Presign`] |
//! | `backend` | the backend enum and what a store's clones and staged objects share |
//! | `staged` | [`StagedObject`], the staging directory and the removal of stale staged files |
//! | `fs` | the local backend: files under `MEDIA_DIR` |
//! | `s3` | the S3 backend and the sorting of SDK errors (feature `s3`) |

mod args;
mod backend;
mod error;
mod fs;
mod key;
mod object_store;
mod range;
#[cfg(feature = "s3")]
mod s3;
mod staged;

pub use args::{StoreArgs, StoreKind};
pub use error::StoreError;
pub use key::validate_key;
pub use object_store::{ObjectStore, Presign};
pub use range::{ByteRange, ByteStreamBox, ObjectRead};
pub use staged::StagedObject;
