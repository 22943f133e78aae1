//! `GET /chat` (the web page), `GET /chat/ws` (the WebSocket), `GET /chat/rooms` (online counts),
//! `GET /chat/rooms/{room}/messages` (the history by page, [`crate::messages`]).
//!
//! The WebSocket's handshake is checked in this order, each refusal a JSON error before any
//! upgrade: `Origin` (403), room (400), token (401; 503 if keys cannot be had), guests allowed
//! (401), shutting down (503), the client address's connections (429), an upgrade request at
//! all (400). A handshake let in takes its address's slot and its name in the room
//! ([`crate::limits`], [`crate::names`]).

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::{Deserialize, Serialize};
use server::ApiError;

use crate::{
    access::{self, BEARER_PROTOCOL, Presented},
    connection::{self, Admission},
    history::History,
    hub::Hub,
    messages,
    names::Holder,
    protocol::check_room,
};

/// The web client, served from the binary.
pub const PAGE: &str = include_str!("../static/chat.html");

/// Adds the chat routes to an app.
pub fn configure(
    config: &mut web::ServiceConfig,
    hub: web::Data<Hub>,
    history: web::Data<History>,
) {
    config
        .app_data(hub)
        .app_data(history)
        .service(web::resource(["/chat", "/chat/"]).route(web::get().to(page)))
        .service(web::resource("/chat/ws").route(web::get().to(websocket)))
        .service(web::resource("/chat/rooms").route(web::get().to(rooms)))
        .service(
            web::resource("/chat/rooms/{room}/messages").route(web::get().to(messages::messages)),
        );
}

/// The HTML client.
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE)
}

/// `?room=…&access_token=…`. Other parameters (a client-chosen `name`) are ignored: the server
/// names every connection.
#[derive(Deserialize)]
pub struct JoinQuery {
    /// The room (default `general`).
    pub room: Option<String>,
    /// An access token (RFC 6750 §2.3), when neither the `Authorization` header nor the
    /// `bearer` subprotocol carries one.
    pub access_token: Option<String>,
}

impl std::fmt::Debug for JoinQuery {
    /// Never shows the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinQuery")
            .field("room", &self.room)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Upgrades to a WebSocket and serves the client in the background.
pub async fn websocket(
    request: HttpRequest,
    body: web::Payload,
    query: web::Query<JoinQuery>,
    hub: web::Data<Hub>,
    history: web::Data<History>,
) -> Result<HttpResponse, ApiError> {
    let settings = hub.settings();
    access::check_origin(&request, &settings.allowed_origins)?;
    let room = check_room(query.room.as_deref()).map_err(ApiError::BadRequest)?;
    let presented = Presented::of(&request, query.access_token.as_deref());
    let identity = access::identify(&request, &presented, settings.guests).await?;
    if hub.is_shutting_down() {
        return Err(ApiError::Unavailable(
            "the chat is shutting down".to_owned(),
        ));
    }
    let seat = hub
        .limits()
        .admit(server::client_address(&request))
        .inspect_err(|_| hub.metrics().connections_refused.inc())?;
    let holder = identity
        .user_id
        .map_or_else(|| Holder::Guest(uuid::Uuid::new_v4()), Holder::Account);
    let name = hub
        .names()
        .claim(&room, holder, &identity.name, access::guest_name)
        .await;
    // A client that offered `bearer` gets it selected (browsers fail a handshake that selects
    // none of their offers); the token beside it is never a candidate.
    let (response, session, stream) =
        actix_ws::handle_with_protocols(&request, body, &[BEARER_PROTOCOL]).map_err(|error| {
            ApiError::BadRequest(format!("expected a WebSocket upgrade: {error}"))
        })?;
    let stream = stream
        .max_frame_size(settings.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(settings.max_frame_bytes);
    let (head, control) = response.into_parts();
    let body = connection::start(
        hub.get_ref().clone(),
        history.get_ref().clone(),
        (session, stream, control),
        room,
        Admission {
            seat,
            name,
            user_id: identity.user_id,
        },
    );
    Ok(head.set_body(body).map_into_boxed_body())
}

/// One room of `GET /chat/rooms`.
#[derive(Debug, Serialize)]
pub struct RoomSummary {
    /// Its name.
    pub room: String,
    /// Clients connected to it, on every instance.
    pub online: usize,
}

/// The rooms with clients, by name.
pub async fn rooms(hub: web::Data<Hub>) -> HttpResponse {
    let rooms: Vec<RoomSummary> = hub
        .online()
        .into_iter()
        .map(|(room, online)| RoomSummary { room, online })
        .collect();
    HttpResponse::Ok().json(rooms)
}
