//! Jobs between services: producers [`JobQueue::enqueue`], the worker [`JobQueue::consume`]s.
//!
//! Two backends behind one API, chosen by [`QueueArgs`], each compiled in by a Cargo feature
//! (both by default; a binary asked for a backend it was built without fails at
//! [`JobQueue::connect`] with a one-line error naming the feature):
//!
//! - `AMQP_URL` set (feature `amqp`): RabbitMQ through lapin. The topology is declared
//!   idempotently on every (re)connection: the durable queue `tasks_queue`, the topic exchange
//!   `platform.events`, the dead-letter queue `tasks_queue.dead`, and TTL'd retry queues
//!   `tasks_queue.retry.<n>` that dead-letter back into `tasks_queue` when a message's delay
//!   expires. Messages are persistent, carry `message_id`, `content_type: application/json` and
//!   the request id in the `x-request-id` header; every publish waits for the broker's confirm,
//!   and is retried on a fresh connection (with backoff) or reported to the caller, never
//!   dropped.
//! - `AMQP_URL` unset (feature `embedded`): an embedded durable queue in a SQL table on
//!   `db::Database` (SQLite `sqlite://data/queue.db` by default, shared by every process
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
//! `redelivered` is not handed out; a copy carrying the count so far in the `x-deliveries`
//! header is published to the job queue (confirmed) and the redelivered one acked, so the count
//! is durable before the job runs again. (A delivery the broker hands back at a consumer's
//! cancel or close also comes back flagged, so it counts there.)
//!
//! The names are docs/contracts.md's ("Messaging"); `QUEUE_NAME` and `EVENTS_EXCHANGE`
//! ([`QueueArgs::queue`], [`QueueArgs::exchange`]) change them (tests use unique names).
//!
//! `enqueue` takes the job kind, its payload and the request id; [`Delivery::retry`],
//! [`Delivery::dead_letter`] and [`Delivery::requeue`] settle a delivery other than by
//! [`Delivery::ack`], and [`Delivery::extend_lease`] keeps a long job's embedded lease;
//! [`JobQueue::depth`] counts the waiting and the dead messages, [`JobQueue::leased`] the
//! embedded queue's deliveries in flight; [`JobQueue::dead_letters`] opens the dead letters'
//! table ([`DeadLetters`]). The feature `testing` adds what tests need and production code
//! must not use: `QueueArgs::amqp` and `QueueArgs::with_names` (queues of their own),
//! `JobQueue::publish_raw` (a body that need not be an envelope), `JobQueue::take_dead_letters`,
//! `JobQueue::delete_topology` and `DeadLetters::take`.
//!
//! Not here yet: publishing domain events to `platform.events` (the exchange is declared).
//!
//! # Modules
//!
//! - this file: [`QueueArgs`], [`JobQueue`], [`Consumer`], [`Delivery`], [`ConsumeOptions`],
//!   [`QueueDepth`] — the one API, dispatching to the backend.
//! - `envelope.rs`: [`Envelope`], the JSON body of every job.
//! - `error.rs`: [`EnqueueError`], [`QueueError`], [`MalformedMessage`].
//! - `amqp.rs` (feature `amqp`): RabbitMQ's queue, topology and publisher confirms;
//!   `amqp/consumer.rs`: its consumer, delivery handles and batched acks.
//! - `embedded.rs` (feature `embedded`): the `queue_jobs` table, leases and settlements.
//! - `dead.rs` (feature `embedded`: it needs the SQL driver): [`DeadLetters`], both backends'
//!   dead letters as rows of `queue_dead_letters` — listed, replayed, deleted — and the drain
//!   of RabbitMQ's dead-letter queue into them; `amqp/drain.rs`: that drain's consumer.

#[cfg(not(any(feature = "amqp", feature = "embedded")))]
compile_error!("the queue crate needs a backend: enable the `amqp` or the `embedded` feature");

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "embedded")]
mod dead;
#[cfg(feature = "embedded")]
mod embedded;
mod envelope;
mod error;

