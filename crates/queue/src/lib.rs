//! Jobs between services: producers [`JobQueue::enqueue`], the worker [`JobQueue::consume`]s.
//!
//! Two backends behind one API, chosen by [`QueueArgs`]:
//!
//! - `AMQP_URL` set: RabbitMQ through lapin (`amqp.rs`). The topology is declared idempotently on
//!   every (re)connection: the durable queue `tasks_queue`, the topic exchange `platform.events`,
//!   the dead-letter queue `tasks_queue.dead`, and TTL'd retry queues `tasks_queue.retry.<n>`
//!   that dead-letter back into `tasks_queue` when a message's delay expires. Messages are
//!   persistent, carry `message_id`, `content_type: application/json` and the request id in the
//!   `x-request-id` header; every publish waits for the broker's confirm, and is retried on a
//!   fresh connection (with backoff) or reported to the caller, never dropped.
//! - `AMQP_URL` unset: an embedded durable queue in a SQL table (`embedded.rs`) on
//!   [`db::Database`] (SQLite `sqlite://data/queue.db` by default, shared by every process
//!   started in the same directory; PostgreSQL works too). A consumer leases jobs for a
//!   visibility timeout; a job whose lease expires (its consumer crashed) is delivered again.
//!
//! Both deliver at least once: a consumer makes its effects idempotent by job id.
//!
//! Both count deliveries ([`Delivery::deliveries`]: how many times the message was handed to a
//! consumer, this time included), so a consumer can set aside a message whose handling keeps
//! killing it. The embedded queue counts in its row (a lease is a delivery; a delivery handed
//! back unstarted by [`Delivery::requeue`] is uncounted). RabbitMQ's classic queues only flag a
//! redelivery, so the AMQP consumer keeps the count in the message: a delivery flagged
//! `redelivered` is not handed out; a copy carrying the count so far in [`DELIVERIES_HEADER`]
//! is published to the job queue (confirmed) and the redelivered one acked, so the count is
//! durable before the job runs again. (A delivery the broker hands back at a consumer's
//! cancel or close also comes back flagged, so it counts there.)
//!
//! The names are docs/contracts.md's ("Messaging"); [`QueueArgs::queue`] and
//! [`QueueArgs::exchange`] change them (tests use unique names).
//!
//! `enqueue` takes the job kind, its payload and the request id;
//! [`JobQueue::publish_raw`] sends a body that need not be an envelope (tools, tests of
//! malformed messages); [`Delivery::retry`], [`Delivery::dead_letter`] and [`Delivery::requeue`]
//! settle a delivery other than by [`Delivery::ack`], and [`Delivery::extend_lease`] keeps a
//! long job's embedded lease; `JobQueue::take_dead_letters` (tests) and [`JobQueue::depth`] inspect
//! the queues, `JobQueue::delete_topology` removes them (tests, feature `testing`). [`QueueArgs`] also takes
//! `QUEUE_NAME` and `EVENTS_EXCHANGE` (docs/contracts.md's names by default).
//!
//! Not here yet: publishing domain events to `platform.events` (the exchange is declared).

mod amqp;
mod embedded;

use std::{path::Path, time::Duration};

use serde::{Deserialize, Serialize};
use slog::Logger;

use runtime::config::DatabaseUrl;

/// docs/contracts.md's job queue.
pub const DEFAULT_QUEUE: &str = "tasks_queue";
/// docs/contracts.md's domain-event exchange.
pub const DEFAULT_EXCHANGE: &str = "platform.events";
/// The header carrying the request id (AMQP) — docs/contracts.md, "Request id and logs".
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The header of a dead letter naming why it died.
pub const ERROR_HEADER: &str = "x-last-error";
/// The header (AMQP) carrying how many times a message was handed to a consumer before; absent
/// on a message never redelivered.
pub const DELIVERIES_HEADER: &str = "x-deliveries";

