//! The GraphQL API: `/graphql` on port 3003 (its lineage is in the service's README).
//!
//! Posts are this service's own (its database); users and products belong to users-service
//! and products-service, reached over HTTP. Batching (DataLoader) keeps a nested query to one
//! call per service and one SQL statement per level.
//!
//! | module | what it holds |
//! |---|---|
//! | [`schema`] | the GraphQL schema: types, queries, mutations, subscription, loaders, errors |
//! | [`access`] | who the caller is, and what they may do or see |
//! | [`limits`] | what an operation may cost, and the extension that refuses what costs more |
//! | [`document`] | an operation's shape (root fields, aliases, depth) read from its document |
//! | [`budget`] | what an operation spends while it runs: upstream calls, response bytes |
//! | [`cost`] | what a list costs in the complexity limit |
//! | [`posts`] | the posts table |
//! | [`model`] | a post as data: the stored row, and what a client sent, checked |
//! | [`upstream`] | the users-service and products-service clients |
//! | [`pages`] | pages of the post list in memory between writes, emptied across instances |
//! | [`events`] | `postCreated` across instances, over `pubsub` |
//! | [`http`] | `/graphql`: one route per transport (GET, POST, WebSocket), negotiation, execution |
//! | [`graphiql`] | the GraphiQL page and its scripts, served from the binary |
//!
//! Everything else (config, logging, errors, health, metrics, shutdown) is `shared`'s.

pub mod access;
pub mod budget;
pub mod cost;
pub mod document;
pub mod events;
pub mod graphiql;
pub mod http;
pub mod limits;
pub mod model;
pub mod pages;
pub mod posts;
pub mod schema;
pub mod upstream;

use std::time::Duration;

use actix_web::web;
use db::Migrations;
use prometheus::{IntCounterVec, Opts};
use pubsub::PubSub;
use reqwest::Url;
use runtime::{CommonArgs, Service};
use server::{HttpService, ServiceContext, ServiceSettings};
use slog::Logger;

pub use crate::limits::Limits;
use crate::{
    events::PostEvents,
    http::Endpoint,
    limits::OperationLimits,
    pages::PageCache,
    posts::PostRepository,
    schema::{AppState, MutationRoot, QueryRoot, SubscriptionRoot},
    upstream::{ProductsClient, Upstream, UpstreamTimeouts, UsersClient},
};

/// The schema type this service serves.
pub type PlatformSchema = async_graphql::Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The service's name (logs, metrics, default database `data/graphql.db`).
pub const NAME: &str = "graphql";
/// The port of docs/contracts.md.
pub const DEFAULT_PORT: u16 = 3003;
/// How long a page of the post list is kept at most, by default.
pub const DEFAULT_POST_PAGE_TTL: Duration = Duration::from_secs(5);
/// Post text the page cache holds at most.
const POST_PAGE_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// The flags and environment variables of `graphql-service`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "graphql-service",
    version,
    about = "The GraphQL API of the platform: users, posts and products"
)]
pub struct Config {
    /// What every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where users-service answers.
    #[arg(long, env = "USERS_URL", default_value = "http://127.0.0.1:3001")]
    pub users_url: Url,
    /// Where products-service answers.
    #[arg(long, env = "PRODUCTS_URL", default_value = "http://127.0.0.1:3002")]
    pub products_url: Url,
    /// The deepest selection of data a query may nest (introspection apart).
    #[arg(long, env = "GRAPHQL_MAX_DEPTH", default_value_t = 10)]
    pub max_depth: usize,
    /// The highest complexity a query may have: every field costs 1, a list its `limit` (or
    /// default page) times its items.
    #[arg(long, env = "GRAPHQL_MAX_COMPLEXITY", default_value_t = 5000)]
    pub max_complexity: usize,
    /// The most aliased fields an operation may use.
    #[arg(long, env = "GRAPHQL_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    /// The most fields an operation may select at its root.
    #[arg(long, env = "GRAPHQL_MAX_ROOT_FIELDS", default_value_t = 20)]
    pub max_root_fields: usize,
    /// The most calls to users-service and products-service one operation (one event of a
    /// subscription) may make.
    #[arg(long, env = "GRAPHQL_MAX_UPSTREAM_CALLS", default_value_t = 20)]
    pub max_upstream_calls: usize,
    /// The largest response to one operation (one event of a subscription), in bytes of JSON.
    #[arg(long, env = "GRAPHQL_MAX_RESPONSE_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// The most operations (subscriptions) one WebSocket may run at once.
    #[arg(long, env = "GRAPHQL_MAX_SUBSCRIPTIONS", default_value_t = 32)]
    pub max_subscriptions: usize,
    /// The largest query document, in bytes.
    #[arg(long, env = "GRAPHQL_MAX_QUERY_BYTES", default_value_t = 64 * 1024)]
    pub max_query_bytes: usize,
    /// Whether the schema answers introspection queries (`__schema`, `__type`).
    #[arg(long, env = "GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,
    /// Connect timeout for users-service and products-service, in milliseconds.
    #[arg(long, env = "UPSTREAM_CONNECT_TIMEOUT_MS", default_value_t = 2000)]
    pub upstream_connect_timeout_ms: u64,
    /// Whole-exchange timeout for users-service and products-service, in milliseconds.
    #[arg(long, env = "UPSTREAM_TIMEOUT_MS", default_value_t = 10_000)]
    pub upstream_timeout_ms: u64,
    /// How long a page of the post list is kept in memory at most, in milliseconds (writes
    /// empty it at once; this bounds another instance's view when a write's announcement is
    /// lost); 0: no page cache.
    #[arg(long, env = "POST_PAGE_TTL_MS", default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub post_page_ttl_ms: u64,
}

