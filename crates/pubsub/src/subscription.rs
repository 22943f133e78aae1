//! [`Subscription`]: one subscriber's stream of a channel's messages, and the guard that
//! unsubscribes it when it is dropped.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::handle::Backend;

/// The messages of one channel, in the order they were published; dropping it unsubscribes.
pub struct Subscription {
    /// This subscriber's queue.
    receiver: mpsc::Receiver<Bytes>,
    /// Messages skipped because this subscriber fell behind.
    missed: Arc<AtomicU64>,
    /// Unsubscribes on drop.
    guard: Unsubscribe,
}

impl Subscription {
    /// A subscription reading `receiver`, which unsubscribes `id` from `channel` on drop.
    pub(crate) fn new(
        receiver: mpsc::Receiver<Bytes>,
        missed: Arc<AtomicU64>,
        channel: &str,
        id: u64,
        backend: Arc<Backend>,
    ) -> Self {
        Self {
            receiver,
            missed,
            guard: Unsubscribe {
                channel: channel.to_owned(),
                id,
                backend,
            },
        }
    }

    /// How many messages this subscriber missed because it fell
    /// [`CHANNEL_CAPACITY`](crate::CHANNEL_CAPACITY) behind.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

impl Stream for Subscription {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.receiver.poll_recv(cx)
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.guard.channel)
            .finish_non_exhaustive()
    }
}

/// Removes the subscriber, and forgets the channel when it was the last in the process.
struct Unsubscribe {
    channel: String,
    id: u64,
    backend: Arc<Backend>,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        match &*self.backend {
            Backend::Local(channels) => {
                if channels.unsubscribe(&self.channel, self.id) {
                    channels.remove_if_unused(&self.channel);
                }
            }
            Backend::Redis(redis) => redis.unsubscribe(std::mem::take(&mut self.channel), self.id),
        }
    }
}
