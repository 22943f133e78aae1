//! `GET /chat` (the web page), `GET /chat/ws` (the WebSocket), `GET /chat/rooms` (online counts).

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::{Deserialize, Serialize};
use shared::ApiError;

use crate::{
    connection,
    history::History,
    hub::Hub,
    protocol::{check_room, sanitise_name},
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
        .service(web::resource("/chat/rooms").route(web::get().to(rooms)));
}

/// The HTML client.
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE)
}

/// `?room=…&name=…`.
#[derive(Debug, Deserialize)]
pub struct JoinQuery {
    /// The room (default `general`).
    pub room: Option<String>,
    /// The user's name (default `guest-xxxx`).
    pub name: Option<String>,
}

/// Upgrades to a WebSocket and serves the client in the background.
pub async fn websocket(
    request: HttpRequest,
    body: web::Payload,
    query: web::Query<JoinQuery>,
    hub: web::Data<Hub>,
    history: web::Data<History>,
) -> Result<HttpResponse, ApiError> {
    let room = check_room(query.room.as_deref()).map_err(ApiError::BadRequest)?;
    let user = sanitise_name(query.name.as_deref());
    if hub.is_shutting_down() {
        return Err(ApiError::Unavailable(
            "the chat is shutting down".to_owned(),
        ));
    }
    let (response, session, stream) = actix_ws::handle(&request, body)
        .map_err(|error| ApiError::BadRequest(format!("expected a WebSocket upgrade: {error}")))?;
    let settings = hub.settings();
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
        user,
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
