//! Jobs through the queue: processed once, retried, dead-lettered, deduplicated.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use queue::Envelope;

use crate::{
    helpers::{Broker, TestBroker, eventually, quick, spawn_worker, task},
    on_every_broker,
};

on_every_broker!(
    published_tasks_are_processed_once_and_acked,
    a_failing_task_is_retried_with_growing_delays_then_succeeds,
    a_task_failing_every_attempt_is_dead_lettered_with_its_last_error,
    malformed_messages_are_dead_lettered_at_once,
    a_job_delivered_twice_has_its_effect_once,
);

async fn published_tasks_are_processed_once_and_acked(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(
            broker
                .queue
                .enqueue("task", task(&format!("Tarea {n}"), 0, 0), Some("req-abc"))
                .await
                .expect("enqueued"),
        );
    }
    eventually("20 tasks processed", Duration::from_secs(20), || async {
        worker.repository.task_run_totals().await.expect("totals") == (20, 20)
    })
    .await;
    for id in ids {
        assert_eq!(worker.repository.task_runs(id).await.expect("runs"), 1);
    }
    // The effect is committed before the ack and the counters: wait for those to follow.
    eventually(
        "20 counted, none in flight",
        Duration::from_secs(10),
        || async {
            worker
                .metric("worker_jobs_processed_total", &[("kind", "task")])
                .await
                == 20.0
                && worker.metric("worker_jobs_in_flight", &[]).await == 0.0
        },
    )
    .await;
    assert!(
        worker
            .metric("worker_job_duration_seconds_count", &[("kind", "task")])
            .await
            >= 20.0
    );
    worker.stop().await;
    // Stopped, the worker's unsettled deliveries are back in the queue: none may be.
    let depth = broker.queue.depth().await.expect("depth");
    assert_eq!((depth.ready, depth.dead), (0, 0), "every job acked");
    broker.cleanup().await;
}

async fn a_failing_task_is_retried_with_growing_delays_then_succeeds(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    let started = Instant::now();
    let id = broker
        .queue
        .enqueue("task", task("flaky", 0, 2), None)
        .await
        .expect("enqueued");
    eventually(
        "the flaky task succeeds on its third attempt",
        Duration::from_secs(20),
        || async { worker.repository.task_runs(id).await.expect("runs") == 1 },
    )
    .await;
    // Retry delays 50 ms then 250 ms, each at least 80 % of that.
    assert!(
        started.elapsed() >= Duration::from_millis(240),
        "retried too early: {:?}",
        started.elapsed()
    );
    assert_eq!(
        worker
            .metric("worker_jobs_retried_total", &[("kind", "task")])
            .await,
        2.0
    );
    assert_eq!(
        worker
            .metric("worker_jobs_failed_total", &[("kind", "task")])
            .await,
        2.0
    );
    // Counted after the effect's commit and the ack.
    eventually("the success counted", Duration::from_secs(10), || async {
        worker
            .metric("worker_jobs_processed_total", &[("kind", "task")])
            .await
            == 1.0
    })
    .await;
    assert_eq!(broker.queue.depth().await.expect("depth").dead, 0);
    worker.stop().await;
    broker.cleanup().await;
}

async fn a_task_failing_every_attempt_is_dead_lettered_with_its_last_error(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(
        &broker,
        worker::config::ProcessingArgs {
            max_attempts: 3,
            ..quick()
        },
    )
    .await;
    let id = broker
        .queue
        .enqueue("task", task("poison", 0, 100), Some("req-poison"))
        .await
        .expect("enqueued");
    let letters = broker.dead_letters(1).await;
    let envelope = letters[0].envelope().expect("the dead letter is the job");
    assert_eq!(envelope.id, id);
    assert_eq!(envelope.attempt, 3);
    assert_eq!(envelope.request_id.as_deref(), Some("req-poison"));
    let error = letters[0].error.as_deref().expect("the error is recorded");
    assert!(error.contains("failed after 3 attempts"), "{error}");
    assert!(error.contains("simulated failure of attempt 3"), "{error}");
    assert_eq!(worker.repository.task_runs(id).await.expect("runs"), 0);
    assert_eq!(
        worker
            .metric("worker_jobs_retried_total", &[("kind", "task")])
            .await,
        2.0
    );
    // Counted once the dead letter's publish is confirmed, a moment after it is readable.
    eventually(
        "the dead letter counted",
        Duration::from_secs(5),
        || async {
            worker
                .metric(
                    "worker_jobs_dead_lettered_total",
                    &[("kind", "task"), ("reason", "exhausted")],
                )
                .await
                == 1.0
        },
    )
    .await;
    assert_eq!(broker.queue.depth().await.expect("depth").ready, 0);
    worker.stop().await;
    broker.cleanup().await;
}

