//! The OpenAPI 3 document of the media API, generated from the handlers' annotations, with
//! the bearer scheme (`bearer_auth`) uploads and deletes require and reads accept.

use actix_web::HttpResponse;
use runtime::{ErrorBody, ErrorDetail, FieldError};
use server::BearerAuth;
use utoipa::OpenApi;

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

/// `GET /api/media/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
