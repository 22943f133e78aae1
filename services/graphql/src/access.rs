//! Who is asking, and what they may do: the rules of docs/contracts.md ("Identity and access")
//! as GraphQL errors.
//!
//! The caller comes from the bearer token alone: the `Authorization` header of a request (or of
//! a WebSocket handshake), or the token in a subscription's `connection_init` payload, verified
//! with the process's [`auth::Verifier`]. No other header names anyone. Each operation carries
//! its caller as `Option<auth::Principal>` in its data, and the [`UpstreamAuth`] it relays to
//! users-service and products-service, so those answer it as they would answer the caller.
//!
//! | what | anonymous | a user | another user | an admin |
//! |---|---|---|---|---|
//! | `User.email` | `""` | their own | `""` | any |
//! | `createPost` | `UNAUTHENTICATED` | as themself | `FORBIDDEN` | as anyone |
//! | `updatePost`, `deletePost` | `UNAUTHENTICATED` | their own | `FORBIDDEN` | any |
//! | `createUser` | `UNAUTHENTICATED` | `FORBIDDEN` | `FORBIDDEN` | yes |

use async_graphql::{Context, Error, Result};
use auth::Principal;
use server::ApiError;

use crate::schema::errors::{coded_error, codes};

/// The `Authorization` value relayed to users-service and products-service (`Bearer <token>`),
/// `None` for an anonymous caller: those services decide what an answer shows (an email
/// address) from it, so each upstream call carries the caller's own token and nothing fetched
/// for one caller is ever served to another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamAuth(pub Option<String>);

impl UpstreamAuth {
    /// The relay of a verified bearer token.
    pub fn bearer(token: &str) -> Self {
        Self(Some(format!("Bearer {token}")))
    }
}

/// The signed-in caller of an operation, if any.
pub fn caller<'a>(context: &Context<'a>) -> Option<&'a Principal> {
    context
        .data_opt::<Option<Principal>>()
        .and_then(Option::as_ref)
}

/// The signed-in caller, or `UNAUTHENTICATED`.
pub fn require_user<'a>(context: &Context<'a>) -> Result<&'a Principal> {
    caller(context).ok_or_else(|| {
        coded_error(
            codes::UNAUTHENTICATED,
            "sign in required: send Authorization: Bearer <access token>",
        )
    })
}

/// An admin, or `UNAUTHENTICATED` (anonymous) / `FORBIDDEN` (signed in).
pub fn require_admin<'a>(context: &Context<'a>) -> Result<&'a Principal> {
    let principal = require_user(context)?;
    if principal.admin {
        Ok(principal)
    } else {
        Err(coded_error(codes::FORBIDDEN, "this needs the admin role"))
    }
}

/// User `owner` themself or an admin, or `UNAUTHENTICATED` (anonymous) / `FORBIDDEN`.
pub fn require_self_or_admin<'a>(context: &Context<'a>, owner: i64) -> Result<&'a Principal> {
    let principal = require_user(context)?;
    if principal.may_act_for(owner) {
        Ok(principal)
    } else {
        Err(forbidden("only the owner or an admin may do this"))
    }
}

/// Whether the caller is user `owner` or an admin (what may see an email address).
pub fn is_self_or_admin(context: &Context<'_>, owner: i64) -> bool {
    caller(context).is_some_and(|principal| principal.may_act_for(owner))
}

/// A `FORBIDDEN` error.
pub fn forbidden(message: &str) -> Error {
    coded_error(codes::FORBIDDEN, message.to_owned())
}

/// A caller proven by a bearer token: who it is, and what to relay.
#[derive(Debug, Clone, Default)]
pub struct Authenticated {
    /// The principal, `None` when no token was presented.
    pub principal: Option<Principal>,
    /// The token, relayed upstream.
    pub upstream: UpstreamAuth,
}

/// The caller an `Authorization` header value proves: anonymous without one, an error (401,
/// or 503 when keys cannot be had) for a token that does not verify or a verifier missing.
pub async fn from_header(
    verifier: Option<&auth::Verifier>,
    authorization: Option<&[u8]>,
) -> Result<Authenticated, ApiError> {
    let Some(authorization) = authorization else {
        return Ok(Authenticated::default());
    };
    let verifier = verifier
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no token verifier installed")))?;
    let principal = server::authenticate(verifier, Some(authorization)).await?;
    // `authenticate` took the header, so it is `Bearer <token>` and the token is these bytes.
    let token = auth::bearer_token(Some(authorization)).ok().flatten();
    Ok(Authenticated {
        principal,
        upstream: token.map(UpstreamAuth::bearer).unwrap_or_default(),
    })
}

/// Why a subscription's `connection_init` is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InitRefused(pub String);

/// The `Authorization` value a `connection_init` payload carries: `{"Authorization": "Bearer
/// …"}`, `{"authorization": "Bearer …"}` (what GraphiQL and most clients send: their headers as
/// connection parameters) or `{"token": "…"}`; `Ok(None)` when it carries none.
pub fn init_authorization(payload: &serde_json::Value) -> Result<Option<String>, InitRefused> {
    let text = |name: &str| -> Result<Option<&str>, InitRefused> {
        match payload.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(value)) => Ok(Some(value.as_str())),
            Some(_) => Err(InitRefused(format!("`{name}` must be a string"))),
        }
    };
    let header = match (text("Authorization")?, text("authorization")?) {
        (Some(first), Some(second)) if first != second => {
            return Err(InitRefused("two different Authorization values".to_owned()));
        }
        (Some(value), _) | (None, Some(value)) => Some(value.to_owned()),
        (None, None) => None,
    };
    match (header, text("token")?) {
        (Some(_), Some(_)) => Err(InitRefused(
            "send either Authorization or token, not both".to_owned(),
        )),
        (Some(header), None) => Ok(Some(header)),
        (None, Some(token)) => Ok(Some(format!("Bearer {token}"))),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn connection_init_payloads_name_their_token() {
        let bearer = Ok(Some("Bearer abc".to_owned()));
        for payload in [
            json!({"Authorization": "Bearer abc"}),
            json!({"authorization": "Bearer abc"}),
            json!({"Authorization": "Bearer abc", "authorization": "Bearer abc"}),
            json!({"token": "abc"}),
            json!({"token": "abc", "Authorization": null}),
        ] {
            assert_eq!(
                init_authorization(&payload).map_err(|error| error.0),
                bearer,
                "{payload}"
            );
        }
        for payload in [json!({}), json!(null), json!([]), json!({"other": 1})] {
            assert_eq!(
                init_authorization(&payload).map_err(|error| error.0),
                Ok(None)
            );
        }
        for payload in [
            json!({"Authorization": 1}),
            json!({"token": {"a": 1}}),
            json!({"Authorization": "Bearer a", "authorization": "Bearer b"}),
            json!({"Authorization": "Bearer a", "token": "a"}),
        ] {
            assert!(init_authorization(&payload).is_err(), "{payload}");
        }
    }
}
