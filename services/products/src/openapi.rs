//! The OpenAPI 3 document of the products API, generated from the handlers' annotations.

use actix_web::HttpResponse;
use shared::error::{ErrorBody, ErrorDetail, FieldError};
use utoipa::OpenApi;

use crate::{
    domain::{Product, ProductInput},
    routes,
};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(title = "products-service", description = "Products of the platform (docs/contracts.md)."),
    paths(routes::list_products, routes::get_product, routes::create_product, routes::update_product, routes::delete_product),
    components(schemas(Product, ProductInput, ErrorBody, ErrorDetail, FieldError)),
    tags((name = "products", description = "Products"))
)]
pub struct ApiDoc;

/// `GET /api/products/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
