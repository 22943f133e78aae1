//! What the gateway answers under `/ops` (`GET` and `HEAD`), before any route:
//!
//! | path | what it is |
//! |---|---|
//! | `/ops` | the page (sign-in form, then the charts, queues and dead letters) |
//! | `/ops/assets/ops.js`, `/ops/assets/ops.css` | its script and style, from the binary |
//! | `/ops/api/overview` | the instances' series ([`super::Ops::overview`]): admins only |
//!
//! The page is under a `Content-Security-Policy` that allows its own origin only and no
//! inline script or style; the script builds every element with `textContent`, never markup
//! from data (a dead letter's error is whatever a job made of it).

use std::net::IpAddr;

use bytes::Bytes;
use http::{
    HeaderMap, HeaderValue, Request, Response, StatusCode,
    header::{
        AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, RETRY_AFTER,
        WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
    },
};

use crate::{
    body::GatewayBody,
    config::RouteAuth,
    context::Shared,
    forward::ErrorAnswer,
    identity::{ClientKey, Refusal, authorize},
};

/// The page's path.
pub const PAGE_PATH: &str = "/ops";
/// The overview's path.
pub const OVERVIEW_PATH: &str = "/ops/api/overview";

/// The page's policy: its own origin for scripts, styles and calls; nothing inline; no frame.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `(path, content type, bytes)` of the page and its files.
const FILES: [(&str, &str, &[u8]); 3] = [
    (
        PAGE_PATH,
        "text/html; charset=utf-8",
        include_bytes!("../../assets/ops.html"),
    ),
    (
        "/ops/assets/ops.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/ops.js"),
    ),
    (
        "/ops/assets/ops.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/ops.css"),
    ),
];

/// Whether `path` is the page or below it.
pub fn is_ops(path: &str) -> bool {
    crate::routing::is_under(path, PAGE_PATH)
}

/// The answer to a `GET` under `/ops` from the client at `client`. The overview draws from
/// the gateway's rate limiter as a proxied request does (a refused token from its address's
/// bucket), so guessing tokens there is throttled too.
pub async fn answer<B>(
    request: &Request<B>,
    shared: &Shared,
    client: IpAddr,
) -> Response<GatewayBody> {
    let path = request.uri().path();
    if path == OVERVIEW_PATH {
        let authorization = request
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes);
        let outcome = authorize(&shared.verifier, RouteAuth::Required, authorization).await;
        let key = ClientKey::of(&outcome, client);
        if let Err(retry_after) = shared.admit(&key) {
            let mut response = error(ErrorAnswer::new(
                StatusCode::TOO_MANY_REQUESTS,
                key.limited_message(),
            ));
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after));
            return response;
        }
        return match outcome {
            Ok(Some(principal)) if principal.admin => {
                let body = shared.ops.overview().to_string();
                let mut response = respond(StatusCode::OK, "application/json", Bytes::from(body));
                response
                    .headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Ok(_) => error(ErrorAnswer::new(
                StatusCode::FORBIDDEN,
                "the operations overview is for admins",
            )),
            Err(refusal) => refused(&refusal),
        };
    }
    let Some((_, content_type, bytes)) = FILES.iter().find(|(own, ..)| *own == path) else {
        return error(ErrorAnswer::new(
            StatusCode::NOT_FOUND,
            &format!("no operations page file {path}"),
        ));
    };
    let mut response = respond(StatusCode::OK, content_type, Bytes::from_static(bytes));
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if path == PAGE_PATH {
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
        );
        headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    }
    response
}

/// A response of the gateway's own.
fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<GatewayBody> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let mut response = Response::new(GatewayBody::full(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The answer to a refused token: 401 with its challenge, or 503.
fn refused(refusal: &Refusal) -> Response<GatewayBody> {
    error(ErrorAnswer::refusal(refusal))
}

/// A JSON error of docs/contracts.md.
fn error(answer: ErrorAnswer) -> Response<GatewayBody> {
    let mut response = respond(answer.status, "application/json", Bytes::from(answer.body));
    if let Some(challenge) = answer.challenge {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paths_are_the_pages() {
        assert!(is_ops("/ops") && is_ops("/ops/assets/ops.js") && is_ops("/ops/"));
        assert!(!is_ops("/opsx") && !is_ops("/op") && !is_ops("/api/ops"));
    }

    #[test]
    fn the_page_loads_nothing_inline_nor_from_elsewhere() {
        let page = std::str::from_utf8(FILES[0].2).expect("UTF-8");
        assert!(page.contains(r#"<script src="/ops/assets/ops.js" defer></script>"#));
        assert!(page.contains(r#"<link rel="stylesheet" href="/ops/assets/ops.css">"#));
        assert!(
            !page.contains("<script>") && !page.contains("style="),
            "{page}"
        );
        assert!(!page.contains("http://") && !page.contains("https://"));
        let script = std::str::from_utf8(FILES[1].2).expect("UTF-8");
        assert!(
            !script.contains("innerHTML") && !script.contains("insertAdjacentHTML"),
            "the script builds elements with textContent only"
        );
        let script = script.replace("\"http://www.w3.org/2000/svg\"", "");
        assert!(!script.contains("http://") && !script.contains("https://"));
    }
}
