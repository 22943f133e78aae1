//! The sending side of an Engine.IO session: its outbound queue read as Engine.IO packets.
//! One transport holds it at a time (a long-polling `GET` while it waits, then the WebSocket
//! once the session upgraded), so packets leave in order whichever carries them.

use std::{
    collections::{HashSet, VecDeque},
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    frames::{Batch, Outbound},
    queue::OutboundReceiver,
    socketio::{engine_packet, events},
};

/// A session's queue, read as packets.
pub struct Outlet {
    queue: OutboundReceiver,
    /// A batch being filled: what was queued after it waits for it.
    batch: Option<oneshot::Receiver<Batch>>,
    /// Packets taken from the queue and not yet sent (a coalesced delivery, a batch).
    ready: VecDeque<String>,
    /// Messages of the history sent, to skip when they arrive live.
    already_sent: HashSet<Uuid>,
}

impl Outlet {
    /// Reads `queue`.
    pub fn new(queue: OutboundReceiver) -> Self {
        Self {
            queue,
            batch: None,
            ready: VecDeque::new(),
            already_sent: HashSet::new(),
        }
    }

    /// The next packet; `None` once the queue has no sender.
    pub fn poll_packet(&mut self, cx: &mut Context<'_>) -> Poll<Option<String>> {
        loop {
            if let Some(packet) = self.ready.pop_front() {
                return Poll::Ready(Some(packet));
            }
            if let Some(batch) = self.batch.as_mut() {
                let filled = ready!(Pin::new(batch).poll(cx));
                self.batch = None;
                // An unfilled batch: the session ended while entering a room.
                if let Ok(batch) = filled {
                    self.ready.extend(batch.packets);
                    self.already_sent.extend(batch.ids);
                }
                continue;
            }
            match ready!(self.queue.poll_take(cx)) {
                None => return Poll::Ready(None),
                Some(item) => self.take(item),
            }
        }
    }

    /// The packets ready, up to about `max_bytes` (at least one), joined for a polling
    /// body; `None` if none is ready.
    pub fn poll_payload(&mut self, cx: &mut Context<'_>, max_bytes: usize) -> Poll<Option<String>> {
        let Some(first) = ready!(self.poll_packet(cx)) else {
            return Poll::Ready(None);
        };
        let mut payload = first;
        while payload.len() < max_bytes {
            let Poll::Ready(Some(next)) = self.poll_packet(cx) else {
                break;
            };
            payload.push(engine_packet::SEPARATOR);
            payload.push_str(&next);
        }
        Poll::Ready(Some(payload))
    }

    /// Turns one queued item into packets.
    fn take(&mut self, item: Outbound) {
        match item {
            Outbound::Frames(frames) => {
                let bytes = frames.without(&mut self.already_sent);
                self.ready
                    .extend(events::frame_payloads(&bytes).map(events::from_native));
            }
            Outbound::Ping => self.ready.push_back(engine_packet::PING.to_owned()),
            Outbound::Packet(packet) => self.ready.push_back(*packet),
            Outbound::Batch(batch) => self.batch = Some(batch),
            // Engine.IO answers no ping of a client but the probe (its transport does).
            Outbound::Pong(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{future::poll_fn, sync::Arc};

    use bytestring::ByteString;
    use futures_util::FutureExt;

    use super::*;
    use crate::{
        frames::{Event, Frames},
        queue::OutboundQueue,
    };

    fn delivery(events: &[(&str, Option<Uuid>)]) -> Outbound {
        let events: Vec<Event> = events
            .iter()
            .map(|(frame, id)| Event {
                frame: ByteString::from(*frame),
                message_id: *id,
            })
            .collect();
        Outbound::Frames(Arc::new(Frames::encode(&events)))
    }

    #[test]
    fn live_events_wait_behind_a_batch_and_skip_its_history() {
        let (queue, receiver, _) = OutboundQueue::new(10_000);
        let mut outlet = Outlet::new(receiver);
        let (fill, batch) = oneshot::channel();
        queue.push(Outbound::Batch(batch)).expect("room");
        let (in_history, live) = (Uuid::new_v4(), Uuid::new_v4());
        queue
            .push(delivery(&[
                (r#"{"type":"chatMessage","n":1}"#, Some(in_history)),
                (r#"{"type":"chatMessage","n":2}"#, Some(live)),
            ]))
            .expect("room");
        queue.push(Outbound::Ping).expect("room");
        let mut payload = || poll_fn(|cx| outlet.poll_payload(cx, 1000)).now_or_never();
        assert_eq!(payload(), None, "the batch is not filled");
        let filled = Batch {
            packets: vec![
                r#"40{"sid":"s"}"#.to_owned(),
                r#"42["history",{}]"#.to_owned(),
            ],
            ids: [in_history].into(),
        };
        fill.send(filled).expect("outlet waits");
        assert_eq!(
            payload(),
            Some(Some(
                "40{\"sid\":\"s\"}\x1e42[\"history\",{}]\x1e42[\"chatMessage\",{\"n\":2}]\x1e2"
                    .to_owned()
            ))
        );
        assert_eq!(payload(), None);
    }
}
