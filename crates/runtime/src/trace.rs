//! The W3C trace context (<https://www.w3.org/TR/trace-context/>) of one request or job: its
//! trace id, its own span id, the sampled flag and the vendors' `tracestate`, parsed from and
//! written to the `traceparent` / `tracestate` header fields.
//!
//! A context whose `traceparent` cannot be parsed is never repaired: the receiver starts a
//! trace of its own (and drops the `tracestate` that came with it, as the spec says).

use std::{fmt, sync::Arc};

/// The `traceparent` header field's name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header field's name.
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` kept (the spec's 512 characters a platform must propagate); a
/// longer one is dropped whole rather than cut between entries.
const MAX_TRACESTATE: usize = 512;

/// The sampled bit of the trace flags: the caller may record the trace.
const SAMPLED: u8 = 0x01;

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// An id of `$bytes` bytes, never all zero, written as lower-case hex: its type, its text (for
/// headers and log fields) and a random one.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $bytes:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $bytes]);

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut text = [0_u8; $bytes * 2];
                write_hex(&self.0, &mut text);
                formatter.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
            }
        }

        impl slog::Value for $name {
            fn serialize(
                &self,
                _record: &slog::Record<'_>,
                key: slog::Key,
                serializer: &mut dyn slog::Serializer,
            ) -> slog::Result {
                serializer.emit_arguments(key, &format_args!("{self}"))
            }
        }

        impl $name {
            /// A random, non-zero id.
            pub fn random() -> Self {
                loop {
                    let id: [u8; $bytes] = rand::random();
                    if id != [0; $bytes] {
                        return Self(id);
                    }
                }
            }
        }
    };
}

id_type!(
    /// A trace's id: 16 bytes, never all zero, written as 32 lower-case hex digits.
    TraceId,
    16
);
id_type!(
    /// A span's id: 8 bytes, never all zero, written as 16 lower-case hex digits.
    SpanId,
    8
);

/// The trace context of one unit of work (a request, a job): the trace it belongs to and its
/// own span. Forwarded downstream as the `traceparent` whose parent id is [`Self::span_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace this work belongs to.
    pub trace_id: TraceId,
    /// This work's own span id.
    pub span_id: SpanId,
    /// The trace flags (only the sampled bit is kept).
    pub flags: u8,
    /// The vendors' `tracestate`, passed on as it came (at most 512 characters).
    pub tracestate: Option<Arc<str>>,
}

/// The 55 characters of a version-00 `traceparent`, written without allocating.
#[derive(Clone, Copy)]
pub struct Traceparent([u8; 55]);

impl Traceparent {
    /// The field's value.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("traceparent is ASCII")
    }

    /// The field's value as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Traceparent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl fmt::Debug for Traceparent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The parts of a parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedTraceparent {
    /// Its trace id.
    pub trace_id: TraceId,
    /// Its parent id: the caller's span.
    pub parent_id: SpanId,
    /// Its trace flags.
    pub flags: u8,
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        // Upper-case hex is invalid in a traceparent (the spec's `HEXDIGLC`).
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

fn parse_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0_u8; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(out)
}

/// Parses a `traceparent` value: `version-traceid-parentid-flags`, lower-case hex. Version 00
/// is exactly 55 characters; a later version is read for its first four parts when what
/// follows them starts with `-`; version `ff` is invalid. All-zero ids are invalid.
pub fn parse_traceparent(value: &[u8]) -> Option<ParsedTraceparent> {
    if value.len() < 55 {
        return None;
    }
    let version = parse_hex::<1>(&value[0..2])?[0];
    match version {
        0xff => return None,
        0x00 if value.len() != 55 => return None,
        _ if value.len() > 55 && value[55] != b'-' => return None,
        _ => {}
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = parse_hex::<16>(&value[3..35])?;
    let parent_id = parse_hex::<8>(&value[36..52])?;
    let flags = parse_hex::<1>(&value[53..55])?[0];
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(ParsedTraceparent {
        trace_id: TraceId(trace_id),
        parent_id: SpanId(parent_id),
        flags,
    })
}

/// Whether a `tracestate` value may be passed on: at most 512 characters, printable ASCII
/// (with spaces and tabs), and not empty.
fn acceptable_tracestate(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_TRACESTATE
        && value
            .iter()
            .all(|byte| (0x20..=0x7e).contains(byte) || *byte == b'\t')
}

/// A request's context from its fields: the caller's span as parent (when its `traceparent`
/// parses) and this work's own context (a new span in the caller's trace, or a new trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// This work's own context.
    pub context: TraceContext,
    /// The caller's span, when a valid `traceparent` named one.
    pub parent: Option<SpanId>,
}

impl TraceContext {
    /// A new trace, sampled, with this work as its root span.
    pub fn start() -> Self {
        Self {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            flags: SAMPLED,
            tracestate: None,
        }
    }

    /// Continues the caller's trace (its `traceparent` and `tracestate` values, every
    /// `tracestate` field joined with commas by the caller) with a span of its own, or starts
    /// a trace when the `traceparent` is absent or invalid.
    pub fn accept_or_start(traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> Incoming {
        match traceparent.and_then(parse_traceparent) {
            Some(parent) => Incoming {
                context: Self {
                    trace_id: parent.trace_id,
                    span_id: SpanId::random(),
                    flags: parent.flags & SAMPLED,
                    tracestate: tracestate
                        .filter(|value| acceptable_tracestate(value))
                        .and_then(|value| std::str::from_utf8(value).ok())
                        .map(Arc::from),
                },
                parent: Some(parent.parent_id),
            },
            None => Incoming {
                context: Self::start(),
                parent: None,
            },
        }
    }

    /// A span of this work's (an upstream call): the same trace, flags and state, a new span id.
    pub fn child(&self) -> Self {
        Self {
            span_id: SpanId::random(),
            ..self.clone()
        }
    }

    /// Whether the trace is sampled (its spans are recorded when exporting).
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The `traceparent` that makes this context's span the parent of the receiver's.
    pub fn traceparent(&self) -> Traceparent {
        let mut out = [b'-'; 55];
        out[0..2].copy_from_slice(b"00");
        write_hex(&self.trace_id.0, &mut out[3..35]);
        write_hex(&self.span_id.0, &mut out[36..52]);
        write_hex(&[self.flags], &mut out[53..55]);
        Traceparent(out)
    }
}

/// The context's ids as log fields: `trace_id` and `span_id`.
impl slog::KV for TraceContext {
    fn serialize(
        &self,
        record: &slog::Record<'_>,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        slog::Value::serialize(&self.trace_id, record, "trace_id", serializer)?;
        slog::Value::serialize(&self.span_id, record, "span_id", serializer)
    }
}

#[cfg(test)]
mod tests;