/// Where jobs go: flags and variables of every binary that produces or consumes jobs.
#[derive(clap::Args, Debug, Clone)]
pub struct QueueArgs {
    /// RabbitMQ (`amqp://user:pass@host:5672/%2f`); unset: the embedded durable queue
    #[arg(long, env = "AMQP_URL", value_parser = parse_amqp_url, hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// The embedded queue's database (when AMQP_URL is unset), shared by every process using the
    /// same file
    #[arg(
        long,
        env = "QUEUE_DATABASE_URL",
        default_value = "sqlite://data/queue.db",
        hide_env_values = true
    )]
    pub queue_database_url: DatabaseUrl,
    /// The job queue's name (its dead letters go to `<name>.dead`)
    #[arg(long = "queue-name", env = "QUEUE_NAME", default_value = DEFAULT_QUEUE)]
    pub queue: String,
    /// The topic exchange of domain events
    #[arg(long = "events-exchange", env = "EVENTS_EXCHANGE", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,
}

impl QueueArgs {
    /// The embedded queue in `data_dir/queue.db`, with docs/contracts.md's names (the stack, tests).
    pub fn embedded(data_dir: &Path) -> Self {
        Self {
            amqp_url: None,
            queue_database_url: DatabaseUrl(format!(
                "sqlite://{}",
                data_dir.join("queue.db").display()
            )),
            queue: DEFAULT_QUEUE.to_owned(),
            exchange: DEFAULT_EXCHANGE.to_owned(),
        }
    }

    /// RabbitMQ at `url`, with docs/contracts.md's names.
    pub fn amqp(url: &str) -> Self {
        Self {
            amqp_url: Some(url.to_owned()),
            queue_database_url: DatabaseUrl("sqlite://data/queue.db".to_owned()),
            queue: DEFAULT_QUEUE.to_owned(),
            exchange: DEFAULT_EXCHANGE.to_owned(),
        }
    }

    /// The same, with other queue and exchange names.
    pub fn with_names(mut self, queue: &str, exchange: &str) -> Self {
        self.queue = queue.to_owned();
        self.exchange = exchange.to_owned();
        self
    }
}

fn parse_amqp_url(url: &str) -> Result<String, String> {
    if url.starts_with("amqp://") || url.starts_with("amqps://") {
        Ok(url.to_owned())
    } else {
        Err("expected amqp://user:pass@host:5672/%2f".to_owned())
    }
}

/// `<queue>.dead`.
pub fn dead_queue_name(queue: &str) -> String {
    format!("{queue}.dead")
}

/// A job as it travels (docs/contracts.md): the body of every message, JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The job's id, also the message's `message_id`; the consumer's idempotency key.
    pub id: uuid::Uuid,
    /// What to do (`task`, `thumbnail`).
    pub kind: String,
    /// The job as a reader of the seed's bare messages shows it (the seed's consumer logs a
    /// message's `task`): a `task` job's `payload.task`, the kind for other jobs. A label
    /// only: the worker reads `kind` and `payload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The kind's arguments.
    pub payload: serde_json::Value,
    /// 1 on the first delivery, one more on each retry.
    pub attempt: u32,
    /// The request that caused the job, when there was one.
    pub request_id: Option<String>,
    /// When the job was first enqueued (RFC 3339).
    pub created_at: String,
}

impl Envelope {
    /// A new job (attempt 1, now).
    pub fn new(kind: &str, payload: serde_json::Value, request_id: Option<&str>) -> Self {
        let task = match payload.get("task").and_then(serde_json::Value::as_str) {
            Some(task) if kind == "task" => task.to_owned(),
            _ => kind.to_owned(),
        };
        Self {
            // Time-ordered: consumers' idempotency records (indexed by job id) then grow at
            // the end of their index instead of touching a random page per job.
            id: uuid::Uuid::now_v7(),
            kind: kind.to_owned(),
            task: Some(task),
            payload,
            attempt: 1,
            request_id: request_id.map(str::to_owned),
            created_at: db::timestamp_now(),
        }
    }

