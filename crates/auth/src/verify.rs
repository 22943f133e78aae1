//! The one token check of the platform: the gateway and every service call [`Verifier::verify`].
//!
//! What holds: only EdDSA tokens signed by a key of the issuer's JWKS verify (`none`, HMAC and
//! RSA tokens are refused before any key is touched, so an HMAC token keyed with the public key
//! gets nowhere); `iss`, `aud`, `exp` and `nbf` are checked with a small leeway; an unknown `kid`
//! refetches the JWKS (remote source), at most once per interval, and a key the JWKS no longer
//! lists stops verifying. A verified token is remembered by its SHA-256 until it expires, so the
//! hot path is a hash and a look-up, not a signature check.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use sha2::{Digest, Sha256};

use crate::{Claims, Jwks, Principal, now_secs};

/// Why a presented token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a JWT, or claims of the wrong shape.
    #[error("the token is malformed")]
    Malformed,
    /// Not signed with EdDSA (`none`, HS*, RS*, …).
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// No key with the token's `kid` (or none given).
    #[error("the token's signing key is unknown")]
    UnknownKey,
    /// The signature does not match.
    #[error("the token's signature is invalid")]
    Signature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Another issuer.
    #[error("the token's issuer is not accepted")]
    Issuer,
    /// Another audience.
    #[error("the token's audience is not accepted")]
    Audience,
    /// The keys could not be fetched, so the token could not be checked.
    #[error("the signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

/// Where the verifier gets its public keys.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Keys handed over in the process (the issuer's own, the stack, tests); changed with
    /// [`Verifier::set_keys`].
    Fixed(Jwks),
    /// A JWKS URL, fetched on first need, when a token names an unknown `kid`, and when the
    /// keys are older than [`VerifierSettings::max_key_age`].
    Remote(String),
}

/// What a verifier accepts, and how it caches.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The only accepted `aud`.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// The least time between two JWKS fetches.
    pub refetch_interval: Duration,
    /// Keys older than this are fetched again before a token not seen before is checked.
    pub max_key_age: Duration,
    /// How many verified tokens are remembered.
    pub cache_capacity: u64,
    /// Timeout of one JWKS fetch.
    pub fetch_timeout: Duration,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            issuer: crate::DEFAULT_ISSUER.to_owned(),
            audience: crate::DEFAULT_AUDIENCE.to_owned(),
            leeway: Duration::from_secs(30),
            refetch_interval: Duration::from_secs(30),
            max_key_age: Duration::from_secs(300),
            cache_capacity: 100_000,
            fetch_timeout: Duration::from_secs(3),
        }
    }
}

/// A token that verified: who it proves, and the key that signed it.
#[derive(Clone)]
struct Verified {
    principal: Principal,
    kid: Arc<str>,
}

/// The fetched or handed-over keys.
#[derive(Default)]
struct KeyRing {
    by_kid: HashMap<Arc<str>, Arc<DecodingKey>>,
    /// When a remote JWKS was last fetched successfully.
    fetched_at: Option<Instant>,
}

struct Remote {
    url: String,
    client: reqwest::Client,
    /// When a fetch was last tried; serializes fetches.
    last_try: tokio::sync::Mutex<Option<Instant>>,
}

/// Checks access tokens. Cheap to share: one per process is enough.
pub struct Verifier {
    settings: VerifierSettings,
    validation: Validation,
    keys: RwLock<KeyRing>,
    remote: Option<Remote>,
    verified: moka::sync::Cache<[u8; 32], Verified>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("settings", &self.settings)
            .field("remote", &self.remote.as_ref().map(|remote| &remote.url))
            .finish()
    }
}

