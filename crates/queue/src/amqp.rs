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
//!
//! Its consumer, the handles of its deliveries and their batched acks are [`consumer`].
//! lapin's errors become [`QueueError::Broker`] through [`broker`], never a public conversion.

mod consumer;
#[cfg(feature = "embedded")]
mod drain;

use std::{collections::HashSet, sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use slog::Logger;
use tokio::sync::Mutex;

use super::{ConsumeOptions, EnqueueError, QueueArgs, QueueDepth, QueueError};

pub(crate) use consumer::{AmqpConsumer, AmqpHandle};

/// The header carrying the request id — docs/contracts.md, "Request id and logs".
const REQUEST_ID_HEADER: &str = "x-request-id";
/// The header of a dead letter (and of a retry) naming the job's last error.
const ERROR_HEADER: &str = "x-last-error";
/// The header copying the envelope's `traceparent` (W3C trace context), for consumers that
/// read headers only.
pub(crate) const TRACEPARENT_HEADER: &str = "traceparent";
/// The header carrying how many times a message was handed to a consumer before; absent on a
/// message never redelivered. On a dead letter: how many times its last attempt was handed out.
const DELIVERIES_HEADER: &str = "x-deliveries";
/// The header of a retry and of a dead letter carrying when the job's first attempt failed
/// (RFC 3339), kept from retry to retry.
const FIRST_FAILURE_HEADER: &str = "x-first-failure";
/// The header of a dead letter carrying when it was dead-lettered (RFC 3339, milliseconds).
const FAILED_AT_HEADER: &str = "x-failed-at";

/// The number of retry queues (`<queue>.retry.1` … `.retry.10`); later attempts share the last.
const RETRY_LEVELS: u32 = 10;
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

/// `<queue>.dead`.
fn dead_queue_name(queue: &str) -> String {
    format!("{queue}.dead")
}

/// lapin's error as a [`QueueError`] (its source).
fn broker(error: lapin::Error) -> QueueError {
    QueueError::Broker(Box::new(error))
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            match url[scheme_end + 3..at].split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// RabbitMQ's side of a [`super::JobQueue`].
#[derive(Clone)]
pub(crate) struct AmqpQueue {
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
    pub(crate) async fn connect(
        url: &str,
        args: &QueueArgs,
        logger: Logger,
    ) -> anyhow::Result<Self> {
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

    /// The job queue's name.
    #[cfg(feature = "embedded")]
    pub(crate) fn name(&self) -> &str {
        &self.inner.queue
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
    pub(crate) async fn publish_raw(
        &self,
        body: &[u8],
        message_id: &str,
        request_id: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<(), EnqueueError> {
        let extra: Vec<(&str, &str)> = traceparent
            .map(|traceparent| (TRACEPARENT_HEADER, traceparent))
            .into_iter()
            .collect();
        let properties = properties(message_id, request_id, &extra);
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
    pub(crate) async fn consume(
        &self,
        options: ConsumeOptions,
    ) -> Result<AmqpConsumer, QueueError> {
        let mut consumer = AmqpConsumer::new(self.clone(), options);
        // Fail fast when the broker is down at start; later failures reconnect in `next`.
        if let Err(error) = consumer.start().await {
            slog::warn!(self.inner.logger, "consumer cannot reach RabbitMQ yet; retrying";
                "error" => error.to_string());
        }
        Ok(consumer)
    }

    /// Whether the broker answers (reconnecting when needed).
    pub(crate) async fn check(&self) -> anyhow::Result<()> {
        match tokio::time::timeout(Duration::from_secs(3), self.channel()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(anyhow::anyhow!("RabbitMQ: {error}")),
            Err(_) => Err(anyhow::anyhow!("RabbitMQ did not answer within 3 s")),
        }
    }

    /// Takes up to `limit` messages off the dead-letter queue (acking them).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn take_dead_letters(
        &self,
        limit: usize,
    ) -> Result<Vec<super::DeadLetter>, QueueError> {
        let channel = self.channel().await.map_err(broker)?;
        let mut letters = Vec::new();
        while letters.len() < limit {
            let Some(message) = channel
                .basic_get(
                    self.inner.dead.as_str().into(),
                    lapin::options::BasicGetOptions::default(),
                )
                .await
                .map_err(broker)?
            else {
                break;
            };
            let delivery = message.delivery;
            let error = header(&delivery.properties, ERROR_HEADER);
            delivery
                .acker
                .ack(lapin::options::BasicAckOptions::default())
                .await
                .map_err(broker)?;
            letters.push(super::DeadLetter {
                body: delivery.data,
                error,
            });
        }
        Ok(letters)
    }

    /// Message counts of the job queue and the dead-letter queue.
    pub(crate) async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let channel = self.channel().await.map_err(broker)?;
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
            .await
            .map_err(broker)?
            .message_count();
        let dead = channel
            .queue_declare(
                self.inner.dead.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await
            .map_err(broker)?
            .message_count();
        Ok(QueueDepth {
            ready: u64::from(ready),
            dead: u64::from(dead),
        })
    }

    /// Deletes the queues (retry levels included) and the exchange: for tests and tools.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn delete_topology(&self) -> Result<(), QueueError> {
        let channel = self.channel().await.map_err(broker)?;
        let mut queues = vec![self.inner.queue.clone(), self.inner.dead.clone()];
        queues.extend((1..=RETRY_LEVELS).map(|level| self.retry_queue(level).1));
        for queue in queues {
            channel
                .queue_delete(
                    queue.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await
                .map_err(broker)?;
        }
        channel
            .exchange_delete(
                self.inner.exchange.as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await
            .map_err(broker)?;
        Ok(())
    }

    /// Closes the producers' connection.
    pub(crate) async fn close(&self) {
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

#[cfg(test)]
mod tests {
    use super::{consumer::ACK_DELAY, *};
    use crate::JobQueue;

    fn amqp_url() -> String {
        testing::amqp_url()
    }

    /// A queue and exchange of the test's own on the test RabbitMQ: their name and the args.
    pub(crate) fn own_queue() -> (String, QueueArgs) {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let args = QueueArgs::amqp(&amqp_url()).with_names(&name, &format!("{name}.events"));
        (name, args)
    }

    #[tokio::test]
    async fn confirmed_jobs_are_consumed_retried_through_a_ttl_queue_and_dead_lettered() {
        testing::skip_unless!(RabbitMq);
        let (_, args) = own_queue();
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
    async fn the_envelopes_traceparent_is_also_a_message_header() {
        testing::skip_unless!(RabbitMq);
        let (name, args) = own_queue();
        let logger = Logger::root(slog::Discard, slog::o!());
        let queue = JobQueue::connect(&args, logger).await.expect("connected");
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let envelope = crate::Envelope::new("task", serde_json::json!({}), Some("req-8"))
            .with_traceparent(Some(traceparent.to_owned()));
        queue.publish(&envelope).await.expect("confirmed");
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("a connection");
        let channel = connection.create_channel().await.expect("a channel");
        let message = channel
            .basic_get(
                name.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
            .expect("the message");
        assert_eq!(
            header(&message.delivery.properties, TRACEPARENT_HEADER).as_deref(),
            Some(traceparent)
        );
        let body = crate::Envelope::from_body(&message.delivery.data).expect("an envelope");
        assert_eq!(body.traceparent.as_deref(), Some(traceparent));
        close_quietly(connection.close(200, "done".into())).await;
        queue.delete_topology().await.expect("test queues deleted");
        queue.close().await;
    }

    #[tokio::test]
    async fn acks_out_of_order_and_a_requeue_between_them_settle_every_delivery_once() {
        testing::skip_unless!(RabbitMq);
        let (name, direct) = own_queue();
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
        // A prefetch of exactly the six in flight: the broker hands this consumer another message
        // only once it has taken an ack, which is how the test sees the acks arrive (below).
        let mut consumer = relayed
            .consume(ConsumeOptions {
                prefetch: 6,
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
        // 0 still in progress. Five probes fill the prefetch again only once the broker has
        // taken every one of those acks (0 alone left unacked): receiving all five is the broker
        // showing it, whatever the machine's speed. Done deliveries waiting for the front would
        // leave no room for them.
        let mut probes = Vec::new();
        let mut probe_ids = Vec::new();
        for n in 0..5 {
            probe_ids.push(
                queue
                    .enqueue("probe", serde_json::json!({ "n": n }), None)
                    .await
                    .expect("confirmed"),
            );
        }
        for _ in 0..5 {
            let probe = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .expect("room for every probe (every ack taken) within 10 s")
                .expect("a delivery");
            probes.push(probe);
        }
        // Cutting the connection then hands back what was not acked: 0 and the probes, none
        // of 1 to 5.
        switch.cut();
        testing::eventually(
            "the cut connection's unacked deliveries back in the queue",
            Duration::from_secs(10),
            || {
                let queue = &queue;
                async move { queue.depth().await.expect("depth").ready >= 6 }
            },
        )
        .await;
        assert_eq!(
            queue.depth().await.expect("depth"),
            QueueDepth { ready: 6, dead: 0 },
            "only the deliveries never acked come back"
        );
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("a connection");
        let channel = connection.create_channel().await.expect("a channel");
        let mut back = Vec::new();
        while let Some(message) = channel
            .basic_get(
                name.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
        {
            back.push(
                crate::Envelope::from_body(&message.delivery.data)
                    .expect("an envelope")
                    .id,
            );
        }
        close_quietly(connection.close(200, "done".into())).await;
        let mut expected = probe_ids.clone();
        expected.push(ids[0]);
        back.sort();
        expected.sort();
        assert_eq!(back, expected, "0 and the probes come back, nothing acked");
        drop(probes);
        drop(take(0));
        drop(consumer);
        queue.delete_topology().await.expect("test queues deleted");
        queue.close().await;
    }

    #[tokio::test]
    async fn deliveries_are_counted_across_dead_consumers_and_kept_with_the_message() {
        testing::skip_unless!(RabbitMq);
        let (_, args) = own_queue();
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