use std::{path::Path, time::Duration};

use slog::Logger;

use runtime::DatabaseUrl;

#[cfg(feature = "embedded")]
pub use dead::{
    BulkProgress, DeadLetterRow, DeadLetters, MAX_ERROR_BYTES, MAX_ID_BYTES, PageRequest,
    PageStart, storable,
};
pub use envelope::Envelope;
pub use error::{EnqueueError, MalformedMessage, QueueError};

/// docs/contracts.md's job queue.
pub(crate) const DEFAULT_QUEUE: &str = "tasks_queue";
/// docs/contracts.md's domain-event exchange.
pub(crate) const DEFAULT_EXCHANGE: &str = "platform.events";
/// The embedded queue's database when `QUEUE_DATABASE_URL` is unset.
const DEFAULT_QUEUE_DATABASE: &str = "sqlite://data/queue.db";

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
        default_value = DEFAULT_QUEUE_DATABASE,
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

    /// RabbitMQ at `url`, with docs/contracts.md's names (tests).
    #[cfg(any(test, feature = "testing"))]
    pub fn amqp(url: &str) -> Self {
        Self {
            amqp_url: Some(url.to_owned()),
            queue_database_url: DatabaseUrl(DEFAULT_QUEUE_DATABASE.to_owned()),
            queue: DEFAULT_QUEUE.to_owned(),
            exchange: DEFAULT_EXCHANGE.to_owned(),
        }
    }

    /// The same, with other queue and exchange names (tests).
    #[cfg(any(test, feature = "testing"))]
    pub fn with_names(mut self, queue: &str, exchange: &str) -> Self {
        self.queue = queue.to_owned();
        self.exchange = exchange.to_owned();
        self
    }

    /// Why this build cannot open the backend these arguments name (it was compiled without
    /// that backend's feature), as one line; `None` when it can.
    pub fn missing_backend(&self) -> Option<&'static str> {
        match self.amqp_url {
            Some(_) if !cfg!(feature = "amqp") => Some(
                "AMQP_URL is set, but this build has no RabbitMQ backend (the queue crate's \
                 `amqp` feature); unset AMQP_URL to use the embedded queue",
            ),
            None if !cfg!(feature = "embedded") => Some(
                "AMQP_URL is unset, but this build has no embedded queue (the queue crate's \
                 `embedded` feature); set AMQP_URL to a RabbitMQ broker",
            ),
            _ => None,
        }
    }
}

