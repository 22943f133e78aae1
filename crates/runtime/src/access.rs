//! The access log's line, written by every server of the platform (the services' middleware and
//! the gateway), and the rule for a client's request id.

use slog::Logger;

/// Whether a client's `X-Request-Id` may be kept: 1–128 visible ASCII characters.
pub fn is_acceptable_id(bytes: &[u8]) -> bool {
    (1..=128).contains(&bytes.len()) && bytes.iter().all(|byte| (0x21..=0x7e).contains(byte))
}

/// One access line (docs/contracts.md, "Request id and logs"): `msg` `request` with `method`,
/// `path`, `route`, `status`, `duration_ms`, `ip`, `user_agent`, `request_id`, `trace_id`,
/// `span_id` (the server's span), plus the gateway's `upstream` and `bytes`, and the cause
/// chain of a 5xx. Every server of the platform
/// writes its requests through it, at `error` level for a 5xx and `info` otherwise.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    /// Request method.
    pub method: &'a str,
    /// Path, without the query (which may hold secrets).
    pub path: &'a str,
    /// The route that matched (its pattern or prefix).
    pub route: &'a str,
    /// Status sent.
    pub status: u16,
    /// Time from request to response.
    pub elapsed: std::time::Duration,
    /// Client address.
    pub ip: &'a str,
    /// Client `User-Agent`.
    pub user_agent: &'a str,
    /// The request id.
    pub request_id: &'a str,
    /// The request's trace and the span of this server's work on it.
    pub trace: Option<&'a crate::trace::TraceContext>,
    /// The instance that answered (the gateway).
    pub upstream: Option<&'a str>,
    /// Response body bytes (the gateway).
    pub bytes: Option<u64>,
    /// What went wrong, for a 5xx.
    pub error: Option<&'a str>,
}

impl AccessLine<'_> {
    /// Writes the line to `logger`, with the log target `access` (`LOG_LEVEL=warn,access=info`
    /// keeps the access lines and quiets the rest).
    pub fn write(self, logger: &Logger) {
        if self.status >= 500 {
            slog::error!(logger, # "access", "request"; self);
        } else {
            slog::info!(logger, # "access", "request"; self);
        }
    }
}

impl slog::KV for AccessLine<'_> {
    fn serialize(
        &self,
        record: &slog::Record<'_>,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        serializer.emit_str("method", self.method)?;
        serializer.emit_str("path", self.path)?;
        serializer.emit_str("route", self.route)?;
        serializer.emit_u16("status", self.status)?;
        serializer.emit_f64(
            "duration_ms",
            (self.elapsed.as_secs_f64() * 1_000_000.0).round() / 1_000.0,
        )?;
        serializer.emit_str("ip", self.ip)?;
        serializer.emit_str("user_agent", self.user_agent)?;
        serializer.emit_str("request_id", self.request_id)?;
        if let Some(trace) = self.trace {
            slog::KV::serialize(trace, record, serializer)?;
        }
        if let Some(upstream) = self.upstream {
            serializer.emit_str("upstream", upstream)?;
        }
        if let Some(bytes) = self.bytes {
            serializer.emit_u64("bytes", bytes)?;
        }
        if let Some(error) = self.error {
            serializer.emit_str("error", error)?;
        }
        Ok(())
    }
}
