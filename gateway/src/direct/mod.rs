//! The direct path: plain HTTP/1.1 exchanges relayed by the client connection's own task.
//!
//! Nearly every request through the gateway is an ordinary HTTP/1.1 request with a
//! `Content-Length` body or none. For those this module parses the head in place with
//! `httparse`, writes the upstream head straight into a pooled upstream socket and relays the
//! response back, all from the one task that owns the client connection: no header maps, no
//! body types, no hand-off between a server task and a client connection task. The kernel's
//! loopback work is then most of what a request costs (see `docs/benchmarks.md`, "What the
//! gateway profile showed").
//!
//! Anything else goes to hyper, which then serves the rest of that connection with the bytes
//! already read ([`Next::HandOver`]): upgrades (WebSocket), chunked or `Expect` requests,
//! HTTP/1.0, the gateway's own endpoints, unknown paths, a head over the limits (more than
//! [`MAX_REQUEST_FIELDS`](crate::forward::MAX_REQUEST_FIELDS) fields included) or one `httparse`
//! rejects, a target that is not origin-form (`CONNECT`'s included), a `Host` [`crate::host`]
//! refuses, a body over the route's limit, a repeated `Authorization` field, and a request the
//! rate limiter refuses. So each of those answers is made in one place, [`crate::proxy`]. A
//! request [`crate::identity::authorize`] refuses is answered here, from the same [`Refusal`]
//! hyper's path answers from, so its token is verified once. The proxy rules (the upstream
//! head, the retry rule, the error answers) are [`crate::forward`]'s, as on hyper's path: this
//! module does the I/O.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the connection's loop, the exchange with a pooled upstream socket, error answers |
//! | `request.rs` | the client's head: parsed, its framing checked, the upstream's head written |
//! | `response.rs` | the upstream's head, and the relay of its body (length, chunked, until close) |
//! | `chunked.rs` | the chunked body's grammar, checked byte by byte as it passes |
//! | `early.rs` | the request body's relay, cut short by an early answer, and the lingering close |
//! | `fuzzing.rs` | both on arbitrary bytes, with their invariants, for the fuzz target (`fuzzing`) |

use std::{io::Write, net::SocketAddr, ops::Range, rc::Rc, sync::Arc, time::Duration};

use http::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};

use crate::{
    access::AccessRecord,
    context::ThreadContext,
    cors::{Cors, Grant},
    forward::{ErrorAnswer, UpstreamFailure, resendable, retries_stale},
    identity::{ClientKey, Refusal, authorize},
    routing::Route,
    upstream::Instance,
};

mod chunked;
mod early;
/// The direct path on arbitrary bytes, for the fuzz target (feature `fuzzing`) and the test
/// that replays its corpus.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod request;
mod response;

use early::{linger, relay_body};

use response::{HeadError, RelayError, Relayed, read_response_head, relay_response, write_all};

/// Header fields `httparse` reads from one response head; a head with more is a 502.
const MAX_RESPONSE_FIELDS: usize = 100;
/// Largest request body the direct path relays; larger ones go to hyper.
const MAX_DIRECT_BODY: u64 = 64 * 1024;

/// How the direct path left a client connection.
pub enum Next {
    /// It is closed (or should be): the client left, asked to close, or an exchange broke.
    Close,
    /// Hyper serves it from here, starting with these bytes already read from it.
    HandOver(TcpStream, Vec<u8>),
}

/// What one client connection's task keeps between requests.
struct Connection {
    /// The client.
    client: TcpStream,
    /// The client's address.
    peer: SocketAddr,
    /// Bytes read from the client and not yet relayed.
    inbound: Vec<u8>,
    /// The head being written (upstream request, client response), then body bytes with it.
    outbound: Vec<u8>,
    /// Bytes read from the upstream.
    upstream_bytes: Vec<u8>,
    /// True once the gateway drains: the response in flight says `connection: close`.
    stop: watch::Receiver<bool>,
}

