//! Opening an Engine.IO session (the handshake, on either transport): the `Origin` check,
//! shutdown and the address's connection cap (those of `/chat/ws`), the `open` packet, and the
//! session's socket started. Also what the routes share ([`Engine`]) and their query.

use std::sync::Arc;

use actix_web::HttpRequest;
use serde::Deserialize;
use server::ApiError;

use crate::{
    access::{self, Presented},
    history::History,
    hub::Hub,
    queue::OutboundQueue,
    socketio::{
        errors::{EngineError, Refused},
        outlet::Outlet,
        session::{EngineSession, Sessions, Transport},
        socket::{self, SocketStart},
    },
};

/// Packets a client may have sent that its socket has not read yet (a `POST` waits). A flume
/// channel: it allocates as packets come, where tokio's takes a block of 32 slots at once
/// (memory per idle session: docs/benchmarks.md, "chat-service: Socket.IO idle connections").
const INCOMING_PACKETS: usize = 16;

/// What the Engine.IO routes share: the hub and history of the native protocol, and the open
/// sessions.
pub struct Engine {
    /// The one hub of both protocols.
    pub hub: Hub,
    /// The messages.
    pub history: History,
    /// This instance's open sessions.
    pub sessions: Sessions,
}

/// The query of every Engine.IO request.
#[derive(Debug, Deserialize)]
pub struct EngineQuery {
    /// The protocol version: `4`.
    #[serde(rename = "EIO")]
    pub eio: Option<String>,
    /// `polling` or `websocket`.
    pub transport: Option<String>,
    /// The session, once open.
    pub sid: Option<String>,
    /// A token (as `/chat/ws` takes one) for clients that cannot send `auth`.
    pub access_token: Option<String>,
}

/// Opens a session on `transport` for a handshake let in, and starts its socket; the session
/// and its `open` packet, or the refusal.
pub fn open_session(
    request: &HttpRequest,
    engine: &Engine,
    query: &EngineQuery,
    transport: Transport,
) -> Result<(Arc<EngineSession>, String), Refused> {
    let hub = &engine.hub;
    let settings = hub.settings();
    if access::check_origin(request, &settings.allowed_origins).is_err() {
        return Err(Refused::Engine(EngineError::Forbidden));
    }
    if hub.is_shutting_down() {
        return Err(Refused::Platform(ApiError::Unavailable(
            "the chat is shutting down".to_owned(),
        )));
    }
    let seat = hub
        .limits()
        .admit(server::client_address(request))
        .map_err(|refusal| {
            hub.metrics().connections_refused.inc();
            Refused::Platform(refusal)
        })?;
    let (outbound, receiver, backlog) = OutboundQueue::new(settings.outbound_bytes);
    let (incoming_tx, incoming) = flume::bounded(INCOMING_PACKETS);
    let session = Arc::new(EngineSession::new(
        outbound,
        Outlet::new(receiver),
        incoming_tx,
        transport,
    ));
    let upgrades: &[&str] = if transport == Transport::Polling {
        &["websocket"]
    } else {
        &[]
    };
    let open = format!(
        "0{}",
        serde_json::json!({
            "sid": session.sid,
            "upgrades": upgrades,
            "pingInterval": settings.ping_interval.as_millis(),
            "pingTimeout": settings.pong_timeout.as_millis(),
            "maxPayload": settings.max_frame_bytes,
        })
    );
    engine.sessions.insert(session.clone());
    actix_web::rt::spawn(socket::run(SocketStart {
        hub: hub.clone(),
        history: engine.history.clone(),
        sessions: engine.sessions.clone(),
        session: session.clone(),
        incoming,
        backlog,
        seat,
        verifier: server::verifier(request),
        handshake_authorization: Presented::of(request, query.access_token.as_deref())
            .as_authorization(),
    }));
    Ok((session, open))
}
