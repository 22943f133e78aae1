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
//! future each idle connection keeps stays small (memory per idle connection: docs/benchmarks.md, "What the chat-service measurements showed").

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
    protocol::{ChatMessage, ClientEvent, ErrorCode, Refusal, ServerEvent, parse_client_event},
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
    let welcome = welcome_event(&room, admission.name.name(), admission.user_id);
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

    // The history is turned into its frame and dropped here: an idle connection does not
    // keep it (memory per idle connection).
    let (joined, preamble) = {
        let entered = Box::pin(enter_room(
            &hub,
            &history,
            (&room, connection),
            (&outbound, &closer),
            (user, user_id),
        ))
        .await;
        let preamble = Preamble {
            frame: ServerEvent::History {
                messages: &entered.messages,
            }
            .to_json(),
            ids: message_ids(&entered.messages),
        };
        (entered.joined, preamble)
    };
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
        Box::pin(leave_room(&hub, (&room, connection), (user, user_id))).await;
    }
    drop(client);
    drop(outbound);
    // The close frame goes through actix-ws, whose body the response body ends with. Its
    // channel carries nothing else, so this does not wait on the client.
    let _ = session.close(Some(reason.close_reason())).await;
    // What was never written is dropped here, not when the body ends: a client that stopped reading
    // keeps its connection (and body) until TCP gives up, but not its backlog.
    backlog.drain().for_each(drop);
    hub.untrack(connection);
    metrics.connections.dec();
    // The address's slot and the name go back last: a client that reconnects at once finds
    // its old connection gone from the room.
    drop(admission);
}

/// The `welcome` event of a client that connected, for every protocol.
pub fn welcome_event(room: &str, user: &str, user_id: Option<i64>) -> String {
    ServerEvent::Welcome {
        message: format!("Welcome to the chat, {user}! You are in room {room}."),
        room,
        user,
        user_id,
    }
    .to_json()
}

/// A client's entry into a room: whether it joined, and the room's recent messages.
pub struct Entered {
    /// Whether the room was joined (pub/sub up); if not, the connection is being closed.
    pub joined: bool,
    /// The room's recent messages, oldest first (none if they could not be read: the client
    /// was sent an `unavailable` error).
    pub messages: Vec<ChatMessage>,
}

/// Puts a client in a room, for every protocol: joins it (its events reach `outbound` from
/// now on; `closer` ends the client if pub/sub is down), reads its history, and announces the
/// client to the others (`userJoined`, before the history goes out: a client that has its
/// history knows the others have been told, with Redis too).
pub async fn enter_room(
    hub: &Hub,
    history: &History,
    (room, connection): (&str, Uuid),
    (outbound, closer): (&OutboundQueue, &Closer),
    (user, user_id): (&str, Option<i64>),
) -> Entered {
    let logger = || connection_logger(hub, room, user);
    let joined = match Box::pin(hub.join(room, connection, outbound, closer)).await {
        Ok(()) => true,
        Err(error) => {
            slog::error!(logger(), "joining the room failed"; "error" => %error);
            closer.close(Disconnect::Unavailable);
            false
        }
    };
    let messages = match Box::pin(history.recent(room, hub.settings().history_len)).await {
        Ok(messages) => messages,
        Err(error) => {
            slog::error!(logger(), "reading the history failed"; "error" => %error);
            let _ = send_error(
                outbound,
                hub,
                ErrorCode::Unavailable,
                "the history could not be read",
            );
            Vec::new()
        }
    };
    if joined {
        let frame = ServerEvent::UserJoined {
            user,
            user_id,
            room,
            message: format!("{user} joined {room}"),
        }
        .to_json();
        if let Err(error) = Box::pin(hub.publish(room, Some(connection), None, &frame)).await {
            slog::warn!(logger(), "userJoined not published"; "error" => %error);
        }
    }
    Entered { joined, messages }
}

