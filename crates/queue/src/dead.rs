//! [`DeadLetters`]: the dead letters of a queue as rows of `queue_dead_letters`, listed without
//! being consumed, replayed to the job queue, or deleted — one SQL implementation for both
//! backends (feature `embedded`, which brings the SQL driver).
//!
//! The embedded queue moves a job into the table when it dead-letters it (one transaction with
//! the job's removal), in the queue database. RabbitMQ keeps dead letters in `<queue>.dead`,
//! which cannot be listed without taking messages off it, so [`DeadLetters::drain`] (run by the
//! worker) consumes that queue into the table — in the database the worker names, its own —
//! acknowledging each message only once its row is committed: a crash between leaves the
//! message in the broker, and its second insert updates the same row (one row per queue and
//! job id), so nothing is lost or doubled.
//!
//! A replay publishes the job back to the job queue (its attempt counter at 1, its id, request
//! id and trace context kept; confirmed, or committed) and only then deletes the row: a crash between
//! leaves the job in both places, a duplicate the worker's idempotency record absorbs, never a
//! lost job.

use db::{Backend, Database, timestamp_now};
use serde::Serialize;
use sqlx::{Any, Row, any::AnyArguments, query::Query};

use crate::{Envelope, JobQueue, QueueError};

/// Rows read per round of a bulk replay.
const REPLAY_BATCH: i64 = 100;

/// sqlx's error as a [`QueueError`] (its source).
fn database(error: sqlx::Error) -> QueueError {
    QueueError::Database(Box::new(error))
}

/// A dead letter as the jobs API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterRow {
    /// The row's id (the API's `{id}`; ascending in dead-lettering order).
    pub id: i64,
    /// The job's id (the message id).
    pub job_id: String,
    /// The job's kind; `null` for a message that is no envelope.
    pub kind: Option<String>,
    /// The attempt that failed last (the envelope's `attempt`; 0 for no envelope).
    pub attempts: u32,
    /// How many times that attempt was handed to a consumer.
    pub deliveries: u32,
    /// Why it was dead-lettered.
    pub last_error: Option<String>,
    /// The request that caused the job.
    pub request_id: Option<String>,
    /// When its first attempt failed (RFC 3339).
    pub first_failed_at: String,
    /// When it was dead-lettered (RFC 3339).
    pub last_failed_at: String,
    /// The job's payload; `null` for a message that is no envelope.
    pub payload: Option<serde_json::Value>,
}

/// A message being dead-lettered, as the table stores it.
pub(crate) struct NewDeadLetter<'a> {
    /// The job id; empty when the message had none (one is made up).
    pub message_id: &'a str,
    /// The request id header.
    pub request_id: Option<&'a str>,
    /// The body as last delivered.
    pub body: &'a [u8],
    /// Why.
    pub error: Option<&'a str>,
    /// How many times its last attempt was handed out.
    pub deliveries: u32,
    /// When its first attempt failed, when that is known (else: when it was dead-lettered).
    pub first_failed_at: Option<&'a str>,
    /// When it was dead-lettered, when that is known (else: now).
    pub failed_at: Option<String>,
}