    /// The same job, for its next attempt.
    pub fn next_attempt(&self) -> Self {
        Self {
            attempt: self.attempt.saturating_add(1),
            ..self.clone()
        }
    }

    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }
}

/// Why a job could not be enqueued. The job is then not in the queue.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The broker or the queue's database could not be reached (after retries).
    #[error("the job queue is unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message (nack, or no queue to route it to).
    #[error("the job queue refused the job: {0}")]
    Rejected(String),
}

/// A failure of a consumer or of settling a delivery.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker connection failed (the broker client's error is the source).
    #[error("broker: {0}")]
    Broker(#[source] BackendError),
    /// The queue database failed (the database driver's error is the source).
    #[error("queue database: {0}")]
    Database(#[source] BackendError),
    /// Publishing a retry or a dead letter failed.
    #[error(transparent)]
    Publish(#[from] EnqueueError),
    /// The delivery's lease had expired and another consumer took the job over.
    #[error("the lease of this delivery was lost (it expired)")]
    LeaseLost,
}

/// A failure of the broker client or the database driver, kept as the source of a
/// [`QueueError`] without making their types part of this crate's interface.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

impl From<lapin::Error> for QueueError {
    fn from(error: lapin::Error) -> Self {
        Self::Broker(Box::new(error))
    }
}

impl From<sqlx::Error> for QueueError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(Box::new(error))
    }
}

/// How a consumer takes deliveries.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeOptions {
    /// Deliveries handed to this consumer before any is settled (AMQP `basic.qos`; the embedded
    /// queue leases this many at once). 1 is fair between consumers; larger is faster.
    pub prefetch: u16,
    /// Embedded queue: how long a delivery is leased; unsettled after that, it is delivered
    /// again (to any consumer). Longer than the slowest job.
    pub visibility_timeout: Duration,
    /// Embedded queue: how often an idle consumer looks for jobs other processes enqueued
    /// (jobs enqueued in the same process wake it at once).
    pub poll_interval: Duration,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        Self {
            prefetch: 1,
            visibility_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// A dead letter taken off the dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The message body as it was last delivered (an envelope, or what a malformed message was).
    pub body: Vec<u8>,
    /// Why it was dead-lettered.
    pub error: Option<String>,
}

impl DeadLetter {
    /// The envelope, when the body is one.
    pub fn envelope(&self) -> Option<Envelope> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// How many messages wait in the queues (not counting deliveries in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    /// Ready in the job queue.
    pub ready: u64,
    /// In the dead-letter queue.
    pub dead: u64,
}

/// The job queue of a process: a cheap handle, cloned freely.
#[derive(Clone)]
pub enum JobQueue {
    /// RabbitMQ.
    Amqp(amqp::AmqpQueue),
    /// The embedded SQL queue.
    Embedded(embedded::EmbeddedQueue),
}

impl JobQueue {
    /// Opens the queue `args` names. With RabbitMQ, a broker that is down is not an error here:
    /// the connection is retried in the background and on each use, and `check` reports it.
    pub async fn connect(args: &QueueArgs, logger: Logger) -> anyhow::Result<Self> {
        match &args.amqp_url {
            Some(url) => Ok(Self::Amqp(
                amqp::AmqpQueue::connect(url, args, logger).await?,
            )),
            None => Ok(Self::Embedded(
                embedded::EmbeddedQueue::connect(&args.queue_database_url, &args.queue, logger)
                    .await?,
            )),
        }
    }