/// Takes a client out of a room it joined, for every protocol, and tells the others
/// (`userLeft`).
pub async fn leave_room(
    hub: &Hub,
    (room, connection): (&str, Uuid),
    (user, user_id): (&str, Option<i64>),
) {
    Box::pin(hub.leave(room, connection)).await;
    let frame = ServerEvent::UserLeft {
        user,
        user_id,
        room,
        message: format!("{user} left {room}"),
    }
    .to_json();
    if let Err(error) = Box::pin(hub.publish(room, Some(connection), None, &frame)).await {
        slog::warn!(connection_logger(hub, room, user), "userLeft not published"; "error" => %error);
    }
}

/// The ids of `messages` (to skip the same messages arriving live).
pub fn message_ids(messages: &[ChatMessage]) -> HashSet<Uuid> {
    messages
        .iter()
        .filter_map(|message| Uuid::try_parse(&message.id).ok())
        .collect()
}

/// Whether one more message of a client fits its connection's (`limiter`), account's and
/// address's budgets, for every protocol; the refusal (`rate_limited`, counted) otherwise.
pub fn spend_budget(
    hub: &Hub,
    limiter: &DefaultDirectRateLimiter,
    user_id: Option<i64>,
    seat: &Seat,
) -> Result<(), Refusal> {
    hub.limits()
        .check_message(limiter, user_id, seat)
        .map_err(|(scope, message)| {
            hub.metrics()
                .rate_limited
                .with_label_values(&[scope.label()])
                .inc();
            Refusal::new(ErrorCode::RateLimited, message)
        })
}

/// Stores a checked chat message, then publishes it to the room (the sender included), for
/// every protocol; the stored message, or why it failed (`unavailable`).
pub async fn post_message(
    hub: &Hub,
    history: &History,
    room: &str,
    (user, user_id): (&str, Option<i64>),
    text: String,
) -> Result<ChatMessage, Refusal> {
    let id = Uuid::new_v4();
    let message = ChatMessage {
        id: id.to_string(),
        room: room.to_owned(),
        user: user.to_owned(),
        user_id,
        text,
        timestamp: db::timestamp_now(),
    };
    if let Err(error) = history.store(&message).await {
        slog::error!(connection_logger(hub, room, user), "storing a message failed"; "error" => %error);
        return Err(Refusal::new(
            ErrorCode::Unavailable,
            "the message could not be stored",
        ));
    }
    let frame = ServerEvent::ChatMessage(&message).to_json();
    if let Err(error) = hub.publish(room, None, Some(id), &frame).await {
        slog::error!(connection_logger(hub, room, user), "publishing a message failed"; "error" => %error);
        return Err(Refusal::new(
            ErrorCode::Unavailable,
            "the message was stored but could not be delivered",
        ));
    }
    hub.metrics().messages.inc();
    Ok(message)
}

/// Counts a refusal sent to a client (`chat_client_errors_total`).
pub fn count_client_error(hub: &Hub, code: ErrorCode) {
    let label = serde_json::to_value(code)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    hub.metrics()
        .client_errors
        .with_label_values(&[label.as_str()])
        .inc();
}

/// The service's logger with the connection's room and user, built when something is logged.
fn connection_logger(hub: &Hub, room: &str, user: &str) -> slog::Logger {
    hub.logger()
        .new(slog::o!("room" => room.to_owned(), "user" => user.to_owned()))
}

/// Queues an `error` event; a full queue makes the client a slow consumer.
pub fn send_error(
    outbound: &OutboundQueue,
    hub: &Hub,
    code: ErrorCode,
    message: &str,
) -> Result<(), Disconnect> {
    count_client_error(hub, code);
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
        spend_budget(self.hub, &self.limiter, self.user_id, self.seat)
            .map_err(|refusal| self.refuse(refusal.code, &refusal.message))
    }

    fn refuse(&self, code: ErrorCode, message: &str) -> Result<(), Disconnect> {
        send_error(self.outbound, self.hub, code, message)
    }

    /// Stores the message, then publishes it to the room (the sender included).
    async fn chat_message(&self, text: String) -> Result<(), Disconnect> {
        match post_message(
            self.hub,
            self.history,
            self.room,
            (self.user, self.user_id),
            text,
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(refusal) => self.refuse(refusal.code, &refusal.message),
        }
    }
}

/// How a read error ends the connection (both protocols' WebSockets).
pub fn protocol_disconnect(error: &ProtocolError) -> Disconnect {
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