/// Serves `client` until it closes or needs hyper.
pub async fn serve(
    client: TcpStream,
    peer: SocketAddr,
    context: &Rc<ThreadContext>,
    stop: &mut watch::Receiver<bool>,
) -> Next {
    let mut connection = Connection {
        client,
        peer,
        inbound: Vec::with_capacity(2048),
        outbound: Vec::with_capacity(1024),
        upstream_bytes: Vec::new(),
        stop: stop.clone(),
    };
    let header_timeout = Duration::from_millis(context.shared.server.client_header_timeout_ms);
    loop {
        let head = tokio::select! {
            biased;
            head = tokio::time::timeout(header_timeout, connection.read_request(context)) => head,
            _ = stop.wait_for(|stopped| *stopped) => return Next::Close,
        };
        let request = match head {
            // Slowloris, or an idle keep-alive connection past its time.
            Err(_elapsed) => return Next::Close,
            Ok(Read::Closed) => return Next::Close,
            Ok(Read::HandOver) => return Next::HandOver(connection.client, connection.inbound),
            Ok(Read::Request(request)) => request,
            Ok(Read::Refused(request, refusal)) => {
                if connection
                    .refuse(request, &refusal, &context.shared.cors)
                    .await
                {
                    continue;
                }
                return Next::Close;
            }
        };
        let keep_alive = connection.exchange(request, context).await;
        if !keep_alive || *stop.borrow() {
            return Next::Close;
        }
    }
}

/// The outcome of reading a request head.
// One per request, moved once: boxing the request would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Read {
    /// The client closed (or broke) the connection.
    Closed,
    /// Hyper must take this request.
    HandOver,
    /// A request for the direct path; its upstream head is in `outbound`.
    Request(Request),
    /// A request [`authorize`] refused, to be answered without reaching an upstream.
    Refused(Request, Refusal),
}

/// What the direct path keeps of a request once its head has been turned into the upstream's.
struct Request {
    /// The access record, filled in as the exchange goes.
    access: AccessRecord,
    /// The client's address ([`client_address`]): the rate limiter's key without a token.
    client: std::net::IpAddr,
    /// The route it matched.
    route: Arc<Route>,
    /// Request body bytes still to come from the client.
    body_left: u64,
    /// Whether the request has a body (which makes a retry impossible once it is streaming).
    has_body: bool,
    /// The client asked to close after this exchange.
    client_close: bool,
    /// Its method (a HEAD's answer has no body whatever its headers say; only an idempotent
    /// one is sent again).
    method: http::Method,
    /// Where the value of its `Authorization` field lies in `inbound`, if it has one.
    authorization: Option<Range<usize>>,
    /// The bytes of `inbound` it takes up (head and the body bytes that came with it); they are
    /// dropped once the request is let through, and handed to hyper with the rest otherwise.
    consumed: usize,
    /// What CORS grants its answers ([`crate::cors`]).
    cors: Grant,
}

/// An exchange that failed before a response reached the client.
enum Failure {
    /// Answered with this error.
    Answer(ErrorAnswer),
    /// The client went away.
    ClientGone,
}

impl Connection {
    /// Reads one request head and, when it is for the direct path, writes the upstream request
    /// head (and whatever body bytes came with it) into `outbound`.
    async fn read_request(&mut self, context: &Rc<ThreadContext>) -> Read {
        let limit = context.shared.server.max_header_bytes;
        // Bytes already searched for the blank line that ends a head, so a head that trickles
        // in is parsed once, not once per read.
        let mut searched = 0;
        loop {
            if ends_head(&self.inbound, searched) {
                match request::parse_request(
                    &self.inbound,
                    self.peer,
                    &context.shared,
                    &mut self.outbound,
                ) {
                    Ok(Some(request)) => return self.admit(request, context).await,
                    Ok(None) => {}
                    Err(()) => return Read::HandOver,
                }
            }
            if self.inbound.len() > limit {
                return Read::HandOver;
            }
            searched = self.inbound.len();
            if self.inbound.capacity() - self.inbound.len() < 512 {
                self.inbound.reserve(4096);
            }
            match self.client.read_buf(&mut self.inbound).await {
                Ok(0) | Err(_) => return Read::Closed,
                Ok(_) => {}
            }
        }
    }

