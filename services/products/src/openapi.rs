//! The OpenAPI 3 document of the products API, generated from the handlers' annotations, with
//! the bearer scheme (`bearer_auth`) the write operations require.

use actix_web::HttpResponse;
use runtime::{ErrorBody, ErrorDetail, FieldError};
use server::BearerAuth;
use utoipa::OpenApi;

use crate::{
    domain::{Product, ProductInput},
    routes,
};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(title = "products-service", description = "Products of the platform (docs/contracts.md). \
        Reads are public; create, update and delete need an admin's access token \
        (`Authorization: Bearer <JWT>`)."),
    paths(routes::list_products, routes::get_product, routes::create_product, routes::update_product, routes::delete_product),
    components(schemas(Product, ProductInput, ErrorBody, ErrorDetail, FieldError)),
    modifiers(&BearerAuth),
    tags((name = "products", description = "Products"))
)]
pub struct ApiDoc;

/// `GET /api/products/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
