//! Who is calling: the [`Caller`] extractor over the process's [`auth::Verifier`], and the
//! checks the rules of docs/contracts.md ("Identity and access") are made of.
//!
//! Identity comes from the bearer token alone, verified here: no header a client can set (an
//! `X-User-Id`, say) is ever read as an identity, and a service reached on its own port checks
//! exactly what the gateway checks.

use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use auth::{Principal, Verifier, VerifyError};
use futures_util::future::LocalBoxFuture;

use crate::ApiError;

/// The caller of a request: `None` when it presented no token. A presented token that does not
/// verify never gets this far: the request is refused with 401 `invalid_token`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller(pub Option<Principal>);

impl Caller {
    /// The signed-in caller, or 401.
    pub fn require(&self) -> Result<Principal, ApiError> {
        self.0.clone().ok_or_else(sign_in_required)
    }

    /// An admin, or 401 (anonymous) / 403 (signed in).
    pub fn require_admin(&self) -> Result<Principal, ApiError> {
        let principal = self.require()?;
        if principal.admin {
            Ok(principal)
        } else {
            Err(ApiError::Forbidden("this needs the admin role".into()))
        }
    }

    /// User `owner` themself or an admin, or 401 (anonymous) / 403 (anyone else).
    pub fn require_self_or_admin(&self, owner: i64) -> Result<Principal, ApiError> {
        owner_or_admin(self.require()?, owner)
    }
}

/// `principal` when it is user `owner` or an admin, else 403.
fn owner_or_admin(principal: Principal, owner: i64) -> Result<Principal, ApiError> {
    if principal.may_act_for(owner) {
        Ok(principal)
    } else {
        Err(ApiError::Forbidden(
            "only the owner or an admin may do this".into(),
        ))
    }
}

/// 401 for a request that needs a signed-in caller and presented no token.
pub fn sign_in_required() -> ApiError {
    ApiError::Unauthorized {
        message: "sign in required: send Authorization: Bearer <access token>".into(),
        invalid_token: false,
    }
}

/// The error a refused token answers with: 401 `invalid_token`, or 503 when the keys to check it
/// could not be had.
pub fn refused(error: VerifyError) -> ApiError {
    match error {
        VerifyError::KeysUnavailable(reason) => {
            ApiError::Unavailable(format!("tokens cannot be checked now: {reason}"))
        }
        other => ApiError::Unauthorized {
            message: other.to_string(),
            invalid_token: true,
        },
    }
}

/// The caller an `Authorization` header value proves: `None` without one.
pub async fn authenticate(
    verifier: &Verifier,
    authorization: Option<&[u8]>,
) -> Result<Option<Principal>, ApiError> {
    let token = auth::bearer_token(authorization).map_err(|error| ApiError::Unauthorized {
        message: error.to_string(),
        invalid_token: true,
    })?;
    match token {
        None => Ok(None),
        Some(token) => verifier.verify(token).await.map(Some).map_err(refused),
    }
}

/// The verifier a server installed (every [`crate::service::HttpService`] installs one).
pub fn verifier(request: &HttpRequest) -> Option<Arc<Verifier>> {
    request
        .app_data::<web::Data<Verifier>>()
        .map(|data| data.clone().into_inner())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| value.as_bytes().to_vec());
        let verifier = verifier(request);
        Box::pin(async move {
            let Some(authorization) = authorization else {
                return Ok(Self(None));
            };
            let verifier = verifier.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("no token verifier installed"))
            })?;
            authenticate(&verifier, Some(&authorization))
                .await
                .map(Self)
        })
    }
}

/// A signed-in caller. As a handler's first argument it refuses an anonymous one (401) before
/// the body is read or validated: actix extracts a handler's arguments in order and stops at the
/// first that fails, so a caller who may not write learns nothing from the body's checks.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Principal);

impl SignedIn {
    /// The caller when it is user `owner` or an admin, else 403.
    pub fn require_self_or_admin(self, owner: i64) -> Result<Principal, ApiError> {
        owner_or_admin(self.0, owner)
    }
}

impl FromRequest for SignedIn {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(request, payload);
        Box::pin(async move { caller.await?.require().map(Self) })
    }
}

/// An admin caller: like [`SignedIn`], and 403 for a signed-in caller without the admin role.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(request, payload);
        Box::pin(async move { caller.await?.require_admin().map(Self) })
    }
}

/// Adds the `bearer_auth` security scheme (HTTP bearer, JWT) to an OpenAPI document: name it
/// in `modifiers(&BearerAuth)` and in the operations' `security(("bearer_auth" = []))`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer_auth",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "An access token from POST /api/auth/login or /api/auth/signup",
                        ))
                        .build(),
                ),
            );
    }
}
