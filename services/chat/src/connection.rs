//! One WebSocket client, from `welcome` to `userLeft`.
//!
//! One task per connection reads the client's frames (rate limits, checks, store, publish)
//! and keeps the heartbeat; the response body ([`Outgoing`]) drains the bounded outbound
//! queue into the socket: `welcome` first, then `history`, then the queue, skipping a message
//! already in the history (the client joins the room before history is read, so nothing sent
//! meanwhile is lost). Whatever ends the connection (the client, the heartbeat, a full queue,
//! an oversized frame, shutdown) goes through one [`Closer`], and the close frame says why.
//! The connection holds its [`Admission`] (its address's connection slot, its name in the room)
//! to the end, and gives both back when it ends.
//!
//! The rare, large steps (joining, reading history, storing, publishing) are boxed, so the
//! future each idle connection keeps stays small (memory per idle connection).

use std::collections::HashSet;

use actix_web::body::BoxBody;
use actix_ws::{AggregatedMessage, AggregatedMessageStream, ProtocolError, Session};
use governor::DefaultDirectRateLimiter;
use tokio::{sync::oneshot, time::Instant};
use uuid::Uuid;

use crate::{
    closing::{Closer, Disconnect},
    frames::Outbound,
    history::History,
    hub::Hub,
    limits::Seat,
    names::NameClaim,
    outgoing::{Outgoing, Preamble},
    protocol::{ChatMessage, ClientEvent, ErrorCode, ServerEvent, parse_client_event},
    queue::OutboundQueue,
};

/// What a connection was let in with, held until it ends.
pub struct Admission {
    /// Its slot in its address's connection count.
    pub seat: Seat,
    /// Its name in the room.
    pub name: NameClaim,
    /// Its account's id; `None` for a guest.
    pub user_id: Option<i64>,
}

/// Starts serving one client of `room` admitted as `admission`: spawns the task that reads its
/// frames and returns the body that writes to it. `control` is actix-ws's own body (the close
/// frame that `session` sends).
pub fn start(
    hub: Hub,
    history: History,
    (session, stream, control): (Session, AggregatedMessageStream, BoxBody),
    room: String,
    admission: Admission,
) -> Outgoing {
    let (outbound, receiver, backlog) = OutboundQueue::new(hub.settings().outbound_bytes);
    let (preamble_tx, preamble_rx) = oneshot::channel();
    let welcome = ServerEvent::Welcome {
        message: format!(
            "Welcome to the chat, {}! You are in room {room}.",
            admission.name.name()
        ),
        room: &room,
        user: admission.name.name(),
        user_id: admission.user_id,
    }
    .to_json();
    actix_web::rt::spawn(serve(
        hub,
        history,
        (session, stream),
        (outbound, backlog, preamble_tx),
        room,
        admission,
    ));
    Outgoing::new(control, &welcome, preamble_rx, receiver)
}

