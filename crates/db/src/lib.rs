//! The database adapter: one sqlx pool over SQLite (embedded default) or PostgreSQL, chosen by
//! the URL's scheme, with the service's embedded migrations run at start.
//!
//! Queries are written once in the SQL both engines share (`$1` placeholders, `RETURNING`,
//! `LIMIT … OFFSET …`), through sqlx's `Any` driver; only the migrations differ per engine.

use std::{path::Path, time::Duration};

use anyhow::Context;
use backon::{ConstantBuilder, Retryable};
use sqlx::{AnyPool, Executor, any::AnyPoolOptions, migrate::Migrator};

use runtime::DatabaseUrl;

/// Which engine a [`Database`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, in WAL mode, file created when missing.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A service's migrations, one directory per engine (embedded with `sqlx::migrate!`).
pub struct Migrations {
    /// For SQLite.
    pub sqlite: Migrator,
    /// For PostgreSQL.
    pub postgres: Migrator,
}

/// The crate's `migrations/sqlite` and `migrations/postgres` folders, embedded at build time
/// (the paths are relative to the crate that invokes it, as with `sqlx::migrate!`).
#[macro_export]
macro_rules! embedded_migrations {
    () => {
        $crate::Migrations {
            sqlite: ::sqlx::migrate!("./migrations/sqlite"),
            postgres: ::sqlx::migrate!("./migrations/postgres"),
        }
    };
}

/// A connection pool and the engine behind it.
#[derive(Clone, Debug)]
pub struct Database {
    /// The pool every query goes through.
    pool: AnyPool,
    /// The engine, for the few statements that differ.
    backend: Backend,
}

/// Runs `migrator` on `pool`. Services that share a database start at once (all of them, in
/// the stack's one process): migrations are run one service at a time in a process, and one
/// that fails because another process migrated the same database at that moment (SQLite has
/// no migration lock; it reports the file busy or the version already applied) is tried again.
async fn migrate(migrator: &Migrator, pool: &AnyPool) -> anyhow::Result<()> {
    static MIGRATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = MIGRATING.lock().await;
    (|| migrator.run(pool))
        .retry(
            ConstantBuilder::default()
                .with_delay(Duration::from_millis(300))
                .with_max_times(2),
        )
        .await
        .context("running the database migrations (3 attempts)")
}

impl Database {
    /// Connects (creating a SQLite file and its directory when missing) and migrates.
    pub async fn connect(url: &DatabaseUrl, migrations: Migrations) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (url, backend) = if url.0.starts_with("sqlite:") {
            (prepare_sqlite_url(&url.0)?, Backend::Sqlite)
        } else {
            (url.0.clone(), Backend::Postgres)
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |connection, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; NORMAL is durable in WAL
                        // mode except for the last transactions on power loss.
                        connection.execute("PRAGMA journal_mode = WAL").await?;
                        connection.execute("PRAGMA synchronous = NORMAL").await?;
                        connection.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("connecting to the database at {}", redact(&url)))?;
        let mut migrator = match backend {
            Backend::Sqlite => migrations.sqlite,
            Backend::Postgres => migrations.postgres,
        };
        // Services may share one database; each knows only its own migrations.
        migrator.set_ignore_missing(true);
        migrate(&migrator, &pool).await?;
        Ok(Self { pool, backend })
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> anyhow::Result<()> {
        tokio::time::timeout(Duration::from_secs(2), self.pool.execute("SELECT 1"))
            .await
            .context("the database did not answer within 2 s")??;
        Ok(())
    }

    /// PostgreSQL's planner estimate of the rows in `table` (kept by `ANALYZE` and autovacuum,
    /// read without touching the table); `None` on SQLite, which keeps none, and before the
    /// table was first analyzed.
    pub async fn estimated_rows(&self, table: &str) -> Result<Option<i64>, sqlx::Error> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let estimate: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(reltuples AS BIGINT) FROM pg_class WHERE oid = to_regclass($1)",
        )
        .bind(table)
        .fetch_optional(&self.pool)
        .await?;
        Ok(estimate.filter(|rows| *rows >= 0))
    }

    /// Closes every connection (at shutdown, so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The current time as the API shows it and the tables store it: RFC 3339, UTC, milliseconds.
pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `$1, $2, …, $count`: the placeholders of an `IN (…)` list of `count` values.
pub fn placeholders(count: usize) -> String {
    (1..=count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether an error is a unique-constraint violation (e.g. an email already used).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Creates the directory of a SQLite file and asks for the file to be created when missing.
fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parent = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent.filter(|_| path != ":memory:") {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the database directory {}", parent.display()))?;
    }
    if query.split('&').any(|pair| pair.starts_with("mode=")) {
        Ok(url.to_owned())
    } else if query.is_empty() {
        Ok(format!("sqlite://{path}?mode=rwc"))
    } else {
        Ok(format!("sqlite://{path}?{query}&mode=rwc"))
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl runtime::Probe for Database {
    fn probe(&self) -> runtime::ProbeFuture<'_> {
        Box::pin(self.ping())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_ask_for_creation() {
        let dir = std::env::temp_dir().join(format!("platform-db-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/sub/x.db", dir.display());
        assert_eq!(
            prepare_sqlite_url(&url).expect("prepared"),
            format!("{url}?mode=rwc")
        );
        assert!(dir.join("sub").is_dir());
        assert_eq!(
            prepare_sqlite_url("sqlite::memory:?mode=memory").expect("prepared"),
            "sqlite::memory:?mode=memory"
        );
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/users"),
            "postgres://app:***@db:5432/users"
        );
        assert_eq!(redact("postgres://db/users"), "postgres://db/users");
    }
}
