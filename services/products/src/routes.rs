//! The handlers of `/api/products…`: each carries its OpenAPI description and hands the request
//! to the shared [`Resource`] (cache-aside reads, invalidation after writes).
//!
//! Reads are public. Create, update and delete need an admin: anonymous callers get 401,
//! signed-in callers without the admin role 403 ([`Admin`]). A token that does not verify is
//! refused with 401 on every route, reads included (the [`Caller`] extractor), as the gateway
//! refuses it.

use actix_web::{HttpResponse, web};
use runtime::ErrorBody;
use server::{Admin, ApiError, Caller, JsonObject, ListQuery, Resource};

use crate::{
    domain::{Product, ProductInput},
    repository::ProductRepository,
};

/// What the handlers share: the table behind the shared REST shape.
pub type ProductsState = Resource<ProductRepository>;

/// Adds the products routes to an app.
pub fn configure(config: &mut web::ServiceConfig, state: web::Data<ProductsState>) {
    config
        .app_data(state)
        .service(
            web::resource("/api/products")
                .route(web::get().to(list_products))
                .route(web::post().to(create_product)),
        )
        .service(
            web::resource("/api/products/{id}")
                .route(web::get().to(get_product))
                .route(web::put().to(update_product))
                .route(web::delete().to(delete_product)),
        );
}

/// Lists products, a page at a time, or those named by `?ids=`.
#[utoipa::path(get, path = "/api/products", tag = "products", params(ListQuery),
    security((), ("bearer_auth" = [])),
    responses(
        (status = 200, description = "Products by id", body = Vec<Product>,
            headers(
                ("Link" = String, description = "RFC 8288 links to the next, previous and first pages (by cursor)"),
                ("X-Total-Count" = i64, description = "Rows in all pages, with count=exact (or found, for ids)"),
                ("X-Total-Count-Estimate" = i64, description = "The database's estimate of the rows (PostgreSQL), without count=exact"))),
        (status = 400, description = "Bad query string", body = ErrorBody),
        (status = 401, description = "A token was sent and is invalid (reads need none)",
            body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
    ))]
pub async fn list_products(
    _caller: Caller,
    state: web::Data<ProductsState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    state.list(query.into_inner()).await
}

/// One product, from the cache when it can.
#[utoipa::path(get, path = "/api/products/{id}", tag = "products",
    params(("id" = i64, Path, description = "Product id")),
    security((), ("bearer_auth" = [])),
    responses(
        (status = 200, description = "The product", body = Product,
            headers(("X-Cache" = String, description = "hit or miss"))),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 401, description = "A token was sent and is invalid (reads need none)",
            body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 404, description = "No such product", body = ErrorBody),
    ))]
pub async fn get_product(
    _caller: Caller,
    state: web::Data<ProductsState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    state.get(id.into_inner()).await
}

/// Creates a product (admins).
#[utoipa::path(post, path = "/api/products", tag = "products", request_body = ProductInput,
    security(("bearer_auth" = [])),
    responses(
        (status = 201, description = "Created", body = Product,
            headers(("Location" = String, description = "The new product's URL"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No token, or an invalid one", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 403, description = "Signed in without the admin role", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
pub async fn create_product(
    _caller: Admin,
    state: web::Data<ProductsState>,
    input: web::Json<JsonObject<ProductInput>>,
) -> Result<HttpResponse, ApiError> {
    let JsonObject(input) = input.into_inner();
    state.create(input.validate()?).await
}

/// Replaces a product's name and price (admins).
#[utoipa::path(put, path = "/api/products/{id}", tag = "products", request_body = ProductInput,
    params(("id" = i64, Path, description = "Product id")),
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "Updated", body = Product),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "No token, or an invalid one", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 403, description = "Signed in without the admin role", body = ErrorBody),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
pub async fn update_product(
    _caller: Admin,
    state: web::Data<ProductsState>,
    id: web::Path<i64>,
    input: web::Json<JsonObject<ProductInput>>,
) -> Result<HttpResponse, ApiError> {
    let JsonObject(input) = input.into_inner();
    state.update(id.into_inner(), input.validate()?).await
}

/// Deletes a product (admins).
#[utoipa::path(delete, path = "/api/products/{id}", tag = "products",
    params(("id" = i64, Path, description = "Product id")),
    security(("bearer_auth" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 401, description = "No token, or an invalid one", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 403, description = "Signed in without the admin role", body = ErrorBody),
        (status = 404, description = "No such product", body = ErrorBody),
    ))]
pub async fn delete_product(
    _caller: Admin,
    state: web::Data<ProductsState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    state.delete(id.into_inner()).await
}
