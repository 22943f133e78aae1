//! `/socket.io/`: the Engine.IO v4 entry. It checks the query (`EIO=4`, `transport`, `sid`),
//! opens sessions ([`handshake`](crate::socketio::handshake)), and hands requests of open
//! sessions to their transport ([`polling`], [`websocket`]).

use actix_web::{HttpRequest, HttpResponse, http::Method, web};

use crate::socketio::{
    errors::EngineError,
    handshake::{Engine, EngineQuery, open_session},
    polling,
    session::Transport,
    websocket,
};

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
