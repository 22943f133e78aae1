//! The worker's own database: which job ids had their effect (`processed_jobs`), and the
//! effect of `task` jobs (`task_runs`), written in one transaction so a job delivered twice
//! has its effect once; thumbnails being written (`thumbnail_writes`, for the orphan sweep).
//! The same SQL on SQLite and PostgreSQL.

use std::collections::HashSet;

use db::{Database, is_unique_violation, timestamp_now};
use queue::Envelope;
use sqlx::AssertSqlSafe;
use tokio::sync::{mpsc, oneshot};

/// Whether recording a job's effect happened now or had happened before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded now: the effect happened this time.
    Now,
    /// The job id was already recorded: nothing was done.
    AlreadyDone,
}

/// A `task` job's effect to record.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    /// The job id.
    pub id: uuid::Uuid,
    /// Its attempt.
    pub attempt: u32,
    /// The task's text.
    pub task: String,
}

/// Records `task` effects in groups: every job waiting to be recorded when a transaction
/// starts goes into it (up to [`GROUP_LIMIT`]), so concurrent jobs share one commit. Each job
/// still gets its own outcome, and none is acked before its group has committed (measured in
/// docs/benchmarks.md, "What the worker profile showed").
#[derive(Clone)]
pub struct TaskRecorder {
    /// To the committing task.
    sender: mpsc::Sender<(TaskRecord, oneshot::Sender<Result<Recorded, String>>)>,
}

/// The most records in one transaction.
pub const GROUP_LIMIT: usize = 256;

impl TaskRecorder {
    /// Starts the committing task (it ends when every recorder is dropped).
    pub fn start(repository: Repository) -> Self {
        let (sender, mut receiver) = mpsc::channel::<(
            TaskRecord,
            oneshot::Sender<Result<Recorded, String>>,
        )>(GROUP_LIMIT * 4);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(GROUP_LIMIT);
            while receiver.recv_many(&mut batch, GROUP_LIMIT).await > 0 {
                let (records, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
                match repository.record_tasks(&records).await {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(error) => {
                        let error = error.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Self { sender }
    }

    /// Records one task's effect (with whatever else is waiting); resolves once committed.
    pub async fn record(&self, record: TaskRecord) -> Result<Recorded, String> {
        let (reply, outcome) = oneshot::channel();
        self.sender
            .send((record, reply))
            .await
            .map_err(|_| "the task recorder stopped".to_owned())?;
        outcome
            .await
            .map_err(|_| "the task recorder stopped".to_owned())?
    }
}

/// A thumbnail write on record until it was checked (see [`crate::thumbnail::write`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    /// The record's own id (two writes of one thumbnail have two records).
    pub writer: String,
    /// The thumbnail.
    pub thumbnail_key: String,
    /// The upload it was made from.
    pub original_key: String,
}

/// Reads and writes the worker's tables.
#[derive(Clone, Debug)]
pub struct Repository {
    /// The pool.
    database: Database,
}

impl Repository {
    /// Over `database` (migrated with [`crate::migrations`]).
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Whether the job's effect already happened.
    pub async fn is_processed(&self, id: uuid::Uuid) -> Result<bool, sqlx::Error> {
        let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM processed_jobs WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(self.database.pool())
            .await?;
        Ok(found > 0)
    }

    /// The effects of `task` jobs (a run of each `task`) and their ids, in one transaction:
    /// a job whose id was already recorded (a redelivery, or a concurrent delivery that won)
    /// gets [`Recorded::AlreadyDone`] and no run. One result per record, in order.
    pub async fn record_tasks(&self, records: &[TaskRecord]) -> Result<Vec<Recorded>, sqlx::Error> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let now = timestamp_now();
        let ids: Vec<String> = records.iter().map(|record| record.id.to_string()).collect();
        let mut transaction = self.database.pool().begin().await?;
        let mut inserted: HashSet<String> = HashSet::with_capacity(records.len());
        for (chunk, chunk_ids) in statement_chunks(records).zip(statement_chunks(&ids)) {
            let mut insert =
                sqlx::query_scalar::<_, String>(AssertSqlSafe(PROCESSED_INSERTS.sql(chunk.len())));
            for (record, id) in chunk.iter().zip(chunk_ids) {
                insert = insert
                    .bind(id.as_str())
                    .bind("task")
                    .bind(i64::from(record.attempt))
                    .bind(&now);
            }
            inserted.extend(insert.fetch_all(&mut *transaction).await?);
        }
        // The first record of each newly inserted id runs; any other is a duplicate.
        let outcomes: Vec<Recorded> = ids
            .iter()
            .map(|id| {
                if inserted.remove(id) {
                    Recorded::Now
                } else {
                    Recorded::AlreadyDone
                }
            })
            .collect();
        let runs: Vec<(&TaskRecord, &String)> = records
            .iter()
            .zip(&ids)
            .zip(&outcomes)
            .filter(|(_, outcome)| **outcome == Recorded::Now)
            .map(|(run, _)| run)
            .collect();
        for chunk in statement_chunks(&runs) {
            let mut insert = sqlx::query(AssertSqlSafe(RUN_INSERTS.sql(chunk.len())));
            for (record, id) in chunk {
                insert = insert.bind(id.as_str()).bind(&record.task).bind(&now);
            }
            insert.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(outcomes)
    }

    /// Records a job whose effect is idempotent by itself (a thumbnail written to its key).
    pub async fn record_done(&self, envelope: &Envelope) -> Result<Recorded, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO processed_jobs (id, kind, attempt, processed_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(envelope.id.to_string())
        .bind(&envelope.kind)
        .bind(i64::from(envelope.attempt))
        .bind(timestamp_now())
        .execute(self.database.pool())
        .await;
        match inserted {
            Ok(_) => Ok(Recorded::Now),
            Err(error) if is_unique_violation(&error) => Ok(Recorded::AlreadyDone),
            Err(error) => Err(error),
        }
    }

    /// Records that a thumbnail is about to be written (for [`crate::orphans`]).
    pub async fn begin_thumbnail_write(
        &self,
        thumbnail_key: &str,
        original_key: &str,
    ) -> Result<PendingWrite, sqlx::Error> {
        let pending = PendingWrite {
            writer: uuid::Uuid::new_v4().to_string(),
            thumbnail_key: thumbnail_key.to_owned(),
            original_key: original_key.to_owned(),
        };
        sqlx::query(
            "INSERT INTO thumbnail_writes (writer, thumbnail_key, original_key, started_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&pending.writer)
        .bind(&pending.thumbnail_key)
        .bind(&pending.original_key)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(self.database.pool())
        .await?;
        Ok(pending)
    }

    /// The write was checked: its record goes.
    pub async fn end_thumbnail_write(&self, pending: &PendingWrite) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM thumbnail_writes WHERE writer = $1")
            .bind(&pending.writer)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Up to `limit` writes begun more than `older_than` ago and never checked, oldest first.
    pub async fn stale_thumbnail_writes(
        &self,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<PendingWrite>, sqlx::Error> {
        let before = chrono::Utc::now().timestamp_millis()
            - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX / 2);
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT writer, thumbnail_key, original_key FROM thumbnail_writes \
             WHERE started_at <= $1 ORDER BY started_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(writer, thumbnail_key, original_key)| PendingWrite {
                writer,
                thumbnail_key,
                original_key,
            })
            .collect())
    }

    /// How many times `task` jobs with this id ran (tests: exactly once).
    pub async fn task_runs(&self, id: uuid::Uuid) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM task_runs WHERE job_id = $1")
            .bind(id.to_string())
            .fetch_one(self.database.pool())
            .await
    }

    /// Task runs in all, and distinct job ids among them (tests: equal).
    pub async fn task_run_totals(&self) -> Result<(i64, i64), sqlx::Error> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM task_runs")
            .fetch_one(self.database.pool())
            .await?;
        let distinct: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT job_id) FROM task_runs")
            .fetch_one(self.database.pool())
            .await?;
        Ok((total, distinct))
    }
}

