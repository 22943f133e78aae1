//! RabbitMQ through lapin 4, with an explicit reconnect loop.
//!
//! Producers share one connection and one confirm-mode channel per [`AmqpQueue`]; when either
//! fails, the next use opens new ones (with backoff) and declares the topology again. Every
//! publish is `mandatory` and waits for its confirm: a nack or a dropped connection is retried
//! on a fresh connection, an unroutable message or exhausted retries are the caller's error.
//!
//! Each consumer has its own connection (so one consumer's failure, or its process's death,
//! hands exactly its unacked deliveries back to the broker). Retries are published to
//! `<queue>.retry.<n>` (n = the attempt that failed, at most [`RETRY_LEVELS`]) with a
//! per-message `expiration`; those queues have no consumer and dead-letter expired messages
//! back to `<queue>`. Messages of one level have similar delays, so RabbitMQ's expiry at the
//! head of a queue delays a message by at most the jitter of the one before it.

use std::{collections::HashSet, sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
        BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
        QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use slog::Logger;
use tokio::sync::{Mutex, mpsc};

use super::{
    ConsumeOptions, DELIVERIES_HEADER, Delivery, DeliveryHandle, ERROR_HEADER, EnqueueError,
    Envelope, QueueArgs, QueueDepth, QueueError, REQUEST_ID_HEADER, dead_queue_name,
};
use db::redact;

/// The number of retry queues (`<queue>.retry.1` … `.retry.10`); later attempts share the last.
pub const RETRY_LEVELS: u32 = 10;
/// How long connecting may take before it counts as a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a publish waits for its confirm before it counts as a failure.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// The backoff between publish attempts: 100 ms doubling to 2 s, 8 retries (~10 s in all).
fn publish_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(8)
        .with_jitter()
        .build()
}

/// The backoff between a consumer's reconnections: 200 ms doubling to 5 s, forever.
fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .with_jitter()
        .build()
}

/// RabbitMQ's side of a [`super::JobQueue`].
#[derive(Clone)]
pub struct AmqpQueue {
    /// The shared state.
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    queue: String,
    dead: String,
    exchange: String,
    logger: Logger,
    /// The producers' connection and confirm channel, while they work.
    live: Mutex<Option<Live>>,
}

struct Live {
    connection: Connection,
    channel: Channel,
    /// Retry levels declared on this connection.
    retry_levels: HashSet<u32>,
}

/// Why one publish attempt failed.
enum Failure {
    /// Worth another try on a fresh connection.
    Transient(String),
    /// Another try would fail the same way.
    Permanent(String),
}

