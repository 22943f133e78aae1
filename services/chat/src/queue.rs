//! A connection's outbound queue, bounded by the events waiting in it.
//!
//! A delivery from a busy room holds many events in one slot, so a bound on slots would let a
//! client that stopped reading fall thousands of events behind (and keep them in memory) before
//! it is cut off. The bound is on events instead: the fan-out adds a delivery's events to the
//! count before it queues it, the connection's body takes them off as it writes them, and a
//! delivery that would pass the capacity makes the client a slow consumer (close 1013).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
};

use futures_util::StreamExt;

use crate::hub::{Disconnect, Outbound};

/// The sending side: the fan-out's and the connection's own (errors, pings, pongs).
#[derive(Clone, Debug)]
pub struct OutboundQueue {
    sender: flume::Sender<Outbound>,
    /// Events queued and not yet taken by the body.
    waiting: Arc<AtomicUsize>,
    /// The most events that may wait.
    capacity: usize,
}

/// The receiving side, read by the connection's response body.
pub struct OutboundReceiver {
    items: flume::r#async::RecvStream<'static, Outbound>,
    waiting: Arc<AtomicUsize>,
}

impl OutboundQueue {
    /// A queue holding at most `capacity` events; also returns a plain receiver for dropping
    /// what is left when the connection ends while its body is stuck on a client that does not
    /// read.
    pub fn new(capacity: usize) -> (Self, OutboundReceiver, flume::Receiver<Outbound>) {
        let (sender, receiver) = flume::unbounded();
        let waiting = Arc::new(AtomicUsize::new(0));
        let queue = Self {
            sender,
            waiting: waiting.clone(),
            capacity,
        };
        let body_side = OutboundReceiver {
            items: receiver.clone().into_stream(),
            waiting,
        };
        (queue, body_side, receiver)
    }

    /// Queues `item`; a full queue (counting its events) makes the client a slow consumer.
    /// Queuing to a connection that ended is not an error.
    pub fn push(&self, item: Outbound) -> Result<(), Disconnect> {
        let events = item.events();
        let before = self.waiting.fetch_add(events, Ordering::AcqRel);
        if before + events > self.capacity {
            self.waiting.fetch_sub(events, Ordering::AcqRel);
            return Err(Disconnect::SlowConsumer);
        }
        if self.sender.send(item).is_err() {
            self.waiting.fetch_sub(events, Ordering::AcqRel);
        }
        Ok(())
    }
}

impl OutboundReceiver {
    /// The next item (its events no longer count as waiting); `None` once every sender is gone.
    pub fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        let item = ready!(self.items.poll_next_unpin(cx));
        if let Some(item) = &item {
            self.waiting.fetch_sub(item.events(), Ordering::AcqRel);
        }
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use bytestring::ByteString;
    use futures_util::FutureExt;

    use super::*;
    use crate::hub::{Event, Frames};

    fn delivery(events: usize) -> Outbound {
        let events: Vec<Event> = (0..events)
            .map(|n| Event {
                frame: ByteString::from(format!("{{\"n\":{n}}}")),
                message_id: None,
            })
            .collect();
        Outbound::Frames(Arc::new(Frames::encode(&events)))
    }

    #[test]
    fn the_bound_counts_events_not_deliveries() {
        let (queue, mut receiver, _) = OutboundQueue::new(10);
        queue.push(delivery(6)).expect("6 of 10");
        queue.push(Outbound::Ping).expect("7 of 10");
        assert_eq!(queue.push(delivery(4)), Err(Disconnect::SlowConsumer));
        // Writing the first delivery makes room again.
        let first = std::future::poll_fn(|cx| receiver.poll_take(cx)).now_or_never();
        assert!(matches!(first, Some(Some(Outbound::Frames(_)))));
        queue.push(delivery(4)).expect("5 of 10");
        assert_eq!(queue.push(delivery(6)), Err(Disconnect::SlowConsumer));
    }

    #[test]
    fn queuing_to_an_ended_connection_is_not_an_error() {
        let (queue, receiver, plain) = OutboundQueue::new(10);
        drop((receiver, plain));
        queue.push(delivery(3)).expect("ignored");
        queue.push(delivery(3)).expect("ignored");
        queue.push(delivery(3)).expect("ignored");
        queue.push(delivery(3)).expect("ignored, and not counted");
    }
}
