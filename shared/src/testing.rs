//! Test support (feature `testing`): a fresh, empty database for each test, on either engine.
//!
//! PostgreSQL is reached through `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets its own database named
//! `platform_test_<uuid>`. SQLite databases are files in a fresh temporary directory.

use anyhow::Context;
use sqlx::{Connection, Executor, postgres::PgConnection};

use crate::config::DatabaseUrl;

/// The engines tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// A temporary SQLite file.
    Sqlite,
    /// A new PostgreSQL database.
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis server of the cache tests.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A URL of a new, empty database on `backend`.
pub async fn fresh_database(backend: TestBackend) -> anyhow::Result<DatabaseUrl> {
    let name = format!("platform_test_{}", uuid::Uuid::new_v4().simple());
    match backend {
        TestBackend::Sqlite => {
            let dir = std::env::temp_dir().join(&name);
            std::fs::create_dir_all(&dir)?;
            Ok(DatabaseUrl(format!("sqlite://{}/service.db", dir.display())))
        }
        TestBackend::Postgres => {
            let admin_url = postgres_admin_url();
            let mut connection = PgConnection::connect(&admin_url)
                .await
                .with_context(|| format!("connecting to the test PostgreSQL at {admin_url}"))?;
            connection.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).await?;
            connection.close().await?;
            let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
            Ok(DatabaseUrl(format!("{base}/{name}")))
        }
    }
}
