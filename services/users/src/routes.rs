//! The handlers of `/api/users…`: each carries its OpenAPI description and hands the request
//! to the shared [`Resource`] (cache-aside reads, invalidation after writes).

use actix_web::{HttpResponse, web};
use runtime::ErrorBody;
use server::{Admin, ApiError, Caller, JsonObject, ListQuery, Resource, SignedIn};

use crate::{
    domain::{User, UserInput},
    repository::UserRepository,
};

/// What the handlers share: the table behind the shared REST shape.
pub type UsersState = Resource<UserRepository>;

/// Adds the users routes to an app.
pub fn configure(config: &mut web::ServiceConfig, state: web::Data<UsersState>) {
    config
        .app_data(state)
        .service(
            web::resource("/api/users")
                .route(web::get().to(list_users))
                .route(web::post().to(create_user)),
        )
        .service(
            web::resource("/api/users/{id}")
                .route(web::get().to(get_user))
                .route(web::put().to(update_user))
                .route(web::delete().to(delete_user)),
        );
}

/// Lists users, a page at a time, or those named by `?ids=` (emails only to their owner and
/// admins).
#[utoipa::path(get, path = "/api/users", tag = "users", params(ListQuery),
    security((), ("bearer_auth" = [])),
    responses(
        (status = 200, description = "Users by id", body = Vec<User>,
            headers(
                ("Link" = String, description = "RFC 8288 links to the next, previous and first pages (by cursor)"),
                ("X-Total-Count" = i64, description = "Rows in all pages, with count=exact (or found, for ids)"),
                ("X-Total-Count-Estimate" = i64, description = "The database's estimate of the rows (PostgreSQL), without count=exact"))),
        (status = 400, description = "Bad query string", body = ErrorBody),
        (status = 401, description = "An invalid token", body = ErrorBody),
    ))]
pub async fn list_users(
    state: web::Data<UsersState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    state.list_for(query.into_inner(), caller.0.as_ref()).await
}

/// One user, from the cache when it can (the email only to that user and admins).
#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    security((), ("bearer_auth" = [])),
    responses(
        (status = 200, description = "The user", body = User,
            headers(("X-Cache" = String, description = "hit or miss"))),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 401, description = "An invalid token", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn get_user(
    state: web::Data<UsersState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    state.get_for(id.into_inner(), caller.0.as_ref()).await
}

/// Creates a user without a password (admins only; sign-up is the public way in).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = UserInput,
    security(("bearer_auth" = [])),
    responses(
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 201, description = "Created", body = User,
            headers(("Location" = String, description = "The new user's URL"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "Email already used", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
pub async fn create_user(
    _admin: Admin,
    state: web::Data<UsersState>,
    input: web::Json<JsonObject<UserInput>>,
) -> Result<HttpResponse, ApiError> {
    let JsonObject(input) = input.into_inner();
    state.create(input.validate()?).await
}

/// Replaces a user's name and email (that user or an admin).
#[utoipa::path(put, path = "/api/users/{id}", tag = "users", request_body = UserInput,
    params(("id" = i64, Path, description = "User id")),
    security(("bearer_auth" = [])),
    responses(
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "Neither that user nor an admin", body = ErrorBody),
        (status = 200, description = "Updated", body = User),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "Email already used", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
pub async fn update_user(
    caller: SignedIn,
    state: web::Data<UsersState>,
    id: web::Path<i64>,
    input: web::Json<JsonObject<UserInput>>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.require_self_or_admin(id)?;
    let JsonObject(input) = input.into_inner();
    state.update(id, input.validate()?).await
}

/// Deletes a user and ends their sessions (that user or an admin).
#[utoipa::path(delete, path = "/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    security(("bearer_auth" = [])),
    responses(
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "Neither that user nor an admin", body = ErrorBody),
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn delete_user(
    caller: SignedIn,
    state: web::Data<UsersState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.require_self_or_admin(id)?;
    state.delete(id).await
}
