//! The harness of the end-to-end tests: the platform started as users run it, as processes.
//!
//! - [`Platform::stack`]: the `stack` binary on embedded defaults (SQLite, in-process cache and
//!   pub/sub, embedded queue, local-disk media), in a data directory of its own, on free ports.
//! - [`Platform::processes`]: every binary in its own process, the way docker-compose runs
//!   them, on real backends: PostgreSQL (a fresh database per service), Redis, RabbitMQ and an
//!   S3-compatible server (s3s-fs, started here).
//!
//! The tests talk to the gateway, and to each service's own port for `/metrics`, the fault
//! drills and the access rules (which hold on both). Every process's stdout (its JSON log) is
//! kept, so a test can follow one request id across them.
//!
//! Identity: users-service signs tokens with a key file in the scratch directory
//! ([`Platform::signing_key_file`]) and creates an admin at start ([`Platform::admin`]: random
//! per run in processes mode, read from the stack's `admin-credentials` in stack mode); the
//! gateway and every service fetch the public keys from the spawned users-service.
//! [`Platform::sign_up`], [`Platform::login`] and [`Platform::admin_token`] give real tokens.
//!
//! The binaries come from the same build as the tests (`target/<profile>/`): `cargo test
//! --workspace` builds them.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;

/// A binary of the workspace, from the build the tests run in.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

pub use testing::free_port;

/// Lines a process wrote, kept as they come.
pub type Lines = Arc<Mutex<Vec<String>>>;

fn collect(stream: impl std::io::Read + Send + 'static, lines: Lines) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            lines.lock().expect("log lines").push(line);
        }
    });
}

/// One process of the platform.
pub struct Process {
    /// Its name (`gateway`, `users`, …).
    pub name: String,
    /// The running child.
    child: Child,
    /// Its stdout (JSON log lines).
    pub stdout: Lines,
    /// Its stderr.
    pub stderr: Lines,
    /// How it was started, to start it again.
    launch: (PathBuf, Vec<(String, String)>, Vec<String>),
}

