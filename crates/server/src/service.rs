//! The actix-web server every REST service runs, with the building blocks (database, cache,
//! token verifier, metrics) wired in.
//!
//! A service builds [`ServiceSettings`] from its flags, opens its [`ServiceContext`] (database,
//! cache, metrics, logger), and hands its routes to [`HttpService::bind`]. Tests change the
//! settings (port 0, their own database) and take the same path as the binary.

use std::{
    future::Future,
    net::{SocketAddr, TcpListener},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use actix_web::{App, HttpServer, dev::Server, middleware::from_fn, web};
use anyhow::Context;
use slog::Logger;

use cache::{Cache, CacheSettings};
use db::{Database, Migrations, redact};
use runtime::{
    CommonArgs, DatabaseUrl, Metrics, Probe, TrustedProxies, run_process, service_logger,
};

use crate::{
    ApiError,
    error::{json_error, path_error, query_error},
    health::{self, Need, Readiness},
    request::{Observability, observe},
};

/// The largest JSON request body a service reads (64 KiB).
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// Everything that decides how a service instance runs.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The service's name (`users`), for logs, metrics and the default database file.
    pub name: &'static str,
    /// Where to listen (port 0 picks a free one).
    pub address: SocketAddr,
    /// The database.
    pub database_url: DatabaseUrl,
    /// The cache.
    pub cache: CacheSettings,
    /// The largest JSON body accepted.
    pub json_limit: usize,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub shutdown_timeout: Duration,
    /// actix worker threads (0: one per core).
    pub workers: usize,
    /// Checks the bearer tokens of requests ([`crate::identity::Caller`]); one per process.
    pub verifier: Arc<auth::Verifier>,
    /// Peers whose `X-Forwarded-For` names the client ([`crate::network::client_address`]).
    pub trusted_proxies: TrustedProxies,
}

impl ServiceSettings {
    /// Settings from the common flags, with the service's default port.
    pub fn from_args(name: &'static str, default_port: u16, args: &CommonArgs) -> Self {
        Self {
            name,
            address: SocketAddr::new(args.process.bind, args.port.unwrap_or(default_port)),
            database_url: args.database_url_or_default(name),
            cache: CacheSettings {
                namespace: format!("{}:{name}", args.cache_namespace),
                ..CacheSettings::new(
                    name,
                    args.redis_url.clone(),
                    Duration::from_secs(args.cache_ttl_secs),
                )
            },
            json_limit: JSON_BODY_LIMIT,
            shutdown_timeout: Duration::from_secs(10),
            workers: 0,
            verifier: args.auth.remote_verifier(),
            trusted_proxies: args.trusted_proxies(),
        }
    }
}

/// What a service's handlers and start-up share.
#[derive(Clone)]
pub struct ServiceContext {
    /// The service's name.
    pub name: &'static str,
    /// Its logger (`service` field set).
    pub logger: Logger,
    /// Its metrics.
    pub metrics: Metrics,
    /// Its database, migrated.
    pub database: Database,
    /// Its cache.
    pub cache: Cache,
    /// The service's own `/readyz` checks beyond the database and the cache (a broker, a store).
    pub extra_checks: Readiness,
}

impl ServiceContext {
    /// Connects the database (running `migrations`) and sets up the cache and metrics.
    pub async fn open(
        settings: &ServiceSettings,
        migrations: Migrations,
        logger: Logger,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::new(settings.name);
        let database = Database::connect(&settings.database_url, migrations).await?;
        let cache = Cache::new(settings.cache.clone(), metrics.clone(), logger.clone())?;
        slog::info!(logger, "dependencies ready";
            "database" => redact(&settings.database_url.0), "cache" => cache.kind());
        Ok(Self {
            name: settings.name,
            logger,
            metrics,
            database,
            cache,
            extra_checks: Readiness::default(),
        })
    }

    /// Adds a `/readyz` check of a dependency of this service's own (a broker, a store)
    /// without which it cannot serve.
    pub fn with_check(mut self, name: &'static str, probe: impl Probe) -> Self {
        self.extra_checks = self.extra_checks.with(name, Need::Required, probe);
        self
    }

