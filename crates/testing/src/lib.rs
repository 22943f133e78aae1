//! Test support for the platform's tests: a fresh, empty database for each test on either
//! engine ([`fresh_database`]), a service running on port 0 ([`TestService`], [`TestServer`]),
//! a relay that cuts a backend under a live client ([`TcpSwitch`]), readers of metrics and
//! `Link` headers, PostgreSQL plans ([`index_plan`], [`assert_index_plan`]), a capturing
//! logger, test signing keys with user and admin tokens, and what a test needs outside the
//! workspace ([`skip_unless!`], [`available`]: a missing backend is one line, not a failure).
//! [`Browser`] is a headless Chromium driven over the DevTools protocol, for the web pages' tests.
//!
//! PostgreSQL is reached through `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets its own database named
//! `platform_test_<uuid>`. SQLite databases are files in a fresh temporary directory.

mod backends;
mod browser;

pub use backends::{Backend, SETUP_COMMAND, available, chromium_binary, schemathesis_binary};
pub use browser::Browser;

use anyhow::Context;
use sqlx::{Connection, Executor, postgres::PgConnection};

use runtime::DatabaseUrl;

/// The engines tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// A temporary SQLite file.
    Sqlite,
    /// A new PostgreSQL database.
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis server of the cache tests.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The RabbitMQ the tests use (`TEST_AMQP_URL`, default the local guest account).
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A URL of a new, empty database on `backend`.
pub async fn fresh_database(backend: TestBackend) -> anyhow::Result<DatabaseUrl> {
    let name = format!("platform_test_{}", uuid::Uuid::new_v4().simple());
    match backend {
        TestBackend::Sqlite => {
            let dir = std::env::temp_dir().join(&name);
            std::fs::create_dir_all(&dir)?;
            Ok(DatabaseUrl(format!(
                "sqlite://{}/service.db",
                dir.display()
            )))
        }
        TestBackend::Postgres => {
            let admin_url = postgres_admin_url();
            let mut connection = PgConnection::connect(&admin_url)
                .await
                .with_context(|| format!("connecting to the test PostgreSQL at {admin_url}"))?;
            connection
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .await?;
            connection.close().await?;
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(base, _)| base);
            Ok(DatabaseUrl(format!("{base}/{name}")))
        }
    }
}

/// A service running in the background of a test, on a free port.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A client without proxies or redirects.
    pub client: reqwest::Client,
    /// Stops the server.
    shutdown: runtime::Shutdown,
    /// The server's task: its result is the service's `run_until_stopped`.
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Runs `run` (a service's `run_until_stopped` given the shutdown future) in the background.
    pub fn start<F, Fut>(port: u16, run: F) -> Self
    where
        F: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = runtime::Shutdown::new();
        let task = tokio::spawn(run(Box::pin(shutdown.wait())));
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client");
        Self {
            address: format!("http://127.0.0.1:{port}"),
            client,
            shutdown,
            task,
        }
    }

    /// The same server, its client sending `Authorization: Bearer <token>` on every request
    /// (the helpers below included).
    pub fn with_token(mut self, token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}")
                .parse()
                .expect("a token is a header value"),
        );
        self.client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .expect("a reqwest client");
        self
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Shuts the server down and waits until it stopped; panics if it failed.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task
            .await
            .expect("the server task")
            .expect("the server stopped cleanly");
    }

    /// `GET` of a path.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// `POST` of a JSON body.
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    /// `PUT` of a JSON body.
    pub async fn put(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .expect("PUT")
    }

    /// `DELETE` of a path.
    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    /// The value of one Prometheus series of the server's `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        metric_value(&text, name, labels)
    }
}

/// Asserts that no two metric families of a Prometheus text exposition share a name once read
/// as OpenMetrics, where a counter `x_total` is the family `x` (a gauge `x` beside a counter
/// `x_total` is one family twice, and scrapers drop one). Returns the families' names.
/// Also asserts that no series names one label twice (a metric label named like the registry's
/// constant `service` label gives `{service="users",service="graphql"}`, which a Prometheus
/// server refuses).
pub fn assert_distinct_metric_families(text: &str) -> Vec<String> {
    let mut families: Vec<(String, String)> = Vec::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let names = label_names(line);
        for (index, name) in names.iter().enumerate() {
            assert!(
                !names[..index].contains(name),
                "the label {name} appears twice in {line}"
            );
        }
    }
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let family = match kind {
            "counter" => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        if let Some((other, _)) = families.iter().find(|(known, _)| known == family) {
            panic!("the metric family {family} is declared twice ({other} and {name} {kind})");
        }
        families.push((family.to_owned(), format!("{name} {kind}")));
    }
    families.into_iter().map(|(family, _)| family).collect()
}

