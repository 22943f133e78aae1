//! Hyper's path: one request through the gateway: the gateway's own answers (limits, CORS
//! preflights, local endpoints, auth, rate limit, no route), then its upstream head as
//! [`crate::forward`] decides it, sent and relayed by `exchange.rs`.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the request's admission, its upstream head, the gateway's own answers |
//! | `exchange.rs` | the exchange with the route's instances, the response relayed back |

mod exchange;

use std::{
    borrow::Cow,
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    rc::Rc,
    time::Instant,
};

use http::{
    HeaderName, HeaderValue, Request, Response, StatusCode,
    header::{AUTHORIZATION, RETRY_AFTER, USER_AGENT},
};
use hyper::body::Incoming;
use runtime::client_address_among as client_address;

use crate::{
    access::AccessRecord,
    body::GatewayBody,
    context::ThreadContext,
    cors::{self, Cors, Decision, Grant, Preflight},
    forward::{
        ADDED_FIELDS, ClientHead, ErrorAnswer, MAX_REQUEST_FIELDS, UnframedBody, Upstream,
        body_length, head_size, request_id, response_request_id, trace_context, upstream_fields,
        upstream_target,
    },
    framing::{check_target, client_host},
    headers::{REQUEST_ID, X_FORWARDED_FOR, is_upgrade},
    identity::{ClientKey, Refusal, authorize},
    request_body::RequestBody,
    routing::Route,
    sticky::Affinity,
};

/// Answers one request: a CORS preflight with [`answer_preflight`], any other with the
/// gateway's own answer or the upstream's, either carrying its CORS fields ([`cors::apply`]).
pub async fn handle(
    request: Request<Incoming>,
    context: Rc<ThreadContext>,
    peer: SocketAddr,
) -> Result<Response<GatewayBody>, Infallible> {
    let shared = context.shared.clone();
    match shared.cors.decide(request.method(), request.headers()) {
        Decision::Actual(grant) => {
            let Ok(mut response) = answer_request(request, context, peer, None).await;
            cors::apply(&shared.cors, grant, response.headers_mut());
            Ok(response)
        }
        Decision::Preflight(preflight) => {
            answer_request(request, context, peer, Some(preflight)).await
        }
    }
}

/// Answers one request; `preflight`: the answer to a CORS preflight, given once its head has
/// passed the limits.
async fn answer_request(
    mut request: Request<Incoming>,
    context: Rc<ThreadContext>,
    peer: SocketAddr,
    preflight: Option<Preflight>,
) -> Result<Response<GatewayBody>, Infallible> {
    let shared = &context.shared;
    let client = client_address(
        peer.ip(),
        request
            .headers()
            .get_all(X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes),
        &shared.server.trusted_proxies,
    );
    let request_id = request_id(request.headers().get(REQUEST_ID).map(HeaderValue::as_bytes));
    let trace = trace_context(request.headers());
    let mut access = AccessRecord {
        telemetry: shared.telemetry.clone(),
        started: Instant::now(),
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        route: shared.no_route.clone(),
        upstream: None,
        status: StatusCode::OK,
        ip: client,
        user_agent: request.headers().get(USER_AGENT).cloned(),
        request_id: request_id.clone(),
        trace: trace.context,
        trace_parent: trace.parent,
        bytes: 0,
        error: None,
        user_id: None,
    };

    let head_bytes = request_head_size(&request);
    if head_bytes > shared.server.max_header_bytes {
        let message = format!(
            "the request head is {head_bytes} bytes, over {}",
            shared.server.max_header_bytes
        );
        return Ok(error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &message,
            access,
        ));
    }
    if request.headers().len() > MAX_REQUEST_FIELDS {
        let message = format!(
            "the request has {} header fields, over {MAX_REQUEST_FIELDS}",
            request.headers().len()
        );
        return Ok(error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &message,
            access,
        ));
    }
    if let Err((status, message)) = check_target(&request) {
        return Ok(error(status, message, access));
    }
    // One `Host` rule for every request, the gateway's own included: two `Host` fields or an
    // invalid one is a 400, and so is none (RFC 9112 §3.2 for HTTP/1.1; for HTTP/1.0 it is this
    // gateway's rule, so that a request names its host however it comes).
    let host = match client_host(&request) {
        Ok(host) => host,
        Err(refused) => return Ok(error(StatusCode::BAD_REQUEST, refused.message(), access)),
    };
    if let Some(preflight) = preflight {
        return Ok(answer_preflight(preflight, &shared.cors, access));
    }
    if let Some(response) = crate::local::answer(&request, shared, client).await {
        return Ok(finish_local(response, access));
    }
    let Ok(body_length) = body_length(request.headers()) else {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            UnframedBody::MESSAGE,
            access,
        ));
    };
    let route = shared.routes.find(request.uri().path()).cloned();
    if let Some(route) = &route {
        access.route = route.prefix.clone();
    }
    let outcome = authorize(
        &shared.verifier,
        route
            .as_ref()
            .map_or_else(Default::default, |route| route.auth),
        request
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes),
    )
    .await;
    // A refused token draws from its address's bucket, so a flood of bad tokens is limited too.
    let key = ClientKey::of(&outcome, client);
    if let Err(retry_after) = shared.admit(&key) {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, key.limited_message(), access);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after));
        return Ok(response);
    }
    match outcome {
        Ok(principal) => access.user_id = principal.map(|principal| principal.user_id),
        Err(refusal) => return Ok(refused(&refusal, access)),
    }
    let Some(route) = route else {
        let message = format!("no route for {}", request.uri().path());
        return Ok(error(StatusCode::NOT_FOUND, &message, access));
    };
    if let Some(limit) = route.max_body_bytes
        && body_length.is_some_and(|length| length > limit)
    {
        let message = format!("the request body is larger than {limit} bytes");
        return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, &message, access));
    }

    let affinity = Affinity::of(route.sessions.as_ref(), request.uri().query());
    let upgrade = is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let upstream_request = match upstream_request(
        request,
        &host,
        body_length,
        &route,
        client,
        &request_id,
        &access.trace,
    ) {
        Ok(upstream_request) => upstream_request,
        Err(message) => return Ok(error(StatusCode::BAD_REQUEST, &message, access)),
    };
    Ok(exchange::forward(
        upstream_request,
        &route,
        &context,
        client_upgrade,
        affinity,
        access,
    )
    .await)
}

