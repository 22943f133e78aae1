//! The embedded durable queue: the `queue_jobs` table on [`Database`] (SQLite or PostgreSQL).
//!
//! A row is a message not yet acked. Consumers lease rows (`lease_token`, `lease_until`) in one
//! atomic `UPDATE … RETURNING`; an ack deletes the row, a retry pushes its `available_at` into
//! the future (keeping when it first failed), a dead letter moves it to `queue_dead_letters`
//! ([`crate::DeadLetters`]) in one transaction. A lease that expires (its consumer crashed, or the
//! job ran past the visibility timeout) makes the row deliverable again: at-least-once. Every
//! settlement is checked against the lease it was given (`lease_token` and the delivery
//! count), so a consumer whose lease expired cannot settle the job another consumer holds.
//! sqlx's errors become [`QueueError::Database`] through [`database`], never a public
//! conversion.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use slog::Logger;
use sqlx::{Any, Row, any::AnyArguments, query::Query};
use tokio::sync::Notify;

use super::{
    ConsumeOptions, Delivery, DeliveryHandle, EnqueueError, Envelope, QueueDepth, QueueError,
};
use db::{Backend, Database, Migrations, redact, timestamp_now};
use runtime::DatabaseUrl;

/// sqlx's error as a [`QueueError`] (its source).
fn database(error: sqlx::Error) -> QueueError {
    QueueError::Database(Box::new(error))
}

/// The queue tables' migrations (`queue_jobs`, `queue_dead_letters`).
pub(crate) fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

/// Leases up to `$5` deliverable rows of queue `$3` for token `$1` until `$2` (now is `$4`).
const LEASE_SQLITE: &str = "UPDATE queue_jobs \
     SET lease_token = $1, lease_until = $2, deliveries = deliveries + 1 \
     WHERE seq IN (SELECT seq FROM queue_jobs \
         WHERE queue = $3 AND state = 'ready' AND available_at <= $4 \
           AND (lease_until IS NULL OR lease_until <= $4) \
         ORDER BY available_at, seq LIMIT $5) \
     RETURNING seq, message_id, request_id, body, deliveries";
/// The same on PostgreSQL, where concurrent consumers skip each other's locked rows.
const LEASE_POSTGRES: &str = "UPDATE queue_jobs \
     SET lease_token = $1, lease_until = $2, deliveries = deliveries + 1 \
     WHERE seq IN (SELECT seq FROM queue_jobs \
         WHERE queue = $3 AND state = 'ready' AND available_at <= $4 \
           AND (lease_until IS NULL OR lease_until <= $4) \
         ORDER BY available_at, seq LIMIT $5 FOR UPDATE SKIP LOCKED) \
       AND (lease_until IS NULL OR lease_until <= $4) \
     RETURNING seq, message_id, request_id, body, deliveries";

/// Consumers in this process waiting on a queue, woken by enqueues in this process (other
/// processes' enqueues are found by polling).
fn waker(key: &str) -> Arc<Notify> {
    static WAKERS: OnceLock<Mutex<HashMap<String, Arc<Notify>>>> = OnceLock::new();
    let mut wakers = WAKERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    wakers.entry(key.to_owned()).or_default().clone()
}

/// The count of a queue's leased rows (`$1` the queue, `$2` now): by the index
/// `queue_jobs_leased`, as every worker's stats read it every 5 s. (Every row of `queue_jobs`
/// is `ready`: dead ones are moved to `queue_dead_letters`.)
pub(crate) const LEASED: &str =
    "SELECT COUNT(*) FROM queue_jobs WHERE queue = $1 AND lease_until > $2";

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The embedded queue of one process (cheap to clone).
#[derive(Clone)]
pub(crate) struct EmbeddedQueue {
    /// The shared state.
    inner: Arc<Inner>,
}

struct Inner {
    database: Database,
    queue: String,
    logger: Logger,
    waker: Arc<Notify>,
}

