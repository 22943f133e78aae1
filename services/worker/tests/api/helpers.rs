//! A worker on a free port with its own database, queue names and store; the queue it consumes
//! (RabbitMQ, or the embedded queue on SQLite or PostgreSQL); the binary as a child process;
//! a TCP proxy that cuts the worker's broker connections.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use db::Database;
use queue::{DeadLetter, JobQueue, QueueArgs};
use runtime::{DatabaseUrl, test_logger};
use store::{ObjectStore, StoreArgs};
use testing::{TestBackend, TestService, fresh_database, metric_value, service_settings};
use worker::{
    Application, DEFAULT_PORT, NAME, Settings,
    config::{ProcessingArgs, ThumbnailArgs},
    repository::Repository,
};

/// Where the jobs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// The embedded queue on a SQLite file.
    Embedded,
    /// The embedded queue on a fresh PostgreSQL database.
    EmbeddedPostgres,
    /// The machine's RabbitMQ (`TEST_AMQP_URL`).
    RabbitMq,
}

/// The RabbitMQ of the tests.
pub fn amqp_url() -> String {
    testing::amqp_url()
}

/// A queue with names of its own, and a producer on it.
pub struct TestBroker {
    /// How to reach it.
    pub args: QueueArgs,
    /// A producer (and inspector) of the queue.
    pub queue: JobQueue,
    /// Scratch directory of the test (worker database, store, embedded queue file).
    pub dir: PathBuf,
}

impl TestBroker {
    /// A fresh queue on `kind`.
    pub async fn new(kind: Broker) -> Self {
        let name = format!("test_worker_{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let args = match kind {
            Broker::Embedded => QueueArgs::embedded(&dir),
            Broker::EmbeddedPostgres => {
                let mut args = QueueArgs::embedded(&dir);
                args.queue_database_url = fresh_database(TestBackend::Postgres)
                    .await
                    .expect("a PostgreSQL database for the queue");
                args
            }
            Broker::RabbitMq => QueueArgs::amqp(&amqp_url()),
        }
        .with_names(&name, &format!("{name}.events"));
        let queue = JobQueue::connect(&args, test_logger("producer"))
            .await
            .expect("the test queue");
        Self { args, queue, dir }
    }

    /// The variables that point a `worker` process at this queue.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("QUEUE_NAME", self.args.queue.clone()),
            ("EVENTS_EXCHANGE", self.args.exchange.clone()),
            ("QUEUE_DATABASE_URL", self.args.queue_database_url.0.clone()),
        ];
        if let Some(url) = &self.args.amqp_url {
            env.push(("AMQP_URL", url.clone()));
        }
        env
    }

    /// Dead letters, waiting until there are `count` of them (or failing after 20 s): from the
    /// queue's dead letters and, on RabbitMQ, from the table a worker of this broker drains
    /// them into (its database, [`worker_database_url`]).
    pub async fn dead_letters(&self, count: usize) -> Vec<DeadLetter> {
        let drained = match self.args.amqp_url {
            Some(_) => Some(
                self.queue
                    .dead_letters(&worker_database_url(self))
                    .await
                    .expect("the drained dead letters' table"),
            ),
            None => None,
        };
        let mut letters = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while letters.len() < count {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} dead letters after 20 s",
                letters.len()
            );
            letters.extend(
                self.queue
                    .take_dead_letters(count - letters.len())
                    .await
                    .expect("reading the dead letters"),
            );
            if let Some(drained) = &drained
                && letters.len() < count
            {
                letters.extend(
                    drained
                        .take(count - letters.len())
                        .await
                        .expect("reading the drained dead letters"),
                );
            }
            if letters.len() < count {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        letters
    }

    /// Deletes the queues (RabbitMQ) and the scratch directory.
    pub async fn cleanup(self) {
        let _ = self.queue.delete_topology().await;
        self.queue.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Quick settings for tests: 50 ms retry base, short leases, fast polling.
pub fn quick() -> ProcessingArgs {
    ProcessingArgs {
        prefetch: 10,
        concurrency: 4,
        max_attempts: 5,
        max_deliveries: 5,
        retry_base_ms: 50,
        lease_secs: 5,
        poll_ms: 20,
        shutdown_timeout_secs: 5,
    }
}

/// A worker running in the test's process.
pub struct TestWorker {
    /// The running service (its `/metrics`, `/readyz`).
    pub service: TestService,
    /// The worker's own tables.
    pub repository: Repository,
    /// Its store.
    pub store: ObjectStore,
}

impl TestWorker {
    /// A series of its `/metrics`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.service.metric(name, labels).await
    }

    /// Waits until the `task` jobs it recognised as duplicates number `count`.
    pub async fn await_task_duplicates(&self, what: &str, count: f64) {
        eventually(what, Duration::from_secs(20), || async {
            self.metric("worker_jobs_duplicate_total", &[("kind", "task")])
                .await
                == count
        })
        .await;
    }

    /// Stops it (SIGTERM's path) and waits.
    pub async fn stop(self) {
        self.service.server.stop().await;
    }
}

/// The worker's database in the test's scratch directory.
pub fn worker_database_url(broker: &TestBroker) -> DatabaseUrl {
    DatabaseUrl(format!("sqlite://{}/worker.db", broker.dir.display()))
}

