//! Crashes, SIGTERM and broker outages: no job lost, none done twice.

use std::time::{Duration, Instant};

use queue::{EnqueueError, JobQueue, QueueArgs};
use worker::config::ProcessingArgs;

use crate::{
    helpers::{
        Broker, ChaosProxy, TestBroker, WorkerProcess, eventually, quick, spawn_worker,
        spawn_worker_with, task, worker_settings,
    },
    on_every_broker,
};

on_every_broker!(
    a_job_in_flight_when_its_worker_is_killed_is_delivered_again,
    a_worker_killed_mid_run_loses_no_job_and_repeats_none,
    sigterm_finishes_in_flight_jobs_and_exits_zero,
    in_flight_jobs_past_the_shutdown_bound_go_back_to_the_queue,
    a_job_that_kills_its_worker_each_time_is_dead_lettered_after_max_deliveries,
);

async fn a_job_in_flight_when_its_worker_is_killed_is_delivered_again(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let id = broker
        .queue
        .enqueue("task", task("interrupted", 1500, 0), None)
        .await
        .expect("enqueued");
    // A 2 s lease: the embedded queue delivers the job again 2 s after the crash; RabbitMQ as
    // soon as the dead process's connection is gone.
    let process = WorkerProcess::start(&broker, &[("WORKER_LEASE_SECS", "2")]).await;
    eventually("the job is in flight", Duration::from_secs(20), || async {
        process.metric("worker_jobs_in_flight", &[]).await == 1.0
    })
    .await;
    process.crash();
    let worker = spawn_worker(&broker, quick()).await;
    eventually(
        "the job is redelivered and processed",
        Duration::from_secs(20),
        || async { worker.repository.task_runs(id).await.expect("runs") == 1 },
    )
    .await;
    // The effect is committed before the ack and the counter: wait for those to follow.
    eventually("the job counted", Duration::from_secs(10), || async {
        worker
            .metric("worker_jobs_processed_total", &[("kind", "task")])
            .await
            == 1.0
    })
    .await;
    worker.stop().await;
    let depth = broker.queue.depth().await.expect("depth");
    assert_eq!((depth.ready, depth.dead), (0, 0));
    broker.cleanup().await;
}

async fn a_worker_killed_mid_run_loses_no_job_and_repeats_none(kind: Broker) {
    const JOBS: i64 = 300;
    let broker = TestBroker::new(kind).await;
    for n in 0..JOBS {
        broker
            .queue
            .enqueue("task", task(&format!("job {n}"), 10, 0), None)
            .await
            .expect("enqueued");
    }
    let process = WorkerProcess::start(
        &broker,
        &[
            ("WORKER_PREFETCH", "20"),
            ("WORKER_CONCURRENCY", "4"),
            ("WORKER_LEASE_SECS", "2"),
        ],
    )
    .await;
    eventually(
        "the first worker is half-way",
        Duration::from_secs(30),
        || async {
            process
                .metric("worker_jobs_processed_total", &[("kind", "task")])
                .await
                >= 50.0
        },
    )
    .await;
    process.crash();
    let worker = spawn_worker(&broker, quick()).await;
    let done_by_the_first = worker.repository.task_run_totals().await.expect("totals").0;
    assert!(
        done_by_the_first < JOBS,
        "the crash came too late to test anything"
    );
    eventually("every job done", Duration::from_secs(30), || async {
        worker.repository.task_run_totals().await.expect("totals").0 >= JOBS
    })
    .await;
    assert_eq!(
        worker.repository.task_run_totals().await.expect("totals"),
        (JOBS, JOBS),
        "none lost, none done twice"
    );
    // Copies the killed worker had taken come back once their lease runs out; each is a job
    // already done, acknowledged without running again (the totals above stay put).
    eventually("the queue drained", Duration::from_secs(30), || async {
        let depth = broker.queue.depth().await.expect("depth");
        (depth.ready, depth.dead) == (0, 0)
    })
    .await;
    assert_eq!(
        worker.repository.task_run_totals().await.expect("totals"),
        (JOBS, JOBS),
        "redelivered copies ran nothing again"
    );
    worker.stop().await;
    broker.cleanup().await;
}