    /// `amqp` or `embedded`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Amqp(_) => "amqp",
            Self::Embedded(_) => "embedded",
        }
    }

    /// Enqueues a job; returns its id once the job is durable (confirmed by the broker, or
    /// committed). The request id travels in the envelope and in the message headers.
    pub async fn enqueue(
        &self,
        kind: &str,
        payload: serde_json::Value,
        request_id: Option<&str>,
    ) -> Result<uuid::Uuid, EnqueueError> {
        let envelope = Envelope::new(kind, payload, request_id);
        self.publish(&envelope).await?;
        Ok(envelope.id)
    }

    /// Enqueues a whole envelope as it is (its id, its attempt): durable when it returns.
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), EnqueueError> {
        let body = envelope.to_body();
        let id = envelope.id.to_string();
        self.publish_raw(&body, &id, envelope.request_id.as_deref())
            .await
    }

    /// Enqueues any body (tools, and tests of malformed messages), with `message_id`.
    pub async fn publish_raw(
        &self,
        body: &[u8],
        message_id: &str,
        request_id: Option<&str>,
    ) -> Result<(), EnqueueError> {
        match self {
            Self::Amqp(queue) => queue.publish_raw(body, message_id, request_id).await,
            Self::Embedded(queue) => queue.publish_raw(body, message_id, request_id).await,
        }
    }

    /// Starts consuming the job queue.
    pub async fn consume(&self, options: ConsumeOptions) -> Result<Consumer, QueueError> {
        Ok(match self {
            Self::Amqp(queue) => Consumer::Amqp(Box::new(queue.consume(options).await?)),
            Self::Embedded(queue) => Consumer::Embedded(queue.consume(options)),
        })
    }

    /// Whether the broker (or the queue database) answers, for `/readyz`.
    pub async fn check(&self) -> anyhow::Result<()> {
        match self {
            Self::Amqp(queue) => queue.check().await,
            Self::Embedded(queue) => queue.check().await,
        }
    }

    /// Takes up to `limit` dead letters off the dead-letter queue (they are removed).
    #[cfg(any(test, feature = "testing"))]
    pub async fn take_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        match self {
            Self::Amqp(queue) => queue.take_dead_letters(limit).await,
            Self::Embedded(queue) => queue.take_dead_letters(limit).await,
        }
    }

    /// How many messages wait in the job queue and the dead-letter queue.
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        match self {
            Self::Amqp(queue) => queue.depth().await,
            Self::Embedded(queue) => queue.depth().await,
        }
    }

    /// Removes the queues (RabbitMQ: the queues and the exchange; embedded: the queue's rows).
    /// For tests and tools.
    #[cfg(any(test, feature = "testing"))]
    pub async fn delete_topology(&self) -> Result<(), QueueError> {
        match self {
            Self::Amqp(queue) => queue.delete_topology().await,
            Self::Embedded(queue) => queue.delete_topology().await,
        }
    }

    /// Closes the connections (at shutdown).
    pub async fn close(&self) {
        match self {
            Self::Amqp(queue) => queue.close().await,
            Self::Embedded(queue) => queue.close().await,
        }
    }
}

/// A stream of deliveries from the job queue.
pub enum Consumer {
    /// From RabbitMQ.
    Amqp(Box<amqp::AmqpConsumer>),
    /// From the embedded queue.
    Embedded(embedded::EmbeddedConsumer),
}

impl Consumer {
    /// The next delivery. Waits while the queue is empty; with RabbitMQ it reconnects (with
    /// backoff) when the connection drops, so it only returns `None` after [`Consumer::stop`].
    pub async fn next(&mut self) -> Option<Delivery> {
        match self {
            Self::Amqp(consumer) => consumer.next().await,
            Self::Embedded(consumer) => consumer.next().await,
        }
    }

    /// Stops consuming: no new deliveries; the ones received but not yet handed out by
    /// [`Consumer::next`] go back to the queue at once.
    pub async fn stop(&mut self) {
        match self {
            Self::Amqp(consumer) => consumer.stop().await,
            Self::Embedded(consumer) => consumer.stop().await,
        }
    }

    /// After [`Consumer::stop`] and once in-flight jobs were settled or abandoned: hands every
    /// delivery still unsettled back to the queue (closing the AMQP channel; releasing the
    /// embedded leases), so nothing waits for a lease to expire.
    pub async fn close(self) {
        match self {
            Self::Amqp(consumer) => consumer.close().await,
            Self::Embedded(consumer) => consumer.close().await,
        }
    }
}

