//! The orphan sweep: thumbnails whose media item is gone.
//!
//! A thumbnail written while media-service deleted its item outlives the item (the delete
//! found no thumbnail to remove). [`crate::thumbnail::write`] checks the item again after the
//! write and removes such a thumbnail itself; a worker that died between the write and that
//! check leaves its pending record in the worker's database. The sweep takes the records older
//! than [`GRACE`] (older than any write still in progress, on any worker sharing the database)
//! and finishes their check: the thumbnail of an item that is gone is deleted. It runs at
//! start and every `--orphan-sweep-secs`.

use std::time::Duration;

use slog::Logger;
use store::ObjectStore;

use crate::{
    outcome::{JobError, Outcome},
    repository::Repository,
    thumbnail::settle_write,
};

/// A pending write younger than this may be in progress: the sweep leaves it.
pub const GRACE: Duration = Duration::from_secs(600);
/// The most records one sweep takes.
const BATCH: i64 = 1000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Pending writes checked.
    pub checked: u64,
    /// Thumbnails deleted (their item was gone).
    pub deleted: u64,
}

/// Checks the pending writes older than `older_than`: deletes the thumbnails of items that are
/// gone, forgets the records. A record whose check fails (the store down) stays for the next.
pub async fn sweep(
    store: &ObjectStore,
    repository: &Repository,
    older_than: Duration,
) -> Result<Swept, sqlx::Error> {
    let mut swept = Swept::default();
    for pending in repository.stale_thumbnail_writes(older_than, BATCH).await? {
        match settle_write(store, &pending.original_key, &pending.thumbnail_key).await {
            Ok(outcome) => {
                swept.checked += 1;
                if matches!(outcome, Outcome::Skipped(_)) {
                    swept.deleted += 1;
                }
                repository.end_thumbnail_write(&pending).await?;
            }
            Err(JobError::Permanent(_) | JobError::Malformed(_)) => {
                repository.end_thumbnail_write(&pending).await?;
            }
            Err(JobError::Transient(_)) => {}
        }
    }
    Ok(swept)
}

/// Sweeps now and every `every` until the task is aborted.
pub async fn run_sweeps(
    store: ObjectStore,
    repository: Repository,
    every: Duration,
    logger: Logger,
) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match sweep(&store, &repository, GRACE).await {
            Ok(Swept { deleted: 0, .. }) => {}
            Ok(swept) => slog::info!(logger, "deleted thumbnails of deleted media";
                "checked" => swept.checked, "deleted" => swept.deleted),
            Err(error) => slog::warn!(logger, "the orphan sweep failed; next time";
                "error" => error.to_string()),
        }
    }
}