async fn sigterm_finishes_in_flight_jobs_and_exits_zero(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(
            broker
                .queue
                .enqueue("task", task(&format!("slow {n}"), 1000, 0), None)
                .await
                .expect("enqueued"),
        );
    }
    let process = WorkerProcess::start(
        &broker,
        &[
            ("WORKER_PREFETCH", "2"),
            ("WORKER_CONCURRENCY", "2"),
            ("WORKER_SHUTDOWN_TIMEOUT_SECS", "10"),
            ("WORKER_LEASE_SECS", "60"),
        ],
    )
    .await;
    eventually("two jobs in flight", Duration::from_secs(20), || async {
        process.metric("worker_jobs_in_flight", &[]).await == 2.0
    })
    .await;
    process.terminate();
    let started = Instant::now();
    assert_eq!(process.wait(Duration::from_secs(15)).await, Some(0));
    assert!(started.elapsed() < Duration::from_secs(10));
    // The two in flight were finished before the exit; the others went back to the queue at
    // once (not after a 60 s lease) and a new worker does them.
    let worker = spawn_worker(&broker, quick()).await;
    let finished_before_exit = worker.repository.task_run_totals().await.expect("totals").0;
    assert!(finished_before_exit >= 2, "{finished_before_exit} finished");
    eventually("all four done", Duration::from_secs(15), || async {
        worker.repository.task_run_totals().await.expect("totals") == (4, 4)
    })
    .await;
    for id in ids {
        assert_eq!(worker.repository.task_runs(id).await.expect("runs"), 1);
    }
    worker.stop().await;
    broker.cleanup().await;
}

