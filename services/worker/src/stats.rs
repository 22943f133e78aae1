//! The queue's figures for `GET /api/jobs/stats` and the queue gauges of `/metrics`: depth
//! (waiting, in flight, dead) read from the queue, counters of this instance (processed,
//! failed, dead-lettered since it started), and their rates per minute over the last 1 and 5
//! minutes from a small window of samples taken every [`SAMPLE_EVERY`].

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus::core::Collector;
use queue::{DeadLetters, JobQueue, QueueError};
use serde::Serialize;
use slog::Logger;

use crate::metrics::WorkerMetrics;

/// How often the gauges are refreshed and the counters sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// The longest rate window.
const LONGEST_WINDOW: Duration = Duration::from_secs(300);

/// The name of this process among the worker's replicas: `<hostname>-<pid>` (a container's
/// hostname is its own), or a random id made at start when the host has no name to read.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        format!("worker-{}", uuid::Uuid::new_v4().simple())
    } else {
        format!("{host}-{}", std::process::id())
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    processed: u64,
    failed: u64,
}

/// A job queue's figures (docs/contracts.md, "Jobs API").
#[derive(Debug, Clone, Serialize)]
pub struct QueueFigures {
    /// The job queue's name.
    pub queue: String,
    /// This worker instance ([`instance_name`]): `processed`, `failed`, `dead_lettered`, the
    /// rates and RabbitMQ's `in_flight` are its own.
    pub instance: String,
    /// `amqp` or `embedded`.
    pub backend: &'static str,
    /// Jobs waiting to be delivered (embedded: retries waiting for their delay included).
    pub waiting: u64,
    /// Jobs delivered and not settled: the embedded queue's leases (every worker's); on
    /// RabbitMQ this instance's jobs being handled.
    pub in_flight: u64,
    /// `queue` (in_flight counts every worker) or `instance` (this one only).
    pub in_flight_scope: &'static str,
    /// Dead letters (RabbitMQ: stored ones and those not drained yet).
    pub dead: u64,
    /// Jobs done by this instance since it started.
    pub processed: u64,
    /// Failed attempts of this instance since it started (each retry and each dead letter
    /// after a failure).
    pub failed: u64,
    /// Jobs this instance dead-lettered since it started (malformed ones included).
    pub dead_lettered: u64,
    /// When this instance started (RFC 3339).
    pub since: String,
    /// Processed and failed per minute.
    pub rates: Rates,
}

/// Per-minute rates of this instance.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rates {
    /// Jobs done per minute.
    pub processed_per_minute: Window,
    /// Failed attempts per minute.
    pub failed_per_minute: Window,
}

/// A rate over the last minute and the last five (over the time since start when shorter).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Window {
    /// Over the last minute.
    pub last_1m: f64,
    /// Over the last five minutes.
    pub last_5m: f64,
}

/// The figures' sources and the samples' window (cheap to clone).
#[derive(Clone)]
pub struct QueueStats {
    inner: Arc<Inner>,
}

struct Inner {
    queue: JobQueue,
    dead: DeadLetters,
    metrics: WorkerMetrics,
    since: String,
    instance: String,
    samples: Mutex<VecDeque<Sample>>,
    logger: Logger,
}

impl QueueStats {
    /// Figures of `queue`, its dead letters and `metrics`' counters, from now.
    pub fn new(queue: JobQueue, dead: DeadLetters, metrics: WorkerMetrics, logger: Logger) -> Self {
        let stats = Self {
            inner: Arc::new(Inner {
                queue,
                dead,
                metrics,
                since: db::timestamp_now(),
                instance: instance_name(),
                samples: Mutex::new(VecDeque::new()),
                logger,
            }),
        };
        stats.sample();
        stats
    }

    /// The counters now.
    fn counters(&self) -> Sample {
        let metrics = &self.inner.metrics;
        let sum = |counter: &prometheus::IntCounterVec| -> u64 {
            crate::metrics::KINDS
                .iter()
                .map(|kind| counter.with_label_values(&[*kind]).get())
                .sum()
        };
        Sample {
            at: Instant::now(),
            processed: sum(&metrics.processed),
            failed: sum(&metrics.failed),
        }
    }

    /// Records the counters now; forgets samples older than the longest window needs.
    fn sample(&self) {
        let now = self.counters();
        let mut samples = self
            .inner
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while samples.len() > 1
            && samples
                .get(1)
                .is_some_and(|next| now.at.duration_since(next.at) >= LONGEST_WINDOW)
        {
            samples.pop_front();
        }
        samples.push_back(now);
    }

    /// Rates per minute from the samples to `now`.
    fn rates(&self, now: Sample) -> Rates {
        let samples = self
            .inner
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let over = |window: Duration, value: fn(&Sample) -> u64| -> f64 {
            // The oldest sample within the window (the oldest of all when the instance is
            // younger than the window).
            let Some(from) = samples
                .iter()
                .find(|sample| now.at.duration_since(sample.at) <= window)
                .or_else(|| samples.front())
            else {
                return 0.0;
            };
            let minutes = now.at.duration_since(from.at).as_secs_f64() / 60.0;
            if minutes <= 0.0 {
                return 0.0;
            }
            value(&now).saturating_sub(value(from)) as f64 / minutes
        };
        let window = |value: fn(&Sample) -> u64| Window {
            last_1m: over(Duration::from_secs(60), value),
            last_5m: over(LONGEST_WINDOW, value),
        };
        Rates {
            processed_per_minute: window(|sample| sample.processed),
            failed_per_minute: window(|sample| sample.failed),
        }
    }

    /// The figures now; sets the gauges to them.
    pub async fn figures(&self) -> Result<QueueFigures, QueueError> {
        let inner = &self.inner;
        let depth = inner.queue.depth().await?;
        let leased = inner.queue.leased().await?;
        let dead = inner.dead.total(&depth).await?;
        let (waiting, in_flight, in_flight_scope) = match leased {
            Some(leased) => (depth.ready.saturating_sub(leased), leased, "queue"),
            None => (
                depth.ready,
                u64::try_from(inner.metrics.in_flight.get()).unwrap_or(0),
                "instance",
            ),
        };
        let name = inner.dead.queue_name().to_owned();
        let gauges = &inner.metrics.queue;
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        gauges.ready.with_label_values(&[&name]).set(gauge(waiting));
        gauges
            .in_flight
            .with_label_values(&[&name])
            .set(gauge(in_flight));
        gauges.dead.with_label_values(&[&name]).set(gauge(dead));
        let now = self.counters();
        let dead_lettered = inner
            .metrics
            .dead_lettered
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|metric| metric.get_counter().get_value() as u64)
            .sum();
        Ok(QueueFigures {
            queue: name,
            instance: inner.instance.clone(),
            backend: inner.queue.kind(),
            waiting,
            in_flight,
            in_flight_scope,
            dead,
            processed: now.processed,
            failed: now.failed,
            dead_lettered,
            since: inner.since.clone(),
            rates: self.rates(now),
        })
    }

    /// Every [`SAMPLE_EVERY`]: samples the counters and refreshes the gauges (until dropped).
    pub async fn run(self) {
        let mut ticks = tokio::time::interval(SAMPLE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.sample();
            if let Err(error) = self.figures().await {
                slog::warn!(self.inner.logger, "reading the queue's depth failed";
                    "error" => error.to_string());
            }
        }
    }
}
