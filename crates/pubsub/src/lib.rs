//! Publish/subscribe between the instances of a service: Redis pub/sub when `REDIS_URL` is set,
//! channels inside the process otherwise. Chat rooms and GraphQL's `postCreated` run on
//! it.
//!
//! ```no_run
//! # async fn example(logger: slog::Logger) -> Result<(), pubsub::PubSubError> {
//! use futures_util::StreamExt;
//! use pubsub::PubSub;
//!
//! let pubsub = PubSub::connect(None, logger).await?; // Some("redis://…") for Redis
//! let mut subscription = pubsub.subscribe("posts").await?;
//! pubsub.publish("posts", bytes::Bytes::from_static(b"{\"id\":1}")).await?;
//! assert_eq!(subscription.next().await.as_deref(), Some(&b"{\"id\":1}"[..]));
//! # Ok(()) }
//! ```
//!
//! - [`PubSub::subscribe`] returns a [`Subscription`], a `Stream` of payloads; dropping it
//!   unsubscribes. Every subscriber of a channel in the process gets every message published
//!   on it (by this process or, with Redis, any other) after `subscribe` returned.
//! - With Redis, each process has ONE dedicated subscriber connection, whatever the number of
//!   channels and subscribers; messages are fanned out to the local subscribers. Publishing
//!   goes through a small pool of ordinary connections.
//! - When the subscriber connection breaks, it is re-established with exponential backoff
//!   (100 ms doubling to 5 s, with jitter) and every channel that still has subscribers is subscribed again.
//!   Messages published while it was down are lost (pub/sub is not a queue); `subscribe` called
//!   meanwhile returns at once and its channel is subscribed on reconnection. `check` fails
//!   while the connection is down.
//! - Each subscriber has its own queue, whose memory grows with its backlog only (an idle
//!   channel costs about a kilobyte). A subscriber more than [`CHANNEL_CAPACITY`] messages
//!   behind misses the newer ones rather than growing memory or slowing the publisher;
//!   [`Subscription::missed`] counts them.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use deadpool_redis::{Runtime, redis};
use futures_util::{Stream, StreamExt};
use slog::Logger;
use tokio::sync::mpsc;

/// How many messages a subscriber may fall behind before it misses some.
pub const CHANNEL_CAPACITY: usize = 1024;

/// How long a Redis command (publish, subscribe, ping) may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// What publishing or subscribing can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// `REDIS_URL` could not be used.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// Redis refused or failed the command (the Redis client's error is the source).
    #[error("Redis pub/sub failed")]
    Redis(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No connection to Redis could be had from the pool.
    #[error("no Redis connection: {0}")]
    Pool(String),
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The subscriber connection to Redis is down (being re-established).
    #[error("the Redis subscriber connection is down")]
    Disconnected,
}

impl From<redis::RedisError> for PubSubError {
    fn from(error: redis::RedisError) -> Self {
        Self::Redis(Box::new(error))
    }
}

/// A pub/sub handle; cheap to clone, shared by every task of the process.
#[derive(Clone)]
pub struct PubSub {
    /// The backend behind every clone.
    inner: Arc<Backend>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

enum Backend {
    Local(Channels),
    Redis(RedisBackend),
}

/// One subscriber's queue.
struct Subscriber {
    id: u64,
    sender: mpsc::Sender<Bytes>,
    missed: Arc<AtomicU64>,
}

/// The channels that have subscribers in this process, with each subscriber's queue.
#[derive(Default)]
struct Channels {
    map: Mutex<HashMap<String, Vec<Subscriber>>>,
    next_id: AtomicU64,
}

impl Channels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Subscriber>>> {
        self.map.lock().expect("pub/sub channels lock")
    }

