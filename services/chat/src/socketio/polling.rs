//! HTTP long-polling: a `GET` waits for the session's packets and answers them joined by
//! `\x1e` (`noop` when a WebSocket takes over, `close` when the session ended); a `POST`
//! carries the client's packets (at most `maxPayload` bytes) to its socket and answers `ok`.
//! One `GET` and one `POST` at a time: a second is refused (400) and ends the session. Once
//! the session upgraded, both are refused (400).

use std::{future::poll_fn, sync::Arc};

use actix_web::{HttpResponse, http::header, web};
use futures_util::StreamExt;
use prometheus::IntGauge;

use crate::{
    closing::Disconnect,
    metrics::ChatMetrics,
    settings::Settings,
    socketio::{
        engine_packet::{self, CLOSE, NOOP},
        errors::EngineError,
        session::{EngineSession, Transport},
    },
};

/// A polling answer: `text/plain; charset=UTF-8`, not to be cached.
pub fn text(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=UTF-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// `GET ?sid=…`: the session's packets, once there is one.
pub async fn poll(
    session: Arc<EngineSession>,
    settings: &Settings,
    metrics: &ChatMetrics,
) -> HttpResponse {
    // Listening before the transport is read: a probe that flushes after it is not missed.
    let mut flushed = std::pin::pin!(session.flushed());
    flushed.as_mut().enable();
    match session.transport() {
        Transport::WebSocket => return EngineError::BadRequest.response(),
        // The client probes a WebSocket with polling paused: a GET meanwhile gets noop.
        Transport::Probing => return text(NOOP.to_owned()),
        Transport::Polling => {}
    }
    let Some(mut loan) = session.lend_outlet() else {
        session.closer.close(Disconnect::Protocol);
        return EngineError::BadRequest.response();
    };
    let max_bytes = settings.max_frame_bytes;
    let _waiting = Waiting::start(metrics);
    let body = tokio::select! {
        biased;
        _ = session.closer.closed() => CLOSE.to_owned(),
        () = &mut flushed => NOOP.to_owned(),
        payload = poll_fn(|cx| loan.outlet().poll_payload(cx, max_bytes)) => {
            payload.unwrap_or_else(|| CLOSE.to_owned())
        }
    };
    drop(loan);
    text(body)
}

/// A `GET` counted in `chat_socketio_polls_waiting` until dropped (answered or cut off).
struct Waiting(IntGauge);

impl Waiting {
    fn start(metrics: &ChatMetrics) -> Self {
        metrics.polls_waiting.inc();
        Self(metrics.polls_waiting.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `POST ?sid=…`: the client's packets, to its socket.
pub async fn post(
    session: Arc<EngineSession>,
    mut body: web::Payload,
    settings: &Settings,
) -> HttpResponse {
    if session.transport() == Transport::WebSocket {
        return EngineError::BadRequest.response();
    }
    let Some(_posting) = session.start_post() else {
        session.closer.close(Disconnect::Protocol);
        return EngineError::BadRequest.response();
    };
    let max_bytes = settings.max_frame_bytes;
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return EngineError::BadRequest.response();
        };
        if bytes.len() + chunk.len() > max_bytes {
            return HttpResponse::PayloadTooLarge().json(serde_json::json!({
                "code": EngineError::BadRequest.code_and_message().0,
                "message": format!("a body over maxPayload ({max_bytes} bytes)"),
            }));
        }
        bytes.extend_from_slice(&chunk);
    }
    let packets = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| engine_packet::decode_payload(text).ok());
    let Some(packets) = packets else {
        session.closer.close(Disconnect::Protocol);
        return EngineError::BadRequest.response();
    };
    for packet in packets {
        tokio::select! {
            sent = session.incoming.send_async(packet) => if sent.is_err() { break },
            _ = session.closer.closed() => break,
        }
    }
    HttpResponse::Ok()
        .content_type("text/html")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body("ok")
}
