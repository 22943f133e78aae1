//! The OpenAPI 3 document of the media API, generated from the handlers' annotations, with
//! the bearer scheme (`bearer_auth`) uploads and deletes require and reads accept.

use actix_web::HttpResponse;
use shared::error::{ErrorBody, ErrorDetail, FieldError};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{
    domain::{Media, UploadForm, UploadResponse, Visibility},
    routes, upload,
};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(title = "media-service", description = "Uploads and downloads of media files (docs/contracts.md). \
        Uploads and deletes need an access token (`Authorization: Bearer <JWT>`); an item is \
        read by its owner, admins, and anyone when it is public."),
    paths(upload::upload, upload::upload_media, routes::list_media, routes::get_media,
        routes::delete_media, routes::download_content, routes::download_thumbnail),
    components(schemas(Media, UploadResponse, UploadForm, Visibility, ErrorBody, ErrorDetail, FieldError)),
    modifiers(&BearerAuth),
    tags((name = "media", description = "Media files"))
)]
pub struct ApiDoc;

/// The name of the security scheme the operations refer to.
pub const BEARER_AUTH: &str = "bearer_auth";

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

/// `GET /api/media/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
