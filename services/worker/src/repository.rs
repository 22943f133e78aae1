//! The worker's own database: which job ids had their effect (`processed_jobs`), and the
//! effect of `task` jobs (`task_runs`), written in one transaction so a job delivered twice
//! has its effect once. The same SQL on SQLite and PostgreSQL.

use shared::{
    db::{Database, is_unique_violation, timestamp_now},
    messaging::Envelope,
};

/// Whether recording a job's effect happened now or had happened before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded now: the effect happened this time.
    Now,
    /// The job id was already recorded: nothing was done.
    AlreadyDone,
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

    /// The effect of a `task` job (a run of `task`) and its id, in one transaction: when the
    /// id was already recorded (a concurrent delivery won), neither is written.
    pub async fn record_task(
        &self,
        envelope: &Envelope,
        task: &str,
    ) -> Result<Recorded, sqlx::Error> {
        let mut transaction = self.database.pool().begin().await?;
        let now = timestamp_now();
        let inserted = sqlx::query(
            "INSERT INTO processed_jobs (id, kind, attempt, processed_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(envelope.id.to_string())
        .bind(&envelope.kind)
        .bind(i64::from(envelope.attempt))
        .bind(&now)
        .execute(&mut *transaction)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => return Ok(Recorded::AlreadyDone),
            Err(error) => return Err(error),
        }
        sqlx::query("INSERT INTO task_runs (job_id, task, processed_at) VALUES ($1, $2, $3)")
            .bind(envelope.id.to_string())
            .bind(task)
            .bind(&now)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(Recorded::Now)
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
