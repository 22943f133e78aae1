//! [`StoreKind`] and [`StoreArgs`]: which backend runs and the flags and variables that set it
//! up (docs/contracts.md, "Configuration").

use std::path::{Path, PathBuf};

/// Where objects live.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Files under `MEDIA_DIR`.
    Fs,
    /// An S3-compatible bucket (needs the crate's `s3` feature; a build without it refuses to
    /// start with this kind).
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
