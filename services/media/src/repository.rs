//! The `media` table, through the shared database adapter. Every statement here runs unchanged
//! on SQLite and PostgreSQL.

use db::{Database, timestamp_now};
use server::{ListPage, Total};

use crate::domain::{MediaRow, Visibility};

const COLUMNS: &str = "seq, id, name, content_type, size, object_key, thumbnail_key, \
     thumbnail_ready_at, owner_id, visibility, created_at";

/// Which rows a list shows. Each scope is read through an index that ends in `seq`, so a page
/// seeks to its first row and reads only its own rows: the primary key (`All`),
/// `media_owner_seq (owner_id, seq)` (`OwnedBy`), `media_visibility_seq (visibility, seq)`
/// (`Public`). A page's cost thus does not grow with the table (docs/benchmarks.md, "Data at
/// scale"; the tests check each statement's plan on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListScope {
    /// Every row (admins).
    All,
    /// The rows this user owns, whatever their visibility.
    OwnedBy(i64),
    /// The public rows (anonymous callers).
    Public,
}

/// The value a scope's filter compares with (bound as `$1`).
enum ScopeValue {
    /// An owner id.
    Owner(i64),
    /// A visibility.
    Visibility(&'static str),
}

impl ListScope {
    /// The scope's condition on `$1`, and the value to bind there; `None`: every row.
    fn filter(self) -> Option<(&'static str, ScopeValue)> {
        match self {
            Self::All => None,
            Self::OwnedBy(owner) => Some(("owner_id = $1", ScopeValue::Owner(owner))),
            Self::Public => Some((
                "visibility = $1",
                ScopeValue::Visibility(Visibility::Public.as_str()),
            )),
        }
    }
}

/// Binds a scope's value (if any) to a query as `$1`; one arm per [`ScopeValue`].
macro_rules! bind_scope {
    ($query:expr, $value:expr) => {
        match $value {
            None => $query,
            Some(ScopeValue::Owner(owner)) => $query.bind(owner),
            Some(ScopeValue::Visibility(visibility)) => $query.bind(visibility),
        }
    };
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

    /// One page of the rows in `scope` ([`ListPage::sql`] on `seq`, so at most `limit + 1`
    /// rows, in the page's order, for [`ListPage::window`]). No statement counts the scope.
    pub async fn list(
        &self,
        scope: ListScope,
        page: &ListPage,
    ) -> Result<Vec<MediaRow>, sqlx::Error> {
        let (condition, value) = scope.filter().unzip();
        let page_sql = page.sql("seq", if condition.is_some() { 2 } else { 1 });
        let conditions: Vec<&str> = condition
            .into_iter()
            .chain(page_sql.condition.as_deref())
            .collect();
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {} ", conditions.join(" AND "))
        };
        let query = sqlx::query_as::<_, MediaRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM media {filter}{}",
            page_sql.tail
        )));
        let mut query = bind_scope!(query, value);
        for bind in page_sql.binds {
            query = query.bind(bind);
        }
        query.fetch_all(self.database.pool()).await
    }

    /// The total a list of `scope` answers with: counted when `exact` (its cost grows with the
    /// scope's rows, read from the scope's index); otherwise PostgreSQL's estimate of the whole
    /// table for [`ListScope::All`], and none for a filtered scope (the table's estimate is
    /// not theirs).
    pub async fn total(&self, scope: ListScope, exact: bool) -> Result<Total, sqlx::Error> {
        if exact {
            return self.count(scope).await.map(Total::Exact);
        }
        if scope != ListScope::All {
            return Ok(Total::Unknown);
        }
        Ok(match self.database.estimated_rows("media").await? {
            Some(estimate) => Total::Estimate(estimate),
            None => Total::Unknown,
        })
    }

    /// The rows in `scope`, counted.
    pub async fn count(&self, scope: ListScope) -> Result<i64, sqlx::Error> {
        let (condition, value) = scope.filter().unzip();
        let filter = condition.map_or_else(String::new, |condition| format!(" WHERE {condition}"));
        let query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM media{filter}"
        )));
        bind_scope!(query, value)
            .fetch_one(self.database.pool())
            .await
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
