//! The users REST API: `/api/users…` on port 3001 (the seed's users microservice, made real).
//!
//! | module | what it holds |
//! |---|---|
//! | [`domain`] | [`domain::User`], and the validation of what clients send |
//! | [`repository`] | the SQL, the same for SQLite and PostgreSQL |
//! | [`routes`] | the handlers, with cache-aside reads by id |
//! | [`openapi`] | the OpenAPI 3 document served at `/api/users/openapi.json` |
//!
//! Everything else (config, logging, errors, health, metrics, cache, shutdown) is `shared`'s.

pub mod domain;
pub mod openapi;
pub mod repository;
pub mod routes;

use shared::{
    config::CommonArgs,
    crud::TableService,
    db::Migrations,
    server::{Service, ServiceSettings},
};
use slog::Logger;

use crate::repository::UserRepository;

/// The service's name (logs, metrics, default database `data/users.db`).
pub const NAME: &str = "users";
/// The port of docs/contracts.md.
pub const DEFAULT_PORT: u16 = 3001;

/// The flags and environment variables of `users-service`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "users-service",
    version,
    about = "The users REST API of the platform"
)]
pub struct Config {
    /// What every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The embedded migrations, per engine.
pub fn migrations() -> Migrations {
    shared::embedded_migrations!()
}

/// A built users service: database migrated, listener bound.
pub struct Application(TableService<UserRepository>);

impl Application {
    /// Connects, migrates, binds. The binary and the tests both start here.
    pub async fn build(settings: ServiceSettings, logger: Logger) -> anyhow::Result<Self> {
        let resource = ("user", "/api/users");
        TableService::build(
            settings,
            logger,
            migrations(),
            resource,
            UserRepository::new,
            routes::configure,
        )
        .await
        .map(Self)
    }

    /// Inserts the seed's demo users (Alice, Bob) when there are none at all.
    pub async fn seed_demo_data(&self) -> anyhow::Result<bool> {
        self.0.table().seed_if_empty().await
    }
}

impl Service for Application {
    fn port(&self) -> u16 {
        self.0.port()
    }

    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.0.run_until_stopped(shutdown).await
    }
}