impl Verifier {
    /// A verifier over `source`.
    pub fn new(settings: VerifierSettings, source: KeySource) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = settings.leeway.as_secs();
        validation.validate_nbf = true;
        let verified = moka::sync::Cache::builder()
            .max_capacity(settings.cache_capacity)
            .time_to_live(Duration::from_secs(24 * 3600))
            .build();
        let (keys, remote) = match source {
            KeySource::Fixed(jwks) => (key_ring(&jwks, None), None),
            KeySource::Remote(url) => {
                let client = reqwest::Client::builder()
                    .timeout(settings.fetch_timeout)
                    .build()
                    .unwrap_or_default();
                let remote = Remote {
                    url,
                    client,
                    last_try: tokio::sync::Mutex::new(None),
                };
                (KeyRing::default(), Some(remote))
            }
        };
        Self {
            settings,
            validation,
            keys: RwLock::new(keys),
            remote,
            verified,
        }
    }

    /// Replaces the keys (a rotation in the issuing process). Tokens of keys no longer listed
    /// stop verifying, remembered ones included.
    pub fn set_keys(&self, jwks: &Jwks) {
        let ring = key_ring(jwks, self.remote.as_ref().map(|_| Instant::now()));
        *self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = ring;
    }

    /// The caller `token` proves, or why it proves nothing.
    pub async fn verify(&self, token: &str) -> Result<Principal, VerifyError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verified) = self.verified.get(&digest) {
            if self.still_valid(&verified) {
                return Ok(verified.principal.clone());
            }
            self.verified.invalidate(&digest);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(VerifyError::Algorithm);
        }
        let kid: Arc<str> = header.kid.ok_or(VerifyError::UnknownKey)?.into();
        if self.keys_are_stale() {
            self.refetch().await?;
        }
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refetch().await?;
                self.key(&kid).ok_or(VerifyError::UnknownKey)?
            }
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|error| from_jwt_error(error.kind()))?;
        let principal = Principal::from_claims(&data.claims).ok_or(VerifyError::Malformed)?;
        self.verified.insert(
            digest,
            Verified {
                principal: principal.clone(),
                kid,
            },
        );
        Ok(principal)
    }

    fn still_valid(&self, verified: &Verified) -> bool {
        now_secs() <= verified.principal.expires_at + self.settings.leeway.as_secs()
            && self.key(&verified.kid).is_some()
    }

    fn key(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        let ring = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ring.by_kid.get(kid).cloned()
    }

    fn keys_are_stale(&self) -> bool {
        if self.remote.is_none() {
            return false;
        }
        let ring = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ring.fetched_at
            .is_none_or(|fetched| fetched.elapsed() >= self.settings.max_key_age)
    }

    /// Fetches the remote JWKS unless a fetch was tried within the refetch interval. An error
    /// only when there are no keys at all to go on with.
    async fn refetch(&self) -> Result<(), VerifyError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let mut last_try = remote.last_try.lock().await;
        if last_try.is_some_and(|at| at.elapsed() < self.settings.refetch_interval) {
            return if self.has_keys() {
                Ok(())
            } else {
                Err(VerifyError::KeysUnavailable(
                    "the last fetch of the keys failed".into(),
                ))
            };
        }
        *last_try = Some(Instant::now());
        match fetch(remote).await {
            Ok(jwks) => {
                self.set_keys(&jwks);
                Ok(())
            }
            Err(_) if self.has_keys() => Ok(()),
            Err(reason) => Err(VerifyError::KeysUnavailable(reason)),
        }
    }

    fn has_keys(&self) -> bool {
        let ring = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !ring.by_kid.is_empty()
    }
}

async fn fetch(remote: &Remote) -> Result<Jwks, String> {
    let response = remote
        .client
        .get(&remote.url)
        .send()
        .await
        .map_err(|error| format!("{}: {error}", remote.url))?;
    if !response.status().is_success() {
        return Err(format!("{} answered {}", remote.url, response.status()));
    }
    response
        .json::<Jwks>()
        .await
        .map_err(|error| format!("{}: {error}", remote.url))
}

/// The Ed25519 keys of a JWKS; entries of other types or with a damaged `x` are skipped.
fn key_ring(jwks: &Jwks, fetched_at: Option<Instant>) -> KeyRing {
    let by_kid = jwks
        .keys
        .iter()
        .filter(|jwk| {
            jwk.kty == "OKP"
                && jwk.crv == "Ed25519"
                && jwk.alg.as_deref().is_none_or(|alg| alg == "EdDSA")
                && URL_SAFE_NO_PAD
                    .decode(&jwk.x)
                    .is_ok_and(|bytes| bytes.len() == 32)
        })
        .filter_map(|jwk| {
            let key = DecodingKey::from_ed_components(&jwk.x).ok()?;
            Some((Arc::from(jwk.kid.as_str()), Arc::new(key)))
        })
        .collect();
    KeyRing { by_kid, fetched_at }
}

fn from_jwt_error(kind: &ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::Issuer,
        ErrorKind::InvalidAudience => VerifyError::Audience,
        ErrorKind::InvalidSignature => VerifyError::Signature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => VerifyError::Algorithm,
        _ => VerifyError::Malformed,
    }
}
