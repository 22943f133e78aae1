//! The gateway's flags and its route table: built in (docs/contracts.md's routes) or read from a
//! TOML file (`GATEWAY_CONFIG` / `--config`; `deploy/gateway.toml` is a commented example).

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use runtime::{AuthArgs, Network, ProcessArgs};
use serde::Deserialize;

use crate::cors::{Cors, CorsConfig};

/// The gateway's port (docs/contracts.md).
pub const DEFAULT_PORT: u16 = 3000;

/// The flags and environment variables of `gateway`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "gateway",
    version,
    about = "The platform's API gateway (a hyper reverse proxy)"
)]
pub struct Args {
    /// Listen port
    #[arg(long, env = "PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Address and logging.
    #[command(flatten)]
    pub process: ProcessArgs,
    /// How bearer tokens are checked (`AUTH_JWKS_URL`, `AUTH_ISSUER`, `AUTH_AUDIENCE`).
    #[command(flatten)]
    pub auth: AuthArgs,
    /// TOML route table [default: the routes of docs/contracts.md to 127.0.0.1]
    #[arg(long = "config", env = "GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` names the client (comma-separated addresses or CIDRs, such
    /// as the load balancer in front); set, it replaces `[server] trusted_proxies` [default:
    /// the TOML's, else none]
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<Network>>,
    /// Origins whose pages may call the API across origins (comma-separated
    /// `scheme://host[:port]`, or `*` without credentials); set, it replaces `[cors]
    /// allowed_origins` of the TOML, and an empty value turns CORS off [default: the TOML's,
    /// else none: CORS off]
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Ask the gateway on PORT for `/healthz` and exit 0 when it answers 200
    #[arg(long, hide = true)]
    pub healthcheck: bool,
}

impl Args {
    /// The configuration the gateway runs with: the TOML file's (or the built-in one), with
    /// what the environment sets over it (`TRUSTED_PROXIES`, `CORS_ALLOWED_ORIGINS`); an error
    /// names the variable it comes from.
    pub fn gateway_config(&self) -> anyhow::Result<GatewayConfig> {
        let mut config = match &self.config {
            Some(path) => GatewayConfig::from_file(path).context("GATEWAY_CONFIG (--config)")?,
            None => GatewayConfig::builtin(),
        };
        if let Some(trusted_proxies) = &self.trusted_proxies {
            config.server.trusted_proxies = trusted_proxies.clone();
        }
        if let Some(origins) = &self.cors_allowed_origins {
            config.cors.allowed_origins = origins
                .iter()
                .map(|origin| origin.trim().to_owned())
                .filter(|origin| !origin.is_empty())
                .collect();
            Cors::new(&config.cors).context("CORS_ALLOWED_ORIGINS (--cors-allowed-origins)")?;
        }
        Ok(config)
    }
}

/// The whole configuration: server settings, rate limit, routes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Timeouts, limits and upstream health.
    #[serde(default)]
    pub server: ServerConfig,
    /// Per-client rate limit (keyed by the token's user, else the client's IP); absent: off.
    pub rate_limit: Option<RateLimitConfig>,
    /// Cross-origin requests from browsers ([`crate::cors`]); no origin (the default): off.
    #[serde(default)]
    pub cors: CorsConfig,
    /// The operations page's collector ([`crate::ops`]); on by default.
    #[serde(default)]
    pub ops: OpsConfig,
    /// The routes; the longest matching prefix wins.
    pub routes: Vec<RouteConfig>,
}

