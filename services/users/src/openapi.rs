//! The OpenAPI 3 document of the users API, generated from the handlers' annotations.

use actix_web::HttpResponse;
use runtime::{ErrorBody, ErrorDetail, FieldError};
use server::BearerAuth;
use utoipa::OpenApi;

use crate::{
    accounts::Account,
    domain::{User, UserInput},
    routes,
    session::{self, LoginInput, PasswordInput, RefreshInput, Session, SignupInput},
};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(title = "users-service", description = "Users and identities of the platform (docs/contracts.md)."),
    paths(routes::list_users, routes::get_user, routes::create_user, routes::update_user, routes::delete_user,
        session::signup, session::login, session::refresh, session::logout, session::me,
        session::set_password, session::jwks),
    components(schemas(User, UserInput, Account, Session, SignupInput, LoginInput, RefreshInput,
        PasswordInput, ErrorBody, ErrorDetail, FieldError)),
    modifiers(&BearerAuth),
    tags((name = "users", description = "Users"), (name = "auth", description = "Accounts and tokens"))
)]
pub struct ApiDoc;

/// `GET /api/users/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