    /// A new subscriber of `channel`, and whether the channel is new in this process.
    fn subscribe(&self, channel: &str) -> (Subscriber, mpsc::Receiver<Bytes>, bool) {
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
    fn deliver(&self, channel: &str, payload: Bytes) {
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
    fn unsubscribe(&self, channel: &str, id: u64) -> bool {
        let mut map = self.lock();
        let Some(subscribers) = map.get_mut(channel) else {
            return false;
        };
        subscribers.retain(|subscriber| subscriber.id != id);
        subscribers.is_empty()
    }

    /// Forgets `channel` if nobody subscribes to it any more; true if it was forgotten.
    fn remove_if_unused(&self, channel: &str) -> bool {
        let mut map = self.lock();
        if map.get(channel).is_some_and(Vec::is_empty) {
            map.remove(channel);
            true
        } else {
            false
        }
    }

    fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

struct RedisBackend {
    /// Connections for PUBLISH and PING.
    pool: deadpool_redis::Pool,
    /// The local fan-out of what the subscriber connection receives.
    channels: Channels,
    /// Serialises changes to the set of subscribed channels with (re)subscriptions, so Redis
    /// and `channels` agree.
    subscriptions: tokio::sync::Mutex<Option<redis::aio::PubSubSink>>,
    /// Whether the subscriber connection is up.
    connected: AtomicBool,
    /// Channels whose last local subscriber left (the connection task unsubscribes them).
    unused: mpsc::UnboundedSender<String>,
}

impl PubSub {
    /// Pub/sub inside this process only (no `REDIS_URL`).
    pub fn in_process() -> Self {
        Self {
            inner: Arc::new(Backend::Local(Channels::default())),
        }
    }

    /// Redis pub/sub when `redis_url` is given (waiting up to 2 s for the first subscriber
    /// connection, which is retried in the background if Redis is not there yet), in-process
    /// otherwise. Must be called within a tokio runtime that outlives the handle.
    pub async fn connect(redis_url: Option<&str>, logger: Logger) -> Result<Self, PubSubError> {
        let Some(url) = redis_url else {
            return Ok(Self::in_process());
        };
        let client =
            redis::Client::open(url).map_err(|error| PubSubError::InvalidUrl(error.to_string()))?;
        let timeout = Some(REDIS_TIMEOUT);
        let pool = deadpool_redis::Config::from_url(url)
            .builder()
            .map_err(|error| PubSubError::InvalidUrl(error.to_string()))?
            .max_size(16)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| PubSubError::InvalidUrl(error.to_string()))?;
        let (unused, unused_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Backend::Redis(RedisBackend {
            pool,
            channels: Channels::default(),
            subscriptions: tokio::sync::Mutex::new(None),
            connected: AtomicBool::new(false),
            unused,
        }));
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(run_subscriber_connection(
            Arc::downgrade(&inner),
            client,
            unused_rx,
            logger,
            first_tx,
        ));
        // Either the first connection is up, or it failed and is being retried.
        let _ = tokio::time::timeout(REDIS_TIMEOUT, first_rx).await;
        Ok(Self { inner })
    }

    /// `redis` or `memory`, for logs.
    pub fn kind(&self) -> &'static str {
        match *self.inner {
            Backend::Local(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Sends `payload` to every subscriber of `channel` (in every process, with Redis).
    /// Nobody subscribing is not an error.
    pub async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), PubSubError> {
        match &*self.inner {
            Backend::Local(channels) => {
                channels.deliver(channel, payload);
                Ok(())
            }
            Backend::Redis(redis) => tokio::time::timeout(REDIS_TIMEOUT, async {
                let mut connection = redis
                    .pool
                    .get()
                    .await
                    .map_err(|error| PubSubError::Pool(error.to_string()))?;
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload.as_ref())
                    .query_async::<i64>(&mut *connection)
                    .await?;
                Ok(())
            })
            .await
            .map_err(|_| PubSubError::Timeout(REDIS_TIMEOUT))?,
        }
    }

    /// Subscribes to `channel`. Returns once the subscription is active (with Redis: confirmed
    /// by Redis, unless the subscriber connection is down, see the module docs).
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, PubSubError> {
        let (subscriber, receiver) = match &*self.inner {
            Backend::Local(channels) => {
                let (subscriber, receiver, _) = channels.subscribe(channel);
                (subscriber, receiver)
            }
            Backend::Redis(redis) => {
                let mut sink = redis.subscriptions.lock().await;
                let (subscriber, receiver, new) = redis.channels.subscribe(channel);
                if new && let Some(connection) = sink.as_mut() {
                    let subscribed =
                        tokio::time::timeout(REDIS_TIMEOUT, connection.subscribe(channel)).await;
                    match subscribed {
                        Ok(Ok(())) => {}
                        // The connection is broken: its task notices, reconnects, and subscribes
                        // every channel again, this one included.
                        Ok(Err(_)) | Err(_) => {
                            redis.connected.store(false, Ordering::SeqCst);
                        }
                    }
                }
                (subscriber, receiver)
            }
        };
        Ok(Subscription {
            receiver,
            missed: subscriber.missed,
            _guard: Unsubscribe {
                channel: channel.to_owned(),
                id: subscriber.id,
                backend: self.inner.clone(),
            },
        })
    }

    /// Whether pub/sub works (for `/readyz`): always in-process; with Redis, the subscriber
    /// connection is up and Redis answers a PING.
    pub async fn check(&self) -> Result<(), PubSubError> {
        match &*self.inner {
            Backend::Local(_) => Ok(()),
            Backend::Redis(redis) => {
                if !redis.connected.load(Ordering::SeqCst) {
                    return Err(PubSubError::Disconnected);
                }
                tokio::time::timeout(REDIS_TIMEOUT, async {
                    let mut connection = redis
                        .pool
                        .get()
                        .await
                        .map_err(|error| PubSubError::Pool(error.to_string()))?;
                    redis::cmd("PING")
                        .query_async::<String>(&mut *connection)
                        .await?;
                    Ok(())
                })
                .await
                .map_err(|_| PubSubError::Timeout(REDIS_TIMEOUT))?
            }
        }
    }
}

/// The messages of one channel, in the order they were published; dropping it unsubscribes.
pub struct Subscription {
    /// This subscriber's queue.
    receiver: mpsc::Receiver<Bytes>,
    /// Messages skipped because this subscriber fell behind.
    missed: Arc<AtomicU64>,
    /// Unsubscribes on drop.
    _guard: Unsubscribe,
}

impl Subscription {
    /// How many messages this subscriber missed because it fell [`CHANNEL_CAPACITY`] behind.
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
            .field("channel", &self._guard.channel)
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
            Backend::Redis(redis) => {
                // The connection task takes the subscriptions lock and re-checks, so a new
                // subscriber arriving meanwhile keeps the channel.
                if redis.channels.unsubscribe(&self.channel, self.id) {
                    let _ = redis.unused.send(std::mem::take(&mut self.channel));
                }
            }
        }
    }
}