    /// Adds a `/readyz` check of a dependency this service serves without, degraded (pub/sub
    /// when local subscribers are still served).
    pub fn with_optional_check(mut self, name: &'static str, probe: impl Probe) -> Self {
        self.extra_checks = self.extra_checks.with(name, Need::Optional, probe);
        self
    }

    /// The `/readyz` checks: the database (required), the cache (optional: it fails open),
    /// and the service's own.
    pub fn readiness(&self) -> Readiness {
        let mut readiness = Readiness::default()
            .with("database", Need::Required, self.database.clone())
            .with("cache", Need::Optional, self.cache.clone());
        readiness
            .dependencies
            .extend(self.extra_checks.dependencies.iter().cloned());
        readiness
    }
}

/// A bound, not yet running, actix-web server.
pub struct HttpService {
    /// The port it listens on (the real one when asked for port 0).
    port: u16,
    /// The server; it runs when awaited.
    server: Server,
    /// Closed after the server stops.
    database: Database,
    /// For the lifecycle lines.
    logger: Logger,
}

impl HttpService {
    /// Binds the listener and builds the app: the service's routes (`routes`), the health
    /// routes, the middleware, JSON error handling, and a JSON 404 for unknown paths.
    pub fn bind<F>(
        settings: &ServiceSettings,
        context: &ServiceContext,
        routes: F,
    ) -> anyhow::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let listener = TcpListener::bind(settings.address)
            .with_context(|| format!("binding {}", settings.address))?;
        let port = listener.local_addr()?.port();
        let observability = web::Data::new(Observability {
            logger: context.logger.clone(),
            metrics: context.metrics.clone(),
            tracer: runtime::Tracer::for_service(settings.name),
        });
        let readiness = web::Data::new(context.readiness());
        let verifier = web::Data::from(settings.verifier.clone());
        let trusted_proxies = web::Data::new(settings.trusted_proxies.clone());
        let json_limit = settings.json_limit;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(observability.clone())
                .app_data(readiness.clone())
                .app_data(verifier.clone())
                .app_data(trusted_proxies.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(json_limit)
                        .error_handler(json_error),
                )
                .app_data(web::PathConfig::default().error_handler(path_error))
                .app_data(web::QueryConfig::default().error_handler(query_error))
                .wrap(from_fn(observe))
                .configure(health::configure)
                .configure(routes.clone())
                .default_service(web::to(not_found))
        })
        // Small responses and WebSocket frames go out at once, not after a delayed ACK.
        .on_connect(|connection, _| {
            if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = stream.set_nodelay(true);
            }
        })
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout.as_secs().max(1));
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = server.listen(listener)?.run();
        slog::info!(context.logger, "listening"; "address" => format!("{}:{port}", settings.address.ip()));
        Ok(Self {
            port,
            server,
            database: context.database.clone(),
            logger: context.logger.clone(),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
    /// (bounded by the shutdown timeout) and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let logger = self.logger.clone();
        tokio::spawn(async move {
            shutdown.await;
            slog::info!(logger, "shutting down: draining in-flight requests");
            handle.stop(true).await;
        });
        self.server.await.context("running the HTTP server")?;
        self.database.close().await;
        slog::info!(self.logger, "stopped");
        Ok(())
    }
}

async fn not_found(request: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.path()
    )))
}

/// What a service binary's `main` runs: [`run_process`] with the service's settings and logger.
pub async fn run_binary<F, Fut>(
    name: &'static str,
    default_port: u16,
    args: &CommonArgs,
    run: F,
) -> ExitCode
where
    F: FnOnce(ServiceSettings, Logger) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if args.healthcheck {
        return runtime::probe(args.port.unwrap_or(default_port));
    }
    let settings = ServiceSettings::from_args(name, default_port, args);
    run_process(name, &args.process, |root| {
        run(settings, service_logger(&root, name))
    })
    .await
}