/// The label names of one series line (`name{a="x",b="y"} 1`), values skipped with their
/// escapes.
pub fn label_names(line: &str) -> Vec<String> {
    let Some(open) = line.find('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut name = String::new();
    let mut characters = line[open + 1..].chars();
    while let Some(character) = characters.next() {
        match character {
            '}' => break,
            '=' => {
                names.push(std::mem::take(&mut name));
                // The quoted value, with `\"` and `\\` escapes.
                characters.next();
                while let Some(value) = characters.next() {
                    match value {
                        '\\' => {
                            characters.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            ',' | ' ' => {}
            other => name.push(other),
        }
    }
    names
}

/// The value of the series `name` whose labels include all of `labels`, summed over the
/// others (0 when there is none).
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            (series_name == name
                && labels
                    .iter()
                    .all(|(key, wanted)| series_labels.contains(&format!("{key}=\"{wanted}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// Generates, for each named `async fn(TestBackend)`, a module with a `sqlite` and a `postgres`
/// test, so every behaviour is checked on both engines.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::TestBackend::Sqlite).await
                }

                #[tokio::test]
                async fn postgres() {
                    $crate::skip_unless!(Postgres);
                    super::$name($crate::TestBackend::Postgres).await
                }
            }
        )*
    };
}

/// The `error.code` of an error response, after checking it is JSON with a message.
pub async fn error_code(response: reqwest::Response) -> String {
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "errors are JSON"
    );
    let body: serde_json::Value = response.json().await.expect("an error body");
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned()
}

/// The `X-Cache` header.
pub fn cache_header(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `X-Total-Count` header as a number.
pub fn total_count(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("x-total-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("an X-Total-Count header")
}

/// The URL of the `rel` link in a response's `Link` header (RFC 8288), if it has one.
pub fn link(response: &reqwest::Response, rel: &str) -> Option<String> {
    let header = response.headers().get("link")?.to_str().ok()?;
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let names_rel = params
            .split(';')
            .any(|param| param.trim() == format!("rel=\"{rel}\""));
        names_rel.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// PostgreSQL's plan for `sql` (values written into it) with sequential scans and sorts priced
/// out, so that the plan shows whether an index can serve the query, in its order, at any table
/// size (on a small table the planner would rightly scan).
pub async fn index_plan(database: &db::Database, sql: &str) -> String {
    let mut transaction = database.pool().begin().await.expect("a transaction");
    for setting in ["enable_seqscan", "enable_sort"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL {setting} = off")))
            .execute(&mut *transaction)
            .await
            .expect("SET LOCAL");
    }
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .fetch_all(&mut *transaction)
        .await
        .expect("EXPLAIN");
    lines.join("\n")
}

/// Panics, naming `what`, when [`index_plan`] of `sql` still scans a table or sorts its rows.
pub async fn assert_index_plan(database: &db::Database, what: &str, sql: &str) {
    let plan = index_plan(database, sql).await;
    assert_seeks(what, &plan);
}

/// For a page of a filtered list: [`assert_index_plan`], and the plan reads `index` (by name)
/// with no `Filter:` (rows read then dropped: a walk of the primary key filtered on the list's
/// filter would read the whole table to fill a sparse page). Plans follow the statistics, so
/// the table should hold rows spread like real ones (many owners, rooms, authors), analyzed.
pub async fn assert_index_plan_uses(database: &db::Database, what: &str, sql: &str, index: &str) {
    let plan = index_plan(database, sql).await;
    assert_seeks(what, &plan);
    assert!(
        plan.contains(&format!(" using {index} on ")) && !plan.contains("Filter:"),
        "{what}: the plan does not seek {index} to the page's rows alone:\n{plan}"
    );
}

fn assert_seeks(what: &str, plan: &str) {
    assert!(
        !plan.contains("Seq Scan") && !plan.contains("Sort"),
        "{what}: the plan scans the table or sorts its rows:\n{plan}"
    );
}

/// A logger that keeps every JSON line in memory, for tests that check what was logged.
pub fn capturing_logger(
    service: &'static str,
) -> (slog::Logger, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let drain = std::sync::Mutex::new(runtime::json_drain(Shared(buffer.clone())));
    let logger = slog::Logger::root(
        slog::Drain::fuse(drain),
        slog::o!("service" => service, "version" => "test"),
    );
    (logger, buffer)
}

/// Settings for a service instance under test on `database_url`: port 0 on 127.0.0.1, one
/// worker, the in-process cache, and cache keys of its own (so tests can share one Redis).
pub fn service_settings(
    name: &'static str,
    default_port: u16,
    database_url: DatabaseUrl,
) -> server::ServiceSettings {
    let args = runtime::CommonArgs::embedded(0, std::net::Ipv4Addr::LOCALHOST.into(), database_url);
    let mut settings = server::ServiceSettings::from_args(name, default_port, &args);
    settings.workers = 1;
    settings.cache.namespace = format!("test:{}:{name}", uuid::Uuid::new_v4().simple());
    settings.verifier = test_verifier();
    settings
}

/// The signing keys of the tests of this process: a token from [`user_token`] or
/// [`admin_token`] verifies on every service started with [`service_settings`].
pub fn test_keys() -> std::sync::Arc<auth::SigningKeys> {
    static KEYS: std::sync::OnceLock<std::sync::Arc<auth::SigningKeys>> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(|| std::sync::Arc::new(auth::SigningKeys::generate().expect("test key")))
        .clone()
}

/// Issues tokens with [`test_keys`] for the default issuer and audience (15 minutes).
pub fn test_issuer() -> auth::TokenIssuer {
    auth::TokenIssuer::new(
        test_keys(),
        auth::DEFAULT_ISSUER,
        auth::DEFAULT_AUDIENCE,
        std::time::Duration::from_secs(900),
    )
}

/// A verifier of [`test_keys`]' tokens (one per process, as in production).
pub fn test_verifier() -> std::sync::Arc<auth::Verifier> {
    static VERIFIER: std::sync::OnceLock<std::sync::Arc<auth::Verifier>> =
        std::sync::OnceLock::new();
    VERIFIER
        .get_or_init(|| {
            std::sync::Arc::new(auth::Verifier::new(
                auth::VerifierSettings::default(),
                auth::KeySource::Fixed(test_keys().jwks()),
            ))
        })
        .clone()
}

/// An access token of user `user_id` (role `user`, name `user-<id>`).
pub fn user_token(user_id: i64) -> String {
    test_issuer()
        .issue(user_id, &format!("user-{user_id}"), &[auth::Role::User])
        .expect("test token")
        .token
}

/// An access token of admin `user_id` (roles `user` and `admin`, name `admin-<id>`).
pub fn admin_token(user_id: i64) -> String {
    test_issuer()
        .issue(
            user_id,
            &format!("admin-{user_id}"),
            &[auth::Role::User, auth::Role::Admin],
        )
        .expect("test token")
        .token
}

/// A service of the platform running in a test, built the way its binary builds it.
pub struct TestService {
    /// The server and its client.
    pub server: TestServer,
    /// What it was started with (to start it again, on the same database).
    pub settings: server::ServiceSettings,
}

impl std::ops::Deref for TestService {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl TestService {
    /// The same service, its client sending `Authorization: Bearer <token>` on every request.
    pub fn with_token(mut self, token: &str) -> Self {
        self.server = self.server.with_token(token);
        self
    }

    /// Builds a service with `build` (its `Application::build`) and runs it in the background.
    pub async fn start<S, F, Fut>(
        settings: server::ServiceSettings,
        logger: slog::Logger,
        build: F,
    ) -> Self
    where
        S: runtime::Service + Send + 'static,
        F: FnOnce(server::ServiceSettings, slog::Logger) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<S>>,
    {
        let service = build(settings.clone(), logger)
            .await
            .expect("the service builds");
        let port = service.port();
        let server = TestServer::start(port, |shutdown| service.run_until_stopped(shutdown));
        Self { server, settings }
    }
}

/// A TCP relay to a backend (Redis, RabbitMQ, a service) that a test can cut — every relayed
/// connection dropped, new ones refused — and restore, to make that backend fail under a live
/// client without touching the real server other tests share.
pub struct TcpSwitch {
    /// `127.0.0.1:<port>`: where clients connect instead of the backend.
    pub address: std::net::SocketAddr,
    /// Whether new connections are relayed.
    enabled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The relayed connections, aborted by [`TcpSwitch::cut`].
    connections: std::sync::Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
}

impl TcpSwitch {
    /// A relay to `target` (`host:port`), on a free local port.
    pub async fn start(target: &str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port for the switch");
        let address = listener.local_addr().expect("the switch's address");
        let target = target.to_owned();
        let enabled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let (accepting, tasks) = (enabled.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                tasks.lock().expect("switch tasks").spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            address,
            enabled,
            connections,
        }
    }

    /// A relay to the host and port of `url` (`redis://127.0.0.1:6379`,
    /// `amqp://guest:guest@127.0.0.1:5672/%2f`); returns it and `url` pointed at the relay.
    pub async fn for_url(url: &str) -> (Self, String) {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((credentials, rest)) => (format!("{credentials}@"), rest),
            None => (String::new(), rest),
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        let switch = Self::start(authority).await;
        let relayed = format!("{scheme}://{credentials}{}{path}", switch.address);
        (switch, relayed)
    }

    /// Drops every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.enabled
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.connections.lock().expect("switch tasks").abort_all();
    }

    /// Relays new connections again.
    pub fn restore(&self) {
        self.enabled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Checks that `binary --help` names each of `variables` as `[env: NAME…]`.
pub fn assert_help_names(binary: &str, variables: &[&str]) {
    let help = std::process::Command::new(binary)
        .arg("--help")
        .output()
        .expect("run the binary");
    assert!(help.status.success(), "{binary} --help");
    let text = String::from_utf8(help.stdout).expect("utf-8 help");
    for variable in variables {
        assert!(
            text.contains(&format!("[env: {variable}")),
            "--help names {variable}"
        );
    }
}

/// Checks that each `(variable, value)` stops `binary` at start with exit code 2 and one line
/// on stderr naming the variable (docs/contracts.md, "Configuration").
pub fn assert_bad_values_refused(binary: &str, cases: &[(&str, &str)]) {
    for (variable, value) in cases {
        let output = std::process::Command::new(binary)
            .env(variable, value)
            .output()
            .expect("run the binary");
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(variable), "{stderr}");
    }
}

/// A local TCP port that was free a moment ago (bound, then released), for a child process or
/// an address nothing listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `condition` every 20 ms until it holds; fails the test after `limit`, naming `what`.
pub async fn eventually<F, Fut>(what: &str, limit: std::time::Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Who a test request is sent as, with [`user_token`] and [`admin_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// No `Authorization` header.
    Anonymous,
    /// A signed-in user (role `user`) with this id.
    User(i64),
    /// An admin with this id.
    Admin(i64),
}

impl Who {
    /// The bearer token sent, if any.
    pub fn token(self) -> Option<String> {
        match self {
            Self::Anonymous => None,
            Self::User(id) => Some(user_token(id)),
            Self::Admin(id) => Some(admin_token(id)),
        }
    }

    /// `request` sent as this caller.
    pub fn sign(self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.token() {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

#[cfg(test)]
mod metric_family_tests {
    use super::assert_distinct_metric_families;

    #[test]
    fn a_gauge_and_a_counter_of_one_family_are_refused() {
        let text = "# TYPE chat_open_connections gauge\nchat_open_connections 1\n\
                    # TYPE chat_connections counter\nchat_connections_total 3\n";
        assert_eq!(
            assert_distinct_metric_families(text),
            ["chat_open_connections", "chat_connections"]
        );
        let clash = "# TYPE chat_connections gauge\nchat_connections 1\n\
                     # TYPE chat_connections_total counter\nchat_connections_total 3\n";
        let refused = std::panic::catch_unwind(|| assert_distinct_metric_families(clash));
        assert!(refused.is_err());
        let twice = "# TYPE up counter\nup_total{service=\"users\",route=\"/a/{id},x\",service=\"graphql\"} 1\n";
        assert!(std::panic::catch_unwind(|| assert_distinct_metric_families(twice)).is_err());
        let once = "# TYPE up counter\nup_total{upstream=\"users\",route=\"/a/{id},\\\"x\",service=\"graphql\"} 1\n";
        assert_eq!(assert_distinct_metric_families(once), ["up"]);
    }
}