/// The most rows in one INSERT statement. Statements are built only for this size and the
/// powers of two below it, so a handful of SQL texts serve every group (each prepared once and
/// cached by the connection), and SQLite's lookup of numbered parameters, which grows with
/// their count, stays cheap.
const ROWS_PER_STATEMENT: usize = 32;

/// Splits `items` into statement-sized chunks: full ones, then powers of two.
fn statement_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if rest.len() >= ROWS_PER_STATEMENT {
            ROWS_PER_STATEMENT
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// The multi-row INSERT texts of one table, by row count (powers of two up to
/// [`ROWS_PER_STATEMENT`]).
struct MultiRowInsert {
    /// `INSERT INTO … VALUES` before the rows.
    head: &'static str,
    /// After the rows.
    tail: &'static str,
    /// Columns per row.
    columns: usize,
    /// Built on first use; index = log2 of the row count.
    texts: std::sync::OnceLock<Vec<std::sync::Arc<str>>>,
}

impl MultiRowInsert {
    const fn new(head: &'static str, tail: &'static str, columns: usize) -> Self {
        Self {
            head,
            tail,
            columns,
            texts: std::sync::OnceLock::new(),
        }
    }

    /// The statement for `rows` rows (a power of two up to [`ROWS_PER_STATEMENT`]).
    fn sql(&self, rows: usize) -> std::sync::Arc<str> {
        let texts = self.texts.get_or_init(|| {
            (0..=ROWS_PER_STATEMENT.ilog2())
                .map(|power| {
                    let values = (0..1usize << power)
                        .map(|row| {
                            let placeholders = (1..=self.columns)
                                .map(|column| format!("${}", row * self.columns + column))
                                .collect::<Vec<_>>()
                                .join(", ");
                            format!("({placeholders})")
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    std::sync::Arc::from(format!("{} {values}{}", self.head, self.tail))
                })
                .collect()
        });
        texts[rows.ilog2() as usize].clone()
    }
}

static PROCESSED_INSERTS: MultiRowInsert = MultiRowInsert::new(
    "INSERT INTO processed_jobs (id, kind, attempt, processed_at) VALUES",
    " ON CONFLICT (id) DO NOTHING RETURNING id",
    4,
);

static RUN_INSERTS: MultiRowInsert = MultiRowInsert::new(
    "INSERT INTO task_runs (job_id, task, processed_at) VALUES",
    "",
    3,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_split_into_cached_statement_sizes() {
        let sizes = |n: usize| {
            statement_chunks(&vec![0u8; n])
                .map(<[u8]>::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(7), vec![4, 2, 1]);
        assert_eq!(sizes(32), vec![32]);
        assert_eq!(sizes(77), vec![32, 32, 8, 4, 1]);
        assert_eq!(sizes(256).len(), 8);
    }

    #[test]
    fn insert_texts_number_every_parameter() {
        assert_eq!(
            &*RUN_INSERTS.sql(2),
            "INSERT INTO task_runs (job_id, task, processed_at) VALUES ($1, $2, $3), ($4, $5, $6)"
        );
        assert!(
            PROCESSED_INSERTS
                .sql(32)
                .ends_with("$128) ON CONFLICT (id) DO NOTHING RETURNING id")
        );
    }
}
