//! `/api/auth/*`: sign-up, login, refresh, logout, the caller's account, a password change,
//! and the public keys (`/.well-known/jwks.json`).
//!
//! An access token (a 15-minute EdDSA JWT) proves the caller to every service; a refresh token
//! (256 random bits, stored as its SHA-256) gets a new pair once, and presenting it again
//! revokes its whole family (reuse detection).

use std::{net::IpAddr, time::Duration};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use auth::TokenIssuer;
use runtime::{ErrorBody, FieldError};
use serde::{Deserialize, Serialize};
use server::{ApiError, Caller, JsonObject, SignedIn};
use utoipa::ToSchema;

use crate::{
    accounts::{Account, Accounts, Redeemed},
    domain::{UserError, UserInput},
    passwords::{self, Passwords},
    routes::UsersState,
    throttle::LoginThrottle,
};

/// What the identity handlers share.
pub struct Identity {
    /// Identities and refresh tokens.
    pub accounts: Accounts,
    /// Hashing, bounded.
    pub passwords: Passwords,
    /// Failed-login budgets.
    pub throttle: LoginThrottle,
    /// Sign-ups per client address: each hashes a password and creates an account.
    pub signups: governor::DefaultKeyedRateLimiter<IpAddr>,
    /// Signs access tokens.
    pub issuer: TokenIssuer,
    /// How long a refresh token lives.
    pub refresh_lifetime: Duration,
}

/// `POST /api/auth/signup`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupInput {
    /// 1–200 characters after trimming.
    #[schema(example = "Alice")]
    pub name: String,
    /// A valid address, unique case-insensitively.
    #[schema(example = "alice@example.com")]
    pub email: String,
    /// 8–256 characters, not a common password.
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 256
    )]
    pub password: String,
}

/// `POST /api/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// The account's address (any case).
    pub email: String,
    /// Its password.
    pub password: String,
}

/// `POST /api/auth/refresh` and `POST /api/auth/logout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshInput {
    /// The refresh token of the last sign-in or refresh.
    pub refresh_token: String,
}

/// `PUT /api/users/{id}/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    /// The new password: 8–256 characters, not a common one.
    pub password: String,
    /// The current one: required of a user who has one and changes their own.
    pub current_password: Option<String>,
}

/// A signed-in session: what sign-up, login and refresh answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// The account, email and role included.
    pub user: Account,
    /// The EdDSA JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Opaque; exchanged once at `/api/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Adds the identity routes to an app.
pub fn configure(config: &mut web::ServiceConfig, identity: web::Data<Identity>) {
    config
        .app_data(identity)
        .route(auth::JWKS_PATH, web::get().to(jwks))
        .route("/api/auth/signup", web::post().to(signup))
        .route("/api/auth/login", web::post().to(login))
        .route("/api/auth/refresh", web::post().to(refresh))
        .route("/api/auth/logout", web::post().to(logout))
        .route("/api/auth/me", web::get().to(me))
        .route("/api/users/{id}/password", web::put().to(set_password));
}

impl Identity {
    /// A new session for `account`: an access token and the first (or next) refresh token of
    /// `family`.
    async fn session(&self, account: Account, family: &str) -> Result<Session, ApiError> {
        let access = self
            .issuer
            .issue(account.id, &account.name, &account.roles())
            .map_err(|error| ApiError::Internal(error.into()))?;
        let refresh_token =
            auth::random_token().map_err(|error| ApiError::Internal(error.into()))?;
        let lifetime = i64::try_from(self.refresh_lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        self.accounts
            .store_refresh(
                &auth::token_hash(&refresh_token),
                family,
                account.id,
                lifetime,
            )
            .await
            .map_err(database)?;
        Ok(Session {
            user: account,
            access_token: access.token,
            refresh_token,
            token_type: "Bearer",
            expires_in: access.expires_in,
        })
    }

    async fn new_session(&self, account: Account) -> Result<Session, ApiError> {
        self.session(account, &uuid::Uuid::new_v4().to_string())
            .await
    }
}

fn database(error: sqlx::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::new(error).context("users database"))
}

fn bad_credentials() -> ApiError {
    ApiError::Unauthorized {
        message: "invalid email or password".into(),
        invalid_token: false,
    }
}

