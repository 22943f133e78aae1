//! The rooms of one instance, joined to the other instances through [`shared::pubsub`].
//!
//! Every room event (`chatMessage`, `userJoined`, `userLeft`) is published on the room's
//! channel, `<prefix>:room:<room>`, and reaches the clients through it, on this instance as on
//! the others: an instance subscribes to a room's channel while it has clients in that room,
//! and one task per room fans each event out to their bounded outbound queues. A queue that is
//! full marks its client a slow consumer, which is disconnected (close 1013) instead of slowing
//! the room or growing memory.
//!
//! Presence (the online counts of `GET /chat/rooms`) travels on `<prefix>:presence`: each
//! instance publishes its rooms' counts when they change and every presence interval, answers
//! a newcomer's query at once, says goodbye when it stops, and forgets an instance it has not
//! heard from for three intervals (one that crashed).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use actix_ws::{CloseCode, CloseReason};
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use shared::pubsub::{PubSub, PubSubError, Subscription};
use slog::Logger;
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

use crate::{ChatSettings, metrics::ChatMetrics};

/// A JSON event on its way to clients: one allocation shared by every queue it is in.
#[derive(Debug)]
pub struct Event {
    /// The text frame.
    pub frame: ByteString,
    /// The chat message's id, if it is one (to skip one already sent in the history).
    pub message_id: Option<ByteString>,
}

/// A frame waiting in a client's outbound queue. Two words: the queue's storage (its first
/// block is allocated with the queue, and kept) is a large share of an idle connection's
/// memory, and the fan-out copies one of these per client.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A JSON event.
    Event(Arc<Event>),
    /// A heartbeat ping.
    Ping,
    /// The answer to a client's ping (boxed: rare, and it would double the size).
    Pong(Box<Bytes>),
}

impl Outbound {
    /// A JSON event that is not a chat message.
    pub fn event(frame: String) -> Self {
        Self::Event(Arc::new(Event {
            frame: frame.into(),
            message_id: None,
        }))
    }
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The client sent a close frame (answered with 1000).
    ClientClosed,
    /// The connection dropped without a close frame.
    ClientGone,
    /// No pong (or anything else) within the pong timeout (closed with 1008).
    Heartbeat,
    /// The outbound queue overflowed (closed with 1013).
    SlowConsumer,
    /// A frame or message over the size limit (closed with 1009).
    FrameTooLarge,
    /// A WebSocket protocol violation (closed with 1002).
    Protocol,
    /// The room could not be joined: pub/sub is down (closed with 1011).
    Unavailable,
    /// The server is shutting down (closed with 1001).
    Shutdown,
}

impl Disconnect {
    /// The close frame sent for it.
    pub fn close_reason(self) -> CloseReason {
        let (code, description) = match self {
            Self::ClientClosed | Self::ClientGone => (CloseCode::Normal, "bye"),
            Self::Heartbeat => (CloseCode::Policy, "no pong within the heartbeat timeout"),
            Self::SlowConsumer => (CloseCode::Again, "too slow: outbound queue full"),
            Self::FrameTooLarge => (CloseCode::Size, "frame over 64 KiB"),
            Self::Protocol => (CloseCode::Protocol, "protocol error"),
            Self::Unavailable => (CloseCode::Error, "chat unavailable, try again"),
            Self::Shutdown => (CloseCode::Away, "server shutting down"),
        };
        CloseReason {
            code,
            description: Some(description.to_owned()),
        }
    }

    /// The `reason` label of `chat_disconnects_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::ClientClosed | Self::ClientGone => "client",
            Self::Heartbeat => "heartbeat",
            Self::SlowConsumer => "slow_consumer",
            Self::FrameTooLarge => "frame_too_large",
            Self::Protocol => "protocol",
            Self::Unavailable => "unavailable",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Ends a connection: the first reason given wins; both of the connection's tasks watch it.
#[derive(Clone, Debug)]
pub struct Closer(Arc<watch::Sender<Option<Disconnect>>>);

impl Default for Closer {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(None)))
    }
}

