//! The `media` table, through the shared database adapter. Every statement here runs unchanged
//! on SQLite and PostgreSQL.

use db::{Database, timestamp_now};
use server::pagination::Page;

use crate::domain::{MediaRow, Visibility};

const COLUMNS: &str = "id, name, content_type, size, object_key, thumbnail_key, \
     thumbnail_ready_at, owner_id, visibility, created_at";

/// Which rows a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListScope {
    /// Every row (admins).
    All,
    /// The rows this user owns, whatever their visibility.
    OwnedBy(i64),
    /// The public rows (anonymous callers).
    Public,
}

/// What a new row holds.
#[derive(Debug, Clone)]
pub struct NewMedia {
    /// Public id.
    pub id: String,
    /// Sanitised name.
    pub name: String,
    /// Detected type.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// Key of the object.
    pub object_key: String,
    /// Key the thumbnail will have (images).
    pub thumbnail_key: Option<String>,
    /// The uploader.
    pub owner_id: i64,
    /// Who may read it.
    pub visibility: Visibility,
}

/// Reads and writes media rows.
#[derive(Clone, Debug)]
pub struct MediaRepository {
    /// The pool.
    database: Database,
}

impl MediaRepository {
    /// A repository over `database` (already migrated).
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// The database (quota reservations share it).
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Records an uploaded file; in the same transaction, deletes the quota reservation that
    /// held its room (`reservation`, when quotas are on), so the room is never counted twice
    /// nor left uncounted.
    pub async fn insert(
        &self,
        media: &NewMedia,
        reservation: Option<&str>,
    ) -> Result<MediaRow, sqlx::Error> {
        let mut transaction = self.database.pool().begin().await?;
        let row = sqlx::query_as::<_, MediaRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO media (id, name, content_type, size, object_key, thumbnail_key, \
             owner_id, visibility, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING {COLUMNS}"
        )))
        .bind(&media.id)
        .bind(&media.name)
        .bind(&media.content_type)
        .bind(media.size)
        .bind(&media.object_key)
        .bind(media.thumbnail_key.as_deref())
        .bind(media.owner_id)
        .bind(media.visibility.as_str())
        .bind(timestamp_now())
        .fetch_one(&mut *transaction)
        .await?;
        if let Some(reservation) = reservation {
            sqlx::query("DELETE FROM media_reservations WHERE id = $1")
                .bind(reservation)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(row)
    }

    /// One page of the rows in `scope`, oldest first, and how many rows the scope holds.
    pub async fn list(
        &self,
        scope: ListScope,
        page: Page,
    ) -> Result<(Vec<MediaRow>, i64), sqlx::Error> {
        // One of three fixed filters; the owner id or visibility it compares with is bound.
        let (filter, limit) = match scope {
            ListScope::All => ("", 1),
            ListScope::OwnedBy(_) => ("WHERE owner_id = $1", 2),
            ListScope::Public => ("WHERE visibility = $1", 2),
        };
        let offset = limit + 1;
        let mut rows = sqlx::query_as::<_, MediaRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM media {filter} ORDER BY seq LIMIT ${limit} OFFSET ${offset}"
        )));
        let mut total = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM media {filter}"
        )));
        match scope {
            ListScope::All => {}
            ListScope::OwnedBy(owner) => {
                rows = rows.bind(owner);
                total = total.bind(owner);
            }
            ListScope::Public => {
                rows = rows.bind(Visibility::Public.as_str());
                total = total.bind(Visibility::Public.as_str());
            }
        }
        let rows = rows
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(self.database.pool())
            .await?;
        let total = total.fetch_one(self.database.pool()).await?;
        Ok((rows, total))
    }

    /// The row with this id, if any.
    pub async fn find(&self, id: &str) -> Result<Option<MediaRow>, sqlx::Error> {
        sqlx::query_as::<_, MediaRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM media WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.database.pool())
        .await
    }

    /// Records that the thumbnail exists; returns when it was recorded.
    pub async fn mark_thumbnail_ready(&self, id: &str) -> Result<String, sqlx::Error> {
        let now = timestamp_now();
        sqlx::query(
            "UPDATE media SET thumbnail_ready_at = $1 WHERE id = $2 AND thumbnail_ready_at IS NULL",
        )
        .bind(&now)
        .bind(id)
        .execute(self.database.pool())
        .await?;
        Ok(now)
    }

    /// Forgets the thumbnail (its job could not be enqueued, so none will come).
    pub async fn clear_thumbnail(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE media SET thumbnail_key = NULL WHERE id = $1")
            .bind(id)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Deletes a row; `false` when there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, sqlx::Error> {
        let result = sqlx::query("DELETE FROM media WHERE id = $1")
            .bind(id)
            .execute(self.database.pool())
            .await?;
        Ok(result.rows_affected() > 0)
    }
}