fn invalid_refresh() -> ApiError {
    ApiError::Unauthorized {
        message: "the refresh token is invalid, expired or already used".into(),
        invalid_token: true,
    }
}

fn too_many(wait: Duration, message: &str) -> ApiError {
    ApiError::TooManyRequests {
        message: message.to_owned(),
        retry_after: wait,
    }
}

const TOO_MANY_FAILURES: &str = "too many failed sign-ins: try again later";

/// The public keys that verify access tokens (the current one and the previous one).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JSON Web Key Set (Ed25519, EdDSA)")))]
pub async fn jwks(identity: web::Data<Identity>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(identity.issuer.keys().jwks())
}

/// Creates an account (role `user`) and signs it in.
#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = SignupInput,
    responses(
        (status = 201, description = "Signed up and signed in", body = Session),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "An invalid token was sent (none is needed)", body = ErrorBody),
        (status = 409, description = "Email already used", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields (or unknown ones, such as a role)", body = ErrorBody),
    ))]
pub async fn signup(
    request: HttpRequest,
    identity: web::Data<Identity>,
    users: web::Data<UsersState>,
    input: web::Json<JsonObject<SignupInput>>,
) -> Result<HttpResponse, ApiError> {
    let address = server::client_address(&request);
    if let Err(not_until) = identity.signups.check_key(&address) {
        let clock = governor::clock::DefaultClock::default();
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&clock));
        return Err(too_many(
            wait,
            "too many sign-ups from this address: try again later",
        ));
    }
    if identity.signups.len() > 10_000 {
        identity.signups.retain_recent();
    }
    let JsonObject(input) = input.into_inner();
    let profile = UserInput {
        name: input.name,
        email: input.email,
    };
    let (valid, mut problems) = match profile.validate() {
        Ok(valid) => (Some(valid), Vec::new()),
        Err(UserError::Invalid(details)) => (None, details),
        Err(other) => return Err(other.into()),
    };
    if let Err(problem) = passwords::check_new("password", &input.password) {
        problems.push(problem);
    }
    let Some(valid) = valid.filter(|_| problems.is_empty()) else {
        return Err(ApiError::validation(problems));
    };
    let hash = identity.passwords.hash(input.password).await?;
    let account = identity
        .accounts
        .create(&valid, &hash, auth::Role::User)
        .await?;
    users.invalidate(account.id).await;
    let session = identity.new_session(account).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/users/{}", session.user.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(session))
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginInput,
    responses(
        (status = 200, description = "Signed in", body = Session),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Missing or unknown fields", body = ErrorBody),
        (status = 401, description = "Wrong email or password (the same answer for both)", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins for this account or address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn login(
    request: HttpRequest,
    identity: web::Data<Identity>,
    input: web::Json<JsonObject<LoginInput>>,
) -> Result<HttpResponse, ApiError> {
    let JsonObject(input) = input.into_inner();
    let email_key = input.email.trim().to_lowercase();
    let address = server::client_address(&request);
    let attempt = match identity.throttle.begin(&email_key, address).await {
        Ok(attempt) => attempt,
        Err(wait) => return Err(too_many(wait, TOO_MANY_FAILURES)),
    };
    let credentials = identity
        .accounts
        .credentials(&email_key)
        .await
        .map_err(database)?;
    let (account, hash) = match credentials {
        Some(found) => (Some(found.account), found.password_hash),
        None => (None, None),
    };
    let matches = identity.passwords.verify(input.password, hash).await?;
    match account.filter(|_| matches) {
        Some(account) => {
            let session = identity.new_session(account).await?;
            Ok(HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(session))
        }
        None => match identity.throttle.failed(&attempt) {
            Ok(()) => Err(bad_credentials()),
            Err(wait) => Err(too_many(wait, TOO_MANY_FAILURES)),
        },
    }
}

/// Exchanges a refresh token for a new pair; a spent one revokes its family.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshInput,
    responses(
        (status = 200, description = "A new access and refresh token", body = Session),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Missing or unknown fields", body = ErrorBody),
        (status = 401, description = "Unknown, expired, revoked or already used", body = ErrorBody),
    ))]