/// One delivered message, to settle exactly once: ack, retry, dead-letter or requeue. Dropped
/// unsettled, it is delivered again (when the AMQP channel closes, or when the lease expires;
/// [`Delivery::extend_lease`] keeps the lease of a long job).
pub struct Delivery {
    /// The message body (normally an [`Envelope`]).
    pub body: Vec<u8>,
    /// The message id (the envelope's id), when the message had one.
    pub message_id: Option<String>,
    /// The request id header, when the message had one.
    pub request_id: Option<String>,
    /// How many times the message was handed to a consumer, this time included (1 on the
    /// first delivery; a retry starts again at 1).
    pub deliveries: u32,
    /// How to settle it.
    handle: DeliveryHandle,
}

/// The backend's handle of a delivery.
pub(crate) enum DeliveryHandle {
    /// A RabbitMQ delivery.
    Amqp(amqp::AmqpHandle),
    /// An embedded lease.
    Embedded(embedded::EmbeddedHandle),
}

impl Delivery {
    /// The body as an envelope.
    pub fn envelope(&self) -> Result<Envelope, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Done: removes it from the queue. The embedded queue deletes it now; with RabbitMQ the
    /// ack is handed to the consumer's settler, which sends it (batched) moments later and logs
    /// a failure itself; an ack that never reaches the broker means the job comes back, which
    /// the worker's idempotency record absorbs.
    pub async fn ack(self) -> Result<(), QueueError> {
        match self.handle {
            DeliveryHandle::Amqp(handle) => handle.ack().await,
            DeliveryHandle::Embedded(handle) => handle.ack().await,
        }
    }

    /// Failed for now: `next` (normally [`Envelope::next_attempt`]) is delivered again after
    /// `delay`, and this delivery is removed. `error` is kept as the job's last error.
    pub async fn retry(
        self,
        next: &Envelope,
        delay: Duration,
        error: &str,
    ) -> Result<(), QueueError> {
        match self.handle {
            DeliveryHandle::Amqp(handle) => handle.retry(next, delay, error).await,
            DeliveryHandle::Embedded(handle) => handle.retry(next, delay, error).await,
        }
    }

    /// Failed for good: moves it to the dead-letter queue with `error`.
    pub async fn dead_letter(self, error: &str) -> Result<(), QueueError> {
        let Self {
            body,
            message_id,
            request_id,
            handle,
            ..
        } = self;
        match handle {
            DeliveryHandle::Amqp(handle) => {
                handle
                    .dead_letter(&body, message_id.as_deref(), request_id.as_deref(), error)
                    .await
            }
            DeliveryHandle::Embedded(handle) => handle.dead_letter(error).await,
        }
    }

    /// Whether it was handed to a consumer before (and not settled then).
    pub fn redelivered(&self) -> bool {
        self.deliveries > 1
    }

    /// Not handled (shutting down): back to the queue at once, as it was (the embedded queue
    /// uncounts this delivery; RabbitMQ flags the message redelivered, which counts).
    pub async fn requeue(self) -> Result<(), QueueError> {
        match self.handle {
            DeliveryHandle::Amqp(handle) => handle.requeue().await,
            DeliveryHandle::Embedded(handle) => handle.requeue().await,
        }
    }

    /// Keeps a long job's delivery: the embedded queue's lease is extended to `visibility`
    /// from now (call it well within the visibility timeout). RabbitMQ keeps a delivery as
    /// long as the consumer's connection lives: nothing to do.
    pub async fn extend_lease(&self, visibility: Duration) -> Result<(), QueueError> {
        match &self.handle {
            DeliveryHandle::Amqp(_) => Ok(()),
            DeliveryHandle::Embedded(handle) => handle.extend(visibility).await,
        }
    }
}

impl runtime::Probe for JobQueue {
    fn probe(&self) -> runtime::ProbeFuture<'_> {
        Box::pin(self.check())
    }
}
