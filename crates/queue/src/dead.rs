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

/// Ids per statement of a delete by ids.
const DELETE_BATCH: usize = 100;

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
    ///
    /// What is stored is made storable first ([`storable`]): no NUL byte (PostgreSQL's text
    /// takes none), the error cut to [`MAX_ERROR_BYTES`], ids and kind to [`MAX_ID_BYTES`].
    pub(crate) fn upsert(&self, queue: &str) -> Query<'static, Any, AnyArguments> {
        let envelope = Envelope::from_body(self.body).ok();
        let failed_at = self
            .failed_at
            .as_deref()
            .map_or_else(timestamp_now, |at| storable(at, MAX_ID_BYTES));
        let message_id = if self.message_id.is_empty() {
            format!("unnamed-{}", uuid::Uuid::new_v4())
        } else {
            storable(self.message_id, MAX_ID_BYTES)
        };
        sqlx::query(
            "INSERT INTO queue_dead_letters (queue, message_id, request_id, kind, attempts, \
                 deliveries, last_error, body, first_failed_at, last_failed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (queue, message_id) DO UPDATE SET request_id = excluded.request_id, \
                 kind = excluded.kind, attempts = excluded.attempts, \
                 deliveries = excluded.deliveries, last_error = excluded.last_error, \
                 body = excluded.body, last_failed_at = excluded.last_failed_at, \
                 generation = queue_dead_letters.generation + 1, replay_until = NULL",
        )
        .bind(queue.to_owned())
        .bind(message_id)
        .bind(self.request_id.map(|id| storable(id, MAX_ID_BYTES)))
        .bind(
            envelope
                .as_ref()
                .map(|envelope| storable(&envelope.kind, MAX_ID_BYTES)),
        )
        .bind(
            envelope
                .as_ref()
                .map_or(0, |envelope| i64::from(envelope.attempt)),
        )
        .bind(i64::from(self.deliveries))
        .bind(self.error.map(|error| storable(error, MAX_ERROR_BYTES)))
        .bind(self.body.to_vec())
        .bind(
            self.first_failed_at
                .map_or_else(|| failed_at.clone(), |at| storable(at, MAX_ID_BYTES)),
        )
        .bind(failed_at)
    }
}

/// The longest `last_error` stored, in bytes.
pub const MAX_ERROR_BYTES: usize = 4096;
/// The longest job id, request id, kind or time stored, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// `text` without NUL bytes, cut to at most `max` bytes on a character boundary.
pub fn storable(text: &str, max: usize) -> String {
    let mut kept: String = text.chars().filter(|c| *c != '\0').collect();
    if kept.len() > max {
        let mut end = max;
        while !kept.is_char_boundary(end) {
            end -= 1;
        }
        kept.truncate(end);
    }
    kept
}

/// Where a page of dead letters starts, on their ascending ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStart {
    /// The oldest rows.
    First,
    /// The rows after skipping this many, oldest first.
    Offset(i64),
    /// The rows whose id is greater than this one.
    After(i64),
    /// The rows whose id is less than this one (the nearest first).
    Before(i64),
    /// The newest rows (the newest first).
    Last,
}

/// One page of dead letters to read: a filter, where it starts, how many rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<'a> {
    /// Only rows of this job kind (`None`: every kind).
    pub kind: Option<&'a str>,
    /// Where the page starts.
    pub start: PageStart,
    /// The most rows read.
    pub limit: i64,
}

/// What one bounded bulk call did: how many rows it replayed or deleted, how many of those it
/// covers are left, and the id bound it covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkProgress {
    /// Rows replayed or deleted by this call.
    pub done: u64,
    /// Rows of the selection (ids up to `through`) still there.
    pub remaining: u64,
    /// The highest id the selection covers (0: there was no row).
    pub through: i64,
}

/// How long a replay's claim on a row holds (a replayer that stops midway releases it no
/// sooner): a bound on one publish, far above it.
const REPLAY_CLAIM_MS: i64 = 120_000;

/// A dead letter claimed for a replay: what is published, and the generation its claim made.
struct Claimed {
    seq: i64,
    generation: i64,
    message_id: String,
    request_id: Option<String>,
    body: Vec<u8>,
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