/// Timeouts, limits and upstream health.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Connecting to an upstream; past it: 502 `upstream_unavailable`.
    pub connect_timeout_ms: u64,
    /// Default wait for an upstream's response headers; past it: 504 `upstream_timeout`.
    pub response_timeout_ms: u64,
    /// A client must send a whole request head within this (slowloris), idle keep-alive
    /// connections included; past it the connection is closed.
    pub client_header_timeout_ms: u64,
    /// Largest request head; past it: 431.
    pub max_header_bytes: usize,
    /// Idle pooled upstream connections are closed after this (keep it below the upstreams'
    /// own keep-alive: actix's is 5 s).
    pub pool_idle_timeout_ms: u64,
    /// Idle connections kept per upstream instance.
    pub pool_max_idle_per_host: usize,
    /// Connect failures in a row that eject an instance.
    pub eject_after_failures: u32,
    /// How long an ejected instance is left out before it is tried again.
    pub eject_cooldown_ms: u64,
    /// On shutdown, how long in-flight requests and open WebSockets may take to finish.
    pub drain_timeout_ms: u64,
    /// Server threads (each a single-threaded runtime with its own listener and pool);
    /// 0: one per core.
    pub threads: usize,
    /// Active health checks: every instance's `/healthz` is asked this often, and one that
    /// does not answer 200 is taken out of rotation until it does; 0: off (passive health
    /// only).
    pub health_check_interval_ms: u64,
    /// Peers whose `X-Forwarded-For` names the client (addresses or CIDRs, such as the load
    /// balancer in front of the gateway); default none: the TCP peer is the client.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<Network>,
    /// Serve plain HTTP/1.1 exchanges on the direct path (`src/direct`); false: hyper serves
    /// every request (slower, same answers: the differential tests hold both to that).
    pub direct_path: bool,
}

/// Reads a list of networks (`"10.0.0.0/8"`, `"192.0.2.7"`, `"::1"`).
fn networks<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Network>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|text| text.parse().map_err(serde::de::Error::custom))
        .collect()
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 2_000,
            response_timeout_ms: 30_000,
            client_header_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            pool_idle_timeout_ms: 4_000,
            pool_max_idle_per_host: 256,
            eject_after_failures: 3,
            eject_cooldown_ms: 5_000,
            drain_timeout_ms: 10_000,
            threads: 0,
            health_check_interval_ms: 0,
            trusted_proxies: Vec::new(),
            direct_path: true,
        }
    }
}

/// The collector of the operations page (`/ops`, [`crate::ops`]): each upstream instance's
/// `/healthz`, `/readyz` and `/metrics`, every `interval_ms`, kept for `window_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// Whether the gateway collects (it never does without upstreams).
    pub enabled: bool,
    /// Time between two scrapes of an instance (at least 100).
    pub interval_ms: u64,
    /// How far back the charts go; the points kept per instance are this over the interval
    /// (at most 10 000).
    pub window_secs: u64,
    /// The longest one request of a scrape may take, connecting included.
    pub timeout_ms: u64,
    /// The largest body read of one answer (1 KiB to 64 MiB); a larger one fails the scrape.
    pub max_body_bytes: usize,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 10_000,
            window_secs: 900,
            timeout_ms: 2_000,
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl OpsConfig {
    /// The bounds of the fields hold.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.interval_ms >= 100,
            "[ops] interval_ms must be at least 100"
        );
        anyhow::ensure!(
            self.window_secs * 1000 >= self.interval_ms
                && (self.window_secs * 1000).div_ceil(self.interval_ms) <= 10_000,
            "[ops] window_secs must hold between 1 and 10000 intervals"
        );
        anyhow::ensure!(self.timeout_ms > 0, "[ops] timeout_ms must be above 0");
        anyhow::ensure!(
            (1024..=64 * 1024 * 1024).contains(&self.max_body_bytes),
            "[ops] max_body_bytes must be from 1024 to 67108864"
        );
        Ok(())
    }
}

/// A token bucket per client: per user for requests with a verified token, per IP otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client.
    pub per_second: u32,
    /// Requests allowed in a burst.
    pub burst: u32,
}

/// One route: a path prefix and where it goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, matched on whole segments (`/api/users` matches `/api/users/1`, not
    /// `/api/usersX`).
    pub prefix: String,
    /// Upstream instances (`http://host:port`), balanced round-robin over the healthy ones.
    pub upstreams: Vec<String>,
    /// Replace the prefix with this before forwarding (default: forward the path unchanged).
    pub rewrite: Option<String>,
    /// Send this `Host` upstream instead of the client's.
    pub host: Option<String>,
    /// Wait for response headers (default: the server's).
    pub response_timeout_ms: Option<u64>,
    /// Largest request body; past it: 413 (default: no limit).
    pub max_body_bytes: Option<u64>,
    /// Whether a request needs a bearer token (default: optional). A presented token is
    /// verified on every route either way.
    #[serde(default)]
    pub auth: RouteAuth,
    /// Session affinity across the route's instances (default: none, plain round-robin).
    pub sticky: Option<Sticky>,
    /// The path of the OpenAPI document of the API behind the route (`/api/users/openapi.json`),
    /// listed by the API docs at `/api/docs` ([`crate::docs`]); default: none.
    pub openapi: Option<String>,
}

