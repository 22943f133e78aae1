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
//! instance, so memory stays bounded whatever the gateway's uptime. An instance is one address:
//! each upstream name of the route table is resolved at every scrape, and each of its
//! addresses (at most [`MAX_ADDRESSES`]) is scraped as its own instance (a Kubernetes headless
//! Service or a DNS name with several records: one card per pod), asked with the name as
//! `Host`. A name whose host is `localhost` is one instance (its IPv4 and IPv6 loopback are the
//! same machine). The gateway itself is one more instance, read from its own registry.

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
/// Most addresses of one upstream name scraped as instances.
pub const MAX_ADDRESSES: usize = 32;
/// The gateway's own instance's name.
pub const GATEWAY: &str = "gateway";

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

impl Probed {
    /// An instance that could not be asked at all, and why (its name did not resolve).
    pub fn unreachable(error: &str) -> Self {
        Self {
            healthy: false,
            readiness: Readiness::unreachable(error),
            reading: None,
            error: Some(clip(error)),
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
    /// The upstream's `host:port` as the routes name it (the `Host` it is asked with).
    name: String,
    /// Its address, `IP:port` (the name itself when it is not resolved to addresses).
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

impl InstanceState {
    /// An instance of `name` at `authority` serving `routes`, nothing scraped yet.
    fn new(name: &str, authority: &str, routes: &[String], capacity: usize) -> Self {
        Self {
            name: name.to_owned(),
            authority: authority.to_owned(),
            routes: routes.to_vec(),
            service: None,
            last: None,
            ring: Ring::new(capacity),
            probed: None,
            error: None,
        }
    }
}

/// The instances' windows: what the collector writes and `/ops/api/overview` reads.
#[derive(Debug)]
pub struct Ops {
    /// The collector's settings.
    pub settings: Settings,
    /// Each upstream name (`host:port`) of the route table once, with the prefixes naming it.
    names: Vec<(String, Vec<String>)>,
    /// One state per instance: each name's addresses in the names' order.
    instances: Mutex<Vec<InstanceState>>,
    /// The gateway's own instance.
    gateway: Mutex<InstanceState>,
}

impl Ops {
    /// Empty windows for each upstream name of `config`'s routes (each once), one instance
    /// per name until a scrape resolves it.
    pub fn new(config: &GatewayConfig) -> Self {
        let mut names: Vec<(String, Vec<String>)> = Vec::new();
        for route in &config.routes {
            for upstream in &route.upstreams {
                let Some(authority) = upstream
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|uri| uri.authority().map(ToString::to_string))
                else {
                    continue;
                };
                match names.iter_mut().find(|(name, _)| *name == authority) {
                    Some((_, routes)) => routes.push(route.prefix.clone()),
                    None => names.push((authority, vec![route.prefix.clone()])),
                }
            }
        }
        let settings = Settings::new(&config.ops, names.len());
        let instances = names
            .iter()
            .map(|(name, routes)| InstanceState::new(name, name, routes, settings.capacity))
            .collect();
        let gateway = InstanceState::new(GATEWAY, GATEWAY, &[], settings.capacity);
        Self {
            settings,
            names,
            instances: Mutex::new(instances),
            gateway: Mutex::new(gateway),
        }
    }

    /// The upstream names, each once, in the route table's order.
    pub fn names(&self) -> Vec<String> {
        self.names.iter().map(|(name, _)| name.clone()).collect()
    }

    /// The instances' addresses.
    pub fn authorities(&self) -> Vec<String> {
        lock(&self.instances)
            .iter()
            .map(|instance| instance.authority.clone())
            .collect()
    }

    /// The instances of `name` are those at `addresses` from now on (at most
    /// [`MAX_ADDRESSES`], each once): an address still there keeps its window, a new one
    /// starts empty, one gone is dropped. No address keeps the ones there are (a name that
    /// does not resolve now is shown failing, not forgotten); the name itself stands in when
    /// there is none. The addresses to scrape.
    pub fn resolved(&self, name: &str, addresses: &[String]) -> Vec<String> {
        let Some((_, routes)) = self.names.iter().find(|(known, _)| known == name) else {
            return Vec::new();
        };
        let mut wanted: Vec<&String> = Vec::new();
        for address in addresses {
            if !wanted.contains(&address) && wanted.len() < MAX_ADDRESSES {
                wanted.push(address);
            }
        }
        let mut instances = lock(&self.instances);
        let (kept, mut others): (Vec<InstanceState>, Vec<InstanceState>) = instances
            .drain(..)
            .partition(|instance| instance.name == name);
        let mut mine: Vec<InstanceState> = if wanted.is_empty() {
            kept
        } else {
            let mut kept = kept;
            wanted
                .iter()
                .map(
                    |address| match kept.iter().position(|i| i.authority == **address) {
                        Some(index) => kept.swap_remove(index),
                        None => InstanceState::new(name, address, routes, self.settings.capacity),
                    },
                )
                .collect()
        };
        if mine.is_empty() {
            mine.push(InstanceState::new(
                name,
                name,
                routes,
                self.settings.capacity,
            ));
        }
        let scraped = mine.iter().map(|i| i.authority.clone()).collect();
        others.extend(mine);
        // The names' order; a name's addresses in their order (the sort is stable).
        others.sort_by_key(|instance| {
            self.names
                .iter()
                .position(|(known, _)| *known == instance.name)
        });
        *instances = others;
        scraped
    }

    /// Records a scrape of `name`'s instance at `authority`, now: a point when it follows
    /// another reading.
    pub fn record(&self, name: &str, authority: &str, probed: Probed) {
        self.record_at(name, authority, probed, Instant::now(), now_ms());
    }

    /// Records what the gateway read of itself, now.
    pub fn record_gateway(&self, probed: Probed) {
        record_into(&mut lock(&self.gateway), probed, Instant::now(), now_ms());
    }

    /// [`Ops::record`] at a given time.
    fn record_at(&self, name: &str, authority: &str, probed: Probed, instant: Instant, at: u64) {
        let mut instances = lock(&self.instances);
        let Some(instance) = instances
            .iter_mut()
            .find(|instance| instance.name == name && instance.authority == authority)
        else {
            return;
        };
        record_into(instance, probed, instant, at);
    }

    /// The overview: settings, and each instance's state and points, the gateway's last.
    pub fn overview(&self) -> Value {
        let instances = lock(&self.instances);
        let gateway = lock(&self.gateway);
        let services: Vec<Value> = instances
            .iter()
            .chain(std::iter::once(&*gateway))
            .map(instance_json)
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

/// Records a scrape into `instance`.
fn record_into(instance: &mut InstanceState, probed: Probed, instant: Instant, at: u64) {
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

/// The overview's entry of `instance`.
fn instance_json(instance: &InstanceState) -> Value {
    let (scraped_at, healthy, readiness) = match &instance.probed {
        Some((at, healthy, readiness)) => (Some(*at), Some(*healthy), Some(readiness)),
        None => (None, None, None),
    };
    json!({
        "service": instance.service,
        "name": instance.name,
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
}

/// What `mutex` guards, even if a thread panicked while holding it (each write leaves it
/// whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
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
        let services = overview["services"].as_array().expect("services");
        assert_eq!(services.len(), expected.len() + 1, "and the gateway's own");
        assert_eq!(services[expected.len()]["instance"], GATEWAY);
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
        ops.record_at(users, users, probed(100.0), start, 1_000);
        assert_eq!(ops.overview()["services"][0]["points"], json!([]));
        ops.record_at(
            users,
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
            users,
            probed(900.0),
            start + Duration::from_secs(30),
            31_000,
        );
        let overview = ops.overview();
        let users_state = &overview["services"][0];
        assert_eq!(users_state["points"].as_array().map(Vec::len), Some(1));
        assert_eq!(users_state["readiness"]["status"], "ready");
        // A scrape of an address no route names is dropped, not added.
        // `now` is the wall clock at each call, so only the services are compared.
        ops.record_at("10.9.9.9:1", "10.9.9.9:1", probed(1.0), start, 1);
        assert_eq!(ops.overview()["services"], overview["services"]);
    }

    #[test]
    fn a_names_instances_follow_its_addresses() {
        let mut config = GatewayConfig::builtin();
        config.routes.truncate(2);
        config.routes[0].upstreams = vec!["http://users:3001".to_owned()];
        config.routes[1].upstreams = vec!["http://products:3002".to_owned()];
        let ops = Ops::new(&config);
        assert_eq!(ops.authorities(), ["users:3001", "products:3002"]);
        let start = Instant::now();
        let pods = |ips: &[&str]| {
            ips.iter()
                .map(|ip| format!("{ip}:3001"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ops.resolved("users:3001", &pods(&["10.0.0.1", "10.0.0.2", "10.0.0.1"])),
            pods(&["10.0.0.1", "10.0.0.2"])
        );
        assert_eq!(
            ops.authorities(),
            ["10.0.0.1:3001", "10.0.0.2:3001", "products:3002"]
        );
        // Each pod's counters are its own: no reset read across pods.
        ops.record_at("users:3001", "10.0.0.1:3001", probed(1000.0), start, 1_000);
        ops.record_at("users:3001", "10.0.0.2:3001", probed(10.0), start, 1_000);
        let later = start + Duration::from_secs(10);
        ops.record_at("users:3001", "10.0.0.1:3001", probed(1100.0), later, 11_000);
        ops.record_at("users:3001", "10.0.0.2:3001", probed(20.0), later, 11_000);
        let overview = ops.overview();
        assert_eq!(overview["services"][0]["points"][0]["rate"], 10.0);
        assert_eq!(overview["services"][1]["points"][0]["rate"], 1.0);
        assert_eq!(overview["services"][1]["name"], "users:3001");
        // A pod gone is dropped, a new one starts empty, one still there keeps its window.
        ops.resolved("users:3001", &pods(&["10.0.0.3", "10.0.0.2"]));
        let overview = ops.overview();
        assert_eq!(
            ops.authorities(),
            ["10.0.0.3:3001", "10.0.0.2:3001", "products:3002"]
        );
        assert_eq!(overview["services"][0]["points"], json!([]));
        assert_eq!(overview["services"][1]["points"][0]["rate"], 1.0);
        // No answer keeps them (shown failing); a name never resolved stands as itself.
        assert_eq!(
            ops.resolved("users:3001", &[]),
            pods(&["10.0.0.3", "10.0.0.2"])
        );
        assert_eq!(ops.resolved("products:3002", &[]), ["products:3002"]);
        let many: Vec<String> = (0..100).map(|n| format!("10.1.0.{n}:3001")).collect();
        assert_eq!(ops.resolved("users:3001", &many).len(), MAX_ADDRESSES);
        assert!(ops.resolved("unknown:1", &many).is_empty());
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
