//! The worker's series, registered on the service's [`runtime::Metrics`] registry.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};
use runtime::Metrics;

/// The `kind` labels of the job series: the kinds the worker handles, and `unknown` for any
/// other (a malformed or foreign message), so a sender cannot create series without bound.
pub const KINDS: [&str; 3] = ["task", "thumbnail", "unknown"];

/// The `kind` label of a job of `kind`.
pub fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .copied()
        .find(|known| *known == kind)
        .unwrap_or("unknown")
}

/// Job counters by `kind` (`task`, `thumbnail`, or `unknown` for malformed messages).
#[derive(Clone)]
pub struct WorkerMetrics {
    /// `worker_jobs_processed_total{kind}`: jobs done (acked after their effect).
    pub processed: IntCounterVec,
    /// `worker_jobs_failed_total{kind}`: failed attempts (each retry and each dead letter).
    pub failed: IntCounterVec,
    /// `worker_jobs_retried_total{kind}`: failed attempts scheduled again.
    pub retried: IntCounterVec,
    /// `worker_jobs_dead_lettered_total{kind, reason}`: `malformed`, `permanent`, `exhausted`,
    /// `redelivered` (delivered more than `--max-deliveries` times: its handling killed the
    /// worker).
    pub dead_lettered: IntCounterVec,
    /// `worker_jobs_skipped_total{kind}`: jobs with nothing left to do (a thumbnail of a
    /// deleted media item), acked.
    pub skipped: IntCounterVec,
    /// `worker_decode_memory_bytes`: the decode budget held now.
    pub decode_memory: IntGauge,
    /// `worker_jobs_duplicate_total{kind}`: deliveries of jobs already done (acked, no effect).
    pub duplicate: IntCounterVec,
    /// `worker_jobs_in_flight`: deliveries being handled now.
    pub in_flight: IntGauge,
    /// `worker_job_duration_seconds{kind, outcome}`: time to handle a delivery.
    pub duration: HistogramVec,
    /// `queue_ready_jobs{queue}`, `queue_in_flight_jobs{queue}`, `queue_dead_jobs{queue}`:
    /// the queue's depth, refreshed by [`crate::stats`].
    pub queue: QueueGauges,
}

/// The queue's gauges, by `queue` (the job queue's name).
#[derive(Clone)]
pub struct QueueGauges {
    /// `queue_ready_jobs{queue}`: jobs waiting to be delivered.
    pub ready: IntGaugeVec,
    /// `queue_in_flight_jobs{queue}`: jobs delivered and not settled (the embedded queue's
    /// leases; on RabbitMQ this instance's jobs being handled).
    pub in_flight: IntGaugeVec,
    /// `queue_dead_jobs{queue}`: dead letters.
    pub dead: IntGaugeVec,
}

impl WorkerMetrics {
    /// Creates and registers the series.
    pub fn register(metrics: &Metrics) -> anyhow::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let this = Self {
            processed: counter(
                "worker_jobs_processed_total",
                "Jobs processed successfully",
                &["kind"],
            )?,
            failed: counter("worker_jobs_failed_total", "Failed job attempts", &["kind"])?,
            retried: counter(
                "worker_jobs_retried_total",
                "Failed job attempts scheduled for a retry",
                &["kind"],
            )?,
            dead_lettered: counter(
                "worker_jobs_dead_lettered_total",
                "Jobs moved to the dead letters, by reason",
                &["kind", "reason"],
            )?,
            skipped: counter(
                "worker_jobs_skipped_total",
                "Jobs with nothing left to do (acked without effect)",
                &["kind"],
            )?,
            decode_memory: IntGauge::new(
                "worker_decode_memory_bytes",
                "Bytes of the decode budget held by images being decoded",
            )?,
            duplicate: counter(
                "worker_jobs_duplicate_total",
                "Deliveries of jobs already processed (acked without effect)",
                &["kind"],
            )?,
            in_flight: IntGauge::new("worker_jobs_in_flight", "Deliveries being handled")?,
            duration: HistogramVec::new(
                HistogramOpts::new("worker_job_duration_seconds", "Time to handle a delivery")
                    .buckets(vec![
                        0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    ]),
                &["kind", "outcome"],
            )?,
            queue: QueueGauges {
                ready: IntGaugeVec::new(
                    Opts::new("queue_ready_jobs", "Jobs waiting in the job queue"),
                    &["queue"],
                )?,
                in_flight: IntGaugeVec::new(
                    Opts::new(
                        "queue_in_flight_jobs",
                        "Jobs delivered and not settled (RabbitMQ: this instance's)",
                    ),
                    &["queue"],
                )?,
                dead: IntGaugeVec::new(
                    Opts::new("queue_dead_jobs", "Dead letters of the job queue"),
                    &["queue"],
                )?,
            },
        };
        for collector in [
            Box::new(this.processed.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(this.failed.clone()),
            Box::new(this.retried.clone()),
            Box::new(this.dead_lettered.clone()),
            Box::new(this.duplicate.clone()),
            Box::new(this.skipped.clone()),
            Box::new(this.decode_memory.clone()),
            Box::new(this.in_flight.clone()),
            Box::new(this.duration.clone()),
            Box::new(this.queue.ready.clone()),
            Box::new(this.queue.in_flight.clone()),
            Box::new(this.queue.dead.clone()),
        ] {
            metrics.registry.register(collector)?;
        }
        // Every known kind's counters exist at 0 from the start, so `rate()` and the dashboards
        // see a job type before its first job (a series born at its first increment hides it).
        for kind in KINDS {
            for counter in [
                &this.processed,
                &this.failed,
                &this.retried,
                &this.skipped,
                &this.duplicate,
            ] {
                counter.with_label_values(&[kind]);
            }
            for reason in ["malformed", "permanent", "exhausted", "redelivered"] {
                this.dead_lettered.with_label_values(&[kind, reason]);
            }
        }
        Ok(this)
    }
}
