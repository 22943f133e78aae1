//! What the gateway's requests share: [`Shared`] across every server thread (routes, limiter,
//! telemetry, token verifier, settings, CORS rule, operations windows), [`ThreadContext`]
//! within one thread (its upstream pool and the [`Tracker`] of its open connections, which the
//! drain waits for), and the upstream failures both paths count there.

use std::{num::NonZeroU32, rc::Rc, sync::Arc};

use governor::DefaultKeyedRateLimiter;
use slog::Logger;

use crate::{
    access::{GatewayMetrics, Telemetry},
    config::{GatewayConfig, ServerConfig},
    cors::Cors,
    identity::ClientKey,
    ops::Ops,
    pool::Pool,
    resolve::Resolver,
    routing::{Route, RouteTable},
    tracker::Tracker,
    upstream::{Health, Instance},
};

/// What every server thread shares.
pub struct Shared {
    /// The routes.
    pub routes: RouteTable,
    /// Logger and metrics.
    pub telemetry: Arc<Telemetry>,
    /// Per-client limiter (per user with a verified token, else per IP), when configured.
    pub limiter: Option<DefaultKeyedRateLimiter<ClientKey>>,
    /// Checks the bearer tokens clients present.
    pub verifier: Arc<auth::Verifier>,
    /// Timeouts and limits.
    pub server: ServerConfig,
    /// The route label of requests no route matched.
    pub no_route: Arc<str>,
    /// How upstream connections resolve the instances' names.
    pub resolver: Arc<Resolver>,
    /// The CORS rule (off unless origins are configured).
    pub cors: Cors,
    /// The operations page's windows, which its collector fills.
    pub ops: Arc<Ops>,
    /// The API docs page, listing the routes' OpenAPI documents (built once: routes are fixed).
    pub docs_page: bytes::Bytes,
}

impl Shared {
    /// Takes one request of `key` from the rate limit: `Err(seconds)` to tell the client in
    /// `Retry-After` (at least 1) when its bucket is empty, counted in
    /// `gateway_rate_limited_total`. Without a configured limit everything passes.
    pub fn admit(&self, key: &ClientKey) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            self.telemetry.metrics.rate_limited.inc();
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// The routes, limiter and telemetry of `config`, logging to `logger`, with a verifier that
    /// knows no keys (every token is refused until [`Shared::with_verifier`] sets the real one).
    pub fn new(config: GatewayConfig, logger: Logger) -> anyhow::Result<Self> {
        config.validate()?;
        let limiter = config.rate_limit.as_ref().map(|limit| {
            let per_second = NonZeroU32::new(limit.per_second).expect("validated above 0");
            let burst = NonZeroU32::new(limit.burst).expect("validated above 0");
            governor::RateLimiter::keyed(governor::Quota::per_second(per_second).allow_burst(burst))
        });
        let ops = Arc::new(Ops::new(&config));
        let routes = RouteTable::new(&config)?;
        let metrics = GatewayMetrics::new();
        metrics.start_at_zero(&routes);
        let docs_page = crate::docs::page(&routes);
        Ok(Self {
            routes,
            telemetry: Arc::new(Telemetry {
                logger,
                metrics,
                tracer: runtime::Tracer::for_service("gateway"),
            }),
            limiter,
            verifier: Arc::new(auth::Verifier::new(
                auth::VerifierSettings::default(),
                auth::KeySource::Fixed(auth::Jwks::default()),
            )),
            server: config.server,
            no_route: Arc::from("-"),
            resolver: Arc::new(Resolver::System),
            cors: Cors::new(&config.cors)?,
            ops,
            docs_page,
        })
    }

    /// The same, checking tokens with `verifier`.
    pub fn with_verifier(self, verifier: Arc<auth::Verifier>) -> Self {
        Self { verifier, ..self }
    }

    /// The same, resolving the instances' names with `resolver`.
    pub fn with_resolver(self, resolver: Resolver) -> Self {
        Self {
            resolver: Arc::new(resolver),
            ..self
        }
    }
}

/// What one server thread's requests share.
pub struct ThreadContext {
    /// Shared by all threads.
    pub shared: Arc<Shared>,
    /// This thread's upstream connections.
    pub pool: Rc<Pool>,
    /// This thread's connections and tunnels, for the drain.
    pub tracker: Rc<Tracker>,
}

impl ThreadContext {
    /// Counts a request that failed upstream: `kind` is `connect`, `timeout` or `protocol`.
    pub fn count_upstream_error(&self, route: &Route, kind: &str) {
        self.shared
            .telemetry
            .metrics
            .upstream_errors
            .with_label_values(&[&route.prefix, kind])
            .inc();
    }

    /// Counts a connect failure of `instance` and ejects it after enough in a row.
    pub fn connect_failed(&self, route: &Route, instance: &Instance, failure: &str) {
        self.count_upstream_error(route, "connect");
        if route.upstreams.record_failure(instance) == Health::Ejected {
            self.shared
                .telemetry
                .metrics
                .ejections
                .with_label_values(&[&route.prefix, &instance.label])
                .inc();
            slog::warn!(self.shared.telemetry.logger, "upstream instance ejected";
                "route" => &*route.prefix, "upstream" => &*instance.label, "error" => failure);
        }
    }
}
