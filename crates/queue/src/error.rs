//! The queue's errors: [`EnqueueError`] (a job not enqueued), [`QueueError`] (consuming or
//! settling failed) and [`MalformedMessage`] (a body that is no envelope). The broker client's
//! and the database driver's errors travel as boxed sources, so their types stay out of this
//! crate's interface; each backend wraps its own with a private helper (`amqp::broker`,
//! `embedded::database`).

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
pub(crate) type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// A message body that is not an [`crate::Envelope`] (not JSON, or JSON of another shape).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {reason}")]
pub struct MalformedMessage {
    /// What is wrong with it, as the JSON reader says (`expected value at line 1 column 1`).
    pub reason: String,
}