    /// Decides a parsed request with [`authorize`] and the rate limiter (keyed as on hyper's
    /// path): let through, refused here, or, when the limiter refuses, handed to hyper, which
    /// asks again and answers the 429 with its `Retry-After`.
    async fn admit(&mut self, mut request: Request, context: &Rc<ThreadContext>) -> Read {
        let shared = &context.shared;
        let authorization = request
            .authorization
            .clone()
            .map(|range| &self.inbound[range]);
        let outcome = authorize(&shared.verifier, request.route.auth, authorization).await;
        if let Some(limiter) = &shared.limiter
            && limiter
                .check_key(&ClientKey::of(&outcome, request.client))
                .is_err()
        {
            return Read::HandOver;
        }
        self.inbound.drain(..request.consumed);
        match outcome {
            Ok(principal) => {
                request.access.user_id = principal.map(|principal| principal.user_id);
                Read::Request(request)
            }
            Err(refusal) => Read::Refused(request, refusal),
        }
    }

    /// Answers a refused request as hyper's path does ([`crate::proxy::refused`]); whether the
    /// client connection may carry another request.
    async fn refuse(&mut self, request: Request, refusal: &Refusal, cors: &Cors) -> bool {
        // A body the client is still sending would be read as the next request; draining, this
        // is the connection's last answer.
        let close = request.client_close || request.body_left > 0 || *self.stop.borrow();
        let fields = cors.response_fields(request.cors);
        let written = self
            .answer_error(
                &ErrorAnswer::refusal(refusal),
                request.access,
                fields,
                close,
            )
            .await;
        written && !close
    }

    /// Sends the request upstream and relays the response; whether the client connection may
    /// carry another request.
    async fn exchange(&mut self, mut request: Request, context: &Rc<ThreadContext>) -> bool {
        let route = request.route.clone();
        let mut candidates = route.upstreams.candidates();
        let mut current = candidates.next();
        let mut last_failure = String::from("no upstream instance");
        let mut retried_stale = false;
        let upstream_request = std::mem::take(&mut self.outbound);
        let outcome = loop {
            let Some(instance) = current else {
                let failure = UpstreamFailure::NoneAnswered {
                    route: &route.prefix,
                    last: &last_failure,
                };
                let answer = ErrorAnswer::new(failure.status(), &failure.message());
                request.access.error = Some(last_failure);
                break Outcome::Failed(Failure::Answer(answer));
            };
            let pooled = if retried_stale {
                None
            } else {
                context.pool.take_socket(instance)
            };
            let reused = pooled.is_some();
            let mut upstream = match pooled {
                Some(socket) => socket,
                None => match context.pool.connect_socket(instance).await {
                    Ok(socket) => socket,
                    Err(failure) => {
                        context.connect_failed(&route, instance, &failure.to_string());
                        last_failure = failure.to_string();
                        current = candidates.next();
                        continue;
                    }
                },
            };
            route.upstreams.record_success(instance);
            request.access.upstream = Some(instance.label.clone());
            match self
                .send_and_relay(
                    &mut upstream,
                    &upstream_request,
                    &mut request,
                    instance,
                    context,
                )
                .await
            {
                Err(Stale)
                    if retries_stale(
                        &request.method,
                        // The body the client sent is relayed, not kept.
                        resendable(reused, !request.has_body),
                        retried_stale,
                    ) =>
                {
                    // The upstream had closed the pooled connection before the request reached
                    // it: once more, on a new connection.
                    retried_stale = true;
                }
                Err(Stale) => {
                    let failure = UpstreamFailure::Broken {
                        instance: &instance.label,
                        what: "closed the connection before answering".to_owned(),
                    };
                    break failed(context, &route, &failure, &mut request);
                }
                Ok(outcome) => {
                    if let Outcome::Relayed {
                        upstream_reusable: true,
                        ..
                    } = outcome
                    {
                        context.pool.put_socket(&instance.label, upstream);
                    }
                    break outcome;
                }
            }
        };
        self.outbound = upstream_request;
        match outcome {
            Outcome::Relayed { keep_alive, .. } => {
                request.access.write();
                if request.body_left > 0 {
                    linger(&mut self.client).await;
                }
                keep_alive
            }
            Outcome::Failed(Failure::ClientGone) => {
                request.access.status = StatusCode::BAD_REQUEST;
                request.access.write();
                false
            }
            Outcome::Failed(Failure::Answer(answer)) => {
                // A body the client is still sending would be read as the next request.
                let close = request.client_close || request.body_left > 0 || *self.stop.borrow();
                let fields = context.shared.cors.response_fields(request.cors);
                let written = self
                    .answer_error(&answer, request.access, fields, close)
                    .await;
                written && !close
            }
        }
    }

