//! The products REST API: `/api/products…` on port 3002.
//!
//! | module | what it holds |
//! |---|---|
//! | [`domain`] | [`domain::Product`], and the validation of what clients send |
//! | [`repository`] | the SQL, the same for SQLite and PostgreSQL |
//! | [`routes`] | the handlers, with cache-aside reads by id |
//! | [`openapi`] | the OpenAPI 3 document served at `/api/products/openapi.json` |
//!
//! Everything else (config, logging, errors, health, metrics, cache, shutdown) is `shared`'s.

pub mod domain;
pub mod openapi;
pub mod repository;
pub mod routes;

use db::Migrations;
use runtime::{CommonArgs, Service};
use server::{ServiceSettings, TableService};
use slog::Logger;

use crate::repository::ProductRepository;

/// The service's name (logs, metrics, default database `data/products.db`).
pub const NAME: &str = "products";
/// The port of docs/contracts.md.
pub const DEFAULT_PORT: u16 = 3002;

/// The flags and environment variables of `products-service`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "products-service",
    version,
    about = "The products REST API of the platform"
)]
pub struct Config {
    /// What every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The embedded migrations, per engine.
pub fn migrations() -> Migrations {
    db::embedded_migrations!()
}

/// A built products service: database migrated, listener bound.
pub struct Application(TableService<ProductRepository>);

impl Application {
    /// Connects, migrates, binds. The binary and the tests both start here.
    pub async fn build(settings: ServiceSettings, logger: Logger) -> anyhow::Result<Self> {
        let resource = ("product", "/api/products");
        TableService::build(
            settings,
            logger,
            migrations(),
            resource,
            ProductRepository::new,
            configure,
        )
        .await
        .map(Self)
    }

    /// Inserts the demo products (Laptop, Smartphone) when there are none at all.
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

/// The products routes and their OpenAPI document.
fn configure(
    config: &mut actix_web::web::ServiceConfig,
    state: actix_web::web::Data<routes::ProductsState>,
) {
    config.route(
        "/api/products/openapi.json",
        actix_web::web::get().to(openapi::document),
    );
    routes::configure(config, state);
}
