//! The platform's front door on port 3000: a hyper 1.x reverse proxy.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | flags, and the TOML route table (built in: docs/contracts.md's routes) |
//! | [`routing`] | longest-prefix match on path segments, prefix rewrite |
//! | [`upstream`] | instances of a route: round-robin, passive health, ejection |
//! | [`sticky`] | Engine.IO session affinity: `sid` → the instance and address that issued it |
//! | [`resolve`] | upstream names to addresses, at every new connection |
//! | [`forward`] | the proxy rules, once for both paths: upstream head, retry, error answers |
//! | [`headers`] | header primitives: hop-by-hop fields, tokens, transfer codings |
//! | [`host`] | the `Host` rule, once for both paths: the host a request is for, or its 400 |
//! | [`cors`] | CORS: the preflights the gateway answers, the fields every answer carries |
//! | [`identity`] | the one auth decision (bearer token, route policy) and the rate limiter's key |
//! | [`health`] | the optional active health checks of upstream instances |
//! | [`direct`] | the direct path: plain HTTP/1.1 exchanges relayed by the connection's task |
//! | [`context`] | what requests share: across threads, and within one thread |
//! | [`tracker`] | a thread's open connections and tunnels, which the drain waits for |
//! | [`framing`] | hyper's path's framing rules that hyper does not apply (both paths frame alike) |
//! | [`proxy`] | hyper's path: local endpoints, auth, rate limit, route; the exchange upstream |
//! | [`local`] | `GET /`, `/healthz`, `/readyz`, `/metrics`, the API docs' and `/ops` paths |
//! | [`docs`] | the API docs at `/api/docs`: Swagger UI over the routes' OpenAPI documents |
//! | [`ops`] | the operations page at `/ops`: the upstreams' health and series, the queues |
//! | [`pool`] | each thread's keep-alive connections to the upstreams |
//! | [`request_body`] | the streamed request body (size limit, progress, the client's framing errors) |
//! | [`body`] | the response bodies (the gateway's own; the upstream's: pool return, access line) |
//! | [`access`] | the access line and the gateway's metrics |
//! | [`server`] | thread-per-core runtimes with `SO_REUSEPORT` listeners, graceful drain |

pub mod access;
pub mod body;
pub mod config;
pub mod context;
pub mod cors;
pub mod direct;
pub mod docs;
pub mod forward;
pub mod framing;
pub mod headers;
pub mod health;
pub mod host;
pub mod identity;
pub mod local;
pub mod ops;
pub mod pool;
pub mod proxy;
pub mod request_body;
pub mod resolve;
pub mod routing;
pub mod server;
pub mod sticky;
pub mod tracker;
pub mod upstream;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use runtime::Service;
use slog::Logger;

use crate::{config::GatewayConfig, context::Shared, resolve::Resolver};

/// A gateway with its listeners bound, not yet serving.
pub struct Gateway {
    /// One listener per server thread, all on one port.
    listeners: Vec<std::net::TcpListener>,
    /// What the threads share.
    shared: Arc<Shared>,
    /// The port (the real one when asked for port 0).
    port: u16,
}

impl Gateway {
    /// Builds the route table and binds the listeners. The binary and the tests start here.
    /// `verifier` checks every bearer token a client presents (the binary's fetches the
    /// JWKS of users-service; the stack passes its in-process one).
    pub fn build(
        config: GatewayConfig,
        address: SocketAddr,
        logger: Logger,
        verifier: Arc<auth::Verifier>,
    ) -> anyhow::Result<Self> {
        Self::build_resolving(config, address, logger, verifier, Resolver::System)
    }

    /// [`Gateway::build`], resolving the upstreams' names with `resolver`.
    pub fn build_resolving(
        config: GatewayConfig,
        address: SocketAddr,
        logger: Logger,
        verifier: Arc<auth::Verifier>,
        resolver: Resolver,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let threads = match config.server.threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            threads => threads,
        };
        let listeners = server::bind_listeners(address, threads)
            .with_context(|| format!("binding {address}"))?;
        let port = listeners[0].local_addr()?.port();
        let shared = Arc::new(
            Shared::new(config, logger)?
                .with_verifier(verifier)
                .with_resolver(resolver),
        );
        for route in shared.routes.routes() {
            let upstreams: Vec<&str> = route
                .upstreams
                .instances()
                .iter()
                .map(|i| &*i.label)
                .collect();
            slog::info!(shared.telemetry.logger, "route"; "prefix" => &*route.prefix, "upstreams" => upstreams.join(", "));
        }
        slog::info!(shared.telemetry.logger, "listening"; "address" => format!("{}:{port}", address.ip()), "threads" => threads);
        Ok(Self {
            listeners,
            shared,
            port,
        })
    }
}

impl Service for Gateway {
    fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight requests and
    /// open WebSockets finish within the drain timeout, and returns.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let collector = self
            .shared
            .ops
            .settings
            .enabled
            .then(|| tokio::spawn(ops::collector::run(self.shared.clone())));
        let threads = self
            .listeners
            .into_iter()
            .enumerate()
            .map(|(index, listener)| {
                let shared = self.shared.clone();
                let stopped = stopped.clone();
                std::thread::Builder::new()
                    .name(format!("gateway-{index}"))
                    .spawn(move || server::run_thread(listener, shared, stopped, index == 0))
            })
            .collect::<Result<Vec<_>, _>>()?;
        shutdown.await;
        slog::info!(
            self.shared.telemetry.logger,
            "shutting down: draining connections"
        );
        let _ = stop.send(true);
        if let Some(collector) = collector {
            collector.abort();
        }
        let results = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|thread| thread.join())
                .collect::<Vec<_>>()
        })
        .await?;
        for result in results {
            result.map_err(|_| anyhow::anyhow!("a gateway thread panicked"))??;
        }
        slog::info!(self.shared.telemetry.logger, "stopped");
        Ok(())
    }
}
