//! `worker produce`: publishes `--count` jobs, each confirmed by the broker
//! (or committed, embedded) before its id is printed on its own line of stdout.
//!
//! On a terminal (stderr is one) a progress bar on stderr counts the confirmed jobs; elsewhere
//! (piped, a file, CI) there is no bar. Either way the last line on stderr is the summary:
//! `published <n> jobs in <s> s (<rate> jobs/s)`, timed from the first publish to the last
//! confirm.

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use queue::{JobQueue, QueueArgs};
use slog::Logger;

use crate::config::ProduceArgs;

/// How long ids wait before they are written above a bar sharing their terminal: each write
/// clears and redraws the bar, so they go in batches.
const ID_BATCH_DELAY: Duration = Duration::from_millis(100);

/// The default `task` payload, a bare task message:
/// `{"id": n, "task": "Tarea n", "timestamp": "…"}`.
pub fn bare_task(n: u32) -> serde_json::Value {
    serde_json::json!({
        "id": n,
        "task": format!("Tarea {n}"),
        "timestamp": db::timestamp_now(),
    })
}

/// Publishes the jobs, printing each id once confirmed; fails at the first job not confirmed.
pub async fn produce(
    queue_args: &QueueArgs,
    args: &ProduceArgs,
    logger: Logger,
) -> anyhow::Result<()> {
    let payload_for = |n: u32| -> anyhow::Result<serde_json::Value> {
        match (&args.payload, args.kind.as_str()) {
            (Some(payload), _) => Ok(payload.clone()),
            (None, "task") => Ok(bare_task(n)),
            (None, kind) => anyhow::bail!("--payload is required for jobs of kind {kind:?}"),
        }
    };
    payload_for(1)?;
    let queue = JobQueue::connect(queue_args, logger.clone()).await?;
    let publishes = stream::iter(1..=args.count)
        .map(|n| {
            let queue = queue.clone();
            let payload = payload_for(n);
            let kind = args.kind.clone();
            async move {
                queue
                    .enqueue(&kind, payload?, None)
                    .await
                    .map_err(anyhow::Error::from)
            }
        })
        .buffered(usize::try_from(args.in_flight).unwrap_or(1));
    tokio::pin!(publishes);
    let mut progress = Progress::start(args.count);
    let mut sent = 0_u32;
    while let Some(result) = publishes.next().await {
        let id = match result {
            Ok(id) => id,
            Err(error) => {
                progress.abandon()?;
                return Err(error)
                    .with_context(|| format!("publishing job {} of {}", sent + 1, args.count));
            }
        };
        progress.confirmed(&id)?;
        sent += 1;
    }
    let summary = progress.finish(sent)?;
    slog::info!(logger, "jobs published"; "count" => sent, "kind" => &args.kind,
        "queue" => &queue_args.queue, "backend" => queue.kind(),
        "elapsed_ms" => summary.elapsed.as_millis(), "jobs_per_second" => summary.rate());
    queue.close().await;
    Ok(())
}

/// The ids on stdout, the bar (on a terminal) and the clock of one `produce`.
struct Progress {
    /// Hidden unless stderr is a terminal.
    bar: ProgressBar,
    /// Whether ids go above the bar in batches: the bar is shown and stdout is a terminal too.
    batched: bool,
    /// Ids not yet written (batched only).
    pending: String,
    /// When `pending` was last written.
    written_at: Instant,
    /// When publishing began.
    started: Instant,
}

/// How many jobs went out in how long.
struct Summary {
    /// Jobs confirmed.
    count: u32,
    /// From the first publish to the last confirm.
    elapsed: Duration,
}

impl Summary {
    /// Jobs per second (0 when no time passed).
    fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            f64::from(self.count) / seconds
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "published {} jobs in {:.3} s ({:.0} jobs/s)",
            self.count,
            self.elapsed.as_secs_f64(),
            self.rate()
        )
    }
}

impl Progress {
    /// Starts the clock, and the bar when stderr is a terminal.
    fn start(count: u32) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(u64::from(count)), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{wide_bar} {human_pos}/{human_len} jobs confirmed, {per_sec:0}, {eta} left",
                )
                .expect("a valid template"),
            );
            bar.tick();
            bar
        } else {
            ProgressBar::hidden()
        };
        let batched = !bar.is_hidden() && std::io::stdout().is_terminal();
        let now = Instant::now();
        Self {
            bar,
            batched,
            pending: String::new(),
            written_at: now,
            started: now,
        }
    }

    /// A job confirmed: its id goes to stdout (batched above the bar on a shared terminal).
    fn confirmed(&mut self, id: &uuid::Uuid) -> std::io::Result<()> {
        self.bar.inc(1);
        if self.batched {
            self.pending.push_str(&format!("{id}\n"));
            if self.written_at.elapsed() >= ID_BATCH_DELAY {
                self.write_pending()?;
            }
            Ok(())
        } else {
            writeln!(std::io::stdout().lock(), "{id}")
        }
    }

    /// Writes the batched ids, the bar cleared meanwhile.
    fn write_pending(&mut self) -> std::io::Result<()> {
        self.written_at = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.bar.suspend(|| {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(pending.as_bytes())?;
            stdout.flush()
        })
    }

    /// A job failed: the ids confirmed so far are written and the bar stays where it stopped.
    fn abandon(&mut self) -> std::io::Result<()> {
        self.write_pending()?;
        self.bar.abandon();
        Ok(())
    }

    /// All confirmed: the last ids, the bar cleared, the summary line on stderr.
    fn finish(mut self, count: u32) -> std::io::Result<Summary> {
        let elapsed = self.started.elapsed();
        self.write_pending()?;
        std::io::stdout().lock().flush()?;
        self.bar.finish_and_clear();
        let summary = Summary { count, elapsed };
        writeln!(std::io::stderr().lock(), "{summary}")?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_jobs_the_time_and_the_rate() {
        let summary = Summary {
            count: 5000,
            elapsed: Duration::from_millis(2500),
        };
        assert_eq!(
            summary.to_string(),
            "published 5000 jobs in 2.500 s (2000 jobs/s)"
        );
        let instant = Summary {
            count: 1,
            elapsed: Duration::ZERO,
        };
        assert_eq!(instant.rate(), 0.0);
    }
}