fn parse_amqp_url(url: &str) -> Result<String, String> {
    if url.starts_with("amqp://") || url.starts_with("amqps://") {
        Ok(url.to_owned())
    } else {
        Err("expected amqp://user:pass@host:5672/%2f".to_owned())
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

/// A dead letter taken off the dead-letter queue (tests, feature `testing`).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The message body as it was last delivered (an envelope, or what a malformed message was).
    pub body: Vec<u8>,
    /// Why it was dead-lettered.
    pub error: Option<String>,
}

#[cfg(any(test, feature = "testing"))]
impl DeadLetter {
    /// The body as an envelope.
    pub fn envelope(&self) -> Result<Envelope, MalformedMessage> {
        Envelope::from_body(&self.body)
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
pub struct JobQueue {
    /// The backend [`QueueArgs`] named.
    backend: Backend,
}

/// The backends compiled in.
#[derive(Clone)]
enum Backend {
    /// RabbitMQ.
    #[cfg(feature = "amqp")]
    Amqp(amqp::AmqpQueue),
    /// The embedded SQL queue.
    #[cfg(feature = "embedded")]
    Embedded(embedded::EmbeddedQueue),
}

impl JobQueue {
    /// Opens the queue `args` names. With RabbitMQ, a broker that is down is not an error here:
    /// the connection is retried in the background and on each use, and `check` reports it.
    /// A backend this build lacks is an error ([`QueueArgs::missing_backend`]).
    pub async fn connect(args: &QueueArgs, logger: Logger) -> anyhow::Result<Self> {
        if let Some(missing) = args.missing_backend() {
            anyhow::bail!(missing);
        }
        let backend = match &args.amqp_url {
            #[cfg(feature = "amqp")]
            Some(url) => Backend::Amqp(amqp::AmqpQueue::connect(url, args, logger).await?),
            #[cfg(feature = "embedded")]
            None => Backend::Embedded(
                embedded::EmbeddedQueue::connect(&args.queue_database_url, &args.queue, logger)
                    .await?,
            ),
            #[allow(unreachable_patterns)]
            _ => unreachable!("missing_backend names every backend not compiled in"),
        };
        Ok(Self { backend })
    }

    /// `amqp` or `embedded`, for logs.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(_) => "amqp",
            #[cfg(feature = "embedded")]
            Backend::Embedded(_) => "embedded",
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

    /// Enqueues a whole envelope as it is (its id, its attempt, its `traceparent`, also a
    /// message header on RabbitMQ): durable when it returns.
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), EnqueueError> {
        let body = envelope.to_body();
        let id = envelope.id.to_string();
        self.publish_traced(
            &body,
            &id,
            envelope.request_id.as_deref(),
            envelope.traceparent.as_deref(),
        )
        .await
    }

    /// Enqueues any body, with `message_id` and, on RabbitMQ, the `traceparent` header:
    /// durable when it returns.
    async fn publish_traced(
        &self,
        body: &[u8],
        message_id: &str,
        request_id: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<(), EnqueueError> {
        match &self.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => {
                queue
                    .publish_raw(body, message_id, request_id, traceparent)
                    .await
            }
            // The embedded queue keeps the body, and with it the envelope's `traceparent`.
            #[cfg(feature = "embedded")]
            Backend::Embedded(queue) => {
                let _ = traceparent;
                queue.publish_raw(body, message_id, request_id).await
            }
        }
    }

    /// Enqueues any body, with `message_id`: tests of malformed and foreign messages.
    #[cfg(any(test, feature = "testing"))]
    pub async fn publish_raw(
        &self,
        body: &[u8],
        message_id: &str,
        request_id: Option<&str>,
    ) -> Result<(), EnqueueError> {
        self.publish_traced(body, message_id, request_id, None)
            .await
    }

    /// Starts consuming the job queue.
    pub async fn consume(&self, options: ConsumeOptions) -> Result<Consumer, QueueError> {
        let source = match &self.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => Source::Amqp(Box::new(queue.consume(options).await?)),
            #[cfg(feature = "embedded")]
            Backend::Embedded(queue) => Source::Embedded(queue.consume(options)),
        };
        Ok(Consumer { source })
    }

    /// Whether the broker (or the queue database) answers, for `/readyz`.
    pub async fn check(&self) -> anyhow::Result<()> {
        match &self.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue.check().await,
            #[cfg(feature = "embedded")]
            Backend::Embedded(queue) => queue.check().await,
        }
    }

    /// Takes up to `limit` dead letters off the dead-letter queue (they are removed).
    #[cfg(any(test, feature = "testing"))]
    pub async fn take_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        match &self.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue.take_dead_letters(limit).await,
            #[cfg(feature = "embedded")]
            Backend::Embedded(queue) => queue.take_dead_letters(limit).await,
        }
    }

    /// How many messages wait in the job queue and the dead-letter queue.
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        match &self.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue.depth().await,
            #[cfg(feature = "embedded")]
            Backend::Embedded(queue) => queue.depth().await,
        }
    }

    /// The embedded queue's deliveries in flight (leased, the lease running) across every
    /// consumer; `None` on RabbitMQ, whose per-queue unacked count only its management API
    /// tells.
    pub async fn leased(&self) -> Result<Option<u64>, QueueError> {
        match &self.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(_) => Ok(None),
            #[cfg(feature = "embedded")]
            Backend::Embedded(queue) => queue.leased().await.map(Some),
        }
    }

    /// The dead letters of this queue as rows ([`DeadLetters`]): on the embedded queue, in the
    /// queue database; on RabbitMQ, in the database at `drain_database` (the worker's own; the
    /// queue's migrations are run there), which [`DeadLetters::drain`] fills.
    #[cfg(feature = "embedded")]
    pub async fn dead_letters(&self, drain_database: &DatabaseUrl) -> anyhow::Result<DeadLetters> {
        let (database, name) = match &self.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => (
                db::Database::connect(drain_database, embedded::migrations()).await?,
                queue.name().to_owned(),
            ),
            Backend::Embedded(queue) => {
                // Its dead letters are in the queue database.
                let _ = drain_database;
                (queue.database(), queue.name().to_owned())
            }
        };
        Ok(DeadLetters::new(self.clone(), database, &name))
    }

    /// Removes the queues (RabbitMQ: the queues and the exchange; embedded: the queue's rows).
    #[cfg(any(test, feature = "testing"))]
    pub async fn delete_topology(&self) -> Result<(), QueueError> {
        match &self.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue.delete_topology().await,
            #[cfg(feature = "embedded")]
            Backend::Embedded(queue) => queue.delete_topology().await,
        }
    }

    /// Closes the connections (at shutdown).
    pub async fn close(&self) {
        match &self.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(queue) => queue.close().await,
            #[cfg(feature = "embedded")]
            Backend::Embedded(queue) => queue.close().await,
        }
    }
}

