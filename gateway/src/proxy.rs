//! One request through the gateway: local endpoints, auth, rate limit, route, upstream,
//! response.

use std::{
    borrow::Cow,
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    rc::Rc,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use governor::clock::Clock;
use http::{
    HeaderName, HeaderValue, Request, Response, StatusCode,
    header::{
        AUTHORIZATION, CONNECTION, CONTENT_LENGTH, RETRY_AFTER, TRANSFER_ENCODING, USER_AGENT,
    },
};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use shared::network::client_address_among as client_address;

use crate::{
    access::AccessRecord,
    body::{FirstFrame, GatewayBody, Lease, first_frame},
    context::ThreadContext,
    forward::{
        ADDED_FIELDS, ClientHead, ErrorAnswer, MAX_REQUEST_FIELDS, Upstream, UpstreamFailure,
        head_size, request_id, retries_stale, upstream_fields, upstream_target,
    },
    framing::{check_target, client_host, reframe, watch_interim},
    headers::{REQUEST_ID, X_FORWARDED_FOR, is_upgrade, strip_hop_by_hop},
    identity::{ClientKey, Refusal, authorize},
    pool::Connection,
    request_body::{BodyTooLarge, ClientBodyError, RequestBody, RequestProgress},
    routing::Route,
    sticky::{Affinity, MAX_HANDSHAKE_BYTES, Pin, read_handshake},
    upstream::{Health, Instance},
};

/// Answers one request.
pub async fn handle(
    mut request: Request<Incoming>,
    context: Rc<ThreadContext>,
    peer: SocketAddr,
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
    if let Some(response) = crate::local::answer(&request, shared).await {
        return Ok(finish_local(response, access));
    }
    if client_host(&request).is_none() {
        let message = "a request needs a Host (RFC 9112 §3.2)";
        return Ok(error(StatusCode::BAD_REQUEST, message, access));
    }
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
    if let Some(limiter) = &shared.limiter
        && let Err(not_until) = limiter.check_key(&key)
    {
        shared.telemetry.metrics.rate_limited.inc();
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, key.limited_message(), access);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after(wait)));
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
        && content_length(request.headers()).is_some_and(|length| length > limit)
    {
        let message = format!("the request body is larger than {limit} bytes");
        return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, &message, access));
    }

    let affinity = Affinity::of(route.sessions.as_ref(), request.uri().query());
    let upgrade = is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let upstream_request = match upstream_request(request, &route, client, &request_id) {
        Ok(upstream_request) => upstream_request,
        Err(message) => return Ok(error(StatusCode::BAD_REQUEST, &message, access)),
    };
    Ok(forward(
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
    route: &Route,
    client_ip: IpAddr,
    request_id: &HeaderValue,
) -> Result<Request<RequestBody>, String> {
    let host = client_host(&request).ok_or("a request needs a Host (RFC 9112 §3.2)")?;
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
    // hyper lets a request in only when its `Content-Length` values agree; beside a
    // `Transfer-Encoding` there is none (hyper frames the body by its chunks).
    let content_length = if parts.headers.contains_key(TRANSFER_ENCODING) {
        None
    } else {
        content_length(&parts.headers)
    };
    let head = ClientHead {
        fields: &parts.headers,
        host: host.as_bytes(),
        content_length,
        upgrade: is_upgrade(&parts.headers),
    };
    let mut headers = http::HeaderMap::with_capacity(parts.headers.len() + ADDED_FIELDS);
    let mut invalid = None;
    upstream_fields(
        &head,
        route,
        client_ip,
        request_id.as_bytes(),
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

/// Sends the request to the route's instances: the next healthy one; on a connect failure (no
/// byte sent) the next one; on a pooled connection found closed before the request went out,
/// once more on a new connection when the method is idempotent. The response timeout runs
/// from the moment the request body has been sent, so a long upload is not cut short.
async fn forward(
    mut request: Request<RequestBody>,
    route: &Arc<Route>,
    context: &Rc<ThreadContext>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    affinity: Affinity,
    mut access: AccessRecord,
) -> Response<GatewayBody> {
    let method = request.method().clone();
    let interim = watch_interim(&mut request);
    let pinned = affinity.pinned;
    let mut candidates = route
        .upstreams
        .candidates_pinned(pinned.map(|pin| pin.instance));
    let mut current = candidates.next();
    let mut last_failure = String::from("no upstream instance");
    let mut stale_retry_used = false;
    while let Some(instance) = current {
        // The session's replica, when this is the session's instance.
        let address = pinned
            .filter(|pin| route.upstreams.index_of(instance) == Some(pin.instance))
            .map(|pin| pin.address);
        // The retry after a stale connection takes a new one, not another pooled one.
        let connected = context
            .pool
            .for_request(instance, address, stale_retry_used)
            .await;
        let mut upstream = match connected {
            Ok(upstream) => upstream,
            Err(failure) => {
                connect_failed(context, route, instance, &failure.to_string());
                last_failure = failure.to_string();
                current = candidates.next();
                continue;
            }
        };
        route.upstreams.record_success(instance);
        access.upstream = Some(instance.label.clone());
        let progress = request.body().progress();
        let response = upstream.sender.try_send_request(request);
        tokio::pin!(response);
        let sent = tokio::select! {
            biased;
            sent = &mut response => Ok(sent),
            () = progress.finished() => tokio::time::timeout(route.response_timeout, &mut response).await,
        };
        match sent {
            Ok(Ok(_)) if interim.load(Ordering::Relaxed) != 0 => {
                let failure = UpstreamFailure::UnaskedInterim {
                    instance: &instance.label,
                    status: interim.load(Ordering::Relaxed),
                };
                // The response and its connection are dropped: what follows on it is not
                // the exchange that was sent.
                return upstream_failed(context, route, &failure, access);
            }
            Ok(Ok(response)) => {
                return respond(
                    response,
                    route,
                    upstream,
                    progress,
                    instance,
                    context,
                    client_upgrade,
                    affinity.opening,
                    access,
                )
                .await;
            }
            Err(_elapsed) => {
                access.error = Some(format!(
                    "no response headers within {:?}",
                    route.response_timeout
                ));
                let failure = UpstreamFailure::Timeout {
                    instance: &instance.label,
                    after: route.response_timeout,
                };
                return upstream_failed(context, route, &failure, access);
            }
            Ok(Err(mut failed)) => {
                let unsent = failed.take_message();
                let cause = failed.into_error();
                if let Some(too_large) = find_cause::<BodyTooLarge>(&cause) {
                    let message = too_large.to_string();
                    return error(StatusCode::PAYLOAD_TOO_LARGE, &message, access);
                }
                if let Some(malformed) = find_cause::<ClientBodyError>(&cause) {
                    // The client's fault, not the upstream's: not counted as an upstream error.
                    let message = malformed.to_string();
                    return error(StatusCode::BAD_REQUEST, &message, access);
                }
                match unsent {
                    // The pooled connection closed before the request went out.
                    Some(unsent) if retries_stale(&method, true, stale_retry_used) => {
                        stale_retry_used = true;
                        request = unsent;
                    }
                    _ => {
                        access.error = Some(format!("{cause:#}"));
                        let failure = UpstreamFailure::Broken {
                            instance: &instance.label,
                            what: format!("failed: {cause}"),
                        };
                        return upstream_failed(context, route, &failure, access);
                    }
                }
            }
        }
    }
    let failure = UpstreamFailure::NoneAnswered {
        route: &route.prefix,
        last: &last_failure,
    };
    let message = failure.message();
    access.error = Some(last_failure.clone());
    error(failure.status(), &message, access)
}

/// The answer to an upstream failure, counted by its kind.
fn upstream_failed(
    context: &ThreadContext,
    route: &Route,
    failure: &UpstreamFailure<'_>,
    access: AccessRecord,
) -> Response<GatewayBody> {
    count_upstream_error(context, route, failure.kind());
    error(failure.status(), &failure.message(), access)
}

/// Counts a request that failed upstream: `kind` is `connect`, `timeout` or `protocol`.
pub fn count_upstream_error(context: &ThreadContext, route: &Route, kind: &str) {
    context
        .shared
        .telemetry
        .metrics
        .upstream_errors
        .with_label_values(&[&route.prefix, kind])
        .inc();
}

/// Counts a connect failure of `instance` and ejects it after enough in a row.
pub fn connect_failed(context: &ThreadContext, route: &Route, instance: &Instance, failure: &str) {
    count_upstream_error(context, route, "connect");
    if route.upstreams.record_failure(instance) == Health::Ejected {
        context
            .shared
            .telemetry
            .metrics
            .ejections
            .with_label_values(&[&route.prefix, &instance.label])
            .inc();
        slog::warn!(context.shared.telemetry.logger, "upstream instance ejected";
            "route" => &*route.prefix, "upstream" => &*instance.label, "error" => failure);
    }
}

fn find_cause<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The client's response: the upstream's status, end-to-end headers and streamed body; for a
/// 101, the two upgraded connections joined into a tunnel.
#[allow(clippy::too_many_arguments)] // One call site; each argument is a distinct part.
async fn respond(
    mut response: Response<Incoming>,
    route: &Route,
    upstream: Connection,
    request: Rc<RequestProgress>,
    instance: &Instance,
    context: &Rc<ThreadContext>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    opening: bool,
    mut access: AccessRecord,
) -> Response<GatewayBody> {
    let status = response.status();
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    if switching && client_upgrade.is_none() {
        // A 101 the client never asked for: the upstream speaks another protocol on a
        // connection hyper has handed over; nothing of it reaches the client.
        let failure = UpstreamFailure::Broken {
            instance: &instance.label,
            what: "switched protocols unasked".to_owned(),
        };
        return upstream_failed(context, route, &failure, access);
    }
    access.status = status;
    let codings = reframe(response.headers_mut());
    strip_hop_by_hop(response.headers_mut(), switching);
    if let Some(codings) = codings {
        response.headers_mut().insert(TRANSFER_ENCODING, codings);
    }
    response
        .headers_mut()
        .insert(REQUEST_ID, access.request_id.clone());
    if !switching && !request.completed() {
        // An early answer, the request body still coming: the connection closes after it
        // (the rest of the body is not forwarded, [`RequestProgress::abandon`]).
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if switching {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            // Counted before the task starts, so a drain beginning now waits for the tunnel.
            let open = context.tracker.open();
            tokio::task::spawn_local(async move {
                let _open = open;
                if let (Ok(client), Ok(upstream)) = tokio::join!(client_upgrade, upstream_upgrade) {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(upstream),
                    )
                    .await;
                }
            });
        }
        access.write();
        let mut client_response = Response::new(GatewayBody::empty());
        *client_response.status_mut() = status;
        *client_response.headers_mut() = std::mem::take(response.headers_mut());
        return client_response;
    }
    // hyper's client speaks HTTP/1.0 on a connection whose upstream answered in it: such a
    // connection carries no other request.
    let address = upstream.address;
    let lease = (response.version() == http::Version::HTTP_11).then(|| Lease {
        pool: context.pool.clone(),
        instance: instance.label.clone(),
        connection: upstream,
        request,
    });
    // The gateway answers in its own version (RFC 9110 §6.2), whatever the upstream's: a body
    // that ends with an HTTP/1.0 upstream's connection is chunked anew, as on the direct path,
    // and the client's connection stays open.
    *response.version_mut() = http::Version::HTTP_11;
    let (parts, mut body) = response.into_parts();
    let handshake = if opening && status == StatusCode::OK {
        route
            .sessions
            .as_ref()
            .zip(content_length(&parts.headers).filter(|length| *length <= MAX_HANDSHAKE_BYTES))
    } else {
        None
    };
    let first = match handshake {
        // An Engine.IO handshake answer: read whole (it is small) for the sid it issues.
        Some((sessions, length)) => {
            let timeout = route.response_timeout;
            match tokio::time::timeout(timeout, read_handshake(&mut body, length)).await {
                Ok(Ok((bytes, sid))) => {
                    if let (Some(sid), Some(index)) = (sid, route.upstreams.index_of(instance)) {
                        let pin = Pin {
                            instance: index,
                            address,
                        };
                        sessions.remember(&sid, pin);
                    }
                    FirstFrame::Frame(hyper::body::Frame::data(bytes))
                }
                Ok(Err(failure)) => FirstFrame::Failed(failure),
                Err(_elapsed) => {
                    let failure = UpstreamFailure::Timeout {
                        instance: &instance.label,
                        after: timeout,
                    };
                    return upstream_failed(context, route, &failure, access);
                }
            }
        }
        None => first_frame(&mut body).await,
    };
    let first = match first {
        FirstFrame::Failed(broken) => {
            let failure = UpstreamFailure::Broken {
                instance: &instance.label,
                what: format!("sent a malformed body: {broken}"),
            };
            return upstream_failed(context, route, &failure, access);
        }
        FirstFrame::Frame(frame) => Some(frame),
        FirstFrame::NotYet | FirstFrame::End => None,
    };
    Response::from_parts(parts, GatewayBody::upstream(first, body, lease, access))
}

/// A head's `Content-Length`, when it has one number.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
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
    response
        .headers_mut()
        .insert(REQUEST_ID, access.request_id.clone());
    access.write();
    response
}

/// How long to wait before telling a rate-limited client to come back, at least a second.
pub fn retry_after(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
