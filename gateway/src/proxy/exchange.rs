//! Hyper's path's exchange with an upstream: the request sent to the route's instances (the
//! next healthy one, a connect failure tried on the next, a stale pooled connection retried by
//! [`retries_stale`]), and the response relayed back: reframed, its hop-by-hop fields gone, a
//! 101 joined into a tunnel, an Engine.IO handshake's `sid` remembered.

use std::{
    rc::Rc,
    sync::{Arc, atomic::Ordering},
};

use http::{
    HeaderName, HeaderValue, Request, Response, StatusCode,
    header::{CONNECTION, TRANSFER_ENCODING},
};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::error;
use crate::{
    access::AccessRecord,
    body::{FirstFrame, GatewayBody, Lease, first_frame},
    context::ThreadContext,
    forward::{
        UpstreamFailure, body_length, resendable, response_request_id, retries_stale,
        strip_response_fields,
    },
    framing::{reframe, watch_interim},
    pool::Connection,
    request_body::{BodyTooLarge, ClientBodyError, RequestBody, RequestProgress},
    routing::Route,
    sticky::{Affinity, MAX_HANDSHAKE_BYTES, Pin, read_handshake},
    upstream::Instance,
};

/// Sends the request to the route's instances: the next healthy one; on a connect failure (no
/// byte sent) the next one; on a pooled connection found closed before the request went out,
/// once more on a new connection when the method is idempotent. The response timeout runs
/// from the moment the request body has been sent, so a long upload is not cut short.
pub(super) async fn forward(
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
                context.connect_failed(route, instance, &failure.to_string());
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
                // hyper hands the request back (body unread) when the connection closed before
                // it went out.
                let kept = unsent.is_some();
                match unsent {
                    Some(unsent)
                        if retries_stale(
                            &method,
                            resendable(upstream.reused, kept),
                            stale_retry_used,
                        ) =>
                    {
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
    context.count_upstream_error(route, failure.kind());
    error(failure.status(), &failure.message(), access)
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
    strip_response_fields(response.headers_mut(), switching);
    if let Some(codings) = codings {
        response.headers_mut().insert(TRANSFER_ENCODING, codings);
    }
    let (name, value) = response_request_id(access.request_id.clone());
    response
        .headers_mut()
        .insert(HeaderName::from_static(name), value);
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
        route.sessions.as_ref().zip(
            body_length(&parts.headers)
                .ok()
                .flatten()
                .filter(|length| *length <= MAX_HANDSHAKE_BYTES),
        )
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
