//! The users table, through the shared database adapter. Every statement here runs unchanged
//! on SQLite and PostgreSQL.

use db::{Database, is_unique_violation, placeholders, timestamp_now};
use server::{ListPage, Table, select_page};
use sqlx::AssertSqlSafe;

use crate::domain::{User, UserError, ValidUser};

const COLUMNS: &str = "id, name, email, created_at";

/// Reads and writes users.
#[derive(Clone, Debug)]
pub struct UserRepository {
    /// The pool.
    database: Database,
}

impl UserRepository {
    /// A repository over `database` (already migrated).
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Inserts the demo users (Alice, Bob) when the table is empty; `true` when it did.
    pub async fn seed_if_empty(&self) -> anyhow::Result<bool> {
        let mut transaction = self.database.pool().begin().await?;
        let any: Option<i64> = sqlx::query_scalar("SELECT id FROM users LIMIT 1")
            .fetch_optional(&mut *transaction)
            .await?;
        if any.is_some() {
            return Ok(false);
        }
        for (name, email) in [("Alice", "alice@example.com"), ("Bob", "bob@example.com")] {
            sqlx::query(
                "INSERT INTO users (name, email, email_key, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(email)
            .bind(email)
            .bind(timestamp_now())
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(true)
    }
}

fn email_conflict(error: sqlx::Error, email: &str) -> UserError {
    if is_unique_violation(&error) {
        UserError::EmailTaken(email.to_owned())
    } else {
        UserError::Database(error)
    }
}

impl Table for UserRepository {
    type Item = User;
    type Valid = ValidUser;
    type Error = UserError;

    fn id(item: &User) -> i64 {
        item.id
    }

    /// Email addresses are for the user themself and admins.
    fn hides_from(id: i64, viewer: Option<&auth::Principal>) -> bool {
        !viewer.is_some_and(|viewer| viewer.may_act_for(id))
    }

    fn redact(item: &mut User) {
        item.email = None;
    }

    /// One page by id (the primary key's index serves every seek).
    async fn page(&self, page: &ListPage) -> Result<Vec<User>, UserError> {
        Ok(select_page(&self.database, COLUMNS, "users", page).await?)
    }

    /// Every user, counted.
    async fn count(&self) -> Result<i64, UserError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.database.pool())
            .await?)
    }

    /// PostgreSQL's statistics.
    async fn estimate(&self) -> Result<Option<i64>, UserError> {
        Ok(self.database.estimated_rows("users").await?)
    }

    /// The users with these ids that exist, by id.
    async fn by_ids(&self, ids: &[i64]) -> Result<Vec<User>, UserError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE id IN ({}) ORDER BY id",
            placeholders(ids.len())
        );
        let mut query = sqlx::query_as::<_, User>(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        Ok(query.fetch_all(self.database.pool()).await?)
    }

    /// The user with this id, if any.
    async fn find(&self, id: i64) -> Result<Option<User>, UserError> {
        Ok(
            sqlx::query_as::<_, User>(
                "SELECT id, name, email, created_at FROM users WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(self.database.pool())
            .await?,
        )
    }

    /// Inserts a user; [`UserError::EmailTaken`] when the address is used (in any case).
    async fn insert(&self, user: &ValidUser) -> Result<User, UserError> {
        sqlx::query_as::<_, User>(
            "INSERT INTO users (name, email, email_key, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, name, email, created_at",
        )
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.email_key)
        .bind(timestamp_now())
        .fetch_one(self.database.pool())
        .await
        .map_err(|error| email_conflict(error, &user.email))
    }

    /// Replaces a user's name and email; `None` when there is no such user.
    async fn update(&self, id: i64, user: &ValidUser) -> Result<Option<User>, UserError> {
        sqlx::query_as::<_, User>(
            "UPDATE users SET name = $1, email = $2, email_key = $3 WHERE id = $4 \
             RETURNING id, name, email, created_at",
        )
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.email_key)
        .bind(id)
        .fetch_optional(self.database.pool())
        .await
        .map_err(|error| email_conflict(error, &user.email))
    }

    /// Deletes a user and their refresh tokens; `false` when there was none.
    async fn delete(&self, id: i64) -> Result<bool, UserError> {
        let mut transaction = self.database.pool().begin().await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1")
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        let result = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(result.rows_affected() > 0)
    }
}
