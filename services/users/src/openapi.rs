//! The OpenAPI 3 document of the users API, generated from the handlers' annotations.

use actix_web::HttpResponse;
use shared::error::{ErrorBody, ErrorDetail, FieldError};
use utoipa::OpenApi;

use crate::{
    domain::{User, UserInput},
    routes,
};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(title = "users-service", description = "Users of the platform (docs/contracts.md)."),
    paths(routes::list_users, routes::get_user, routes::create_user, routes::update_user, routes::delete_user),
    components(schemas(User, UserInput, ErrorBody, ErrorDetail, FieldError)),
    tags((name = "users", description = "Users"))
)]
pub struct ApiDoc;

/// `GET /api/users/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