impl EmbeddedQueue {
    /// Opens (creating and migrating) the queue database.
    pub(crate) async fn connect(
        url: &DatabaseUrl,
        queue: &str,
        logger: Logger,
    ) -> anyhow::Result<Self> {
        // Processes (and, in the stack, services of one process) open the same file at once;
        // `Database::connect` takes its migrations one at a time and retries a raced one.
        let database = Database::connect(url, migrations()).await?;
        slog::info!(logger, "job queue ready"; "queue" => queue, "backend" => "embedded",
            "database" => redact(&url.0));
        Ok(Self {
            inner: Arc::new(Inner {
                database,
                queue: queue.to_owned(),
                logger,
                waker: waker(&format!("{}#{queue}", url.0)),
            }),
        })
    }

    /// Inserts a message; returns once it is committed.
    pub(crate) async fn publish_raw(
        &self,
        body: &[u8],
        message_id: &str,
        request_id: Option<&str>,
    ) -> Result<(), EnqueueError> {
        sqlx::query(
            "INSERT INTO queue_jobs (queue, message_id, request_id, body, available_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&self.inner.queue)
        .bind(message_id)
        .bind(request_id)
        .bind(body)
        .bind(now_millis())
        .bind(timestamp_now())
        .execute(self.inner.database.pool())
        .await
        .map_err(|error| EnqueueError::Unavailable(format!("queue database: {error}")))?;
        self.inner.waker.notify_waiters();
        Ok(())
    }

    /// A consumer with its own lease token.
    pub(crate) fn consume(&self, options: ConsumeOptions) -> EmbeddedConsumer {
        EmbeddedConsumer {
            queue: self.clone(),
            options,
            token: uuid::Uuid::new_v4().to_string(),
            buffer: VecDeque::new(),
            stopped: false,
        }
    }

    /// The queue database.
    pub(crate) fn database(&self) -> Database {
        self.inner.database.clone()
    }

    /// The queue's name.
    pub(crate) fn name(&self) -> &str {
        &self.inner.queue
    }

    /// Rows leased now (their lease running).
    pub(crate) async fn leased(&self) -> Result<u64, QueueError> {
        let count: i64 = sqlx::query_scalar(LEASED)
            .bind(&self.inner.queue)
            .bind(now_millis())
            .fetch_one(self.inner.database.pool())
            .await
            .map_err(database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Whether the queue database answers.
    pub(crate) async fn check(&self) -> anyhow::Result<()> {
        self.inner.database.ping().await
    }

    /// Removes and returns up to `limit` dead letters, oldest first.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn take_dead_letters(
        &self,
        limit: usize,
    ) -> Result<Vec<super::DeadLetter>, QueueError> {
        let rows = sqlx::query(
            "DELETE FROM queue_dead_letters WHERE seq IN (SELECT seq FROM queue_dead_letters \
                 WHERE queue = $1 ORDER BY seq LIMIT $2) \
             RETURNING seq, body, last_error",
        )
        .bind(&self.inner.queue)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.inner.database.pool())
        .await
        .map_err(database)?;
        let mut letters: Vec<(i64, super::DeadLetter)> = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("seq")?,
                    super::DeadLetter {
                        body: row.try_get("body")?,
                        error: row.try_get("last_error")?,
                    },
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(database)?;
        letters.sort_by_key(|(seq, _)| *seq);
        Ok(letters.into_iter().map(|(_, letter)| letter).collect())
    }

    /// Ready and dead messages of the queue (leased ones count as ready).
    pub(crate) async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM queue_jobs WHERE queue = $1) AS ready, \
                 (SELECT COUNT(*) FROM queue_dead_letters WHERE queue = $1) AS dead",
        )
        .bind(&self.inner.queue)
        .fetch_one(self.inner.database.pool())
        .await
        .map_err(database)?;
        let count = |column: &str| -> Result<u64, QueueError> {
            let count: i64 = row.try_get(column).map_err(database)?;
            Ok(u64::try_from(count).unwrap_or(0))
        };
        Ok(QueueDepth {
            ready: count("ready")?,
            dead: count("dead")?,
        })
    }

    /// Deletes every row of this queue.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn delete_topology(&self) -> Result<(), QueueError> {
        for table in ["queue_jobs", "queue_dead_letters"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE queue = $1"
            )))
            .bind(&self.inner.queue)
            .execute(self.inner.database.pool())
            .await
            .map_err(database)?;
        }
        Ok(())
    }

    /// Closes the pool.
    pub(crate) async fn close(&self) {
        self.inner.database.close().await;
    }

    /// Leases up to `limit` deliverable rows for `token`.
    async fn lease(
        &self,
        token: &str,
        limit: u16,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, sqlx::Error> {
        let now = now_millis();
        let until = now.saturating_add(i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX));
        let sql = match self.inner.database.backend() {
            Backend::Sqlite => LEASE_SQLITE,
            Backend::Postgres => LEASE_POSTGRES,
        };
        let rows = sqlx::query(sql)
            .bind(token)
            .bind(until)
            .bind(&self.inner.queue)
            .bind(now)
            .bind(i64::from(limit.max(1)))
            .fetch_all(self.inner.database.pool())
            .await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            let deliveries_count: i64 = row.try_get("deliveries")?;
            deliveries.push((
                seq,
                Delivery {
                    body: row.try_get("body")?,
                    message_id: row.try_get("message_id")?,
                    request_id: row.try_get("request_id")?,
                    deliveries: u32::try_from(deliveries_count).unwrap_or(u32::MAX),
                    handle: DeliveryHandle::Embedded(EmbeddedHandle {
                        queue: self.clone(),
                        seq,
                        token: token.to_owned(),
                        deliveries: deliveries_count,
                    }),
                },
            ));
        }
        deliveries.sort_by_key(|(seq, _)| *seq);
        Ok(deliveries
            .into_iter()
            .map(|(_, delivery)| delivery)
            .collect())
    }

    /// Releases every lease `token` holds.
    async fn release_all(&self, token: &str) -> Result<u64, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE queue_jobs SET lease_token = NULL, lease_until = NULL WHERE lease_token = $1",
        )
        .bind(token)
        .execute(self.inner.database.pool())
        .await?;
        if result.rows_affected() > 0 {
            self.inner.waker.notify_waiters();
        }
        Ok(result.rows_affected())
    }
}