/// Owns the Redis subscriber connection: connects (with backoff), subscribes every channel
/// with local subscribers, fans what arrives out to them, unsubscribes unused channels, and
/// starts over when the connection breaks. Ends when the last [`PubSub`] handle is dropped.
async fn run_subscriber_connection(
    backend: std::sync::Weak<Backend>,
    client: redis::Client,
    mut unused: mpsc::UnboundedReceiver<String>,
    logger: Logger,
    first: tokio::sync::oneshot::Sender<()>,
) {
    let mut first = Some(first);
    // 100 ms doubling to 5 s, with jitter, so instances that lost Redis together do not all
    // reconnect at the same instant; back to the start after each successful connection.
    let schedule = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .with_jitter();
    let mut delays = schedule.build();
    loop {
        let mut backoff = delays.next().unwrap_or(Duration::from_secs(5));
        let connected = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub()).await;
        let Some(strong) = backend.upgrade() else {
            return;
        };
        let Backend::Redis(redis) = &*strong else {
            return;
        };
        let mut stream = match connected {
            Ok(Ok(pubsub)) => {
                let (mut sink, stream) = pubsub.split();
                let mut subscriptions = redis.subscriptions.lock().await;
                let names = redis.channels.names();
                let resubscribed = if names.is_empty() {
                    Ok(Ok(()))
                } else {
                    tokio::time::timeout(REDIS_TIMEOUT, sink.subscribe(&names)).await
                };
                match resubscribed {
                    Ok(Ok(())) => {
                        *subscriptions = Some(sink);
                        redis.connected.store(true, Ordering::SeqCst);
                        slog::info!(logger, "pub/sub connected to Redis"; "channels" => names.len());
                        delays = schedule.build();
                        backoff = delays.next().unwrap_or(Duration::from_secs(5));
                        Some(stream)
                    }
                    Ok(Err(error)) => {
                        slog::warn!(logger, "pub/sub: subscribing again failed"; "error" => %error);
                        None
                    }
                    Err(_) => {
                        slog::warn!(logger, "pub/sub: subscribing again timed out");
                        None
                    }
                }
            }
            Ok(Err(error)) => {
                slog::warn!(logger, "pub/sub: cannot connect to Redis"; "error" => %error, "retry_in_ms" => backoff.as_millis());
                None
            }
            Err(_) => {
                slog::warn!(logger, "pub/sub: connecting to Redis timed out"; "retry_in_ms" => backoff.as_millis());
                None
            }
        };
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
        drop(strong);
        if let Some(stream) = stream.as_mut() {
            loop {
                tokio::select! {
                    message = stream.next() => {
                        let Some(message) = message else { break };
                        let Some(strong) = backend.upgrade() else { return };
                        if let Backend::Redis(redis) = &*strong {
                            redis.channels.deliver(
                                message.get_channel_name(),
                                Bytes::copy_from_slice(message.get_payload_bytes()),
                            );
                        }
                    }
                    channel = unused.recv() => {
                        let Some(channel) = channel else { return };
                        let Some(strong) = backend.upgrade() else { return };
                        if let Backend::Redis(redis) = &*strong {
                            let mut subscriptions = redis.subscriptions.lock().await;
                            if redis.channels.remove_if_unused(&channel)
                                && let Some(sink) = subscriptions.as_mut()
                            {
                                // A failure means the connection broke; the stream ends next.
                                let _ = tokio::time::timeout(REDIS_TIMEOUT, sink.unsubscribe(&channel)).await;
                            }
                        }
                    }
                }
            }
            let Some(strong) = backend.upgrade() else {
                return;
            };
            if let Backend::Redis(redis) = &*strong {
                redis.connected.store(false, Ordering::SeqCst);
                *redis.subscriptions.lock().await = None;
            }
            slog::warn!(logger, "pub/sub: lost the Redis connection; reconnecting");
        }
        // Waiting to reconnect: channels that lost their last subscriber meanwhile are
        // forgotten, so they are not subscribed again.
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                channel = unused.recv() => {
                    let Some(channel) = channel else { return };
                    let Some(strong) = backend.upgrade() else { return };
                    if let Backend::Redis(redis) = &*strong {
                        let _subscriptions = redis.subscriptions.lock().await;
                        redis.channels.remove_if_unused(&channel);
                    }
                }
            }
        }
    }
}

