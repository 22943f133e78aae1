//! The seed's bare `{"task"}` messages through the worker on every queue: a `task` job keyed by
//! its `message_id` (run once, retried under the same key); bare objects without a text `task`
//! are dead-lettered as malformed.

use std::time::Duration;

use worker::message::bare_job_id;

use crate::{
    helpers::{Broker, TestBroker, eventually, quick, spawn_worker},
    on_every_broker,
};

on_every_broker!(bare_seed_messages_are_task_jobs_and_other_bare_objects_dead_letters);

async fn bare_seed_messages_are_task_jobs_and_other_bare_objects_dead_letters(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    let seed = br#"{"id":1,"task":"Tarea 1","timestamp":"2026-12-04T06:00:00.000Z"}"#;
    let failing = br#"{"id":3,"task":"Tarea 3","fail_attempts":1}"#;
    let published: [(&[u8], &str); 5] = [
        (seed, "seed-1"),
        (seed, "seed-1"),
        (failing, "seed-3"),
        (br#"{"id":4,"task":4}"#, "seed-4"),
        (br#"{"id":5,"name":"Tarea 5"}"#, "seed-5"),
    ];
    for (body, message_id) in published {
        broker
            .queue
            .publish_raw(body, message_id, None)
            .await
            .expect("published");
    }

    let letters = broker.dead_letters(2).await;
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
        errors[1].contains("malformed message (not a job envelope)"),
        "{errors:?}"
    );
    eventually(
        "Tarea 1 once (its copy a duplicate), Tarea 3 after a retry",
        Duration::from_secs(20),
        || async {
            worker.repository.task_run_totals().await.expect("totals") == (2, 2)
                && worker
                    .metric("worker_jobs_duplicate_total", &[("kind", "task")])
                    .await
                    == 1.0
        },
    )
    .await;
    for (body, message_id) in [(&seed[..], "seed-1"), (&failing[..], "seed-3")] {
        let id = bare_job_id(body, Some(message_id));
        assert_eq!(worker.repository.task_runs(id).await.expect("runs"), 1);
    }
    assert_eq!(
        worker
            .metric("worker_jobs_retried_total", &[("kind", "task")])
            .await,
        1.0
    );
    worker.stop().await;
    broker.cleanup().await;
}
