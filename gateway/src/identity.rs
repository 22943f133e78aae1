//! Who a request comes from, decided in one place for both paths ([`crate::proxy`] and
//! [`crate::direct`]): [`authorize`] turns a request's `Authorization` fields and its route's
//! [`RouteAuth`] into a verified [`Principal`], none, or a [`Refusal`].
//!
//! What holds: a presented token is verified on every route, so an invalid or expired one never
//! reaches an upstream (401 `invalid_token`); a route marked `required` refuses a request
//! without one (401 with the bare challenge); a verifier that cannot get its keys makes a 503,
//! never a pass. The header itself goes upstream unchanged: every service verifies it again, and
//! no identity header of the gateway's own is ever added (the services trust none).

use std::net::IpAddr;

use auth::{Principal, Verifier, VerifyError};
use http::StatusCode;

use crate::config::RouteAuth;

/// Why a request is not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No token, on a route that requires one: 401 with `Bearer realm=…` and no error.
    SignInRequired,
    /// A token was presented and does not verify, or the header is not one `Bearer <token>`:
    /// 401 with `error="invalid_token"`. The message says why, never what the token was.
    InvalidToken(String),
    /// The keys to check the token could not be had: 503 `unavailable`.
    KeysUnavailable(String),
}

impl Refusal {
    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::SignInRequired | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `WWW-Authenticate` value of a 401 (RFC 6750 §3), `None` for a 503.
    pub fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::SignInRequired => Some(auth::www_authenticate(false)),
            Self::InvalidToken(_) => Some(auth::www_authenticate(true)),
            Self::KeysUnavailable(_) => None,
        }
    }

    /// The error body's message.
    pub fn message(&self) -> String {
        match self {
            Self::SignInRequired => {
                "sign in required: send Authorization: Bearer <access token>".to_owned()
            }
            Self::InvalidToken(reason) => reason.clone(),
            Self::KeysUnavailable(reason) => format!("tokens cannot be checked now: {reason}"),
        }
    }
}

impl From<VerifyError> for Refusal {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::KeysUnavailable(reason) => Self::KeysUnavailable(reason),
            other => Self::InvalidToken(other.to_string()),
        }
    }
}

/// The one auth decision of the gateway. `authorization` holds the request's `Authorization`
/// field values in order: none is anonymous, one must be `Bearer <token>` with a token that
/// verifies, and more than one is refused like a malformed header (a singleton field repeated
/// could be read differently by the gateway and a service).
pub async fn authorize<'a>(
    verifier: &Verifier,
    policy: RouteAuth,
    authorization: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<Principal>, Refusal> {
    let mut fields = authorization.into_iter();
    let first = fields.next();
    if fields.next().is_some() {
        return Err(Refusal::InvalidToken(
            "more than one Authorization header".to_owned(),
        ));
    }
    let token =
        auth::bearer_token(first).map_err(|error| Refusal::InvalidToken(error.to_string()))?;
    match (token, policy) {
        (Some(token), _) => Ok(Some(verifier.verify(token).await?)),
        (None, RouteAuth::Optional) => Ok(None),
        (None, RouteAuth::Required) => Err(Refusal::SignInRequired),
    }
}

/// Whose bucket of the rate limiter a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The user a verified token proves, wherever they connect from.
    User(i64),
    /// The TCP peer's address, for anonymous requests and refused tokens.
    Ip(IpAddr),
}

impl ClientKey {
    /// The key of a request from `ip` whose auth decision was `outcome`.
    pub fn of(outcome: &Result<Option<Principal>, Refusal>, ip: IpAddr) -> Self {
        match outcome {
            Ok(Some(principal)) => Self::User(principal.user_id),
            _ => Self::Ip(ip),
        }
    }

    /// The 429's message.
    pub fn limited_message(&self) -> &'static str {
        match self {
            Self::User(_) => "too many requests from this user",
            Self::Ip(_) => "too many requests from this address",
        }
    }
}
