//! The proxy rules, once for both paths: pure functions over a parsed head, no I/O. Hyper's
//! path ([`crate::proxy`]) and the direct path ([`crate::direct`]) each parse a head their own
//! way and write what these functions decide:
//!
//! - the upstream request head from the client's head and the route ([`upstream_target`],
//!   [`upstream_fields`]): the end-to-end fields pass as they came, and the fields the gateway
//!   vouches for (`Host`, `Content-Length`, `X-Forwarded-*`, `X-Request-Id`, `traceparent`,
//!   `tracestate`) are written by the gateway alone, once each;
//! - the request id ([`request_id`]), the trace context ([`trace_context`]), the head's size
//!   ([`head_size`]) and field limit ([`MAX_REQUEST_FIELDS`]);
//! - the retry rule ([`retries_stale`], [`resendable`]), the interim responses nobody asked for
//!   ([`is_unasked_interim`]), the statuses that carry no body ([`carries_no_body`]);
//! - the gateway's own error answers ([`ErrorAnswer`]) and the upstream failures they report
//!   ([`UpstreamFailure`]).

use std::{borrow::Cow, io::Write, net::IpAddr, time::Duration};

use http::{
    HeaderMap, HeaderName, HeaderValue, Method, StatusCode,
    header::{CONNECTION, UPGRADE},
};
use runtime::{Incoming, TRACEPARENT, TRACESTATE, TraceContext, error_json, is_acceptable_id};

use crate::{
    headers::{Field, is_end_to_end, tokens},
    identity::Refusal,
    routing::Route,
};

/// Most header fields actix-web (every service) reads from a request head.
pub const SERVICE_MAX_FIELDS: usize = 96;

/// Most fields the gateway adds to a request: `Host`, `X-Forwarded-For`, `-Proto`, `-Host`,
/// `X-Request-Id`, `traceparent`, `tracestate`, and hyper's `Transfer-Encoding` for a streamed
/// body.
pub const ADDED_FIELDS: usize = 8;

/// Most header fields a request may carry through the gateway; past it: 431 on both paths, so
/// every request it lets through fits what the services take.
pub const MAX_REQUEST_FIELDS: usize = SERVICE_MAX_FIELDS - ADDED_FIELDS;

/// The request fields the gateway writes itself (any the client sent are dropped): the host it
/// sends to, the body's one length, and the forwarding fields it vouches for.
const VOUCHED: [&str; 8] = [
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    TRACEPARENT,
    TRACESTATE,
];

/// What of a client's request head the upstream head is made from.
pub struct ClientHead<'h, I> {
    /// Its header fields, in order (every value of a repeated field).
    pub fields: I,
    /// The host it is for ([`crate::host::request_host`]: an absolute-form target's
    /// authority, else its one `Host`).
    pub host: &'h [u8],
    /// Its body's length, when one `Content-Length` frames it.
    pub content_length: Option<u64>,
    /// It asks to switch protocols: `Upgrade` and `Connection: upgrade` go on.
    pub upgrade: bool,
}

/// One field of the upstream head.
pub enum Upstream<'h, F> {
    /// A field of the client's, passed on as it came.
    Client(F),
    /// A field the gateway writes: its lower-case name and its value.
    Gateway(&'static str, &'h [u8]),
}

/// The upstream request target: the client's path rewritten by the route, its query kept.
/// Borrowed (the client's target as it is) when the route does not rewrite.
pub fn upstream_target<'t>(route: &Route, target: &'t str) -> Cow<'t, str> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    match route.upstream_path(path) {
        Cow::Borrowed(_) => Cow::Borrowed(target),
        Cow::Owned(mut rewritten) => {
            if let Some(query) = query {
                rewritten.push('?');
                rewritten.push_str(query);
            }
            Cow::Owned(rewritten)
        }
    }
}

