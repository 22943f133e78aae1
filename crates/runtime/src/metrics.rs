//! The Prometheus metrics of one service instance.
//!
//! Each instance owns its [`Metrics`] (its own registry), so several services in one process
//! (the `stack`, or tests) never count into each other's series. Every registry also reports
//! the process: `process_resident_memory_bytes`, `process_cpu_seconds_total`,
//! `process_open_fds` (and `process_max_fds`, `process_threads`, `process_start_time_seconds`,
//! `process_virtual_memory_bytes`), read from `/proc` at each scrape; on systems without
//! `/proc` those series are absent.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The registry and the series every service has.
#[derive(Clone)]
pub struct Metrics {
    /// Where every series below is registered; services may add their own.
    pub registry: Registry,
    /// `http_requests_total{method, route, status}`.
    pub http_requests: IntCounterVec,
    /// `http_request_duration_seconds{method, route}`.
    pub http_duration: HistogramVec,
    /// `cache_requests_total{cache, result}`: `hit`, `miss`, `error`, `bypass`.
    pub cache_requests: IntCounterVec,
    /// `cache_loads_total{cache}`: loads from the source of truth after a miss.
    pub cache_loads: IntCounterVec,
    /// `dependency_up{dependency, required}`: 1 when the dependency answered its last
    /// readiness check, 0 when it did not (an optional one at 0 is a degraded instance).
    pub dependency_up: IntGaugeVec,
}

impl Metrics {
    /// Fresh series for `service` (a constant label on each).
    pub fn new(service: &str) -> Self {
        let registry = Registry::new_custom(
            None,
            Some([("service".to_owned(), service.to_owned())].into()),
        )
        .expect("a valid constant label");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer HTTP requests",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric");
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "cache_requests_total",
                "Cache look-ups by result (hit, miss, error, bypass)",
            ),
            &["cache", "result"],
        )
        .expect("valid metric");
        let cache_loads = IntCounterVec::new(
            Opts::new(
                "cache_loads_total",
                "Loads from the database after a cache miss",
            ),
            &["cache"],
        )
        .expect("valid metric");
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                "dependency_up",
                "Whether each dependency answered its last readiness check (1) or not (0)",
            ),
            &["dependency", "required"],
        )
        .expect("valid metric");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process series registered once");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(cache_requests.clone()),
            Box::new(cache_loads.clone()),
            Box::new(dependency_up.clone()),
        ] {
            registry
                .register(collector)
                .expect("each series registered once");
        }
        Self {
            registry,
            http_requests,
            http_duration,
            cache_requests,
            cache_loads,
            dependency_up,
        }
    }

    /// Counts one answered request and its latency (method labels bounded by [`method_label`]).
    pub fn observe_request(
        &self,
        method: &str,
        route: &str,
        status: &str,
        elapsed: std::time::Duration,
    ) {
        let method = method_label(method);
        self.http_requests
            .with_label_values(&[method, route, status])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// The `method` label of a request: the method for the nine of RFC 9110 (and PATCH), `OTHER`
/// for anything else, so a client inventing methods cannot create series without bound.
pub fn method_label(method: &str) -> &str {
    match method {
        "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE" | "PATCH" => {
            method
        }
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_reports_the_process() {
        let text = Metrics::new("users").render();
        for series in [
            "process_resident_memory_bytes{service=\"users\"}",
            "process_cpu_seconds_total{service=\"users\"}",
            "process_open_fds{service=\"users\"}",
        ] {
            let value: f64 = text
                .lines()
                .find_map(|line| line.strip_prefix(series))
                .unwrap_or_else(|| panic!("{series} in\n{text}"))
                .trim()
                .parse()
                .expect("a number");
            assert!(
                value > 0.0 || series.starts_with("process_cpu"),
                "{series} {value}"
            );
        }
    }

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("BREW"), "OTHER");
    }
}
