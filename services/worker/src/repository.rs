//! The worker's own database: which job ids had their effect (`processed_jobs`), and the
//! effect of `task` jobs (`task_runs`), written in one transaction so a job delivered twice
//! has its effect once. The same SQL on SQLite and PostgreSQL.

use std::collections::HashSet;

use shared::{
    db::{Database, is_unique_violation, timestamp_now},
    messaging::Envelope,
};
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
/// starts goes into it (up to [`GROUP_LIMIT`]), so concurrent jobs share one commit.
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
        let mut transaction = self.database.pool().begin().await?;
        let values = (0..records.len())
            .map(|row| {
                let base = row * 4;
                format!(
                    "(${}, ${}, ${}, ${})",
                    base + 1,
                    base + 2,
                    base + 3,
                    base + 4
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO processed_jobs (id, kind, attempt, processed_at) VALUES {values} \
             ON CONFLICT (id) DO NOTHING RETURNING id"
        );
        let mut insert = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
        for record in records {
            insert = insert
                .bind(record.id.to_string())
                .bind("task")
                .bind(i64::from(record.attempt))
                .bind(&now);
        }
        let mut inserted: HashSet<String> = insert
            .fetch_all(&mut *transaction)
            .await?
            .into_iter()
            .collect();
        // The first record of each newly inserted id runs; any other is a duplicate.
        let outcomes: Vec<Recorded> = records
            .iter()
            .map(|record| {
                if inserted.remove(&record.id.to_string()) {
                    Recorded::Now
                } else {
                    Recorded::AlreadyDone
                }
            })
            .collect();
        let runs: Vec<&TaskRecord> = records
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| **outcome == Recorded::Now)
            .map(|(record, _)| record)
            .collect();
        if !runs.is_empty() {
            let values = (0..runs.len())
                .map(|row| {
                    let base = row * 3;
                    format!("(${}, ${}, ${})", base + 1, base + 2, base + 3)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("INSERT INTO task_runs (job_id, task, processed_at) VALUES {values}");
            let mut insert = sqlx::query(AssertSqlSafe(sql));
            for record in runs {
                insert = insert
                    .bind(record.id.to_string())
                    .bind(&record.task)
                    .bind(&now);
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
