//! Subscriptions over WebSocket on `/graphql`: `graphql-transport-ws`, and the legacy
//! `graphql-ws` for clients that offer only that one.
//!
//! The caller of a connection is the one its `connection_init` payload's token proves
//! (`{"Authorization": "Bearer …"}`, `{"authorization": …}` or `{"token": "…"}`: browsers cannot
//! set headers on a WebSocket), else the one of the handshake's `Authorization` header (checked
//! before the upgrade, like any request's), else anonymous. A token that does not verify refuses
//! the connection: close code 4403 (Forbidden) on `graphql-transport-ws`, `connection_error` on
//! `graphql-ws`. When the token of a connection expires, the connection is closed with 4403, so
//! a client reconnects with a fresh one and nothing outlives the token that allowed it.
//!
//! A connection runs at most `GRAPHQL_MAX_SUBSCRIPTIONS` operations at once
//! ([`super::socket_operations`]); each operation is held to the limits of [`crate::limits`]
//! as over HTTP.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket, WebSocketProtocols, WsMessage};
use futures_util::StreamExt;
use server::{RequestId, RequestTrace};

use super::{
    execution::Endpoint,
    negotiation::{ResponseType, error_response, header_str},
    socket_operations::{Inbound, SocketOperations},
};
use crate::{
    PlatformSchema,
    access::{self, Authenticated},
    schema::caller::request_data,
};

/// How many client messages may wait for the executor on one WebSocket before it is closed.
const WEBSOCKET_BACKLOG: usize = 64;

/// The close code of a refused or expired token (`graphql-transport-ws`'s Forbidden).
const FORBIDDEN: u16 = 4403;

/// How a connection's `connection_init` went, for the loop that pumps its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitOutcome {
    /// Acknowledged: the caller's token expires then (seconds since the Unix epoch), or the
    /// handshake's caller stays (`None`).
    Accepted(Option<u64>),
    /// Refused: the token did not verify.
    Refused,
}

/// What `connection_init` needs to name the connection's caller.
struct InitContext {
    /// The process's verifier (`None`: tokens cannot be checked, so none is taken).
    verifier: Option<Arc<auth::Verifier>>,
    /// The handshake's request id.
    request_id: String,
    /// The handshake's trace context.
    trace: runtime::TraceContext,
    /// Where the outcome is left for the pump.
    outcome: Arc<Mutex<Option<InitOutcome>>>,
}

impl InitContext {
    /// The connection data a `connection_init` payload adds: its caller, who replaces the
    /// handshake's; nothing when it carries no token.
    async fn run(self, payload: serde_json::Value) -> async_graphql::Result<async_graphql::Data> {
        let decided = self.authenticate(&payload).await;
        let outcome = match &decided {
            Ok(Some(caller)) => {
                InitOutcome::Accepted(caller.principal.as_ref().map(|p| p.expires_at))
            }
            Ok(None) => InitOutcome::Accepted(None),
            Err(_) => InitOutcome::Refused,
        };
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = Some(outcome);
        }
        match decided {
            Ok(Some(caller)) => Ok(request_data(&self.request_id, &self.trace, caller).into_data()),
            Ok(None) => Ok(async_graphql::Data::default()),
            Err(message) => Err(async_graphql::Error::new(message)),
        }
    }

    async fn authenticate(
        &self,
        payload: &serde_json::Value,
    ) -> Result<Option<Authenticated>, String> {
        let authorization = access::init_authorization(payload)
            .map_err(|refused| format!("Forbidden: {refused}"))?;
        let Some(authorization) = authorization else {
            return Ok(None);
        };
        access::from_header(self.verifier.as_deref(), Some(authorization.as_bytes()))
            .await
            .map(Some)
            .map_err(|refused| format!("Forbidden: {refused}"))
    }
}

/// Upgrades to a WebSocket speaking `graphql-transport-ws` (or `graphql-ws`, if the client
/// offers only that one), for `caller` (the handshake's) until `connection_init` names another.
pub(crate) fn subscribe(
    request: &HttpRequest,
    payload: web::Payload,
    endpoint: &web::Data<Endpoint>,
    request_id: &RequestId,
    trace: &RequestTrace,
    caller: Authenticated,
) -> HttpResponse {
    let offered = header_str(request, header::SEC_WEBSOCKET_PROTOCOL);
    let (response, session, messages) =
        match actix_ws::handle_with_protocols(request, payload, &ALL_WEBSOCKET_PROTOCOLS) {
            Ok(parts) => parts,
            Err(error) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    ResponseType::Json,
                    "BAD_REQUEST",
                    format!("WebSocket handshake failed: {error}"),
                );
            }
        };
    let chosen = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let protocol = match (offered, chosen.as_deref()) {
        (_, Some(chosen)) => chosen.parse(),
        // No subprotocol asked for: the current one.
        (None, None) => "graphql-transport-ws".parse(),
        (Some(offered), None) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ResponseType::Json,
                "BAD_REQUEST",
                format!(
                    "unsupported Sec-WebSocket-Protocol '{offered}': use graphql-transport-ws or graphql-ws"
                ),
            );
        }
    };
    let Ok(protocol) = protocol else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ResponseType::Json,
            "BAD_REQUEST",
            "unsupported Sec-WebSocket-Protocol",
        );
    };
    let schema = endpoint.schema.clone();
    let expires_at = caller.principal.as_ref().map(|p| p.expires_at);
    let data = request_data(request_id.as_str(), &trace.0, caller).into_data();
    let init = InitContext {
        verifier: server::verifier(request),
        request_id: request_id.as_str().to_owned(),
        trace: trace.0.clone(),
        outcome: Arc::new(Mutex::new(None)),
    };
    let limits = endpoint.limits;
    let operations = endpoint.operations.clone();
    actix_web::rt::spawn(async move {
        operations
            .with_label_values(&["subscription", "connected"])
            .inc();
        let connection = Connection {
            schema,
            data,
            init,
            expires_at,
            protocol,
        };
        let running =
            SocketOperations::new(protocol, limits.max_subscriptions, limits.max_query_bytes);
        serve_websocket(
            connection,
            session,
            messages,
            running,
            limits.max_body_bytes,
        )
        .await;
    });
    response
}

