//! The gateway's metrics and its access line: one JSON line per request, written when the
//! response has been sent (so `duration_ms` and `bytes` are the whole exchange's), and the
//! request's span when spans are exported.

use std::{net::IpAddr, sync::Arc, time::Instant};

use http::{HeaderValue, Method};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts};
use runtime::{
    AccessLine, AttributeValue, Metrics, SpanId, SpanKind, SpanRecord, TraceContext, Tracer,
};
use slog::Logger;

/// The gateway's series, beside the shared HTTP ones.
#[derive(Clone)]
pub struct GatewayMetrics {
    /// `http_requests_total`, `http_request_duration_seconds` and the registry.
    pub base: Metrics,
    /// `gateway_upstream_errors_total{route, kind}`: `connect`, `timeout`, `protocol`.
    pub upstream_errors: IntCounterVec,
    /// `gateway_open_connections`: client connections open now.
    pub open_connections: IntGauge,
    /// `gateway_ejected_instances{route}`: instances left out now (set at each scrape).
    pub ejected_instances: IntGaugeVec,
    /// `gateway_ejections_total{route, instance}`.
    pub ejections: IntCounterVec,
    /// `gateway_rate_limited_total`.
    pub rate_limited: prometheus::IntCounter,
}

impl GatewayMetrics {
    /// Fresh series.
    pub fn new() -> Self {
        let base = Metrics::new("gateway");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "gateway_upstream_errors_total",
                "Requests that failed upstream, by kind",
            ),
            &["route", "kind"],
        )
        .expect("valid metric");
        let open_connections =
            IntGauge::new("gateway_open_connections", "Client connections open now")
                .expect("valid metric");
        let ejected_instances = IntGaugeVec::new(
            Opts::new(
                "gateway_ejected_instances",
                "Upstream instances ejected now",
            ),
            &["route"],
        )
        .expect("valid metric");
        let ejections = IntCounterVec::new(
            Opts::new(
                "gateway_ejections_total",
                "Upstream instances ejected after failing",
            ),
            &["route", "instance"],
        )
        .expect("valid metric");
        let rate_limited =
            prometheus::IntCounter::new("gateway_rate_limited_total", "Requests refused with 429")
                .expect("valid metric");
        for collector in [
            Box::new(upstream_errors.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(open_connections.clone()),
            Box::new(ejected_instances.clone()),
            Box::new(ejections.clone()),
            Box::new(rate_limited.clone()),
        ] {
            base.registry
                .register(collector)
                .expect("each series registered once");
        }
        Self {
            base,
            upstream_errors,
            open_connections,
            ejected_instances,
            ejections,
            rate_limited,
        }
    }

    /// Creates every route's upstream-error and ejection series at 0, so `rate()` and the
    /// dashboards see them before the first failure (a series that appears only at its first
    /// increment hides that increment from `rate()`).
    pub fn start_at_zero(&self, routes: &crate::routing::RouteTable) {
        for route in routes.routes() {
            for kind in ["connect", "timeout", "protocol"] {
                self.upstream_errors
                    .with_label_values(&[&*route.prefix, kind]);
            }
            for instance in route.upstreams.instances() {
                self.ejections
                    .with_label_values(&[&*route.prefix, &*instance.label]);
            }
        }
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Where access records go.
pub struct Telemetry {
    /// The gateway's logger.
    pub logger: Logger,
    /// Its metrics.
    pub metrics: GatewayMetrics,
    /// Where its spans go (nowhere unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
    pub tracer: Tracer,
}

/// Everything the access line says about one request.
pub struct AccessRecord {
    /// Logger and metrics.
    pub telemetry: Arc<Telemetry>,
    /// When the request arrived.
    pub started: Instant,
    /// Its method.
    pub method: Method,
    /// Its path (without the query, which may hold secrets).
    pub path: String,
    /// The route's prefix, `-` when none matched.
    pub route: Arc<str>,
    /// The instance that answered, if any.
    pub upstream: Option<Arc<str>>,
    /// The status sent.
    pub status: http::StatusCode,
    /// The client's address.
    pub ip: IpAddr,
    /// The client's `User-Agent`.
    pub user_agent: Option<HeaderValue>,
    /// The request id.
    pub request_id: HeaderValue,
    /// The request's trace and the gateway's span of it ([`crate::forward::trace_context`]).
    pub trace: TraceContext,
    /// The client's span, when its `traceparent` named one.
    pub trace_parent: Option<SpanId>,
    /// Response body bytes sent.
    pub bytes: u64,
    /// For 5xx: what went wrong.
    pub error: Option<String>,
    /// The user a verified bearer token proved (the token itself is never logged).
    pub user_id: Option<i64>,
}

impl AccessRecord {
    /// Counts the request, writes its line and records its span.
    pub fn write(self) {
        let elapsed = self.started.elapsed();
        self.telemetry.metrics.base.observe_request(
            self.method.as_str(),
            &self.route,
            self.status.as_str(),
            elapsed,
        );
        let ip = self.ip.to_string();
        let line = AccessLine {
            method: self.method.as_str(),
            path: &self.path,
            route: &self.route,
            status: self.status.as_u16(),
            elapsed,
            ip: &ip,
            user_agent: self
                .user_agent
                .as_ref()
                .and_then(|value| value.to_str().ok())
                .unwrap_or(""),
            request_id: self.request_id.to_str().unwrap_or(""),
            trace: Some(&self.trace),
            upstream: Some(self.upstream.as_deref().unwrap_or("-")),
            bytes: Some(self.bytes),
            error: self
                .error
                .as_deref()
                .filter(|_| self.status.is_server_error()),
        };
        let logger = &self.telemetry.logger;
        match self.user_id {
            None => line.write(logger),
            // The shared line has no `user_id` field: the gateway adds it beside the line, at
            // the level the line itself would take.
            Some(user_id) if self.status.is_server_error() => {
                slog::error!(logger, "request"; line, "user_id" => user_id);
            }
            Some(user_id) => slog::info!(logger, "request"; line, "user_id" => user_id),
        }
        if self.telemetry.tracer.records(&self.trace) {
            self.record_span(elapsed);
        }
    }

    /// The gateway's span of the request (client kind: the call it made for the client).
    fn record_span(&self, elapsed: std::time::Duration) {
        let end = std::time::SystemTime::now();
        let mut attributes = vec![
            (
                "http.request.method",
                AttributeValue::Text(self.method.as_str().to_owned()),
            ),
            ("http.route", AttributeValue::Text(self.route.to_string())),
            ("url.path", AttributeValue::Text(self.path.clone())),
            (
                "http.response.status_code",
                AttributeValue::Int(i64::from(self.status.as_u16())),
            ),
        ];
        if let Some(upstream) = &self.upstream {
            attributes.push(("server.address", AttributeValue::Text(upstream.to_string())));
        }
        self.telemetry.tracer.record(SpanRecord {
            name: format!("{} {}", self.method, self.route),
            kind: SpanKind::Client,
            context: &self.trace,
            parent: self.trace_parent,
            start: end.checked_sub(elapsed).unwrap_or(end),
            end,
            attributes,
            error: self.status.is_server_error(),
        });
    }
}
