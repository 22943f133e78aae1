//! Presence: the online count of each room across instances (`GET /chat/rooms`), exchanged on
//! `<prefix>:presence`. Each instance publishes its rooms' counts when they change and every
//! presence interval, answers a starting instance's query at once, says goodbye when it
//! stops, and forgets an instance it has not heard from for three intervals (one that
//! crashed).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::StreamExt;
use pubsub::{PubSub, PubSubError, Subscription};
use serde::{Deserialize, Serialize};
use slog::Logger;
use tokio::sync::Notify;
use uuid::Uuid;

/// What another instance last said about its rooms.
struct RemoteInstance {
    rooms: HashMap<String, usize>,
    seen: Instant,
}

/// A message on the presence channel.
#[derive(Serialize, Deserialize)]
struct PresenceMessage {
    /// The sender.
    instance: String,
    #[serde(flatten)]
    kind: PresenceKind,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PresenceKind {
    /// The sender's online count per room.
    Snapshot { rooms: HashMap<String, usize> },
    /// A starting instance asks everyone for a snapshot.
    Query,
    /// The sender is stopping.
    Gone,
}

/// This instance's counts and what the others said of theirs.
pub(crate) struct Presence {
    pubsub: PubSub,
    /// `<prefix>:presence`.
    channel: String,
    /// This instance, in presence messages.
    instance: String,
    /// How often the counts are published; three of these without word: an instance is gone.
    interval: Duration,
    /// The local online count per room.
    counts: Mutex<HashMap<String, usize>>,
    /// The other instances' counts.
    remote: Mutex<HashMap<String, RemoteInstance>>,
    /// Local counts changed: the presence task publishes them.
    changed: Notify,
    /// The presence task says goodbye and stops.
    stop: Notify,
    logger: Logger,
}

impl Presence {
    /// No counts yet; messages on `<channel_prefix>:presence` every `interval`.
    pub(crate) fn new(
        pubsub: PubSub,
        channel_prefix: &str,
        interval: Duration,
        logger: Logger,
    ) -> Self {
        Self {
            pubsub,
            channel: format!("{channel_prefix}:presence"),
            instance: Uuid::new_v4().simple().to_string(),
            interval,
            counts: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            stop: Notify::new(),
            logger,
        }
    }

    /// Sets a room's local count (0: the room has no clients here) and has it published.
    pub(crate) fn set_count(&self, room: &str, count: usize) {
        {
            let mut counts = self.counts.lock().expect("counts lock");
            if count == 0 {
                counts.remove(room);
            } else {
                counts.insert(room.to_owned(), count);
            }
        }
        self.changed.notify_one();
    }

    /// The rooms with clients, on every instance heard from, with their counts, by name.
    pub(crate) fn online(&self) -> Vec<(String, usize)> {
        let mut totals: HashMap<String, usize> = self.counts.lock().expect("counts lock").clone();
        let fresh_for = self.interval * 3;
        {
            let mut remote = self.remote.lock().expect("remote lock");
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

    /// Has the presence task say goodbye and stop.
    pub(crate) fn stop(&self) {
        self.stop.notify_one();
    }

    /// Spawns the presence exchange, which runs until [`Presence::stop`]. Subscribes before
    /// it returns, so the first query is heard by instances already up.
    pub(crate) async fn start(
        self: &Arc<Self>,
    ) -> Result<tokio::task::JoinHandle<()>, PubSubError> {
        let subscription = self.pubsub.subscribe(&self.channel).await?;
        let presence = self.clone();
        Ok(tokio::spawn(async move {
            presence.run(subscription).await;
        }))
    }

    async fn publish(&self, kind: PresenceKind) {
        let message = PresenceMessage {
            instance: self.instance.clone(),
            kind,
        };
        let payload = serde_json::to_vec(&message).expect("presence serialises");
        if let Err(error) = self
            .pubsub
            .publish(&self.channel, Bytes::from(payload))
            .await
        {
            slog::warn!(self.logger, "presence not published"; "error" => %error);
        }
    }

    fn snapshot(&self) -> PresenceKind {
        PresenceKind::Snapshot {
            rooms: self.counts.lock().expect("counts lock").clone(),
        }
    }

    async fn run(&self, mut subscription: Subscription) {
        self.publish(PresenceKind::Query).await;
        self.publish(self.snapshot()).await;
        let mut tick = tokio::time::interval(self.interval);
        tick.tick().await;
        loop {
            tokio::select! {
                () = self.stop.notified() => {
                    self.publish(PresenceKind::Gone).await;
                    return;
                }
                payload = subscription.next() => {
                    let Some(payload) = payload else { return };
                    let Ok(message) = serde_json::from_slice::<PresenceMessage>(&payload) else {
                        slog::warn!(self.logger, "unreadable presence message");
                        continue;
                    };
                    if message.instance == self.instance {
                        continue;
                    }
                    match message.kind {
                        PresenceKind::Snapshot { rooms } => {
                            self.remote.lock().expect("remote lock").insert(
                                message.instance,
                                RemoteInstance { rooms, seen: Instant::now() },
                            );
                        }
                        PresenceKind::Query => self.publish(self.snapshot()).await,
                        PresenceKind::Gone => {
                            self.remote.lock().expect("remote lock").remove(&message.instance);
                        }
                    }
                }
                () = self.changed.notified() => {
                    self.publish(self.snapshot()).await;
                }
                _ = tick.tick() => {
                    self.publish(self.snapshot()).await;
                }
            }
        }
    }
}