impl Closer {
    /// Asks the connection to close for `reason` (ignored if it is already closing).
    pub fn close(&self, reason: Disconnect) {
        self.0.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// The reason, once there is one.
    pub fn reason(&self) -> Option<Disconnect> {
        *self.0.borrow()
    }

    /// A receiver that sees the reason arrive.
    pub fn watch(&self) -> watch::Receiver<Option<Disconnect>> {
        self.0.subscribe()
    }
}

/// A client in a room, as the fan-out sees it.
#[derive(Debug)]
pub struct Member {
    /// Its bounded outbound queue.
    pub outbound: mpsc::Sender<Outbound>,
    /// Closes it when the queue is full.
    pub closer: Closer,
}

type Members = Arc<Mutex<HashMap<Uuid, Member>>>;

/// A room with clients on this instance.
struct LocalRoom {
    members: Members,
    /// Fans the room channel out to the members; aborted (unsubscribing) when the last leaves.
    fan_out: tokio::task::JoinHandle<()>,
}

/// What another instance last said about its rooms.
struct RemoteInstance {
    rooms: HashMap<String, usize>,
    seen: Instant,
}

#[derive(Serialize, Deserialize)]
struct PresenceMessage {
    instance: String,
    #[serde(flatten)]
    kind: PresenceKind,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PresenceKind {
    /// The sender's online count per room.
    Snapshot { rooms: HashMap<String, usize> },
    /// A new instance asks everyone for a snapshot.
    Query,
    /// The sender is stopping.
    Gone,
}

/// The rooms of this instance; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    pubsub: PubSub,
    settings: ChatSettings,
    /// This instance, in presence messages.
    instance: String,
    /// The local rooms; join and leave take this lock, the fan-out does not.
    rooms: tokio::sync::Mutex<HashMap<String, LocalRoom>>,
    /// The local online count per room.
    counts: Mutex<HashMap<String, usize>>,
    /// The other instances' counts.
    remote: Mutex<HashMap<String, RemoteInstance>>,
    /// Every open connection, to close them all at shutdown.
    connections: Mutex<HashMap<Uuid, Closer>>,
    shutting_down: AtomicBool,
    /// Local counts changed: the presence task publishes them.
    presence_changed: Notify,
    /// The presence task says goodbye and stops.
    presence_stop: Notify,
    metrics: ChatMetrics,
    logger: Logger,
}

impl Hub {
    /// A hub publishing on `pubsub`.
    pub fn new(
        pubsub: PubSub,
        settings: ChatSettings,
        metrics: ChatMetrics,
        logger: Logger,
    ) -> Self {
        Self {
            inner: Arc::new(HubInner {
                pubsub,
                settings,
                instance: Uuid::new_v4().simple().to_string(),
                rooms: tokio::sync::Mutex::new(HashMap::new()),
                counts: Mutex::new(HashMap::new()),
                remote: Mutex::new(HashMap::new()),
                connections: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                presence_changed: Notify::new(),
                presence_stop: Notify::new(),
                metrics,
                logger,
            }),
        }
    }

    /// The chat settings.
    pub fn settings(&self) -> &ChatSettings {
        &self.inner.settings
    }

    /// The metrics.
    pub fn metrics(&self) -> &ChatMetrics {
        &self.inner.metrics
    }

    /// The logger.
    pub fn logger(&self) -> &Logger {
        &self.inner.logger
    }

    fn room_channel(&self, room: &str) -> String {
        format!("{}:room:{room}", self.inner.settings.channel_prefix)
    }

    fn presence_channel(&self) -> String {
        format!("{}:presence", self.inner.settings.channel_prefix)
    }

    /// Whether shutdown has begun (new connections are refused).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Registers an open connection, so shutdown can close it; false when shutting down.
    pub fn track(&self, connection: Uuid, closer: Closer) -> bool {
        let mut connections = self.inner.connections.lock().expect("connections lock");
        if self.is_shutting_down() {
            return false;
        }
        connections.insert(connection, closer);
        true
    }

    /// Forgets a connection that ended.
    pub fn untrack(&self, connection: Uuid) {
        self.inner
            .connections
            .lock()
            .expect("connections lock")
            .remove(&connection);
    }

