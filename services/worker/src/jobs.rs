//! The job kinds and what each does.
//!
//! - `task` — payload `{"id": 1, "task": "Tarea 1", "timestamp": "…"}`, logged as received
//!   and processed. Its effect is a row in `task_runs`, written in the same transaction as the
//!   job's id (see [`crate::repository`]; concurrent jobs share one transaction, a group
//!   commit). Two optional fields exercise the machinery: `duration_ms` (simulated work, at
//!   most 60 s) and `fail_attempts` (the job fails while its attempt is at most this number).
//! - `thumbnail` — media-service's: payload `{"media_id", "key"}`: a PNG of at most 256 px on
//!   its longer side at `<media_id>/thumbnail.png`, within the process's decode budget, unless
//!   the media item was deleted ([`crate::thumbnail`]). Not an image, a corrupt one, or one
//!   over the caps: a permanent failure (dead letter). Writing the same thumbnail twice is
//!   harmless, so the job id is recorded after the write.

use std::time::Duration;

use queue::Envelope;
use serde::Deserialize;

use crate::{
    context::JobContext,
    outcome::{JobError, Outcome, database_error},
    repository::{Recorded, TaskRecord},
    thumbnail::ThumbnailPayload,
};

/// The longest simulated work of a `task`.
const MAX_TASK_DURATION: Duration = Duration::from_secs(60);

/// A job parsed from its envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// A task: logged, recorded in `task_runs`.
    Task(TaskPayload),
    /// A thumbnail to make.
    Thumbnail(ThumbnailPayload),
}

/// `task`'s payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskPayload {
    /// The producer's sequence number.
    pub id: Option<serde_json::Value>,
    /// What to do (`"Tarea 1"`).
    pub task: String,
    /// When the producer made it.
    pub timestamp: Option<String>,
    /// Simulated work, in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// Fail while the attempt is at most this (to exercise retries and dead letters).
    #[serde(default)]
    pub fail_attempts: u32,
}

impl Job {
    /// The job an envelope describes.
    pub fn parse(envelope: &Envelope) -> Result<Self, JobError> {
        fn payload<T: for<'de> Deserialize<'de>>(envelope: &Envelope) -> Result<T, JobError> {
            T::deserialize(&envelope.payload).map_err(|error| {
                JobError::Malformed(format!("invalid {} payload: {error}", envelope.kind))
            })
        }
        match envelope.kind.as_str() {
            "task" => payload(envelope).map(Self::Task),
            "thumbnail" => payload(envelope).map(Self::Thumbnail),
            other => Err(JobError::Malformed(format!("unknown job kind {other:?}"))),
        }
    }

    /// Runs the job (once per job id, through the repository).
    pub async fn run(self, context: &JobContext, envelope: &Envelope) -> Result<Outcome, JobError> {
        match self {
            Self::Task(task) => run_task(context, envelope, task).await,
            // Boxed: its large state would otherwise make every job's task as big.
            Self::Thumbnail(thumbnail) => {
                Box::pin(crate::thumbnail::run(context, envelope, thumbnail)).await
            }
        }
    }
}

async fn run_task(
    context: &JobContext,
    envelope: &Envelope,
    task: TaskPayload,
) -> Result<Outcome, JobError> {
    slog::info!(context.logger, "task received"; "job_id" => %envelope.id,
        "task" => &task.task, "task_id" => task.id.as_ref().map(ToString::to_string),
        "attempt" => envelope.attempt, "request_id" => envelope.request_id.as_deref());
    if task.duration_ms > 0 {
        tokio::time::sleep(Duration::from_millis(task.duration_ms).min(MAX_TASK_DURATION)).await;
    }
    if envelope.attempt <= task.fail_attempts {
        return Err(JobError::Transient(format!(
            "simulated failure of attempt {} (the task fails its first {})",
            envelope.attempt, task.fail_attempts
        )));
    }
    let record = TaskRecord {
        id: envelope.id,
        attempt: envelope.attempt,
        task: task.task.clone(),
    };
    match context.tasks.record(record).await.map_err(database_error)? {
        Recorded::Now => {
            slog::info!(context.logger, "task processed"; "job_id" => %envelope.id,
                "task" => &task.task, "request_id" => envelope.request_id.as_deref());
            Ok(Outcome::Done)
        }
        Recorded::AlreadyDone => Ok(Outcome::Duplicate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_and_bad_payloads_are_malformed() {
        let envelope = Envelope::new("nope", serde_json::json!({}), None);
        assert!(matches!(Job::parse(&envelope), Err(JobError::Malformed(_))));
        let envelope = Envelope::new("task", serde_json::json!({"id": 1}), None);
        assert!(matches!(Job::parse(&envelope), Err(JobError::Malformed(_))));
        let envelope = Envelope::new(
            "task",
            serde_json::json!({"id": 1, "task": "Tarea 1", "timestamp": "2026-11-28T00:00:00Z"}),
            None,
        );
        assert!(matches!(Job::parse(&envelope), Ok(Job::Task(_))));
    }
}