/// The upstream head's fields, given to `emit` in order: the client's end-to-end fields (RFC
/// 9110 §7.6.1: no hop-by-hop field, none its `Connection` names, none the gateway vouches
/// for), then the gateway's own: one `Content-Length`, `Connection: upgrade` for an upgrade,
/// the route's `Host` (else the client's host), `X-Forwarded-For` (the client's address alone,
/// whatever the client sent), `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Request-Id`, and
/// the trace context with the gateway's span as parent: `traceparent`, and `tracestate` when
/// the client's trace goes on with one ([`trace_context`]).
pub fn upstream_fields<'h, F, I>(
    head: &ClientHead<'h, I>,
    route: &'h Route,
    client: IpAddr,
    request_id: &'h [u8],
    trace: &TraceContext,
    mut emit: impl FnMut(Upstream<'_, F>),
) where
    F: Field<'h>,
    I: IntoIterator<Item = F> + Clone,
{
    let connection = connection_values(head.fields.clone());
    let mut upgrade_kept = false;
    for field in head.fields.clone() {
        let name = field.name();
        if head.upgrade && name.eq_ignore_ascii_case("upgrade") {
            // The next hop needs the protocol asked for (the first `Upgrade`, once).
            if !std::mem::replace(&mut upgrade_kept, true) {
                emit(Upstream::Client(field));
            }
            continue;
        }
        if is_end_to_end(name, field.value(), &connection)
            && !VOUCHED.iter().any(|own| name.eq_ignore_ascii_case(own))
        {
            emit(Upstream::Client(field));
        }
    }
    if let Some(length) = head.content_length {
        let mut digits = [0u8; 20];
        emit(Upstream::Gateway(
            "content-length",
            formatted(&mut digits, length),
        ));
    }
    if head.upgrade {
        emit(Upstream::Gateway("connection", b"upgrade"));
    }
    let host = route.host.as_ref().map_or(head.host, HeaderValue::as_bytes);
    emit(Upstream::Gateway("host", host));
    let mut address = [0u8; 48];
    emit(Upstream::Gateway(
        "x-forwarded-for",
        formatted(&mut address, client),
    ));
    emit(Upstream::Gateway("x-forwarded-proto", b"http"));
    emit(Upstream::Gateway("x-forwarded-host", head.host));
    emit(Upstream::Gateway("x-request-id", request_id));
    emit(Upstream::Gateway(
        TRACEPARENT,
        trace.traceparent().as_bytes(),
    ));
    if let Some(state) = trace.tracestate.as_deref() {
        emit(Upstream::Gateway(TRACESTATE, state.as_bytes()));
    }
}

/// The request's trace context (docs/contracts.md, "Trace context"): the client's trace
/// continued with the gateway's own span when its one `traceparent` is valid (every
/// `tracestate` value joined with commas goes on with it), else a new trace. Two
/// `traceparent` fields are no valid one.
pub fn trace_context<'h, F: Field<'h>>(fields: impl IntoIterator<Item = F>) -> Incoming {
    let mut traceparent: Option<&[u8]> = None;
    let mut repeated = false;
    let mut tracestate: Option<Cow<'h, [u8]>> = None;
    for field in fields {
        let name = field.name();
        if name.eq_ignore_ascii_case(TRACEPARENT) {
            repeated |= traceparent.replace(field.value()).is_some();
        } else if name.eq_ignore_ascii_case(TRACESTATE) {
            tracestate = Some(match tracestate {
                None => Cow::Borrowed(field.value()),
                Some(earlier) => {
                    let mut joined = earlier.into_owned();
                    joined.push(b',');
                    joined.extend_from_slice(field.value());
                    Cow::Owned(joined)
                }
            });
        }
    }
    TraceContext::accept_or_start(traceparent.filter(|_| !repeated), tracestate.as_deref())
}

/// A message whose `Content-Length` fields cannot frame its body (RFC 9112 §6.3): a value
/// other than digits, or values that disagree. Both paths answer such a request 400.
#[derive(Debug, PartialEq, Eq)]
pub struct UnframedBody;

impl UnframedBody {
    /// The 400 answer's message.
    pub const MESSAGE: &'static str =
        "the request's Content-Length is not one number (RFC 9112 §6.3)";
}

/// A message body's length by its fields (a client's request, whose upstream head states it;
/// an upstream's response): none beside a `Transfer-Encoding` (the body goes by its codings,
/// RFC 9112 §6.3), else the one number every `Content-Length` gives (each value digits only,
/// all agreeing), none without one.
pub fn body_length<'h, F: Field<'h>>(
    fields: impl IntoIterator<Item = F>,
) -> Result<Option<u64>, UnframedBody> {
    let mut length = None;
    let mut chunked = false;
    for field in fields {
        let name = field.name();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let value = field.value();
            let number = std::str::from_utf8(value)
                .ok()
                .filter(|text| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or(UnframedBody)?;
            if length
                .replace(number)
                .is_some_and(|earlier| earlier != number)
            {
                return Err(UnframedBody);
            }
        }
    }
    Ok(if chunked { None } else { length })
}

/// The values of every `Connection` field among `fields`.
pub fn connection_values<'h, F: Field<'h>>(fields: impl IntoIterator<Item = F>) -> Vec<&'h [u8]> {
    fields
        .into_iter()
        .filter(|field| field.name().eq_ignore_ascii_case("connection"))
        .map(|field| field.value())
        .collect()
}

