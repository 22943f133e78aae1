//! The operations page at `/ops`, for admins: each upstream instance's health, readiness,
//! request rate, error rate, p99 latency and memory over the last minutes, which the gateway
//! collects itself ([`collector`], `[ops]` of the TOML), beside the worker's queues and dead
//! letters, which the page asks the Jobs API (`/api/jobs`) for with the admin's token.
//!
//! | module | what it holds |
//! |---|---|
//! | [`exposition`] | the Prometheus text format, read leniently; what a scrape gives the charts |
//! | [`series`] | two scrapes to one point (rate, 5xx share, p99); the fixed ring of points |
//! | [`collector`] | the scrapes of every instance, each interval, bounded in time and size |
//! | [`page`] | the page, its script and style (served from the binary), the overview API |
//!
//! [`Ops`] is what the collector writes and the overview reads: one fixed ring of points per
//! instance, so memory stays bounded whatever the gateway's uptime.

pub mod collector;
pub mod exposition;
pub mod page;
pub mod series;

use std::{
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use self::{
    exposition::Reading,
    series::{Point, Ring},
};
use crate::config::{GatewayConfig, OpsConfig};

pub use page::{answer, is_ops};

/// Longest text kept of what an instance says (a readiness check, an error).
const MAX_TEXT: usize = 300;
/// Most readiness checks kept per instance.
const MAX_CHECKS: usize = 16;

/// The collector's settings, from `[ops]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether the collector runs (`[ops] enabled`, and the gateway has upstreams).
    pub enabled: bool,
    /// Time between two scrapes of an instance.
    pub interval: Duration,
    /// How far back the charts go.
    pub window: Duration,
    /// The longest one request of a scrape may take, connection included.
    pub timeout: Duration,
    /// The largest body read of one answer.
    pub max_body_bytes: usize,
    /// Points kept per instance: the window over the interval.
    pub capacity: usize,
}

impl Settings {
    /// The settings of `config`, for a gateway with `upstreams` instances.
    pub fn new(config: &OpsConfig, upstreams: usize) -> Self {
        let capacity = (config.window_secs * 1000).div_ceil(config.interval_ms.max(1)) as usize;
        Self {
            enabled: config.enabled && upstreams > 0,
            interval: Duration::from_millis(config.interval_ms),
            window: Duration::from_secs(config.window_secs),
            timeout: Duration::from_millis(config.timeout_ms),
            max_body_bytes: config.max_body_bytes,
            capacity: capacity.max(1),
        }
    }
}

/// What the collector learnt of an instance in one scrape.
#[derive(Debug, Clone)]
pub struct Probed {
    /// `/healthz` answered 200.
    pub healthy: bool,
    /// What `/readyz` answered.
    pub readiness: Readiness,
    /// What `/metrics` gave, if it answered 200.
    pub reading: Option<Reading>,
    /// Why `/metrics` gave nothing.
    pub error: Option<String>,
}

/// What an instance's `/readyz` said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    /// `ready`, `degraded` (200 with an optional dependency down), `unready` (any other
    /// status) or `unreachable` (no answer).
    pub status: &'static str,
    /// Each dependency and its state (`ok`, or the failure), as the instance named them.
    pub checks: Vec<(String, String)>,
    /// The instance's message when unready, or why it could not be asked.
    pub message: Option<String>,
}