    /// Writes the request, streams the rest of its body, waits for the response head and
    /// relays the response. `Err(Stale)`: the upstream closed without a byte of response.
    async fn send_and_relay(
        &mut self,
        upstream: &mut TcpStream,
        upstream_request: &[u8],
        request: &mut Request,
        instance: &Instance,
        context: &ThreadContext,
    ) -> Result<Outcome, Stale> {
        let route = &*request.route.clone();
        if upstream.write_all(upstream_request).await.is_err() {
            return Err(Stale);
        }
        if request.body_left > 0 {
            let body_left = request.body_left;
            // A client that stalls mid-body is let go like one that stalls mid-head.
            let body_timeout =
                Duration::from_millis(context.shared.server.client_header_timeout_ms);
            match relay_body(&mut self.client, upstream, body_left, body_timeout).await {
                None => {}
                Some(Ok(())) => request.body_left = 0,
                Some(Err(RelayError::Source | RelayError::Malformed)) => {
                    return Ok(Outcome::Failed(Failure::ClientGone));
                }
                Some(Err(RelayError::Destination)) => {
                    let failure = UpstreamFailure::Broken {
                        instance: &instance.label,
                        what: "stopped reading the request body".to_owned(),
                    };
                    return Ok(failed(context, route, &failure, request));
                }
            }
        }
        self.upstream_bytes.clear();
        let head = match tokio::time::timeout(
            route.response_timeout,
            read_response_head(upstream, &mut self.upstream_bytes),
        )
        .await
        {
            Err(_elapsed) => {
                let failure = UpstreamFailure::Timeout {
                    instance: &instance.label,
                    after: route.response_timeout,
                };
                return Ok(failed(context, route, &failure, request));
            }
            Ok(Err(HeadError::Closed)) if self.upstream_bytes.is_empty() => return Err(Stale),
            Ok(Err(HeadError::Interim(status))) => {
                let failure = UpstreamFailure::UnaskedInterim {
                    instance: &instance.label,
                    status,
                };
                return Ok(failed(context, route, &failure, request));
            }
            Ok(Err(error)) => {
                let failure = UpstreamFailure::Broken {
                    instance: &instance.label,
                    what: format!("failed: {error}"),
                };
                return Ok(failed(context, route, &failure, request));
            }
            Ok(Ok(head)) => head,
        };
        let framing = head.client_framing(request.method == http::Method::HEAD);
        // Draining, or answering before the body ended: this is the connection's last
        // response, and says so.
        let client_close = request.client_close || request.body_left > 0 || *self.stop.borrow();
        request.access.status =
            StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
        head.write_client_head(
            &self.upstream_bytes,
            &framing,
            &request.access.request_id,
            (&context.shared.cors, request.cors),
            client_close,
            &mut self.outbound,
        );
        let relayed = relay_response(
            framing,
            head.length,
            upstream,
            &mut self.upstream_bytes,
            &mut self.outbound,
            &mut self.client,
        )
        .await;
        match relayed {
            Ok(Relayed { bytes, clean }) => {
                request.access.bytes = bytes;
                Ok(Outcome::Relayed {
                    keep_alive: !client_close,
                    upstream_reusable: head.keep_alive && clean && request.body_left == 0,
                })
            }
            Err(RelayError::Source) => {
                context.count_upstream_error(route, "protocol");
                request.access.error =
                    Some(format!("{} broke off the response body", instance.label));
                Ok(Outcome::Relayed {
                    keep_alive: false,
                    upstream_reusable: false,
                })
            }
            Err(RelayError::Destination) => Ok(Outcome::Relayed {
                keep_alive: false,
                upstream_reusable: false,
            }),
            Err(RelayError::Malformed) => {
                let failure = UpstreamFailure::Broken {
                    instance: &instance.label,
                    what: "sent a malformed chunked body".to_owned(),
                };
                Ok(failed(context, route, &failure, request))
            }
        }
    }

