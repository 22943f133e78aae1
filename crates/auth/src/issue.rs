//! Access tokens for a user, and the opaque random tokens (refresh tokens) beside them.

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{Claims, KeyError, Role, SigningKeys, now_secs};

/// A signed access token and how long it lives.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signs access tokens for this platform's issuer and audience.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    /// The keys; the first signs.
    keys: Arc<SigningKeys>,
    /// `iss`.
    issuer: String,
    /// `aud`.
    audience: String,
    /// How long a token lives.
    lifetime: Duration,
}

impl TokenIssuer {
    /// An issuer signing with `keys`.
    pub fn new(
        keys: Arc<SigningKeys>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        lifetime: Duration,
    ) -> Self {
        Self {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
            lifetime,
        }
    }

    /// The keys it signs with.
    pub fn keys(&self) -> &Arc<SigningKeys> {
        &self.keys
    }

    /// The claims of a new token for user `user_id`, named `name`, with `roles`, valid from now.
    pub fn claims(&self, user_id: i64, name: &str, roles: &[Role]) -> Claims {
        let now = now_secs();
        Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_string(),
            exp: now + self.lifetime.as_secs(),
            iat: now,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
            roles: roles.to_vec(),
            name: Some(name.to_owned()),
        }
    }

    /// A new access token for user `user_id`, named `name`, with `roles`.
    pub fn issue(&self, user_id: i64, name: &str, roles: &[Role]) -> Result<AccessToken, KeyError> {
        Ok(AccessToken {
            token: self.keys.sign(&self.claims(user_id, name, roles))?,
            expires_in: self.lifetime.as_secs(),
        })
    }
}

/// 256 random bits, base64url: an opaque token (refresh tokens).
pub fn random_token() -> Result<String, KeyError> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| KeyError::Random(error.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a token, hex: what is stored or cached instead of the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