impl Readiness {
    /// The readiness of a `/readyz` answer: 200 with docs/contracts.md's body (`status`,
    /// `checks`), or an error body (`error.message`, `error.details`).
    pub fn of(status: StatusCode, body: &[u8]) -> Self {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if status == StatusCode::OK {
            let checks = body["checks"]
                .as_object()
                .map(|checks| {
                    checks
                        .iter()
                        .take(MAX_CHECKS)
                        .map(|(name, state)| (clip(name), clip(state.as_str().unwrap_or_default())))
                        .collect()
                })
                .unwrap_or_default();
            let status = match body["status"].as_str() {
                Some("degraded") => "degraded",
                _ => "ready",
            };
            return Self {
                status,
                checks,
                message: None,
            };
        }
        let checks = body["error"]["details"]
            .as_array()
            .map(|details| {
                details
                    .iter()
                    .take(MAX_CHECKS)
                    .map(|detail| {
                        (
                            clip(detail["field"].as_str().unwrap_or_default()),
                            clip(detail["message"].as_str().unwrap_or_default()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| format!("/readyz answered {status}"), clip);
        Self {
            status: "unready",
            checks,
            message: Some(message),
        }
    }

    /// An instance that could not be asked, and why.
    pub fn unreachable(error: &str) -> Self {
        Self {
            status: "unreachable",
            checks: Vec::new(),
            message: Some(clip(&format!("/readyz: {error}"))),
        }
    }
}

/// At most [`MAX_TEXT`] characters of `text`.
fn clip(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// One instance's state.
#[derive(Debug)]
struct InstanceState {
    /// `host:port`.
    authority: String,
    /// The route prefixes it serves.
    routes: Vec<String>,
    /// Its `service` label, once a scrape told it.
    service: Option<String>,
    /// The last reading and when it was taken, for the next point's deltas.
    last: Option<(Instant, Reading)>,
    /// The points of the window.
    ring: Ring,
    /// The last scrape's `/healthz` and `/readyz`, and when.
    probed: Option<(u64, bool, Readiness)>,
    /// Why the last scrape gave no reading.
    error: Option<String>,
}

/// The instances' windows: what the collector writes and `/ops/api/overview` reads.
#[derive(Debug)]
pub struct Ops {
    /// The collector's settings.
    pub settings: Settings,
    /// One state per upstream address, in the route table's order.
    instances: Vec<Mutex<InstanceState>>,
}

impl Ops {
    /// Empty windows for each upstream address of `config`'s routes (each once).
    pub fn new(config: &GatewayConfig) -> Self {
        let mut instances: Vec<InstanceState> = Vec::new();
        for route in &config.routes {
            for upstream in &route.upstreams {
                let Some(authority) = upstream
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|uri| uri.authority().map(ToString::to_string))
                else {
                    continue;
                };
                match instances.iter_mut().find(|i| i.authority == authority) {
                    Some(instance) => instance.routes.push(route.prefix.clone()),
                    None => instances.push(InstanceState {
                        authority,
                        routes: vec![route.prefix.clone()],
                        service: None,
                        last: None,
                        ring: Ring::new(0),
                        probed: None,
                        error: None,
                    }),
                }
            }
        }
        let settings = Settings::new(&config.ops, instances.len());
        for instance in &mut instances {
            instance.ring = Ring::new(settings.capacity);
        }
        Self {
            settings,
            instances: instances.into_iter().map(Mutex::new).collect(),
        }
    }

    /// The instances' addresses.
    pub fn authorities(&self) -> Vec<String> {
        self.instances
            .iter()
            .map(|instance| lock(instance).authority.clone())
            .collect()
    }

    /// Records a scrape of the instance at `authority`, now: a point when it follows
    /// another reading.
    pub fn record(&self, authority: &str, probed: Probed) {
        self.record_at(authority, probed, Instant::now(), now_ms());
    }

    /// [`Ops::record`] at a given time.
    fn record_at(&self, authority: &str, probed: Probed, instant: Instant, at: u64) {
        let Some(instance) = self
            .instances
            .iter()
            .find(|instance| lock(instance).authority == authority)
        else {
            return;
        };
        let mut instance = lock(instance);
        instance.probed = Some((at, probed.healthy, probed.readiness));
        instance.error = probed.error;
        match probed.reading {
            Some(reading) => {
                if let Some(service) = &reading.service {
                    instance.service = Some(service.clone());
                }
                if let Some((then, before)) = &instance.last {
                    let seconds = instant.duration_since(*then).as_secs_f64();
                    let point = Point::between(before, &reading, seconds, at);
                    instance.ring.push(point);
                }
                instance.last = Some((instant, reading));
            }
            // No rate is drawn across a scrape that failed: the next one starts afresh.
            None => instance.last = None,
        }
    }

    /// The overview: settings, and each instance's state and points.
    pub fn overview(&self) -> Value {
        let services: Vec<Value> = self
            .instances
            .iter()
            .map(|instance| {
                let instance = lock(instance);
                let (scraped_at, healthy, readiness) = match &instance.probed {
                    Some((at, healthy, readiness)) => {
                        (Some(*at), Some(*healthy), Some(readiness))
                    }
                    None => (None, None, None),
                };
                json!({
                    "service": instance.service,
                    "instance": instance.authority,
                    "routes": instance.routes,
                    "scraped_at": scraped_at,
                    "healthy": healthy,
                    "readiness": readiness.map(|readiness| json!({
                        "status": readiness.status,
                        "checks": readiness.checks.iter().map(|(name, state)| json!({"name": name, "state": state})).collect::<Vec<_>>(),
                        "message": readiness.message,
                    })),
                    "error": instance.error,
                    "points": instance.ring.points().collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "collecting": self.settings.enabled,
            "interval_ms": self.settings.interval.as_millis() as u64,
            "window_secs": self.settings.window.as_secs(),
            "now": now_ms(),
            "services": services,
        })
    }
}

/// The instance's state, even if a thread panicked while holding it (each write leaves it
/// whole).
fn lock(instance: &Mutex<InstanceState>) -> std::sync::MutexGuard<'_, InstanceState> {
    instance
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probed(requests: f64) -> Probed {
        Probed {
            healthy: true,
            readiness: Readiness::of(
                StatusCode::OK,
                br#"{"status":"ready","checks":{"database":"ok"}}"#,
            ),
            reading: Some(Reading {
                service: Some("users".into()),
                requests,
                errors: 0.0,
                buckets: vec![(0.1, requests), (f64::INFINITY, requests)],
                resident_memory: Some(2e6),
            }),
            error: None,
        }
    }

    #[test]
    fn instances_are_each_address_once_with_their_routes() {
        let config = GatewayConfig::builtin();
        let ops = Ops::new(&config);
        let mut expected: Vec<String> = Vec::new();
        for route in &config.routes {
            let authority = route.upstreams[0].trim_start_matches("http://").to_owned();
            if !expected.contains(&authority) {
                expected.push(authority);
            }
        }
        assert_eq!(ops.authorities(), expected);
        assert_eq!(
            expected[..3],
            ["127.0.0.1:3001", "127.0.0.1:3002", "127.0.0.1:3003"]
        );
        let overview = ops.overview();
        assert_eq!(
            overview["services"][0]["routes"],
            json!(["/api/users", "/api/auth", "/.well-known/jwks.json"])
        );
        assert_eq!(overview["collecting"], true);
        assert_eq!(ops.settings.capacity, 90, "15 minutes of 10 s");
        let mut none = GatewayConfig::builtin();
        none.routes.clear();
        assert!(!Ops::new(&none).settings.enabled, "no upstreams: off");
    }

    #[test]
    fn scrapes_make_points_and_a_failed_one_breaks_the_series() {
        let ops = Ops::new(&GatewayConfig::builtin());
        let start = Instant::now();
        let users = "127.0.0.1:3001";
        ops.record_at(users, probed(100.0), start, 1_000);
        assert_eq!(ops.overview()["services"][0]["points"], json!([]));
        ops.record_at(
            users,
            probed(150.0),
            start + Duration::from_secs(10),
            11_000,
        );
        let overview = ops.overview();
        let users_state = &overview["services"][0];
        assert_eq!(users_state["service"], "users");
        assert_eq!(users_state["healthy"], true);
        assert_eq!(users_state["readiness"]["status"], "ready");
        assert_eq!(
            users_state["readiness"]["checks"],
            json!([{"name": "database", "state": "ok"}])
        );
        assert_eq!(
            users_state["points"],
            json!([{"at": 11_000, "rate": 5.0, "error_rate": 0.0, "p99": 0.099, "memory": 2e6}])
        );
        ops.record_at(
            users,
            Probed {
                healthy: false,
                readiness: Readiness::unreachable("connecting: refused"),
                reading: None,
                error: Some("/metrics: connecting: refused".into()),
            },
            start + Duration::from_secs(20),
            21_000,
        );
        ops.record_at(
            users,
            probed(900.0),
            start + Duration::from_secs(30),
            31_000,
        );
        let overview = ops.overview();
        let users_state = &overview["services"][0];
        assert_eq!(users_state["points"].as_array().map(Vec::len), Some(1));
        assert_eq!(users_state["readiness"]["status"], "ready");
        ops.record_at("10.9.9.9:1", probed(1.0), start, 1);
    }

    #[test]
    fn readiness_reads_both_bodies_and_clips_them() {
        let unready = Readiness::of(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"error":{"code":"unavailable","message":"not ready: database unavailable","details":[{"field":"database","message":"timed out"}]}}"#,
        );
        assert_eq!(unready.status, "unready");
        assert_eq!(
            unready.message.as_deref(),
            Some("not ready: database unavailable")
        );
        assert_eq!(unready.checks, [("database".into(), "timed out".into())]);
        let degraded = Readiness::of(
            StatusCode::OK,
            br#"{"status":"degraded","checks":{"cache":"degraded: refused"}}"#,
        );
        assert_eq!(degraded.status, "degraded");
        let garbage = Readiness::of(StatusCode::IM_A_TEAPOT, b"\xff{");
        assert_eq!(
            (garbage.status, garbage.message.as_deref()),
            ("unready", Some("/readyz answered 418 I'm a teapot"))
        );
        let long = format!(
            r#"{{"status":"ready","checks":{{"{}":"ok"}}}}"#,
            "x".repeat(5000)
        );
        let clipped = Readiness::of(StatusCode::OK, long.as_bytes());
        assert_eq!(clipped.checks[0].0.len(), MAX_TEXT);
    }
}