    /// Answers the client with `answer` and its CORS `fields`, and writes the access line;
    /// whether the answer was written.
    async fn answer_error<'c>(
        &mut self,
        answer: &ErrorAnswer,
        mut access: AccessRecord,
        cors_fields: impl Iterator<Item = (&'static str, &'c [u8])>,
        close: bool,
    ) -> bool {
        let status = answer.status;
        let out = &mut self.outbound;
        out.clear();
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\ncontent-length: {}\r\ndate: {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            answer.body.len(),
            http_date(),
        );
        for (name, value) in answer.fields(access.request_id.as_bytes()) {
            push_field(out, name.as_bytes(), value);
        }
        for (name, value) in cors_fields {
            push_field(out, name.as_bytes(), value);
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&answer.body);
        access.status = status;
        access.bytes = answer.body.len() as u64;
        let written = write_all(&mut self.client, out).await.is_ok();
        access.write();
        written
    }
}

/// How an exchange that reached an upstream ended.
enum Outcome {
    /// The response went to the client (or the client left while it did).
    Relayed {
        /// The client connection may carry another request.
        keep_alive: bool,
        /// The upstream connection ended the exchange cleanly and may be pooled.
        upstream_reusable: bool,
    },
    /// No response reached the client.
    Failed(Failure),
}

/// The upstream closed the connection without sending a byte of response: a pooled
/// connection it had already closed, usually.
struct Stale;

/// The outcome of an upstream failure: counted by its kind, noted in the access line, answered.
fn failed(
    context: &ThreadContext,
    route: &Route,
    failure: &UpstreamFailure<'_>,
    request: &mut Request,
) -> Outcome {
    context.count_upstream_error(route, failure.kind());
    let message = failure.message();
    let answer = ErrorAnswer::new(failure.status(), &message);
    request.access.error = Some(message);
    Outcome::Failed(Failure::Answer(answer))
}

/// The current time as an HTTP date, formatted once a second per thread.
fn http_date() -> std::rc::Rc<str> {
    thread_local! {
        static CURRENT: std::cell::RefCell<(u64, std::rc::Rc<str>)> =
            std::cell::RefCell::new((u64::MAX, std::rc::Rc::from("")));
    }
    let now = std::time::SystemTime::now();
    let second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    CURRENT.with_borrow_mut(|(formatted_at, text)| {
        if *formatted_at != second {
            *text = std::rc::Rc::from(httpdate::fmt_http_date(now));
            *formatted_at = second;
        }
        text.clone()
    })
}

/// Whether `bytes` may hold a whole head: a line feed followed by an empty line (CRLF or bare
/// LF) at or after `from`, the first byte not searched before.
fn ends_head(bytes: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(3).min(bytes.len());
    bytes[start..].iter().enumerate().any(|(index, byte)| {
        *byte == b'\n'
            && matches!(
                &bytes[start + index + 1..],
                [b'\n', ..] | [b'\r', b'\n', ..]
            )
    })
}

/// Appends `name: value` and CRLF.
fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
