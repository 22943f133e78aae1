//! The flags and environment variables of `worker` (docs/contracts.md's, plus the worker's own).

use std::{path::Path, time::Duration};

use queue::QueueArgs;
use runtime::CommonArgs;
use store::StoreArgs;

/// `worker` (consume) and `worker produce`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "worker",
    version,
    about = "The platform's job worker (health and metrics on port 3006); `worker produce` publishes jobs"
)]
pub struct Config {
    /// What every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The job queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// The object store thumbnails are read from and written to.
    #[command(flatten)]
    pub store: StoreArgs,
    /// How jobs are consumed.
    #[command(flatten)]
    pub processing: ProcessingArgs,
    /// Thumbnails' memory budget, image cap and orphan sweep.
    #[command(flatten)]
    pub thumbnails: ThumbnailArgs,
    /// `produce`; none: consume.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Publish jobs with publisher confirms, printing each job's id
    Produce(ProduceArgs),
}

/// `worker produce`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProduceArgs {
    /// How many jobs
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub count: u32,
    /// The job kind
    #[arg(long, default_value = "task")]
    pub kind: String,
    /// The payload (JSON) of every job; default for `task`: a bare `{id, task, timestamp}`
    #[arg(long, value_parser = parse_json)]
    pub payload: Option<serde_json::Value>,
    /// Publishes awaiting their confirms at once (1: one after the other)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub in_flight: u32,
}

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))
}

/// How jobs are consumed and retried.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct ProcessingArgs {
    /// Deliveries received before any is acked (1 is fair between workers; larger
    /// is much faster: 50–250 for short jobs)
    #[arg(long, env = "WORKER_PREFETCH", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Jobs processed at once (at most the prefetch with RabbitMQ)
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Attempts of a failing job before it goes to the dead letters
    #[arg(long, env = "WORKER_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Deliveries of one job before it goes to the dead letters unrun: a job whose handling
    /// kills the worker (out of memory, a crash) is delivered again each time; the next
    /// delivery after this many sets it aside
    #[arg(long, env = "WORKER_MAX_DELIVERIES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_deliveries: u32,
    /// Delay before the first retry, in milliseconds; each next one is 5 times longer (1 s, 5 s,
    /// 25 s, …), ±20 % jitter, at most an hour
    #[arg(long, env = "WORKER_RETRY_BASE_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub retry_base_ms: u64,
    /// Embedded queue: seconds a delivery is leased; unsettled after that (its worker died),
    /// it is delivered again. Running jobs extend their lease every third of it
    #[arg(long, env = "WORKER_LEASE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lease_secs: u64,
    /// Embedded queue: how often an idle worker looks for new jobs, in milliseconds
    #[arg(long, env = "WORKER_POLL_MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub poll_ms: u64,
    /// On SIGTERM: seconds in-flight jobs may take to finish; the rest go back to the queue
    #[arg(long, env = "WORKER_SHUTDOWN_TIMEOUT_SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub shutdown_timeout_secs: u64,
}

impl Default for ProcessingArgs {
    fn default() -> Self {
        Self {
            prefetch: 1,
            concurrency: 1,
            max_attempts: 5,
            max_deliveries: 5,
            retry_base_ms: 1000,
            lease_secs: 60,
            poll_ms: 200,
            shutdown_timeout_secs: 20,
        }
    }
}

impl ProcessingArgs {
    /// The delay before retrying a job whose attempt `attempt` failed: base × 5^(attempt−1),
    /// ±20 % jitter (`unit` in `[0, 1)`), at most an hour.
    pub fn retry_delay(&self, attempt: u32, unit: f64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1).min(20)).unwrap_or(20);
        let base = self.retry_base_ms as f64 * 5_f64.powi(exponent);
        let jittered = base * (0.8 + 0.4 * unit);
        Duration::from_millis(jittered.min(3_600_000.0) as u64)
    }

    /// In-flight jobs' bound at shutdown.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