/// Deliveries leased from the embedded queue.
pub(crate) struct EmbeddedConsumer {
    /// The queue.
    queue: EmbeddedQueue,
    /// Prefetch (batch size), visibility timeout, poll interval.
    options: ConsumeOptions,
    /// This consumer's lease token.
    token: String,
    /// Leased, not yet handed out.
    buffer: VecDeque<Delivery>,
    /// No more leases once stopped.
    stopped: bool,
}

impl EmbeddedConsumer {
    /// The next delivery, waiting (woken by enqueues in this process, else polling) while the
    /// queue is empty. `None` once stopped.
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.buffer.pop_front() {
                return Some(delivery);
            }
            if self.stopped {
                return None;
            }
            let waker = self.queue.inner.waker.clone();
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self
                .queue
                .lease(
                    &self.token,
                    self.options.prefetch,
                    self.options.visibility_timeout,
                )
                .await
            {
                Ok(batch) if !batch.is_empty() => self.buffer.extend(batch),
                Ok(_) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(self.options.poll_interval) => {}
                    }
                }
                Err(error) => {
                    slog::warn!(self.queue.inner.logger, "leasing jobs failed";
                        "error" => error.to_string());
                    tokio::time::sleep(self.options.poll_interval.max(Duration::from_millis(500)))
                        .await;
                }
            }
        }
    }

    /// No more leases; the leased jobs not handed out go back to the queue.
    pub(crate) async fn stop(&mut self) {
        self.stopped = true;
        for delivery in self.buffer.drain(..) {
            if let Err(error) = delivery.requeue().await {
                slog::warn!(self.queue.inner.logger, "releasing a lease failed";
                    "error" => error.to_string());
            }
        }
    }

    /// Releases every lease this consumer still holds (jobs abandoned in flight included).
    pub(crate) async fn close(mut self) {
        self.stop().await;
        match self.queue.release_all(&self.token).await {
            Ok(0) => {}
            Ok(released) => slog::info!(self.queue.inner.logger, "released unsettled jobs";
                "count" => released),
            Err(error) => slog::warn!(self.queue.inner.logger,
                "releasing leases failed: they expire after the visibility timeout";
                "error" => error.to_string()),
        }
    }
}

