//! Ed25519 signing keys: generated, or read from a PEM file of PKCS#8 private keys; the JWKS
//! that publishes their public halves.
//!
//! A key file holds one or more `PRIVATE KEY` blocks. The first signs; the others are earlier
//! keys, still published so that tokens they signed verify until they expire. Rotating is
//! writing a new key first and keeping the one that signed until then second
//! ([`SigningKeys::rotated`]).

use std::{io::Write, path::Path};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Claims;

/// How many keys a JWKS publishes: the current one and the one before it.
const PUBLISHED_KEYS: usize = 2;

/// Why keys could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file holds no Ed25519 PKCS#8 private key, or a damaged one.
    #[error("key file {0}: expected PEM `PRIVATE KEY` blocks holding Ed25519 keys")]
    Format(String),
    /// No randomness from the operating system.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// Signing failed.
    #[error("signing a token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// One public key of a JWKS (RFC 7517, RFC 8037's `OKP` type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// Its id: the RFC 7638 thumbprint.
    pub kid: String,
    /// Always `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Always `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// A JSON Web Key Set: what `/.well-known/jwks.json` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, the one that signs now first.
    pub keys: Vec<Jwk>,
}

struct KeyPair {
    signing: SigningKey,
    kid: String,
    encoding: EncodingKey,
}

impl KeyPair {
    fn new(signing: SigningKey) -> Result<Self, KeyError> {
        let der = signing
            .to_pkcs8_der()
            .map_err(|_| KeyError::Format("generated key".into()))?;
        let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        // RFC 7638: SHA-256 of the required members in lexicographic order, no spaces.
        let thumbprint = Sha256::digest(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        Ok(Self {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            kid: URL_SAFE_NO_PAD.encode(thumbprint),
            signing,
        })
    }

    fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes()),
            kid: self.kid.clone(),
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
        }
    }
}

/// The keys that sign access tokens: the first signs, the others only verify.
pub struct SigningKeys {
    keys: Vec<KeyPair>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|key| key.kid.as_str()).collect();
        f.debug_struct("SigningKeys").field("kids", &kids).finish()
    }
}

impl SigningKeys {
    /// One new random key.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self {
            keys: vec![KeyPair::new(random_key()?)?],
        })
    }

    /// A new random key first, the current one second (older ones are dropped): what a key
    /// rotation looks like to the verifiers, for tests (feature `testing`). An operator rotates
    /// by writing a new key first into the key file (deploy/k8s/README.md).
    #[cfg(any(test, feature = "testing"))]
    pub fn rotated(&self) -> Result<Self, KeyError> {
        let mut keys = vec![KeyPair::new(random_key()?)?];
        keys.push(KeyPair::new(self.keys[0].signing.clone())?);
        Ok(Self { keys })
    }

    /// The keys of a PEM text of one or more `PRIVATE KEY` blocks (`source` names it in errors).
    pub fn from_pem(text: &str, source: &str) -> Result<Self, KeyError> {
        const END: &str = "-----END PRIVATE KEY-----";
        let mut keys = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN PRIVATE KEY-----") {
            let end = rest[start..]
                .find(END)
                .map(|end| start + end + END.len())
                .ok_or_else(|| KeyError::Format(source.to_owned()))?;
            let signing = SigningKey::from_pkcs8_pem(&rest[start..end])
                .map_err(|_| KeyError::Format(source.to_owned()))?;
            keys.push(KeyPair::new(signing)?);
            rest = &rest[end..];
        }
        if keys.is_empty() {
            return Err(KeyError::Format(source.to_owned()));
        }
        Ok(Self { keys })
    }

    /// The PEM text [`Self::from_pem`] reads.
    pub fn to_pem(&self) -> String {
        self.keys
            .iter()
            .filter_map(|key| key.signing.to_pkcs8_pem(LineEnding::LF).ok())
            .map(|pem| pem.to_string())
            .collect()
    }

    /// The keys in `path`.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&text, &path.display().to_string())
    }

    /// The keys in `path`, or a new key written there (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        if path.exists() {
            return Self::load(path);
        }
        let keys = Self::generate()?;
        keys.write(path)?;
        Ok(keys)
    }

    /// Writes the keys to `path`, readable by the owner only ([`write_private`]).
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        write_private(path, self.to_pem().as_bytes()).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The public keys to publish: the current one and the one before it.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .take(PUBLISHED_KEYS)
                .map(KeyPair::jwk)
                .collect(),
        }
    }

    /// The `kid` of the key that signs.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// A JWT of `claims`, signed with the current key (header `alg: EdDSA`, `kid`).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let current = &self.keys[0];
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(current.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &current.encoding)?)
    }
}

/// Writes `bytes` to `path`, readable by the owner only (mode 0600, also when a file was there
/// with another mode): written beside it, synced, then renamed over it, so a reader sees the
/// old file or the new one whole. Secrets (keys, generated credentials) go through here.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    let staged = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&staged)?;
    // A file left over from before keeps its mode on open: make it the owner's only.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&staged, path)
}

fn random_key() -> Result<SigningKey, KeyError> {
    let mut secret = [0_u8; 32];
    getrandom::fill(&mut secret).map_err(|error| KeyError::Random(error.to_string()))?;
    Ok(SigningKey::from_bytes(&secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_and_keeps_the_order() {
        let keys = SigningKeys::generate()
            .expect("key")
            .rotated()
            .expect("rotated");
        let pem = keys.to_pem();
        assert_eq!(pem.matches("BEGIN PRIVATE KEY").count(), 2);
        let again = SigningKeys::from_pem(&pem, "test").expect("parses");
        assert_eq!(again.jwks(), keys.jwks());
        assert_eq!(again.current_kid(), keys.current_kid());
    }

    #[test]
    fn a_rotation_publishes_the_new_key_and_the_previous_one_only() {
        let first = SigningKeys::generate().expect("key");
        let second = first.rotated().expect("rotated");
        let third = second.rotated().expect("rotated");
        let kids: Vec<String> = third.jwks().keys.into_iter().map(|key| key.kid).collect();
        assert_eq!(kids, [third.current_kid(), second.current_kid()]);
        assert!(!kids.contains(&first.current_kid().to_owned()));
    }

    #[test]
    fn garbage_is_not_a_key_file() {
        assert!(SigningKeys::from_pem("", "x").is_err());
        assert!(
            SigningKeys::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "x"
            )
            .is_err()
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_created_key_file_is_private_and_is_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("auth-keys-{}", uuid::Uuid::new_v4()));
        let path = dir.join("signing-key.pem");
        let created = SigningKeys::load_or_create(&path).expect("created");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = SigningKeys::load_or_create(&path).expect("loaded");
        assert_eq!(loaded.jwks(), created.jwks());
        std::fs::remove_dir_all(dir).expect("cleaned up");
    }
}
