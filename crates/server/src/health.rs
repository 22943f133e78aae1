//! `GET /healthz` (alive), `GET /readyz` (ready to serve) and `GET /metrics` (Prometheus text),
//! served by every service on its own port.
//!
//! `/readyz` checks each dependency, at most [`CHECK_TIMEOUT`] each. A required one (the
//! service's database) that does not answer makes it 503 naming it: an orchestrator stops
//! sending traffic. An optional one (the Redis cache, which fails open; pub/sub, whose local
//! subscribers are still served) leaves it 200 with `"status": "degraded"` and the failure in
//! `checks`: a Redis blip must not take every instance out of service. Every check sets
//! `dependency_up{dependency, required}`; `/metrics` runs the checks too, so the gauge is fresh
//! whether or not anything probes `/readyz`.

use std::{sync::Arc, time::Duration};

use actix_web::{HttpResponse, http::StatusCode, web};
use futures_util::future::join_all;
use serde_json::json;

use runtime::{ErrorBody, ErrorDetail, FieldError, Metrics, Probe};

use crate::{error::code_for, request::Observability};

/// The longest one check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a failing dependency makes the instance unready or only degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Without it nothing can be served: `/readyz` 503.
    Required,
    /// The instance serves without it, worse: `/readyz` 200, `degraded`.
    Optional,
}

/// A dependency `/readyz` checks.
#[derive(Clone)]
pub struct Dependency {
    /// Its name in the answer and the metric (`database`, `cache`, …).
    pub name: &'static str,
    /// Whether the instance can serve without it.
    pub need: Need,
    /// How it is asked.
    pub probe: Arc<dyn Probe>,
}

/// The dependencies `/readyz` checks.
#[derive(Clone, Default)]
pub struct Readiness {
    /// Each dependency, in the order of the answer.
    pub dependencies: Vec<Dependency>,
}

impl Readiness {
    /// Adds a dependency.
    pub fn with(mut self, name: &'static str, need: Need, probe: impl Probe) -> Self {
        self.dependencies.push(Dependency {
            name,
            need,
            probe: Arc::new(probe),
        });
        self
    }

