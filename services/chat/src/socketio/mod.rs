//! Socket.IO at `/socket.io/`: Engine.IO v4 (HTTP long-polling and WebSocket, the upgrade from
//! one to the other, the heartbeat) and Socket.IO v5 (the main namespace, events, acks), so
//! Socket.IO chat pages and `socket.io-client` 4 chat in the same rooms as `/chat/ws` clients.
//! Written from the `socketio/engine.io-protocol` and `socketio/socket.io-protocol`
//! specifications.
//!
//! | module | what it holds |
//! |---|---|
//! | [`engine`] | `/socket.io/`: the query's checks, each request to its transport |
//! | [`handshake`] | opening a session: the checks of `/chat/ws`, the `open` packet; [`handshake::Engine`] |
//! | [`errors`] | the specification's errors and the platform's |
//! | [`engine_packet`] | Engine.IO packets and polling payloads |
//! | [`socket_packet`] | Socket.IO packets |
//! | [`session`] | one Engine.IO session as its transports share it, and this instance's sessions |
//! | [`outlet`] | a session's outbound queue read as packets, lent to one transport at a time |
//! | [`polling`] | the long-polling `GET` and `POST` |
//! | [`websocket`] | the WebSocket transport, the upgrade probe, the body that writes packets |
//! | [`socket`] | one Socket.IO client: heartbeat, `CONNECT`, `chatMessage`, `join`, acks |
//! | [`events`] | the hub's native events as Socket.IO events |
//! | [`bundle`] | `/socket.io/socket.io.js`, the vendored client bundle |

pub mod bundle;
pub mod engine;
pub mod engine_packet;
pub mod errors;
pub mod events;
pub mod handshake;
pub mod outlet;
pub mod polling;
pub mod session;
pub mod socket;
pub mod socket_packet;
pub mod websocket;

use actix_web::web;

/// Adds the `/socket.io/` routes to an app.
pub fn configure(config: &mut web::ServiceConfig, engine: web::Data<handshake::Engine>) {
    config
        .app_data(engine)
        .service(
            web::resource(["/socket.io/socket.io.js", "/socket.io/socket.io.min.js"])
                .route(web::get().to(bundle::script)),
        )
        .service(
            web::resource("/socket.io/socket.io.min.js.map")
                .route(web::get().to(bundle::source_map)),
        )
        .service(web::resource(["/socket.io/", "/socket.io"]).to(engine::entry));
}
