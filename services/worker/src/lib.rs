//! The job worker: consumes `tasks_queue` (RabbitMQ, or the embedded durable queue when
//! `AMQP_URL` is unset) and serves `/healthz`, `/readyz`, `/metrics` and the admins' jobs API
//! (`/api/jobs`: figures, dead letters) on port 3006; `worker produce` publishes jobs. On
//! RabbitMQ it also drains the dead-letter queue into its database ([`queue::DeadLetters`]).
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | the flags: queue, store, prefetch, concurrency, retries, shutdown bound; `produce` |
//! | [`message`] | a delivery as a job: an envelope, or a bare `{"task"}` message |
//! | [`jobs`] | the job kinds (`task`, `thumbnail`) and what each does |
//! | [`context`] | what every job runs with (database, store, decode budget) |
//! | [`outcome`] | what handling a job amounted to, or why it failed |
//! | [`thumbnail`] | the `thumbnail` job: keys from the media id, the media item's checks |
//! | [`decode`] | decoding within the process's memory budget; the caps; EXIF orientation |
//! | [`orphans`] | the sweep for thumbnails whose media item is gone |
//! | [`processor`] | the consume loop: concurrency, acks, retries with backoff, dead letters |
//! | [`repository`] | the worker's own database: processed job ids, recorded with the effect |
//! | [`metrics`] | processed, failed, retried, dead-lettered, duplicate, in-flight, duration; the queue gauges |
//! | [`stats`] | the queue's figures and rates; refreshes the queue gauges |
//! | [`api`] | `/api/jobs`: stats, dead letters listed, replayed, deleted |
//! | [`producer`] | `worker produce`: publishes jobs with confirms and prints their ids |
//!
//! Messaging, the object store, config, logging, health and shutdown are `shared`'s.

pub mod api;
pub mod config;
pub mod context;
pub mod decode;
pub mod jobs;
pub mod message;
pub mod metrics;
pub mod orphans;
pub mod outcome;
pub mod processor;
pub mod producer;
pub mod repository;
pub mod stats;
pub mod thumbnail;

use db::Migrations;
use queue::JobQueue;
use runtime::{Service, Shutdown};
use server::{HttpService, ServiceContext, ServiceSettings};
use slog::Logger;
use store::ObjectStore;

pub use crate::config::{Command, Config, Settings};
use crate::{
    api::JobsApi,
    decode::DecodeBudget,
    metrics::WorkerMetrics,
    processor::Processor,
    repository::{Repository, TaskRecorder},
    stats::QueueStats,
};

/// The service's name (logs, metrics, default database `data/worker.db`).
pub const NAME: &str = "worker";
/// The port of docs/contracts.md (health, metrics, the jobs API).
pub const DEFAULT_PORT: u16 = 3006;

/// The embedded migrations of the worker's own database, per engine.
pub fn migrations() -> Migrations {
    db::embedded_migrations!()
}

/// A background task of the worker, aborted when the consume loop ends.
type Task = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A built worker: database migrated, queue and store connected, health listener bound.
pub struct Application {
    /// `/healthz`, `/readyz`, `/metrics`, `/api/jobs`.
    http: HttpService,
    /// What runs beside the consume loop until it ends: the drain of RabbitMQ's dead letters
    /// into the table (nothing on the embedded queue), the gauges' refresh, the orphan sweep
    /// (at start, then periodically).
    background: Vec<Task>,
    /// The consume loop.
    processor: Processor,
    /// Closed at the end.
    queue: JobQueue,
    /// For the lifecycle lines.
    logger: Logger,
}

impl Application {
    /// Connects everything and binds the health port. The binary and the tests start here.
    pub async fn build(
        settings: ServiceSettings,
        worker: Settings,
        logger: Logger,
    ) -> anyhow::Result<Self> {
        let context = ServiceContext::open(&settings, migrations(), logger.clone()).await?;
        let queue = JobQueue::connect(&worker.queue, logger.clone()).await?;
        let store = ObjectStore::connect(&worker.store, logger.clone()).await?;
        let context = context
            .with_check("queue", queue.clone())
            .with_check("store", store.clone());
        let metrics = WorkerMetrics::register(&context.metrics)?;
        let dead = queue.dead_letters(&settings.database_url).await?;
        let stats = QueueStats::new(queue.clone(), dead.clone(), metrics.clone(), logger.clone());
        let jobs_api = JobsApi {
            dead: dead.clone(),
            stats: stats.clone(),
        };
        let http = HttpService::bind(&settings, &context, move |config| {
            api::configure(config, jobs_api.clone());
        })?;
        let mut background: Vec<Task> = vec![
            Box::pin(async move { dead.drain().await }),
            Box::pin(stats.run()),
        ];
        let thumbnails = worker.thumbnails;
        let budget = DecodeBudget::new(
            thumbnails.decode_memory_bytes(),
            thumbnails.max_image_pixels,
            metrics.decode_memory.clone(),
        );
        background.push(Box::pin(orphans::run_sweeps(
            store.clone(),
            Repository::new(context.database.clone()),
            std::time::Duration::from_secs(thumbnails.orphan_sweep_secs),
            logger.clone(),
        )));
        let processor = Processor::new(
            worker.processing,
            queue.clone(),
            context::JobContext {
                repository: Repository::new(context.database.clone()),
                tasks: TaskRecorder::start(Repository::new(context.database.clone())),
                store,
                budget,
                logger: logger.clone(),
            },
            metrics,
            logger.clone(),
        );
        slog::info!(logger, "worker ready"; "queue" => queue.kind(),
            "queue_name" => &worker.queue.queue,
            "prefetch" => worker.processing.prefetch,
            "concurrency" => worker.processing.concurrency,
            "max_attempts" => worker.processing.max_attempts,
            "max_deliveries" => worker.processing.max_deliveries,
            "decode_memory_mb" => thumbnails.decode_memory_mb,
            "max_image_pixels" => thumbnails.max_image_pixels);
        Ok(Self {
            http,
            background,
            processor,
            queue,
            logger,
        })
    }
}

impl Service for Application {
    fn port(&self) -> u16 {
        self.http.port()
    }

    /// Consumes until `shutdown` resolves; then stops consuming, lets in-flight jobs finish
    /// (bounded; the rest go back to the queue), and only then stops the health server.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let http_stop = Shutdown::new();
        let http = tokio::spawn(self.http.run_until_stopped(http_stop.wait()));
        let background: Vec<_> = self.background.into_iter().map(tokio::spawn).collect();
        // On a runtime thread, so the jobs it spawns start on that thread's queue instead of
        // waking a worker from outside the runtime for each one.
        let processed = tokio::spawn(self.processor.run(shutdown))
            .await
            .unwrap_or_else(|error| Err(anyhow::anyhow!("the consume loop panicked: {error}")));
        for task in background {
            task.abort();
        }
        http_stop.trigger();
        let served = http.await;
        self.queue.close().await;
        slog::info!(self.logger, "worker stopped");
        processed?;
        served??;
        Ok(())
    }
}