/// Whether the `Connection` values name `close`.
pub fn asks_to_close(connection: &[&[u8]]) -> bool {
    connection
        .iter()
        .any(|value| tokens(value).any(|token| token.eq_ignore_ascii_case(b"close")))
}

/// Whether an upstream response's field reaches the client: end to end, and not its
/// `X-Request-Id` (the gateway writes the request's own). Its framing fields are the caller's.
pub fn passes_response_field(name: &str, value: &[u8], connection: &[&[u8]]) -> bool {
    is_end_to_end(name, value, connection) && !name.eq_ignore_ascii_case("x-request-id")
}

/// Removes from an upstream response's fields (hyper's path holds them in a map) those the
/// client does not get ([`passes_response_field`]): the hop-by-hop ones (the fixed ones, every
/// `Proxy-*`, `TE` other than `trailers`, each named in `Connection`) and `X-Request-Id`. One
/// pass over the fields finds them (usually few), then only those are removed. For a switch of
/// protocols, `Upgrade` and `Connection: upgrade` stay, as the next hop needs them.
pub fn strip_response_fields(headers: &mut HeaderMap, upgrade: bool) {
    let upgrade_protocol = if upgrade {
        headers.get(UPGRADE).cloned()
    } else {
        None
    };
    let connection: Vec<&[u8]> = headers
        .get_all(CONNECTION)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let mut hop_by_hop: Vec<HeaderName> = Vec::new();
    for (name, value) in headers.iter() {
        let hop = !passes_response_field(name.as_str(), value.as_bytes(), &connection);
        if hop && !hop_by_hop.contains(name) {
            hop_by_hop.push(name.clone());
        }
    }
    drop(connection);
    for name in &hop_by_hop {
        headers.remove(name);
    }
    if let Some(protocol) = upgrade_protocol {
        headers.insert(UPGRADE, protocol);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// `value`'s text in `buffer` (which is large enough for any number or address).
fn formatted(buffer: &mut [u8], value: impl std::fmt::Display) -> &[u8] {
    let capacity = buffer.len();
    let mut cursor = &mut buffer[..];
    write!(cursor, "{value}").expect("the buffer holds the value");
    let written = capacity - cursor.len();
    &buffer[..written]
}

/// The request's id (docs/contracts.md): the client's `X-Request-Id` when it is acceptable,
/// else a new UUID.
pub fn request_id(client: Option<&[u8]>) -> HeaderValue {
    client
        .filter(|value| is_acceptable_id(value))
        .and_then(|value| HeaderValue::from_bytes(value).ok())
        .unwrap_or_else(new_request_id)
}

/// Every response's `X-Request-Id` field, its lower-case name and its value (docs/contracts.md):
/// the request's id, on the gateway's own answers and the upstream's alike (the upstream's own
/// is dropped, [`passes_response_field`]). The value comes back as it was given, so each path
/// keeps its own form of it.
pub fn response_request_id<V>(request_id: V) -> (&'static str, V) {
    ("x-request-id", request_id)
}

/// A new request id: a UUID.
fn new_request_id() -> HeaderValue {
    HeaderValue::from_bytes(
        uuid::Uuid::new_v4()
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .as_bytes(),
    )
    .expect("a UUID is a valid header value")
}

/// A request head's size as sent (request line and header lines), from its method's and
/// target's lengths and its fields' name and value lengths: past `max_header_bytes`, 431.
pub fn head_size(
    method: usize,
    target: usize,
    fields: impl Iterator<Item = (usize, usize)>,
) -> usize {
    method + target + 12 + fields.map(|(name, value)| name + value + 4).sum::<usize>()
}

/// Whether a request with this method may be sent again (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether a request whose upstream connection closed before any answer is sent once more, on
/// a new connection: once at most, for an idempotent method, when the request is still whole
/// to send (`resendable`, by [`resendable`]).
pub fn retries_stale(method: &Method, resendable: bool, retried: bool) -> bool {
    is_idempotent(method) && resendable && !retried
}

/// Whether a request whose upstream connection closed before any answer is still whole to
/// send again: the connection was a pooled one (`reused`: an idle keep-alive connection the
/// upstream may close as the request leaves; a new one that closes is the upstream's failure,
/// not that race), and none of its body is gone past a second sending (`body_kept`: it has
/// none, or the body was never read).
pub fn resendable(reused: bool, body_kept: bool) -> bool {
    reused && body_kept
}

/// Whether an interim (1xx) response status was not asked for: all but a 100 to a request
/// with `Expect: 100-continue` (an upgrade's 101 is the response itself, not an interim one).
/// The gateway answers 502 to it: the upstream is not answering the request that was sent.
pub fn is_unasked_interim(status: u16, expects_continue: bool) -> bool {
    (100..200).contains(&status) && !(status == 100 && expects_continue)
}

/// Whether a response with this status carries no body and no `Content-Length` (RFC 9110
/// §6.4.1: 204 and 304; a HEAD's answer carries none either, but tells its length).
pub fn carries_no_body(status: u16) -> bool {
    status == 204 || status == 304
}

/// An upstream exchange that failed before its response reached the client.
pub enum UpstreamFailure<'a> {
    /// No instance of the route could be connected to; the last connect error.
    NoneAnswered {
        /// The route's prefix.
        route: &'a str,
        /// Why the last instance failed.
        last: &'a str,
    },
    /// No response head within the route's timeout.
    Timeout {
        /// The instance's label.
        instance: &'a str,
        /// The route's response timeout.
        after: Duration,
    },
    /// An interim response the request did not ask for ([`is_unasked_interim`]).
    UnaskedInterim {
        /// The instance's label.
        instance: &'a str,
        /// Its status.
        status: u16,
    },
    /// The upstream broke the exchange: a malformed head or body, a closed connection.
    Broken {
        /// The instance's label.
        instance: &'a str,
        /// What went wrong.
        what: String,
    },
}

impl UpstreamFailure<'_> {
    /// The status answered: 504 for a timeout, else 502.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// The metric's `kind` of it: `connect`, `timeout` or `protocol`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoneAnswered { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::UnaskedInterim { .. } | Self::Broken { .. } => "protocol",
        }
    }

    /// The error answer's message.
    pub fn message(&self) -> String {
        match self {
            Self::NoneAnswered { route, last } => {
                format!("no upstream of {route} answered ({last})")
            }
            Self::Timeout { instance, after } => {
                format!("{instance} did not answer within {after:?}")
            }
            Self::UnaskedInterim { instance, status } => {
                format!("{instance} sent an interim response {status} that was not asked for")
            }
            Self::Broken { instance, what } => format!("{instance} {what}"),
        }
    }
}

