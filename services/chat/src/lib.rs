//! The chat: rooms over WebSockets on port 3004 (the seed's Socket.io chat, made real with
//! actix-ws), its history in the database, scale-out over Redis pub/sub, and its web page.
//!
//! | module | what it holds |
//! |---|---|
//! | [`protocol`] | the events of docs/contracts.md ("Chat protocol"), and the checks on rooms, texts |
//! | [`access`] | the handshake's `Origin` check, its access token (three ways to send one), the names |
//! | [`names`] | names cleaned (NFC, no invisible characters) and unique in a room |
//! | [`limits`] | connections per client address; messages per connection, account and address |
//! | [`history`] | the messages in SQLite or PostgreSQL, capped per room, read by page |
//! | [`hub`] | this instance's connections and rooms, their fan-out and presence across instances over [`shared::pubsub`] |
//! | [`frames`] | events encoded once as WebSocket frames, what an outbound queue holds |
//! | [`closing`] | why a connection ends (its close frame), the one switch that ends it |
//! | [`connection`] | one client: welcome, history, rate limit, heartbeat, slow-consumer cut-off |
//! | [`queue`] | a connection's outbound queue, bounded by the events in it |
//! | [`outgoing`] | what goes out to one client: its response body, writing shared pre-encoded deliveries |
//! | [`messages`] | `GET /chat/rooms/{room}/messages`: the history a page at a time, by cursor |
//! | [`routes`] | `GET /chat` (page), `GET /chat/ws`, `GET /chat/rooms`, the history's route |
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
pub mod socketio;

use std::{sync::Arc, time::Duration};

use actix_web::web;
use shared::{
    config::CommonArgs,
    db::Migrations,
    pubsub::PubSub,
    server::{HttpService, Service, ServiceContext, ServiceSettings},
};
use slog::Logger;

use crate::{
    access::AllowedOrigins,
    history::History,
    hub::Hub,
    limits::{LimitSettings, Rate},
    metrics::ChatMetrics,
};

/// The service's name (logs, metrics, default database `data/chat.db`).
pub const NAME: &str = "chat";
/// The port of docs/contracts.md.
pub const DEFAULT_PORT: u16 = 3004;

/// The flags and environment variables of `chat-service`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "chat-service",
    version,
    about = "The real-time chat of the platform (WebSockets)"
)]
pub struct Config {
    /// What every service takes (`REDIS_URL` set: rooms shared by every instance).
    #[command(flatten)]
    pub common: CommonArgs,
    /// Seconds between heartbeat pings to each client
    #[arg(long, env = "CHAT_PING_INTERVAL_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub chat_ping_interval_secs: u64,
    /// Seconds without a pong after which a client is disconnected
    #[arg(long, env = "CHAT_PONG_TIMEOUT_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub chat_pong_timeout_secs: u64,
    /// Messages kept per room (older ones are deleted)
    #[arg(long, env = "CHAT_HISTORY_CAP", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=1_000_000))]
    pub chat_history_cap: u64,
    /// Whether connections without a token may chat (as `guest-xxxx`); false: 401 without one
    #[arg(long, env = "CHAT_GUESTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub chat_guests: bool,
    /// Origins besides the request's own host whose pages may open the chat, comma-separated
    /// (`https://app.example,http://localhost:5173`)
    #[arg(long, env = "CHAT_ALLOWED_ORIGINS", default_value = "", value_parser = AllowedOrigins::parse)]
    pub chat_allowed_origins: AllowedOrigins,
    /// Open WebSocket connections one client address may hold (an IPv6 client: its /64);
    /// more are refused with 429
    #[arg(long, env = "CHAT_CONNECTIONS_PER_ADDRESS", default_value_t = LimitSettings::DEFAULT.connections_per_address, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chat_connections_per_address: u32,
    /// Chat messages per second one client address may send over all its connections
    #[arg(long, env = "CHAT_ADDRESS_MESSAGES_PER_SECOND", default_value_t = LimitSettings::DEFAULT.address.per_second, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chat_address_messages_per_second: u32,
    /// Chat messages one client address may send at once over all its connections
    #[arg(long, env = "CHAT_ADDRESS_MESSAGE_BURST", default_value_t = LimitSettings::DEFAULT.address.burst, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chat_address_message_burst: u32,
    /// Chat messages per second one account may send over all its connections
    #[arg(long, env = "CHAT_ACCOUNT_MESSAGES_PER_SECOND", default_value_t = LimitSettings::DEFAULT.account.per_second, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chat_account_messages_per_second: u32,
    /// Chat messages one account may send at once over all its connections
    #[arg(long, env = "CHAT_ACCOUNT_MESSAGE_BURST", default_value_t = LimitSettings::DEFAULT.account.burst, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chat_account_message_burst: u32,
}

