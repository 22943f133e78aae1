//! The handlers of `/api/users…`. Reads by id go through the cache; every write invalidates the
//! id it touched after the database committed it.

use actix_web::{HttpResponse, http::header, web};
use shared::{
    ApiError,
    cache::{Cache, Entry, cached_response},
    error::ErrorBody,
    pagination::{ListQuery, ListRequest, list_response},
    validate::Object,
};

use crate::{
    domain::{User, UserError, UserInput},
    openapi,
    repository::UserRepository,
};

/// What the handlers share.
pub struct UsersState {
    /// The table.
    pub repository: UserRepository,
    /// Cache-aside for reads by id.
    pub cache: Cache,
}

/// Adds the users routes (and the OpenAPI document) to an app.
pub fn configure(config: &mut web::ServiceConfig, state: web::Data<UsersState>) {
    config
        .app_data(state)
        .route("/api/users/openapi.json", web::get().to(openapi::document))
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

fn cache_key(id: i64) -> String {
    format!("user:{id}")
}

/// Lists users, a page at a time, or those named by `?ids=`.
#[utoipa::path(get, path = "/api/users", tag = "users", params(ListQuery),
    responses(
        (status = 200, description = "Users by id", body = Vec<User>,
            headers(("X-Total-Count" = i64, description = "Rows in all pages (or found, for ids)"))),
        (status = 400, description = "Bad query string", body = ErrorBody),
    ))]
pub async fn list_users(
    state: web::Data<UsersState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    match query.into_inner().into_request()? {
        ListRequest::Page(page) => {
            let (users, total) = state.repository.list(page).await?;
            Ok(list_response(&users, total))
        }
        ListRequest::Ids(ids) => {
            let users = state.repository.by_ids(&ids).await?;
            Ok(list_response(&users, users.len() as i64))
        }
    }
}

/// One user, from the cache when it can.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = User,
            headers(("X-Cache" = String, description = "hit or miss"))),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn get_user(
    state: web::Data<UsersState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (status, entry) = state
        .cache
        .get_or_load(&cache_key(id), || async {
            Ok::<_, UserError>(Entry::json(state.repository.find(id).await?.as_ref()))
        })
        .await
        .map_err(ApiError::from)?;
    Ok(cached_response(status, entry, || {
        UserError::NotFound(id).into()
    }))
}

/// Creates a user.
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = UserInput,
    responses(
        (status = 201, description = "Created", body = User,
            headers(("Location" = String, description = "The new user's URL"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "Email already used", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
pub async fn create_user(
    state: web::Data<UsersState>,
    input: web::Json<Object<UserInput>>,
) -> Result<HttpResponse, ApiError> {
    let Object(input) = input.into_inner();
    let valid = input.validate()?;
    let user = state.repository.insert(&valid).await?;
    // A read of this id before it existed may have cached "missing".
    state.cache.invalidate(&cache_key(user.id)).await;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/users/{}", user.id)))
        .json(user))
}

/// Replaces a user's name and email.
#[utoipa::path(put, path = "/api/users/{id}", tag = "users", request_body = UserInput,
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "Updated", body = User),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "Email already used", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
pub async fn update_user(
    state: web::Data<UsersState>,
    id: web::Path<i64>,
    input: web::Json<Object<UserInput>>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let Object(input) = input.into_inner();
    let valid = input.validate()?;
    let updated = state.repository.update(id, &valid).await;
    state.cache.invalidate(&cache_key(id)).await;
    Ok(HttpResponse::Ok().json(updated?.ok_or(UserError::NotFound(id))?))
}

/// Deletes a user.
#[utoipa::path(delete, path = "/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn delete_user(
    state: web::Data<UsersState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let deleted = state.repository.delete(id).await;
    state.cache.invalidate(&cache_key(id)).await;
    if deleted? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(UserError::NotFound(id).into())
    }
}