/// Everything that decides how an instance runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What every service has (address, database, cache and Redis URL).
    pub service: ServiceSettings,
    /// users-service's base URL.
    pub users_url: Url,
    /// products-service's base URL.
    pub products_url: Url,
    /// Query limits.
    pub limits: Limits,
    /// Timeouts of calls to users-service and products-service.
    pub timeouts: UpstreamTimeouts,
    /// The pub/sub channel of `postCreated` (tests use their own); writes are announced to
    /// the other instances' page caches on it with `.posts_changed` appended.
    pub events_channel: String,
    /// How long a page of the post list is kept at most (zero: no page cache).
    pub post_page_ttl: Duration,
}

impl From<&Config> for Settings {
    /// Settings from the flags.
    fn from(config: &Config) -> Self {
        let service = ServiceSettings::from_args(NAME, DEFAULT_PORT, &config.common);
        Self {
            service,
            users_url: config.users_url.clone(),
            products_url: config.products_url.clone(),
            limits: Limits {
                max_depth: config.max_depth,
                max_complexity: config.max_complexity,
                max_aliases: config.max_aliases,
                max_root_fields: config.max_root_fields,
                max_upstream_calls: config.max_upstream_calls,
                max_response_bytes: config.max_response_bytes,
                max_subscriptions: config.max_subscriptions,
                max_query_bytes: config.max_query_bytes,
                max_body_bytes: Limits::default().max_body_bytes.max(config.max_query_bytes),
                introspection: config.introspection,
            },
            timeouts: UpstreamTimeouts {
                connect: Duration::from_millis(config.upstream_connect_timeout_ms),
                request: Duration::from_millis(config.upstream_timeout_ms),
            },
            events_channel: events::DEFAULT_CHANNEL.to_owned(),
            post_page_ttl: Duration::from_millis(config.post_page_ttl_ms),
        }
    }
}

impl Settings {
    /// Default settings around `service`, reading from these base URLs (the stack, tests).
    pub fn new(
        service: ServiceSettings,
        users_url: &str,
        products_url: &str,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            service,
            users_url: Url::parse(users_url)?,
            products_url: Url::parse(products_url)?,
            limits: Limits::default(),
            timeouts: UpstreamTimeouts::default(),
            events_channel: events::DEFAULT_CHANNEL.to_owned(),
            post_page_ttl: DEFAULT_POST_PAGE_TTL,
        })
    }
}

/// The embedded migrations, per engine.
pub fn migrations() -> Migrations {
    db::embedded_migrations!()
}