/// A leased row.
pub(crate) struct EmbeddedHandle {
    queue: EmbeddedQueue,
    seq: i64,
    token: String,
    deliveries: i64,
}

impl EmbeddedHandle {
    /// `sql`, whose `$1`–`$3` name this lease (the job's `seq`, the lease token and the
    /// delivery count), with those bound; the caller binds its own values from `$4`.
    fn on_lease(&self, sql: &'static str) -> Query<'_, Any, AnyArguments> {
        sqlx::query(sql)
            .bind(self.seq)
            .bind(self.token.as_str())
            .bind(self.deliveries)
    }

    /// Runs a statement of [`Self::on_lease`]: it must change exactly the leased row, or the
    /// lease was lost (it expired and another consumer took the job).
    async fn settle(&self, query: Query<'_, Any, AnyArguments>) -> Result<(), QueueError> {
        let result = query
            .execute(self.queue.inner.database.pool())
            .await
            .map_err(database)?;
        if result.rows_affected() == 1 {
            Ok(())
        } else {
            Err(QueueError::LeaseLost)
        }
    }

    pub(crate) async fn ack(self) -> Result<(), QueueError> {
        self.settle(self.on_lease(
            "DELETE FROM queue_jobs WHERE seq = $1 AND lease_token = $2 AND deliveries = $3",
        ))
        .await
    }

    pub(crate) async fn retry(
        self,
        next: &Envelope,
        delay: Duration,
        error: &str,
    ) -> Result<(), QueueError> {
        let query = self
            .on_lease(
                "UPDATE queue_jobs SET body = $4, available_at = $5, last_error = $6, \
                     lease_token = NULL, lease_until = NULL, deliveries = 0, \
                     first_failed_at = COALESCE(first_failed_at, $7) \
                 WHERE seq = $1 AND lease_token = $2 AND deliveries = $3",
            )
            .bind(next.to_body())
            .bind(millis_from_now(delay))
            .bind(error)
            .bind(timestamp_now());
        self.settle(query).await
    }

    /// Moves the leased row to `queue_dead_letters` in one transaction (nothing moves when
    /// the lease was lost).
    pub(crate) async fn dead_letter(
        self,
        body: &[u8],
        message_id: Option<&str>,
        request_id: Option<&str>,
        deliveries: u32,
        error: &str,
    ) -> Result<(), QueueError> {
        let mut transaction = self
            .queue
            .inner
            .database
            .pool()
            .begin()
            .await
            .map_err(database)?;
        let removed: Option<Option<String>> = sqlx::query_scalar(
            "DELETE FROM queue_jobs WHERE seq = $1 AND lease_token = $2 AND deliveries = $3 \
             RETURNING first_failed_at",
        )
        .bind(self.seq)
        .bind(self.token.as_str())
        .bind(self.deliveries)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(database)?;
        let Some(first_failed_at) = removed else {
            return Err(QueueError::LeaseLost);
        };
        crate::dead::NewDeadLetter {
            message_id: message_id.unwrap_or_default(),
            request_id,
            body,
            error: Some(error),
            deliveries,
            first_failed_at: first_failed_at.as_deref(),
            failed_at: None,
        }
        .upsert(&self.queue.inner.queue)
        .execute(&mut *transaction)
        .await
        .map_err(database)?;
        transaction.commit().await.map_err(database)
    }

    pub(crate) async fn extend(&self, visibility: Duration) -> Result<(), QueueError> {
        let query = self
            .on_lease(
                "UPDATE queue_jobs SET lease_until = $4 \
                 WHERE seq = $1 AND lease_token = $2 AND deliveries = $3",
            )
            .bind(millis_from_now(visibility));
        self.settle(query).await
    }

    pub(crate) async fn requeue(self) -> Result<(), QueueError> {
        let settled = self
            .settle(self.on_lease(
                "UPDATE queue_jobs SET lease_token = NULL, lease_until = NULL, \
                     deliveries = deliveries - 1 \
                 WHERE seq = $1 AND lease_token = $2 AND deliveries = $3",
            ))
            .await;
        self.queue.inner.waker.notify_waiters();
        settled
    }
}

/// Milliseconds since the epoch, `after` from now.
fn millis_from_now(after: Duration) -> i64 {
    now_millis().saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use testing::{TestBackend, on_both_backends};

    use super::*;
    use crate::{JobQueue, QueueArgs};

    /// A queue of its own on `backend`: a SQLite file in a scratch directory, or a fresh
    /// PostgreSQL database (the directory then stays empty).
    async fn queue_args(backend: TestBackend) -> (QueueArgs, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("platform-queue-{}", uuid::Uuid::new_v4()));
        let mut args = QueueArgs::embedded(&dir);
        if backend == TestBackend::Postgres {
            args.queue_database_url = testing::fresh_database(backend)
                .await
                .expect("a PostgreSQL database for the queue");
        }
        (args, dir)
    }

