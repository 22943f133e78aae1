//! The `media` table, through the shared database adapter. Every statement here runs unchanged
//! on SQLite and PostgreSQL.

use shared::{
    db::{Database, timestamp_now},
    pagination::Page,
};

use crate::domain::MediaRow;

const COLUMNS: &str =
    "id, name, content_type, size, object_key, thumbnail_key, thumbnail_ready_at, created_at";

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

    /// Records an uploaded file.
    pub async fn insert(&self, media: &NewMedia) -> Result<MediaRow, sqlx::Error> {
        sqlx::query_as::<_, MediaRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO media (id, name, content_type, size, object_key, thumbnail_key, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        )))
        .bind(&media.id)
        .bind(&media.name)
        .bind(&media.content_type)
        .bind(media.size)
        .bind(&media.object_key)
        .bind(media.thumbnail_key.as_deref())
        .bind(timestamp_now())
        .fetch_one(self.database.pool())
        .await
    }

    /// One page, oldest first, and the total number of rows.
    pub async fn list(&self, page: Page) -> Result<(Vec<MediaRow>, i64), sqlx::Error> {
        let rows = sqlx::query_as::<_, MediaRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM media ORDER BY seq LIMIT $1 OFFSET $2"
        )))
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(self.database.pool())
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media")
            .fetch_one(self.database.pool())
            .await?;
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