async fn malformed_messages_are_dead_lettered_at_once(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    broker
        .queue
        .publish_raw(b"this is not JSON", "raw-1", None)
        .await
        .expect("published");
    broker
        .queue
        .enqueue("launch_rockets", serde_json::json!({}), None)
        .await
        .expect("enqueued");
    broker
        .queue
        .enqueue("task", serde_json::json!({"id": 1}), None)
        .await
        .expect("enqueued");
    let letters = broker.dead_letters(3).await;
    let mut errors: Vec<String> = letters
        .iter()
        .map(|letter| letter.error.clone().expect("an error"))
        .collect();
    errors.sort();
    assert!(
        errors[0].contains("malformed job: invalid task payload"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("malformed job: unknown job kind \"launch_rockets\""),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("malformed message (not a job envelope)"),
        "{errors:?}"
    );
    assert!(
        letters
            .iter()
            .any(|letter| letter.body == b"this is not JSON"),
        "the raw body is kept"
    );
    assert_eq!(worker.metric("worker_jobs_retried_total", &[]).await, 0.0);
    eventually(
        "the dead letters counted",
        Duration::from_secs(5),
        || async {
            worker
                .metric(
                    "worker_jobs_dead_lettered_total",
                    &[("reason", "malformed")],
                )
                .await
                == 3.0
        },
    )
    .await;
    worker.stop().await;
    broker.cleanup().await;
}

async fn a_job_delivered_twice_has_its_effect_once(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    let envelope = Envelope::new("task", task("twice", 50, 0), None);
    broker.queue.publish(&envelope).await.expect("first copy");
    broker.queue.publish(&envelope).await.expect("second copy");
    worker
        .await_task_duplicates("both copies handled", 1.0)
        .await;
    assert_eq!(
        worker
            .repository
            .task_runs(envelope.id)
            .await
            .expect("runs"),
        1
    );
    eventually(
        "the copy with the effect counted",
        Duration::from_secs(10),
        || async {
            worker
                .metric("worker_jobs_processed_total", &[("kind", "task")])
                .await
                == 1.0
        },
    )
    .await;
    // Later copies (a redelivery after a lost ack) are recognised too.
    broker.queue.publish(&envelope).await.expect("third copy");
    worker
        .await_task_duplicates("the third copy handled", 2.0)
        .await;
    assert_eq!(
        worker
            .repository
            .task_runs(envelope.id)
            .await
            .expect("runs"),
        1
    );
    worker.stop().await;
    broker.cleanup().await;
}

/// 10 000 jobs published (with confirms) and processed, each effect exactly once.
async fn ten_thousand_jobs_are_each_processed_exactly_once(kind: Broker) {
    const JOBS: usize = 10_000;
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(
        &broker,
        worker::config::ProcessingArgs {
            prefetch: 200,
            concurrency: 16,
            ..quick()
        },
    )
    .await;
    let started = Instant::now();
    let published: Vec<_> = stream::iter(0..JOBS)
        .map(|n| {
            let queue = broker.queue.clone();
            async move {
                queue
                    .enqueue(
                        "task",
                        serde_json::json!({"id": n, "task": format!("Tarea {n}")}),
                        None,
                    )
                    .await
                    .expect("confirmed")
            }
        })
        .buffer_unordered(128)
        .collect()
        .await;
    assert_eq!(published.len(), JOBS);
    eventually(
        "10 000 tasks processed",
        Duration::from_secs(240),
        || async {
            let (total, _) = worker.repository.task_run_totals().await.expect("totals");
            total >= JOBS as i64
        },
    )
    .await;
    let elapsed = started.elapsed();
    let (total, distinct) = worker.repository.task_run_totals().await.expect("totals");
    assert_eq!(
        (total, distinct),
        (JOBS as i64, JOBS as i64),
        "each effect once"
    );
    eprintln!("{kind:?}: {JOBS} jobs published and processed in {elapsed:?}");
    // A job's effect commits before its ack: the last acks may still be on their way.
    eventually(
        "every job acked, none dead",
        Duration::from_secs(30),
        || async {
            let depth = broker.queue.depth().await.expect("depth");
            (depth.ready, depth.dead) == (0, 0)
        },
    )
    .await;
    worker.stop().await;
    broker.cleanup().await;
}

mod ten_thousand_jobs {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rabbitmq() {
        testing::skip_unless!(RabbitMq);
        super::ten_thousand_jobs_are_each_processed_exactly_once(super::Broker::RabbitMq).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_sqlite() {
        super::ten_thousand_jobs_are_each_processed_exactly_once(super::Broker::Embedded).await
    }
}
