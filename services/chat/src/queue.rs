//! A connection's outbound queue, bounded by the bytes waiting in it.
//!
//! A delivery from a busy room holds many events in one slot, so a bound on slots would let a
//! client that stopped reading fall thousands of events behind (and keep them in memory) before
//! it is cut off. The bound is on bytes instead, what a slow reader costs: the fan-out adds a
//! delivery's size to the count before it queues it, the connection's body takes it off as it
//! writes it, and a delivery that would pass the capacity makes the client a slow consumer
//! (close 1013). A bound of 256 events cut off 130 of a 1 000-client room in a quarter-second
//! stall; 1 MiB of frames holds 5 s of it (docs/benchmarks.md, "What the chat-service measurements showed").

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
};

use futures_util::StreamExt;

use crate::{closing::Disconnect, frames::Outbound};

/// The sending side: the fan-out's and the connection's own (errors, pings, pongs).
#[derive(Clone, Debug)]
pub struct OutboundQueue {
    sender: flume::Sender<Outbound>,
    /// Bytes queued and not yet taken by the body.
    waiting: Arc<AtomicUsize>,
    /// The most bytes that may wait.
    capacity: usize,
}

/// The receiving side, read by the connection's response body.
pub struct OutboundReceiver {
    items: flume::r#async::RecvStream<'static, Outbound>,
    waiting: Arc<AtomicUsize>,
}

impl OutboundQueue {
    /// A queue holding at most `capacity` bytes; also returns a plain receiver for dropping
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

    /// Queues `item`; one that would not fit makes the client a slow consumer. Queuing to a
    /// connection that ended is not an error.
    pub fn push(&self, item: Outbound) -> Result<(), Disconnect> {
        let size = item.size();
        let before = self.waiting.fetch_add(size, Ordering::AcqRel);
        if before + size > self.capacity {
            self.waiting.fetch_sub(size, Ordering::AcqRel);
            return Err(Disconnect::SlowConsumer);
        }
        if self.sender.send(item).is_err() {
            self.waiting.fetch_sub(size, Ordering::AcqRel);
        }
        Ok(())
    }
}

impl OutboundReceiver {
    /// The next item (its bytes no longer count as waiting); `None` once every sender is gone.
    pub fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        let item = ready!(self.items.poll_next_unpin(cx));
        if let Some(item) = &item {
            self.waiting.fetch_sub(item.size(), Ordering::AcqRel);
        }
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use bytestring::ByteString;
    use futures_util::FutureExt;

    use super::*;
    use crate::frames::{Event, Frames};

    /// A delivery of `events` frames of 8 bytes each (2 of header, `{"n":0}`).
    fn delivery(events: usize) -> Outbound {
        let events: Vec<Event> = (0..events)
            .map(|n| Event {
                frame: ByteString::from(format!("{{\"n\":{}}}", n % 10)),
                message_id: None,
            })
            .collect();
        Outbound::Frames(Arc::new(Frames::encode(&events)))
    }

    #[test]
    fn the_bound_counts_bytes_not_deliveries() {
        let (queue, mut receiver, _) = OutboundQueue::new(80);
        queue.push(delivery(6)).expect("48 of 80");
        queue.push(Outbound::Ping).expect("50 of 80");
        assert_eq!(queue.push(delivery(4)), Err(Disconnect::SlowConsumer));
        // Writing the first delivery makes room again.
        let first = std::future::poll_fn(|cx| receiver.poll_take(cx)).now_or_never();
        assert!(matches!(first, Some(Some(Outbound::Frames(_)))));
        queue.push(delivery(4)).expect("34 of 80");
        assert_eq!(queue.push(delivery(6)), Err(Disconnect::SlowConsumer));
    }

    #[test]
    fn queuing_to_an_ended_connection_is_not_an_error() {
        let (queue, receiver, plain) = OutboundQueue::new(30);
        drop((receiver, plain));
        // 24 bytes each: were they counted, the second would not fit.
        queue.push(delivery(3)).expect("ignored");
        queue.push(delivery(3)).expect("ignored");
        queue.push(delivery(3)).expect("ignored");
        queue.push(delivery(3)).expect("ignored, and not counted");
    }
}
