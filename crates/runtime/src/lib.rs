//! What every process of the platform runs on, whatever it serves: the gateway, each service,
//! the worker and the one-process stack.
//!
//! | module | what it holds |
//! |---|---|
//! | `config` | clap arguments every binary takes (docs/contracts.md's variables) and one-line start-up errors |
//! | `telemetry` | slog logging to stdout, JSON or text (and JSON `LOG_DIR` files), the bridge for `log` records |
//! | `log_filter` | `LOG_LEVEL` / `RUST_LOG` directives (`info,sqlx=warn`) and `LOG_FORMAT` |
//! | `process` | the [`Service`] a binary runs, [`run_process`], and the `--healthcheck` probe |
//! | `shutdown` | SIGINT / SIGTERM as a future, fanned out to every server of a process |
//! | `metrics` | the Prometheus registry of one instance |
//! | `network` | the client's address: trusted proxies and the one `X-Forwarded-For` rule |
//! | `readiness` | [`Probe`]: how a dependency says whether it answers (for `/readyz`) |
//! | `encoding` | whether a request's `Accept-Encoding` takes gzip |
//! | `errors` | the JSON error body and the code of each status |
//! | `access` | the access log's line and the rule for a client's request id |
//! | `trace` | the W3C trace context (`traceparent`, `tracestate`) of a request or job |
//! | `export` | span export over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, nothing otherwise |
//!
//! It links no HTTP server, database, cache or broker: the gateway runs on it alone. Its one
//! HTTP client is the OTLP exporter's.

mod access;
mod config;
mod encoding;
mod errors;
mod export;
mod log_filter;
mod metrics;
mod network;
mod process;
mod readiness;
mod shutdown;
mod telemetry;
mod trace;

pub use access::{AccessLine, is_acceptable_id};
pub use config::{
    AuthArgs, CommonArgs, DEFAULT_CACHE_NAMESPACE, DEFAULT_JWKS_URL, DatabaseUrl, ProcessArgs,
    parse_args,
};
pub use encoding::accepts_gzip;
pub use errors::{ErrorBody, ErrorDetail, FieldError, code_for_status, error_json};
pub use export::{AttributeValue, SpanKind, SpanRecord, TraceArgs, Tracer, flush_spans};
pub use log_filter::{LogFilter, LogFormat};
pub use metrics::Metrics;
pub use network::{Network, TrustedProxies, client_address_among};
pub use process::{Service, probe, run_process};
pub use readiness::{Probe, ProbeFuture};
pub use shutdown::{Shutdown, shutdown_signal};
pub use telemetry::{LogGuard, json_drain, service_logger, test_logger};
pub use trace::{
    Incoming, ParsedTraceparent, SpanId, TRACEPARENT, TRACESTATE, TraceContext, TraceId,
    Traceparent, parse_traceparent,
};
