//! `GET /healthz` (alive), `GET /readyz` (every dependency answers, else 503 naming the failing
//! ones) and `GET /metrics` (Prometheus text) — served by every service on its own port.

use std::sync::Arc;

use actix_web::{HttpResponse, http::StatusCode, web};
use futures_util::future::{BoxFuture, join_all};
use serde_json::json;

use crate::{
    error::{ErrorBody, ErrorDetail, FieldError, code_for},
    request::Observability,
};

/// One dependency check: resolves `Ok` when the dependency answers.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// The dependencies `/readyz` checks, by name (`database`, `cache`, …).
#[derive(Clone, Default)]
pub struct Readiness {
    /// Name and check of each dependency.
    pub checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    /// Adds a dependency.
    pub fn with(mut self, name: &'static str, check: Check) -> Self {
        self.checks.push((name, check));
        self
    }
}

/// Adds the three routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let results = join_all(readiness.checks.iter().map(|(name, check)| {
        let check = check.clone();
        async move { (*name, check().await) }
    }))
    .await;
    let failures: Vec<FieldError> = results
        .iter()
        .filter_map(|(name, result)| {
            result
                .as_ref()
                .err()
                .map(|error| FieldError::new(*name, format!("{error:#}")))
        })
        .collect();
    if failures.is_empty() {
        let checks: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(name, _)| ((*name).to_owned(), json!("ok")))
            .collect();
        return HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}));
    }
    let names: Vec<&str> = failures
        .iter()
        .map(|failure| failure.field.as_str())
        .collect();
    let status = StatusCode::SERVICE_UNAVAILABLE;
    HttpResponse::build(status).json(ErrorBody {
        error: ErrorDetail {
            code: code_for(status),
            message: format!("not ready: {} unavailable", names.join(", ")),
            details: Some(failures),
        },
    })
}

async fn metrics(observability: web::Data<Observability>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(observability.metrics.render())
}

/// Asks the server on `127.0.0.1:port` for `GET /healthz`: exit status 0 on a 200, 1 otherwise
/// (`--healthcheck`, for container health checks).
pub fn probe(port: u16) -> std::process::ExitCode {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let answered = std::net::TcpStream::connect_timeout(
        &(std::net::Ipv4Addr::LOCALHOST, port).into(),
        timeout,
    )
    .and_then(|mut stream| {
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0_u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    })
    .unwrap_or(false);
    if answered {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