/// The size of a request head as sent: request line and header lines.
fn request_head_size<B>(request: &Request<B>) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(1, |target| target.as_str().len());
    head_size(
        request.method().as_str().len(),
        target,
        request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().len(), value.len())),
    )
}

/// The request to send upstream: the target and fields [`crate::forward`] decides, from the
/// client's head and the route.
fn upstream_request(
    request: Request<Incoming>,
    host: &HeaderValue,
    body_length: Option<u64>,
    route: &Route,
    client_ip: IpAddr,
    request_id: &HeaderValue,
    trace: &runtime::TraceContext,
) -> Result<Request<RequestBody>, String> {
    let (parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let target: http::Uri = match upstream_target(route, target) {
        // Unchanged: reuse the client's path and query as they are (no copy).
        Cow::Borrowed(_) => parts
            .uri
            .path_and_query()
            .cloned()
            .map_or_else(|| http::Uri::from_static("/"), http::Uri::from),
        Cow::Owned(target) => target
            .parse()
            .map_err(|error| format!("invalid request target: {error}"))?,
    };
    let head = ClientHead {
        fields: &parts.headers,
        host: host.as_bytes(),
        content_length: body_length,
        upgrade: is_upgrade(&parts.headers),
    };
    let mut headers = http::HeaderMap::with_capacity(parts.headers.len() + ADDED_FIELDS);
    let mut invalid = None;
    upstream_fields(
        &head,
        route,
        client_ip,
        request_id.as_bytes(),
        trace,
        |field| match field {
            Upstream::Client((name, value)) => {
                headers.append(name.clone(), value.clone());
            }
            Upstream::Gateway(name, value) => match HeaderValue::from_bytes(value) {
                Ok(value) => {
                    headers.append(HeaderName::from_static(name), value);
                }
                Err(_) => invalid = Some(name),
            },
        },
    );
    if let Some(name) = invalid {
        return Err(format!("the request's {name} is not a header value"));
    }
    let mut upstream = Request::new(RequestBody::new(body, route.max_body_bytes));
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = target;
    *upstream.headers_mut() = headers;
    Ok(upstream)
}

/// A JSON error response of docs/contracts.md, logged.
pub fn error(status: StatusCode, message: &str, mut access: AccessRecord) -> Response<GatewayBody> {
    if status.is_server_error() && access.error.is_none() {
        access.error = Some(message.to_owned());
    }
    answer(ErrorAnswer::new(status, message), access)
}

/// The answer to a request [`authorize`] refused: 401 with its `WWW-Authenticate`, or 503.
pub fn refused(refusal: &Refusal, access: AccessRecord) -> Response<GatewayBody> {
    answer(ErrorAnswer::refusal(refusal), access)
}

/// The response of an [`ErrorAnswer`], logged.
fn answer(error: ErrorAnswer, access: AccessRecord) -> Response<GatewayBody> {
    let mut headers = http::HeaderMap::new();
    for (name, value) in error.fields(access.request_id.as_bytes()) {
        let value = HeaderValue::from_bytes(value).expect("the answer's fields are header values");
        headers.insert(HeaderName::from_static(name), value);
    }
    let mut response = Response::new(GatewayBody::full(error.body));
    *response.status_mut() = error.status;
    *response.headers_mut() = headers;
    finish_local(response, access)
}

/// Writes the access line of a response the gateway made itself.
fn finish_local(
    mut response: Response<GatewayBody>,
    mut access: AccessRecord,
) -> Response<GatewayBody> {
    access.status = response.status();
    access.bytes = hyper::body::Body::size_hint(response.body())
        .exact()
        .unwrap_or(0);
    let (name, value) = response_request_id(access.request_id.clone());
    response
        .headers_mut()
        .insert(HeaderName::from_static(name), value);
    access.write();
    response
}

/// The gateway's answer to a CORS preflight (never forwarded): 204, or 403 `forbidden` without
/// the allow fields; either with [`Cors::preflight_fields`].
fn answer_preflight(
    preflight: Preflight,
    cors: &Cors,
    access: AccessRecord,
) -> Response<GatewayBody> {
    let (mut response, grant) = match preflight {
        Preflight::Allowed(grant) => {
            let mut response = Response::new(GatewayBody::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            (finish_local(response, access), grant)
        }
        Preflight::Refused(message) => (
            error(StatusCode::FORBIDDEN, &message, access),
            Grant::Denied,
        ),
    };
    for (name, value) in cors.preflight_fields(grant) {
        let value = HeaderValue::from_bytes(value).expect("the CORS fields are header values");
        response
            .headers_mut()
            .append(HeaderName::from_static(name), value);
    }
    response
}