/// How a route keeps a client's session on one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Sticky {
    /// Engine.IO (Socket.IO): a request naming a session (`sid` in the query) goes to the
    /// instance whose handshake answer issued it ([`crate::sticky`]).
    #[serde(rename = "engine.io")]
    EngineIo,
}

/// What a route asks of a request's `Authorization`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteAuth {
    /// Anonymous requests pass; a presented token must verify (401 otherwise).
    #[default]
    Optional,
    /// A valid bearer token is needed: 401 without one.
    Required,
}

impl GatewayConfig {
    /// docs/contracts.md's routes, to the services' default ports on 127.0.0.1.
    pub fn builtin() -> Self {
        let route = |prefix: &str, port: u16| RouteConfig {
            prefix: prefix.to_owned(),
            upstreams: vec![format!("http://127.0.0.1:{port}")],
            rewrite: None,
            host: None,
            response_timeout_ms: None,
            max_body_bytes: None,
            auth: RouteAuth::Optional,
            sticky: None,
            openapi: None,
        };
        let documented = |prefix: &str, port: u16| RouteConfig {
            openapi: Some(format!("{prefix}/openapi.json")),
            ..route(prefix, port)
        };
        let socket_io = RouteConfig {
            sticky: Some(Sticky::EngineIo),
            ..route("/socket.io", 3004)
        };
        // The worker's jobs API: admins only, so anonymous requests stop here.
        let jobs = RouteConfig {
            auth: RouteAuth::Required,
            ..route("/api/jobs", 3006)
        };
        Self {
            server: ServerConfig::default(),
            rate_limit: None,
            cors: CorsConfig::default(),
            ops: OpsConfig::default(),
            routes: vec![
                documented("/api/users", 3001),
                route("/api/auth", 3001),
                route(auth::JWKS_PATH, 3001),
                documented("/api/products", 3002),
                route("/graphql", 3003),
                route("/chat", 3004),
                socket_io,
                route("/api/upload", 3005),
                documented("/api/media", 3005),
                jobs,
            ],
        }
    }

    /// Reads and checks a TOML file.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and checks TOML text.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Every route has a prefix starting with `/` and at least one `http://host:port` upstream;
    /// the rate limit, `[cors]` ([`Cors::new`]) and `[ops]` hold.
    pub fn validate(&self) -> anyhow::Result<()> {
        for route in &self.routes {
            anyhow::ensure!(
                route.prefix.starts_with('/'),
                "route prefix {:?} must start with /",
                route.prefix
            );
            anyhow::ensure!(
                !route.upstreams.is_empty(),
                "route {} has no upstreams",
                route.prefix
            );
            for upstream in &route.upstreams {
                let uri: http::Uri = upstream
                    .parse()
                    .with_context(|| format!("upstream {upstream:?}"))?;
                anyhow::ensure!(
                    uri.scheme_str() == Some("http") && uri.authority().is_some(),
                    "upstream {upstream:?} must be http://host:port"
                );
            }
            if let Some(openapi) = &route.openapi {
                anyhow::ensure!(
                    openapi.starts_with('/') && openapi.parse::<http::uri::PathAndQuery>().is_ok(),
                    "openapi {openapi:?} of route {} must be a path starting with /",
                    route.prefix
                );
            }
            if let Some(rewrite) = &route.rewrite {
                anyhow::ensure!(
                    rewrite.starts_with('/'),
                    "rewrite {rewrite:?} must start with /"
                );
            }
        }
        if let Some(limit) = &self.rate_limit {
            anyhow::ensure!(
                limit.per_second > 0 && limit.burst > 0,
                "rate_limit needs per_second and burst above 0"
            );
        }
        Cors::new(&self.cors)?;
        self.ops.validate()?;
        Ok(())
    }
}

