//! The media service: `/api/upload` and `/api/media…` on port 3005 (the seed's Multer + S3
//! example, made real).
//!
//! Uploads are streamed: each chunk of the multipart `file` field goes to a staged object in
//! the store (a temporary file) while the limit (`MEDIA_MAX_BYTES`) and the content type (from
//! the bytes, against an allow-list) are checked; only a complete, accepted upload is published
//! under `<uuid>/<sanitised-name>` and recorded. Images get a `thumbnail` job for the worker.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | the media flags (limit, quotas, URL lifetime, allowed types, signing key) |
//! | [`domain`] | [`domain::Media`], file-name sanitising, content-type detection, errors |
//! | [`signing`] | HMAC-SHA256 signed download URLs of the fs store |
//! | [`quota`] | per-user quotas: room reserved before an upload stores a byte |
//! | [`repository`] | the `media` table, the same SQL on SQLite and PostgreSQL |
//! | [`upload`] | `POST /api/upload` and `POST /api/media`: the streamed upload |
//! | [`routes`] | list, read, delete, and the signed downloads (with ranges) |
//! | [`presentation`] | an item's JSON with download URLs made now; download names |
//! | [`serving`] | how bytes are served: raster images inline, the rest as sandboxed downloads |
//! | [`openapi`] | the OpenAPI 3 document served at `/api/media/openapi.json` |
//!
//! The object store ([`store`]) and the job queue ([`queue`]) are shared
//! with the worker; everything else (config, logging, errors, health, metrics) is `shared`'s.

pub mod config;
pub mod domain;
pub mod openapi;
pub mod presentation;
pub mod quota;
pub mod repository;
pub mod routes;
pub mod serving;
pub mod signing;
pub mod upload;

use std::{path::Path, sync::Arc, time::Duration};

use actix_web::web;
use db::Migrations;
use queue::{JobQueue, QueueArgs};
use runtime::{Service, config::CommonArgs};
use server::{HttpService, ServiceContext, ServiceSettings};
use slog::Logger;
use store::{ObjectStore, StoreArgs};

use crate::{config::MediaArgs, repository::MediaRepository, signing::UrlSigner};

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

/// What the media service needs beyond the common settings.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// The object store.
    pub store: StoreArgs,
    /// The job queue.
    pub queue: QueueArgs,
    /// Limits, URLs, signing.
    pub media: MediaArgs,
}

impl MediaOptions {
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

impl From<&Config> for MediaOptions {
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

/// What the handlers share.
#[derive(Clone)]
pub struct MediaState {
    /// The `media` table.
    pub repository: MediaRepository,
    /// Where the bytes are.
    pub store: ObjectStore,
    /// Where thumbnail jobs go.
    pub queue: JobQueue,
    /// Signs the fs store's download URLs.
    pub signer: Arc<UrlSigner>,
    /// The media flags.
    pub settings: Arc<MediaArgs>,
    /// The service's logger.
    pub logger: Logger,
    /// Upload counters.
    pub metrics: UploadMetrics,
}

/// `media_uploads_total{outcome}` and `media_upload_bytes_total`, in the service's registry.
#[derive(Clone)]
pub struct UploadMetrics {
    /// Uploads by outcome: `stored`, `too_large`, `over_quota`, `unsupported`, `bad_request`,
    /// `unavailable`, `error`.
    pub uploads: prometheus::IntCounterVec,
    /// Bytes of the stored uploads.
    pub bytes: prometheus::IntCounter,
}

impl UploadMetrics {
    /// The counters, registered in `registry`.
    pub fn register(registry: &prometheus::Registry) -> anyhow::Result<Self> {
        let uploads = prometheus::IntCounterVec::new(
            prometheus::Opts::new("media_uploads_total", "Uploads by outcome"),
            &["outcome"],
        )?;
        let bytes =
            prometheus::IntCounter::new("media_upload_bytes_total", "Bytes of the uploads stored")?;
        registry.register(Box::new(uploads.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        Ok(Self { uploads, bytes })
    }

    /// Counts one upload's outcome.
    pub fn observe(&self, outcome: Result<u64, &domain::MediaError>) {
        use domain::MediaError as E;
        let label = match outcome {
            Ok(size) => {
                self.bytes.inc_by(size);
                "stored"
            }
            Err(E::TooLarge(_)) => "too_large",
            Err(E::OverQuota(_)) => "over_quota",
            Err(E::Unsupported(_)) => "unsupported",
            Err(
                E::NoFile
                | E::NoFileName
                | E::Empty
                | E::Multipart(_)
                | E::BadQuery(_)
                | E::InvalidId(_),
            ) => "bad_request",
            Err(E::Store(store::StoreError::Unavailable(_))) => "unavailable",
            Err(_) => "error",
        };
        self.uploads.with_label_values(&[label]).inc();
    }
}

impl MediaState {
    /// How long a download URL stays valid.
    pub fn url_ttl(&self) -> Duration {
        Duration::from_secs(self.settings.url_ttl_secs)
    }

    /// The API error for `error`, after logging the cause of a store outage (clients only
    /// learn that the store is unavailable).
    pub fn fail(&self, error: domain::MediaError) -> server::ApiError {
        if let domain::MediaError::Store(store::StoreError::Unavailable(cause)) = &error {
            slog::warn!(self.logger, "object store unavailable"; "store" => self.store.kind(),
                "error" => format!("{cause:#}"));
        }
        error.into()
    }
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
        settings: ServiceSettings,
        options: MediaOptions,
        logger: Logger,
    ) -> anyhow::Result<Self> {
        options.media.validate()?;
        // Both stores need it: on S3 the downloads of anything but raster images go through
        // the service's signed URLs too (crate::serving).
        let signer = Arc::new(UrlSigner::load(&options.media, &logger)?);
        let store = ObjectStore::connect(&options.store, logger.clone()).await?;
        let queue = JobQueue::connect(&options.queue, logger.clone()).await?;
        let context = ServiceContext::open(&settings, migrations(), logger.clone())
            .await?
            .with_check("store", store.clone())
            .with_check("queue", queue.clone());
        let metrics = UploadMetrics::register(&context.metrics.registry)?;
        let state = web::Data::new(MediaState {
            repository: MediaRepository::new(context.database.clone()),
            store,
            queue: queue.clone(),
            signer,
            settings: Arc::new(options.media),
            logger: logger.clone(),
            metrics,
        });
        let server = HttpService::bind(&settings, &context, move |config| {
            config.route(
                "/api/media/openapi.json",
                actix_web::web::get().to(openapi::document),
            );
            routes::configure(config, state.clone());
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
