//! One Socket.IO client, over its Engine.IO session: the heartbeat (a `ping` every
//! `pingInterval`; no `pong` within `pingTimeout` ends it), the main namespace's `CONNECT`
//! (its `auth` payload's `{token, room}`, the same rules as `/chat/ws`; another namespace gets
//! `CONNECT_ERROR` "Invalid namespace"), and the chat's events: `chatMessage` and `join`, each
//! with an optional ack. The room, its history, names, budgets and fan-out are the native
//! protocol's ([`crate::connection`], [`crate::hub`]): a Socket.IO client and a `/chat/ws`
//! client in one room are members of one hub room.

use std::sync::Arc;

use governor::DefaultDirectRateLimiter;
use serde_json::{Value, json};
use server::ApiError;
use tokio::{sync::oneshot, time::Instant};
use uuid::Uuid;

use crate::{
    access,
    closing::Disconnect,
    connection::{
        count_client_error, enter_room, leave_room, message_ids, post_message, send_error,
        spend_budget, welcome_event,
    },
    frames::{Batch, Outbound},
    history::History,
    hub::Hub,
    limits::Seat,
    names::{Holder, NameClaim},
    protocol::{ErrorCode, Refusal, ServerEvent, check_room, check_text},
    socketio::{
        engine_packet::{self, Packet},
        events::from_native,
        session::{EngineSession, Sessions},
        socket_packet::{self, Kind, MAIN_NAMESPACE},
    },
};

/// What a session's socket starts with.
pub struct SocketStart {
    /// The one hub.
    pub hub: Hub,
    /// The messages.
    pub history: History,
    /// The open sessions, to leave when it ends.
    pub sessions: Sessions,
    /// Its session.
    pub session: Arc<EngineSession>,
    /// The packets its transports read.
    pub incoming: flume::Receiver<Packet>,
    /// The queue's plain receiver: what was never sent is dropped when it ends.
    pub backlog: flume::Receiver<Outbound>,
    /// Its address's connection slot.
    pub seat: Seat,
    /// Checks tokens (the handshake's request is gone when `CONNECT` comes).
    pub verifier: Option<Arc<auth::Verifier>>,
    /// A token the handshake presented (header or `access_token`), for a `CONNECT` without one.
    pub handshake_authorization: Option<Vec<u8>>,
}

/// Where a connected socket chats.
struct Place {
    room: String,
    name: NameClaim,
}

/// Why a room is entered.
enum Entry {
    /// The namespace `CONNECT`: the answer and `welcome` go first.
    Connect,
    /// A `join` event, with its ack id.
    Join(Option<u64>),
}

/// Serves one session's socket until the session ends, then leaves its room.
pub async fn run(start: SocketStart) {
    let SocketStart {
        hub,
        history,
        sessions,
        session,
        incoming,
        backlog,
        seat,
        verifier,
        handshake_authorization,
    } = start;
    let connection = Uuid::new_v4();
    let closer = session.closer.clone();
    if !hub.track(connection, closer.clone()) {
        closer.close(Disconnect::Shutdown);
    }
    let metrics = hub.metrics();
    metrics.connections.inc();
    metrics.connections_total.inc();
    let mut socket = Socket {
        hub: &hub,
        history: &history,
        session: &session,
        connection,
        seat: &seat,
        verifier,
        handshake_authorization,
        limiter: hub.settings().limits.connection.direct_limiter(),
        user_id: None,
        wanted_name: None,
        place: None,
        skip_attachments: 0,
    };
    let reason = socket.serve(&incoming).await;
    closer.close(reason);
    let reason = closer.reason().unwrap_or(reason);
    metrics
        .disconnects
        .with_label_values(&[reason.label()])
        .inc();
    Box::pin(socket.leave()).await;
    drop(socket);
    sessions.remove(&session.sid);
    backlog.drain().for_each(drop);
    hub.untrack(connection);
    metrics.connections.dec();
    drop(seat);
}

/// A socket's state.
struct Socket<'a> {
    hub: &'a Hub,
    history: &'a History,
    session: &'a EngineSession,
    /// Its id as a member of hub rooms.
    connection: Uuid,
    seat: &'a Seat,
    verifier: Option<Arc<auth::Verifier>>,
    handshake_authorization: Option<Vec<u8>>,
    /// Its own message budget.
    limiter: DefaultDirectRateLimiter,
    /// Its account; `None` for a guest.
    user_id: Option<i64>,
    /// The name it chats under where that is free; `None` until it connected.
    wanted_name: Option<String>,
    /// Its room, once connected.
    place: Option<Place>,
    /// Binary attachments of a refused packet still to come, dropped as they arrive.
    skip_attachments: usize,
}