impl NewDeadLetter<'_> {
    /// The upsert of this dead letter into `queue`'s rows: a second copy of one job (a drain
    /// that crashed before its ack, a replayed job dead again before its row went) updates the
    /// row, keeping its first failure.
    pub(crate) fn upsert(&self, queue: &str) -> Query<'static, Any, AnyArguments> {
        let envelope = Envelope::from_body(self.body).ok();
        let failed_at = self.failed_at.clone().unwrap_or_else(timestamp_now);
        let message_id = if self.message_id.is_empty() {
            format!("unnamed-{}", uuid::Uuid::new_v4())
        } else {
            self.message_id.to_owned()
        };
        sqlx::query(
            "INSERT INTO queue_dead_letters (queue, message_id, request_id, kind, attempts, \
                 deliveries, last_error, body, first_failed_at, last_failed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (queue, message_id) DO UPDATE SET request_id = excluded.request_id, \
                 kind = excluded.kind, attempts = excluded.attempts, \
                 deliveries = excluded.deliveries, last_error = excluded.last_error, \
                 body = excluded.body, last_failed_at = excluded.last_failed_at, \
                 generation = queue_dead_letters.generation + 1",
        )
        .bind(queue.to_owned())
        .bind(message_id)
        .bind(self.request_id.map(str::to_owned))
        .bind(envelope.as_ref().map(|envelope| envelope.kind.clone()))
        .bind(
            envelope
                .as_ref()
                .map_or(0, |envelope| i64::from(envelope.attempt)),
        )
        .bind(i64::from(self.deliveries))
        .bind(self.error.map(str::to_owned))
        .bind(self.body.to_vec())
        .bind(
            self.first_failed_at
                .map_or_else(|| failed_at.clone(), str::to_owned),
        )
        .bind(failed_at)
    }
}

/// One page's SQL from the caller's keyset paging (server's `ListPage::sql` on the key `seq`):
/// a condition (or none), the `ORDER BY … LIMIT …` tail, and its values, placeholders numbered
/// from [`DeadLetters::list`]'s `first_placeholder`.
#[derive(Debug, Clone, Copy)]
pub struct PageClause<'a> {
    /// `seq > $n`, `seq < $n`, or none.
    pub condition: Option<&'a str>,
    /// `ORDER BY seq … LIMIT $n [OFFSET $m]`.
    pub tail: &'a str,
    /// The placeholders' values, in order.
    pub binds: &'a [i64],
}

/// The dead letters of one queue, in a SQL table (see the module documentation).
#[derive(Clone)]
pub struct DeadLetters {
    /// Where replays are published.
    queue: JobQueue,
    /// Where the rows are.
    pub(crate) database: Database,
    /// The queue's name (rows are per queue).
    name: String,
}

impl DeadLetters {
    /// The dead letters of `queue` in `database` (migrated with the queue's migrations).
    pub(crate) fn new(queue: JobQueue, database: Database, name: &str) -> Self {
        Self {
            queue,
            database,
            name: name.to_owned(),
        }
    }

    /// The queue they belong to.
    pub fn queue_name(&self) -> &str {
        &self.name
    }

    /// Takes RabbitMQ's dead-letter queue into the table until the future is dropped (see the
    /// module documentation); reconnects with backoff. Returns at once on the embedded queue,
    /// whose dead letters are rows already.
    pub async fn drain(&self) {
        match &self.queue.backend {
            #[cfg(feature = "amqp")]
            crate::Backend::Amqp(queue) => queue.drain_dead_letters(self).await,
            #[cfg(feature = "embedded")]
            crate::Backend::Embedded(_) => {}
        }
    }

    /// Stores one drained dead letter (committed when it returns).
    #[cfg(feature = "amqp")]
    pub(crate) async fn store(&self, letter: &NewDeadLetter<'_>) -> Result<(), QueueError> {
        letter
            .upsert(&self.name)
            .execute(self.database.pool())
            .await
            .map_err(database)?;
        Ok(())
    }