impl Config {
    /// The chat settings these flags give.
    pub fn chat_settings(&self) -> ChatSettings {
        ChatSettings {
            ping_interval: Duration::from_secs(self.chat_ping_interval_secs),
            pong_timeout: Duration::from_secs(self.chat_pong_timeout_secs),
            history_cap: usize::try_from(self.chat_history_cap).unwrap_or(usize::MAX),
            guests: self.chat_guests,
            allowed_origins: self.chat_allowed_origins.clone(),
            limits: LimitSettings {
                connections_per_address: self.chat_connections_per_address,
                address: Rate::new(
                    self.chat_address_messages_per_second,
                    self.chat_address_message_burst,
                ),
                account: Rate::new(
                    self.chat_account_messages_per_second,
                    self.chat_account_message_burst,
                ),
                ..LimitSettings::default()
            },
            ..ChatSettings::default()
        }
    }
}

/// How the chat behaves; the defaults are the figures, tests shorten the timings.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// Time between heartbeat pings.
    pub ping_interval: Duration,
    /// A client silent (no pong, no frame) this long is disconnected.
    pub pong_timeout: Duration,
    /// Bytes of frames a client's outbound queue holds; a client whose queue would overflow
    /// is disconnected (1013).
    pub outbound_bytes: usize,
    /// Largest frame (and fragmented message) a client may send; larger closes with 1009.
    pub max_frame_bytes: usize,
    /// Longest message text, in characters.
    pub max_text_chars: usize,
    /// Messages sent in `history` on joining.
    pub history_len: usize,
    /// Messages kept per room.
    pub history_cap: usize,
    /// Connections per client address, and messages per connection, account and address.
    pub limits: LimitSettings,
    /// Prefix of the pub/sub channels (instances sharing rooms use the same one).
    pub channel_prefix: String,
    /// How often each instance announces its online counts (and 3× this: when it is forgotten).
    pub presence_interval: Duration,
    /// How long shutdown waits for clients to be closed before stopping the server.
    pub shutdown_grace: Duration,
    /// How long a room's fan-out spaces its deliveries per member here (at most 10 ms, none
    /// under 1 ms): a busy big room sends each client its events in fewer, larger writes.
    pub coalesce_per_member: Duration,
    /// Whether a connection without a token is let in, under a `guest-xxxx` name.
    pub guests: bool,
    /// Origins whose pages may open the chat besides the request's own host.
    pub allowed_origins: AllowedOrigins,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(5),
            pong_timeout: Duration::from_secs(15),
            // 5 s of a room of 1 000 clients sending a message a second each; 500 messages of
            // the longest text.
            outbound_bytes: 1024 * 1024,
            max_frame_bytes: 64 * 1024,
            max_text_chars: 2000,
            history_len: 50,
            history_cap: 1000,
            limits: LimitSettings::default(),
            channel_prefix: "chat".to_owned(),
            presence_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            coalesce_per_member: Duration::from_micros(10),
            guests: true,
            allowed_origins: AllowedOrigins::default(),
        }
    }
}

/// The embedded migrations, per engine.
pub fn migrations() -> Migrations {
    shared::embedded_migrations!()
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
    /// Builds with the default [`ChatSettings`] (what the stack runs).
    pub async fn build(settings: ServiceSettings, logger: Logger) -> anyhow::Result<Self> {
        Self::build_with(settings, ChatSettings::default(), logger).await
    }

    /// Connects the database and pub/sub (Redis when the settings' `REDIS_URL` is set), binds.
    /// The binary and the tests both start here.
    pub async fn build_with(
        settings: ServiceSettings,
        chat: ChatSettings,
        logger: Logger,
    ) -> anyhow::Result<Self> {
        let redis_url = settings.cache.redis_url.clone();
        let pubsub = PubSub::connect(redis_url.as_deref(), logger.clone()).await?;
        let checked = pubsub.clone();
        let context = ServiceContext::open(&settings, migrations(), logger.clone())
            .await?
            .with_check(
                "pubsub",
                Arc::new(move || {
                    let pubsub = checked.clone();
                    Box::pin(async move { pubsub.check().await.map_err(anyhow::Error::from) })
                }),
            );
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
    /// waits for them (bounded), then drains and stops the HTTP server.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = shared::shutdown::Shutdown::new();
        let server_stop = stop.wait();
        let hub = self.hub.clone();
        let presence = self.presence;
        let forgetting = self.forgetting;
        tokio::spawn(async move {
            shutdown.await;
            slog::info!(hub.logger(), "shutting down: closing WebSocket connections");
            hub.close_all(hub.settings().shutdown_grace).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), presence).await;
            forgetting.abort();
            stop.trigger();
        });
        self.http.run_until_stopped(server_stop).await
    }
}
