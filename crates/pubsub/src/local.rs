//! The in-process fan-out: the channels that have subscribers in this process, each with its
//! subscribers' bounded queues. It is the whole backend without Redis, and the local half of
//! the Redis backend (what the subscriber connection receives is delivered through it).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use tokio::sync::mpsc;

/// How many messages a subscriber may fall behind before it misses some.
pub const CHANNEL_CAPACITY: usize = 1024;

/// One subscriber's queue.
pub(crate) struct Subscriber {
    /// Its id among the subscribers of its channel.
    pub(crate) id: u64,
    sender: mpsc::Sender<Bytes>,
    /// Messages it missed because its queue was full.
    pub(crate) missed: Arc<AtomicU64>,
}

/// The channels that have subscribers in this process, with each subscriber's queue.
#[derive(Default)]
pub(crate) struct Channels {
    map: Mutex<HashMap<String, Vec<Subscriber>>>,
    next_id: AtomicU64,
}

impl Channels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Subscriber>>> {
        self.map.lock().expect("pub/sub channels lock")
    }

    /// A new subscriber of `channel`, and whether the channel is new in this process.
    pub(crate) fn subscribe(&self, channel: &str) -> (Subscriber, mpsc::Receiver<Bytes>, bool) {
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let subscriber = Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            sender,
            missed: Arc::new(AtomicU64::new(0)),
        };
        let handle = Subscriber {
            id: subscriber.id,
            sender: subscriber.sender.clone(),
            missed: subscriber.missed.clone(),
        };
        let mut map = self.lock();
        let new = !map.contains_key(channel);
        map.entry(channel.to_owned()).or_default().push(subscriber);
        (handle, receiver, new)
    }

    /// Hands `payload` to every local subscriber of `channel` (none is fine); one whose queue
    /// is full misses it.
    pub(crate) fn deliver(&self, channel: &str, payload: Bytes) {
        if let Some(subscribers) = self.lock().get(channel) {
            for subscriber in subscribers {
                if let Err(mpsc::error::TrySendError::Full(_)) =
                    subscriber.sender.try_send(payload.clone())
                {
                    subscriber.missed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Removes one subscriber; true when the channel has none left (its entry stays, for
    /// [`Channels::remove_if_unused`]).
    pub(crate) fn unsubscribe(&self, channel: &str, id: u64) -> bool {
        let mut map = self.lock();
        let Some(subscribers) = map.get_mut(channel) else {
            return false;
        };
        subscribers.retain(|subscriber| subscriber.id != id);
        subscribers.is_empty()
    }

    /// Forgets `channel` if nobody subscribes to it any more; true if it was forgotten.
    pub(crate) fn remove_if_unused(&self, channel: &str) -> bool {
        let mut map = self.lock();
        if map.get(channel).is_some_and(Vec::is_empty) {
            map.remove(channel);
            true
        } else {
            false
        }
    }

    /// The channels with an entry (subscribers, or an entry not yet removed).
    pub(crate) fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}