    async fn fresh_queue(backend: TestBackend) -> (JobQueue, std::path::PathBuf) {
        let (args, dir) = queue_args(backend).await;
        let logger = Logger::root(slog::Discard, slog::o!());
        let queue = JobQueue::connect(&args, logger)
            .await
            .expect("embedded queue");
        (queue, dir)
    }

    /// Removes the scratch directory (absent on PostgreSQL).
    fn cleanup(dir: std::path::PathBuf) {
        let _ = std::fs::remove_dir_all(dir);
    }

    on_both_backends!(
        an_acked_job_is_gone_and_an_unsettled_one_comes_back_after_its_lease,
        a_delivery_handed_back_unstarted_is_uncounted_and_a_crashed_one_counts,
        a_retry_waits_its_delay_and_a_dead_letter_keeps_its_error,
        a_stale_lease_cannot_settle_a_job_another_consumer_holds,
        services_opening_one_fresh_queue_at_once_all_succeed,
        closing_a_consumer_releases_its_leases_at_once,
    );

    fn quick(visibility: Duration) -> ConsumeOptions {
        ConsumeOptions {
            prefetch: 10,
            visibility_timeout: visibility,
            poll_interval: Duration::from_millis(20),
        }
    }

    async fn next_within(consumer: &mut crate::Consumer) -> Delivery {
        tokio::time::timeout(Duration::from_secs(5), consumer.next())
            .await
            .expect("a delivery within 5 s")
            .expect("a delivery")
    }

    async fn an_acked_job_is_gone_and_an_unsettled_one_comes_back_after_its_lease(
        backend: TestBackend,
    ) {
        let (queue, dir) = fresh_queue(backend).await;
        let id = queue
            .enqueue("task", serde_json::json!({"n": 1}), Some("req-1"))
            .await
            .expect("enqueued");
        let mut first = queue
            .consume(quick(Duration::from_millis(300)))
            .await
            .expect("consumer");
        let delivery = next_within(&mut first).await;
        let envelope = delivery.envelope().expect("an envelope");
        assert_eq!(envelope.id, id);
        assert_eq!(envelope.attempt, 1);
        assert_eq!(delivery.request_id.as_deref(), Some("req-1"));
        assert!(!delivery.redelivered());
        assert_eq!(delivery.deliveries, 1);
        // The first consumer "crashes": the delivery is never settled.
        std::mem::forget(delivery);
        let mut second = queue
            .consume(quick(Duration::from_secs(30)))
            .await
            .expect("consumer");
        let again = next_within(&mut second).await;
        assert!(again.redelivered());
        assert_eq!(again.deliveries, 2);
        assert_eq!(again.envelope().expect("envelope").id, id);
        again.ack().await.expect("acked");
        assert_eq!(
            queue.depth().await.expect("depth"),
            QueueDepth { ready: 0, dead: 0 }
        );
        queue.close().await;
        cleanup(dir);
    }