async fn in_flight_jobs_past_the_shutdown_bound_go_back_to_the_queue(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let id = broker
        .queue
        .enqueue("task", task("too slow", 4000, 0), None)
        .await
        .expect("enqueued");
    let process = WorkerProcess::start(
        &broker,
        &[
            ("WORKER_SHUTDOWN_TIMEOUT_SECS", "0"),
            ("WORKER_LEASE_SECS", "120"),
        ],
    )
    .await;
    eventually("the job is in flight", Duration::from_secs(20), || async {
        process.metric("worker_jobs_in_flight", &[]).await == 1.0
    })
    .await;
    process.terminate();
    let started = Instant::now();
    assert_eq!(process.wait(Duration::from_secs(10)).await, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the bound was not kept"
    );
    let worker = spawn_worker(&broker, quick()).await;
    assert_eq!(worker.repository.task_runs(id).await.expect("runs"), 0);
    // Handed back at once: well before the 120 s lease would have expired.
    eventually(
        "the abandoned job is done by the next worker",
        Duration::from_secs(20),
        || async { worker.repository.task_runs(id).await.expect("runs") == 1 },
    )
    .await;
    worker.stop().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_and_producers_recover_from_broker_outages_losing_nothing() {
    testing::skip_unless!(RabbitMq);
    let broker = TestBroker::new(Broker::RabbitMq).await;
    let proxy = ChaosProxy::start("127.0.0.1:5672").await;
    let through_proxy = QueueArgs {
        amqp_url: Some(proxy.url()),
        ..broker.args.clone()
    };
    let mut settings = worker_settings(
        &broker,
        ProcessingArgs {
            prefetch: 20,
            concurrency: 4,
            ..quick()
        },
    );
    settings.queue = through_proxy.clone();
    let worker = spawn_worker_with(settings, &broker).await;
    let producer = JobQueue::connect(&through_proxy, runtime::test_logger("producer"))
        .await
        .expect("a producer through the proxy");
    let mut ids = Vec::new();
    for round in 0..3 {
        for n in 0..50 {
            ids.push(
                producer
                    .enqueue("task", task(&format!("round {round} job {n}"), 5, 0), None)
                    .await
                    .expect("confirmed, after reconnecting when needed"),
            );
        }
        // Publishing during an outage waits for the broker, then succeeds.
        let during = {
            let producer = producer.clone();
            tokio::spawn(async move {
                producer
                    .enqueue(
                        "task",
                        super::helpers::task("during the outage", 0, 0),
                        None,
                    )
                    .await
            })
        };
        proxy.outage(Duration::from_millis(700)).await;
        ids.push(
            during
                .await
                .expect("the publish task")
                .expect("confirmed after the outage"),
        );
    }
    let total = ids.len() as i64;
    eventually(
        "every job processed after the outages",
        Duration::from_secs(60),
        || async { worker.repository.task_run_totals().await.expect("totals").0 >= total },
    )
    .await;
    assert_eq!(
        worker.repository.task_run_totals().await.expect("totals"),
        (total, total),
        "none lost, none done twice"
    );
    let ready = worker.service.get("/readyz").await;
    assert_eq!(ready.status(), 200, "ready again after the outages");
    producer.close().await;
    worker.stop().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_publish_is_an_error_not_a_silent_drop() {
    testing::skip_unless!(RabbitMq);
    let broker = TestBroker::new(Broker::RabbitMq).await;
    broker.queue.check().await.expect("connected");
    broker
        .queue
        .delete_topology()
        .await
        .expect("queues deleted");
    let result = broker
        .queue
        .enqueue("task", task("lost?", 0, 0), None)
        .await;
    assert!(
        matches!(result, Err(EnqueueError::Rejected(ref message)) if message.contains("no queue")),
        "{result:?}"
    );
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_a_broker_that_is_down_fails_after_retries() {
    let args = QueueArgs::amqp("amqp://guest:guest@127.0.0.1:1/%2f");
    let queue = JobQueue::connect(&args, runtime::test_logger("producer"))
        .await
        .expect("connecting does not fail: the broker may come back");
    let started = Instant::now();
    let result = queue.enqueue("task", task("nowhere", 0, 0), None).await;
    assert!(
        matches!(result, Err(EnqueueError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "retried with backoff first"
    );
    assert!(queue.check().await.is_err());
}

/// A job longer than the lease keeps it (the worker extends it): no second worker starts it.
async fn a_job_longer_than_its_lease_is_not_delivered_twice(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    // A 3 s lease, extended every second: only a stall of 2 s loses it. The job lasts over
    // two leases, so it is still running when an unextended lease would have run out, twice.
    let short_lease = ProcessingArgs {
        lease_secs: 3,
        ..quick()
    };
    let first = spawn_worker(&broker, short_lease).await;
    let second = spawn_worker(&broker, short_lease).await;
    let job_ms = 7000;
    let job_time = Duration::from_millis(job_ms);
    let enqueued_at = tokio::time::Instant::now();
    let id = broker
        .queue
        .enqueue("task", task("longer than the lease", job_ms, 0), None)
        .await
        .expect("enqueued");
    eventually("the long job done", Duration::from_secs(20), || async {
        first.repository.task_runs(id).await.expect("runs") == 1
    })
    .await;
    // A lost lease would hand the job to the other worker about a lease after it started, and
    // that copy would end a job's time later: watch until then, with a margin.
    tokio::time::sleep_until(enqueued_at + job_time * 2 + Duration::from_secs(2)).await;
    let handled = || async {
        let mut received = 0.0;
        let mut duplicates = 0.0;
        for worker in [&first, &second] {
            received += worker
                .metric("worker_job_duration_seconds_count", &[("kind", "task")])
                .await;
            duplicates += worker.metric("worker_jobs_duplicate_total", &[]).await;
        }
        (received, duplicates)
    };
    eventually("nothing in flight", Duration::from_secs(10), || async {
        first.metric("worker_jobs_in_flight", &[]).await == 0.0
            && second.metric("worker_jobs_in_flight", &[]).await == 0.0
    })
    .await;
    assert_eq!(handled().await, (1.0, 0.0), "handled by one worker, once");
    first.stop().await;
    second.stop().await;
    broker.cleanup().await;
}

mod a_job_longer_than_its_lease_is_not_delivered_twice {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_sqlite() {
        super::a_job_longer_than_its_lease_is_not_delivered_twice(super::Broker::Embedded).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_postgres() {
        testing::skip_unless!(Postgres);
        super::a_job_longer_than_its_lease_is_not_delivered_twice(super::Broker::EmbeddedPostgres)
            .await
    }
}

async fn a_job_that_kills_its_worker_each_time_is_dead_lettered_after_max_deliveries(kind: Broker) {
    const MAX_DELIVERIES: u32 = 2;
    let broker = TestBroker::new(kind).await;
    // A job still running when its worker dies (killed for memory, say), every time.
    let poison = broker
        .queue
        .enqueue("task", task("poison", 60_000, 0), Some("req-poison"))
        .await
        .expect("enqueued");
    let max = MAX_DELIVERIES.to_string();
    for _ in 0..MAX_DELIVERIES {
        // A 1 s lease: the embedded queue delivers the job again 1 s after the crash.
        let process = WorkerProcess::start(
            &broker,
            &[("WORKER_LEASE_SECS", "1"), ("WORKER_MAX_DELIVERIES", &max)],
        )
        .await;
        eventually("the job is in flight", Duration::from_secs(20), || async {
            process.metric("worker_jobs_in_flight", &[]).await == 1.0
        })
        .await;
        process.crash();
    }
    let worker = spawn_worker(
        &broker,
        ProcessingArgs {
            max_deliveries: MAX_DELIVERIES,
            ..quick()
        },
    )
    .await;
    let letters = broker.dead_letters(1).await;
    let error = letters[0].error.as_deref().expect("a reason");
    assert!(
        error.contains("delivered 2 times") && error.contains("WORKER_MAX_DELIVERIES"),
        "{error}"
    );
    assert_eq!(letters[0].envelope().expect("the job").id, poison);
    assert_eq!(worker.repository.task_runs(poison).await.expect("runs"), 0);
    assert_eq!(
        worker
            .metric(
                "worker_jobs_dead_lettered_total",
                &[("kind", "task"), ("reason", "redelivered")]
            )
            .await,
        1.0
    );
    // The queue keeps working: the next job is done.
    let next = broker
        .queue
        .enqueue("task", task("after the poison", 0, 0), None)
        .await
        .expect("enqueued");
    eventually("the next job done", Duration::from_secs(20), || async {
        worker.repository.task_runs(next).await.expect("runs") == 1
    })
    .await;
    worker.stop().await;
    let depth = broker.queue.depth().await.expect("depth");
    assert_eq!((depth.ready, depth.dead), (0, 0));
    broker.cleanup().await;
}
