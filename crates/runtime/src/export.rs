//! Span export over OTLP (HTTP/protobuf, the opentelemetry crates), on only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! [`TraceArgs::install`] (which [`crate::run_process`] calls) fixes the process's choice once.
//! Each server takes a [`Tracer`] for its service name ([`Tracer::for_service`]): with an
//! endpoint, a tracer of one provider per service name (`service.name`, or `OTEL_SERVICE_NAME`
//! for all) with a batch span processor; without one, an empty handle whose
//! [`Tracer::record`] returns at once, so a process that exports nothing builds no span,
//! attribute or name. The ids of [`crate::TraceContext`] exist, are logged and forwarded either
//! way; a recorded span takes those ids, so a span exported here is the one the logs name.
//! [`flush_spans`] exports what is pending and stops the providers (at the end of
//! [`crate::run_process`]).

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Mutex, OnceLock},
    time::SystemTime,
};

use opentelemetry::{
    Context, KeyValue,
    trace::{
        Span as _, SpanContext, SpanKind as OtelKind, TraceContextExt as _, TraceFlags, TraceState,
        Tracer as _, TracerProvider as _,
    },
};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::{
    Resource,
    trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider},
};

use crate::trace::{SpanId, TraceContext};

/// Where a process's spans go (docs/contracts.md, "Tracing").
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TraceArgs {
    /// OTLP/HTTP endpoint spans are exported to (`http://collector:4318`; `/v1/traces` is
    /// appended); unset: no span is exported
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// `service.name` of every exported span [default: the service's own name]
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
}

/// The process's choice, fixed by the first [`TraceArgs::install`].
static EXPORT: OnceLock<Option<Export>> = OnceLock::new();

struct Export {
    /// The signal URL: the endpoint with `/v1/traces`.
    url: String,
    /// `OTEL_SERVICE_NAME`, when set.
    service_name: Option<String>,
    /// One provider per `service.name`, built on first use.
    providers: Mutex<HashMap<String, SdkTracerProvider>>,
}

impl TraceArgs {
    /// Fixes where this process's spans go; a later call keeps the first choice (one process,
    /// one configuration; the stack's services share it).
    pub fn install(&self) {
        EXPORT.get_or_init(|| {
            let endpoint = self
                .otel_exporter_otlp_endpoint
                .as_deref()
                .map(str::trim)
                .filter(|endpoint| !endpoint.is_empty())?;
            Some(Export {
                url: format!("{}/v1/traces", endpoint.trim_end_matches('/')),
                service_name: self
                    .otel_service_name
                    .clone()
                    .filter(|name| !name.trim().is_empty()),
                providers: Mutex::new(HashMap::new()),
            })
        });
    }
}

/// How long a stopping process waits for its last spans to be exported (a collector that does
/// not answer must not hold the exit past a container's grace period).
const FLUSH_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// Exports every pending span and stops the providers, each within [`FLUSH_BOUND`]: the last
/// thing a process does.
pub fn flush_spans() {
    let Some(Some(export)) = EXPORT.get() else {
        return;
    };
    let providers: Vec<SdkTracerProvider> = export
        .providers
        .lock()
        .expect("trace providers lock")
        .drain()
        .map(|(_, provider)| provider)
        .collect();
    for provider in providers {
        // Shutting down exports what is pending; an unreachable collector loses those spans,
        // as the process is ending either way.
        let _ = provider.shutdown_with_timeout(FLUSH_BOUND);
    }
}

thread_local! {
    /// The ids of the span this thread is building ([`Tracer::record`]), for [`GivenIds`].
    static GIVEN: std::cell::Cell<Option<(opentelemetry::trace::TraceId, opentelemetry::trace::SpanId)>> =
        const { std::cell::Cell::new(None) };
}

/// The SDK's id generator for the platform's spans: the ids [`Tracer::record`] was given (the
/// ones already logged and forwarded), never ids of the SDK's own choosing.
#[derive(Debug, Default)]
struct GivenIds(RandomIdGenerator);

impl IdGenerator for GivenIds {
    fn new_trace_id(&self) -> opentelemetry::trace::TraceId {
        GIVEN
            .with(std::cell::Cell::get)
            .map_or_else(|| self.0.new_trace_id(), |(trace_id, _)| trace_id)
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        GIVEN
            .with(std::cell::Cell::get)
            .map_or_else(|| self.0.new_span_id(), |(_, span_id)| span_id)
    }
}

/// What a span is to the trace (OpenTelemetry's span kinds the platform records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A request this process served.
    Server,
    /// A call this process made (the gateway's proxied request, GraphQL's upstream call).
    Client,
    /// A job this process published.
    Producer,
    /// A job this process consumed.
    Consumer,
}

