//! Per-user quotas (`MEDIA_QUOTA_BYTES`, `MEDIA_QUOTA_FILES`): what one user keeps is their
//! stored files plus their uploads in progress, and an upload reserves its room before it stores
//! a byte.
//!
//! A [`Reservation`] is a row of `media_reservations` holding one file and the bytes the upload
//! has received so far (rounded up by [`RESERVE_STEP`], never past `MEDIA_MAX_BYTES`). Every
//! change of it runs in one transaction that first writes the user's `media_uploaders` row, so
//! one user's reservations are decided one after another on both engines (PostgreSQL holds the
//! row lock, SQLite its write lock, until the commit), then counts the stored files and the live
//! reservations in one statement, and writes the reservation only when the total fits. Two
//! concurrent uploads of one user therefore cannot both take the last room.
//!
//! The reservation ends in one of three ways: it becomes the `media` row in the transaction that
//! inserts the row ([`crate::repository::MediaRepository::insert`]), it is released when the
//! upload fails, or (the process died) it stops counting at its `expires_at`, which a live
//! upload pushes forward every half [`LEASE`].

use std::time::{Duration, Instant};

use db::Database;

use crate::{
    config::MediaArgs,
    domain::{MediaError, unix_now},
};

/// How far ahead of the bytes received a reservation grows at once (one transaction per step).
pub const RESERVE_STEP: u64 = 1024 * 1024;
/// How long a reservation counts without its upload renewing it.
pub const LEASE: Duration = Duration::from_secs(15 * 60);

/// The per-user limits; `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Bytes of stored files plus uploads in progress.
    pub bytes: Option<u64>,
    /// Stored files plus uploads in progress.
    pub files: Option<u64>,
}

impl Quota {
    /// The quotas of `MEDIA_QUOTA_BYTES` and `MEDIA_QUOTA_FILES` (0: no limit).
    pub fn of(args: &MediaArgs) -> Self {
        Self {
            bytes: (args.quota_bytes > 0).then_some(args.quota_bytes),
            files: (args.quota_files > 0).then_some(args.quota_files),
        }
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.bytes.is_some() || self.files.is_some()
    }

    /// Why `wanted` more bytes (and one more file) do not fit beside `usage`, if they do not.
    pub fn refusal(&self, usage: Usage, wanted: u64) -> Option<MediaError> {
        if let Some(limit) = self.files
            && usage.files.saturating_add(1) > limit
        {
            return Some(MediaError::OverQuota(format!(
                "you have reached your quota of {limit} files (stored or being uploaded): \
                 delete some to upload more"
            )));
        }
        if let Some(limit) = self.bytes
            && usage.bytes.saturating_add(wanted) > limit
        {
            return Some(MediaError::OverQuota(format!(
                "this upload would take your media past your quota of {limit} bytes \
                 ({} bytes stored or being uploaded)",
                usage.bytes
            )));
        }
        None
    }
}

/// What one user holds besides the reservation being decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of stored files and of live reservations.
    pub bytes: u64,
    /// Stored files and live reservations.
    pub files: u64,
}

/// Room held for one upload in progress; released when dropped unless it became a row.
#[derive(Debug)]
pub struct Reservation {
    /// What it is checked against and where it is kept; `None`: no quota, nothing kept.
    keeper: Option<Keeper>,
    /// Its id in `media_reservations`.
    id: String,
    /// The uploader.
    owner_id: i64,
    /// Bytes held (0: no row written yet).
    reserved: u64,
    /// The most the upload may reach (`MEDIA_MAX_BYTES`): reservations never hold more.
    ceiling: u64,
    /// When the lease was last pushed forward.
    renewed: Instant,
}

/// The database and limits of a kept reservation.
#[derive(Debug, Clone)]
struct Keeper {
    database: Database,
    quota: Quota,
    logger: slog::Logger,
}

impl Reservation {
    /// Reserves one file and `preferred` bytes for `owner_id` (the declared length: room for
    /// the whole file up front), or, when those do not fit, `minimum` (the least the file can
    /// hold; at least 1 byte), or refuses with [`MediaError::OverQuota`]. No byte count passes
    /// `ceiling` (`MEDIA_MAX_BYTES`). Without limits nothing is written.
    pub async fn open(
        database: &Database,
        quota: Quota,
        logger: &slog::Logger,
        owner_id: i64,
        (preferred, minimum): (u64, u64),
        ceiling: u64,
    ) -> Result<Self, MediaError> {
        let mut reservation = Self {
            keeper: quota.is_limited().then(|| Keeper {
                database: database.clone(),
                quota,
                logger: logger.clone(),
            }),
            id: uuid::Uuid::new_v4().to_string(),
            owner_id,
            reserved: 0,
            ceiling,
            renewed: Instant::now(),
        };
        let ceiling = ceiling.max(1);
        let minimum = minimum.clamp(1, ceiling);
        let preferred = preferred.clamp(minimum, ceiling);
        match reservation.hold(preferred).await {
            Err(MediaError::OverQuota(_)) if preferred > minimum => {
                reservation.hold(minimum).await?;
            }
            outcome => outcome?,
        }
        Ok(reservation)
    }

    /// Its id (the row that [`crate::repository::MediaRepository::insert`] turns into the
    /// media row); `None` when nothing is kept.
    pub fn id(&self) -> Option<&str> {
        self.keeper.as_ref().map(|_| self.id.as_str())
    }

