//! The middleware every service runs on every request: the `X-Request-Id`, the W3C trace
//! context (`traceparent`, `tracestate`) and the request's server span, one JSON access line,
//! the HTTP metrics, and the rule that every error response is a JSON error body.

use std::{
    future::{Ready, ready},
    sync::Arc,
    time::{Instant, SystemTime},
};

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest,
    body::{BoxBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::header::{self, HeaderName, HeaderValue},
    middleware::Next,
    web,
};
use slog::Logger;

use runtime::{
    AccessLine, AttributeValue, Metrics, SpanKind, SpanRecord, TRACEPARENT, TRACESTATE,
    TraceContext, Tracer, is_acceptable_id,
};

use crate::error::{body_for_status, is_json};

/// The request id header of docs/contracts.md.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id that follows one request through the platform; handlers extract it to pass it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub Arc<str>);

impl RequestId {
    /// The client's id when it is 1–128 visible ASCII characters, otherwise a new UUID.
    pub fn accept_or_generate(client_value: Option<&HeaderValue>) -> Self {
        match client_value {
            Some(value) if is_acceptable_id(value.as_bytes()) => Self(Arc::from(
                value.to_str().expect("visible ASCII is valid str"),
            )),
            _ => Self::generate(),
        }
    }

    /// A fresh random id.
    pub fn generate() -> Self {
        Self(Arc::from(uuid::Uuid::new_v4().to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The trace context of the request being served: its trace id and this service's span id
/// (what the access line logs, and what a handler forwards on its own calls and jobs as the
/// parent of theirs: [`TraceContext::traceparent`] of it or of a [`TraceContext::child`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTrace(pub TraceContext);

impl RequestTrace {
    /// The context of a request's fields: the caller's trace continued with a span of this
    /// service's, or a new trace when its `traceparent` is absent or invalid; and the
    /// caller's span id. Every `tracestate` field is joined with commas, as one list.
    pub fn accept_or_start(headers: &header::HeaderMap) -> runtime::Incoming {
        let traceparent = headers.get(TRACEPARENT).map(HeaderValue::as_bytes);
        let mut states = headers.get_all(TRACESTATE);
        let tracestate: Option<std::borrow::Cow<'_, [u8]>> = match (states.next(), states.next()) {
            (None, _) => None,
            (Some(one), None) => Some(one.as_bytes().into()),
            (Some(first), Some(second)) => {
                let mut joined = first.as_bytes().to_vec();
                for value in std::iter::once(second).chain(headers.get_all(TRACESTATE).skip(2)) {
                    joined.push(b',');
                    joined.extend_from_slice(value.as_bytes());
                }
                Some(joined.into())
            }
        };
        TraceContext::accept_or_start(traceparent, tracestate.as_deref())
    }
}

impl FromRequest for RequestTrace {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let trace = request.extensions().get::<RequestTrace>().cloned();
        ready(Ok(
            trace.unwrap_or_else(|| RequestTrace(TraceContext::start()))
        ))
    }
}

/// Whether the request takes a gzip-encoded answer ([`runtime::accepts_gzip`] over its
/// `Accept-Encoding` lines). For answers kept compressed (vendored scripts and pages).
pub fn accepts_gzip(request: &HttpRequest) -> bool {
    runtime::accepts_gzip(
        request
            .headers()
            .get_all(header::ACCEPT_ENCODING)
            .filter_map(|value| value.to_str().ok()),
    )
}

impl FromRequest for RequestId {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let id = request.extensions().get::<RequestId>().cloned();
        ready(Ok(id.unwrap_or_else(RequestId::generate)))
    }
}

/// What the middleware writes to: the service's logger and metrics (kept in `app_data`).
pub struct Observability {
    /// The service's logger (with its `service` field).
    pub logger: Logger,
    /// The service's metrics.
    pub metrics: Metrics,
    /// Where its server spans go (nowhere unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
    pub tracer: Tracer,
}

/// The middleware function; [`crate::service`] wraps every service's app in it.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let observability = request
        .app_data::<web::Data<Observability>>()
        .cloned()
        .expect("server::HttpService installs Observability");
    let request_id = RequestId::accept_or_generate(request.headers().get(&REQUEST_ID_HEADER));
    let trace = RequestTrace::accept_or_start(request.headers());
    request.extensions_mut().insert(request_id.clone());
    request
        .extensions_mut()
        .insert(RequestTrace(trace.context.clone()));
    let mut response = match next.call(request).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(error) => {
            // Only a failing middleware gets here (handlers' errors arrive as responses); actix
            // renders `error` itself, which for our errors is the JSON body.
            let status = error.as_response_error().status_code().as_u16();
            slog::error!(observability.logger, "request";
                "status" => status, "request_id" => request_id.as_str(),
                "error" => error.to_string(), trace.context.clone());
            return Err(error);
        }
    };
    let status = response.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(response.headers()) {
        response = response.map_body(|head, _body| {
            head.headers.remove(header::CONTENT_LENGTH);
            head.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let body =
                serde_json::to_vec(&body_for_status(status)).expect("error bodies serialize");
            BoxBody::new(body)
        });
    }
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }

    let elapsed = started.elapsed();
    let request = response.request();
    let route = request.match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    let method = request.method().as_str();
    observability
        .metrics
        .observe_request(method, route, status.as_str(), elapsed);
    let ip = crate::network::client_address(request).to_string();
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let cause = (status.is_server_error())
        .then(|| response.response().error().map(|error| error.to_string()))
        .flatten();
    AccessLine {
        method,
        path: request.path(),
        route,
        status: status.as_u16(),
        elapsed,
        ip: &ip,
        user_agent,
        request_id: request_id.as_str(),
        trace: Some(&trace.context),
        upstream: None,
        bytes: None,
        error: cause.as_deref(),
    }
    .write(&observability.logger);
    if observability.tracer.records(&trace.context) {
        let end = SystemTime::now();
        observability.tracer.record(SpanRecord {
            name: format!("{method} {route}"),
            kind: SpanKind::Server,
            context: &trace.context,
            parent: trace.parent,
            start: end.checked_sub(elapsed).unwrap_or(end),
            end,
            attributes: vec![
                (
                    "http.request.method",
                    AttributeValue::Text(method.to_owned()),
                ),
                ("http.route", AttributeValue::Text(route.to_owned())),
                ("url.path", AttributeValue::Text(request.path().to_owned())),
                (
                    "http.response.status_code",
                    AttributeValue::Int(i64::from(status.as_u16())),
                ),
            ],
            error: status.is_server_error(),
        });
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_visible_ascii_up_to_128() {
        assert!(is_acceptable_id(b"abc-123"));
        assert!(is_acceptable_id(&[b'a'; 128]));
        assert!(!is_acceptable_id(&[b'a'; 129]));
        assert!(!is_acceptable_id(b""));
        assert!(!is_acceptable_id(b"has space"));
        assert!(!is_acceptable_id("caf\u{e9}".as_bytes()));
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        let with = |value: &'static str| {
            actix_web::test::TestRequest::default()
                .insert_header((header::ACCEPT_ENCODING, value))
                .to_http_request()
        };
        assert!(accepts_gzip(&with("gzip, deflate, br")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(accepts_gzip(&with("x-gzip")));
        assert!(!accepts_gzip(&with("gzip;q=0, br")));
        assert!(!accepts_gzip(&with("gzip; q = 0")));
        assert!(!accepts_gzip(&with("identity")));
        assert!(!accepts_gzip(
            &actix_web::test::TestRequest::default().to_http_request()
        ));
        // Every header line counts.
        let two_lines = actix_web::test::TestRequest::default()
            .append_header((header::ACCEPT_ENCODING, "br"))
            .append_header((header::ACCEPT_ENCODING, "gzip"))
            .to_http_request();
        assert!(accepts_gzip(&two_lines));
    }

    #[test]
    fn the_callers_trace_goes_on_with_every_tracestate_field_joined() {
        let request = actix_web::test::TestRequest::default()
            .insert_header((
                TRACEPARENT,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ))
            .append_header((TRACESTATE, "a=1"))
            .append_header((TRACESTATE, "b=2"))
            .append_header((TRACESTATE, "c=3"))
            .to_http_request();
        let incoming = RequestTrace::accept_or_start(request.headers());
        assert_eq!(
            incoming.context.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            incoming.parent.map(|span| span.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(incoming.context.tracestate.as_deref(), Some("a=1,b=2,c=3"));

        let invalid = actix_web::test::TestRequest::default()
            .insert_header((
                TRACEPARENT,
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            ))
            .insert_header((TRACESTATE, "a=1"))
            .to_http_request();
        let started = RequestTrace::accept_or_start(invalid.headers());
        assert_eq!(started.parent, None);
        assert_eq!(started.context.tracestate, None);
    }

    #[test]
    fn a_rejected_id_is_replaced_by_a_uuid() {
        let id = RequestId::accept_or_generate(Some(&HeaderValue::from_static("with space")));
        assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
        let kept = RequestId::accept_or_generate(Some(&HeaderValue::from_static("trace-1")));
        assert_eq!(kept.as_str(), "trace-1");
    }
}
