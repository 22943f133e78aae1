//! The seed's own RabbitMQ clients (tests/seed/seed_queue.js, the seed's example unchanged, run
//! with node and the pinned amqplib) against the platform: its producer's bare messages feed the
//! worker; its consumer handles what the platform's producer publishes.
//!
//! The seed hard-codes `amqp://localhost` and `tasks_queue`, so these tests use that broker and
//! the contract's queue names, one test at a time, and delete those queues before and after.
//! Without `tests/seed/node_modules` (`npm ci` there) they are skipped, except under `CI=true`,
//! where they fail.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use queue::{JobQueue, QueueArgs};
use runtime::test_logger;
use worker::message::bare_job_id;

use crate::helpers::{TestBroker, eventually, free_port, quick, spawn_worker, worker_command};

/// The broker the seed's code connects to (`amqp://localhost`, guest's default credentials).
const SEED_AMQP_URL: &str = "amqp://guest:guest@localhost:5672/%2f";

/// One test at a time on the seed's fixed queue.
static SEED_QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// tests/seed, when its node_modules is installed; `None` (skip) outside CI.
fn seed_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/seed");
    if dir.join("node_modules/amqplib").is_dir() {
        return Some(dir);
    }
    let message = format!(
        "the seed's clients need amqplib: run `npm ci` in {}",
        dir.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{message} (CI=true: not skipped)"
    );
    eprintln!("SKIPPED: {message}");
    None
}

/// A broker handle on the seed's queue names, the queues deleted first (leftovers of a run
/// that died).
async fn seed_broker() -> TestBroker {
    let args = QueueArgs::amqp(SEED_AMQP_URL);
    let queue = JobQueue::connect(&args, test_logger("seed"))
        .await
        .expect("RabbitMQ");
    let _ = queue.delete_topology().await;
    queue.close().await;
    let queue = JobQueue::connect(&args, test_logger("seed"))
        .await
        .expect("RabbitMQ");
    let dir = std::env::temp_dir().join(format!("test_worker_seed_{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    TestBroker { args, queue, dir }
}

/// Lines of a child's stdout, read on a thread of their own.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_producer_unchanged_feeds_the_worker_and_nothing_is_dead_lettered() {
    testing::skip_unless!(RabbitMq);
    let Some(dir) = seed_dir() else { return };
    let _only = SEED_QUEUE.lock().await;
    let broker = seed_broker().await;
    let worker = spawn_worker(&broker, quick()).await;

    let output = Command::new("node")
        .args(["--require", "./producer_only.js", "seed_queue.js"])
        .current_dir(&dir)
        .output()
        .expect("running node");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // The seed logs its errors and exits 0.
    assert!(!stderr.contains("Error en"), "{stdout}\n{stderr}");
    // What it printed is what it sent: JSON.stringify of the message is the body.
    let bodies: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("[x] Enviado "))
        .collect();
    assert_eq!(bodies.len(), 5, "{stdout}");

    eventually(
        "the seed's five tasks processed",
        Duration::from_secs(20),
        || async { worker.repository.task_run_totals().await.expect("totals") == (5, 5) },
    )
    .await;
    for body in &bodies {
        let id = bare_job_id(body.as_bytes(), None);
        assert_eq!(
            worker.repository.task_runs(id).await.expect("runs"),
            1,
            "{body} recorded under its body's key"
        );
    }

    // A bare message with a message_id is keyed by it: the same one twice runs once.
    let body = br#"{"id":6,"task":"Tarea 6","timestamp":"2026-12-04T06:00:00.000Z"}"#;
    for _ in 0..2 {
        broker
            .queue
            .publish_raw(body, "seed-task-6", None)
            .await
            .expect("published");
    }
    worker
        .await_task_duplicates("the sixth task processed, its copy a duplicate", 1.0)
        .await;
    assert_eq!(
        worker.repository.task_run_totals().await.expect("totals"),
        (6, 6)
    );
    assert_eq!(
        worker
            .repository
            .task_runs(bare_job_id(body, Some("seed-task-6")))
            .await
            .expect("runs"),
        1
    );

    assert_eq!(
        worker.metric("worker_jobs_dead_lettered_total", &[]).await,
        0.0
    );
    worker.stop().await;
    assert_eq!(broker.queue.depth().await.expect("depth").dead, 0);
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_consumer_unchanged_handles_the_platforms_jobs() {
    testing::skip_unless!(RabbitMq);
    let Some(dir) = seed_dir() else { return };
    let _only = SEED_QUEUE.lock().await;
    let broker = seed_broker().await;

    // The platform's producer: `worker produce` (task jobs), and a thumbnail job.
    let output = worker_command(&broker, free_port())
        .args(["produce", "--count", "2"])
        .output()
        .expect("running worker produce");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut expected: Vec<(String, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| uuid::Uuid::parse_str(line.trim()).ok())
        .zip(["Tarea 1", "Tarea 2"])
        .map(|(id, task)| (id.to_string(), task.to_owned()))
        .collect();
    assert_eq!(expected.len(), 2);
    let media_id = uuid::Uuid::new_v4();
    let thumbnail = broker
        .queue
        .enqueue(
            "thumbnail",
            serde_json::json!({"media_id": media_id.to_string(), "key": format!("{media_id}/a.png")}),
            Some("req-seed"),
        )
        .await
        .expect("enqueued");
    expected.push((thumbnail.to_string(), "thumbnail".to_owned()));

    // The seed's example as it is: its consumer (and its producer's five bare tasks, queued
    // behind the platform's jobs).
    let mut node = Command::new("node")
        .arg("seed_queue.js")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running node");
    let lines = stdout_lines(&mut node);
    // Prefetch 1, acked after its "Procesado" line: "Recibido" and "Procesado" alternate.
    let mut received: Vec<serde_json::Value> = Vec::new();
    let mut processed: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while processed.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(error) => panic!(
                "the seed's consumer processed {processed:?} of {expected:?}: {error}; node {:?}",
                node.try_wait()
            ),
        };
        if let Some(content) = line.strip_prefix("[x] Recibido ") {
            received.push(serde_json::from_str(content).expect("it logs the JSON it parsed"));
        } else if let Some(task) = line.strip_prefix("[x] Procesado ") {
            processed.push(task.to_owned());
        }
    }
    // Still consuming: nothing made it fail.
    assert!(node.try_wait().expect("node's status").is_none());
    node.kill().expect("stopping node");
    let output = node.wait_with_output().expect("node's output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("Error"), "{stderr}");

    // In the queue's order, which concurrent publishes may have swapped.
    let mut seen: Vec<(String, String)> = received
        .iter()
        .zip(&processed)
        .map(|(content, task)| {
            (
                content["id"].as_str().unwrap_or("").to_owned(),
                task.clone(),
            )
        })
        .collect();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected, "{received:?}");
    broker.cleanup().await;
}
