//! What every job runs with.

use slog::Logger;
use store::ObjectStore;

use crate::{
    decode::DecodeBudget,
    repository::{Repository, TaskRecorder},
};

/// What jobs need to run.
#[derive(Clone)]
pub struct JobContext {
    /// The worker's database (idempotency, task runs).
    pub repository: Repository,
    /// Records task effects in group commits.
    pub tasks: TaskRecorder,
    /// Where thumbnails are read and written.
    pub store: ObjectStore,
    /// The memory every decode of the process shares.
    pub budget: DecodeBudget,
    /// The worker's logger.
    pub logger: Logger,
}