    /// The rows of `kind` (every kind: `None`), numbering the placeholders of `page` from
    /// `first_placeholder(kind)`.
    pub async fn list(
        &self,
        kind: Option<&str>,
        page: PageClause<'_>,
    ) -> Result<Vec<DeadLetterRow>, QueueError> {
        let mut sql = format!("SELECT {COLUMNS} FROM queue_dead_letters WHERE queue = $1");
        if kind.is_some() {
            sql.push_str(" AND kind = $2");
        }
        if let Some(condition) = page.condition {
            sql.push_str(" AND ");
            sql.push_str(condition);
        }
        sql.push(' ');
        sql.push_str(page.tail);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.name.clone());
        if let Some(kind) = kind {
            query = query.bind(kind.to_owned());
        }
        for value in page.binds {
            query = query.bind(*value);
        }
        let rows = query
            .fetch_all(self.database.pool())
            .await
            .map_err(database)?;
        rows.iter()
            .map(row)
            .collect::<Result<_, _>>()
            .map_err(database)
    }

    /// The first placeholder a page's clause may use after the filter of `kind`.
    pub fn first_placeholder(kind: Option<&str>) -> usize {
        if kind.is_some() { 3 } else { 2 }
    }

    /// How many rows there are (of `kind`, or all).
    pub async fn count(&self, kind: Option<&str>) -> Result<u64, QueueError> {
        let query = match kind {
            Some(kind) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM queue_dead_letters WHERE queue = $1 AND kind = $2",
            )
            .bind(self.name.clone())
            .bind(kind.to_owned()),
            None => sqlx::query_scalar("SELECT COUNT(*) FROM queue_dead_letters WHERE queue = $1")
                .bind(self.name.clone()),
        };
        let count: i64 = query
            .fetch_one(self.database.pool())
            .await
            .map_err(database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Dead letters in all: the rows, and on RabbitMQ the messages of `<queue>.dead` not
    /// drained yet.
    pub async fn total(&self) -> Result<u64, QueueError> {
        let rows = self.count(None).await?;
        let waiting = match &self.queue.backend {
            #[cfg(feature = "amqp")]
            crate::Backend::Amqp(queue) => queue.depth().await?.dead,
            #[cfg(feature = "embedded")]
            crate::Backend::Embedded(_) => 0,
        };
        Ok(rows + waiting)
    }

    /// Replays the rows `ids` names (see the module documentation); returns the ids replayed
    /// (those that exist), ascending. Stops at the first job that cannot be published.
    pub async fn replay(&self, ids: &[i64]) -> Result<Vec<i64>, QueueError> {
        let mut replayed = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(REPLAY_BATCH as usize) {
            let sql = format!(
                "SELECT seq, generation, message_id, request_id, body FROM queue_dead_letters \
                 WHERE queue = $1 AND seq IN ({}) ORDER BY seq",
                in_list(chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.name.clone());
            for id in chunk {
                query = query.bind(*id);
            }
            let rows = query
                .fetch_all(self.database.pool())
                .await
                .map_err(database)?;
            replayed.extend(self.replay_rows(rows).await?);
        }
        Ok(replayed)
    }

    /// Replays every row (of `kind`, or all) there was when it started, oldest first, a batch
    /// at a time; returns how many. Jobs dead again meanwhile are not replayed twice.
    pub async fn replay_all(&self, kind: Option<&str>) -> Result<u64, QueueError> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM queue_dead_letters WHERE queue = $1")
                .bind(self.name.clone())
                .fetch_one(self.database.pool())
                .await
                .map_err(database)?;
        let Some(last) = last else {
            return Ok(0);
        };
        let mut after = 0_i64;
        let mut replayed = 0_u64;
        loop {
            let mut sql = "SELECT seq, generation, message_id, request_id, body \
                 FROM queue_dead_letters \
                 WHERE queue = $1 AND seq > $2 AND seq <= $3"
                .to_owned();
            if kind.is_some() {
                sql.push_str(" AND kind = $5");
            }
            sql.push_str(" ORDER BY seq LIMIT $4");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(self.name.clone())
                .bind(after)
                .bind(last)
                .bind(REPLAY_BATCH);
            if let Some(kind) = kind {
                query = query.bind(kind.to_owned());
            }
            let rows = query
                .fetch_all(self.database.pool())
                .await
                .map_err(database)?;
            if rows.is_empty() {
                return Ok(replayed);
            }
            let done = self.replay_rows(rows).await?;
            replayed += done.len() as u64;
            after = done.last().copied().unwrap_or(last);
        }
    }

    /// Publishes each row's job back (attempt 1), then deletes the row unless a copy of the
    /// job was stored over it meanwhile (replayed and dead again already: that row is the new
    /// dead letter); returns their ids.
    async fn replay_rows(&self, rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<i64>, QueueError> {
        let mut replayed = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("seq").map_err(database)?;
            let message_id: String = row.try_get("message_id").map_err(database)?;
            let request_id: Option<String> = row.try_get("request_id").map_err(database)?;
            let body: Vec<u8> = row.try_get("body").map_err(database)?;
            let generation: i64 = row.try_get("generation").map_err(database)?;
            let (body, traceparent) = first_attempt(body);
            self.queue
                .publish_traced(
                    &body,
                    &message_id,
                    request_id.as_deref(),
                    traceparent.as_deref(),
                )
                .await?;
            sqlx::query("DELETE FROM queue_dead_letters WHERE seq = $1 AND generation = $2")
                .bind(seq)
                .bind(generation)
                .execute(self.database.pool())
                .await
                .map_err(database)?;
            replayed.push(seq);
        }
        Ok(replayed)
    }

    /// Deletes the rows `ids` names; returns the ids deleted (those that existed), ascending.
    pub async fn delete(&self, ids: &[i64]) -> Result<Vec<i64>, QueueError> {
        let mut deleted = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(REPLAY_BATCH as usize) {
            let sql = format!(
                "DELETE FROM queue_dead_letters WHERE queue = $1 AND seq IN ({}) RETURNING seq",
                in_list(chunk.len())
            );
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(self.name.clone());
            for id in chunk {
                query = query.bind(*id);
            }
            let rows: Vec<i64> = query
                .fetch_all(self.database.pool())
                .await
                .map_err(database)?;
            deleted.extend(rows);
        }
        deleted.sort_unstable();
        Ok(deleted)
    }

    /// Deletes every row (of `kind`, or all); returns how many.
    pub async fn delete_all(&self, kind: Option<&str>) -> Result<u64, QueueError> {
        let query = match kind {
            Some(kind) => {
                sqlx::query("DELETE FROM queue_dead_letters WHERE queue = $1 AND kind = $2")
                    .bind(self.name.clone())
                    .bind(kind.to_owned())
            }
            None => sqlx::query("DELETE FROM queue_dead_letters WHERE queue = $1")
                .bind(self.name.clone()),
        };
        let result = query
            .execute(self.database.pool())
            .await
            .map_err(database)?;
        Ok(result.rows_affected())
    }

    /// Removes and returns up to `limit` rows, oldest first, as the dead-letter queue's
    /// messages (tests, feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub async fn take(&self, limit: usize) -> Result<Vec<crate::DeadLetter>, QueueError> {
        let rows = sqlx::query(
            "SELECT seq, body, last_error FROM queue_dead_letters WHERE queue = $1 \
             ORDER BY seq LIMIT $2",
        )
        .bind(self.name.clone())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.database.pool())
        .await
        .map_err(database)?;
        let mut letters = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("seq").map_err(database)?;
            if self.delete(&[seq]).await?.is_empty() {
                continue;
            }
            letters.push(crate::DeadLetter {
                body: row.try_get("body").map_err(database)?,
                error: row.try_get("last_error").map_err(database)?,
            });
        }
        Ok(letters)
    }

    /// Whether the table's database answers.
    pub async fn check(&self) -> anyhow::Result<()> {
        self.database.ping().await
    }

    /// The engine of the table's database.
    pub fn backend(&self) -> Backend {
        self.database.backend()
    }
}