/// A stream of deliveries from the job queue.
pub struct Consumer {
    /// The backend's consumer.
    source: Source,
}

/// The backends' consumers.
enum Source {
    /// From RabbitMQ.
    #[cfg(feature = "amqp")]
    Amqp(Box<amqp::AmqpConsumer>),
    /// From the embedded queue.
    #[cfg(feature = "embedded")]
    Embedded(embedded::EmbeddedConsumer),
}

impl Consumer {
    /// The next delivery. Waits while the queue is empty; with RabbitMQ it reconnects (with
    /// backoff) when the connection drops, so it only returns `None` after [`Consumer::stop`].
    pub async fn next(&mut self) -> Option<Delivery> {
        match &mut self.source {
            #[cfg(feature = "amqp")]
            Source::Amqp(consumer) => consumer.next().await,
            #[cfg(feature = "embedded")]
            Source::Embedded(consumer) => consumer.next().await,
        }
    }

    /// Stops consuming: no new deliveries; the ones received but not yet handed out by
    /// [`Consumer::next`] go back to the queue at once.
    pub async fn stop(&mut self) {
        match &mut self.source {
            #[cfg(feature = "amqp")]
            Source::Amqp(consumer) => consumer.stop().await,
            #[cfg(feature = "embedded")]
            Source::Embedded(consumer) => consumer.stop().await,
        }
    }

