//! The Redis backend: ONE dedicated subscriber connection per process, owned by a task that
//! (re)connects with backoff, subscribes every channel with local subscribers, fans what
//! arrives out through [`Channels`], and unsubscribes channels nobody listens to any more;
//! PUBLISH, PING and the [`crate::Leases`] scripts go through a small pool of ordinary
//! connections.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use deadpool_redis::{Runtime, redis};
use futures_util::StreamExt;
use slog::Logger;
use tokio::sync::mpsc;

use crate::{
    PubSubError,
    local::{Channels, Subscriber},
};

/// How long a Redis command (publish, subscribe, ping, a lease script) may take in all: getting
/// a pooled connection included.
pub(crate) const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one reply on a pooled connection may take, and opening one: well under
/// [`REDIS_TIMEOUT`], so a pooled connection that stopped answering fails the pool's check
/// quickly and the command goes on over a new one within its time.
const REPLY_TIMEOUT: Duration = Duration::from_millis(500);

/// Pub/sub over Redis.
pub(crate) struct RedisBackend {
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

impl RedisBackend {
    /// The backend on `url`, its subscriber connection task started; waits up to 2 s for the
    /// first connection (retried in the background if Redis is not there yet).
    pub(crate) async fn connect(url: &str, logger: Logger) -> Result<Arc<Self>, PubSubError> {
        let client = redis::Client::open(url).map_err(PubSubError::invalid_url)?;
        let timeout = Some(REDIS_TIMEOUT);
        let connections = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REPLY_TIMEOUT))
            .set_response_timeout(Some(REPLY_TIMEOUT));
        let manager = deadpool_redis::Manager::new_with_config(url, connections)
            .map_err(PubSubError::invalid_url)?;
        let pool = deadpool_redis::Pool::builder(manager)
            .max_size(16)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(PubSubError::invalid_url)?;
        let (unused, unused_rx) = mpsc::unbounded_channel();
        let backend = Arc::new(Self {
            pool,
            channels: Channels::default(),
            subscriptions: tokio::sync::Mutex::new(None),
            connected: AtomicBool::new(false),
            unused,
        });
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(run_subscriber_connection(
            Arc::downgrade(&backend),
            client,
            unused_rx,
            logger,
            first_tx,
        ));
        // Either the first connection is up, or it failed and is being retried.
        let _ = tokio::time::timeout(REDIS_TIMEOUT, first_rx).await;
        Ok(backend)
    }

    /// One PUBLISH over a pooled connection, within the timeout.
    pub(crate) async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), PubSubError> {
        tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut connection = self.pool.get().await.map_err(PubSubError::pool)?;
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload.as_ref())
                .query_async::<i64>(&mut *connection)
                .await
                .map_err(PubSubError::redis)?;
            Ok(())
        })
        .await
        .map_err(|_| PubSubError::Timeout(REDIS_TIMEOUT))?
    }

    /// Runs `pipe` over a pooled connection, within the timeout (the [`crate::Leases`]).
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, PubSubError> {
        tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut connection = self.pool.get().await.map_err(PubSubError::pool)?;
            pipe.query_async::<T>(&mut *connection)
                .await
                .map_err(PubSubError::redis)
        })
        .await
        .map_err(|_| PubSubError::Timeout(REDIS_TIMEOUT))?
    }

    /// A new local subscriber of `channel`; the channel's first one subscribes it on the
    /// subscriber connection (confirmed by Redis, unless the connection is down: its task
    /// subscribes every channel again once it is back).
    pub(crate) async fn subscribe(&self, channel: &str) -> (Subscriber, mpsc::Receiver<Bytes>) {
        let mut sink = self.subscriptions.lock().await;
        let (subscriber, receiver, new) = self.channels.subscribe(channel);
        if new && let Some(connection) = sink.as_mut() {
            let subscribed =
                tokio::time::timeout(REDIS_TIMEOUT, connection.subscribe(channel)).await;
            match subscribed {
                Ok(Ok(())) => {}
                // The connection is broken: its task notices, reconnects, and subscribes
                // every channel again, this one included.
                Ok(Err(_)) | Err(_) => {
                    self.connected.store(false, Ordering::SeqCst);
                }
            }
        }
        (subscriber, receiver)
    }

    /// Removes a local subscriber; the channel's last one hands it to the connection task,
    /// which takes the subscriptions lock and re-checks, so a new subscriber arriving meanwhile
    /// keeps the channel.
    pub(crate) fn unsubscribe(&self, channel: String, id: u64) {
        if self.channels.unsubscribe(&channel, id) {
            let _ = self.unused.send(channel);
        }
    }

    /// The subscriber connection is up and Redis answers a PING.
    pub(crate) async fn check(&self) -> Result<(), PubSubError> {
        if !self.connected.load(Ordering::SeqCst) {
            return Err(PubSubError::Disconnected);
        }
        tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut connection = self.pool.get().await.map_err(PubSubError::pool)?;
            redis::cmd("PING")
                .query_async::<String>(&mut *connection)
                .await
                .map_err(PubSubError::redis)?;
            Ok(())
        })
        .await
        .map_err(|_| PubSubError::Timeout(REDIS_TIMEOUT))?
    }
}

/// Owns the Redis subscriber connection: connects (with backoff), subscribes every channel
/// with local subscribers, fans what arrives out to them, unsubscribes unused channels, and
/// starts over when the connection breaks. Ends when the backend is dropped (the last
/// [`crate::PubSub`] handle and [`crate::Subscription`] are gone).
async fn run_subscriber_connection(
    backend: Weak<RedisBackend>,
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
        let Some(redis) = backend.upgrade() else {
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
        drop(redis);
        if let Some(stream) = stream.as_mut() {
            loop {
                tokio::select! {
                    message = stream.next() => {
                        let Some(message) = message else { break };
                        let Some(redis) = backend.upgrade() else { return };
                        redis.channels.deliver(
                            message.get_channel_name(),
                            Bytes::copy_from_slice(message.get_payload_bytes()),
                        );
                    }
                    channel = unused.recv() => {
                        let Some(channel) = channel else { return };
                        let Some(redis) = backend.upgrade() else { return };
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
            let Some(redis) = backend.upgrade() else {
                return;
            };
            redis.connected.store(false, Ordering::SeqCst);
            *redis.subscriptions.lock().await = None;
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
                    let Some(redis) = backend.upgrade() else { return };
                    let _subscriptions = redis.subscriptions.lock().await;
                    redis.channels.remove_if_unused(&channel);
                }
            }
        }
    }
}
