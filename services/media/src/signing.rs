//! The service's signed download URLs (every download on the fs store; on S3, every file but
//! raster images): `…/content?expires=<unix seconds>&sig=<hex>`, where
//! `sig` is HMAC-SHA256 over the purpose (`content` or `thumbnail`), the media id and the expiry.
//! The key comes from `MEDIA_SIGNING_KEY`, or is generated once and kept in
//! `MEDIA_SIGNING_KEY_FILE` (so every instance sharing that file, and restarts, accept the URLs).

use std::{io::Write, path::Path};

use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use slog::Logger;

use crate::config::MediaArgs;

/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// What a signed URL gives access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The uploaded file.
    Content,
    /// Its thumbnail.
    Thumbnail,
}

impl Purpose {
    /// The path segment after the id (`content`, `thumbnail`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Content => "content",
            Self::Thumbnail => "thumbnail",
        }
    }
}

/// Signs and checks download URLs.
pub struct UrlSigner {
    /// HMAC-SHA256 with the key already absorbed; each signature starts from a clone of it
    /// instead of hashing the key's pads again.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner { key: <redacted> }")
    }
}

impl UrlSigner {
    fn keyed(key: &[u8]) -> Self {
        Self {
            keyed: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key size"),
        }
    }

    /// A signer with this key.
    pub fn new(key: impl Into<Vec<u8>>) -> anyhow::Result<Self> {
        let key = key.into();
        if key.len() < MIN_KEY_BYTES {
            bail!("MEDIA_SIGNING_KEY: at least {MIN_KEY_BYTES} bytes are needed");
        }
        Ok(Self::keyed(&key))
    }

    /// The key from `MEDIA_SIGNING_KEY`, or from the key file (created with a random key, mode
    /// 0600, when missing).
    pub fn load(args: &MediaArgs, logger: &Logger) -> anyhow::Result<Self> {
        if let Some(key) = &args.signing_key {
            return Self::new(key.as_bytes());
        }
        let path = &args.signing_key_file;
        let key = match read_key_file(path)? {
            Some(key) => key,
            None => match create_key_file(path)? {
                Some(key) => {
                    slog::info!(logger, "generated the URL signing key";
                        "file" => path.display().to_string());
                    key
                }
                // Another process created it meanwhile.
                None => {
                    read_key_file(path)?.with_context(|| format!("reading {}", path.display()))?
                }
            },
        };
        Self::new(key).with_context(|| format!("the key in {}", path.display()))
    }

    /// The hex signature of `purpose`, `id` and `expires`.
    pub fn sign(&self, purpose: Purpose, id: &str, expires: i64) -> String {
        hex::encode(self.mac(purpose, id, expires).finalize().into_bytes())
    }

    /// Whether `signature` is right for these values (compared in constant time); the expiry is
    /// checked separately.
    pub fn verify(&self, purpose: Purpose, id: &str, expires: i64, signature: &str) -> bool {
        match hex::decode(signature) {
            Ok(bytes) => self.mac(purpose, id, expires).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    fn mac(&self, purpose: Purpose, id: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(purpose.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(id.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }
}

/// 32 bytes holding 244 random bits from the OS generator (two v4 UUIDs).
fn random_key() -> Vec<u8> {
    [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|uuid| *uuid.as_bytes())
        .collect()
}

fn read_key_file(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .map(Some)
            .with_context(|| format!("{} does not hold a hex key", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes a new random key; `None` when the file appeared meanwhile.
fn create_key_file(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let key = random_key();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(hex::encode(&key).as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(Some(key))
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(error) => Err(error).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_purpose_id_and_expiry() {
        let signer = UrlSigner::new(vec![7; 32]).expect("key");
        let sig = signer.sign(Purpose::Content, "abc", 100);
        assert!(signer.verify(Purpose::Content, "abc", 100, &sig));
        assert!(!signer.verify(Purpose::Content, "abc", 101, &sig));
        assert!(!signer.verify(Purpose::Content, "abd", 100, &sig));
        assert!(!signer.verify(Purpose::Thumbnail, "abc", 100, &sig));
        assert!(!signer.verify(Purpose::Content, "abc", 100, "zz"));
        assert!(UrlSigner::new(vec![1; 31]).is_err());
    }

    #[test]
    fn a_generated_key_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("media-key-{}", uuid::Uuid::new_v4()));
        let logger = Logger::root(slog::Discard, slog::o!());
        let args = MediaArgs::embedded(&dir);
        let first = UrlSigner::load(&args, &logger).expect("generated");
        let second = UrlSigner::load(&args, &logger).expect("read back");
        assert_eq!(
            first.sign(Purpose::Content, "x", 1),
            second.sign(Purpose::Content, "x", 1)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&args.signing_key_file)
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}
