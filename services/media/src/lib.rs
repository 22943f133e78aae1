//! The media service: `/api/upload` and `/api/media…` on port 3005 — multipart uploads to
//! local disk or S3, signed download URLs, thumbnail jobs for the worker.
//!
//! Uploads are streamed: each chunk of the multipart `file` field goes to a staged object in
//! the store (a temporary file) while the limit (`MEDIA_MAX_BYTES`) and the content type (from
//! the bytes, against an allow-list) are checked; only a complete, accepted upload is published
//! under `<uuid>/<sanitised-name>` and recorded. Images get a `thumbnail` job for the worker.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | the media flags (limit, quotas, URL lifetime, allowed types, signing key) |
//! | [`domain`] | [`domain::Media`], file-name sanitising, content-type detection, errors, the clock |
//! | [`signing`] | HMAC-SHA256 signed download URLs of the fs store |
//! | [`quota`] | per-user quotas: room reserved before an upload stores a byte |
//! | [`repository`] | the `media` table, the same SQL on SQLite and PostgreSQL |
//! | [`state`] | what the handlers share, and the upload counters |
//! | [`presentation`] | an item's JSON with download URLs made for each answer; download names |
//! | [`serving`] | how bytes are served: raster images inline, the rest as sandboxed downloads |
//! | [`upload`] | `POST /api/upload` and `POST /api/media`: the streamed upload |
//! | [`routes`] | list, read, delete, and the signed downloads (with ranges) |
//! | [`openapi`] | the OpenAPI 3 document served at `/api/media/openapi.json` |
//! | [`mount`] | every route above mounted on an app |
//!
//! Imports go one way: [`mount`] uses [`openapi`] and the handlers ([`upload`], [`routes`]),
//! which do not import each other; [`openapi`] reads the handlers' annotations; the handlers use
//! [`presentation`], [`state`] and the modules under those; nothing imports the crate root.
//!
//! The object store ([`store`]) and the job queue ([`queue`]) are shared
//! with the worker; everything else (config, logging, errors, health, metrics) is `shared`'s.

pub mod config;
pub mod domain;
pub mod mount;
pub mod openapi;
pub mod presentation;
pub mod quota;
pub mod repository;
pub mod routes;
pub mod serving;
pub mod signing;
pub mod state;
pub mod upload;

use std::{path::Path, sync::Arc};

use actix_web::web;
use db::Migrations;
use queue::{JobQueue, QueueArgs};
use runtime::{CommonArgs, Service};
use server::{HttpService, ServiceContext, ServiceSettings};
use slog::Logger;
use store::{ObjectStore, StoreArgs};

use crate::{
    config::MediaArgs,
    repository::MediaRepository,
    signing::UrlSigner,
    state::{MediaState, UploadMetrics},
};

/// The service's name (logs, metrics, default database `data/media.db`).
pub const NAME: &str = "media";
/// The port of docs/contracts.md.
pub const DEFAULT_PORT: u16 = 3005;

/// The flags and environment variables of `media-service`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "media-service",
    version,
    about = "Media uploads of the platform: local disk or S3, signed download URLs"
)]
pub struct Config {
    /// What every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where objects are stored.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where thumbnail jobs go.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Limits, URLs, signing.
    #[command(flatten)]
    pub media: MediaArgs,
}

/// What the media service needs beyond the common settings ([`ServiceSettings`]): built from
/// the flags with `From<&Config>`, or [`Settings::embedded`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The object store.
    pub store: StoreArgs,
    /// The job queue.
    pub queue: QueueArgs,
    /// Limits, URLs, signing.
    pub media: MediaArgs,
}

impl Settings {
    /// Embedded defaults under `data_dir`: the fs store in `media/`, the embedded queue in
    /// `queue.db`, the signing key in `media-signing.key` (the stack, tests).
    pub fn embedded(data_dir: &Path) -> Self {
        Self {
            store: StoreArgs::embedded(data_dir),
            queue: QueueArgs::embedded(data_dir),
            media: MediaArgs::embedded(data_dir),
        }
    }
}

impl From<&Config> for Settings {
    /// The store, queue and media flags of `config`.
    fn from(config: &Config) -> Self {
        Self {
            store: config.store.clone(),
            queue: config.queue.clone(),
            media: config.media.clone(),
        }
    }
}

/// The embedded migrations, per engine.
pub fn migrations() -> Migrations {
    db::embedded_migrations!()
}

/// A built media service: database migrated, store and queue connected, listener bound.
pub struct Application {
    /// The server.
    server: HttpService,
    /// Closed after the server stops.
    queue: JobQueue,
}

impl Application {
    /// Connects, migrates, binds. The binary, the stack and the tests all start here.
    pub async fn build(
        service: ServiceSettings,
        settings: Settings,
        logger: Logger,
    ) -> anyhow::Result<Self> {
        settings.media.validate()?;
        // Both stores need it: on S3 the downloads of anything but raster images go through
        // the service's signed URLs too (crate::serving).
        let signer = Arc::new(UrlSigner::load(&settings.media, &logger)?);
        let store = ObjectStore::connect(&settings.store, logger.clone()).await?;
        let queue = JobQueue::connect(&settings.queue, logger.clone()).await?;
        let context = ServiceContext::open(&service, migrations(), logger.clone())
            .await?
            .with_check("store", store.clone())
            .with_check("queue", queue.clone());
        let metrics = UploadMetrics::register(&context.metrics.registry)?;
        let state = web::Data::new(MediaState {
            repository: MediaRepository::new(context.database.clone()),
            store,
            queue: queue.clone(),
            signer,
            settings: Arc::new(settings.media),
            logger: logger.clone(),
            metrics,
        });
        let server = HttpService::bind(&service, &context, move |config| {
            mount::configure(config, state.clone());
        })?;
        Ok(Self { server, queue })
    }
}

impl Service for Application {
    fn port(&self) -> u16 {
        self.server.port()
    }

    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let outcome = self.server.run_until_stopped(shutdown).await;
        self.queue.close().await;
        outcome
    }
}