/// How thumbnails are made: the memory every decode of the process shares, the largest image,
/// and how often thumbnails of deleted media are looked for.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct ThumbnailArgs {
    /// MiB that the images being decoded at once may take in all (the encoded file, its
    /// pixels and the decoder's own buffers, estimated from the header before decoding); an
    /// image waits until its share is free, and one that alone needs more is dead-lettered
    #[arg(long, env = "WORKER_DECODE_MEMORY_MB", default_value_t = 128, value_parser = clap::value_parser!(u64).range(8..=65_536))]
    pub decode_memory_mb: u64,
    /// The largest image decoded, in pixels (width × height, read from the header); a larger
    /// one is dead-lettered with the reason
    #[arg(long, env = "WORKER_MAX_IMAGE_PIXELS", default_value_t = 24_000_000, value_parser = clap::value_parser!(u64).range(1..=400_000_000))]
    pub max_image_pixels: u64,
    /// Seconds between sweeps for thumbnails written for media deleted meanwhile (one also
    /// runs at start)
    #[arg(long, env = "WORKER_ORPHAN_SWEEP_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub orphan_sweep_secs: u64,
}

impl Default for ThumbnailArgs {
    fn default() -> Self {
        Self {
            decode_memory_mb: 128,
            max_image_pixels: 24_000_000,
            orphan_sweep_secs: 600,
        }
    }
}

impl ThumbnailArgs {
    /// The decode budget in bytes.
    pub fn decode_memory_bytes(&self) -> u64 {
        self.decode_memory_mb.saturating_mul(1 << 20)
    }
}

/// Everything a worker instance needs beyond [`server::ServiceSettings`]: built from
/// the flags with `From<&Config>`, or [`Settings::embedded`] for the stack and the tests.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The job queue.
    pub queue: QueueArgs,
    /// The object store.
    pub store: StoreArgs,
    /// Consumption and retries.
    pub processing: ProcessingArgs,
    /// Thumbnails.
    pub thumbnails: ThumbnailArgs,
}

/// The settings the flags give.
impl From<&Config> for Settings {
    fn from(config: &Config) -> Self {
        Self {
            queue: config.queue.clone(),
            store: config.store.clone(),
            processing: config.processing,
            thumbnails: config.thumbnails,
        }
    }
}

impl Settings {
    /// The embedded queue and fs store under `data_dir` (the stack, tests).
    pub fn embedded(data_dir: &Path) -> Self {
        Self {
            queue: QueueArgs::embedded(data_dir),
            store: StoreArgs::embedded(data_dir),
            processing: ProcessingArgs::default(),
            thumbnails: ThumbnailArgs::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_five_fold_with_bounded_jitter() {
        let args = ProcessingArgs::default();
        assert_eq!(args.retry_delay(1, 0.5), Duration::from_millis(1000));
        assert_eq!(args.retry_delay(2, 0.5), Duration::from_millis(5000));
        assert_eq!(args.retry_delay(3, 0.5), Duration::from_millis(25_000));
        assert_eq!(args.retry_delay(1, 0.0), Duration::from_millis(800));
        assert!(args.retry_delay(1, 0.999_999) < Duration::from_millis(1200));
        assert_eq!(args.retry_delay(40, 0.5), Duration::from_secs(3600));
    }

    #[test]
    fn a_bad_prefetch_is_refused() {
        use clap::Parser;
        assert!(Config::try_parse_from(["worker", "--prefetch", "0"]).is_err());
        assert!(Config::try_parse_from(["worker", "--amqp-url", "http://rabbit"]).is_err());
        assert!(Config::try_parse_from(["worker", "--max-attempts", "0"]).is_err());
        let config = Config::try_parse_from(["worker", "produce", "--count", "3"]).expect("parses");
        assert!(matches!(
            config.command,
            Some(Command::Produce(ProduceArgs { count: 3, .. }))
        ));
    }
}
