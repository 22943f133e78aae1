//! The WebSocket transport: a session opened on it (the `open` packet its first frame), or a
//! polling session upgrading to it (`2probe` answered `3probe`, the pending `GET` answered
//! `noop`, then `5` moves the queue over and polling is refused). Each packet is one frame.
//! One task reads the client's frames into the session's socket; the response body writes
//! the session's packets ([`SocketBody`]) once it holds the outlet.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use actix_http::ws::{OpCode, Parser};
use actix_web::{
    HttpRequest, HttpResponse,
    body::{BodySize, BoxBody, MessageBody},
    web,
};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, Session};
use bytes::BytesMut;
use tokio::sync::oneshot;

use crate::{
    closing::Disconnect,
    connection::protocol_disconnect,
    frames::Outbound,
    outgoing::{Chunk, MAX_CHUNK_BYTES, poll_control},
    settings::Settings,
    socketio::{
        engine_packet::{self, PROBE_PONG, Packet},
        errors::EngineError,
        handshake::{Engine, EngineQuery, open_session},
        outlet::Outlet,
        session::{EngineSession, Transport},
    },
};

/// `GET ?transport=websocket` without `sid`: a session on the WebSocket from the start.
pub fn open(
    request: &HttpRequest,
    body: web::Payload,
    engine: &Engine,
    query: &EngineQuery,
) -> HttpResponse {
    let (session, open) = match open_session(request, engine, query, Transport::WebSocket) {
        Ok(opened) => opened,
        Err(refusal) => return refusal.response(),
    };
    let _ = session.outbound.push(Outbound::Packet(Box::new(open)));
    let outlet = session.take_outlet_now();
    let (handoff_tx, handoff) = oneshot::channel();
    let response = accept(
        request,
        body,
        engine.hub.settings(),
        &session,
        handoff,
        false,
    );
    if let (Some(outlet), Ok(_)) = (outlet, response.as_ref()) {
        let _ = handoff_tx.send(outlet);
    }
    match response {
        Ok((response, reader)) => {
            actix_web::rt::spawn(reader.run(None));
            response
        }
        Err(refusal) => {
            session.closer.close(Disconnect::Protocol);
            refusal.response()
        }
    }
}

/// `GET ?transport=websocket&sid=…`: a polling session's upgrade.
pub fn upgrade(
    request: &HttpRequest,
    body: web::Payload,
    settings: &Settings,
    session: Arc<EngineSession>,
) -> HttpResponse {
    // A second WebSocket, or one for a session that upgraded: refused.
    if !session.switch(Transport::Polling, Transport::Probing) {
        return EngineError::BadRequest.response();
    }
    let (handoff_tx, handoff) = oneshot::channel();
    match accept(request, body, settings, &session, handoff, true) {
        Ok((response, reader)) => {
            actix_web::rt::spawn(reader.run(Some(handoff_tx)));
            response
        }
        Err(refusal) => {
            session.switch(Transport::Probing, Transport::Polling);
            refusal.response()
        }
    }
}

