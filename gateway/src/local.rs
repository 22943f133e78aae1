//! What the gateway answers itself: `GET /` (the seed's `API Gateway`), `/healthz`, `/readyz`
//! (every route has an instance that is in rotation and accepts connections) and `/metrics`.

use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header::CONTENT_TYPE};
use hyper::body::Incoming;
use serde_json::json;

use crate::{body::GatewayBody, proxy::Shared};

/// The paths the gateway answers itself.
const LOCAL_PATHS: [&str; 4] = ["/", "/healthz", "/readyz", "/metrics"];

/// Whether a request is one of the gateway's own.
pub fn is_local(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD) && LOCAL_PATHS.contains(&path)
}

/// The answer to `request` when it is one of the gateway's own, else `None`.
pub async fn answer(request: &Request<Incoming>, shared: &Shared) -> Option<Response<GatewayBody>> {
    if !is_local(request.method(), request.uri().path()) {
        return None;
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
        "/readyz" => readiness(shared).await,
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

async fn readiness(shared: &Shared) -> (StatusCode, &'static str, Vec<u8>) {
    let checks = shared.routes.routes().iter().map(|route| async move {
        for instance in route.upstreams.instances() {
            if !route.upstreams.is_healthy(instance) {
                continue;
            }
            let connect = tokio::net::TcpStream::connect(instance.authority.as_str());
            if matches!(
                tokio::time::timeout(Duration::from_millis(500), connect).await,
                Ok(Ok(_))
            ) {
                return None;
            }
        }
        Some(route.prefix.clone())
    });
    let failing: Vec<_> = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect();
    if failing.is_empty() {
        return (
            StatusCode::OK,
            "application/json",
            br#"{"status":"ready"}"#.to_vec(),
        );
    }
    let details: Vec<_> = failing
        .iter()
        .map(|prefix| json!({"field": &**prefix, "message": "no healthy upstream"}))
        .collect();
    let names: Vec<&str> = failing.iter().map(|prefix| &**prefix).collect();
    let body = json!({"error": {"code": "unavailable", "message": format!("not ready: {}", names.join(", ")), "details": details}});
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "application/json",
        body.to_string().into_bytes(),
    )
}

fn metrics(shared: &Shared) -> String {
    let metrics = &shared.telemetry.metrics;
    for route in shared.routes.routes() {
        metrics
            .ejected_instances
            .with_label_values(&[&route.prefix])
            .set(route.upstreams.ejected() as i64);
    }
    metrics.base.render()
}
