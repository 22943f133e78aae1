//! `/socket.io/`: the Engine.IO v4 entry. It checks the query (`EIO=4`, `transport`, `sid`),
//! opens sessions (the handshake: the `Origin` check, shutdown, the address's connection cap,
//! the same as `/chat/ws`), and hands requests of open sessions to their transport
//! ([`polling`], [`websocket`]). A refusal of the specification's own answers with its body,
//! `{"code":<n>,"message":"…"}`; the platform's (429, 503) with the contract's error body.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::Method, web};
use serde::Deserialize;
use shared::ApiError;
use tokio::sync::mpsc;

use crate::{
    access::{self, Presented},
    history::History,
    hub::Hub,
    queue::OutboundQueue,
    socketio::{
        outlet::Outlet,
        polling,
        session::{EngineSession, Sessions, Transport},
        socket::{self, SocketStart},
        websocket,
    },
};

/// Packets a client may have sent that its socket has not read yet (a `POST` waits).
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

/// The refusals of the Engine.IO specification (the reference server's codes and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineError {
    /// `transport` missing or neither `polling` nor `websocket`.
    TransportUnknown,
    /// `sid` names no open session.
    SessionUnknown,
    /// A handshake that is not a `GET`.
    BadHandshakeMethod,
    /// Anything else wrong with a request of an open session.
    BadRequest,
    /// The `Origin` may not open the chat.
    Forbidden,
    /// `EIO` missing or not `4`.
    UnsupportedProtocolVersion,
}

impl EngineError {
    /// Its code and message.
    pub fn code_and_message(self) -> (u8, &'static str) {
        match self {
            Self::TransportUnknown => (0, "Transport unknown"),
            Self::SessionUnknown => (1, "Session ID unknown"),
            Self::BadHandshakeMethod => (2, "Bad handshake method"),
            Self::BadRequest => (3, "Bad request"),
            Self::Forbidden => (4, "Forbidden"),
            Self::UnsupportedProtocolVersion => (5, "Unsupported protocol version"),
        }
    }

    /// The answer: 400 (403 for [`Self::Forbidden`]) with `{"code","message"}`.
    pub fn response(self) -> HttpResponse {
        let (code, message) = self.code_and_message();
        let mut response = if self == Self::Forbidden {
            HttpResponse::Forbidden()
        } else {
            HttpResponse::BadRequest()
        };
        response.json(serde_json::json!({ "code": code, "message": message }))
    }
}

/// A handshake refused: by the specification's rule, or the platform's (429, 503).
#[derive(Debug)]
pub enum Refused {
    /// The specification's refusal.
    Engine(EngineError),
    /// The platform's, with the contract's error body.
    Platform(ApiError),
}

impl Refused {
    /// The answer.
    pub fn response(&self) -> HttpResponse {
        match self {
            Self::Engine(error) => error.response(),
            Self::Platform(error) => error.error_response(),
        }
    }
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

/// `GET`/`POST /socket.io/`.
pub async fn entry(
    request: HttpRequest,
    body: web::Payload,
    engine: web::Data<Engine>,
) -> HttpResponse {
    let Ok(query) = web::Query::<EngineQuery>::from_query(request.query_string()) else {
        return EngineError::BadRequest.response();
    };
    if query.eio.as_deref() != Some("4") {
        return EngineError::UnsupportedProtocolVersion.response();
    }
    let transport = match query.transport.as_deref() {
        Some("polling") => Transport::Polling,
        Some("websocket") => Transport::WebSocket,
        _ => return EngineError::TransportUnknown.response(),
    };
    let Some(sid) = query.sid.as_deref() else {
        if request.method() != Method::GET {
            return EngineError::BadHandshakeMethod.response();
        }
        return match transport {
            Transport::WebSocket => websocket::open(&request, body, &engine, &query),
            _ => match open_session(&request, &engine, &query, Transport::Polling) {
                Ok((_, open)) => polling::text(open),
                Err(refusal) => refusal.response(),
            },
        };
    };
    let Some(session) = engine.sessions.get(sid) else {
        return EngineError::SessionUnknown.response();
    };
    match (transport, request.method()) {
        (Transport::WebSocket, &Method::GET) => {
            websocket::upgrade(&request, body, engine.hub.settings(), session)
        }
        (Transport::Polling, &Method::GET) => {
            polling::poll(session, engine.hub.settings(), engine.hub.metrics()).await
        }
        (Transport::Polling, &Method::POST) => {
            polling::post(session, body, engine.hub.settings()).await
        }
        _ => EngineError::BadRequest.response(),
    }
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
        .admit(shared::network::client_address(request))
        .map_err(|refusal| {
            hub.metrics().connections_refused.inc();
            Refused::Platform(refusal)
        })?;
    let (outbound, receiver, backlog) = OutboundQueue::new(settings.outbound_bytes);
    let (incoming_tx, incoming) = mpsc::channel(INCOMING_PACKETS);
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
        verifier: shared::identity::verifier(request),
        handshake_authorization: Presented::of(request, query.access_token.as_deref())
            .as_authorization(),
    }));
    Ok((session, open))
}