/// What a worker of `broker` runs with.
pub fn worker_settings(broker: &TestBroker, processing: ProcessingArgs) -> Settings {
    Settings {
        queue: broker.args.clone(),
        store: StoreArgs::embedded(&broker.dir),
        processing,
        thumbnails: ThumbnailArgs::default(),
    }
}

/// A worker consuming `broker`'s queue, with its database and store in the scratch directory.
pub async fn spawn_worker(broker: &TestBroker, processing: ProcessingArgs) -> TestWorker {
    spawn_worker_with(worker_settings(broker, processing), broker).await
}

/// A worker with these settings (database and store in `broker`'s scratch directory).
pub async fn spawn_worker_with(worker: Settings, broker: &TestBroker) -> TestWorker {
    let url = worker_database_url(broker);
    let settings = service_settings(NAME, DEFAULT_PORT, url.clone());
    let store_args = worker.store.clone();
    let service = TestService::start(settings, test_logger(NAME), |settings, logger| {
        Application::build(settings, worker, logger)
    })
    .await;
    let database = Database::connect(&url, worker::migrations())
        .await
        .expect("the worker's database");
    let store = ObjectStore::connect(&store_args, test_logger("test"))
        .await
        .expect("the worker's store");
    TestWorker {
        service,
        repository: Repository::new(database),
        store,
    }
}

pub use testing::{eventually, free_port};

/// A task job's payload (the seed's shape) with the test options.
pub fn task(name: &str, duration_ms: u64, fail_attempts: u32) -> serde_json::Value {
    serde_json::json!({
        "id": 1,
        "task": name,
        "timestamp": db::timestamp_now(),
        "duration_ms": duration_ms,
        "fail_attempts": fail_attempts,
    })
}

/// The `worker` binary, pointed at `broker`, with its database and store in the scratch dir.
pub fn worker_command(broker: &TestBroker, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
    command
        .env_remove("AMQP_URL")
        .envs(broker.env())
        .env("PORT", port.to_string())
        .env("DATABASE_URL", worker_database_url(broker).0)
        .env("MEDIA_DIR", broker.dir.join("media"))
        .env("LOG_LEVEL", "warn")
        .env("WORKER_RETRY_BASE_MS", "50")
        .env("WORKER_POLL_MS", "20")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A `worker` process consuming, and its health port.
pub struct WorkerProcess {
    /// The process.
    pub child: Child,
    /// Its `/metrics` port.
    pub port: u16,
}

impl WorkerProcess {
    /// Starts the binary with extra variables and waits until its `/healthz` answers.
    pub async fn start(broker: &TestBroker, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = worker_command(broker, port)
            .envs(extra.iter().copied())
            .spawn()
            .expect("starting the worker binary");
        let process = Self { child, port };
        eventually(
            "the worker process answers /healthz",
            Duration::from_secs(30),
            || {
                let url = format!("http://127.0.0.1:{port}/healthz");
                async move {
                    client()
                        .get(url)
                        .send()
                        .await
                        .is_ok_and(|response| response.status() == 200)
                }
            },
        )
        .await;
        process
    }

    /// A series of its `/metrics` (0 when it does not answer).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        match client().get(url).send().await {
            Ok(response) => metric_value(&response.text().await.unwrap_or_default(), name, labels),
            Err(_) => 0.0,
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the exit (failing after `limit`); returns the status code.
    pub async fn wait(mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the worker") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: a crash.
    pub fn crash(mut self) {
        self.child.kill().expect("killing the worker");
        self.child.wait().expect("reaping the worker");
    }
}

/// An HTTP client without proxies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a reqwest client")
}

/// A TCP proxy in front of RabbitMQ that can cut every connection through it and refuse new
/// ones for a while: a broker outage seen from the worker, without stopping the shared broker.
pub struct ChaosProxy {
    /// Where the proxy listens.
    pub port: u16,
    /// Bumped to cut the open connections.
    cuts: tokio::sync::watch::Sender<u64>,
    /// While set, new connections are closed at once.
    down: Arc<AtomicBool>,
}

impl ChaosProxy {
    /// A proxy to `127.0.0.1:5672`.
    pub async fn start(upstream: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (cuts, _) = tokio::sync::watch::channel(0_u64);
        let down = Arc::new(AtomicBool::new(false));
        let (accept_cuts, accept_down) = (cuts.clone(), down.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if accept_down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, cuts, down }
    }

    /// The broker's URL through the proxy.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Cuts every connection and refuses new ones for `outage`.
    pub async fn outage(&self, outage: Duration) {
        self.down.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|generation| *generation += 1);
        tokio::time::sleep(outage).await;
        self.down.store(false, Ordering::SeqCst);
    }
}

/// For each `async fn(Broker)`, a module with one test per backend.
#[macro_export]
macro_rules! on_every_broker {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded_sqlite() {
                    super::$name($crate::helpers::Broker::Embedded).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded_postgres() {
                    testing::skip_unless!(Postgres);
                    super::$name($crate::helpers::Broker::EmbeddedPostgres).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn rabbitmq() {
                    testing::skip_unless!(RabbitMq);
                    super::$name($crate::helpers::Broker::RabbitMq).await
                }
            }
        )*
    };
}
