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
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use bytestring::ByteString;
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use shared::pubsub::{PubSub, PubSubError, Subscription};
use slog::Logger;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    ChatSettings,
    closing::{Closer, Disconnect},
    frames::{Event, Frames, Outbound},
    limits::Limits,
    metrics::ChatMetrics,
    names::RoomNames,
    queue::OutboundQueue,
};

/// A client in a room, as the fan-out sees it.
#[derive(Debug)]
struct Member {
    /// Its outbound queue.
    outbound: OutboundQueue,
    /// Closes it when the queue is full.
    closer: Closer,
    /// When it joined the room: it gets only the events the room's fan-out took after that.
    joined: Instant,
}

/// An event waiting for its room's next delivery.
struct PendingEvent {
    /// When the fan-out took it from the room's channel.
    received: Instant,
    /// The connection it is about (`userJoined`, `userLeft`), which is not sent it.
    origin: Option<Uuid>,
    event: Event,
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
    /// Connections per address, message budgets.
    limits: Limits,
    /// The names held in each room.
    names: RoomNames,
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
                limits: Limits::new(settings.limits),
                settings,
                instance: Uuid::new_v4().simple().to_string(),
                rooms: tokio::sync::Mutex::new(HashMap::new()),
                counts: Mutex::new(HashMap::new()),
                remote: Mutex::new(HashMap::new()),
                connections: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                presence_changed: Notify::new(),
                presence_stop: Notify::new(),
                names: RoomNames::default(),
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

