//! The media API end to end over HTTP: fs and S3 stores (a real s3s-fs server), SQLite and
//! PostgreSQL (one test binary).

mod access;
mod helpers;
mod media;
mod paging;
mod quotas;
mod s3;
mod serving;
mod streaming;
mod uploads;
