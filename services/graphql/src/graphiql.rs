//! GraphiQL, from the binary: the page and its scripts (see `assets/README.md`), so a browser
//! needs nothing but this service (or the gateway) to explore the API.

use std::io::Read;

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, CacheControl, CacheDirective},
    web,
};

/// The page.
const PAGE: &str = include_str!("../assets/graphiql.html");

/// `(name, content type, gzipped bytes)` of each asset.
const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "graphiql.min.js",
        "application/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql.min.js.gz"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/graphiql.min.css.gz"),
    ),
    (
        "react.production.min.js",
        "application/javascript; charset=utf-8",
        include_bytes!("../assets/react.production.min.js.gz"),
    ),
    (
        "react-dom.production.min.js",
        "application/javascript; charset=utf-8",
        include_bytes!("../assets/react-dom.production.min.js.gz"),
    ),
];

/// The GraphiQL page.
pub fn page() -> &'static str {
    PAGE
}

/// Routes `/graphql/assets/{name}`.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/graphql/assets/{name}", web::get().to(asset));
}

async fn asset(request: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some((_, content_type, gzipped)) = ASSETS.iter().find(|(asset, ..)| *asset == *name) else {
        return HttpResponse::NotFound().json(serde_json::json!({
            "error": {"code": "not_found", "message": format!("no asset {name}")}
        }));
    };
    let mut response = HttpResponse::Ok();
    response
        .content_type(*content_type)
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(86_400),
        ]))
        .insert_header((header::VARY, "Accept-Encoding"));
    if server::accepts_gzip(&request) {
        return response
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(*gzipped);
    }
    let mut plain = Vec::new();
    match flate2::read::GzDecoder::new(*gzipped).read_to_end(&mut plain) {
        Ok(_) => response.body(plain),
        Err(error) => HttpResponse::InternalServerError().json(serde_json::json!({
            "error": {"code": "internal", "message": format!("asset {name} is corrupt: {error}")}
        })),
    }
}