/// `$2, $3, …`: the placeholders of an `IN (…)` list of `count` values after the queue's `$1`.
fn in_list(count: usize) -> String {
    (2..count + 2)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns [`row`] reads.
const COLUMNS: &str = "seq, message_id, kind, attempts, deliveries, last_error, request_id, \
     first_failed_at, last_failed_at, body";

/// A row of [`COLUMNS`].
fn row(row: &sqlx::any::AnyRow) -> Result<DeadLetterRow, sqlx::Error> {
    let attempts: i64 = row.try_get("attempts")?;
    let deliveries: i64 = row.try_get("deliveries")?;
    let body: Vec<u8> = row.try_get("body")?;
    Ok(DeadLetterRow {
        id: row.try_get("seq")?,
        job_id: row.try_get("message_id")?,
        kind: row.try_get("kind")?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        deliveries: u32::try_from(deliveries).unwrap_or(0),
        last_error: row.try_get("last_error")?,
        request_id: row.try_get("request_id")?,
        first_failed_at: row.try_get("first_failed_at")?,
        last_failed_at: row.try_get("last_failed_at")?,
        payload: Envelope::from_body(&body)
            .ok()
            .map(|envelope| envelope.payload),
    })
}

/// The body with its envelope's `attempt` set back to 1 (every other field kept as it is), and
/// its `traceparent` (a header too on RabbitMQ); a body that is no JSON object with an
/// `attempt` goes back unchanged.
fn first_attempt(body: Vec<u8>) -> (Vec<u8>, Option<String>) {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut object)) if object.contains_key("attempt") => {
            object.insert("attempt".to_owned(), serde_json::Value::from(1));
            let traceparent = object
                .get("traceparent")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            (serde_json::to_vec(&object).unwrap_or(body), traceparent)
        }
        _ => (body, None),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use slog::Logger;
    use testing::{TestBackend, on_both_backends};

    use super::*;
    use crate::{ConsumeOptions, Consumer, Delivery, QueueArgs};

    /// An embedded queue of its own on `backend`, its dead letters, its scratch directory.
    async fn fresh(backend: TestBackend) -> (JobQueue, DeadLetters, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("platform-dead-{}", uuid::Uuid::new_v4()));
        let mut args = QueueArgs::embedded(&dir);
        if backend == TestBackend::Postgres {
            args.queue_database_url = testing::fresh_database(backend)
                .await
                .expect("a PostgreSQL database for the queue");
        }
        let queue = JobQueue::connect(&args, Logger::root(slog::Discard, slog::o!()))
            .await
            .expect("embedded queue");
        let dead = queue
            .dead_letters(&args.queue_database_url)
            .await
            .expect("its dead letters");
        (queue, dead, dir)
    }

    async fn consumer(queue: &JobQueue) -> Consumer {
        queue
            .consume(ConsumeOptions {
                prefetch: 1,
                visibility_timeout: Duration::from_secs(30),
                poll_interval: Duration::from_millis(20),
            })
            .await
            .expect("a consumer")
    }

    async fn next(consumer: &mut Consumer) -> Delivery {
        tokio::time::timeout(Duration::from_secs(5), consumer.next())
            .await
            .expect("a delivery within 5 s")
            .expect("a delivery")
    }

    /// Every row, oldest first.
    async fn rows(dead: &DeadLetters) -> Vec<DeadLetterRow> {
        dead.list(
            None,
            PageClause {
                condition: None,
                tail: "ORDER BY seq ASC LIMIT $2",
                binds: &[100],
            },
        )
        .await
        .expect("listed")
    }

    on_both_backends!(
        a_dead_job_is_a_row_with_its_history_replayed_at_attempt_one_and_deleted,
        a_copy_stored_over_a_row_being_replayed_is_not_deleted_by_that_replay,
    );

    async fn a_dead_job_is_a_row_with_its_history_replayed_at_attempt_one_and_deleted(
        backend: TestBackend,
    ) {
        let (queue, dead, dir) = fresh(backend).await;
        let id = queue
            .enqueue("task", serde_json::json!({"n": 1}), Some("req-1"))
            .await
            .expect("enqueued");
        let mut consumer = consumer(&queue).await;
        let first = next(&mut consumer).await;
        let retry = first.envelope().expect("an envelope").next_attempt();
        first
            .retry(&retry, Duration::from_millis(50), "boom once")
            .await
            .expect("retried");
        next(&mut consumer)
            .await
            .dead_letter("boom twice")
            .await
            .expect("dead");
        let listed = rows(&dead).await;
        assert_eq!(listed.len(), 1);
        let row = &listed[0];
        assert_eq!(row.job_id, id.to_string());
        assert_eq!(row.kind.as_deref(), Some("task"));
        assert_eq!((row.attempts, row.deliveries), (2, 1));
        assert_eq!(row.last_error.as_deref(), Some("boom twice"));
        assert_eq!(row.request_id.as_deref(), Some("req-1"));
        assert_eq!(row.payload, Some(serde_json::json!({"n": 1})));
        assert!(
            row.first_failed_at < row.last_failed_at,
            "the first failure is the first attempt's: {row:?}"
        );
        assert_eq!(dead.count(None).await.expect("counted"), 1);
        assert_eq!(dead.count(Some("thumbnail")).await.expect("counted"), 0);
        assert_eq!(dead.total().await.expect("total"), 1);
        assert_eq!(queue.depth().await.expect("depth").dead, 1);

        assert_eq!(
            dead.replay(&[row.id, row.id + 1000])
                .await
                .expect("replayed"),
            [row.id]
        );
        assert!(rows(&dead).await.is_empty());
        let again = next(&mut consumer).await;
        let envelope = again.envelope().expect("an envelope");
        assert_eq!((envelope.id, envelope.attempt), (id, 1));
        assert_eq!(again.request_id.as_deref(), Some("req-1"));
        again.dead_letter("boom again").await.expect("dead");
        let row = rows(&dead).await.remove(0);
        assert_eq!(dead.delete(&[row.id]).await.expect("deleted"), [row.id]);
        assert!(dead.delete(&[row.id]).await.expect("deleted").is_empty());
        assert_eq!(queue.depth().await.expect("depth").dead, 0);
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    async fn a_copy_stored_over_a_row_being_replayed_is_not_deleted_by_that_replay(
        backend: TestBackend,
    ) {
        let (queue, dead, dir) = fresh(backend).await;
        let id = queue
            .enqueue("task", serde_json::json!({}), None)
            .await
            .expect("enqueued");
        let mut consumer = consumer(&queue).await;
        next(&mut consumer)
            .await
            .dead_letter("first death")
            .await
            .expect("dead");
        // The replay has read its row; the job, published, dies again before the row goes.
        let read = sqlx::query(
            "SELECT seq, generation, message_id, request_id, body FROM queue_dead_letters",
        )
        .fetch_all(dead.database.pool())
        .await
        .expect("read");
        let body = Envelope::new("task", serde_json::json!({}), None).to_body();
        NewDeadLetter {
            message_id: &id.to_string(),
            request_id: None,
            body: &body,
            error: Some("second death"),
            deliveries: 1,
            first_failed_at: None,
            failed_at: None,
        }
        .upsert(dead.queue_name())
        .execute(dead.database.pool())
        .await
        .expect("stored over");
        dead.replay_rows(read).await.expect("replayed");
        let left = rows(&dead).await;
        assert_eq!(left.len(), 1, "the second death is kept");
        assert_eq!(left[0].last_error.as_deref(), Some("second death"));
        assert_eq!(next(&mut consumer).await.envelope().expect("job").id, id);
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_replayed_body_starts_again_at_attempt_one_with_every_other_field_kept() {
        let body = br#"{"id":"x","kind":"task","attempt":5,"traceparent":"00-a-b-01"}"#.to_vec();
        let (replayed, traceparent) = first_attempt(body);
        let replayed: serde_json::Value = serde_json::from_slice(&replayed).expect("JSON");
        assert_eq!(replayed["attempt"], 1);
        assert_eq!(replayed["traceparent"], "00-a-b-01");
        assert_eq!(traceparent.as_deref(), Some("00-a-b-01"));
        assert_eq!(
            first_attempt(b"not json".to_vec()),
            (b"not json".to_vec(), None)
        );
    }
}
