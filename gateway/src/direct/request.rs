//! The client's side of a direct exchange, in three steps: [`parse`] reads the head with
//! `httparse` and keeps only plain origin-form HTTP/1.1; [`check_fields`] reads the fields that
//! frame and identify the request, refusing what hyper's path must answer; and
//! [`write_upstream_head`] writes the upstream's head as [`crate::forward`] decides it.
//! [`parse_request`] runs them for one request and its route.

use std::{net::SocketAddr, ops::Range, time::Instant};

use http::{HeaderValue, Method, StatusCode};
use runtime::client_address_among as client_address;

use super::{MAX_DIRECT_BODY, Request, push_field};
use crate::{
    access::AccessRecord,
    context::Shared,
    cors::Decision,
    forward::{
        ClientHead, MAX_REQUEST_FIELDS, UnframedBody, Upstream, body_length, head_size, request_id,
        trace_context, upstream_fields, upstream_target,
    },
    headers::tokens,
    host::request_host,
    routing::Route,
};

/// `Ok(None)`: the head is not complete yet; `Err(())`: hyper takes it. The head stays in
/// `inbound` until `Connection::admit` lets the request through; the upstream head (and the
/// body bytes that came with it) is written into `out`.
pub(super) fn parse_request(
    inbound: &[u8],
    peer: SocketAddr,
    shared: &Shared,
    out: &mut Vec<u8>,
) -> Result<Option<Request>, ()> {
    // More fields than the services take: hyper's path answers the 431.
    let mut fields = [httparse::EMPTY_HEADER; MAX_REQUEST_FIELDS];
    let Some(head) = parse(inbound, &mut fields, shared.server.max_header_bytes)? else {
        return Ok(None);
    };
    if crate::local::is_local(&head.method, head.path) {
        return Err(());
    }
    // A CORS preflight is answered by hyper's path, as the gateway's other own answers.
    let Decision::Actual(cors) = shared.cors.decide(&head.method, head.fields.iter()) else {
        return Err(());
    };
    let route = shared.routes.find(head.path).ok_or(())?.clone();
    // A sticky route's requests pick their instance by their session: hyper's path does that.
    if route.sessions.is_some() {
        return Err(());
    }
    let checked = check_fields(head.fields, inbound)?;
    let client = client_address(
        peer.ip(),
        checked.forwarded_for.iter().copied(),
        &shared.server.trusted_proxies,
    );
    let body_length = checked.content_length.unwrap_or(0);
    // Large uploads go to hyper: the direct path gives a body no longer than a head takes
    // (`client_header_timeout_ms`) to arrive whole.
    if body_length > MAX_DIRECT_BODY
        || route
            .max_body_bytes
            .is_some_and(|limit| body_length > limit)
    {
        return Err(());
    }
    let request_id = request_id(checked.request_id);
    let trace = trace_context(head.fields.iter());
    write_upstream_head(
        &head,
        &checked,
        &route,
        client,
        &request_id,
        &trace.context,
        out,
    );

    let access = AccessRecord {
        telemetry: shared.telemetry.clone(),
        started: Instant::now(),
        method: head.method.clone(),
        path: head.path.to_owned(),
        route: route.prefix.clone(),
        upstream: None,
        status: StatusCode::OK,
        ip: client,
        user_agent: checked.user_agent,
        request_id,
        trace: trace.context,
        trace_parent: trace.parent,
        bytes: 0,
        error: None,
        user_id: None,
    };
    // The body bytes that came with the head go out with it.
    let with_head = (inbound.len() - head.length).min(body_length as usize);
    out.extend_from_slice(&inbound[head.length..head.length + with_head]);
    Ok(Some(Request {
        access,
        client,
        route,
        body_left: body_length - with_head as u64,
        has_body: body_length > 0,
        method: head.method,
        client_close: checked.client_close,
        authorization: checked.authorization,
        consumed: head.length + with_head,
        cors,
    }))
}

/// A request head `httparse` read whole, of a request the direct path may take.
struct Head<'f, 'h> {
    /// Its method (never `CONNECT`).
    method: Method,
    /// Its origin-form target: path and query.
    target: &'h str,
    /// The target's path.
    path: &'h str,
    /// Its header fields.
    fields: &'f [httparse::Header<'h>],
    /// Its length in bytes.
    length: usize,
}

