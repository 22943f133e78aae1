//! The client's side of a direct exchange: its request head, checked and turned into the
//! upstream's head (the fields the gateway vouches for written by the gateway alone).

use std::{io::Write, net::SocketAddr, time::Instant};

use http::{HeaderValue, Method, StatusCode};
use runtime::access::is_acceptable_id;

use super::{
    MAX_DIRECT_BODY, Request, add_content_length, connection_values, named_in, push_field,
};
use runtime::network::client_address_among as client_address;

use crate::{
    access::AccessRecord,
    context::Shared,
    headers::{MAX_REQUEST_FIELDS, is_hop_by_hop_field, tokens},
    proxy::is_idempotent,
};

/// `Ok(None)`: the head is not complete yet; `Err(())`: hyper takes it. The head stays in
/// `inbound` until `Connection::admit` lets the request through.
pub(super) fn parse_request(
    inbound: &[u8],
    peer: SocketAddr,
    shared: &Shared,
    out: &mut Vec<u8>,
) -> Result<Option<Request>, ()> {
    // More fields than the services take: hyper's path answers the 431.
    let mut fields = [httparse::EMPTY_HEADER; MAX_REQUEST_FIELDS];
    let mut parsed = httparse::Request::new(&mut fields);
    let head_length = match parsed.parse(inbound) {
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
    let head_size = crate::proxy::head_size_of(
        method.len(),
        target.len(),
        parsed
            .headers
            .iter()
            .map(|field| (field.name.len(), field.value.len())),
    );
    if head_size > shared.server.max_header_bytes {
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
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    if crate::local::is_local(&method, path) {
        return Err(());
    }
    let route = shared.routes.find(path).ok_or(())?.clone();
    // A sticky route's requests pick their instance by their session: hyper's path does that.
    if route.sessions.is_some() {
        return Err(());
    }

    let mut host = None;
    let mut content_length: Option<u64> = None;
    let mut client_close = false;
    let mut request_id = None;
    let mut user_agent = None;
    let mut authorization = None;
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    for field in parsed.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
        {
            return Err(());
        } else if name.eq_ignore_ascii_case("host") {
            if host.replace(field.value).is_some() {
                return Err(());
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            add_content_length(&mut content_length, field.value)?;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(field.value) {
                client_close |= token.eq_ignore_ascii_case(b"close");
                // A message's framing and target are never hop-by-hop: naming them in
                // `Connection` is an attempt to desynchronise the upstream.
                if token.eq_ignore_ascii_case(b"content-length")
                    || token.eq_ignore_ascii_case(b"host")
                {
                    return Err(());
                }
            }
        } else if name.eq_ignore_ascii_case("x-request-id") {
            request_id.get_or_insert(field.value);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for.push(field.value);
        } else if name.eq_ignore_ascii_case("user-agent") && user_agent.is_none() {
            user_agent = HeaderValue::from_bytes(field.value).ok();
        } else if name.eq_ignore_ascii_case("authorization") {
            // Kept as a place in `inbound` (httparse's values are slices of it), so the
            // head can be released to `admit`; a repeated field goes to hyper's path.
            let start = (field.value.as_ptr() as usize)
                .checked_sub(inbound.as_ptr() as usize)
                .ok_or(())?;
            let place = start..start + field.value.len();
            if place.end > inbound.len() || authorization.replace(place).is_some() {
                return Err(());
            }
        }
    }
    // No `Host`, or an empty one: hyper's path answers the 400.
    let host = host.filter(|host| !host.is_empty()).ok_or(())?;
    let client = client_address(peer.ip(), forwarded_for, &shared.server.trusted_proxies);
    let body_length = content_length.unwrap_or(0);
    // Large uploads go to hyper: the direct path gives a body no longer than a head takes
    // (`client_header_timeout_ms`) to arrive whole.
    if body_length > MAX_DIRECT_BODY
        || route
            .max_body_bytes
            .is_some_and(|limit| body_length > limit)
    {
        return Err(());
    }
    let request_id = match request_id {
        Some(value) if is_acceptable_id(value) => HeaderValue::from_bytes(value).map_err(|_| ())?,
        _ => crate::proxy::new_request_id(),
    };
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    match route.upstream_path(path) {
        std::borrow::Cow::Borrowed(_) => out.extend_from_slice(target.as_bytes()),
        std::borrow::Cow::Owned(rewritten) => {
            out.extend_from_slice(rewritten.as_bytes());
            if let Some(query) = query {
                out.push(b'?');
                out.extend_from_slice(query.as_bytes());
            }
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let connection_values = connection_values(parsed.headers);
    for field in parsed.headers.iter() {
        let name = field.name;
        // The fields the gateway writes itself: one `Content-Length` however many the
        // client repeated, and the forwarding fields it vouches for.
        if is_hop_by_hop_field(name, field.value)
            || named_in(&connection_values, name)
            || name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("x-forwarded-for")
            || name.eq_ignore_ascii_case("x-forwarded-proto")
            || name.eq_ignore_ascii_case("x-forwarded-host")
            || name.eq_ignore_ascii_case("x-request-id")
        {
            continue;
        }
        push_field(out, name.as_bytes(), field.value);
    }
    if let Some(length) = content_length {
        let _ = write!(out, "content-length: {length}\r\n");
    }
    let forwarded_host = host;
    let host = route.host.as_ref().map_or(host, HeaderValue::as_bytes);
    push_field(out, b"host", host);
    let _ = write!(out, "x-forwarded-for: {client}\r\n");
    out.extend_from_slice(b"x-forwarded-proto: http\r\n");
    push_field(out, b"x-forwarded-host", forwarded_host);
    push_field(out, b"x-request-id", request_id.as_bytes());
    out.extend_from_slice(b"\r\n");

    let access = AccessRecord {
        telemetry: shared.telemetry.clone(),
        started: Instant::now(),
        method: method.clone(),
        path: path.to_owned(),
        route: route.prefix.clone(),
        upstream: None,
        status: StatusCode::OK,
        ip: client,
        user_agent,
        request_id,
        bytes: 0,
        error: None,
        user_id: None,
    };
    // The body bytes that came with the head go out with it.
    let with_head = (inbound.len() - head_length).min(body_length as usize);
    out.extend_from_slice(&inbound[head_length..head_length + with_head]);
    Ok(Some(Request {
        access,
        client,
        route,
        body_left: body_length - with_head as u64,
        has_body: body_length > 0,
        head_method: method == Method::HEAD,
        client_close,
        idempotent: is_idempotent(&method),
        authorization,
        consumed: head_length + with_head,
    }))
}