/// Serves one client until the connection ends.
async fn serve(
    hub: Hub,
    history: History,
    (session, mut stream): (Session, AggregatedMessageStream),
    (outbound, backlog, preamble_tx): (
        OutboundQueue,
        flume::Receiver<Outbound>,
        oneshot::Sender<Preamble>,
    ),
    room: String,
    admission: Admission,
) {
    let user = admission.name.name();
    let user_id = admission.user_id;
    // Borrowed, not cloned, and no logger of its own: what an idle connection holds is its
    // memory (10 000 of them in the chat bench).
    let settings = hub.settings();
    let metrics = hub.metrics();
    let logger = || connection_logger(&hub, &room, user);
    let connection = Uuid::new_v4();
    let closer = Closer::default();
    if !hub.track(connection, closer.clone()) {
        closer.close(Disconnect::Shutdown);
    }
    metrics.connections.inc();
    metrics.connections_total.inc();
    slog::debug!(logger(), "connected"; "connection" => %connection);

    let joined = match Box::pin(hub.join(&room, connection, &outbound, &closer)).await {
        Ok(()) => true,
        Err(error) => {
            slog::error!(logger(), "joining the room failed"; "error" => %error);
            closer.close(Disconnect::Unavailable);
            false
        }
    };
    let preamble = match Box::pin(history.recent(&room, settings.history_len)).await {
        Ok(messages) => Preamble {
            frame: ServerEvent::History {
                messages: &messages,
            }
            .to_json(),
            ids: messages
                .iter()
                .filter_map(|message| Uuid::try_parse(&message.id).ok())
                .collect(),
        },
        Err(error) => {
            slog::error!(logger(), "reading the history failed"; "error" => %error);
            let _ = send_error(
                &outbound,
                &hub,
                ErrorCode::Unavailable,
                "the history could not be read",
            );
            Preamble {
                frame: ServerEvent::History { messages: &[] }.to_json(),
                ids: HashSet::new(),
            }
        }
    };
    // Announced before the history goes out: a client that has its history knows the others
    // have been told (with Redis too), so whoever joins after it sees no stale userJoined.
    if joined {
        let frame = ServerEvent::UserJoined {
            user,
            user_id,
            room: &room,
            message: format!("{user} joined {room}"),
        }
        .to_json();
        if let Err(error) = Box::pin(hub.publish(&room, Some(connection), None, &frame)).await {
            slog::warn!(logger(), "userJoined not published"; "error" => %error);
        }
    }
    let _ = preamble_tx.send(preamble);

    let mut client = Client {
        hub: &hub,
        history: &history,
        outbound: &outbound,
        room: &room,
        user,
        user_id,
        seat: &admission.seat,
        limiter: settings.limits.connection.direct_limiter(),
    };
    let reason = client.read_frames(&mut stream, &closer).await;
    closer.close(reason);
    let reason = closer.reason().unwrap_or(reason);
    metrics
        .disconnects
        .with_label_values(&[reason.label()])
        .inc();
    slog::debug!(logger(), "disconnecting"; "connection" => %connection, "reason" => reason.label());

    if joined {
        Box::pin(hub.leave(&room, connection)).await;
        let frame = ServerEvent::UserLeft {
            user,
            user_id,
            room: &room,
            message: format!("{user} left {room}"),
        }
        .to_json();
        if let Err(error) = Box::pin(hub.publish(&room, Some(connection), None, &frame)).await {
            slog::warn!(logger(), "userLeft not published"; "error" => %error);
        }
    }
    drop(client);
    drop(outbound);
    // The close frame goes through actix-ws, whose body the response body ends with. Its
    // channel carries nothing else, so this does not wait on the client.
    let _ = session.close(Some(reason.close_reason())).await;
    // What was never written goes now, not when the body ends: a client that stopped reading
    // keeps its connection (and body) until TCP gives up, but not its backlog.
    backlog.drain().for_each(drop);
    hub.untrack(connection);
    metrics.connections.dec();
    // The address's slot and the name go back last: a client that reconnects at once finds
    // its old connection gone from the room.
    drop(admission);
}

/// The service's logger with the connection's room and user, built when something is logged.
fn connection_logger(hub: &Hub, room: &str, user: &str) -> slog::Logger {
    hub.logger()
        .new(slog::o!("room" => room.to_owned(), "user" => user.to_owned()))
}

/// Queues an `error` event; a full queue makes the client a slow consumer.
fn send_error(
    outbound: &OutboundQueue,
    hub: &Hub,
    code: ErrorCode,
    message: &str,
) -> Result<(), Disconnect> {
    let label = serde_json::to_value(code)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    hub.metrics()
        .client_errors
        .with_label_values(&[label.as_str()])
        .inc();
    let frame = ServerEvent::Error {
        code,
        message: message.to_owned(),
    }
    .to_json();
    outbound.push(Outbound::event(frame))
}

/// The reading side of one connection.
struct Client<'a> {
    hub: &'a Hub,
    history: &'a History,
    outbound: &'a OutboundQueue,
    room: &'a str,
    user: &'a str,
    /// The sender's account id, carried by its messages; `None` for a guest.
    user_id: Option<i64>,
    /// Its address's slot, which names the address whose budget its messages spend.
    seat: &'a Seat,
    /// Its own message budget.
    limiter: DefaultDirectRateLimiter,
}

