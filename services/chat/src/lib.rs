//! The chat: rooms over WebSockets on port 3004 (actix-ws) and over Socket.IO, their history in
//! the database, scale-out over Redis pub/sub, and the chat's web page.
//!
//! | module | what it holds |
//! |---|---|
//! | [`protocol`] | the events of docs/contracts.md ("Chat protocol"), and the checks on rooms, texts |
//! | [`access`] | the handshake's `Origin` check, its access token (three ways to send one), the names |
//! | [`names`] | names cleaned (NFC, no invisible characters) and unique in a room, across instances over Redis |
//! | [`limits`] | connections per client address; messages per connection, account and address |
//! | [`history`] | the messages in SQLite or PostgreSQL, capped per room, read by page |
//! | [`hub`] | this instance's connections and rooms, their fan-out and presence across instances over [`pubsub`] |
//! | [`frames`] | events encoded once as WebSocket frames, what an outbound queue holds |
//! | [`closing`] | why a connection ends (its close frame), the one switch that ends it |
//! | [`connection`] | one client: welcome, history, rate limit, heartbeat, slow-consumer cut-off |
//! | [`queue`] | a connection's outbound queue, bounded by the bytes waiting in it |
//! | [`outgoing`] | what goes out to one client: its response body, writing shared pre-encoded deliveries |
//! | [`messages`] | `GET /chat/rooms/{room}/messages`: the history a page at a time, by cursor |
//! | [`routes`] | `GET /chat` (page), `GET /chat/ws`, `GET /chat/rooms`, the history's route |
//! | [`settings`] | the flags and environment variables ([`Config`]), the [`Settings`] they give |
//! | [`socketio`] | `/socket.io/`: Engine.IO v4 and Socket.IO v5 into the same hub, the client bundle |
//! | [`metrics`] | the `chat_*` Prometheus series |
//!
//! Everything else (config, logging, errors, health, metrics, database, shutdown) is `shared`'s.

pub mod access;
pub mod closing;
pub mod connection;
pub mod frames;
pub mod history;
pub mod hub;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod names;
pub mod outgoing;
pub mod protocol;
pub mod queue;
pub mod routes;
pub mod settings;
pub mod socketio;

use std::time::Duration;

use actix_web::web;
use db::Migrations;
use pubsub::PubSub;
use runtime::Service;
use server::{HttpService, ServiceContext, ServiceSettings};
use slog::Logger;

pub use crate::settings::{Config, Settings};
use crate::{history::History, hub::Hub, metrics::ChatMetrics};

/// The service's name (logs, metrics, default database `data/chat.db`).
pub const NAME: &str = "chat";
/// The port of docs/contracts.md.
pub const DEFAULT_PORT: u16 = 3004;

/// The embedded migrations, per engine.
pub fn migrations() -> Migrations {
    db::embedded_migrations!()
}

/// A built chat service: database migrated, pub/sub connected, listener bound.
pub struct Application {
    http: HttpService,
    hub: Hub,
    presence: tokio::task::JoinHandle<()>,
    /// Forgets the message budgets of clients gone quiet.
    forgetting: tokio::task::JoinHandle<()>,
}

/// How often the message budgets of clients gone quiet are forgotten.
const FORGET_IDLE_BUDGETS_EVERY: Duration = Duration::from_secs(60);

impl Application {
    /// Builds with the default [`Settings`] (what the stack runs).
    pub async fn build(settings: ServiceSettings, logger: Logger) -> anyhow::Result<Self> {
        Self::build_with(settings, Settings::default(), logger).await
    }

    /// Connects the database and pub/sub (Redis when the settings' `REDIS_URL` is set), binds.
    /// The binary and the tests both start here.
    pub async fn build_with(
        settings: ServiceSettings,
        chat: Settings,
        logger: Logger,
    ) -> anyhow::Result<Self> {
        let redis_url = settings.cache.redis_url.clone();
        let pubsub = PubSub::connect(redis_url.as_deref(), logger.clone()).await?;
        let context = ServiceContext::open(&settings, migrations(), logger.clone())
            .await?
            .with_check("pubsub", pubsub.clone());
        slog::info!(logger, "pub/sub ready"; "pubsub" => pubsub.kind());
        let metrics = ChatMetrics::register(&context.metrics.registry)?;
        let history = History::new(context.database.clone(), chat.history_cap);
        let hub = Hub::new(pubsub, chat, metrics, logger);
        let presence = hub.start_presence().await?;
        let forgetting = hub.limits().forget_idle_every(FORGET_IDLE_BUDGETS_EVERY);
        let engine = web::Data::new(socketio::handshake::Engine {
            hub: hub.clone(),
            history: history.clone(),
            sessions: socketio::session::Sessions::default(),
        });
        let (hub_data, history_data) = (web::Data::new(hub.clone()), web::Data::new(history));
        let http = HttpService::bind(&settings, &context, move |config| {
            routes::configure(config, hub_data.clone(), history_data.clone());
            socketio::configure(config, engine.clone());
        })?;
        Ok(Self {
            http,
            hub,
            presence,
            forgetting,
        })
    }
}

impl Service for Application {
    fn port(&self) -> u16 {
        self.http.port()
    }

    /// On `shutdown`: refuses new clients, closes every connection with 1001 (going away),
    /// waits for them (bounded), releases their names in Redis (bounded), then drains and
    /// stops the HTTP server.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = runtime::Shutdown::new();
        let server_stop = stop.wait();
        let hub = self.hub.clone();
        let presence = self.presence;
        let forgetting = self.forgetting;
        tokio::spawn(async move {
            shutdown.await;
            slog::info!(hub.logger(), "shutting down: closing WebSocket connections");
            hub.close_all(hub.settings().shutdown_grace).await;
            // The names of the closed connections, free in Redis now rather than a lease later
            // (a renewal and the releases: two round trips of at most 2 s).
            let _ = tokio::time::timeout(Duration::from_secs(5), hub.names().flush()).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), presence).await;
            forgetting.abort();
            stop.trigger();
        });
        self.http.run_until_stopped(server_stop).await
    }
}
