//! The OpenAPI 3 document of the products API, generated from the handlers' annotations, with
//! the bearer scheme (`bearer_auth`) the write operations require.

use actix_web::HttpResponse;
use shared::error::{ErrorBody, ErrorDetail, FieldError};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{
    domain::{Product, ProductInput},
    routes,
};

/// The name of the security scheme the operations refer to.
pub const BEARER_AUTH: &str = "bearer_auth";

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

/// Adds the `bearer_auth` scheme: HTTP bearer, an access token (JWT) of users-service.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "An access token from users-service (`/api/auth/login`).",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER_AUTH, SecurityScheme::Http(scheme));
    }
}

/// `GET /api/products/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
