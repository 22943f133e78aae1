//! Identities in the users table (password hash, role) and the refresh tokens issued to them.
//! Every statement runs unchanged on SQLite and PostgreSQL.

use db::{Database, is_unique_violation, timestamp_now};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{UserError, ValidUser};

/// A signed-in user's own view of their account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Account {
    /// Assigned by the service.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// `user` or `admin`.
    #[schema(example = "user")]
    pub role: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl Account {
    /// The token roles of this account.
    pub fn roles(&self) -> Vec<auth::Role> {
        if self.role == auth::Role::Admin.as_str() {
            vec![auth::Role::User, auth::Role::Admin]
        } else {
            vec![auth::Role::User]
        }
    }
}

/// What a login checks: the account and its password hash (none: it cannot log in).
#[derive(Debug, sqlx::FromRow)]
pub struct Credentials {
    /// The account.
    #[sqlx(flatten)]
    pub account: Account,
    /// The argon2id PHC string.
    pub password_hash: Option<String>,
}

/// What presenting a refresh token came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// Valid and now spent: the family to continue and the user.
    Valid {
        /// The token family (one per login).
        family: String,
        /// The user it belongs to.
        user_id: i64,
    },
    /// Spent before (or revoked): the whole family is revoked now.
    Reused,
    /// Unknown or expired.
    Invalid,
}

const ACCOUNT_COLUMNS: &str = "id, name, email, role, created_at";

/// Reads and writes identities.
#[derive(Clone, Debug)]
pub struct Accounts {
    /// The pool.
    database: Database,
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Accounts {
    /// Identities over `database` (already migrated).
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// The account with this lower-cased email, with its password hash.
    pub async fn credentials(&self, email_key: &str) -> Result<Option<Credentials>, sqlx::Error> {
        sqlx::query_as::<_, Credentials>(
            "SELECT id, name, email, role, created_at, password_hash FROM users \
             WHERE email_key = $1",
        )
        .bind(email_key)
        .fetch_optional(self.database.pool())
        .await
    }

    /// The account with this id.
    pub async fn find(&self, id: i64) -> Result<Option<Account>, sqlx::Error> {
        sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.database.pool())
        .await
    }

    /// A new account with a password hash and role; [`UserError::EmailTaken`] when the address
    /// is used.
    pub async fn create(
        &self,
        user: &ValidUser,
        password_hash: &str,
        role: auth::Role,
    ) -> Result<Account, UserError> {
        sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (name, email, email_key, created_at, password_hash, role) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ACCOUNT_COLUMNS}"
        )))
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.email_key)
        .bind(timestamp_now())
        .bind(password_hash)
        .bind(role.as_str())
        .fetch_one(self.database.pool())
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                UserError::EmailTaken(user.email.clone())
            } else {
                UserError::Database(error)
            }
        })
    }

    /// Sets a user's password hash and ends their sessions; `false` when there is no such user.
    pub async fn set_password(&self, id: i64, password_hash: &str) -> Result<bool, sqlx::Error> {
        let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(self.database.pool())
            .await?;
        self.revoke_user(id).await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Sets a user's role.
    pub async fn set_role(&self, id: i64, role: auth::Role) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(id)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Whether any admin exists (the partial index `users_admins` answers it).
    pub async fn has_admin(&self) -> Result<bool, sqlx::Error> {
        let admin: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE role = 'admin' LIMIT 1")
                .fetch_optional(self.database.pool())
                .await?;
        Ok(admin.is_some())
    }

    /// Stores a refresh token (its hash) of `family` for `user_id`, valid for `lifetime_secs`.
    pub async fn store_refresh(
        &self,
        token_hash: &str,
        family: &str,
        user_id: i64,
        lifetime_secs: i64,
    ) -> Result<(), sqlx::Error> {
        let now = unix_now();
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(family)
        .bind(user_id)
        .bind(now + lifetime_secs)
        .bind(now)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Spends a refresh token. The update is conditional, so of two racing presentations of
    /// one token only one is valid and the other counts as reuse; and a token of a family with
    /// any revoked member is never valid, so a token issued while its family was being revoked
    /// (a refresh racing a reuse or a logout) dies with the family.
    pub async fn redeem(&self, token_hash: &str) -> Result<Redeemed, sqlx::Error> {
        let now = unix_now();
        let spent: Option<(String, i64)> = sqlx::query_as(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $1 AND NOT EXISTS (SELECT 1 FROM \
             refresh_tokens AS revoked WHERE revoked.family_id = refresh_tokens.family_id \
             AND revoked.revoked_at IS NOT NULL) RETURNING family_id, user_id",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(self.database.pool())
        .await?;
        if let Some((family, user_id)) = spent {
            return Ok(Redeemed::Valid { family, user_id });
        }
        let known: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT family_id, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.database.pool())
        .await?;
        match known {
            Some((family, used, revoked)) if used.is_some() || revoked.is_some() => {
                self.revoke_family(&family).await?;
                Ok(Redeemed::Reused)
            }
            _ => Ok(Redeemed::Invalid),
        }
    }

    /// The family of a refresh token, if the token is known.
    pub async fn family_of(&self, token_hash: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.database.pool())
            .await
    }

    /// Revokes every token of a family.
    pub async fn revoke_family(&self, family: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(unix_now())
        .bind(family)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Revokes every token of a user.
    pub async fn revoke_user(&self, user_id: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(unix_now())
        .bind(user_id)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }
}
