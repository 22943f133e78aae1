//! The API docs at `/api/docs`: Swagger UI over every OpenAPI document the route table names
//! (a route's `openapi` key), with a sign-in form, all served from the binary (see
//! `assets/README.md`): nothing is fetched from another origin, which the page's
//! `Content-Security-Policy` enforces.
//!
//! | path | what it is | cached |
//! |---|---|---|
//! | `/api/docs` | the page, with the documents' list | revalidated (`no-cache`) |
//! | `/api/docs/docs.js`, `/api/docs/docs.css` | the page's own script and style | revalidated |
//! | `/api/docs/assets/swagger-ui-<version>/<file>` | Swagger UI, gzipped | a year, `immutable` |
//!
//! Swagger UI's files are kept gzipped and sent with `Content-Encoding: gzip` to a client that
//! takes it, decompressed for one that does not (once per file, then kept).

use std::{io::Read, sync::OnceLock};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderValue, StatusCode,
    header::{
        ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
        VARY, X_CONTENT_TYPE_OPTIONS,
    },
};
use serde_json::json;

use crate::routing::RouteTable;

/// The page's path.
pub const PAGE_PATH: &str = "/api/docs";
/// The version of the vendored `swagger-ui-dist` (in its assets' paths, so a new one is a new
/// URL and the long cache never serves a stale file).
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

/// Where Swagger UI's files are served.
const ASSETS_PATH: &str = "/api/docs/assets/swagger-ui-5.35.0";

/// The page's policy: its own origin only; images may be `data:` (Swagger UI's icons), and
/// one inline style runs, by its hash: the one [`LOGO_STYLE`] of Swagger UI's logo.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The `<style>` element of the logo in Swagger UI's top bar (in its standalone preset), whose
/// SHA-256 the policy allows.
pub const LOGO_STYLE: &str =
    ".logo_small_svg__cls-2{fill:#fff}.logo_small_svg__cls-3{fill:#85ea2d}";

/// The page, with `{assets}` and `{documents}` to fill in.
const PAGE: &str = include_str!("../assets/docs.html");

/// `(path, content type, bytes)` of the page's own files, sent as they are.
const OWN_FILES: [(&str, &str, &[u8]); 2] = [
    (
        "/api/docs/docs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/docs.js"),
    ),
    (
        "/api/docs/docs.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/docs.css"),
    ),
];

/// `(file name, content type, gzipped bytes)` of Swagger UI's files.
const SWAGGER_UI: [(&str, &str, &[u8]); 3] = [
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/swagger-ui-bundle.js.gz"),
    ),
    (
        "swagger-ui-standalone-preset.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/swagger-ui-standalone-preset.js.gz"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/swagger-ui.css.gz"),
    ),
];

/// Whether `path` is the docs page or one of its files.
pub fn is_docs(path: &str) -> bool {
    crate::routing::is_under(path, PAGE_PATH)
}

/// A response of the docs: status, fields and body.
pub struct DocsAnswer {
    /// 200, or 404 for a file the docs do not have.
    pub status: StatusCode,
    /// Content type, caching, encoding, policy.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// The answer to a `GET` of `path` (under `/api/docs`), for a client that sent `request`'s
/// fields; `page` is the page [`page`] built from the routes at start.
pub fn answer(path: &str, request: &HeaderMap, page: &Bytes) -> DocsAnswer {
    let mut headers = HeaderMap::new();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if path == PAGE_PATH {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
        );
        return DocsAnswer {
            status: StatusCode::OK,
            headers,
            body: page.clone(),
        };
    }
    if let Some((_, content_type, bytes)) = OWN_FILES.iter().find(|(own, ..)| *own == path) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return DocsAnswer {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(bytes),
        };
    }
    let asset = path
        .strip_prefix(ASSETS_PATH)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|name| SWAGGER_UI.iter().position(|(file, ..)| *file == name));
    let Some(index) = asset else {
        return not_found(path, headers);
    };
    let (_, content_type, gzipped) = SWAGGER_UI[index];
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    let body = if accepts_gzip(request) {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        Bytes::from_static(gzipped)
    } else {
        plain(index)
    };
    DocsAnswer {
        status: StatusCode::OK,
        headers,
        body,
    }
}

/// Swagger UI's files decompressed, each the first time a client that takes no gzip asks for
/// it: later answers share its bytes, so such a client costs no decompression.
static PLAIN: [OnceLock<Bytes>; SWAGGER_UI.len()] = [const { OnceLock::new() }; SWAGGER_UI.len()];

/// The decompressed bytes of Swagger UI's file at `index` of [`SWAGGER_UI`].
fn plain(index: usize) -> Bytes {
    PLAIN[index]
        .get_or_init(|| {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(SWAGGER_UI[index].2)
                .read_to_end(&mut plain)
                .expect("the vendored assets are gzip (tested)");
            Bytes::from(plain)
        })
        .clone()
}