    /// Makes sure `received` bytes are covered, growing by [`RESERVE_STEP`] (or exactly to
    /// `received` when a step does not fit), and renews the lease when half of it is gone.
    pub async fn cover(&mut self, received: u64) -> Result<(), MediaError> {
        if self.keeper.is_none() {
            return Ok(());
        }
        let stale = self.renewed.elapsed() > LEASE / 2;
        if received <= self.reserved && !stale {
            return Ok(());
        }
        let exact = received.max(self.reserved);
        let ahead = exact
            .saturating_add(RESERVE_STEP)
            .min(self.ceiling)
            .max(exact);
        match self.hold(ahead).await {
            Err(MediaError::OverQuota(_)) if ahead > exact => self.hold(exact).await,
            outcome => outcome,
        }
    }

    /// Marks it as turned into a row: nothing to release.
    pub fn settle(mut self) {
        self.keeper = None;
    }

    /// Gives the room back now (an upload that failed).
    pub async fn release(mut self) {
        if let Some(keeper) = self.keeper.take()
            && self.reserved > 0
        {
            keeper.delete(&self.id).await;
        }
    }

    /// Holds exactly `bytes` if they fit beside what the user keeps otherwise.
    async fn hold(&mut self, bytes: u64) -> Result<(), MediaError> {
        let Some(keeper) = &self.keeper else {
            self.reserved = bytes;
            return Ok(());
        };
        let now = unix_now();
        let expires_at = now.saturating_add(i64::try_from(LEASE.as_secs()).unwrap_or(i64::MAX));
        let wanted = i64::try_from(bytes).unwrap_or(i64::MAX);
        let mut transaction = keeper.database.pool().begin().await?;
        // The first statement writes: it takes the user's lock until the commit.
        sqlx::query(
            "INSERT INTO media_uploaders (owner_id) VALUES ($1) \
             ON CONFLICT (owner_id) DO UPDATE SET owner_id = excluded.owner_id",
        )
        .bind(self.owner_id)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM media_reservations WHERE owner_id = $1 AND expires_at <= $2")
            .bind(self.owner_id)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        // One statement: one snapshot of the rows and of the other reservations.
        let (bytes_held, files_held): (i64, i64) = sqlx::query_as(
            "SELECT \
               CAST((SELECT COALESCE(SUM(size), 0) FROM media WHERE owner_id = $1) \
                  + (SELECT COALESCE(SUM(bytes), 0) FROM media_reservations \
                     WHERE owner_id = $1 AND id <> $2) AS BIGINT), \
               CAST((SELECT COUNT(*) FROM media WHERE owner_id = $1) \
                  + (SELECT COUNT(*) FROM media_reservations \
                     WHERE owner_id = $1 AND id <> $2) AS BIGINT)",
        )
        .bind(self.owner_id)
        .bind(&self.id)
        .fetch_one(&mut *transaction)
        .await?;
        let usage = Usage {
            bytes: u64::try_from(bytes_held).unwrap_or_default(),
            files: u64::try_from(files_held).unwrap_or_default(),
        };
        if let Some(refusal) = keeper.quota.refusal(usage, bytes) {
            transaction.rollback().await?;
            return Err(refusal);
        }
        sqlx::query(
            "INSERT INTO media_reservations (id, owner_id, bytes, expires_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET bytes = excluded.bytes, expires_at = excluded.expires_at",
        )
        .bind(&self.id)
        .bind(self.owner_id)
        .bind(wanted)
        .bind(expires_at)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        self.reserved = bytes;
        self.renewed = Instant::now();
        Ok(())
    }
}

impl Keeper {
    /// Deletes the reservation; a failure is logged (the lease ends it anyway).
    async fn delete(&self, id: &str) {
        let outcome = sqlx::query("DELETE FROM media_reservations WHERE id = $1")
            .bind(id)
            .execute(self.database.pool())
            .await;
        if let Err(error) = outcome {
            slog::warn!(self.logger, "could not release an upload's quota reservation \
                (it lapses with its lease)"; "reservation" => id, "error" => error.to_string());
        }
    }
}

impl Drop for Reservation {
    /// An upload dropped mid-way (the client went away): the room is given back in the
    /// background.
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take()
            && self.reserved > 0
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let id = std::mem::take(&mut self.id);
            runtime.spawn(async move { keeper.delete(&id).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_checked_before_the_bytes_and_the_edges_fit() {
        let quota = Quota {
            bytes: Some(100),
            files: Some(3),
        };
        let used = |bytes, files| Usage { bytes, files };
        assert!(
            quota.refusal(used(0, 0), 100).is_none(),
            "exactly the quota"
        );
        assert!(quota.refusal(used(60, 2), 40).is_none());
        let Some(MediaError::OverQuota(message)) = quota.refusal(used(60, 2), 41) else {
            panic!("one byte over");
        };
        assert!(message.contains("100 bytes"), "{message}");
        let Some(MediaError::OverQuota(message)) = quota.refusal(used(0, 3), 1) else {
            panic!("a fourth file");
        };
        assert!(message.contains("3 files"), "{message}");
        let free = Quota {
            bytes: None,
            files: None,
        };
        assert!(!free.is_limited());
        assert!(free.refusal(used(u64::MAX, u64::MAX), u64::MAX).is_none());
    }
}
