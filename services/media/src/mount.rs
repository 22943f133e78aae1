//! The routes of the media API mounted on an app: the upload ([`crate::upload`]), the list,
//! read, delete and signed downloads ([`crate::routes`]) and the OpenAPI document
//! ([`crate::openapi`]). The handler modules do not know each other; this is where they meet.

use actix_web::web;

use crate::{openapi, routes, state::MediaState, upload};

/// Adds the media routes, and `state` for their handlers, to an app.
pub fn configure(config: &mut web::ServiceConfig, state: web::Data<MediaState>) {
    config
        .app_data(state)
        .route("/api/media/openapi.json", web::get().to(openapi::document))
        .route("/api/upload", web::post().to(upload::upload))
        .service(
            web::resource("/api/media")
                .route(web::get().to(routes::list_media))
                .route(web::post().to(upload::upload_media)),
        )
        .service(
            web::resource("/api/media/{id}")
                .route(web::get().to(routes::get_media))
                .route(web::delete().to(routes::delete_media)),
        )
        .route(
            "/api/media/{id}/content",
            web::get().to(routes::download_content),
        )
        .route(
            "/api/media/{id}/thumbnail",
            web::get().to(routes::download_thumbnail),
        );
}
