//! Identity building blocks of the platform: who a caller is, and how that is proven.
//!
//! users-service signs short-lived access tokens (JWTs, EdDSA over Ed25519) with
//! [`SigningKeys`] through a [`TokenIssuer`] and publishes the public halves as a JWKS. The
//! gateway and every service check a presented token with one [`Verifier`]: EdDSA only, `iss`,
//! `aud`, `exp` and `nbf` checked, keys looked up by `kid` (an unknown `kid` refetches the JWKS,
//! at most once per interval), and each verified token remembered by its hash until it expires.
//!
//! | module | what it holds |
//! |---|---|
//! | `claims` | [`Claims`] inside a token, [`Role`], and the [`Principal`] a verified token proves |
//! | `keys` | [`SigningKeys`]: generated or loaded from a PEM file, the JWKS, signing |
//! | `issue` | [`TokenIssuer`]: access tokens for a user, and [`random_token`] for opaque ones |
//! | `verify` | [`Verifier`], [`KeySource`], [`VerifyError`] |
//! | `bearer` | [`bearer_token`]: the `Authorization: Bearer …` rule, one for every server |

mod bearer;
mod claims;
mod issue;
mod keys;
mod verify;

pub use bearer::{BearerError, bearer_token, www_authenticate};
pub use claims::{Claims, Principal, Role};
pub use issue::{AccessToken, TokenIssuer, random_token, token_hash};
pub use keys::{Jwk, Jwks, KeyError, SigningKeys, write_private};
pub use verify::{KeySource, Verifier, VerifierSettings, VerifyError};

/// The `iss` and `aud` of the platform's tokens unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "platform";
/// See [`DEFAULT_ISSUER`].
pub const DEFAULT_AUDIENCE: &str = "platform";
/// Where users-service publishes its public keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