impl Process {
    /// Starts `binary` with `env` (on top of a cleared set of the platform's variables).
    pub fn spawn(name: &str, binary: &Path, env: &[(&str, String)], args: &[&str]) -> Self {
        let launch = (
            binary.to_owned(),
            env.iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
            args.iter().map(|arg| (*arg).to_owned()).collect(),
        );
        let (child, stdout, stderr) = Self::launch(&launch, Lines::default(), Lines::default());
        Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            launch,
        }
    }

    /// Kills it and starts it again the same way; its log lines continue in the same buffers.
    pub fn restart(&mut self) {
        self.kill();
        let (child, _, _) = Self::launch(&self.launch, self.stdout.clone(), self.stderr.clone());
        self.child = child;
    }

    fn launch(
        (binary, env, args): &(PathBuf, Vec<(String, String)>, Vec<String>),
        stdout: Lines,
        stderr: Lines,
    ) -> (Child, Lines, Lines) {
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for variable in [
            "PORT",
            "DATABASE_URL",
            "REDIS_URL",
            "CACHE_NAMESPACE",
            "AMQP_URL",
            "QUEUE_NAME",
            "EVENTS_EXCHANGE",
            "MEDIA_STORE",
            "GATEWAY_CONFIG",
            "LOG_DIR",
            "DATA_DIR",
            "AUTH_JWKS_URL",
            "AUTH_ISSUER",
            "AUTH_AUDIENCE",
            "AUTH_SIGNING_KEY_FILE",
            "AUTH_ACCESS_TTL_SECS",
            "AUTH_REFRESH_TTL_SECS",
            "ADMIN_EMAIL",
            "ADMIN_PASSWORD",
            "ADMIN_PASSWORD_FILE",
            "LOGIN_FAILURES_PER_ACCOUNT",
            "LOGIN_FAILURES_PER_ADDRESS",
            "LOGIN_FAILURES_PERIOD_SECS",
            "CHAT_GUESTS",
        ] {
            command.env_remove(variable);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", binary.display()));
        collect(child.stdout.take().expect("piped stdout"), stdout.clone());
        collect(child.stderr.take().expect("piped stderr"), stderr.clone());
        (child, stdout, stderr)
    }

    /// Sends SIGTERM and waits up to `bound` for the exit; kills it past that.
    pub fn terminate(&mut self, bound: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM {} failed", self.child.id());
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("{} did not exit within {bound:?} of SIGTERM", self.name)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now (`VmRSS` in `/proc/<pid>/status`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:") * 1024
    }

    /// The most resident memory it has had so far (`VmHWM`, the high-water mark), in bytes:
    /// a bound on it holds for every instant of the run, not only the samples a test took.
    pub fn peak_rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:") * 1024
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A field of `/proc/<pid>/status` given in kB (`VmRSS:`, `VmHWM:`), or 0 once it is gone.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field)?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// Polls `url` until it answers 200, for up to `bound`.
pub async fn wait_until_ready(url: &str, bound: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + bound;
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not become ready within {bound:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until something accepts TCP connections at `url`'s host and port.
pub async fn wait_for_port(url: &str, bound: Duration) -> anyhow::Result<()> {
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let deadline = Instant::now() + bound;
    while tokio::net::TcpStream::connect(&authority).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens at {authority} after {bound:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The platform, started.
pub struct Platform {
    /// `http://127.0.0.1:<gateway port>`.
    pub gateway: String,
    /// Each service's own base URL (`users` → `http://127.0.0.1:<port>`), for `/metrics`.
    pub services: BTreeMap<String, String>,
    /// Its processes.
    pub processes: Vec<Process>,
    /// The admin account users-service created at start.
    pub admin: Credentials,
    /// users-service's signing keys (`AUTH_SIGNING_KEY_FILE`), to craft tokens with.
    pub signing_key_file: PathBuf,
    /// Files to remove at the end.
    scratch: PathBuf,
}

/// An email address and its password.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The address.
    pub email: String,
    /// The password.
    pub password: String,
}

/// The password [`Platform::sign_up`] gives its users.
pub const PASSWORD: &str = "correct horse battery staple";

/// What `/api/auth/signup` and `/api/auth/login` answer: the account and its token pair.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its email address.
    pub email: String,
    /// Its password.
    pub password: String,
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
}

impl Session {
    /// The session in a sign-up or login answer.
    fn from_answer(answer: &Value, password: &str) -> anyhow::Result<Self> {
        let text = |value: &Value| {
            value
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("a session: {answer}"))
        };
        Ok(Self {
            id: answer["user"]["id"]
                .as_i64()
                .with_context(|| format!("a session: {answer}"))?,
            name: text(&answer["user"]["name"])?,
            email: text(&answer["user"]["email"])?,
            password: password.to_owned(),
            access_token: text(&answer["access_token"])?,
            refresh_token: text(&answer["refresh_token"])?,
        })
    }

    /// `Bearer <access token>`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.access_token)
    }
}

/// What [`Platform::processes`] needs from outside.
#[derive(Debug, Clone)]
pub struct Backends {
    /// Redis.
    pub redis_url: String,
    /// RabbitMQ.
    pub amqp_url: String,
    /// The S3 endpoint (s3s-fs).
    pub s3_endpoint: String,
    /// Its bucket.
    pub s3_bucket: String,
    /// Its credentials.
    pub s3_access_key: String,
    /// Its credentials.
    pub s3_secret_key: String,
}

/// A test's own settings for [`Platform::processes_tuned`].
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    /// Variables for one process: (process name as in [`SERVICES`], variable, value); they
    /// come after the defaults, so they win.
    pub env: Vec<(String, String, String)>,
    /// Lines added to the gateway's `[server]` table (TOML).
    pub gateway_server: String,
}

/// The services of the platform: (name, binary, gateway route prefixes).
pub const SERVICES: [(&str, &str, &[&str]); 6] = [
    (
        "users",
        "users-service",
        &["/api/users", "/api/auth", "/.well-known/jwks.json"],
    ),
    ("products", "products-service", &["/api/products"]),
    ("graphql", "graphql-service", &["/graphql"]),
    ("chat", "chat-service", &["/chat", "/socket.io"]),
    ("media", "media-service", &["/api/upload", "/api/media"]),
    ("worker", "worker", &["/api/jobs"]),
];

fn scratch_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "platform-e2e-{kind}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

impl Platform {
    /// The `stack` binary on embedded defaults, in a fresh data directory, on free ports.
    pub async fn stack() -> anyhow::Result<Self> {
        Self::stack_with(&[]).await
    }

