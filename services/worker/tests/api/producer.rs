//! `worker produce`: the seed's producer, run as the binary.

use std::time::Duration;

use crate::{
    helpers::{Broker, TestBroker, eventually, free_port, quick, spawn_worker, worker_command},
    on_every_broker,
};

on_every_broker!(produce_publishes_confirmed_jobs_and_prints_their_ids);

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