/// Upgrades the request; the response (its body: [`SocketBody`]) and the reader to spawn.
fn accept(
    request: &HttpRequest,
    body: web::Payload,
    settings: &Settings,
    session: &Arc<EngineSession>,
    handoff: oneshot::Receiver<Outlet>,
    probing: bool,
) -> Result<(HttpResponse, Reader), EngineError> {
    let (response, ws, stream) =
        actix_ws::handle(request, body).map_err(|_| EngineError::BadRequest)?;
    let stream = stream
        .max_frame_size(settings.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(settings.max_frame_bytes);
    let (head, control) = response.into_parts();
    let body = SocketBody {
        control,
        handoff: Some(handoff),
        outlet: None,
    };
    let reader = Reader {
        session: session.clone(),
        ws,
        stream,
        probing,
    };
    Ok((head.set_body(body).map_into_boxed_body(), reader))
}

/// Reads one WebSocket's frames into its session.
struct Reader {
    session: Arc<EngineSession>,
    ws: Session,
    stream: AggregatedMessageStream,
    /// Still probing (an upgrade): the session is not this WebSocket's until `5`.
    probing: bool,
}

impl Reader {
    /// Reads until the WebSocket or the session ends; `handoff` takes the outlet to the body
    /// once an upgrade completes.
    async fn run(mut self, handoff: Option<oneshot::Sender<Outlet>>) {
        let session = self.session.clone();
        let reason = if self.probing {
            match self.probe(handoff).await {
                Ok(()) => self.relay().await,
                Err(reason) => {
                    // The polling transport carries on.
                    session.switch(Transport::Probing, Transport::Polling);
                    let _ = self.ws.close(Some(reason.close_reason())).await;
                    return;
                }
            }
        } else {
            self.relay().await
        };
        session.closer.close(reason);
        let reason = session.closer.reason().unwrap_or(reason);
        let _ = self.ws.close(Some(reason.close_reason())).await;
    }

    /// The upgrade: `2probe` → `3probe` (and `noop` to the pending `GET`), then `5`.
    async fn probe(&mut self, handoff: Option<oneshot::Sender<Outlet>>) -> Result<(), Disconnect> {
        loop {
            let text = tokio::select! {
                reason = self.session.closer.closed() => return Err(reason),
                frame = self.stream.recv() => match frame {
                    Some(Ok(AggregatedMessage::Text(text))) => text,
                    Some(Ok(AggregatedMessage::Ping(payload))) => {
                        let _ = self.ws.pong(&payload).await;
                        continue;
                    }
                    Some(Ok(_)) => return Err(Disconnect::Protocol),
                    Some(Err(error)) => return Err(protocol_disconnect(&error)),
                    None => return Err(Disconnect::ClientGone),
                },
            };
            match engine_packet::decode(&text) {
                Ok(Packet::Ping(probe)) if probe == "probe" => {
                    if self.ws.text(PROBE_PONG).await.is_err() {
                        return Err(Disconnect::ClientGone);
                    }
                    self.session.flush();
                }
                Ok(Packet::Upgrade) => {
                    if !self
                        .session
                        .switch(Transport::Probing, Transport::WebSocket)
                    {
                        return Err(Disconnect::Protocol);
                    }
                    self.session.flush();
                    let Some(outlet) = self.session.take_outlet().await else {
                        return Err(Disconnect::Shutdown);
                    };
                    if let Some(handoff) = handoff {
                        let _ = handoff.send(outlet);
                    }
                    self.probing = false;
                    return Ok(());
                }
                _ => return Err(Disconnect::Protocol),
            }
        }
    }

    /// Hands the client's packets to the session's socket until either ends; why it ended.
    async fn relay(&mut self) -> Disconnect {
        let session = self.session.clone();
        loop {
            let packet = tokio::select! {
                reason = session.closer.closed() => return reason,
                frame = self.stream.recv() => match frame {
                    None => return Disconnect::ClientGone,
                    Some(Err(error)) => return protocol_disconnect(&error),
                    Some(Ok(AggregatedMessage::Text(text))) => match engine_packet::decode(&text) {
                        Ok(packet) => packet,
                        Err(_) => return Disconnect::Protocol,
                    },
                    Some(Ok(AggregatedMessage::Binary(bytes))) => Packet::Binary(bytes),
                    Some(Ok(AggregatedMessage::Ping(payload))) => {
                        let _ = self.ws.pong(&payload).await;
                        continue;
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => continue,
                    Some(Ok(AggregatedMessage::Close(_))) => return Disconnect::ClientClosed,
                },
            };
            tokio::select! {
                reason = session.closer.closed() => return reason,
                sent = session.incoming.send_async(packet) => if sent.is_err() {
                    return Disconnect::ClientGone;
                },
            }
        }
    }
}

/// The response body of a session's WebSocket: actix-ws's own frames first (`3probe`, the
/// close frame, after which it ends), then, once it holds the outlet, the session's packets,
/// one text frame each.
pub struct SocketBody {
    /// actix-ws's body.
    control: BoxBody,
    /// The outlet, until it arrives (at once, or when an upgrade completes).
    handoff: Option<oneshot::Receiver<Outlet>>,
    /// The session's packets.
    outlet: Option<Outlet>,
}

impl MessageBody for SocketBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Chunk> {
        let this = self.get_mut();
        if let Some(ready) = poll_control(&mut this.control, cx) {
            return ready;
        }
        if let Some(handoff) = this.handoff.as_mut() {
            match Pin::new(handoff).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(outlet) => {
                    this.handoff = None;
                    // No outlet: the probe failed; the close frame follows.
                    this.outlet = outlet.ok();
                }
            }
        }
        let Some(outlet) = this.outlet.as_mut() else {
            return Poll::Pending;
        };
        let mut chunk = BytesMut::new();
        while chunk.len() < MAX_CHUNK_BYTES {
            match outlet.poll_packet(cx) {
                Poll::Ready(Some(packet)) => {
                    Parser::write_message(&mut chunk, packet.as_bytes(), OpCode::Text, true, false);
                }
                // The session's queue ended: the reader closes the WebSocket.
                Poll::Ready(None) => {
                    this.outlet = None;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if chunk.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Some(Ok(chunk.freeze())))
        }
    }
}