/// A value of a span attribute.
#[derive(Debug, Clone)]
pub enum AttributeValue {
    /// Text.
    Text(String),
    /// A number.
    Int(i64),
}

/// A finished span: built only when [`Tracer::records`] its context, recorded with [`Tracer::record`].
#[derive(Debug)]
pub struct SpanRecord<'a> {
    /// `METHOD route` for a request, the task for a job.
    pub name: String,
    /// Its kind.
    pub kind: SpanKind,
    /// Its trace and its own span id.
    pub context: &'a TraceContext,
    /// The span it descends from (another process's, or this one's).
    pub parent: Option<SpanId>,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes (OpenTelemetry's semantic names: `http.request.method`, …).
    pub attributes: Vec<(&'static str, AttributeValue)>,
    /// Whether it failed (a 5xx, a failed job).
    pub error: bool,
}

/// A service's handle for recording spans; empty (and free) when nothing is exported.
#[derive(Clone, Default)]
pub struct Tracer(Option<SdkTracer>);

impl std::fmt::Debug for Tracer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_tuple("Tracer")
            .field(&if self.0.is_some() { "on" } else { "off" })
            .finish()
    }
}

impl Tracer {
    /// The tracer of `service` (its `service.name`, unless `OTEL_SERVICE_NAME` names all of
    /// the process's): empty when the process exports nothing or the exporter cannot be built.
    pub fn for_service(service: &str) -> Self {
        let Some(Some(export)) = EXPORT.get() else {
            return Self(None);
        };
        let name = export.service_name.as_deref().unwrap_or(service).to_owned();
        let mut providers = export.providers.lock().expect("trace providers lock");
        if let Some(provider) = providers.get(&name) {
            return Self(Some(provider.tracer("platform")));
        }
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(export.url.clone())
            .build()
        {
            Ok(exporter) => exporter,
            Err(error) => {
                eprintln!("error: OTEL_EXPORTER_OTLP_ENDPOINT: {error}");
                return Self(None);
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_id_generator(GivenIds::default())
            .with_resource(Resource::builder().with_service_name(name.clone()).build())
            .build();
        let tracer = provider.tracer("platform");
        providers.insert(name, provider);
        Self(Some(tracer))
    }

    /// A tracer that records nothing.
    pub fn off() -> Self {
        Self(None)
    }

    /// Whether a span of `context` is recorded: exporting, and the trace sampled (build a
    /// [`SpanRecord`] only then; an unsampled trace's span would be dropped by the sampler
    /// after its name and attributes were made).
    pub fn records(&self, context: &crate::TraceContext) -> bool {
        self.0.is_some() && context.sampled()
    }

    /// Hands a finished span to the batch processor (a sampled trace's; nothing when off).
    pub fn record(&self, span: SpanRecord<'_>) {
        let Some(tracer) = &self.0 else {
            return;
        };
        let context = span.context;
        let flags = TraceFlags::new(context.flags);
        let state = context
            .tracestate
            .as_deref()
            .and_then(|state| state.parse::<TraceState>().ok())
            .unwrap_or_default();
        let trace_id = opentelemetry::trace::TraceId::from_bytes(context.trace_id.0);
        let parent = match span.parent {
            Some(parent) => Context::new().with_remote_span_context(SpanContext::new(
                trace_id,
                opentelemetry::trace::SpanId::from_bytes(parent.0),
                flags,
                true,
                state,
            )),
            None => Context::new(),
        };
        let attributes = span
            .attributes
            .into_iter()
            .map(|(key, value)| match value {
                AttributeValue::Text(text) => KeyValue::new(key, text),
                AttributeValue::Int(number) => KeyValue::new(key, number),
            })
            .collect::<Vec<_>>();
        let span_id = opentelemetry::trace::SpanId::from_bytes(context.span_id.0);
        GIVEN.with(|given| given.set(Some((trace_id, span_id))));
        let mut recorded = tracer
            .span_builder(Cow::Owned(span.name))
            .with_kind(match span.kind {
                SpanKind::Server => OtelKind::Server,
                SpanKind::Client => OtelKind::Client,
                SpanKind::Producer => OtelKind::Producer,
                SpanKind::Consumer => OtelKind::Consumer,
            })
            .with_start_time(span.start)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        GIVEN.with(|given| given.set(None));
        if span.error {
            recorded.set_status(opentelemetry::trace::Status::error(""));
        }
        recorded.end_with_timestamp(span.end);
    }
}