/// The 404 of docs/contracts.md for a file the docs do not have.
fn not_found(path: &str, mut headers: HeaderMap) -> DocsAnswer {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = json!({"error": {"code": "not_found", "message": format!("no docs file {path}")}});
    DocsAnswer {
        status: StatusCode::NOT_FOUND,
        headers,
        body: Bytes::from(body.to_string()),
    }
}

/// The page, listing the OpenAPI documents of the routes ([`RouteTable::documents`]), each
/// named by its route's prefix: built once, when the gateway starts (the routes are fixed).
pub fn page(routes: &RouteTable) -> Bytes {
    let documents: Vec<serde_json::Value> = routes
        .documents()
        .iter()
        .map(|(prefix, url)| json!({"url": &**url, "name": &**prefix}))
        .collect();
    // Inside `<script>`, `<` is escaped so no value can close the element.
    let documents = serde_json::Value::from(documents)
        .to_string()
        .replace('<', "\\u003c");
    Bytes::from(
        PAGE.replace("{assets}", ASSETS_PATH)
            .replace("{documents}", &documents),
    )
}

/// Whether the client takes a gzip-encoded answer ([`runtime::accepts_gzip`] over its
/// `Accept-Encoding` lines).
fn accepts_gzip(request: &HeaderMap) -> bool {
    runtime::accepts_gzip(
        request
            .get_all(ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_encoding(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("a value"),
        );
        headers
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip(&with_encoding("gzip, deflate, br")));
        assert!(accepts_gzip(&with_encoding("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with_encoding("*")));
        assert!(!accepts_gzip(&with_encoding("gzip;q=0, br")));
        assert!(!accepts_gzip(&with_encoding("gzip; q = 0.000")));
        assert!(!accepts_gzip(&with_encoding("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
        // `*` does not override gzip refused by name (runtime::accepts_gzip's rule).
        assert!(!accepts_gzip(&with_encoding("gzip;q=0, *")));
    }

    #[test]
    fn every_asset_is_gzip_and_the_version_is_in_its_path() {
        assert!(ASSETS_PATH.ends_with(&format!("swagger-ui-{SWAGGER_UI_VERSION}")));
        for (name, _, gzipped) in SWAGGER_UI {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(gzipped)
                .read_to_end(&mut plain)
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(plain.len() > gzipped.len(), "{name}");
        }
        assert!(is_docs("/api/docs") && is_docs("/api/docs/docs.js"));
        assert!(!is_docs("/api/docsx") && !is_docs("/api/doc"));
    }

    #[test]
    fn each_file_is_decompressed_once() {
        let routes = RouteTable::new(&crate::config::GatewayConfig::builtin()).expect("routes");
        let path = format!("{ASSETS_PATH}/swagger-ui-bundle.js");
        let first = answer(&path, &HeaderMap::new(), &page(&routes));
        let second = answer(&path, &with_encoding("identity"), &page(&routes));
        assert_eq!(first.status, StatusCode::OK);
        assert!(first.headers.get(CONTENT_ENCODING).is_none());
        assert!(first.body.len() > 1_000_000, "{}", first.body.len());
        assert_eq!(first.body, second.body);
        assert_eq!(
            first.body.as_ptr(),
            second.body.as_ptr(),
            "the second answer shares the first one's bytes"
        );
        let gzipped = answer(&path, &with_encoding("gzip"), &page(&routes));
        assert_eq!(gzipped.headers[CONTENT_ENCODING], "gzip");
        assert_eq!(gzipped.body, SWAGGER_UI[0].2);
    }

    #[test]
    fn the_policy_allows_the_logos_style_by_its_hash() {
        use base64::Engine;
        use sha2::Digest;
        let (_, _, preset) = SWAGGER_UI[1];
        let mut plain = String::new();
        flate2::read::GzDecoder::new(preset)
            .read_to_string(&mut plain)
            .expect("the preset");
        assert!(
            plain.contains(&format!("\"{LOGO_STYLE}\"")),
            "the logo's style"
        );
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(LOGO_STYLE.as_bytes()));
        assert!(
            CONTENT_SECURITY_POLICY_VALUE.contains(&format!("'sha256-{hash}'")),
            "{hash}"
        );
    }

    #[test]
    fn the_page_lists_each_document_once_and_escapes_it() {
        let mut config = crate::config::GatewayConfig::builtin();
        config.routes[0].openapi = Some("/a</script>.json".to_owned());
        config.routes[1].openapi = Some("/a</script>.json".to_owned());
        let routes = RouteTable::new(&config).expect("routes");
        let page = String::from_utf8(page(&routes).to_vec()).expect("UTF-8");
        assert!(!page.contains("/a</script>"), "{page}");
        assert_eq!(page.matches("/a\\u003c/script>.json").count(), 1, "{page}");
        assert!(page.contains("/api/products/openapi.json"), "{page}");
        assert!(!page.contains("{assets}") && !page.contains("{documents}"));
    }
}