/// Builds the schema with its limits ([`limits::OperationLimits`] checks every operation).
pub fn build_schema(state: AppState, limits: &Limits) -> PlatformSchema {
    let mut builder = PlatformSchema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(state)
        .extension(OperationLimits(*limits));
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

fn counter(
    context: &ServiceContext,
    name: &str,
    help: &str,
    labels: &[&str],
) -> anyhow::Result<IntCounterVec> {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
    context
        .metrics
        .registry
        .register(Box::new(counter.clone()))?;
    Ok(counter)
}

fn base_url(url: &Url, variable: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https"),
        "{variable}: '{url}' is not an http(s) URL"
    );
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A built graphql service: database migrated, listener bound.
pub struct Application {
    /// The HTTP server.
    server: HttpService,
    /// Its posts, for demo data.
    posts: PostRepository,
}

impl Application {
    /// Connects, migrates, binds. The binary, the stack and the tests all start here.
    pub async fn build(settings: Settings, logger: Logger) -> anyhow::Result<Self> {
        let users_url = base_url(&settings.users_url, "USERS_URL")?;
        let products_url = base_url(&settings.products_url, "PRODUCTS_URL")?;
        let context = ServiceContext::open(&settings.service, migrations(), logger.clone()).await?;
        let pubsub =
            PubSub::connect(settings.service.cache.redis_url.as_deref(), logger.clone()).await?;
        // Optional: queries and mutations are served without pub/sub (a `postCreated` that
        // cannot be published is logged), so a Redis blip leaves the instance degraded, in
        // service.
        let context = context.with_optional_check("pubsub", pubsub.clone());
        let upstream_calls = counter(
            &context,
            "graphql_upstream_requests_total",
            "Calls to users-service and products-service, by outcome",
            // Not `service`: every series already carries `service="graphql"`.
            &["upstream", "outcome"],
        )?;
        let sql_queries = counter(
            &context,
            "graphql_sql_queries_total",
            "SQL statements run on the posts table, by query",
            &["query"],
        )?;
        let operations = counter(
            &context,
            "graphql_operations_total",
            "GraphQL operations, by type and outcome",
            &["operation", "outcome"],
        )?;
        // Every known series at 0 from the start, so `rate()` and the dashboards see them
        // before their first increment.
        for upstream in ["users", "products"] {
            for outcome in ["ok", "rejected", "error", "timeout"] {
                upstream_calls.with_label_values(&[upstream, outcome]);
            }
        }
        for operation in ["query", "mutation"] {
            for outcome in ["ok", "error"] {
                operations.with_label_values(&[operation, outcome]);
            }
        }
        operations.with_label_values(&["subscription", "connected"]);
        let pages = PageCache::new(
            settings.post_page_ttl,
            POST_PAGE_CACHE_BYTES,
            logger.clone(),
        )
        .follow(
            pubsub.clone(),
            format!("{}.posts_changed", settings.events_channel),
        )
        .await?;
        let posts = PostRepository::new(context.database.clone(), sql_queries, pages);
        let state = AppState {
            posts: posts.clone(),
            users: UsersClient(Upstream::new(
                "users",
                &users_url,
                settings.timeouts,
                upstream_calls.clone(),
                logger.clone(),
            )?),
            products: ProductsClient(Upstream::new(
                "products",
                &products_url,
                settings.timeouts,
                upstream_calls,
                logger.clone(),
            )?),
            events: PostEvents::new(pubsub, settings.events_channel.clone(), logger.clone()),
            logger: logger.clone(),
        };
        let endpoint = web::Data::new(Endpoint {
            schema: build_schema(state.clone(), &settings.limits),
            state,
            limits: settings.limits,
            operations,
            documents: http::document_cache(8 * 1024 * 1024),
        });
        let server = HttpService::bind(&settings.service, &context, move |config| {
            config.app_data(endpoint.clone());
            graphiql::configure(config);
            http::configure(config);
        })?;
        Ok(Self { server, posts })
    }

    /// Inserts the demo posts (by users 1 and 2) when there are none at all.
    pub async fn seed_demo_data(&self) -> anyhow::Result<bool> {
        self.posts.seed_if_empty([1, 2]).await
    }
}

impl Service for Application {
    fn port(&self) -> u16 {
        self.server.port()
    }

    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.server.run_until_stopped(shutdown).await
    }
}
