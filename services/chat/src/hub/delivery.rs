//! One delivery of a room's events to its members on this instance: the events that waited
//! for it, encoded once ([`Frames`]) and shared by every member's queue, each member given
//! what it has not seen. Encoding once and one queue slot per delivery are what let a room of
//! 1 000 clients take 1 M deliveries a second (docs/benchmarks.md, "What the chat-service
//! measurements showed").

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Instant,
};

use uuid::Uuid;

use crate::{
    closing::Closer,
    frames::{Event, Frames, Outbound},
    metrics::ChatMetrics,
    queue::OutboundQueue,
};

/// A client in a room, as the fan-out sees it.
#[derive(Debug)]
pub(crate) struct Member {
    /// Its outbound queue.
    pub(crate) outbound: OutboundQueue,
    /// Closes it when the queue is full.
    pub(crate) closer: Closer,
    /// When it joined the room: it gets only the events the room's fan-out took after that.
    pub(crate) joined: Instant,
}

/// A room's members on this instance, by connection; shared by the room and its fan-out.
pub(crate) type Members = Arc<Mutex<HashMap<Uuid, Member>>>;

/// An event waiting for its room's next delivery.
pub(crate) struct PendingEvent {
    /// When the fan-out took it from the room's channel.
    pub(crate) received: Instant,
    /// The connection it is about (`userJoined`, `userLeft`), which is not sent it.
    pub(crate) origin: Option<Uuid>,
    /// The event.
    pub(crate) event: Event,
}

/// Queues the pending events for every member, encoded once: all of them for most members;
/// an event's origin is not sent it (`userJoined` and `userLeft` skip their subject), and a
/// member that joined while they waited gets only those that came after it (a chat message
/// from earlier is in the history it read after joining; a join or leave from earlier is not
/// news to it). A member whose queue is full is closed (a slow consumer). Empties `pending`.
pub(crate) fn deliver(members: &Members, pending: &mut Vec<PendingEvent>, metrics: &ChatMetrics) {
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
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    fn event(frame: &str, message_id: Option<Uuid>) -> Event {
        Event {
            frame: frame.into(),
            message_id,
        }
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
