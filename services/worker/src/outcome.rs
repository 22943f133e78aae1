//! What handling a job amounted to, or why it failed: what the consume loop settles a delivery
//! by.

/// What handling a job amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect happened now.
    Done,
    /// The job had already been processed (a redelivery): no effect.
    Duplicate,
    /// Nothing to do, for this reason (a thumbnail of a deleted media item): acked, not
    /// retried.
    Skipped(&'static str),
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

/// A failure of the worker's own database: transient (it may be back for the next attempt).
pub fn database_error(error: impl std::fmt::Display) -> JobError {
    JobError::Transient(format!("worker database: {error}"))
}
