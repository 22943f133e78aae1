//! `worker produce`: the seed's producer, run as the binary.

use std::{process::Command, time::Duration};

use crate::{
    helpers::{Broker, TestBroker, eventually, free_port, quick, spawn_worker, worker_command},
    on_every_broker,
};

on_every_broker!(produce_publishes_confirmed_jobs_and_prints_their_ids);

/// `published <n> jobs in <s> s (<rate> jobs/s)`: its numbers, when `line` ends with such a
/// summary (on a terminal, after the codes that cleared the bar).
fn summary_numbers(line: &str) -> Option<(u32, f64, f64)> {
    let start = line.find("published ")?;
    let rest = line[start..].trim_end().strip_prefix("published ")?;
    let (count, rest) = rest.split_once(" jobs in ")?;
    let (seconds, rest) = rest.split_once(" s (")?;
    let rate = rest.strip_suffix(" jobs/s)")?;
    Some((
        count.parse().ok()?,
        seconds.parse().ok()?,
        rate.parse().ok()?,
    ))
}

#[tokio::test]
async fn produce_piped_prints_no_bar_and_ends_with_the_rate() {
    let broker = TestBroker::new(Broker::Embedded).await;
    let output = worker_command(&broker, free_port())
        .args(["produce", "--count", "20"])
        .output()
        .expect("running worker produce");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 stdout");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8 stderr");
    for stream in [&stdout, &stderr] {
        assert!(
            !stream.contains('\x1b'),
            "no terminal codes when piped: {stream:?}"
        );
        assert!(
            !stream.contains("jobs confirmed"),
            "no bar when piped: {stream:?}"
        );
    }
    let last = stderr.lines().last().unwrap_or_default();
    let (count, seconds, rate) =
        summary_numbers(last).unwrap_or_else(|| panic!("a summary line last: {stderr:?}"));
    assert_eq!(count, 20);
    assert!(seconds > 0.0 && rate > 0.0, "{last}");
    // The rate is the count over the time (printed to the millisecond, the rate to the job).
    let fastest = f64::from(count) / (seconds - 0.0005).max(f64::MIN_POSITIVE);
    let slowest = f64::from(count) / (seconds + 0.0005);
    assert!(
        rate >= slowest.floor() && rate <= fastest.ceil(),
        "{last}: between {slowest} and {fastest} jobs/s"
    );
    let ids = stdout
        .lines()
        .filter(|line| uuid::Uuid::parse_str(line.trim()).is_ok())
        .count();
    assert_eq!(ids, 20, "the ids stay alone on stdout: {stdout}");
    broker.cleanup().await;
}

#[tokio::test]
async fn produce_on_a_terminal_draws_a_bar_then_the_rate() {
    let broker = TestBroker::new(Broker::Embedded).await;
    // `script` runs the binary on a pseudo-terminal (stdout and stderr both) and copies what
    // it wrote to its own stdout.
    let worker = worker_command(&broker, free_port());
    let mut command = Command::new("script");
    for (name, value) in worker.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let line = format!("{} produce --count 20", env!("CARGO_BIN_EXE_worker"));
    let output = command
        .env("TERM", "xterm-256color")
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running worker produce under script (util-linux)");
    let terminal = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(terminal.contains("jobs confirmed"), "a bar: {terminal:?}");
    assert!(
        terminal.contains('\x1b'),
        "drawn with terminal codes: {terminal:?}"
    );
    let summary = terminal
        .split(['\r', '\n'])
        .find_map(summary_numbers)
        .unwrap_or_else(|| panic!("a summary line: {terminal:?}"));
    assert_eq!(summary.0, 20);
    // Ids among the bar's codes: every 36-byte window that is a hyphenated UUID (a shifted
    // window's hyphens fall elsewhere, so each id counts once).
    let ids: std::collections::HashSet<uuid::Uuid> = terminal
        .as_bytes()
        .windows(36)
        .filter_map(|window| uuid::Uuid::try_parse_ascii(window).ok())
        .collect();
    assert_eq!(
        ids.len(),
        20,
        "every id printed above the bar: {terminal:?}"
    );
    assert_eq!(broker.queue.depth().await.expect("depth").ready, 20);
    broker.cleanup().await;
}

async fn produce_publishes_confirmed_jobs_and_prints_their_ids(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let output = worker_command(&broker, free_port())
        .args(["produce", "--count", "5"])
        .output()
        .expect("running worker produce");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let ids: Vec<uuid::Uuid> = stdout
        .lines()
        .filter_map(|line| uuid::Uuid::parse_str(line.trim()).ok())
        .collect();
    assert_eq!(ids.len(), 5, "{stdout}");
    // Confirmed: in the queue when the producer has exited.
    assert_eq!(broker.queue.depth().await.expect("depth").ready, 5);
    let worker = spawn_worker(&broker, quick()).await;
    eventually(
        "the five seed tasks processed",
        Duration::from_secs(20),
        || async { worker.repository.task_run_totals().await.expect("totals") == (5, 5) },
    )
    .await;
    for id in ids {
        assert_eq!(worker.repository.task_runs(id).await.expect("runs"), 1);
    }
    worker.stop().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn produce_fails_when_the_broker_is_down_and_prints_no_id() {
    let broker = TestBroker::new(Broker::Embedded).await;
    let output = worker_command(&broker, free_port())
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .args(["produce", "--count", "2"])
        .output()
        .expect("running worker produce");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout
            .lines()
            .any(|line| uuid::Uuid::parse_str(line.trim()).is_ok()),
        "{stdout}"
    );
    assert!(stdout.contains("unavailable"), "{stdout}");
    broker.cleanup().await;
}

#[tokio::test]
async fn produce_needs_a_payload_for_kinds_other_than_task() {
    let broker = TestBroker::new(Broker::Embedded).await;
    let output = worker_command(&broker, free_port())
        .args(["produce", "--count", "1", "--kind", "thumbnail"])
        .output()
        .expect("running worker produce");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("--payload is required"));
    let output = worker_command(&broker, free_port())
        .args(["produce", "--payload", "{not json"])
        .output()
        .expect("running worker produce");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not JSON"));
    broker.cleanup().await;
}