impl AmqpQueue {
    /// Connects (a broker that is down is logged, and retried on use).
    pub async fn connect(url: &str, args: &QueueArgs, logger: Logger) -> anyhow::Result<Self> {
        let queue = Self {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                queue: args.queue.clone(),
                dead: dead_queue_name(&args.queue),
                exchange: args.exchange.clone(),
                logger,
                live: Mutex::new(None),
            }),
        };
        match queue.channel().await {
            Ok(_) => slog::info!(queue.inner.logger, "job queue ready";
                "queue" => &queue.inner.queue, "backend" => "amqp", "url" => redact(url)),
            Err(error) => slog::warn!(queue.inner.logger,
                "RabbitMQ is unavailable; retrying on use";
                "url" => redact(url), "error" => error.to_string()),
        }
        Ok(queue)
    }

    /// Opens a connection and declares the topology on a channel of it.
    async fn open(&self) -> Result<(Connection, Channel), lapin::Error> {
        let properties =
            ConnectionProperties::default().with_connection_name(LongString::from("platform"));
        let connection = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.inner.url, properties),
        )
        .await
        {
            Ok(connection) => connection?,
            Err(_) => {
                return Err(lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting to RabbitMQ timed out",
                )));
            }
        };
        let channel = connection.create_channel().await?;
        self.declare_topology(&channel).await?;
        Ok((connection, channel))
    }

    /// The durable exchange, job queue and dead-letter queue (idempotent).
    async fn declare_topology(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = QueueDeclareOptions::durable();
        channel
            .exchange_declare(
                self.inner.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                self.inner.queue.as_str().into(),
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                self.inner.dead.as_str().into(),
                durable,
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// The name of the retry queue for a job whose attempt `attempt` failed.
    fn retry_queue(&self, attempt: u32) -> (u32, String) {
        let level = attempt.clamp(1, RETRY_LEVELS);
        (level, format!("{}.retry.{level}", self.inner.queue))
    }

    /// The producers' channel, reconnecting when it is gone.
    async fn channel(&self) -> Result<Channel, lapin::Error> {
        let mut live = self.inner.live.lock().await;
        if let Some(current) = live.as_ref() {
            if current.connection.status().connected() && current.channel.status().connected() {
                return Ok(current.channel.clone());
            }
            slog::warn!(self.inner.logger, "RabbitMQ connection lost; reconnecting");
        }
        *live = None;
        let (connection, channel) = self.open().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *live = Some(Live {
            connection,
            channel: channel.clone(),
            retry_levels: HashSet::new(),
        });
        Ok(channel)
    }

    /// Forgets the producers' connection (after it failed), closing what is left of it.
    async fn reset(&self) {
        if let Some(live) = self.inner.live.lock().await.take() {
            close_quietly(live.connection.close(320, "reconnecting".into())).await;
        }
    }

    /// Declares the retry queue of `level` on the current connection, once.
    async fn ensure_retry_queue(&self, level: u32, name: &str) -> Result<(), lapin::Error> {
        let channel = self.channel().await?;
        {
            let live = self.inner.live.lock().await;
            if live
                .as_ref()
                .is_some_and(|live| live.retry_levels.contains(&level))
            {
                return Ok(());
            }
        }
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("")),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(LongString::from(self.inner.queue.as_str())),
        );
        channel
            .queue_declare(name.into(), QueueDeclareOptions::durable(), arguments)
            .await?;
        if let Some(live) = self.inner.live.lock().await.as_mut() {
            live.retry_levels.insert(level);
        }
        Ok(())
    }

    /// Publishes to the job queue.
    pub async fn publish_raw(
        &self,
        body: &[u8],
        message_id: &str,
        request_id: Option<&str>,
    ) -> Result<(), EnqueueError> {
        let properties = properties(message_id, request_id, &[]);
        self.publish_to(&self.inner.queue, body, properties).await
    }

    /// Publishes through the default exchange to `queue`, retrying until confirmed.
    async fn publish_to(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), EnqueueError> {
        let mut delays = publish_backoff();
        loop {
            let error = match self.publish_once(queue, body, properties.clone()).await {
                Ok(()) => return Ok(()),
                Err(Failure::Permanent(error)) => return Err(EnqueueError::Rejected(error)),
                Err(Failure::Transient(error)) => error,
            };
            let Some(delay) = delays.next() else {
                return Err(EnqueueError::Unavailable(error));
            };
            slog::warn!(self.inner.logger, "publish not confirmed; retrying";
                "queue" => queue, "error" => &error, "delay_ms" => delay.as_millis());
            tokio::time::sleep(delay).await;
        }
    }

    async fn publish_once(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), Failure> {
        let channel = self
            .channel()
            .await
            .map_err(|error| Failure::Transient(error.to_string()))?;
        let outcome = async {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties,
                )
                .await?;
            confirm.await
        };
        match tokio::time::timeout(CONFIRM_TIMEOUT, outcome).await {
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(returned)))) => Err(Failure::Permanent(format!(
                "no queue {queue} to route to ({} {})",
                returned.reply_code, returned.reply_text
            ))),
            Ok(Ok(Confirmation::Nack(_))) => Err(Failure::Transient(
                "the broker nacked the message".to_owned(),
            )),
            Ok(Ok(Confirmation::NotRequested)) => Err(Failure::Permanent(
                "publisher confirms are off on this channel".to_owned(),
            )),
            Ok(Err(error)) => {
                self.reset().await;
                Err(Failure::Transient(error.to_string()))
            }
            Err(_) => {
                self.reset().await;
                Err(Failure::Transient(format!(
                    "no confirm within {} s",
                    CONFIRM_TIMEOUT.as_secs()
                )))
            }
        }
    }

    /// A consumer on its own connection (opened on the first `next`).
    pub async fn consume(&self, options: ConsumeOptions) -> Result<AmqpConsumer, QueueError> {
        let mut consumer = AmqpConsumer {
            queue: self.clone(),
            options,
            session: None,
            stopped: false,
        };
        // Fail fast when the broker is down at start; later failures reconnect in `next`.
        if let Err(error) = consumer.start().await {
            slog::warn!(self.inner.logger, "consumer cannot reach RabbitMQ yet; retrying";
                "error" => error.to_string());
        }
        Ok(consumer)
    }

    /// Whether the broker answers (reconnecting when needed).
    pub async fn check(&self) -> anyhow::Result<()> {
        match tokio::time::timeout(Duration::from_secs(3), self.channel()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(anyhow::anyhow!("RabbitMQ: {error}")),
            Err(_) => Err(anyhow::anyhow!("RabbitMQ did not answer within 3 s")),
        }
    }

    /// Takes up to `limit` messages off the dead-letter queue (acking them).
    #[cfg(any(test, feature = "testing"))]
    pub async fn take_dead_letters(
        &self,
        limit: usize,
    ) -> Result<Vec<super::DeadLetter>, QueueError> {
        let channel = self.channel().await?;
        let mut letters = Vec::new();
        while letters.len() < limit {
            let Some(message) = channel
                .basic_get(
                    self.inner.dead.as_str().into(),
                    lapin::options::BasicGetOptions::default(),
                )
                .await?
            else {
                break;
            };
            let delivery = message.delivery;
            let error = header(&delivery.properties, ERROR_HEADER);
            delivery.acker.ack(BasicAckOptions::default()).await?;
            letters.push(super::DeadLetter {
                body: delivery.data,
                error,
            });
        }
        Ok(letters)
    }

    /// Message counts of the job queue and the dead-letter queue.
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let channel = self.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let ready = channel
            .queue_declare(
                self.inner.queue.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await?
            .message_count();
        let dead = channel
            .queue_declare(
                self.inner.dead.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await?
            .message_count();
        Ok(QueueDepth {
            ready: u64::from(ready),
            dead: u64::from(dead),
        })
    }

    /// Deletes the queues (retry levels included) and the exchange: for tests and tools.
    #[cfg(any(test, feature = "testing"))]
    pub async fn delete_topology(&self) -> Result<(), QueueError> {
        let channel = self.channel().await?;
        let mut queues = vec![self.inner.queue.clone(), self.inner.dead.clone()];
        queues.extend((1..=RETRY_LEVELS).map(|level| self.retry_queue(level).1));
        for queue in queues {
            channel
                .queue_delete(
                    queue.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await?;
        }
        channel
            .exchange_delete(
                self.inner.exchange.as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// Closes the producers' connection.
    pub async fn close(&self) {
        if let Some(live) = self.inner.live.lock().await.take() {
            close_quietly(live.connection.close(200, "closing".into())).await;
        }
    }
}

/// Closes a connection or channel, giving up after 2 s (a dead connection may never answer).
async fn close_quietly(close: impl std::future::Future<Output = Result<(), lapin::Error>>) {
    let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
}

/// Persistent JSON message properties with the id, the request id and extra headers.
fn properties(
    message_id: &str,
    request_id: Option<&str>,
    extra: &[(&str, &str)],
) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(request_id) = request_id {
        headers.insert(
            REQUEST_ID_HEADER.into(),
            AMQPValue::LongString(LongString::from(request_id)),
        );
    }
    for (name, value) in extra {
        headers.insert(
            (*name).into(),
            AMQPValue::LongString(LongString::from(*value)),
        );
    }
    let timestamp = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(ShortString::from(truncate(message_id, 255)))
        .with_timestamp(timestamp)
        .with_headers(headers)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A string header of a message.
fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(name))
        .and_then(|value| match value {
            AMQPValue::LongString(text) => {
                Some(String::from_utf8_lossy(text.as_bytes()).into_owned())
            }
            AMQPValue::ShortString(text) => Some(text.as_str().to_owned()),
            _ => None,
        })
}

/// How many times a message was handed to a consumer before: its [`DELIVERIES_HEADER`], 0
/// when absent or not a number.
fn delivered_before(properties: &BasicProperties) -> u32 {
    let value = properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(DELIVERIES_HEADER).cloned());
    match value {
        Some(AMQPValue::LongString(text)) => String::from_utf8_lossy(text.as_bytes())
            .parse()
            .unwrap_or(0),
        Some(AMQPValue::ShortString(text)) => text.as_str().parse().unwrap_or(0),
        Some(AMQPValue::LongUInt(count)) => count,
        Some(AMQPValue::LongLongInt(count)) => u32::try_from(count).unwrap_or(0),
        _ => 0,
    }
}

