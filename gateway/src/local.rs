//! What the gateway answers itself: `GET /` (the text `API Gateway`), `/healthz`, `/readyz`
//! (200 while it runs), `/metrics`, the API docs under `/api/docs` ([`crate::docs`]) and the
//! operations page under `/ops` ([`crate::ops`]), which come before any route (the `/api/...`
//! prefixes included). Under `/api/docs` and `/ops` every method is the gateway's: those
//! other than `GET` and `HEAD` are answered 405 with `Allow: GET, HEAD`, never routed.

use std::net::IpAddr;

use bytes::Bytes;
use http::{
    HeaderValue, Method, Request, Response, StatusCode,
    header::{ALLOW, CONTENT_TYPE},
};
use hyper::body::Incoming;
use serde_json::json;

use crate::{body::GatewayBody, context::Shared, forward::ErrorAnswer};

/// The paths the gateway answers itself.
const LOCAL_PATHS: [&str; 4] = ["/", "/healthz", "/readyz", "/metrics"];

/// Whether a request is one of the gateway's own.
pub fn is_local(method: &Method, path: &str) -> bool {
    is_reserved(path)
        || ((method == Method::GET || method == Method::HEAD) && LOCAL_PATHS.contains(&path))
}

/// Whether `path` is under the gateway's own pages (`/api/docs`, `/ops`), whatever the method.
fn is_reserved(path: &str) -> bool {
    crate::docs::is_docs(path) || crate::ops::is_ops(path)
}

/// The answer to `request` from the client at `client` when it is one of the gateway's own,
/// else `None`.
pub async fn answer(
    request: &Request<Incoming>,
    shared: &Shared,
    client: IpAddr,
) -> Option<Response<GatewayBody>> {
    if !is_local(request.method(), request.uri().path()) {
        return None;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Some(method_not_allowed(request.method(), request.uri().path()));
    }
    if crate::ops::is_ops(request.uri().path()) {
        return Some(crate::ops::answer(request, shared, client).await);
    }
    if crate::docs::is_docs(request.uri().path()) {
        let docs = crate::docs::answer(request.uri().path(), request.headers(), &shared.docs_page);
        let mut response = Response::new(GatewayBody::full(docs.body));
        *response.status_mut() = docs.status;
        *response.headers_mut() = docs.headers;
        return Some(response);
    }
    let (status, content_type, body) = match request.uri().path() {
        "/" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            "API Gateway".as_bytes().to_vec(),
        ),
        "/healthz" => (
            StatusCode::OK,
            "application/json",
            br#"{"status":"ok"}"#.to_vec(),
        ),
        "/readyz" => readiness(shared),
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(shared).into_bytes(),
        ),
        _ => return None,
    };
    let mut response = Response::new(GatewayBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Some(response)
}

/// The 405 of docs/contracts.md for `method` on `path`, one of the gateway's pages.
fn method_not_allowed(method: &Method, path: &str) -> Response<GatewayBody> {
    let answer = ErrorAnswer::new(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{path} answers GET and HEAD, not {method}"),
    );
    let mut response = Response::new(GatewayBody::full(Bytes::from(answer.body)));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// Ready while the gateway runs, whatever its upstreams do: one route's instances all down
/// is that route's 502s, not a reason to take the whole gateway out of a load balancer (in
/// Kubernetes, out of the Service's endpoints). Draining, it accepts no connection, so a probe
/// fails then. The routes with no instance in rotation are named in `degraded`, for people.
fn readiness(shared: &Shared) -> (StatusCode, &'static str, Vec<u8>) {
    let degraded: Vec<&str> = shared
        .routes
        .routes()
        .iter()
        .filter(|route| route.upstreams.none_in_rotation())
        .map(|route| &*route.prefix)
        .collect();
    let body = json!({"status": "ready", "degraded": degraded});
    (
        StatusCode::OK,
        "application/json",
        body.to_string().into_bytes(),
    )
}

/// The gateway's metrics text, its ejected-instance gauges set first.
pub(crate) fn metrics(shared: &Shared) -> String {
    let metrics = &shared.telemetry.metrics;
    for route in shared.routes.routes() {
        metrics
            .ejected_instances
            .with_label_values(&[&route.prefix])
            .set(route.upstreams.ejected() as i64);
    }
    metrics.base.render()
}
