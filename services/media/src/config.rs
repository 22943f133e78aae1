//! The media service's own flags (docs/contracts.md, "Configuration"), beside the common ones, the
//! store's ([`store::StoreArgs`]) and the queue's ([`queue::QueueArgs`]).

use std::path::{Path, PathBuf};

use anyhow::bail;

/// The types accepted by default: raster images, PDF and plain text.
pub const DEFAULT_ALLOWED_TYPES: &str =
    "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain";

/// The bytes one user may keep by default (1 GiB: two hundred uploads at the default limit).
pub const DEFAULT_QUOTA_BYTES: u64 = 1024 * 1024 * 1024;
/// The files one user may keep by default.
pub const DEFAULT_QUOTA_FILES: u64 = 1000;

/// Limits, quotas, download URLs and their signing.
#[derive(clap::Args, Debug, Clone)]
pub struct MediaArgs {
    /// Largest file accepted, in bytes (default 5 MiB); larger uploads get 413
    #[arg(long, env = "MEDIA_MAX_BYTES", default_value_t = 5 * 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub max_bytes: u64,
    /// Lifetime of a download URL, in seconds (at most 7 days, S3's limit)
    #[arg(long, env = "MEDIA_URL_TTL_SECS", default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub url_ttl_secs: u64,
    /// Content types accepted, comma-separated (decided from the bytes, not the client's claim)
    #[arg(long, env = "MEDIA_ALLOWED_TYPES", value_delimiter = ',',
        default_value = DEFAULT_ALLOWED_TYPES)]
    pub allowed_types: Vec<String>,
    /// Key of the service's signed download URLs (at least 32 bytes); unset: generated once and
    /// kept in MEDIA_SIGNING_KEY_FILE
    #[arg(long, env = "MEDIA_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
    /// Where the generated signing key is kept (when MEDIA_SIGNING_KEY is unset)
    #[arg(
        long,
        env = "MEDIA_SIGNING_KEY_FILE",
        default_value = "data/media-signing.key"
    )]
    pub signing_key_file: PathBuf,
    /// Prefix of the service's download URLs (e.g. `http://localhost:3000`); unset: URLs are
    /// absolute paths (`/api/media/<id>/content?…`), which work through the gateway
    #[arg(long, env = "MEDIA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Bytes one user may keep (stored files plus uploads in progress; admins too); over it
    /// uploads get 413. 0: no limit
    #[arg(long, env = "MEDIA_QUOTA_BYTES", default_value_t = DEFAULT_QUOTA_BYTES)]
    pub quota_bytes: u64,
    /// Files one user may keep (stored plus uploads in progress; admins too); over it uploads
    /// get 413. 0: no limit
    #[arg(long, env = "MEDIA_QUOTA_FILES", default_value_t = DEFAULT_QUOTA_FILES)]
    pub quota_files: u64,
}

impl MediaArgs {
    /// The defaults, with the signing key file under `data_dir`.
    pub fn embedded(data_dir: &Path) -> Self {
        Self {
            max_bytes: 5 * 1024 * 1024,
            url_ttl_secs: 3600,
            allowed_types: DEFAULT_ALLOWED_TYPES
                .split(',')
                .map(str::to_owned)
                .collect(),
            signing_key: None,
            signing_key_file: data_dir.join("media-signing.key"),
            public_url: None,
            quota_bytes: DEFAULT_QUOTA_BYTES,
            quota_files: DEFAULT_QUOTA_FILES,
        }
    }

    /// Refuses an empty allow-list, or types the service can never detect.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.allowed_types.iter().all(|t| t.trim().is_empty()) {
            bail!("MEDIA_ALLOWED_TYPES: at least one content type is needed");
        }
        for wanted in &self.allowed_types {
            let wanted = wanted.trim();
            if !wanted.is_empty() && !crate::domain::is_detectable(wanted) {
                bail!("MEDIA_ALLOWED_TYPES: {wanted} is not a type detected from file contents");
            }
        }
        Ok(())
    }

    /// Whether uploads of `content_type` are accepted.
    pub fn allows(&self, content_type: &str) -> bool {
        self.allowed_types
            .iter()
            .any(|allowed| allowed.trim().eq_ignore_ascii_case(content_type))
    }
}
