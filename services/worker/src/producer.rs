//! `worker produce`: publishes `--count` jobs, each confirmed by the broker
//! (or committed, embedded) before its id is printed on its own line of stdout.

use std::io::Write;

use anyhow::Context;
use futures_util::{StreamExt, stream};
use queue::{JobQueue, QueueArgs};
use slog::Logger;

use crate::config::ProduceArgs;

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
    let mut stdout = std::io::stdout().lock();
    let mut sent = 0_u32;
    while let Some(result) = publishes.next().await {
        let id =
            result.with_context(|| format!("publishing job {} of {}", sent + 1, args.count))?;
        writeln!(stdout, "{id}")?;
        sent += 1;
    }
    stdout.flush()?;
    drop(stdout);
    slog::info!(logger, "jobs published"; "count" => sent, "kind" => &args.kind,
        "queue" => &queue_args.queue, "backend" => queue.kind());
    queue.close().await;
    Ok(())
}
