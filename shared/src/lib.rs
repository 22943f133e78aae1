//! What every service of the platform shares, so that no service writes it again.
//!
//! A service's `lib.rs` builds an [`server::HttpService`] from its [`config::CommonArgs`], adds
//! its own routes, and runs until the shutdown future it was given resolves. Everything else
//! lives here:
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | clap arguments every binary takes (docs/contracts.md's variables) and one-line start-up errors |
//! | [`crud`] | the REST shape of table-backed resources: list, cached read, create, replace, delete |
//! | [`telemetry`] | slog JSON logging to stdout (and `LOG_DIR` files), the bridge for `log` records |
//! | [`error`] | [`error::ApiError`], the JSON error body, and handlers for actix's extractor errors |
//! | [`request`] | the middleware: `X-Request-Id`, one access line per request, metrics, JSON-only errors |
//! | [`metrics`] | the Prometheus registry of one service instance |
//! | [`network`] | the client's address: trusted proxies and the one `X-Forwarded-For` rule |
//! | [`identity`] | [`identity::Caller`]: the verified caller of a request (bearer token), and the rules' helpers |
//! | [`health`] | `/healthz`, `/readyz` and `/metrics` |
//! | [`db`] | the SQLite / PostgreSQL pool chosen by URL, with embedded migrations |
//! | [`cache`] | cache-aside over Redis or an in-process cache, single-flight, fail-open |
//! | [`pagination`] | keyset pages by cursor, `Link` headers, `?ids=`, totals on request |
//! | [`messaging`] | the job queue: RabbitMQ (lapin) or an embedded durable SQL queue, one API |
//! | [`pubsub`] | publish/subscribe across instances: Redis pub/sub, or in-process |
//! | [`shutdown`] | SIGINT / SIGTERM as a future, fanned out to every server of a process |
//! | [`server`] | the actix-web server every REST service runs, with all of the above wired in |
//! | [`validate`] | field checks several services make (names) |
//! | [`store`] | object storage (local directory or S3 bucket): streamed, staged uploads; ranged reads |
//! | `testing` | (feature `testing`) a fresh database per test on SQLite or PostgreSQL, test servers, `TcpSwitch` |

pub mod cache;
pub mod config;
pub mod crud;
pub mod db;
pub mod error;
pub mod health;
pub mod identity;
pub mod messaging;
pub mod metrics;
pub mod network;
pub mod pagination;
pub mod pubsub;
pub mod request;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod validate;

pub use error::ApiError;

/// Every binary of the platform allocates through mimalloc: per-request allocations are a
/// measurable share of a service's time under glibc's allocator (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
