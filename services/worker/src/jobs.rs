//! The job kinds and what each does.
//!
//! - `task` — the seed's job: payload `{"id": 1, "task": "Tarea 1", "timestamp": "…"}`, logged
//!   as received and processed. Its effect is a row in `task_runs`, written in the same
//!   transaction as the job's id (see [`crate::repository`]; concurrent jobs share one
//!   transaction, a group commit). Two optional fields exercise
//!   the machinery: `duration_ms` (simulated work, at most 60 s; the seed's consumer took
//!   2 s) and `fail_attempts` (the job fails while its attempt is at most this number).
//! - `thumbnail` — media-service's: payload `{"media_id", "key", "thumbnail_key"}`. Reads `key`
//!   from the object store, decodes it, and writes a PNG of at most 256 px on its longer side
//!   at `thumbnail_key`. Not an image, or a corrupt one: a permanent failure (dead letter).
//!   Writing the same thumbnail twice is harmless, so the job id is recorded after the write.

use std::{io::Cursor, time::Duration};

use bytes::Bytes;
use serde::Deserialize;
use shared::{
    messaging::Envelope,
    store::{ObjectStore, StoreError},
};
use slog::Logger;

use crate::repository::{Recorded, Repository, TaskRecord, TaskRecorder};

/// The longer side of a thumbnail, at most.
pub const THUMBNAIL_MAX_SIDE: u32 = 256;
/// The longest simulated work of a `task`.
const MAX_TASK_DURATION: Duration = Duration::from_secs(60);
/// Images wider or taller than this are refused (decoding them would take too much memory).
const MAX_IMAGE_SIDE: u32 = 20_000;

/// What jobs need to run.
#[derive(Clone)]
pub struct JobContext {
    /// The worker's database (idempotency, task runs).
    pub repository: Repository,
    /// Records task effects in group commits.
    pub tasks: TaskRecorder,
    /// Where thumbnails are read and written.
    pub store: ObjectStore,
    /// The worker's logger.
    pub logger: Logger,
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The message cannot be a job of ours (unknown kind, invalid payload): dead letter now.
    #[error("malformed job: {0}")]
    Malformed(String),
    /// This job can never succeed (a corrupt image): dead letter now.
    #[error("{0}")]
    Permanent(String),
    /// Might succeed later (a database or the store unavailable): retried.
    #[error("{0}")]
    Transient(String),
}

/// A job parsed from its envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// The seed's task.
    Task(TaskPayload),
    /// A thumbnail to make.
    Thumbnail(ThumbnailPayload),
}

/// `task`'s payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskPayload {
    /// The producer's sequence number (the seed's `id`).
    pub id: Option<serde_json::Value>,
    /// What to do (the seed's `"Tarea 1"`).
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

/// `thumbnail`'s payload (CONTRACTS between crates).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ThumbnailPayload {
    /// The media item.
    pub media_id: String,
    /// The uploaded image's key in the store.
    pub key: String,
    /// Where the thumbnail goes.
    pub thumbnail_key: String,
}

/// What handling a job amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect happened now.
    Done,
    /// The job had already been processed (a redelivery): no effect.
    Duplicate,
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
                Box::pin(run_thumbnail(context, envelope, thumbnail)).await
            }
        }
    }
}

/// A failure of the worker's own database: transient (it may be back for the next attempt).
pub(crate) fn database_error(error: impl std::fmt::Display) -> JobError {
    JobError::Transient(format!("worker database: {error}"))
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

async fn run_thumbnail(
    context: &JobContext,
    envelope: &Envelope,
    job: ThumbnailPayload,
) -> Result<Outcome, JobError> {
    let original = context
        .store
        .get(&job.key)
        .await
        .map_err(|error| match error {
            StoreError::InvalidKey(_) => JobError::Permanent(error.to_string()),
            // Not there yet (an eventually consistent store) or the store is down: later.
            _ => JobError::Transient(format!("reading {}: {error}", job.key)),
        })?;
    let thumbnail = tokio::task::spawn_blocking(move || make_thumbnail(&original))
        .await
        .map_err(|error| JobError::Transient(format!("thumbnail task: {error}")))??;
    context
        .store
        .put(&job.thumbnail_key, thumbnail.png, "image/png")
        .await
        .map_err(|error| match error {
            StoreError::InvalidKey(_) => JobError::Permanent(error.to_string()),
            _ => JobError::Transient(format!("writing {}: {error}", job.thumbnail_key)),
        })?;
    let recorded = context
        .repository
        .record_done(envelope)
        .await
        .map_err(database_error)?;
    slog::info!(context.logger, "thumbnail written"; "job_id" => %envelope.id,
        "media_id" => &job.media_id, "thumbnail_key" => &job.thumbnail_key,
        "width" => thumbnail.width, "height" => thumbnail.height,
        "request_id" => envelope.request_id.as_deref());
    Ok(match recorded {
        Recorded::Now => Outcome::Done,
        Recorded::AlreadyDone => Outcome::Duplicate,
    })
}

/// A PNG thumbnail and its size.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    /// The PNG bytes.
    pub png: Bytes,
    /// Its width.
    pub width: u32,
    /// Its height.
    pub height: u32,
}

/// Decodes an image (PNG, JPEG, GIF, WebP) and scales it to at most
/// [`THUMBNAIL_MAX_SIDE`] on its longer side (smaller images keep their size), as PNG.
pub fn make_thumbnail(original: &[u8]) -> Result<Thumbnail, JobError> {
    let mut reader = image::ImageReader::new(Cursor::new(original))
        .with_guessed_format()
        .map_err(|error| JobError::Permanent(format!("reading the image: {error}")))?;
    if reader.format().is_none() {
        return Err(JobError::Permanent(
            "not an image (unrecognised format)".to_owned(),
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|error| JobError::Permanent(format!("decoding the image: {error}")))?;
    let image = if image.width() > THUMBNAIL_MAX_SIDE || image.height() > THUMBNAIL_MAX_SIDE {
        image.thumbnail(THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE)
    } else {
        image
    };
    let mut png = Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|error| JobError::Permanent(format!("encoding the thumbnail: {error}")))?;
    Ok(Thumbnail {
        png: Bytes::from(png.into_inner()),
        width: image.width(),
        height: image.height(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Cursor::new(Vec::new());
        image
            .write_to(&mut out, image::ImageFormat::Png)
            .expect("encoding a PNG");
        out.into_inner()
    }

    #[test]
    fn a_large_image_is_scaled_to_256_on_its_longer_side() {
        let thumbnail = make_thumbnail(&png(1000, 500)).expect("a thumbnail");
        assert_eq!((thumbnail.width, thumbnail.height), (256, 128));
        let decoded = image::load_from_memory(&thumbnail.png).expect("a PNG");
        assert_eq!((decoded.width(), decoded.height()), (256, 128));
    }

    #[test]
    fn a_small_image_keeps_its_size() {
        let thumbnail = make_thumbnail(&png(40, 30)).expect("a thumbnail");
        assert_eq!((thumbnail.width, thumbnail.height), (40, 30));
    }

    #[test]
    fn text_and_truncated_images_are_permanent_failures() {
        assert!(matches!(
            make_thumbnail(b"hello, not an image"),
            Err(JobError::Permanent(_))
        ));
        let mut truncated = png(300, 300);
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(
            make_thumbnail(&truncated),
            Err(JobError::Permanent(_))
        ));
    }

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
