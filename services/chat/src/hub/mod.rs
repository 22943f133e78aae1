//! The rooms of one instance, joined to the other instances through [`pubsub`].
//!
//! Every room event (`chatMessage`, `userJoined`, `userLeft`) is published on the room's
//! channel and reaches the clients through it, on this instance as on the others: an instance
//! subscribes to a room's channel while it has clients in that room, and one task per room
//! fans each event out to their bounded outbound queues. A queue that is full marks its client
//! a slow consumer, which is disconnected (close 1013) instead of slowing the room or growing
//! memory.
//!
//! | module | what it holds |
//! |---|---|
//! | `registry` | the open connections, closed all at once at shutdown |
//! | `rooms` | the local rooms: their members, their channel subscriptions |
//! | `envelope` | a room event on the pub/sub: its channel and envelope |
//! | `fan_out` | a room's task from its channel to its members, coalescing busy rooms |
//! | `delivery` | one delivery: events encoded once, each member given what it has not seen |
//! | `presence` | the online counts of every instance's rooms |
//!
//! [`Hub`] ties them together; nothing else in the crate reaches into them.

mod delivery;
mod envelope;
mod fan_out;
mod presence;
mod registry;
mod rooms;

use std::{sync::Arc, time::Duration};

use pubsub::{PubSub, PubSubError};
use slog::Logger;
use uuid::Uuid;

use self::{presence::Presence, registry::Registry, rooms::Rooms};
use crate::{
    closing::Closer, limits::Limits, metrics::ChatMetrics, names::RoomNames, queue::OutboundQueue,
    settings::Settings,
};

/// The rooms of this instance; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    pubsub: PubSub,
    settings: Settings,
    /// Every open connection, to close them all at shutdown.
    registry: Registry,
    /// The local rooms.
    rooms: Rooms,
    /// The online counts, here and on the other instances.
    presence: Arc<Presence>,
    /// Connections per address, message budgets.
    limits: Limits,
    /// The names held in each room (and across instances, over Redis).
    names: RoomNames,
    metrics: ChatMetrics,
    logger: Logger,
}

impl Hub {
    /// A hub publishing on `pubsub`.
    pub fn new(pubsub: PubSub, settings: Settings, metrics: ChatMetrics, logger: Logger) -> Self {
        let rooms = Rooms::new(
            pubsub.clone(),
            settings.channel_prefix.clone(),
            settings.coalesce_per_member,
            metrics.clone(),
            logger.clone(),
        );
        let presence = Presence::new(
            pubsub.clone(),
            &settings.channel_prefix,
            settings.presence_interval,
            logger.clone(),
        );
        let names = RoomNames::new(
            pubsub.leases(),
            &settings.channel_prefix,
            settings.name_lease,
            logger.clone(),
        );
        Self {
            inner: Arc::new(HubInner {
                pubsub,
                limits: Limits::new(settings.limits),
                settings,
                registry: Registry::default(),
                rooms,
                presence: Arc::new(presence),
                names,
                metrics,
                logger,
            }),
        }
    }

    /// The chat settings.
    pub fn settings(&self) -> &Settings {
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

    /// Whether shutdown has begun (new connections are refused).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.registry.is_shutting_down()
    }

    /// Registers an open connection, so shutdown can close it; false when shutting down.
    pub fn track(&self, connection: Uuid, closer: Closer) -> bool {
        self.inner.registry.track(connection, closer)
    }

    /// Forgets a connection that ended.
    pub fn untrack(&self, connection: Uuid) {
        self.inner.registry.untrack(connection);
    }

    /// Starts shutdown: refuses new connections, closes every open one with 1001, waits up
    /// to `timeout` for them to end, then stops the presence exchange (with a goodbye).
    pub async fn close_all(&self, timeout: Duration) {
        self.inner.registry.close_all(timeout).await;
        self.inner.presence.stop();
    }

    /// Adds a client to a room (subscribing to the room's channel if it is the first here).
    /// Once this returns, the room's events reach its queue; `closer` ends it if the queue
    /// overflows.
    pub async fn join(
        &self,
        room: &str,
        connection: Uuid,
        outbound: &OutboundQueue,
        closer: &Closer,
    ) -> Result<(), PubSubError> {
        let count = self
            .inner
            .rooms
            .join(room, connection, outbound, closer)
            .await?;
        self.inner.presence.set_count(room, count);
        Ok(())
    }

    /// Removes a client from a room (unsubscribing when it was the last here).
    pub async fn leave(&self, room: &str, connection: Uuid) {
        if let Some(remaining) = self.inner.rooms.leave(room, connection).await {
            self.inner.presence.set_count(room, remaining);
        }
    }

    /// Publishes an event to a room, for everyone in it (on every instance) except `origin`.
    pub async fn publish(
        &self,
        room: &str,
        origin: Option<Uuid>,
        message_id: Option<Uuid>,
        frame: &str,
    ) -> Result<(), PubSubError> {
        let channel = envelope::room_channel(&self.inner.settings.channel_prefix, room);
        let payload = envelope::seal(origin, message_id, frame);
        self.inner.pubsub.publish(&channel, payload).await
    }

    /// The rooms with clients, on every instance heard from, with their counts, by name.
    pub fn online(&self) -> Vec<(String, usize)> {
        self.inner.presence.online()
    }

    /// Spawns the presence exchange, which runs until [`Hub::close_all`]. Subscribes before it
    /// returns, so the first query is heard by instances already up.
    pub async fn start_presence(&self) -> Result<tokio::task::JoinHandle<()>, PubSubError> {
        self.inner.presence.start().await
    }
}