    /// Connections per address and message budgets.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The names held in each room.
    pub fn names(&self) -> &RoomNames {
        &self.inner.names
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
    /// From now on the room's events reach its queue; `closer` ends it if the queue overflows.
    pub async fn join(
        &self,
        room: &str,
        connection: Uuid,
        outbound: &OutboundQueue,
        closer: &Closer,
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
                self.inner.settings.coalesce_per_member,
                self.inner.metrics.clone(),
                self.inner.logger.new(slog::o!("room" => room.to_owned())),
            ));
            rooms.insert(room.to_owned(), LocalRoom { members, fan_out });
            self.inner.metrics.rooms.inc();
        }
        let local = rooms.get(room).expect("the room was just ensured");
        let count = {
            let mut members = local.members.lock().expect("members lock");
            let member = Member {
                outbound: outbound.clone(),
                closer: closer.clone(),
                joined: Instant::now(),
            };
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
        message_id: Option<Uuid>,
        frame: &str,
    ) -> Result<(), PubSubError> {
        let field =
            |id: Option<Uuid>| id.map_or_else(|| "-".to_owned(), |id| id.simple().to_string());
        let envelope = format!("{}\n{}\n{frame}", field(origin), field(message_id));
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

/// Splits `origin\nmessage_id\nframe` (an id or `-` for none in the first two).
fn split_envelope(payload: &Bytes) -> Option<(Option<Uuid>, Option<Uuid>, ByteString)> {
    let field = |bytes: &[u8]| match bytes {
        b"-" => Some(None),
        id => Uuid::try_parse_ascii(id).ok().map(Some),
    };
    let first = payload.iter().position(|b| *b == b'\n')?;
    let second = first + 1 + payload[first + 1..].iter().position(|b| *b == b'\n')?;
    let origin = field(&payload[..first])?;
    let message_id = field(&payload[first + 1..second])?;
    let frame = ByteString::try_from(payload.slice(second + 1..)).ok()?;
    Some((origin, message_id, frame))
}

/// At most this many events go out in one delivery.
const MAX_EVENTS_PER_DELIVERY: usize = 256;

/// How long a room's fan-out waits after a delivery before the next one, given its members
/// here. Each delivery costs every member a wake-up and a socket write, so a room of 1 000
/// clients sending one message a second each would otherwise ask a million of both a second;
/// spacing its deliveries by 10 ms (10 µs a member) makes that 100 000, each write carrying
/// the ten or so events that came meanwhile. Below a millisecond (rooms under 100 members
/// here) events go out as they come.
fn coalesce_window(per_member: Duration, members: usize) -> Duration {
    let window = per_member.saturating_mul(u32::try_from(members).unwrap_or(u32::MAX));
    if window < Duration::from_millis(1) {
        Duration::ZERO
    } else {
        window.min(MAX_COALESCE_WINDOW)
    }
}

/// The longest a room's fan-out holds events back.
const MAX_COALESCE_WINDOW: Duration = Duration::from_millis(10);

/// Hands each event of a room's channel to the room's clients here (all but its origin).
/// Events that arrive while a busy room waits out its [`coalesce_window`] go out together:
/// one shared allocation, one queue slot and one write per client.
async fn fan_out(
    mut subscription: Subscription,
    members: Members,
    coalesce_per_member: Duration,
    metrics: ChatMetrics,
    logger: Logger,
) {
    let mut missed = 0;
    let mut last_delivery = tokio::time::Instant::now();
    let mut pending: Vec<PendingEvent> = Vec::new();
    while let Some(payload) = subscription.next().await {
        take_event(&payload, &mut pending, &logger);
        let window = coalesce_window(
            coalesce_per_member,
            members.lock().expect("members lock").len(),
        );
        let deadline = last_delivery + window;
        let mut window_ends = std::pin::pin!(tokio::time::sleep_until(deadline));
        let mut ended = false;
        while pending.len() < MAX_EVENTS_PER_DELIVERY {
            // Events already here go in the same delivery whatever the window. Without one,
            // no timer either: a timer fires on the runtime's next millisecond tick, which
            // would hold every event of a small room that long.
            let next = if window.is_zero() {
                match subscription.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            } else {
                tokio::select! {
                    biased;
                    next = subscription.next() => next,
                    () = &mut window_ends => break,
                }
            };
            match next {
                Some(payload) => take_event(&payload, &mut pending, &logger),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        // This task fell more than the pub/sub's buffer behind: events were lost here.
        let now_missed = subscription.missed();
        if now_missed > missed {
            metrics.fan_out_missed.inc_by(now_missed - missed);
            slog::warn!(logger, "room fan-out fell behind; events lost"; "missed" => now_missed - missed);
            missed = now_missed;
        }
        deliver(&members, &mut pending, &metrics);
        last_delivery = tokio::time::Instant::now();
        if ended {
            break;
        }
    }
}

/// Adds the event of one pub/sub payload to `pending`.
fn take_event(payload: &Bytes, pending: &mut Vec<PendingEvent>, logger: &Logger) {
    match split_envelope(payload) {
        Some((origin, message_id, frame)) => pending.push(PendingEvent {
            received: Instant::now(),
            origin,
            event: Event { frame, message_id },
        }),
        None => slog::warn!(logger, "unreadable room event"),
    }
}

/// Queues the pending events for every member, encoded once: all of them for most members;
/// an event's origin is not sent it (`userJoined` and `userLeft` skip their subject), and a
/// member that joined while they waited gets only those that came after it (a chat message
/// from before is in the history it read after joining; a join or leave from before is not
/// news to it).
fn deliver(members: &Members, pending: &mut Vec<PendingEvent>, metrics: &ChatMetrics) {
    let Some(oldest) = pending.first().map(|first| first.received) else {
        return;
    };
    let encode = |leave_out: &dyn Fn(&PendingEvent) -> bool| -> Option<(Arc<Frames>, u64)> {
        let events: Vec<&Event> = pending
            .iter()
            .filter(|pending| !leave_out(pending))
            .map(|pending| &pending.event)
            .collect();
        let count = u64::try_from(events.len()).unwrap_or(u64::MAX);
        (count > 0).then(|| (Arc::new(Frames::encode(events)), count))
    };
    let all = encode(&|_| false);
    // Most origins are not members any more (userLeft) or few (userJoined): their copies are
    // made for the members that need them only.
    let origins: HashSet<Uuid> = pending
        .iter()
        .filter_map(|pending| pending.origin)
        .collect();
    let members = members.lock().expect("members lock");
    let mut delivered = 0;
    for (connection, member) in members.iter() {
        let frames = if member.joined >= oldest {
            encode(&|pending| {
                pending.received <= member.joined || pending.origin == Some(*connection)
            })
        } else if origins.contains(connection) {
            encode(&|pending| pending.origin == Some(*connection))
        } else {
            all.clone()
        };
        let Some((frames, count)) = frames else {
            continue;
        };
        match member.outbound.push(Outbound::Frames(frames)) {
            Ok(()) => delivered += count,
            Err(reason) => member.closer.close(reason),
        }
    }
    drop(members);
    pending.clear();
    metrics.delivered.inc_by(delivered);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let (origin, message) = (Uuid::new_v4(), Uuid::new_v4());
        let payload = Bytes::from(format!(
            "{}\n{message}\n{{\"x\":\"a\\nb\"}}",
            origin.simple()
        ));
        let (parsed_origin, id, frame) = split_envelope(&payload).expect("parsed");
        assert_eq!(parsed_origin, Some(origin));
        assert_eq!(id, Some(message));
        assert_eq!(&*frame, "{\"x\":\"a\\nb\"}");
        let (origin, id, _) = split_envelope(&Bytes::from_static(b"-\n-\n{}")).expect("parsed");
        assert_eq!((origin, id), (None, None));
        assert!(split_envelope(&Bytes::from_static(b"garbage")).is_none());
        assert!(split_envelope(&Bytes::from_static(b"-\nnot-an-id\n{}")).is_none());
    }

    fn event(frame: &str, message_id: Option<Uuid>) -> Event {
        Event {
            frame: frame.into(),
            message_id,
        }
    }

    #[test]
    fn only_big_rooms_wait_to_coalesce() {
        let per_member = Duration::from_micros(10);
        assert_eq!(coalesce_window(per_member, 1), Duration::ZERO);
        assert_eq!(coalesce_window(per_member, 99), Duration::ZERO);
        assert_eq!(coalesce_window(per_member, 100), Duration::from_millis(1));
        assert_eq!(coalesce_window(per_member, 500), Duration::from_millis(5));
        assert_eq!(coalesce_window(per_member, 100_000), MAX_COALESCE_WINDOW);
    }

    /// Members that joined at `joined`, with their queues.
    fn members_joined(
        connections: &[Uuid],
        joined: Instant,
    ) -> (Members, HashMap<Uuid, flume::Receiver<Outbound>>) {
        let members: Members = Arc::default();
        let mut queues = HashMap::new();
        for connection in connections {
            let (outbound, _, queue) = OutboundQueue::new(1024);
            let member = Member {
                outbound,
                closer: Closer::default(),
                joined,
            };
            members.lock().expect("members").insert(*connection, member);
            queues.insert(*connection, queue);
        }
        (members, queues)
    }

    fn pending(origin: Option<Uuid>, frame: &str, received: Instant) -> PendingEvent {
        PendingEvent {
            received,
            origin,
            event: event(frame, None),
        }
    }

    /// The bytes of the next delivery in `connection`'s queue.
    fn received(connection: Uuid, queues: &HashMap<Uuid, flume::Receiver<Outbound>>) -> Bytes {
        match queues.get(&connection).expect("queue").try_recv() {
            Ok(Outbound::Frames(frames)) => frames.bytes.clone(),
            other => panic!("expected frames, got {other:?}"),
        }
    }

    fn encoded(frames: &[&str]) -> Bytes {
        let events: Vec<Event> = frames.iter().map(|frame| event(frame, None)).collect();
        Frames::encode(&events).bytes
    }

    const JOINED: &str = r#"{"type":"userJoined","user":"alice"}"#;
    const MESSAGE: &str = r#"{"type":"chatMessage","text":"hi"}"#;

    #[test]
    fn a_delivery_skips_each_event_for_its_origin_only() {
        let metrics = ChatMetrics::register(&prometheus::Registry::new()).expect("metrics");
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let start = Instant::now();
        let (members, queues) = members_joined(&[alice, bob], start);
        let later = start + Duration::from_millis(1);
        let mut events = vec![
            pending(Some(alice), JOINED, later),
            pending(None, MESSAGE, later),
        ];
        deliver(&members, &mut events, &metrics);
        assert!(events.is_empty());
        assert_eq!(received(alice, &queues), encoded(&[MESSAGE]));
        assert_eq!(received(bob, &queues), encoded(&[JOINED, MESSAGE]));
        assert_eq!(metrics.delivered.get(), 3);
        // Nothing at all for the origin of every event of a delivery.
        let mut events = vec![pending(Some(alice), JOINED, later)];
        deliver(&members, &mut events, &metrics);
        assert!(queues[&alice].try_recv().is_err());
        assert_eq!(received(bob, &queues), encoded(&[JOINED]));
        assert_eq!(metrics.delivered.get(), 4);
    }

    #[test]
    fn a_member_that_joined_while_events_waited_gets_only_the_later_ones() {
        let metrics = ChatMetrics::register(&prometheus::Registry::new()).expect("metrics");
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let start = Instant::now();
        let (members, queues) = members_joined(&[alice], start);
        let millis = |n| start + Duration::from_millis(n);
        let mut events = vec![
            pending(Some(alice), JOINED, millis(1)),
            pending(None, MESSAGE, millis(1)),
        ];
        // Bob joins while those two wait for the room's window, and one more event comes.
        let (late, late_queues) = members_joined(&[bob], millis(2));
        let bob_member = late.lock().expect("members").remove(&bob).expect("bob");
        members.lock().expect("members").insert(bob, bob_member);
        let after = r#"{"type":"chatMessage","text":"after"}"#;
        events.push(pending(None, after, millis(3)));
        deliver(&members, &mut events, &metrics);
        assert_eq!(received(alice, &queues), encoded(&[MESSAGE, after]));
        assert_eq!(received(bob, &late_queues), encoded(&[after]));
    }
}