impl runtime::Probe for PubSub {
    fn probe(&self) -> runtime::ProbeFuture<'_> {
        Box::pin(async move { self.check().await.map_err(anyhow::Error::from) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next(subscription: &mut Subscription) -> Bytes {
        tokio::time::timeout(Duration::from_secs(5), subscription.next())
            .await
            .expect("a message within 5 s")
            .expect("the subscription is open")
    }

    #[tokio::test]
    async fn every_local_subscriber_gets_every_message_in_order() {
        let pubsub = PubSub::in_process();
        let mut first = pubsub.subscribe("a").await.expect("subscribe");
        let mut second = pubsub.subscribe("a").await.expect("subscribe");
        let mut other = pubsub.subscribe("b").await.expect("subscribe");
        for n in 0..3 {
            pubsub
                .publish("a", Bytes::from(format!("m{n}")))
                .await
                .expect("publish");
        }
        pubsub
            .publish("b", Bytes::from_static(b"b"))
            .await
            .expect("publish");
        for subscription in [&mut first, &mut second] {
            for n in 0..3 {
                assert_eq!(next(subscription).await, format!("m{n}"));
            }
        }
        assert_eq!(next(&mut other).await, "b");
    }

    #[tokio::test]
    async fn dropping_the_last_subscriber_forgets_the_channel() {
        let pubsub = PubSub::in_process();
        let first = pubsub.subscribe("a").await.expect("subscribe");
        let second = pubsub.subscribe("a").await.expect("subscribe");
        let Backend::Local(channels) = &*pubsub.inner else {
            unreachable!("in-process")
        };
        drop(first);
        assert_eq!(channels.names(), vec!["a".to_owned()]);
        drop(second);
        assert!(channels.names().is_empty());
        // Publishing to nobody is fine.
        pubsub
            .publish("a", Bytes::from_static(b"x"))
            .await
            .expect("publish");
        pubsub.check().await.expect("in-process is always ready");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_misses_messages_and_others_do_not() {
        let pubsub = PubSub::in_process();
        let mut slow = pubsub.subscribe("a").await.expect("subscribe");
        let mut keeping_up = pubsub.subscribe("a").await.expect("subscribe");
        let total = CHANNEL_CAPACITY + 10;
        for n in 0..total {
            pubsub
                .publish("a", Bytes::from(n.to_string()))
                .await
                .expect("publish");
            assert_eq!(next(&mut keeping_up).await, n.to_string());
        }
        assert_eq!(slow.missed(), 10);
        assert_eq!(keeping_up.missed(), 0);
        for n in 0..CHANNEL_CAPACITY {
            assert_eq!(next(&mut slow).await, n.to_string());
        }
        pubsub
            .publish("a", Bytes::from_static(b"caught up"))
            .await
            .expect("publish");
        assert_eq!(next(&mut slow).await, "caught up");
    }

    fn logger() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    fn redis_url() -> String {
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    fn unique(name: &str) -> String {
        format!("test:pubsub:{}:{name}", uuid::Uuid::new_v4().simple())
    }

    /// How many subscribers Redis counts on `channel`.
    async fn redis_subscribers(channel: &str) -> i64 {
        let client = redis::Client::open(redis_url()).expect("client");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("a Redis connection");
        let (_, count): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut connection)
            .await
            .expect("PUBSUB NUMSUB");
        count
    }

    /// Polls `condition` every 20 ms for up to 5 s.
    async fn eventually<F, Fut>(what: &str, condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        testing::eventually(what, Duration::from_secs(5), condition).await;
    }

    #[tokio::test]
    async fn redis_carries_messages_between_processes_over_one_connection_each() {
        let url = redis_url();
        let publisher = PubSub::connect(Some(&url), logger()).await.expect("A");
        let subscriber = PubSub::connect(Some(&url), logger()).await.expect("B");
        assert_eq!(subscriber.kind(), "redis");
        subscriber.check().await.expect("connected");
        let channel = unique("room");
        let mut first = subscriber.subscribe(&channel).await.expect("subscribe");
        let mut second = subscriber.subscribe(&channel).await.expect("subscribe");
        // Two local subscribers, one Redis subscription.
        assert_eq!(redis_subscribers(&channel).await, 1);
        for n in 0..3 {
            publisher
                .publish(&channel, Bytes::from(format!("m{n}")))
                .await
                .expect("publish");
        }
        for subscription in [&mut first, &mut second] {
            for n in 0..3 {
                assert_eq!(next(subscription).await, format!("m{n}"));
            }
        }
        drop(first);
        assert_eq!(redis_subscribers(&channel).await, 1, "one subscriber left");
        drop(second);
        eventually("Redis forgets the channel", || async {
            redis_subscribers(&channel).await == 0
        })
        .await;
    }

    #[tokio::test]
    async fn an_invalid_url_is_refused() {
        let error = PubSub::connect(Some("redis://[::1"), logger())
            .await
            .expect_err("refused");
        assert!(matches!(error, PubSubError::InvalidUrl(_)), "{error}");
    }

    #[tokio::test]
    async fn subscriptions_survive_a_lost_redis_connection() {
        let (switch, switch_url) = testing::TcpSwitch::for_url(&testing::redis_url()).await;
        let subscriber = PubSub::connect(Some(&switch_url), logger())
            .await
            .expect("through the switch");
        let publisher = PubSub::connect(Some(&redis_url()), logger())
            .await
            .expect("direct");
        let channel = unique("survivor");
        let mut subscription = subscriber.subscribe(&channel).await.expect("subscribe");
        publisher
            .publish(&channel, Bytes::from_static(b"before"))
            .await
            .expect("publish");
        assert_eq!(next(&mut subscription).await, "before");

        switch.cut();
        eventually("check reports the lost connection", || async {
            subscriber.check().await.is_err()
        })
        .await;
        // Subscribing while Redis is away still works once it is back.
        let late_channel = unique("late");
        let mut late = subscriber
            .subscribe(&late_channel)
            .await
            .expect("subscribe");
        switch.restore();
        eventually("the subscriber connection is back", || async {
            subscriber.check().await.is_ok()
        })
        .await;
        publisher
            .publish(&channel, Bytes::from_static(b"after"))
            .await
            .expect("publish");
        publisher
            .publish(&late_channel, Bytes::from_static(b"late"))
            .await
            .expect("publish");
        assert_eq!(next(&mut subscription).await, "after");
        assert_eq!(next(&mut late).await, "late");
    }
}