    /// Starts shutdown: refuses new connections, closes every open one with 1001, and waits up
    /// to `timeout` for them to end.
    pub async fn close_all(&self, timeout: Duration) {
        {
            let connections = self.inner.connections.lock().expect("connections lock");
            self.inner.shutting_down.store(true, Ordering::SeqCst);
            for closer in connections.values() {
                closer.close(Disconnect::Shutdown);
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while !self
            .inner
            .connections
            .lock()
            .expect("connections lock")
            .is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.presence_stop.notify_one();
    }

    /// Adds a client to a room (subscribing to the room's channel if it is the first here).
    /// From now on the room's events reach its queue.
    pub async fn join(
        &self,
        room: &str,
        connection: Uuid,
        member: Member,
    ) -> Result<(), PubSubError> {
        let mut rooms = self.inner.rooms.lock().await;
        if !rooms.contains_key(room) {
            let subscription = self
                .inner
                .pubsub
                .subscribe(&self.room_channel(room))
                .await?;
            let members: Members = Arc::default();
            let fan_out = tokio::spawn(fan_out(
                subscription,
                members.clone(),
                self.inner.metrics.clone(),
                self.inner.logger.new(slog::o!("room" => room.to_owned())),
            ));
            rooms.insert(room.to_owned(), LocalRoom { members, fan_out });
            self.inner.metrics.rooms.inc();
        }
        let local = rooms.get(room).expect("the room was just ensured");
        let count = {
            let mut members = local.members.lock().expect("members lock");
            members.insert(connection, member);
            members.len()
        };
        drop(rooms);
        self.set_count(room, count);
        Ok(())
    }

    /// Removes a client from a room (unsubscribing when it was the last here).
    pub async fn leave(&self, room: &str, connection: Uuid) {
        let mut rooms = self.inner.rooms.lock().await;
        let Some(local) = rooms.get(room) else { return };
        let remaining = {
            let mut members = local.members.lock().expect("members lock");
            members.remove(&connection);
            members.len()
        };
        if remaining == 0
            && let Some(local) = rooms.remove(room)
        {
            local.fan_out.abort();
            self.inner.metrics.rooms.dec();
        }
        drop(rooms);
        self.set_count(room, remaining);
    }

    fn set_count(&self, room: &str, count: usize) {
        {
            let mut counts = self.inner.counts.lock().expect("counts lock");
            if count == 0 {
                counts.remove(room);
            } else {
                counts.insert(room.to_owned(), count);
            }
        }
        self.inner.presence_changed.notify_one();
    }

    /// Publishes an event to a room, for everyone in it (on every instance) except `origin`.
    pub async fn publish(
        &self,
        room: &str,
        origin: Option<Uuid>,
        message_id: Option<&str>,
        frame: &str,
    ) -> Result<(), PubSubError> {
        let origin = origin.map_or_else(|| "-".to_owned(), |id| id.simple().to_string());
        let envelope = format!("{origin}\n{}\n{frame}", message_id.unwrap_or("-"));
        self.inner
            .pubsub
            .publish(&self.room_channel(room), Bytes::from(envelope))
            .await
    }

    /// The rooms with clients, on every instance heard from, with their counts, by name.
    pub fn online(&self) -> Vec<(String, usize)> {
        let mut totals: HashMap<String, usize> =
            self.inner.counts.lock().expect("counts lock").clone();
        let fresh_for = self.inner.settings.presence_interval * 3;
        {
            let mut remote = self.inner.remote.lock().expect("remote lock");
            remote.retain(|_, instance| instance.seen.elapsed() < fresh_for);
            for instance in remote.values() {
                for (room, count) in &instance.rooms {
                    *totals.entry(room.clone()).or_default() += count;
                }
            }
        }
        let mut rooms: Vec<(String, usize)> =
            totals.into_iter().filter(|(_, count)| *count > 0).collect();
        rooms.sort();
        rooms
    }

    async fn publish_presence(&self, kind: PresenceKind) {
        let message = PresenceMessage {
            instance: self.inner.instance.clone(),
            kind,
        };
        let payload = serde_json::to_vec(&message).expect("presence serialises");
        if let Err(error) = self
            .inner
            .pubsub
            .publish(&self.presence_channel(), Bytes::from(payload))
            .await
        {
            slog::warn!(self.inner.logger, "presence not published"; "error" => %error);
        }
    }

    fn snapshot(&self) -> PresenceKind {
        PresenceKind::Snapshot {
            rooms: self.inner.counts.lock().expect("counts lock").clone(),
        }
    }

    /// Runs the presence exchange until [`Hub::close_all`] (spawn it at start). Subscribes
    /// before it returns its future, so the first query is heard by instances already up.
    pub async fn start_presence(&self) -> Result<tokio::task::JoinHandle<()>, PubSubError> {
        let subscription = self
            .inner
            .pubsub
            .subscribe(&self.presence_channel())
            .await?;
        let hub = self.clone();
        Ok(tokio::spawn(async move {
            hub.run_presence(subscription).await;
        }))
    }

    async fn run_presence(&self, mut subscription: Subscription) {
        self.publish_presence(PresenceKind::Query).await;
        self.publish_presence(self.snapshot()).await;
        let mut tick = tokio::time::interval(self.inner.settings.presence_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                () = self.inner.presence_stop.notified() => {
                    self.publish_presence(PresenceKind::Gone).await;
                    return;
                }
                payload = subscription.next() => {
                    let Some(payload) = payload else { return };
                    let Ok(message) = serde_json::from_slice::<PresenceMessage>(&payload) else {
                        slog::warn!(self.inner.logger, "unreadable presence message");
                        continue;
                    };
                    if message.instance == self.inner.instance {
                        continue;
                    }
                    match message.kind {
                        PresenceKind::Snapshot { rooms } => {
                            self.inner.remote.lock().expect("remote lock").insert(
                                message.instance,
                                RemoteInstance { rooms, seen: Instant::now() },
                            );
                        }
                        PresenceKind::Query => self.publish_presence(self.snapshot()).await,
                        PresenceKind::Gone => {
                            self.inner.remote.lock().expect("remote lock").remove(&message.instance);
                        }
                    }
                }
                () = self.inner.presence_changed.notified() => {
                    self.publish_presence(self.snapshot()).await;
                }
                _ = tick.tick() => {
                    self.publish_presence(self.snapshot()).await;
                }
            }
        }
    }
}

/// Splits `origin\nmessage_id\nframe`.
fn split_envelope(payload: &Bytes) -> Option<(Option<Uuid>, Option<ByteString>, ByteString)> {
    let first = payload.iter().position(|b| *b == b'\n')?;
    let second = first + 1 + payload[first + 1..].iter().position(|b| *b == b'\n')?;
    let origin = std::str::from_utf8(&payload[..first]).ok()?;
    let origin = if origin == "-" {
        None
    } else {
        Some(Uuid::try_parse(origin).ok()?)
    };
    let message_id = ByteString::try_from(payload.slice(first + 1..second)).ok()?;
    let message_id = (&*message_id != "-").then_some(message_id);
    let frame = ByteString::try_from(payload.slice(second + 1..)).ok()?;
    Some((origin, message_id, frame))
}

/// Hands each event of a room's channel to the room's clients here (all but its origin).
async fn fan_out(
    mut subscription: Subscription,
    members: Members,
    metrics: ChatMetrics,
    logger: Logger,
) {
    let mut missed = 0;
    while let Some(payload) = subscription.next().await {
        // This task fell more than the pub/sub's buffer behind: events were lost here.
        let now_missed = subscription.missed();
        if now_missed > missed {
            metrics.fan_out_missed.inc_by(now_missed - missed);
            slog::warn!(logger, "room fan-out fell behind; events lost"; "missed" => now_missed - missed);
            missed = now_missed;
        }
        let Some((origin, message_id, frame)) = split_envelope(&payload) else {
            slog::warn!(logger, "unreadable room event");
            continue;
        };
        let event = Arc::new(Event { frame, message_id });
        let members = members.lock().expect("members lock");
        let mut delivered = 0;
        for (connection, member) in members.iter() {
            if origin == Some(*connection) {
                continue;
            }
            match member.outbound.try_send(Outbound::Event(event.clone())) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    member.closer.close(Disconnect::SlowConsumer);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        metrics.delivered.inc_by(delivered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let origin = Uuid::new_v4();
        let payload = Bytes::from(format!("{}\nabc\n{{\"x\":\"a\\nb\"}}", origin.simple()));
        let (parsed_origin, id, frame) = split_envelope(&payload).expect("parsed");
        assert_eq!(parsed_origin, Some(origin));
        assert_eq!(id.as_deref(), Some("abc"));
        assert_eq!(&*frame, "{\"x\":\"a\\nb\"}");
        let (origin, id, _) = split_envelope(&Bytes::from_static(b"-\n-\n{}")).expect("parsed");
        assert_eq!((origin, id), (None, None));
        assert!(split_envelope(&Bytes::from_static(b"garbage")).is_none());
    }

    #[test]
    fn the_first_close_reason_wins() {
        let closer = Closer::default();
        let watcher = closer.watch();
        closer.close(Disconnect::SlowConsumer);
        closer.close(Disconnect::Shutdown);
        assert_eq!(closer.reason(), Some(Disconnect::SlowConsumer));
        assert!(watcher.has_changed().expect("open"));
        assert_eq!(
            u16::from(Disconnect::SlowConsumer.close_reason().code),
            1013
        );
        assert_eq!(u16::from(Disconnect::Shutdown.close_reason().code), 1001);
        assert_eq!(
            u16::from(Disconnect::FrameTooLarge.close_reason().code),
            1009
        );
    }
}