    /// After [`Consumer::stop`] and once in-flight jobs were settled or abandoned: hands every
    /// delivery still unsettled back to the queue (closing the AMQP channel; releasing the
    /// embedded leases), so nothing waits for a lease to expire.
    pub async fn close(self) {
        match self.source {
            #[cfg(feature = "amqp")]
            Source::Amqp(consumer) => consumer.close().await,
            #[cfg(feature = "embedded")]
            Source::Embedded(consumer) => consumer.close().await,
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
    #[cfg(feature = "amqp")]
    Amqp(amqp::AmqpHandle),
    /// An embedded lease.
    #[cfg(feature = "embedded")]
    Embedded(embedded::EmbeddedHandle),
}

impl Delivery {
    /// The body as an envelope.
    pub fn envelope(&self) -> Result<Envelope, MalformedMessage> {
        Envelope::from_body(&self.body)
    }

    /// Done: removes it from the queue. The embedded queue deletes it now; with RabbitMQ the
    /// ack is handed to the consumer's settler, which sends it (batched) moments later and logs
    /// a failure itself; an ack that never reaches the broker means the job comes back, which
    /// the worker's idempotency record absorbs.
    pub async fn ack(self) -> Result<(), QueueError> {
        match self.handle {
            #[cfg(feature = "amqp")]
            DeliveryHandle::Amqp(handle) => handle.ack().await,
            #[cfg(feature = "embedded")]
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
            #[cfg(feature = "amqp")]
            DeliveryHandle::Amqp(handle) => handle.retry(next, delay, error).await,
            #[cfg(feature = "embedded")]
            DeliveryHandle::Embedded(handle) => handle.retry(next, delay, error).await,
        }
    }

    /// Failed for good: moves it to the dead-letter queue with `error`, how many times it was
    /// delivered and when its first attempt failed (see [`DeadLetters`]).
    pub async fn dead_letter(self, error: &str) -> Result<(), QueueError> {
        match self.handle {
            #[cfg(feature = "amqp")]
            DeliveryHandle::Amqp(handle) => {
                handle
                    .dead_letter(
                        &self.body,
                        self.message_id.as_deref(),
                        self.request_id.as_deref(),
                        self.deliveries,
                        error,
                    )
                    .await
            }
            #[cfg(feature = "embedded")]
            DeliveryHandle::Embedded(handle) => {
                handle
                    .dead_letter(
                        &self.body,
                        self.message_id.as_deref(),
                        self.request_id.as_deref(),
                        self.deliveries,
                        error,
                    )
                    .await
            }
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
            #[cfg(feature = "amqp")]
            DeliveryHandle::Amqp(handle) => handle.requeue().await,
            #[cfg(feature = "embedded")]
            DeliveryHandle::Embedded(handle) => handle.requeue().await,
        }
    }

    /// Keeps a long job's delivery: the embedded queue's lease is extended to `visibility`
    /// from now (call it well within the visibility timeout). RabbitMQ keeps a delivery as
    /// long as the consumer's connection lives: nothing to do.
    pub async fn extend_lease(&self, visibility: Duration) -> Result<(), QueueError> {
        match &self.handle {
            #[cfg(feature = "amqp")]
            DeliveryHandle::Amqp(_) => {
                let _ = visibility;
                Ok(())
            }
            #[cfg(feature = "embedded")]
            DeliveryHandle::Embedded(handle) => handle.extend(visibility).await,
        }
    }
}

impl runtime::Probe for JobQueue {
    fn probe(&self) -> runtime::ProbeFuture<'_> {
        Box::pin(self.check())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(amqp_url: Option<&str>) -> QueueArgs {
        QueueArgs {
            amqp_url: amqp_url.map(str::to_owned),
            ..QueueArgs::embedded(Path::new("unused"))
        }
    }

    #[test]
    fn a_backend_left_out_of_the_build_is_named_in_one_line() {
        let amqp = args(Some("amqp://guest:guest@127.0.0.1:5672/%2f")).missing_backend();
        let embedded = args(None).missing_backend();
        assert_eq!(amqp.is_some(), !cfg!(feature = "amqp"), "{amqp:?}");
        assert_eq!(
            embedded.is_some(),
            !cfg!(feature = "embedded"),
            "{embedded:?}"
        );
        for message in [amqp, embedded].into_iter().flatten() {
            assert!(!message.contains('\n'), "{message}");
            assert!(message.contains("feature"), "{message}");
        }
    }

    #[tokio::test]
    async fn connecting_to_a_backend_left_out_fails_with_that_line() {
        let logger = Logger::root(slog::Discard, slog::o!());
        let missing = if cfg!(feature = "amqp") {
            if cfg!(feature = "embedded") {
                return;
            }
            args(None)
        } else {
            args(Some("amqp://guest:guest@127.0.0.1:1/%2f"))
        };
        let error = JobQueue::connect(&missing, logger)
            .await
            .err()
            .expect("no such backend in this build");
        assert_eq!(Some(error.to_string().as_str()), missing.missing_backend());
    }

    #[test]
    fn a_body_that_is_no_envelope_is_malformed_with_the_reason() {
        let error = Envelope::from_body(b"not JSON").expect_err("malformed");
        assert!(error.reason.contains("expected"), "{error}");
        assert!(error.to_string().starts_with("malformed message: "));
    }
}