impl Socket<'_> {
    /// Reads packets and keeps the heartbeat until the session must end; why it ends.
    async fn serve(&mut self, incoming: &flume::Receiver<Packet>) -> Disconnect {
        let settings = self.hub.settings();
        let closer = self.session.closer.clone();
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + settings.ping_interval,
            settings.ping_interval,
        );
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pong_due: Option<Instant> = None;
        // A session that never connects the namespace is ended as one that stopped answering.
        let connect_due = Instant::now() + settings.ping_interval + settings.pong_timeout;
        loop {
            let due = pong_due.or(self.wanted_name.is_none().then_some(connect_due));
            tokio::select! {
                reason = closer.closed() => return reason,
                _ = heartbeat.tick() => {
                    if let Err(reason) = self.session.outbound.push(Outbound::Ping) {
                        return reason;
                    }
                    pong_due.get_or_insert(Instant::now() + settings.pong_timeout);
                }
                () = tokio::time::sleep_until(due.unwrap_or(connect_due)), if due.is_some() => {
                    return Disconnect::Heartbeat;
                }
                packet = incoming.recv_async() => {
                    let Ok(packet) = packet else { return Disconnect::ClientGone };
                    let handled = match packet {
                        Packet::Pong(_) => {
                            pong_due = None;
                            Ok(())
                        }
                        other => Box::pin(self.handle(other)).await,
                    };
                    if let Err(reason) = handled {
                        return reason;
                    }
                }
            }
        }
    }

    /// One Engine.IO packet other than `pong`. Every packet but the heartbeat's and the
    /// session's end spends the message budgets, as every `/chat/ws` frame does: `upgrade`
    /// and `noop` spend without being refused (the transport needs them, and they do nothing
    /// else), a binary attachment of a refused packet is dropped without an answer.
    async fn handle(&mut self, packet: Packet) -> Result<(), Disconnect> {
        match packet {
            Packet::Close => Err(Disconnect::ClientClosed),
            Packet::Ping(_) | Packet::Pong(_) => Ok(()),
            Packet::Upgrade | Packet::Noop => {
                // Spent, never refused: not counted in `chat_rate_limited_total` either.
                let _ = self
                    .hub
                    .limits()
                    .check_message(&self.limiter, self.user_id, self.seat);
                Ok(())
            }
            Packet::Binary(_) => {
                let within = self.spend();
                if self.skip_attachments > 0 {
                    self.skip_attachments -= 1;
                    return Ok(());
                }
                self.refuse(None, &within.err().unwrap_or_else(binary_refusal))
            }
            Packet::Message(text) => self.message(&text).await,
        }
    }

    /// One unit of the connection's, account's and address's budgets (the native rule).
    fn spend(&self) -> Result<(), Refusal> {
        spend_budget(self.hub, &self.limiter, self.user_id, self.seat)
    }

    /// One Socket.IO packet: what ends the session does so, anything else spends the budgets
    /// first (a refused `CONNECT` gets `CONNECT_ERROR` `rate_limited`, an event its ack, any
    /// other packet an `error` event).
    async fn message(&mut self, text: &str) -> Result<(), Disconnect> {
        // The specification: a packet that does not parse ends the connection.
        let packet = socket_packet::decode(text).map_err(|_| Disconnect::Protocol)?;
        let main = packet.namespace == MAIN_NAMESPACE;
        let connected = self.wanted_name.is_some();
        match packet.kind {
            // The specification: anything before `CONNECT` ends the connection.
            kind if main && !connected && kind != Kind::Connect => {
                return Err(Disconnect::Protocol);
            }
            Kind::ConnectError if main => return Err(Disconnect::Protocol),
            Kind::Disconnect if main => return Err(Disconnect::ClientClosed),
            _ => {}
        }
        if let Err(refusal) = self.spend() {
            return match packet.kind {
                Kind::Connect => self.send(socket_packet::connect_error(
                    &packet.namespace,
                    &refusal.message,
                    Some(json!({ "code": refusal.code })),
                )),
                Kind::Event | Kind::BinaryEvent => {
                    self.skip_attachments = packet.attachments;
                    self.refuse(packet.ack, &refusal)
                }
                _ => {
                    self.skip_attachments = packet.attachments;
                    self.refuse(None, &refusal)
                }
            };
        }
        if !main {
            if packet.kind == Kind::Connect {
                let refused =
                    socket_packet::connect_error(&packet.namespace, "Invalid namespace", None);
                return self.send(refused);
            }
            return Ok(());
        }
        match packet.kind {
            Kind::Connect if connected => Ok(()),
            Kind::Connect => self.connect(packet.data).await,
            Kind::Event => self.event(packet.ack, packet.data).await,
            Kind::BinaryEvent => {
                self.skip_attachments = packet.attachments;
                self.refuse(packet.ack, &binary_refusal())
            }
            Kind::BinaryAck => {
                self.skip_attachments = packet.attachments;
                Ok(())
            }
            Kind::Ack | Kind::Disconnect | Kind::ConnectError => Ok(()),
        }
    }

    /// `CONNECT` to the main namespace: who the client is (its `auth` token), its room, then
    /// the answer, `welcome` and the history; `CONNECT_ERROR` for a token or room refused.
    async fn connect(&mut self, auth: Option<Value>) -> Result<(), Disconnect> {
        let auth = auth.unwrap_or(Value::Null);
        let authorization = match auth.get("token") {
            Some(Value::String(token)) => Some(format!("Bearer {token}").into_bytes()),
            _ => self.handshake_authorization.clone(),
        };
        let settings = self.hub.settings();
        let identity = match Box::pin(access::identify_with(
            self.verifier.clone(),
            authorization,
            settings.guests,
        ))
        .await
        {
            Ok(identity) => identity,
            Err(error) => {
                // The code a `/chat/ws` handshake's 401 gives in `WWW-Authenticate`.
                let code = match error {
                    ApiError::Unauthorized {
                        invalid_token: true,
                        ..
                    } => "invalid_token",
                    _ => error.code(),
                };
                let refused = socket_packet::connect_error(
                    MAIN_NAMESPACE,
                    &error.to_string(),
                    Some(json!({ "code": code })),
                );
                return self.send(refused);
            }
        };
        let room = match check_room(auth.get("room").and_then(Value::as_str)) {
            Ok(room) => room,
            Err(message) => {
                let refused = socket_packet::connect_error(
                    MAIN_NAMESPACE,
                    &message,
                    Some(json!({ "code": "bad_request" })),
                );
                return self.send(refused);
            }
        };
        self.user_id = identity.user_id;
        self.wanted_name = Some(identity.name);
        Box::pin(self.enter(room, Entry::Connect)).await
    }

    /// Takes a name in `room`, joins it, and queues what the client gets first (the connect
    /// answer and `welcome`, or the `join` ack; the history) before the room's live events.
    async fn enter(&mut self, room: String, entry: Entry) -> Result<(), Disconnect> {
        let holder = self
            .user_id
            .map_or(Holder::Guest(self.connection), Holder::Account);
        let wanted = self.wanted_name.as_deref().unwrap_or_default();
        let name = self
            .hub
            .names()
            .claim(&room, holder, wanted, access::guest_name)
            .await;
        let (fill, batch) = oneshot::channel();
        self.session.outbound.push(Outbound::Batch(batch))?;
        let entered = enter_room(
            self.hub,
            self.history,
            (&room, self.connection),
            (&self.session.outbound, &self.session.closer),
            (name.name(), self.user_id),
        )
        .await;
        let mut packets = Vec::with_capacity(4);
        match entry {
            Entry::Connect => {
                let sid = Uuid::new_v4().simple().to_string();
                packets.push(engine_packet::message(&socket_packet::connect(&sid)));
                let welcome = welcome_event(&room, name.name(), self.user_id);
                packets.push(from_native(welcome.as_bytes()));
            }
            Entry::Join(_) => {}
        }
        let history = ServerEvent::History {
            messages: &entered.messages,
        };
        packets.push(from_native(history.to_json().as_bytes()));
        if let Entry::Join(Some(id)) = entry {
            let answer = json!({ "ok": true, "room": room, "user": name.name() });
            packets.push(engine_packet::message(&socket_packet::ack(id, &answer)));
        }
        let _ = fill.send(Batch {
            packets,
            ids: message_ids(&entered.messages),
        });
        if entered.joined {
            self.place = Some(Place { room, name });
        }
        Ok(())
    }

    /// Leaves its room, if it is in one (`userLeft` to the others).
    async fn leave(&mut self) {
        if let Some(place) = self.place.take() {
            leave_room(
                self.hub,
                (&place.room, self.connection),
                (place.name.name(), self.user_id),
            )
            .await;
        }
    }

    /// An `EVENT`: `["chatMessage", {text}|text]` or `["join", room|{room}]`.
    async fn event(&mut self, ack: Option<u64>, data: Option<Value>) -> Result<(), Disconnect> {
        // The specification: an event's payload is a non-empty array with its name first.
        let Some(Value::Array(arguments)) = data else {
            return Err(Disconnect::Protocol);
        };
        let Some(name) = arguments.first().and_then(Value::as_str) else {
            return Err(Disconnect::Protocol);
        };
        let argument = arguments.get(1);
        match name {
            "chatMessage" => Box::pin(self.chat_message(ack, argument)).await,
            "join" => Box::pin(self.join(ack, argument)).await,
            other => {
                let shown: String = other.chars().take(40).collect();
                let refusal = Refusal::new(
                    ErrorCode::UnknownType,
                    format!("unknown event {shown:?} (expected chatMessage or join)"),
                );
                self.refuse(ack, &refusal)
            }
        }
    }

    /// Stores and publishes a message (the sender gets it too); its ack carries it.
    async fn chat_message(
        &mut self,
        ack: Option<u64>,
        argument: Option<&Value>,
    ) -> Result<(), Disconnect> {
        let Some(place) = self.place.as_ref() else {
            let refusal = Refusal::new(ErrorCode::Unavailable, "not in a room");
            return self.refuse(ack, &refusal);
        };
        let max_chars = self.hub.settings().max_text_chars;
        let text = match argument {
            Some(text @ Value::String(_)) => check_text(Some(text), max_chars),
            Some(object) => check_text(object.get("text"), max_chars),
            None => check_text(None, max_chars),
        };
        let posted = match text {
            Ok(text) => {
                post_message(
                    self.hub,
                    self.history,
                    &place.room,
                    (place.name.name(), self.user_id),
                    text,
                )
                .await
            }
            Err(refusal) => Err(refusal),
        };
        match (posted, ack) {
            (Ok(message), Some(id)) => {
                let answer = json!({ "ok": true, "message": message });
                self.send(socket_packet::ack(id, &answer))
            }
            (Ok(_), None) => Ok(()),
            (Err(refusal), ack) => self.refuse(ack, &refusal),
        }
    }

    /// Moves to another room (`userLeft` there, `userJoined` here, its history, the ack).
    async fn join(&mut self, ack: Option<u64>, argument: Option<&Value>) -> Result<(), Disconnect> {
        let wanted = match argument {
            Some(Value::String(room)) => Some(room.as_str()),
            Some(object) => object.get("room").and_then(Value::as_str),
            None => None,
        };
        let room = match check_room(wanted) {
            Ok(room) => room,
            Err(message) => {
                return self.refuse(ack, &Refusal::new(ErrorCode::ValidationFailed, message));
            }
        };
        if let Some(place) = self.place.as_ref().filter(|place| place.room == room) {
            let Some(id) = ack else { return Ok(()) };
            let answer = json!({ "ok": true, "room": room, "user": place.name.name() });
            return self.send(socket_packet::ack(id, &answer));
        }
        self.leave().await;
        self.enter(room, Entry::Join(ack)).await
    }

    /// Queues a Socket.IO packet.
    fn send(&self, packet: String) -> Result<(), Disconnect> {
        let packet = engine_packet::message(&packet);
        self.session
            .outbound
            .push(Outbound::Packet(Box::new(packet)))
    }

    /// Refuses what the client sent: in the ack it asked for, else as an `error` event.
    fn refuse(&self, ack: Option<u64>, refusal: &Refusal) -> Result<(), Disconnect> {
        match ack {
            Some(id) => {
                count_client_error(self.hub, refusal.code);
                let answer = json!({
                    "ok": false,
                    "error": { "code": refusal.code, "message": refusal.message },
                });
                self.send(socket_packet::ack(id, &answer))
            }
            None => send_error(
                &self.session.outbound,
                self.hub,
                refusal.code,
                &refusal.message,
            ),
        }
    }
}

/// Binary data is refused: the chat carries text.
fn binary_refusal() -> Refusal {
    Refusal::new(
        ErrorCode::InvalidJson,
        "binary attachments are not supported: send JSON",
    )
}
