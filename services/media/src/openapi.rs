//! The OpenAPI 3 document of the media API, generated from the handlers' annotations.

use actix_web::HttpResponse;
use shared::error::{ErrorBody, ErrorDetail, FieldError};
use utoipa::OpenApi;

use crate::{
    domain::{Media, UploadForm, UploadResponse},
    routes, upload,
};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(title = "media-service", description = "Uploads and downloads of media files (docs/contracts.md)."),
    paths(upload::upload, upload::upload_media, routes::list_media, routes::get_media,
        routes::delete_media, routes::download_content, routes::download_thumbnail),
    components(schemas(Media, UploadResponse, UploadForm, ErrorBody, ErrorDetail, FieldError)),
    tags((name = "media", description = "Media files"))
)]
pub struct ApiDoc;

/// `GET /api/media/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