    /// Runs every check at once (each bounded by [`CHECK_TIMEOUT`]) and records the outcome
    /// in `metrics`: each dependency with its error, if it failed.
    pub async fn evaluate(&self, metrics: &Metrics) -> Vec<(&Dependency, Option<String>)> {
        let results = join_all(self.dependencies.iter().map(|dependency| async move {
            let failure = match tokio::time::timeout(CHECK_TIMEOUT, dependency.probe.probe()).await
            {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(format!("{error:#}")),
                Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (dependency, failure)
        }))
        .await;
        for (dependency, failure) in &results {
            let required = if dependency.need == Need::Required {
                "true"
            } else {
                "false"
            };
            metrics
                .dependency_up
                .with_label_values(&[dependency.name, required])
                .set(i64::from(failure.is_none()));
        }
        results
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

async fn readyz(
    readiness: web::Data<Readiness>,
    observability: web::Data<Observability>,
) -> HttpResponse {
    let results = readiness.evaluate(&observability.metrics).await;
    let unready: Vec<FieldError> = results
        .iter()
        .filter(|(dependency, _)| dependency.need == Need::Required)
        .filter_map(|(dependency, failure)| {
            failure
                .as_ref()
                .map(|failure| FieldError::new(dependency.name, failure.clone()))
        })
        .collect();
    if unready.is_empty() {
        let degraded = results.iter().any(|(_, failure)| failure.is_some());
        let checks: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(dependency, failure)| {
                let state = match failure {
                    None => "ok".to_owned(),
                    Some(failure) => format!("degraded: {failure}"),
                };
                (dependency.name.to_owned(), json!(state))
            })
            .collect();
        let status = if degraded { "degraded" } else { "ready" };
        return HttpResponse::Ok().json(json!({"status": status, "checks": checks}));
    }
    let names: Vec<&str> = unready
        .iter()
        .map(|failure| failure.field.as_str())
        .collect();
    let status = StatusCode::SERVICE_UNAVAILABLE;
    HttpResponse::build(status).json(ErrorBody {
        error: ErrorDetail {
            code: code_for(status),
            message: format!("not ready: {} unavailable", names.join(", ")),
            details: Some(unready),
        },
    })
}

async fn metrics(
    readiness: web::Data<Readiness>,
    observability: web::Data<Observability>,
) -> HttpResponse {
    readiness.evaluate(&observability.metrics).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(observability.metrics.render())
}

#[cfg(test)]
mod tests {
    use actix_web::{App, test};
    use serde_json::Value;

    use super::*;

    /// A dependency that answers `result` at once.
    struct Answering(Result<(), &'static str>);

    impl Probe for Answering {
        fn probe(&self) -> runtime::ProbeFuture<'_> {
            Box::pin(async move { self.0.map_err(anyhow::Error::msg) })
        }
    }

    fn answering(result: Result<(), &'static str>) -> Answering {
        Answering(result)
    }

    /// A dependency that never answers.
    struct Silent;

    impl Probe for Silent {
        fn probe(&self) -> runtime::ProbeFuture<'_> {
            Box::pin(futures_util::future::pending())
        }
    }

    async fn readyz_of(readiness: Readiness) -> (StatusCode, Value, String) {
        let observability = web::Data::new(Observability {
            logger: slog::Logger::root(slog::Discard, slog::o!()),
            metrics: Metrics::new("test"),
            tracer: runtime::Tracer::off(),
        });
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(readiness))
                .app_data(observability)
                .configure(configure),
        )
        .await;
        let response =
            test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
        let status = response.status();
        let body: Value = test::read_body_json(response).await;
        let metrics =
            test::call_and_read_body(&app, test::TestRequest::get().uri("/metrics").to_request())
                .await;
        (
            status,
            body,
            String::from_utf8(metrics.to_vec()).expect("UTF-8"),
        )
    }

    #[actix_web::test]
    async fn a_failing_optional_dependency_degrades_without_unreadiness() {
        let readiness = Readiness::default()
            .with("database", Need::Required, answering(Ok(())))
            .with(
                "cache",
                Need::Optional,
                answering(Err("connection refused")),
            );
        let (status, body, metrics) = readyz_of(readiness).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["checks"]["database"], "ok");
        assert_eq!(body["checks"]["cache"], "degraded: connection refused");
        assert!(
            metrics
                .contains(r#"dependency_up{dependency="cache",required="false",service="test"} 0"#),
            "{metrics}"
        );
        let up = |dependency, required| {
            testing::metric_value(
                &metrics,
                "dependency_up",
                &[("dependency", dependency), ("required", required)],
            )
        };
        assert_eq!(up("cache", "false"), 0.0, "{metrics}");
        assert_eq!(up("database", "true"), 1.0, "{metrics}");
    }

    #[actix_web::test]
    async fn a_failing_required_dependency_is_a_503_naming_it() {
        let readiness = Readiness::default()
            .with("database", Need::Required, answering(Err("no route")))
            .with(
                "cache",
                Need::Optional,
                answering(Err("connection refused")),
            );
        let (status, body, _) = readyz_of(readiness).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(body["error"]["details"][0]["field"], "database");
        assert_eq!(body["error"]["details"].as_array().map(Vec::len), Some(1));
    }

    #[actix_web::test]
    async fn every_dependency_answering_is_ready() {
        let readiness = Readiness::default()
            .with("database", Need::Required, answering(Ok(())))
            .with("cache", Need::Optional, answering(Ok(())));
        let (status, body, _) = readyz_of(readiness).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ready");
    }

    #[actix_web::test]
    async fn a_check_that_never_answers_fails_after_the_timeout() {
        let readiness = Readiness::default().with("database", Need::Required, Silent);
        let started = std::time::Instant::now();
        let (status, body, _) = readyz_of(readiness).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() < CHECK_TIMEOUT * 3,
            "{:?}",
            started.elapsed()
        );
        assert!(
            body["error"]["details"][0]["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("no answer within")),
            "{body}"
        );
    }
}