    /// [`Platform::stack`] with variables of a test's own (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub async fn stack_with(env: &[(&str, String)]) -> anyhow::Result<Self> {
        let scratch = scratch_dir("stack");
        let mut variables = vec![("DATA_DIR", scratch.join("data").display().to_string())];
        variables.extend(env.iter().cloned());
        let process = Process::spawn("stack", &binary("stack"), &variables, &["--free-ports"]);
        // The stack prints `  <service> <url>` lines once everything is up.
        let deadline = Instant::now() + Duration::from_secs(60);
        let services = loop {
            let printed = process.stderr.lock().expect("stderr").clone();
            let mut services = BTreeMap::new();
            for line in &printed {
                let mut words = line.split_whitespace();
                if let (Some(name), Some(url), None) = (words.next(), words.next(), words.next())
                    && url.starts_with("http://")
                {
                    let base = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                    services.insert(name.to_owned(), base);
                }
            }
            if services.contains_key("gateway")
                && printed
                    .iter()
                    .any(|line| line.contains("The platform is up"))
                && printed.last().is_some_and(|line| line.trim().is_empty())
            {
                break services;
            }
            if Instant::now() > deadline {
                bail!("the stack did not start: {}", printed.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let gateway = services
            .get("gateway")
            .cloned()
            .context("the stack's gateway URL")?;
        wait_until_ready(&format!("{gateway}/readyz"), Duration::from_secs(30)).await?;
        let data = scratch.join("data");
        let written = std::fs::read_to_string(data.join("admin-credentials"))
            .context("the stack's admin-credentials")?;
        let field = |name: &str| {
            written
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
                .with_context(|| format!("`{name}=` in admin-credentials"))
        };
        let admin = Credentials {
            email: field("email")?,
            password: field("password")?,
        };
        Ok(Self {
            gateway,
            services,
            processes: vec![process],
            admin,
            signing_key_file: data.join("auth-signing-key.pem"),
            scratch,
        })
    }

    /// Every binary in its own process on real backends, the gateway in front (compose's
    /// layout on one machine).
    pub async fn processes(backends: &Backends) -> anyhow::Result<Self> {
        Self::processes_tuned(backends, &Tuning::default()).await
    }

    /// [`Platform::processes`] with settings of a test's own on top of the defaults.
    pub async fn processes_tuned(backends: &Backends, tuning: &Tuning) -> anyhow::Result<Self> {
        let scratch = scratch_dir("processes");
        let mut services = BTreeMap::new();
        let mut processes = Vec::new();
        let ports: BTreeMap<&str, u16> = SERVICES
            .iter()
            .map(|(name, ..)| (*name, free_port()))
            .collect();
        let url = |name: &str| format!("http://127.0.0.1:{}", ports[name]);
        // Platforms started side by side share Redis and RabbitMQ but not their databases,
        // cache keys or job queue (another platform's worker would take this one's jobs, find
        // no such object in its own store, and hold them in retries). Redis pub/sub channels
        // are not prefixed: a platform sees the others' `postCreated` events.
        let cache_namespace = format!("e2e:{}", uuid::Uuid::new_v4().simple());
        let queue = format!("e2e-{}", uuid::Uuid::new_v4().simple());
        let jwks_url = format!("{}/.well-known/jwks.json", url("users"));
        let signing_key_file = scratch.join("auth-signing-key.pem");
        let admin = Credentials {
            email: format!("admin-{}@e2e.example.com", uuid::Uuid::new_v4().simple()),
            password: format!("admin {}", uuid::Uuid::new_v4().simple()),
        };
        for (name, binary_name, _) in SERVICES {
            let database = testing::fresh_database(testing::TestBackend::Postgres)
                .await
                .context("a PostgreSQL database")?;
            let mut env = vec![
                ("PORT", ports[name].to_string()),
                ("DATABASE_URL", database.0.clone()),
                ("REDIS_URL", backends.redis_url.clone()),
                ("CACHE_NAMESPACE", cache_namespace.clone()),
                ("AMQP_URL", backends.amqp_url.clone()),
                ("QUEUE_NAME", queue.clone()),
                ("EVENTS_EXCHANGE", format!("{queue}.events")),
                ("LOG_LEVEL", "info".to_owned()),
                ("USERS_URL", url("users")),
                ("PRODUCTS_URL", url("products")),
                ("MEDIA_STORE", "s3".to_owned()),
                ("S3_ENDPOINT", backends.s3_endpoint.clone()),
                ("S3_BUCKET", backends.s3_bucket.clone()),
                ("S3_REGION", "us-east-1".to_owned()),
                ("S3_FORCE_PATH_STYLE", "true".to_owned()),
                ("AWS_ACCESS_KEY_ID", backends.s3_access_key.clone()),
                ("AWS_SECRET_ACCESS_KEY", backends.s3_secret_key.clone()),
                ("MEDIA_URL", url("media")),
                ("AUTH_JWKS_URL", jwks_url.clone()),
            ];
            if name == "users" {
                env.push((
                    "AUTH_SIGNING_KEY_FILE",
                    signing_key_file.display().to_string(),
                ));
                env.push(("ADMIN_EMAIL", admin.email.clone()));
                env.push(("ADMIN_PASSWORD", admin.password.clone()));
            }
            env.push((
                "MEDIA_SIGNING_KEY",
                "e2e-signing-key-0123456789abcdef0123456789abcdef".to_owned(),
            ));
            env.extend(
                tuning
                    .env
                    .iter()
                    .filter(|(process, ..)| process == name)
                    .map(|(_, key, value)| (key.as_str(), value.clone())),
            );
            processes.push(Process::spawn(name, &binary(binary_name), &env, &[]));
            services.insert(name.to_owned(), url(name));
        }
        for name in services.keys() {
            wait_until_ready(
                &format!("{}/readyz", services[name]),
                Duration::from_secs(60),
            )
            .await
            .with_context(|| format!("{name} did not become ready"))?;
        }
        let mut routes = format!(
            "[server]\nhealth_check_interval_ms = 500\n{}\n",
            tuning.gateway_server
        );
        for (name, _, prefixes) in SERVICES {
            for prefix in prefixes {
                routes.push_str(&format!(
                    "\n[[routes]]\nprefix = \"{prefix}\"\nupstreams = [\"{}\"]\n",
                    url(name)
                ));
            }
        }
        let config = scratch.join("gateway.toml");
        std::fs::write(&config, routes)?;
        let gateway_port = free_port();
        processes.push(Process::spawn(
            "gateway",
            &binary("gateway"),
            &[
                ("PORT", gateway_port.to_string()),
                ("GATEWAY_CONFIG", config.display().to_string()),
                ("AUTH_JWKS_URL", jwks_url),
            ],
            &[],
        ));
        let gateway = format!("http://127.0.0.1:{gateway_port}");
        services.insert("gateway".to_owned(), gateway.clone());
        wait_until_ready(&format!("{gateway}/readyz"), Duration::from_secs(30)).await?;
        Ok(Self {
            gateway,
            services,
            processes,
            admin,
            signing_key_file,
            scratch,
        })
    }

    /// The gateway's URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    /// Its scratch directory (the stack's data directory is `data/` in it).
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// `POST /api/auth/signup` through the gateway.
    pub async fn signup(&self, name: &str, email: &str, password: &str) -> anyhow::Result<Session> {
        let response = reqwest::Client::new()
            .post(self.url("/api/auth/signup"))
            .json(&serde_json::json!({"name": name, "email": email, "password": password}))
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await.context("a sign-up answer")?;
        anyhow::ensure!(status == 201, "signing up {email}: {status} {answer}");
        Session::from_answer(&answer, password)
    }

    /// A new user named `name` (a unique address, the password [`PASSWORD`]), signed up.
    pub async fn sign_up(&self, name: &str) -> Session {
        let email = format!(
            "{}-{}@e2e.example.com",
            name.to_lowercase().replace(' ', "-"),
            uuid::Uuid::new_v4().simple()
        );
        self.signup(name, &email, PASSWORD)
            .await
            .expect("the sign-up succeeds")
    }

    /// `POST /api/auth/login` through the gateway.
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<Session> {
        let response = reqwest::Client::new()
            .post(self.url("/api/auth/login"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await.context("a login answer")?;
        anyhow::ensure!(status == 200, "logging in {email}: {status} {answer}");
        Session::from_answer(&answer, password)
    }

    /// The admin, logged in.
    pub async fn admin_session(&self) -> Session {
        self.login(&self.admin.email, &self.admin.password)
            .await
            .expect("the admin logs in")
    }

    /// An access token of the admin.
    pub async fn admin_token(&self) -> String {
        self.admin_session().await.access_token
    }

    /// Every JSON log line every process wrote so far.
    pub fn log_lines(&self) -> Vec<Value> {
        self.processes
            .iter()
            .flat_map(|process| process.stdout.lock().expect("log").clone())
            .filter_map(|line| serde_json::from_str(&line).ok())
            .collect()
    }

    /// Every line every process wrote so far, stdout and stderr, each with its process's name.
    pub fn output_lines(&self) -> Vec<(String, String)> {
        self.processes
            .iter()
            .flat_map(|process| {
                let stdout = process.stdout.lock().expect("log").clone();
                let stderr = process.stderr.lock().expect("log").clone();
                stdout
                    .into_iter()
                    .chain(stderr)
                    .map(|line| (process.name.clone(), line))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The `service` fields of the log lines that carry `request_id`.
    pub fn services_logging(&self, request_id: &str) -> std::collections::BTreeSet<String> {
        self.log_lines()
            .iter()
            .filter(|line| line["request_id"] == request_id)
            .filter_map(|line| line["service"].as_str().map(str::to_owned))
            .collect()
    }

    /// The process named `name`.
    pub fn process(&mut self, name: &str) -> &mut Process {
        self.processes
            .iter_mut()
            .find(|process| process.name == name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// SIGTERM to every process (the gateway first); each must exit 0 within `bound`.
    pub fn stop(mut self, bound: Duration) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        self.processes
            .sort_by_key(|process| if process.name == "gateway" { 0 } else { 1 });
        for process in &mut self.processes {
            match process.terminate(bound) {
                Ok(status) if status.success() => {}
                Ok(status) => failures.push(format!("{} exited with {status}", process.name)),
                Err(error) => failures.push(format!("{error:#}")),
            }
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
        anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
        Ok(())
    }
}

/// The value of a Prometheus series in `/metrics` of `base_url` (summed over matching series).
pub async fn metric(base_url: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    testing::metric_value(&text, name, labels)
}

/// Two chat-service processes (SQLite files of their own, `redis_url` shared when given, so
/// rooms span them) behind a gateway whose only route, `/socket.io`, is sticky by Engine.IO
/// session over both: how `docker compose up --scale chat=2` serves Socket.IO.
pub struct StickyChats {
    /// The two chats, then the gateway.
    pub processes: Vec<Process>,
    /// Each chat's base URL, in the gateway's upstream order.
    pub chats: Vec<String>,
    /// The gateway's base URL.
    pub gateway: String,
    /// Their databases and route table.
    scratch: PathBuf,
}

impl StickyChats {
    /// Starts them and waits until every one is ready.
    pub async fn start(redis_url: Option<String>) -> anyhow::Result<Self> {
        let scratch = scratch_dir("sticky-chats");
        let mut processes = Vec::new();
        let mut chats = Vec::new();
        for name in ["chat-a", "chat-b"] {
            let port = free_port();
            let mut env = vec![
                ("PORT", port.to_string()),
                (
                    "DATABASE_URL",
                    format!("sqlite://{}/{name}.db?mode=rwc", scratch.display()),
                ),
                ("LOG_LEVEL", "warn".to_owned()),
            ];
            if let Some(redis_url) = &redis_url {
                env.push(("REDIS_URL", redis_url.clone()));
            }
            processes.push(Process::spawn(name, &binary("chat-service"), &env, &[]));
            chats.push(format!("http://127.0.0.1:{port}"));
        }
        for chat in &chats {
            wait_until_ready(&format!("{chat}/readyz"), Duration::from_secs(60))
                .await
                .with_context(|| format!("{chat} did not become ready"))?;
        }
        let config = scratch.join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "[[routes]]\nprefix = \"/socket.io\"\nupstreams = [\"{}\", \"{}\"]\nsticky = \"engine.io\"\n",
                chats[0], chats[1]
            ),
        )?;
        let port = free_port();
        processes.push(Process::spawn(
            "gateway",
            &binary("gateway"),
            &[
                ("PORT", port.to_string()),
                ("GATEWAY_CONFIG", config.display().to_string()),
                ("LOG_LEVEL", "warn".to_owned()),
            ],
            &[],
        ));
        let gateway = format!("http://127.0.0.1:{port}");
        wait_until_ready(&format!("{gateway}/readyz"), Duration::from_secs(30)).await?;
        Ok(Self {
            processes,
            chats,
            gateway,
            scratch,
        })
    }

    /// The gateway's process.
    pub fn gateway_process(&self) -> &Process {
        self.processes.last().expect("the gateway")
    }

    /// SIGTERM to each, the gateway first; each must exit within 15 s.
    pub fn stop(self) -> anyhow::Result<()> {
        for mut process in self.processes.into_iter().rev() {
            process.terminate(Duration::from_secs(15))?;
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
        Ok(())
    }
}
