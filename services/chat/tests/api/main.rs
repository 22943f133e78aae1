//! The chat end to end over real WebSockets (tokio-tungstenite), on SQLite and PostgreSQL,
//! one and two instances (one test binary).

mod bad_input;
mod binary;
mod browser;
mod events;
mod helpers;
mod history_pages;
mod http;
mod identity;
mod limits;
mod liveness;
mod names;
mod scale_out;
mod socketio;
mod socketio_browser;
mod socketio_client;
mod socketio_rules;