pub async fn refresh(
    identity: web::Data<Identity>,
    input: web::Json<JsonObject<RefreshInput>>,
) -> Result<HttpResponse, ApiError> {
    let JsonObject(input) = input.into_inner();
    let redeemed = identity
        .accounts
        .redeem(&auth::token_hash(&input.refresh_token))
        .await
        .map_err(database)?;
    let Redeemed::Valid { family, user_id } = redeemed else {
        return Err(invalid_refresh());
    };
    let Some(account) = identity.accounts.find(user_id).await.map_err(database)? else {
        return Err(invalid_refresh());
    };
    let session = identity.session(account, &family).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(session))
}

/// Ends the session of a refresh token (its whole family); 204 whether or not it was known.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshInput,
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Missing or unknown fields", body = ErrorBody),
    ))]
pub async fn logout(
    identity: web::Data<Identity>,
    input: web::Json<JsonObject<RefreshInput>>,
) -> Result<HttpResponse, ApiError> {
    let JsonObject(input) = input.into_inner();
    let hash = auth::token_hash(&input.refresh_token);
    if let Some(family) = identity.accounts.family_of(&hash).await.map_err(database)? {
        identity
            .accounts
            .revoke_family(&family)
            .await
            .map_err(database)?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's account, email and role included.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The caller", body = Account),
        (status = 401, description = "No or invalid token", body = ErrorBody),
    ))]
pub async fn me(identity: web::Data<Identity>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let principal = caller.require()?;
    match identity
        .accounts
        .find(principal.user_id)
        .await
        .map_err(database)?
    {
        Some(account) => Ok(HttpResponse::Ok().json(account)),
        None => Err(ApiError::Unauthorized {
            message: "the token's user no longer exists".into(),
            invalid_token: true,
        }),
    }
}

/// Sets a user's password: the user themself (giving the current one, if they have one) or an
/// admin. Every session of that user ends.
#[utoipa::path(put, path = "/api/users/{id}/password", tag = "auth", request_body = PasswordInput,
    params(("id" = i64, Path, description = "User id")), security(("bearer_auth" = [])),
    responses(
        (status = 204, description = "Password set; the user's refresh tokens are revoked"),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Too many wrong current passwords", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 401, description = "No or invalid token, or a wrong current password", body = ErrorBody),
        (status = 403, description = "Neither that user nor an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "The new password is not acceptable, or fields are missing or unknown", body = ErrorBody),
    ))]
pub async fn set_password(
    request: HttpRequest,
    caller: SignedIn,
    identity: web::Data<Identity>,
    id: web::Path<i64>,
    input: web::Json<JsonObject<PasswordInput>>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let principal = caller.require_self_or_admin(id)?;
    let JsonObject(input) = input.into_inner();
    passwords::check_new("password", &input.password)
        .map_err(|problem: FieldError| ApiError::validation(vec![problem]))?;
    let Some(account) = identity.accounts.find(id).await.map_err(database)? else {
        return Err(ApiError::NotFound(format!("user {id} not found")));
    };
    if !principal.admin {
        let current = identity
            .accounts
            .credentials(&account.email.to_lowercase())
            .await
            .map_err(database)?
            .and_then(|credentials| credentials.password_hash);
        if current.is_some() {
            // A guess of the current password counts as a failed login of the account.
            let address = server::client_address(&request);
            let attempt = match identity
                .throttle
                .begin(&account.email.to_lowercase(), address)
                .await
            {
                Ok(attempt) => attempt,
                Err(wait) => return Err(too_many(wait, TOO_MANY_FAILURES)),
            };
            let given = input.current_password.unwrap_or_default();
            if !identity.passwords.verify(given, current).await? {
                return match identity.throttle.failed(&attempt) {
                    Ok(()) => Err(ApiError::Unauthorized {
                        message: "the current password is wrong".into(),
                        invalid_token: false,
                    }),
                    Err(wait) => Err(too_many(wait, TOO_MANY_FAILURES)),
                };
            }
        }
    }
    let hash = identity.passwords.hash(input.password).await?;
    identity
        .accounts
        .set_password(id, &hash)
        .await
        .map_err(database)?;
    Ok(HttpResponse::NoContent().finish())
}