    /// The page `page` asks for, in its order: ascending ids from [`PageStart::First`],
    /// [`PageStart::Offset`] and [`PageStart::After`], descending (the nearest first) from
    /// [`PageStart::Before`] and [`PageStart::Last`].
    pub async fn list(&self, page: PageRequest<'_>) -> Result<Vec<DeadLetterRow>, QueueError> {
        let mut sql = format!("SELECT {COLUMNS} FROM queue_dead_letters WHERE queue = $1");
        let mut next = 2;
        if page.kind.is_some() {
            sql.push_str(" AND kind = $2");
            next = 3;
        }
        let (key, order) = match page.start {
            PageStart::First | PageStart::Offset(_) => (None, "ASC"),
            PageStart::After(after) => (Some((">", after)), "ASC"),
            PageStart::Before(before) => (Some(("<", before)), "DESC"),
            PageStart::Last => (None, "DESC"),
        };
        if let Some((operator, _)) = key {
            sql.push_str(&format!(" AND seq {operator} ${next}"));
            next += 1;
        }
        sql.push_str(&format!(" ORDER BY seq {order} LIMIT ${next}"));
        if matches!(page.start, PageStart::Offset(_)) {
            sql.push_str(&format!(" OFFSET ${}", next + 1));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.name.clone());
        if let Some(kind) = page.kind {
            query = query.bind(kind.to_owned());
        }
        if let Some((_, value)) = key {
            query = query.bind(value);
        }
        query = query.bind(page.limit.max(0));
        if let PageStart::Offset(offset) = page.start {
            query = query.bind(offset.max(0));
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

    /// The row `id`, when there is one.
    pub async fn get(&self, id: i64) -> Result<Option<DeadLetterRow>, QueueError> {
        let found = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM queue_dead_letters WHERE queue = $1 AND seq = $2"
        )))
        .bind(self.name.clone())
        .bind(id)
        .fetch_optional(self.database.pool())
        .await
        .map_err(database)?;
        found.as_ref().map(row).transpose().map_err(database)
    }

    /// How many rows there are (of `kind`, or all).
    pub async fn count(&self, kind: Option<&str>) -> Result<u64, QueueError> {
        self.count_through(kind, i64::MAX).await
    }

    /// Dead letters in all, given the queue's `depth`: on the embedded queue its dead count
    /// (the rows themselves), on RabbitMQ the rows and the messages of `<queue>.dead` not
    /// drained yet.
    pub async fn total(&self, depth: &crate::QueueDepth) -> Result<u64, QueueError> {
        match &self.queue.backend {
            #[cfg(feature = "amqp")]
            crate::Backend::Amqp(_) => Ok(self.count(None).await? + depth.dead),
            #[cfg(feature = "embedded")]
            crate::Backend::Embedded(_) => Ok(depth.dead),
        }
    }

    /// Replays the rows `ids` names (see the module documentation); returns the ids replayed,
    /// ascending: those that exist and no other replay holds. Stops at the first job that
    /// cannot be published.
    pub async fn replay(&self, ids: &[i64]) -> Result<Vec<i64>, QueueError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut replayed = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(claimed) = self.claim(id).await? else {
                continue;
            };
            self.replay_claimed(claimed).await?;
            replayed.push(id);
        }
        Ok(replayed)
    }

    /// Claims the row `seq` for one replay: bumps its generation and holds it for
    /// [`REPLAY_CLAIM_MS`], unless another replay holds it; `None` when it is not there or
    /// held. Of two replays of one row, one claims it: the job is published once.
    async fn claim(&self, seq: i64) -> Result<Option<Claimed>, QueueError> {
        let now = chrono::Utc::now().timestamp_millis();
        let claimed = sqlx::query(
            "UPDATE queue_dead_letters SET generation = generation + 1, replay_until = $3 \
             WHERE queue = $1 AND seq = $2 AND (replay_until IS NULL OR replay_until <= $4) \
             RETURNING generation, message_id, request_id, body",
        )
        .bind(self.name.clone())
        .bind(seq)
        .bind(now.saturating_add(REPLAY_CLAIM_MS))
        .bind(now)
        .fetch_optional(self.database.pool())
        .await
        .map_err(database)?;
        claimed
            .map(|row| {
                Ok(Claimed {
                    seq,
                    generation: row.try_get("generation")?,
                    message_id: row.try_get("message_id")?,
                    request_id: row.try_get("request_id")?,
                    body: row.try_get("body")?,
                })
            })
            .transpose()
            .map_err(database)
    }

    /// Publishes a claimed row's job back (attempt 1), then deletes the row unless a copy of
    /// the job was stored over it meanwhile (replayed and dead again already: that row is the
    /// new dead letter, its generation moved on). A publish that fails releases the claim.
    async fn replay_claimed(&self, claimed: Claimed) -> Result<(), QueueError> {
        let (body, traceparent) = first_attempt(claimed.body);
        let published = self
            .queue
            .publish_traced(
                &body,
                &claimed.message_id,
                claimed.request_id.as_deref(),
                traceparent.as_deref(),
            )
            .await;
        if let Err(error) = published {
            // Best effort: an unreleased claim expires by itself.
            let _ = sqlx::query(
                "UPDATE queue_dead_letters SET replay_until = NULL \
                 WHERE seq = $1 AND generation = $2",
            )
            .bind(claimed.seq)
            .bind(claimed.generation)
            .execute(self.database.pool())
            .await;
            return Err(error.into());
        }
        sqlx::query("DELETE FROM queue_dead_letters WHERE seq = $1 AND generation = $2")
            .bind(claimed.seq)
            .bind(claimed.generation)
            .execute(self.database.pool())
            .await
            .map_err(database)?;
        Ok(())
    }

    /// The bound of a bulk selection: `through` when it names one, else the highest id there
    /// is now (0: none).
    async fn bound(&self, through: Option<i64>) -> Result<i64, QueueError> {
        if let Some(through) = through {
            return Ok(through);
        }
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM queue_dead_letters WHERE queue = $1")
                .bind(self.name.clone())
                .fetch_one(self.database.pool())
                .await
                .map_err(database)?;
        Ok(last.unwrap_or(0))
    }

    /// How many rows (of `kind`, or all) have an id up to `through`.
    async fn count_through(&self, kind: Option<&str>, through: i64) -> Result<u64, QueueError> {
        let mut sql =
            "SELECT COUNT(*) FROM queue_dead_letters WHERE queue = $1 AND seq <= $2".to_owned();
        if kind.is_some() {
            sql.push_str(" AND kind = $3");
        }
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(self.name.clone())
            .bind(through);
        if let Some(kind) = kind {
            query = query.bind(kind.to_owned());
        }
        let count: i64 = query
            .fetch_one(self.database.pool())
            .await
            .map_err(database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Replays up to `max` rows (of `kind`, or all) with ids up to `through` (`None`: the
    /// highest id now), oldest first, skipping rows another replay holds. Called again with
    /// the answer's `through` until nothing remains, it covers the rows there were at the
    /// first call, once each: a job dead again meanwhile has a higher id.
    pub async fn replay_all(
        &self,
        kind: Option<&str>,
        through: Option<i64>,
        max: usize,
    ) -> Result<BulkProgress, QueueError> {
        let through = self.bound(through).await?;
        let mut sql = "SELECT seq FROM queue_dead_letters \
             WHERE queue = $1 AND seq <= $2 AND (replay_until IS NULL OR replay_until <= $3)"
            .to_owned();
        if kind.is_some() {
            sql.push_str(" AND kind = $5");
        }
        sql.push_str(" ORDER BY seq LIMIT $4");
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(self.name.clone())
            .bind(through)
            .bind(chrono::Utc::now().timestamp_millis())
            .bind(i64::try_from(max).unwrap_or(i64::MAX));
        if let Some(kind) = kind {
            query = query.bind(kind.to_owned());
        }
        let ids: Vec<i64> = query
            .fetch_all(self.database.pool())
            .await
            .map_err(database)?;
        let done = self.replay(&ids).await?.len() as u64;
        Ok(BulkProgress {
            done,
            remaining: self.count_through(kind, through).await?,
            through,
        })
    }

    /// Deletes the rows `ids` names; returns the ids deleted (those that existed), ascending.
    pub async fn delete(&self, ids: &[i64]) -> Result<Vec<i64>, QueueError> {
        let mut deleted = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(DELETE_BATCH) {
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

    /// Deletes up to `max` rows (of `kind`, or all) with ids up to `through` (`None`: the
    /// highest id now), oldest first; called again with the answer's `through` until nothing
    /// remains, it covers the rows there were at the first call.
    pub async fn delete_all(
        &self,
        kind: Option<&str>,
        through: Option<i64>,
        max: usize,
    ) -> Result<BulkProgress, QueueError> {
        let through = self.bound(through).await?;
        let mut sql = "DELETE FROM queue_dead_letters WHERE seq IN (SELECT seq \
             FROM queue_dead_letters WHERE queue = $1 AND seq <= $2"
            .to_owned();
        if kind.is_some() {
            sql.push_str(" AND kind = $4");
        }
        sql.push_str(" ORDER BY seq LIMIT $3)");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.name.clone())
            .bind(through)
            .bind(i64::try_from(max).unwrap_or(i64::MAX));
        if let Some(kind) = kind {
            query = query.bind(kind.to_owned());
        }
        let done = query
            .execute(self.database.pool())
            .await
            .map_err(database)?
            .rows_affected();
        Ok(BulkProgress {
            done,
            remaining: self.count_through(kind, through).await?,
            through,
        })
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
        dead.list(PageRequest {
            kind: None,
            start: PageStart::First,
            limit: 100,
        })
        .await
        .expect("listed")
    }

    on_both_backends!(
        a_dead_job_is_a_row_with_its_history_replayed_at_attempt_one_and_deleted,
        a_copy_stored_over_a_row_being_replayed_is_not_deleted_by_that_replay,
        replays_racing_over_one_row_publish_its_job_once,
        bulk_calls_are_bounded_and_cover_the_rows_there_were,
        the_leased_jobs_are_counted_by_index,
        a_stored_error_has_no_nul_and_a_bounded_length,
    );

    /// Dead-letters `count` jobs of kind `task`; their rows' ids, ascending.
    async fn dead_jobs(queue: &JobQueue, dead: &DeadLetters, count: usize) -> Vec<i64> {
        for n in 0..count {
            queue
                .enqueue("task", serde_json::json!({ "n": n }), None)
                .await
                .expect("enqueued");
        }
        let mut consumer = consumer(queue).await;
        for _ in 0..count {
            next(&mut consumer)
                .await
                .dead_letter("dead")
                .await
                .expect("dead");
        }
        consumer.stop().await;
        consumer.close().await;
        rows(dead).await.iter().map(|row| row.id).collect()
    }

    async fn replays_racing_over_one_row_publish_its_job_once(backend: TestBackend) {
        let (queue, dead, dir) = fresh(backend).await;
        let ids = dead_jobs(&queue, &dead, 10).await;
        assert_eq!(ids.len(), 10);
        // Two replays of each row at once, and a replay of all racing them.
        let one_by_one = |dead: DeadLetters, ids: Vec<i64>| async move {
            let mut replayed = 0;
            for id in ids {
                replayed += dead.replay(&[id]).await.expect("replayed").len();
            }
            replayed
        };
        let (first, second, all) = tokio::join!(
            one_by_one(dead.clone(), ids.clone()),
            one_by_one(dead.clone(), ids.clone()),
            dead.replay_all(None, None, 1000),
        );
        let all = all.expect("replayed all").done as usize;
        assert_eq!(first + second + all, 10, "each row replayed once");
        assert!(rows(&dead).await.is_empty());
        assert_eq!(
            queue.depth().await.expect("depth").ready,
            10,
            "each job published once"
        );
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    async fn bulk_calls_are_bounded_and_cover_the_rows_there_were(backend: TestBackend) {
        let (queue, dead, dir) = fresh(backend).await;
        let ids = dead_jobs(&queue, &dead, 5).await;
        let first = dead
            .replay_all(Some("task"), None, 2)
            .await
            .expect("replayed");
        assert_eq!(
            first,
            BulkProgress {
                done: 2,
                remaining: 3,
                through: ids[4]
            }
        );
        // The replayed jobs die again: new rows, past the first call's bound.
        let mut consumer = consumer(&queue).await;
        for _ in 0..2 {
            next(&mut consumer)
                .await
                .dead_letter("again")
                .await
                .expect("dead");
        }
        let second = dead
            .replay_all(Some("task"), Some(first.through), 2)
            .await
            .expect("replayed");
        assert_eq!((second.done, second.remaining), (2, 1));
        let third = dead
            .replay_all(Some("task"), Some(first.through), 2)
            .await
            .expect("replayed");
        assert_eq!((third.done, third.remaining), (1, 0));
        assert_eq!(rows(&dead).await.len(), 2, "the jobs dead again stay");
        assert_eq!(
            dead.replay_all(Some("thumbnail"), None, 2)
                .await
                .expect("replayed")
                .done,
            0
        );
        let deleted = dead.delete_all(None, None, 1).await.expect("deleted");
        assert_eq!((deleted.done, deleted.remaining), (1, 1));
        let deleted = dead
            .delete_all(None, Some(deleted.through), 1)
            .await
            .expect("deleted");
        assert_eq!((deleted.done, deleted.remaining), (1, 0));
        assert!(rows(&dead).await.is_empty());
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    async fn the_leased_jobs_are_counted_by_index(backend: TestBackend) {
        let (queue, dead, dir) = fresh(backend).await;
        let sql = crate::embedded::LEASED;
        let mut connection = dead.database.pool().acquire().await.expect("a connection");
        let plan: Vec<String> = if backend == TestBackend::Postgres {
            // On an empty table a scan costs least; the index must be usable.
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *connection)
                .await
                .expect("set");
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                .bind("q")
                .bind(0_i64)
                .fetch_all(&mut *connection)
                .await
                .expect("explained");
            rows.iter()
                .map(|row| row.try_get::<String, _>(0).expect("a line"))
                .collect()
        } else {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind("q")
                .bind(0_i64)
                .fetch_all(&mut *connection)
                .await
                .expect("explained");
            rows.iter()
                .map(|row| row.try_get::<String, _>("detail").expect("a line"))
                .collect()
        };
        assert!(
            plan.iter().any(|line| line.contains("queue_jobs_leased")),
            "{plan:?}"
        );
        drop(connection);
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    async fn a_stored_error_has_no_nul_and_a_bounded_length(backend: TestBackend) {
        let (queue, dead, dir) = fresh(backend).await;
        let body = Envelope::new("task", serde_json::json!({}), None).to_body();
        let error = format!("bad\0error {}", "x".repeat(10_000));
        let id = format!("id\0{}", "i".repeat(300));
        NewDeadLetter {
            message_id: &id,
            request_id: Some("req\0uest"),
            body: &body,
            error: Some(&error),
            deliveries: 1,
            first_failed_at: Some("2026\0"),
            failed_at: None,
        }
        .upsert(dead.queue_name())
        .execute(dead.database.pool())
        .await
        .expect("stored");
        let row = rows(&dead).await.remove(0);
        let stored = row.last_error.expect("an error");
        assert!(stored.starts_with("baderror x"), "{stored}");
        assert_eq!(stored.len(), MAX_ERROR_BYTES);
        assert_eq!(row.job_id.len(), MAX_ID_BYTES);
        assert!(!row.job_id.contains('\0'));
        assert_eq!(row.request_id.as_deref(), Some("request"));
        assert_eq!(row.first_failed_at, "2026");
        assert_eq!(storable("é".repeat(3).as_str(), 3), "é");
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

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
        let depth = queue.depth().await.expect("depth");
        assert_eq!(depth.dead, 1);
        assert_eq!(dead.total(&depth).await.expect("total"), 1);

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
        // The replay has claimed its row; the job, published, dies again before the row goes.
        let seq = rows(&dead).await[0].id;
        let claimed = dead.claim(seq).await.expect("claimed").expect("a row");
        assert!(
            dead.claim(seq).await.expect("claimed").is_none(),
            "one claim at a time"
        );
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
        dead.replay_claimed(claimed).await.expect("replayed");
        let left = rows(&dead).await;
        assert_eq!(left.len(), 1, "the second death is kept");
        assert_eq!(left[0].last_error.as_deref(), Some("second death"));
        assert_eq!(next(&mut consumer).await.envelope().expect("job").id, id);
        assert_eq!(
            dead.replay(&[seq]).await.expect("replayed"),
            [seq],
            "the copy stored over is claimed afresh"
        );
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
