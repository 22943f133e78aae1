//! The handlers of `/api/products…`. Reads by id go through the cache; every write invalidates the
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
    domain::{Product, ProductError, ProductInput},
    openapi,
    repository::ProductRepository,
};

/// What the handlers share.
pub struct ProductsState {
    /// The table.
    pub repository: ProductRepository,
    /// Cache-aside for reads by id.
    pub cache: Cache,
}

/// Adds the products routes (and the OpenAPI document) to an app.
pub fn configure(config: &mut web::ServiceConfig, state: web::Data<ProductsState>) {
    config
        .app_data(state)
        .route(
            "/api/products/openapi.json",
            web::get().to(openapi::document),
        )
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

fn cache_key(id: i64) -> String {
    format!("product:{id}")
}

/// Lists products, a page at a time, or those named by `?ids=`.
#[utoipa::path(get, path = "/api/products", tag = "products", params(ListQuery),
    responses(
        (status = 200, description = "Products by id", body = Vec<Product>,
            headers(("X-Total-Count" = i64, description = "Rows in all pages (or found, for ids)"))),
        (status = 400, description = "Bad query string", body = ErrorBody),
    ))]
pub async fn list_products(
    state: web::Data<ProductsState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    match query.into_inner().into_request()? {
        ListRequest::Page(page) => {
            let (products, total) = state.repository.list(page).await?;
            Ok(list_response(&products, total))
        }
        ListRequest::Ids(ids) => {
            let products = state.repository.by_ids(&ids).await?;
            Ok(list_response(&products, products.len() as i64))
        }
    }
}

/// One product, from the cache when it can.
#[utoipa::path(get, path = "/api/products/{id}", tag = "products",
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = Product,
            headers(("X-Cache" = String, description = "hit or miss"))),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 404, description = "No such product", body = ErrorBody),
    ))]
pub async fn get_product(
    state: web::Data<ProductsState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (status, entry) = state
        .cache
        .get_or_load(&cache_key(id), || async {
            Ok::<_, ProductError>(Entry::json(state.repository.find(id).await?.as_ref()))
        })
        .await
        .map_err(ApiError::from)?;
    Ok(cached_response(status, entry, || {
        ProductError::NotFound(id).into()
    }))
}

/// Creates a product.
#[utoipa::path(post, path = "/api/products", tag = "products", request_body = ProductInput,
    responses(
        (status = 201, description = "Created", body = Product,
            headers(("Location" = String, description = "The new product's URL"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
pub async fn create_product(
    state: web::Data<ProductsState>,
    input: web::Json<Object<ProductInput>>,
) -> Result<HttpResponse, ApiError> {
    let Object(input) = input.into_inner();
    let valid = input.validate()?;
    let product = state.repository.insert(&valid).await?;
    // A read of this id before it existed may have cached "missing".
    state.cache.invalidate(&cache_key(product.id)).await;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/products/{}", product.id)))
        .json(product))
}

/// Replaces a product's name and price.
#[utoipa::path(put, path = "/api/products/{id}", tag = "products", request_body = ProductInput,
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "Updated", body = Product),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
pub async fn update_product(
    state: web::Data<ProductsState>,
    id: web::Path<i64>,
    input: web::Json<Object<ProductInput>>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let Object(input) = input.into_inner();
    let valid = input.validate()?;
    let updated = state.repository.update(id, &valid).await;
    state.cache.invalidate(&cache_key(id)).await;
    Ok(HttpResponse::Ok().json(updated?.ok_or(ProductError::NotFound(id))?))
}

/// Deletes a product.
#[utoipa::path(delete, path = "/api/products/{id}", tag = "products",
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 404, description = "No such product", body = ErrorBody),
    ))]
pub async fn delete_product(
    state: web::Data<ProductsState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let deleted = state.repository.delete(id).await;
    state.cache.invalidate(&cache_key(id)).await;
    if deleted? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ProductError::NotFound(id).into())
    }
}