/// Reads a head from the start of `inbound` into `fields`: `Ok(None)` while it is incomplete,
/// `Err(())` when it is not HTTP/1.1 with an origin-form target, or is over `max_bytes`
/// ([`head_size`]) or over `fields`' number.
fn parse<'f, 'h>(
    inbound: &'h [u8],
    fields: &'f mut [httparse::Header<'h>],
    max_bytes: usize,
) -> Result<Option<Head<'f, 'h>>, ()> {
    let mut parsed = httparse::Request::new(fields);
    let length = match parsed.parse(inbound) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    if parsed.version != Some(1) {
        return Err(());
    }
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return Err(());
    };
    let fields: &'f [httparse::Header<'h>] = parsed.headers;
    let size = head_size(
        method.len(),
        target.len(),
        fields
            .iter()
            .map(|field| (field.name.len(), field.value.len())),
    );
    if size > max_bytes {
        return Err(());
    }
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| ())?;
    // Only plain origin-form targets: hyper refuses or normalises the rest.
    if method == Method::CONNECT
        || !target.starts_with('/')
        || !target
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && byte != b'#')
    {
        return Err(());
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Ok(Some(Head {
        method,
        target,
        path,
        fields,
        length,
    }))
}

/// What [`check_fields`] read of a request's fields.
struct Checked<'h> {
    /// Its one non-empty `Host`.
    host: &'h [u8],
    /// Its body's length ([`body_length`]).
    content_length: Option<u64>,
    /// Its `Connection` says `close`.
    client_close: bool,
    /// Its first `X-Request-Id`.
    request_id: Option<&'h [u8]>,
    /// Its first `User-Agent`, when it is a header value.
    user_agent: Option<HeaderValue>,
    /// Where its one `Authorization` value lies in the inbound bytes.
    authorization: Option<Range<usize>>,
    /// Its `X-Forwarded-For` values, in order.
    forwarded_for: Vec<&'h [u8]>,
}

/// The framing check: `Err(())` (hyper takes the request) for a body framed other than by one
/// length (`Transfer-Encoding`), an `Expect` or an `Upgrade`, a `Host` [`request_host`]
/// refuses (none, two, an empty or an invalid one), `Content-Length`s that cannot frame the
/// body ([`body_length`]), a `Connection` naming the framing or the target, or a repeated
/// `Authorization`. `inbound` is the buffer the fields were parsed from.
fn check_fields<'h>(fields: &[httparse::Header<'h>], inbound: &[u8]) -> Result<Checked<'h>, ()> {
    let mut checked = Checked {
        host: b"",
        content_length: None,
        client_close: false,
        request_id: None,
        user_agent: None,
        authorization: None,
        forwarded_for: Vec::new(),
    };
    for field in fields {
        let name = field.name;
        if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
        {
            return Err(());
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(field.value) {
                checked.client_close |= token.eq_ignore_ascii_case(b"close");
                // A message's framing and target are never hop-by-hop: naming them in
                // `Connection` is an attempt to desynchronise the upstream.
                if token.eq_ignore_ascii_case(b"content-length")
                    || token.eq_ignore_ascii_case(b"host")
                {
                    return Err(());
                }
            }
        } else if name.eq_ignore_ascii_case("x-request-id") {
            checked.request_id.get_or_insert(field.value);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            checked.forwarded_for.push(field.value);
        } else if name.eq_ignore_ascii_case("user-agent") && checked.user_agent.is_none() {
            checked.user_agent = HeaderValue::from_bytes(field.value).ok();
        } else if name.eq_ignore_ascii_case("authorization") {
            // Kept as a place in `inbound` (httparse's values are slices of it), so the
            // head can be released to `admit`; a repeated field goes to hyper's path.
            let start = (field.value.as_ptr() as usize)
                .checked_sub(inbound.as_ptr() as usize)
                .ok_or(())?;
            let place = start..start + field.value.len();
            if place.end > inbound.len() || checked.authorization.replace(place).is_some() {
                return Err(());
            }
        }
    }
    // Lengths that cannot frame the body: hyper's path answers the 400.
    checked.content_length = body_length(fields.iter()).map_err(|UnframedBody| ())?;
    // No `Host`, two, an empty or an invalid one ([`request_host`]): hyper's path answers the
    // 400. The target is origin-form: it has no authority.
    let hosts = fields
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case("host"))
        .map(|field| field.value);
    checked.host = request_host(hosts, None).map_err(|_| ())?;
    Ok(checked)
}

/// Writes the upstream request head into `out` (cleared first): the request line with the
/// route's target, then the fields [`upstream_fields`] decides.
fn write_upstream_head(
    head: &Head<'_, '_>,
    checked: &Checked<'_>,
    route: &Route,
    client: std::net::IpAddr,
    request_id: &HeaderValue,
    trace: &runtime::TraceContext,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(upstream_target(route, head.target).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let client_head = ClientHead {
        fields: head.fields.iter(),
        host: checked.host,
        content_length: checked.content_length,
        upgrade: false,
    };
    upstream_fields(
        &client_head,
        route,
        client,
        request_id.as_bytes(),
        trace,
        |field| match field {
            Upstream::Client(field) => push_field(out, field.name.as_bytes(), field.value),
            Upstream::Gateway(name, value) => push_field(out, name.as_bytes(), value),
        },
    );
    out.extend_from_slice(b"\r\n");
}