/// The connection, channel and lapin consumer of an [`AmqpConsumer`].
struct Session {
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
    /// To this session's settler (see [`settle_deliveries`]).
    settle: mpsc::UnboundedSender<Settle>,
    /// The settler: flushed before the channel closes.
    settler: tokio::task::JoinHandle<()>,
}

/// Deliveries from RabbitMQ, on a connection of their own.
pub struct AmqpConsumer {
    queue: AmqpQueue,
    options: ConsumeOptions,
    session: Option<Session>,
    stopped: bool,
}

impl AmqpConsumer {
    async fn start(&mut self) -> Result<(), lapin::Error> {
        let (connection, channel) = self.queue.open().await?;
        channel
            .basic_qos(self.options.prefetch.max(1), BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                self.queue.inner.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        slog::info!(self.queue.inner.logger, "consuming";
            "queue" => &self.queue.inner.queue, "prefetch" => self.options.prefetch);
        let (settle, settlements) = mpsc::unbounded_channel();
        let settler = tokio::spawn(settle_deliveries(
            settlements,
            self.queue.inner.logger.clone(),
        ));
        self.session = Some(Session {
            connection,
            channel,
            consumer,
            settle,
            settler,
        });
        Ok(())
    }

    /// The next delivery; reconnects (with backoff, forever) when the connection drops.
    pub async fn next(&mut self) -> Option<Delivery> {
        let mut delays = reconnect_backoff();
        loop {
            if self.session.is_none() {
                if self.stopped {
                    return None;
                }
                if let Err(error) = self.start().await {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    slog::warn!(self.queue.inner.logger, "consumer reconnect failed";
                        "error" => error.to_string(), "delay_ms" => delay.as_millis());
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            let session = self.session.as_mut()?;
            match session.consumer.next().await {
                Some(Ok(delivery)) => {
                    let settle = session.settle.clone();
                    if delivery.redelivered {
                        self.recount(delivery, settle).await;
                        continue;
                    }
                    return Some(self.wrap(delivery, settle));
                }
                Some(Err(error)) => {
                    slog::warn!(self.queue.inner.logger, "consumer connection failed";
                        "error" => error.to_string());
                    self.drop_session().await;
                }
                None => {
                    if self.stopped {
                        return None;
                    }
                    slog::warn!(self.queue.inner.logger, "consumer cancelled by the broker");
                    self.drop_session().await;
                }
            }
        }
    }

    /// A redelivered message (its consumer died or handed it back unsettled): publishes a copy
    /// carrying its delivery count to the job queue, then acks it, so the count is durable
    /// before the job is handed out again (the module documentation of [`super`]). When the
    /// copy cannot be published, the message goes back to the queue as it is.
    async fn recount(
        &self,
        delivery: lapin::message::Delivery,
        settle: mpsc::UnboundedSender<Settle>,
    ) {
        let tag = delivery.delivery_tag;
        let _ = settle.send(Settle::Delivered(tag, delivery.acker));
        let handed_out = delivered_before(&delivery.properties).saturating_add(1);
        let count = handed_out.to_string();
        let mut extra = vec![(DELIVERIES_HEADER, count.as_str())];
        let last_error = header(&delivery.properties, ERROR_HEADER);
        if let Some(error) = last_error.as_deref() {
            extra.push((ERROR_HEADER, error));
        }
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default();
        let request_id = header(&delivery.properties, REQUEST_ID_HEADER);
        let copy = properties(&message_id, request_id.as_deref(), &extra);
        let settlement = match self
            .queue
            .publish_to(&self.queue.inner.queue, &delivery.data, copy)
            .await
        {
            Ok(()) => Settle::Ack(tag),
            Err(error) => {
                slog::warn!(self.queue.inner.logger,
                    "recounting a redelivered message failed: it goes back as it is";
                    "message_id" => &message_id, "error" => error.to_string());
                Settle::Requeue(tag)
            }
        };
        let _ = settle.send(settlement);
    }

    fn wrap(
        &self,
        delivery: lapin::message::Delivery,
        settle: mpsc::UnboundedSender<Settle>,
    ) -> Delivery {
        let tag = delivery.delivery_tag;
        // Registered before the handle exists, so the settler knows it before its settlement.
        let _ = settle.send(Settle::Delivered(tag, delivery.acker));
        let properties = &delivery.properties;
        let deliveries = delivered_before(properties).saturating_add(1);
        Delivery {
            deliveries,
            message_id: properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str().to_owned()),
            request_id: header(properties, REQUEST_ID_HEADER),
            handle: DeliveryHandle::Amqp(AmqpHandle {
                tag,
                settle,
                queue: self.queue.clone(),
            }),
            body: delivery.data,
        }
    }

    async fn drop_session(&mut self) {
        if let Some(session) = self.session.take() {
            // Its unsettled deliveries come back from the broker when the connection closes.
            drop(session.settle);
            close_quietly(session.connection.close(320, "reconnecting".into())).await;
        }
    }

    /// Cancels the consumer; the deliveries received but not handed out go back at once.
    pub async fn stop(&mut self) {
        self.stopped = true;
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let tag = session.consumer.tag();
        if let Err(error) = session
            .channel
            .basic_cancel(tag, BasicCancelOptions::default())
            .await
        {
            slog::warn!(self.queue.inner.logger, "cancelling the consumer failed";
                "error" => error.to_string());
            return;
        }
        // After the cancel, the stream yields what was already received, then ends.
        let drain = async {
            while let Some(Ok(delivery)) = session.consumer.next().await {
                let _ = delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    /// Closes the consumer's connection: the broker requeues whatever is still unacked.
    pub async fn close(mut self) {
        self.stopped = true;
        if let Some(session) = self.session.take() {
            // Every handle is gone by now (jobs finished or abandoned): the settler sends what
            // it holds and ends before the channel closes.
            drop(session.settle);
            let _ = tokio::time::timeout(Duration::from_secs(5), session.settler).await;
            close_quietly(session.channel.close(200, "closing".into())).await;
            close_quietly(session.connection.close(200, "closing".into())).await;
        }
    }
}

/// A RabbitMQ delivery: its tag on its session's channel, that session's settler, and the
/// queue to publish retries and dead letters to.
pub(crate) struct AmqpHandle {
    tag: u64,
    settle: mpsc::UnboundedSender<Settle>,
    queue: AmqpQueue,
}

impl AmqpHandle {
    /// Queues the ack with the session's settler (see [`settle_deliveries`]).
    pub(crate) async fn ack(self) -> Result<(), QueueError> {
        self.settle
            .send(Settle::Ack(self.tag))
            .map_err(|_| settler_gone())
    }

    pub(crate) async fn retry(
        self,
        next: &Envelope,
        delay: Duration,
        error: &str,
    ) -> Result<(), QueueError> {
        let (level, retry_queue) = self.queue.retry_queue(next.attempt.saturating_sub(1));
        self.queue
            .ensure_retry_queue(level, &retry_queue)
            .await
            .map_err(|error| EnqueueError::Unavailable(error.to_string()))?;
        let expiration = delay.as_millis().max(1).to_string();
        let properties = properties(
            &next.id.to_string(),
            next.request_id.as_deref(),
            &[(ERROR_HEADER, truncate(error, 1024))],
        )
        .with_expiration(expiration.as_str().into());
        self.queue
            .publish_to(&retry_queue, &next.to_body(), properties)
            .await?;
        self.ack().await
    }

    pub(crate) async fn dead_letter(
        self,
        body: &[u8],
        message_id: Option<&str>,
        request_id: Option<&str>,
        error: &str,
    ) -> Result<(), QueueError> {
        let properties = properties(
            message_id.unwrap_or(""),
            request_id,
            &[(ERROR_HEADER, truncate(error, 4096))],
        );
        self.queue
            .publish_to(&self.queue.inner.dead, body, properties)
            .await?;
        self.ack().await
    }

    pub(crate) async fn requeue(self) -> Result<(), QueueError> {
        self.settle
            .send(Settle::Requeue(self.tag))
            .map_err(|_| settler_gone())
    }
}

fn settler_gone() -> QueueError {
    QueueError::Broker(Box::new(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the consumer's connection was closed",
    )))
}

/// What a session's deliveries tell its settler.
pub(crate) enum Settle {
    /// A delivery was handed out (sent before any settlement of it).
    Delivered(u64, lapin::Acker),
    /// Its job is done: ack it.
    Ack(u64),
    /// Give it back to the queue.
    Requeue(u64),
}

/// How long an ack may wait behind an earlier delivery still in progress before it is sent
/// on its own.
const ACK_DELAY: Duration = Duration::from_millis(20);

/// The most settlements taken in one go.
const SETTLE_BATCH: usize = 1024;

/// One session's settler: acks in batches. Deliveries are mostly finished in the order they
/// came, so when the oldest unsettled delivery is done, it and every done one after it up to
/// the next in progress are acked with one `multiple` ack (RabbitMQ then does one
/// acknowledgement's work instead of many). A done delivery stuck behind a long job is acked
/// on its own after [`ACK_DELAY`]. Every frame goes out from this one task, in order, so a
/// `multiple` ack never covers a delivery that was requeued or acked already.
async fn settle_deliveries(mut settlements: mpsc::UnboundedReceiver<Settle>, logger: Logger) {
    /// A delivery handed out and not yet acked; `done` once its ack was asked for.
    struct Unsettled {
        acker: lapin::Acker,
        done: bool,
    }
    async fn send(logger: &Logger, acker: &lapin::Acker, multiple: bool) {
        if let Err(error) = acker.ack(BasicAckOptions { multiple }).await {
            slog::warn!(logger, "acking failed: the deliveries will be delivered again";
                "error" => error.to_string());
        }
    }
    let mut unsettled: std::collections::BTreeMap<u64, Unsettled> = Default::default();
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    // Since when done deliveries have been waiting behind one in progress.
    let mut waiting_since: Option<tokio::time::Instant> = None;
    loop {
        let deadline = waiting_since.map(|since| since + ACK_DELAY);
        let received = tokio::select! {
            received = settlements.recv_many(&mut batch, SETTLE_BATCH) => received,
            () = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            } => {
                let done: Vec<u64> = unsettled
                    .iter()
                    .filter(|(_, delivery)| delivery.done)
                    .map(|(tag, _)| *tag)
                    .collect();
                for tag in done {
                    if let Some(delivery) = unsettled.remove(&tag) {
                        send(&logger, &delivery.acker, false).await;
                    }
                }
                waiting_since = None;
                continue;
            }
        };
        for settlement in batch.drain(..) {
            match settlement {
                Settle::Delivered(tag, acker) => {
                    unsettled.insert(tag, Unsettled { acker, done: false });
                }
                Settle::Ack(tag) => {
                    if let Some(delivery) = unsettled.get_mut(&tag) {
                        delivery.done = true;
                    }
                }
                Settle::Requeue(tag) => {
                    if let Some(delivery) = unsettled.remove(&tag)
                        && let Err(error) = delivery
                            .acker
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..BasicNackOptions::default()
                            })
                            .await
                    {
                        slog::warn!(logger, "requeueing failed: the delivery comes back anyway";
                            "error" => error.to_string());
                    }
                }
            }
        }
        // The done run at the front, acked up to its last tag at once.
        let mut last_done = None;
        while let Some(front) = unsettled.first_entry() {
            if !front.get().done {
                break;
            }
            last_done = Some(front.remove());
        }
        if let Some(delivery) = last_done {
            send(&logger, &delivery.acker, true).await;
        }
        if unsettled.values().any(|delivery| delivery.done) {
            waiting_since.get_or_insert_with(tokio::time::Instant::now);
        } else {
            waiting_since = None;
        }
        if received == 0 {
            // Every sender is gone: ack whatever is done; the rest comes back from the broker.
            for delivery in unsettled.into_values().filter(|delivery| delivery.done) {
                send(&logger, &delivery.acker, false).await;
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobQueue, QueueArgs};

    fn amqp_url() -> String {
        std::env::var("TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
    }

    #[tokio::test]
    async fn confirmed_jobs_are_consumed_retried_through_a_ttl_queue_and_dead_lettered() {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let args = QueueArgs::amqp(&amqp_url()).with_names(&name, &format!("{name}.events"));
        let logger = Logger::root(slog::Discard, slog::o!());
        let queue = JobQueue::connect(&args, logger).await.expect("connected");
        queue.check().await.expect("RabbitMQ answers");
        let id = queue
            .enqueue("task", serde_json::json!({"n": 1}), Some("req-7"))
            .await
            .expect("confirmed");
        let mut consumer = queue
            .consume(ConsumeOptions::default())
            .await
            .expect("consumer");
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a delivery within 10 s")
            .expect("a delivery");
        assert_eq!(
            delivery.message_id.as_deref(),
            Some(id.to_string().as_str())
        );
        assert_eq!(delivery.request_id.as_deref(), Some("req-7"));
        assert_eq!(delivery.deliveries, 1);
        let envelope = delivery.envelope().expect("an envelope");
        let retried_at = std::time::Instant::now();
        delivery
            .retry(&envelope.next_attempt(), Duration::from_millis(300), "boom")
            .await
            .expect("retried");
        let again = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("the retry within 10 s")
            .expect("a delivery");
        assert!(retried_at.elapsed() >= Duration::from_millis(300));
        assert_eq!(again.envelope().expect("envelope").attempt, 2);
        again
            .dead_letter("boom twice")
            .await
            .expect("dead-lettered");
        let letters = queue.take_dead_letters(10).await.expect("dead letters");
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].error.as_deref(), Some("boom twice"));
        assert_eq!(letters[0].envelope().expect("envelope").id, id);
        assert_eq!(
            queue.depth().await.expect("depth"),
            QueueDepth { ready: 0, dead: 0 }
        );
        consumer.close().await;
        queue.delete_topology().await.expect("test queues deleted");
        queue.close().await;
    }

    #[tokio::test]
    async fn acks_out_of_order_and_a_requeue_between_them_settle_every_delivery_once() {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let direct = QueueArgs::amqp(&amqp_url()).with_names(&name, &format!("{name}.events"));
        let logger = Logger::root(slog::Discard, slog::o!());
        let queue = JobQueue::connect(&direct, logger.clone())
            .await
            .expect("connected");
        // The consumer goes through a relay, so its connection can be cut before it flushes.
        let (switch, relayed) = testing::TcpSwitch::for_url(&amqp_url()).await;
        let relayed = JobQueue::connect(
            &QueueArgs::amqp(&relayed).with_names(&name, &format!("{name}.events")),
            logger,
        )
        .await
        .expect("connected through the relay");
        let mut ids = Vec::new();
        for n in 0..6 {
            ids.push(
                queue
                    .enqueue("task", serde_json::json!({ "n": n }), None)
                    .await
                    .expect("confirmed"),
            );
        }
        let mut consumer = relayed
            .consume(ConsumeOptions {
                prefetch: 10,
                ..ConsumeOptions::default()
            })
            .await
            .expect("consumer");
        let mut deliveries = Vec::new();
        for _ in 0..6 {
            let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .expect("a delivery within 10 s")
                .expect("a delivery");
            deliveries.push(Some(delivery));
        }
        let mut take = |index: usize| deliveries[index].take().expect("not settled yet");
        // 1 and 2 are done behind 0, still in progress: acked on their own after the delay.
        // 3 is requeued between acks: the `multiple` ack of 4 and 5 must not cover it.
        take(1).ack().await.expect("queued");
        take(2).ack().await.expect("queued");
        tokio::time::sleep(ACK_DELAY * 5).await;
        take(3).requeue().await.expect("queued");
        let again = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("the requeued delivery within 10 s")
            .expect("a delivery");
        assert!(again.redelivered());
        assert_eq!(again.deliveries, 2, "the count travels in the copy");
        assert_eq!(again.envelope().expect("envelope").id, ids[3]);
        take(4).ack().await.expect("queued");
        take(5).ack().await.expect("queued");
        again.ack().await.expect("queued");
        // 4, 5 and the redelivered 3 are done behind 0 too: past the delay they are acked, with
        // 0 still in progress. Cutting the connection then hands back what was not acked: 0
        // alone (6 if done deliveries waited for the front, or 1 and 2 were never sent).
        tokio::time::sleep(ACK_DELAY * 5).await;
        switch.cut();
        testing::eventually(
            "the cut connection's unacked delivery back in the queue",
            Duration::from_secs(10),
            || {
                let queue = &queue;
                async move { queue.depth().await.expect("depth").ready >= 1 }
            },
        )
        .await;
        assert_eq!(
            queue.depth().await.expect("depth"),
            QueueDepth { ready: 1, dead: 0 },
            "only the delivery never acked comes back"
        );
        drop(take(0));
        drop(consumer);
        queue.delete_topology().await.expect("test queues deleted");
        queue.close().await;
    }

    #[tokio::test]
    async fn deliveries_are_counted_across_dead_consumers_and_kept_with_the_message() {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let args = QueueArgs::amqp(&amqp_url()).with_names(&name, &format!("{name}.events"));
        let logger = Logger::root(slog::Discard, slog::o!());
        let queue = JobQueue::connect(&args, logger.clone())
            .await
            .expect("connected");
        let id = queue
            .enqueue("task", serde_json::json!({}), Some("req-9"))
            .await
            .expect("confirmed");
        for expected in 1..=3 {
            // A consumer of its own, which dies (its connection closes) holding the delivery.
            let consumer_queue = JobQueue::connect(&args, logger.clone())
                .await
                .expect("connected");
            let mut consumer = consumer_queue
                .consume(ConsumeOptions::default())
                .await
                .expect("consumer");
            let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .expect("a delivery within 10 s")
                .expect("a delivery");
            assert_eq!(delivery.deliveries, expected);
            assert_eq!(
                delivery.message_id.as_deref(),
                Some(id.to_string().as_str())
            );
            assert_eq!(delivery.request_id.as_deref(), Some("req-9"));
            assert_eq!(delivery.envelope().expect("envelope").id, id);
            drop(delivery);
            consumer.close().await;
            consumer_queue.close().await;
        }
        queue.delete_topology().await.expect("test queues deleted");
        queue.close().await;
    }
}