    async fn a_delivery_handed_back_unstarted_is_uncounted_and_a_crashed_one_counts(
        backend: TestBackend,
    ) {
        let (queue, dir) = fresh_queue(backend).await;
        queue
            .enqueue("task", serde_json::json!({}), None)
            .await
            .expect("enqueued");
        let mut consumer = queue
            .consume(quick(Duration::from_millis(200)))
            .await
            .expect("consumer");
        let first = next_within(&mut consumer).await;
        assert_eq!(first.deliveries, 1);
        first.requeue().await.expect("handed back");
        let second = next_within(&mut consumer).await;
        assert_eq!(second.deliveries, 1, "a requeue is no delivery");
        // Its consumer dies holding it: the lease expires and the next delivery counts.
        std::mem::forget(second);
        let third = next_within(&mut consumer).await;
        assert_eq!(third.deliveries, 2);
        third.ack().await.expect("acked");
        queue.close().await;
        cleanup(dir);
    }

    async fn a_retry_waits_its_delay_and_a_dead_letter_keeps_its_error(backend: TestBackend) {
        let (queue, dir) = fresh_queue(backend).await;
        queue
            .enqueue("task", serde_json::json!({}), None)
            .await
            .expect("enqueued");
        let mut consumer = queue
            .consume(quick(Duration::from_secs(30)))
            .await
            .expect("consumer");
        let delivery = next_within(&mut consumer).await;
        let next = delivery.envelope().expect("envelope").next_attempt();
        let retried_at = std::time::Instant::now();
        delivery
            .retry(&next, Duration::from_millis(400), "boom")
            .await
            .expect("retried");
        let again = next_within(&mut consumer).await;
        assert!(retried_at.elapsed() >= Duration::from_millis(400));
        assert_eq!(again.envelope().expect("envelope").attempt, 2);
        again.dead_letter("boom twice").await.expect("dead");
        let letters = queue.take_dead_letters(10).await.expect("dead letters");
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].error.as_deref(), Some("boom twice"));
        assert_eq!(letters[0].envelope().expect("envelope").attempt, 2);
        queue.close().await;
        cleanup(dir);
    }

    async fn a_stale_lease_cannot_settle_a_job_another_consumer_holds(backend: TestBackend) {
        let (queue, dir) = fresh_queue(backend).await;
        queue
            .enqueue("task", serde_json::json!({}), None)
            .await
            .expect("enqueued");
        let mut slow = queue
            .consume(quick(Duration::from_millis(100)))
            .await
            .expect("consumer");
        let stale = next_within(&mut slow).await;
        let mut fast = queue
            .consume(quick(Duration::from_secs(30)))
            .await
            .expect("consumer");
        let current = next_within(&mut fast).await;
        assert!(matches!(stale.ack().await, Err(QueueError::LeaseLost)));
        current.ack().await.expect("the current lease acks");
        queue.close().await;
        cleanup(dir);
    }

    async fn services_opening_one_fresh_queue_at_once_all_succeed(backend: TestBackend) {
        let (args, dir) = queue_args(backend).await;
        let opened = futures_util::future::join_all(
            (0..4).map(|_| JobQueue::connect(&args, Logger::root(slog::Discard, slog::o!()))),
        )
        .await;
        for queue in opened {
            let queue = queue.expect("opened");
            queue
                .enqueue("task", serde_json::json!({}), None)
                .await
                .expect("enqueued");
            queue.close().await;
        }
        cleanup(dir);
    }

    async fn closing_a_consumer_releases_its_leases_at_once(backend: TestBackend) {
        let (queue, dir) = fresh_queue(backend).await;
        for n in 0..3 {
            queue
                .enqueue("task", serde_json::json!({ "n": n }), None)
                .await
                .expect("enqueued");
        }
        let mut first = queue
            .consume(quick(Duration::from_secs(300)))
            .await
            .expect("consumer");
        let in_flight = next_within(&mut first).await;
        drop(in_flight);
        first.stop().await;
        first.close().await;
        let mut second = queue
            .consume(quick(Duration::from_secs(300)))
            .await
            .expect("consumer");
        for _ in 0..3 {
            next_within(&mut second).await.ack().await.expect("acked");
        }
        queue.close().await;
        cleanup(dir);
    }
}