impl Client<'_> {
    /// Reads frames and keeps the heartbeat until the connection must end; returns why.
    async fn read_frames(
        &mut self,
        stream: &mut AggregatedMessageStream,
        closer: &Closer,
    ) -> Disconnect {
        let settings = self.hub.settings();
        let mut last_seen = Instant::now();
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + settings.ping_interval,
            settings.ping_interval,
        );
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                reason = closer.closed() => return reason,
                _ = heartbeat.tick() => {
                    if last_seen.elapsed() >= settings.pong_timeout {
                        return Disconnect::Heartbeat;
                    }
                    if let Err(reason) = self.outbound.push(Outbound::Ping) {
                        return reason;
                    }
                }
                frame = stream.recv() => {
                    let message = match frame {
                        None => return Disconnect::ClientGone,
                        Some(Err(error)) => return protocol_disconnect(&error),
                        Some(Ok(message)) => message,
                    };
                    last_seen = Instant::now();
                    if let Err(reason) = self.handle(message).await {
                        return reason;
                    }
                }
            }
        }
    }

    async fn handle(&mut self, message: AggregatedMessage) -> Result<(), Disconnect> {
        match message {
            AggregatedMessage::Text(text) => {
                if let Err(refusal) = self.within_budgets() {
                    return refusal;
                }
                let max_chars = self.hub.settings().max_text_chars;
                match parse_client_event(&text, max_chars) {
                    Ok(ClientEvent::ChatMessage { text }) => {
                        Box::pin(self.chat_message(text)).await
                    }
                    Err(refusal) => self.refuse(refusal.code, &refusal.message),
                }
            }
            AggregatedMessage::Binary(_) => {
                if let Err(refusal) = self.within_budgets() {
                    return refusal;
                }
                self.refuse(
                    ErrorCode::InvalidJson,
                    "binary frames are not supported: send JSON text",
                )
            }
            AggregatedMessage::Ping(payload) => {
                self.outbound.push(Outbound::Pong(Box::new(payload)))
            }
            AggregatedMessage::Pong(_) => Ok(()),
            AggregatedMessage::Close(_) => Err(Disconnect::ClientClosed),
        }
    }

    /// `Ok` when one more frame fits the connection's, account's and address's budgets;
    /// otherwise what refusing it gives (a `rate_limited` error queued, the frame dropped).
    fn within_budgets(&self) -> Result<(), Result<(), Disconnect>> {
        let limits = self.hub.limits();
        limits
            .check_message(&self.limiter, self.user_id, self.seat)
            .map_err(|(scope, message)| {
                self.hub
                    .metrics()
                    .rate_limited
                    .with_label_values(&[scope.label()])
                    .inc();
                self.refuse(ErrorCode::RateLimited, &message)
            })
    }

    fn refuse(&self, code: ErrorCode, message: &str) -> Result<(), Disconnect> {
        send_error(self.outbound, self.hub, code, message)
    }

    /// Stores the message, then publishes it to the room (the sender included).
    async fn chat_message(&self, text: String) -> Result<(), Disconnect> {
        let id = Uuid::new_v4();
        let message = ChatMessage {
            id: id.to_string(),
            room: self.room.to_owned(),
            user: self.user.to_owned(),
            user_id: self.user_id,
            text,
            timestamp: shared::db::timestamp_now(),
        };
        if let Err(error) = self.history.store(&message).await {
            slog::error!(connection_logger(self.hub, self.room, self.user), "storing a message failed"; "error" => %error);
            return self.refuse(ErrorCode::Unavailable, "the message could not be stored");
        }
        let frame = ServerEvent::ChatMessage(&message).to_json();
        if let Err(error) = self.hub.publish(self.room, None, Some(id), &frame).await {
            slog::error!(connection_logger(self.hub, self.room, self.user), "publishing a message failed"; "error" => %error);
            return self.refuse(
                ErrorCode::Unavailable,
                "the message was stored but could not be delivered",
            );
        }
        self.hub.metrics().messages.inc();
        Ok(())
    }
}

/// How a read error ends the connection.
fn protocol_disconnect(error: &ProtocolError) -> Disconnect {
    match error {
        ProtocolError::Overflow => Disconnect::FrameTooLarge,
        // actix-ws reports a fragmented message over the limit this way.
        ProtocolError::Io(io) if io.to_string().contains("maximum continuation size") => {
            Disconnect::FrameTooLarge
        }
        ProtocolError::Io(_) => Disconnect::ClientGone,
        _ => Disconnect::Protocol,
    }
}