/// A JSON error answer of docs/contracts.md, the gateway's own (both paths answer with it).
pub struct ErrorAnswer {
    /// Its status.
    pub status: StatusCode,
    /// Its JSON body.
    pub body: Vec<u8>,
    /// Its `WWW-Authenticate` challenge, for a refused token.
    pub challenge: Option<&'static str>,
}

impl ErrorAnswer {
    /// The answer `status` with `message`.
    pub fn new(status: StatusCode, message: &str) -> Self {
        Self {
            status,
            body: error_json(status.as_u16(), message),
            challenge: None,
        }
    }

    /// The answer to a request [`crate::identity::authorize`] refused: 401 with its
    /// `WWW-Authenticate`, or 503.
    pub fn refusal(refusal: &Refusal) -> Self {
        Self {
            challenge: refusal.challenge(),
            ..Self::new(refusal.status(), &refusal.message())
        }
    }

    /// Its head's fields besides the framing, `Date` and `Connection`: the content type, the
    /// request id, the challenge.
    pub fn fields<'a>(
        &'a self,
        request_id: &'a [u8],
    ) -> impl Iterator<Item = (&'static str, &'a [u8])> {
        [
            Some(("content-type", &b"application/json"[..])),
            Some(response_request_id(request_id)),
            self.challenge
                .map(|challenge| ("www-authenticate", challenge.as_bytes())),
        ]
        .into_iter()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_writes_the_fields_it_vouches_for_once() {
        let raw = b"GET /api/x?q=1 HTTP/1.1\r\nHost: h.example\r\nX-Forwarded-For: 6.6.6.6\r\n\
            x-forwarded-host: evil\r\nX-Request-Id: spoof\r\nHOST: second\r\nContent-Length: 3\r\n\
            Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\nAccept: a\r\naccept: b\r\n\r\n";
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Request::new(&mut fields);
        parsed.parse(raw).expect("a head");
        let config = crate::config::GatewayConfig::builtin();
        let table = crate::routing::RouteTable::new(&config).expect("routes");
        let route = table.find("/api/users").expect("a route");
        let head = ClientHead {
            fields: parsed.headers.iter(),
            host: b"h.example",
            content_length: Some(3),
            upgrade: false,
        };
        let mut written = Vec::new();
        let trace = trace_context(parsed.headers.iter()).context;
        upstream_fields(
            &head,
            route,
            [192, 0, 2, 1].into(),
            b"id",
            &trace,
            |field| {
                written.push(match field {
                    Upstream::Client(field) => {
                        format!("{}: {}", field.name, String::from_utf8_lossy(field.value))
                    }
                    Upstream::Gateway(name, value) => {
                        format!("{name}: {}", String::from_utf8_lossy(value))
                    }
                });
            },
        );
        assert_eq!(
            written,
            [
                "TE: trailers",
                "Accept: a",
                "accept: b",
                "content-length: 3",
                "host: h.example",
                "x-forwarded-for: 192.0.2.1",
                "x-forwarded-proto: http",
                "x-forwarded-host: h.example",
                "x-request-id: id",
                format!("traceparent: {}", trace.traceparent()).as_str(),
            ]
        );
    }

    fn length_of(raw: &[(&'static str, &'static str)]) -> Result<Option<u64>, UnframedBody> {
        let fields: Vec<httparse::Header<'static>> = raw
            .iter()
            .map(|(name, value)| httparse::Header {
                name,
                value: value.as_bytes(),
            })
            .collect();
        body_length(fields.iter())
    }

    #[test]
    fn the_body_length_is_one_number_of_digits() {
        assert_eq!(length_of(&[]), Ok(None));
        assert_eq!(length_of(&[("Content-Length", "3")]), Ok(Some(3)));
        assert_eq!(
            length_of(&[("content-length", "3"), ("CONTENT-LENGTH", "3")]),
            Ok(Some(3))
        );
        for hostile in [
            "+3",
            "-3",
            "3 ",
            "",
            "0x3",
            "3, 3",
            "99999999999999999999999",
        ] {
            assert_eq!(
                length_of(&[("content-length", hostile)]),
                Err(UnframedBody),
                "{hostile:?}"
            );
        }
        assert_eq!(
            length_of(&[("content-length", "3"), ("content-length", "4")]),
            Err(UnframedBody)
        );
        assert_eq!(
            length_of(&[("Transfer-Encoding", "chunked"), ("content-length", "3")]),
            Ok(None),
            "chunks frame the body"
        );
    }

    #[test]
    fn a_rewritten_target_keeps_its_query() {
        let mut config = crate::config::GatewayConfig::builtin();
        config.routes.truncate(1);
        config.routes[0].prefix = "/api".to_owned();
        config.routes[0].rewrite = Some("/v2".to_owned());
        let table = crate::routing::RouteTable::new(&config).expect("routes");
        let route = table.find("/api/x").expect("a route");
        assert_eq!(upstream_target(route, "/api/x?a=b"), "/v2/x?a=b");
        assert_eq!(upstream_target(route, "/api"), "/v2");
    }

    #[test]
    fn the_retry_and_interim_rules() {
        assert!(retries_stale(&Method::GET, true, false));
        assert!(!retries_stale(&Method::GET, true, true), "once at most");
        assert!(!retries_stale(&Method::POST, true, false), "never a POST");
        assert!(
            !retries_stale(&Method::PUT, false, false),
            "its body is gone"
        );
        assert!(is_unasked_interim(103, true));
        assert!(is_unasked_interim(100, false));
        assert!(!is_unasked_interim(100, true));
        assert!(!is_unasked_interim(200, false));
        assert!(carries_no_body(204) && carries_no_body(304) && !carries_no_body(200));
    }

    #[test]
    fn only_a_whole_request_on_a_pooled_connection_is_resendable() {
        assert!(
            resendable(true, true),
            "a pooled connection that closed idle"
        );
        assert!(
            !resendable(false, true),
            "a new connection that closes is a failure"
        );
        assert!(!resendable(true, false), "a body relayed is gone");
        assert!(!resendable(false, false));
        assert!(retries_stale(&Method::GET, resendable(true, true), false));
        assert!(!retries_stale(&Method::GET, resendable(false, true), false));
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_dropped() {
        let source = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "a"),
            ("accept", "b"),
            ("x-custom", "kept"),
            ("x-request-id", "the upstream's"),
        ]);
        let mut headers = source.clone();
        strip_response_fields(&mut headers, false);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "x-custom"]);
        assert_eq!(
            headers.get_all("accept").iter().count(),
            2,
            "repeated headers keep every value"
        );
    }

    #[test]
    fn te_trailers_passes_and_upgrades_keep_their_headers() {
        let mut headers = map(&[("te", "trailers")]);
        strip_response_fields(&mut headers, false);
        assert_eq!(headers["te"], "trailers");
        let source = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        let mut headers = source.clone();
        strip_response_fields(&mut headers, true);
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "upgrade");
        assert_eq!(headers["sec-websocket-key"], "k");
    }
}
