//! What every process of the platform runs on, whatever it serves: the gateway, each service,
//! the worker and the one-process stack.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | clap arguments every binary takes (docs/contracts.md's variables) and one-line start-up errors |
//! | [`telemetry`] | slog JSON logging to stdout (and `LOG_DIR` files), the bridge for `log` records |
//! | [`process`] | the [`Service`] a binary runs, [`run_process`], and the `--healthcheck` probe |
//! | [`shutdown`] | SIGINT / SIGTERM as a future, fanned out to every server of a process |
//! | [`metrics`] | the Prometheus registry of one instance |
//! | [`network`] | the client's address: trusted proxies and the one `X-Forwarded-For` rule |
//! | [`readiness`] | [`Probe`]: how a dependency says whether it answers (for `/readyz`) |
//! | [`errors`] | the JSON error body and the code of each status |
//! | [`access`] | the access log's line and the rule for a client's request id |
//!
//! It links no HTTP server, database, cache or broker: the gateway runs on it alone.

pub mod access;
pub mod config;
pub mod errors;
pub mod metrics;
pub mod network;
pub mod process;
pub mod readiness;
pub mod shutdown;
pub mod telemetry;

pub use process::{Service, probe, run_process};
pub use readiness::{Probe, ProbeFuture};