impl ServerConfig {
    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn trusted_proxies_from_the_environment_replace_the_tomls() {
        let dir = std::env::temp_dir().join(format!("gateway-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("gateway.toml");
        std::fs::write(
            &file,
            "[server]\ntrusted_proxies = [\"192.0.2.1\"]\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]\n",
        )
        .expect("write");
        let trusted = |args: &[&str]| {
            let args = Args::try_parse_from(["gateway"].iter().chain(args)).expect("args");
            args.gateway_config()
                .expect("config")
                .server
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        let toml = format!("--config={}", file.display());
        assert_eq!(trusted(&[&toml]), ["192.0.2.1/32"], "unset: the TOML's");
        assert_eq!(
            trusted(&[&toml, "--trusted-proxies=10.0.0.0/8,fd00::/8"]),
            ["10.0.0.0/8", "fd00::/8"],
            "set: it wins over the TOML"
        );
        assert!(trusted(&[]).is_empty(), "neither: none");
        assert_eq!(trusted(&["--trusted-proxies=127.0.0.1"]), ["127.0.0.1/32"]);
        assert!(
            Args::try_parse_from(["gateway", "--trusted-proxies=10.0.0.0/33"]).is_err(),
            "a bad network is refused"
        );
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn cors_origins_from_the_environment_replace_the_tomls() {
        let dir = std::env::temp_dir().join(format!("gateway-cors-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("gateway.toml");
        std::fs::write(
            &file,
            "[cors]\nallowed_origins = [\"https://a.example\"]\nallow_credentials = true\nmax_age = 60\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]\n",
        )
        .expect("write");
        let toml = format!("--config={}", file.display());
        let config = |args: &[&str]| {
            Args::try_parse_from(["gateway"].iter().chain(args))
                .expect("args")
                .gateway_config()
        };
        let origins = |args: &[&str]| config(args).expect("config").cors.allowed_origins;
        assert!(origins(&[]).is_empty(), "neither: none, CORS off");
        assert_eq!(
            origins(&[&toml]),
            ["https://a.example"],
            "unset: the TOML's"
        );
        assert_eq!(
            origins(&[
                &toml,
                "--cors-allowed-origins=https://b.example, http://localhost:5173"
            ]),
            ["https://b.example", "http://localhost:5173"],
            "set: it wins over the TOML"
        );
        let kept = config(&[&toml, "--cors-allowed-origins=https://b.example"]).expect("config");
        assert!(
            kept.cors.allow_credentials && kept.cors.max_age == Some(60),
            "the rest of [cors] stays"
        );
        assert!(
            origins(&[&toml, "--cors-allowed-origins="]).is_empty(),
            "empty: CORS off"
        );
        assert_eq!(
            origins(&["--cors-allowed-origins=*"]),
            ["*"],
            "any origin without credentials"
        );
        for bad in ["https://b.example/app", "*"] {
            let error = config(&[&toml, &format!("--cors-allowed-origins={bad}")])
                .expect_err("refused at start");
            let message = format!("{error:#}");
            assert!(
                message.starts_with("CORS_ALLOWED_ORIGINS") && !message.contains('\n'),
                "one line naming the variable: {message}"
            );
        }
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn cors_is_read_from_the_toml_and_checked() {
        let config = GatewayConfig::from_toml(
            r#"
            [cors]
            allowed_origins = ["https://app.example"]
            allowed_methods = ["GET", "PUT"]
            allowed_headers = ["Authorization"]
            exposed_headers = ["X-Request-Id"]
            allow_credentials = true
            max_age = 600
            [[routes]]
            prefix = "/a"
            upstreams = ["http://a:1"]
            "#,
        )
        .expect("valid");
        assert_eq!(config.cors.allowed_methods, ["GET", "PUT"]);
        assert!(
            GatewayConfig::builtin().cors.allowed_origins.is_empty(),
            "off by default"
        );
        let defaults = GatewayConfig::from_toml(
            "[cors]\nallowed_origins = [\"https://app.example\"]\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]",
        )
        .expect("valid");
        assert_eq!(
            defaults.cors.exposed_headers,
            crate::cors::DEFAULT_EXPOSED,
            "the platform's headers exposed by default"
        );
        for bad in [
            "[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true",
            "[cors]\nallowed_origins = [\"https://app.example/\"]",
            "[cors]\nallowed_origin = [\"https://app.example\"]",
            "[cors]\nmax_age = -1",
        ] {
            let text = format!("{bad}\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]");
            assert!(GatewayConfig::from_toml(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_builtin_table_is_the_contracts_one() {
        let config = GatewayConfig::builtin();
        let prefixes: Vec<&str> = config.routes.iter().map(|r| r.prefix.as_str()).collect();
        assert_eq!(
            prefixes,
            [
                "/api/users",
                "/api/auth",
                "/.well-known/jwks.json",
                "/api/products",
                "/graphql",
                "/chat",
                "/socket.io",
                "/api/upload",
                "/api/media",
                "/api/jobs"
            ]
        );
        config.validate().expect("valid");
    }

    #[test]
    fn toml_is_read_and_checked() {
        let config = GatewayConfig::from_toml(
            r#"
            [server]
            connect_timeout_ms = 500
            trusted_proxies = ["10.0.0.0/8", "192.0.2.7"]
            [ops]
            interval_ms = 5000
            [rate_limit]
            per_second = 10
            burst = 20
            [[routes]]
            prefix = "/api/users"
            upstreams = ["http://127.0.0.1:3001", "http://127.0.0.1:3011"]
            rewrite = "/users"
            max_body_bytes = 1024
            [[routes]]
            prefix = "/api/me"
            upstreams = ["http://127.0.0.1:3001"]
            auth = "required"
            sticky = "engine.io"
            "#,
        )
        .expect("valid");
        assert_eq!(config.server.connect_timeout_ms, 500);
        assert_eq!(
            (
                config.ops.enabled,
                config.ops.interval_ms,
                config.ops.window_secs
            ),
            (true, 5000, 900),
            "[ops] on by default, its defaults fill the rest"
        );
        assert_eq!(
            config.server.response_timeout_ms, 30_000,
            "defaults fill the rest"
        );
        assert_eq!(config.routes[0].upstreams.len(), 2);
        assert!(
            config.server.trusted_proxies[0].contains([10, 1, 2, 3].into())
                && !config.server.trusted_proxies[1].contains([192, 0, 2, 8].into())
        );
        assert!(
            GatewayConfig::builtin().server.trusted_proxies.is_empty(),
            "no proxy is trusted unless configured"
        );
        assert_eq!(
            (config.routes[0].auth, config.routes[1].auth),
            (RouteAuth::Optional, RouteAuth::Required),
            "auth is optional unless a route says otherwise"
        );
        assert_eq!(
            (config.routes[0].sticky, config.routes[1].sticky),
            (None, Some(Sticky::EngineIo)),
            "routes are not sticky unless they say so"
        );
        for bad in [
            "[[routes]]\nprefix = \"api\"\nupstreams = [\"http://a:1\"]",
            "[[routes]]\nprefix = \"/a\"\nupstreams = []",
            "[[routes]]\nprefix = \"/a\"\nupstreams = [\"https://a:1\"]",
            "[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]\ntypo = 1",
            "[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]\nauth = \"sometimes\"",
            "[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]\nauth = \"Required\"",
            "[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]\nauth = true",
            "[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]\nsticky = \"cookie\"",
            "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]",
            "[ops]\ninterval_ms = 99\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]",
            "[ops]\nwindow_secs = 0\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]",
            "[ops]\ninterval_ms = 100\nwindow_secs = 1001\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]",
            "[ops]\ntimeout_ms = 0\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]",
            "[ops]\nmax_body_bytes = 10\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]",
            "[ops]\nintervals = 1\n[[routes]]\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]",
        ] {
            assert!(GatewayConfig::from_toml(bad).is_err(), "{bad}");
        }
    }
}
