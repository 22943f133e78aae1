//! The rooms with clients on this instance: who is in each, and each room's subscription to
//! its channel, held by its fan-out task from the room's first member here to its last.

use std::{collections::HashMap, sync::Arc, time::Duration, time::Instant};

use pubsub::{PubSub, PubSubError};
use slog::Logger;
use uuid::Uuid;

use super::{
    delivery::{Member, Members},
    envelope,
    fan_out::fan_out,
};
use crate::{closing::Closer, metrics::ChatMetrics, queue::OutboundQueue};

/// A room with clients on this instance.
struct LocalRoom {
    members: Members,
    /// Fans the room channel out to the members; aborted (unsubscribing) when the last leaves.
    fan_out: tokio::task::JoinHandle<()>,
}

/// The local rooms; join and leave take their lock, the fan-outs do not.
pub(crate) struct Rooms {
    rooms: tokio::sync::Mutex<HashMap<String, LocalRoom>>,
    pubsub: PubSub,
    /// Prefix of the rooms' channels.
    channel_prefix: String,
    /// What each fan-out waits per member before its next delivery.
    coalesce_per_member: Duration,
    metrics: ChatMetrics,
    logger: Logger,
}

impl Rooms {
    /// No rooms yet; rooms subscribe to `<channel_prefix>:room:<room>` on `pubsub`.
    pub(crate) fn new(
        pubsub: PubSub,
        channel_prefix: String,
        coalesce_per_member: Duration,
        metrics: ChatMetrics,
        logger: Logger,
    ) -> Self {
        Self {
            rooms: tokio::sync::Mutex::new(HashMap::new()),
            pubsub,
            channel_prefix,
            coalesce_per_member,
            metrics,
            logger,
        }
    }

    /// Adds a client to a room, subscribing to the room's channel if it is the first here;
    /// the room's members here with it.
    pub(crate) async fn join(
        &self,
        room: &str,
        connection: Uuid,
        outbound: &OutboundQueue,
        closer: &Closer,
    ) -> Result<usize, PubSubError> {
        let mut rooms = self.rooms.lock().await;
        if !rooms.contains_key(room) {
            let channel = envelope::room_channel(&self.channel_prefix, room);
            let subscription = self.pubsub.subscribe(&channel).await?;
            let members: Members = Arc::default();
            let fan_out = tokio::spawn(fan_out(
                subscription,
                members.clone(),
                self.coalesce_per_member,
                self.metrics.clone(),
                self.logger.new(slog::o!("room" => room.to_owned())),
            ));
            rooms.insert(room.to_owned(), LocalRoom { members, fan_out });
            self.metrics.rooms.inc();
        }
        let local = rooms.get(room).expect("the room was just ensured");
        let mut members = local.members.lock().expect("members lock");
        let member = Member {
            outbound: outbound.clone(),
            closer: closer.clone(),
            joined: Instant::now(),
        };
        members.insert(connection, member);
        Ok(members.len())
    }

    /// Removes a client from a room, unsubscribing when it was the last here; the room's
    /// members here left, `None` when the room has none here.
    pub(crate) async fn leave(&self, room: &str, connection: Uuid) -> Option<usize> {
        let mut rooms = self.rooms.lock().await;
        let local = rooms.get(room)?;
        let remaining = {
            let mut members = local.members.lock().expect("members lock");
            members.remove(&connection);
            members.len()
        };
        if remaining == 0
            && let Some(local) = rooms.remove(room)
        {
            local.fan_out.abort();
            self.metrics.rooms.dec();
        }
        Some(remaining)
    }
}