/// One connection's GraphQL side.
struct Connection {
    /// The schema.
    schema: PlatformSchema,
    /// The handshake's caller and loaders.
    data: async_graphql::Data,
    /// What `connection_init` needs.
    init: InitContext,
    /// When the handshake's token expires (seconds since the Unix epoch).
    expires_at: Option<u64>,
    /// The protocol spoken.
    protocol: WebSocketProtocols,
}

/// The instant a token expiring at `expires_at` (seconds since the Unix epoch) is over.
fn deadline(expires_at: u64) -> tokio::time::Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    tokio::time::Instant::now() + Duration::from_secs(expires_at.saturating_sub(now))
}

/// A close frame's reason: at most 123 bytes (RFC 6455 §5.5), cut at a character boundary.
fn close_reason(mut reason: String) -> String {
    const MAX: usize = 123;
    if reason.len() > MAX {
        let mut end = MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// The close of a connection whose client sends faster than the executor takes its messages.
fn too_many_in_flight() -> CloseReason {
    CloseReason {
        code: CloseCode::Again,
        description: Some("too many messages in flight".to_owned()),
    }
}

/// Pumps one WebSocket: client frames into async-graphql's protocol machine, its messages out.
async fn serve_websocket(
    connection: Connection,
    mut session: actix_ws::Session,
    messages: actix_ws::MessageStream,
    mut running: SocketOperations,
    max_frame: usize,
) {
    let Connection {
        schema,
        data,
        init,
        expires_at,
        protocol,
    } = connection;
    let mut messages = messages
        .max_frame_size(max_frame)
        .aggregate_continuations()
        .max_continuation_size(max_frame);
    let (to_executor, mut inbox) = tokio::sync::mpsc::channel::<Vec<u8>>(WEBSOCKET_BACKLOG);
    let inbound = futures_util::stream::poll_fn(move |context| inbox.poll_recv(context));
    let outcome = init.outcome.clone();
    let mut graphql = WebSocket::new(schema, inbound, protocol)
        .connection_data(data)
        .on_connection_init(move |payload| init.run(payload))
        .keepalive_timeout(Duration::from_secs(30));
    // A connection without a token never expires: the timer is then set far away and disabled.
    let mut expires = expires_at;
    let expiry = tokio::time::sleep_until(expires.map_or_else(
        || tokio::time::Instant::now() + Duration::from_secs(86_400),
        deadline,
    ));
    tokio::pin!(expiry);
    let close = loop {
        tokio::select! {
            () = &mut expiry, if expires.is_some() => {
                break Some(CloseReason {
                    code: CloseCode::Other(FORBIDDEN),
                    description: Some("Forbidden: the access token expired".to_owned()),
                });
            }
            message = messages.next() => match message {
                Some(Ok(AggregatedMessage::Text(text))) => {
                    match running.inbound(text.as_bytes()) {
                        Inbound::Forward => {
                            if to_executor.try_send(text.as_bytes().to_vec()).is_err() {
                                break Some(too_many_in_flight());
                            }
                        }
                        Inbound::Refuse(answer) => {
                            if session.text(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                Some(Ok(AggregatedMessage::Binary(bytes))) => {
                    match running.inbound(&bytes) {
                        Inbound::Forward => {
                            if to_executor.try_send(bytes.to_vec()).is_err() {
                                break Some(too_many_in_flight());
                            }
                        }
                        Inbound::Refuse(answer) => {
                            if session.text(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                Some(Ok(AggregatedMessage::Close(reason))) => break reason,
                Some(Err(error)) => {
                    break Some(CloseReason {
                        code: CloseCode::Protocol,
                        description: Some(close_reason(error.to_string())),
                    });
                }
                None => return,
            },
            outgoing = graphql.next() => {
                // `connection_init`'s answer is the first message after it: its outcome is
                // known by now.
                let decided = outcome.lock().ok().and_then(|mut slot| slot.take());
                if let Some(InitOutcome::Accepted(Some(at))) = decided {
                    expires = Some(at);
                    expiry.as_mut().reset(deadline(at));
                }
                match outgoing {
                    Some(WsMessage::Text(text)) => {
                        running.outbound(&text);
                        if session.text(text).await.is_err() {
                            return;
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => {
                        let code = match (code, protocol) {
                            // A refused `connection_init`: async-graphql says 1002.
                            (1002, WebSocketProtocols::GraphQLWS)
                                if decided == Some(InitOutcome::Refused) => FORBIDDEN,
                            // graphql-transport-ws closes a malformed message with 4400, where
                            // async-graphql says 1002 for both protocols.
                            (1002, WebSocketProtocols::GraphQLWS) => 4400,
                            (code, _) => code,
                        };
                        break Some(CloseReason {
                            code: CloseCode::Other(code),
                            description: Some(close_reason(reason)),
                        });
                    }
                    None => break None,
                }
            },
        }
    };
    let _ = session.close(close).await;
}
