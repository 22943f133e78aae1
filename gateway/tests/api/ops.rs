//! The operations page at `/ops`: the overview is for admins only (401 without a token, 403
//! for a user, on both paths), and carries each upstream instance's series once the collector
//! has scraped it twice; an instance answering garbage or too much is shown so, and the
//! gateway goes on. Then in headless Chromium ([`testing::Browser`]) against a real
//! users-service and worker behind the gateway: an admin signs in through the page, the
//! services' cards show them ready with points in their charts, the queue's figures and its
//! dead letters are listed (a hostile error text shown as text), and a dead letter is replayed,
//! one deleted and the rest purged from the page. A screenshot is written to
//! `$CARGO_TARGET_TMPDIR/ops.png`.

use gateway::config::OpsConfig;
use runtime::test_logger;
use serde_json::{Value, json};
use testing::{Browser, TestBackend, TestService, fresh_database, service_settings, test_keys};

use crate::{
    helpers::{TestGateway, config, route, spawn},
    scripted::ScriptedUpstream,
};

/// Collector settings quick enough for a test.
fn quick_ops() -> OpsConfig {
    OpsConfig {
        enabled: true,
        interval_ms: 300,
        window_secs: 60,
        ..OpsConfig::default()
    }
}

/// A gateway on `path` in front of users-service (its routes) and, if any, the worker's Jobs
/// API, collecting every 300 ms.
fn ops_gateway(path: &str, users: &str, worker: Option<&str>) -> TestGateway {
    let mut routes = vec![
        route("/api/users", &[users]),
        route("/api/auth", &[users]),
        route("/.well-known/jwks.json", &[users]),
    ];
    if let Some(worker) = worker {
        routes.push(route("/api/jobs", &[worker]));
    }
    let mut config = config(routes);
    config.server.threads = 1;
    config.server.direct_path = path == "direct";
    config.ops = quick_ops();
    spawn(config)
}

/// users-service on a fresh SQLite database, signing with the test keys the gateway checks,
/// with `admin` bootstrapped.
async fn users_service(admin: Option<(&str, &str)>) -> TestService {
    let database = fresh_database(TestBackend::Sqlite)
        .await
        .expect("a fresh test database");
    let settings = service_settings(users_service::NAME, users_service::DEFAULT_PORT, database);
    let mut identity = users_service::IdentityOptions::new(test_keys());
    identity.admin = admin.map(|(email, password)| users_service::bootstrap::AdminAccount {
        email: email.to_owned(),
        password: password.to_owned(),
    });
    TestService::start(settings, test_logger("users"), |settings, logger| {
        users_service::Application::build(settings, identity, logger)
    })
    .await
}

/// `GET /ops/api/overview` with `authorization`, if any.
async fn overview(gateway: &TestGateway, authorization: Option<&str>) -> reqwest::Response {
    let mut request = gateway.client.get(gateway.url("/ops/api/overview"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.expect("GET the overview")
}

#[tokio::test]
async fn the_overview_is_for_admins_and_carries_each_instances_series() {
    let users = users_service(None).await;
    for path in ["direct", "hyper"] {
        let gateway = ops_gateway(path, &users.address, None);

        let anonymous = overview(&gateway, None).await;
        assert_eq!(anonymous.status(), 401, "{path}");
        assert!(
            anonymous.headers()["www-authenticate"]
                .to_str()
                .is_ok_and(|value| value.starts_with("Bearer")),
            "{path}"
        );
        assert_eq!(testing::error_code(anonymous).await, "unauthorized");
        let bad = overview(&gateway, Some("Bearer not-a-token")).await;
        assert_eq!(bad.status(), 401, "{path}");
        let user = overview(
            &gateway,
            Some(&format!("Bearer {}", testing::user_token(7))),
        )
        .await;
        assert_eq!(user.status(), 403, "{path}");
        assert_eq!(testing::error_code(user).await, "forbidden");

        let admin = format!("Bearer {}", testing::admin_token(1));
        let points = || async {
            let response = overview(&gateway, Some(&admin)).await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["cache-control"], "no-store");
            response.json::<Value>().await.expect("JSON")["services"][0]["points"]
                .as_array()
                .map_or(0, Vec::len)
        };
        testing::eventually(
            "two points of users-service",
            std::time::Duration::from_secs(20),
            || async { points().await >= 2 },
        )
        .await;
        let body: Value = overview(&gateway, Some(&admin))
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(body["collecting"], true);
        assert_eq!(body["interval_ms"], 300);
        let services = body["services"].as_array().expect("services");
        assert_eq!(
            services.len(),
            1,
            "one instance behind three routes: {body}"
        );
        let users_state = &services[0];
        assert_eq!(users_state["service"], "users", "{body}");
        assert_eq!(
            users_state["instance"],
            users.address.trim_start_matches("http://")
        );
        assert_eq!(users_state["healthy"], true, "{body}");
        assert_eq!(users_state["readiness"]["status"], "ready", "{body}");
        let idle = &users_state["points"][0];
        assert_eq!(
            (&idle["rate"], &idle["error_rate"], &idle["p99"]),
            (&json!(0.0), &Value::Null, &Value::Null),
            "the collector's own scrapes are not counted: {idle}"
        );

        // Traffic through the gateway: a point with its rate and latency.
        let busy = || async {
            for _ in 0..5 {
                assert_eq!(gateway.get("/api/users").await.status(), 200);
            }
            let body: Value = overview(&gateway, Some(&admin))
                .await
                .json()
                .await
                .expect("JSON");
            body["services"][0]["points"]
                .as_array()
                .and_then(|points| points.iter().rev().find(|p| p["rate"].as_f64() > Some(0.0)))
                .cloned()
        };
        testing::eventually(
            "a point with requests",
            std::time::Duration::from_secs(20),
            || async { busy().await.is_some() },
        )
        .await;
        let point = busy().await.expect("a point with requests");
        assert_eq!(point["error_rate"], 0.0, "{point}");
        assert!(
            point["p99"]
                .as_f64()
                .is_some_and(|p99| p99 > 0.0 && p99 < 10.0),
            "{point}"
        );
        assert!(
            point["memory"].as_f64().is_some_and(|bytes| bytes > 1e6),
            "{point}"
        );
        gateway.server.stop().await;
    }
    users.server.stop().await;
}

#[tokio::test]
async fn garbage_and_oversized_answers_are_shown_as_such_and_the_gateway_goes_on() {
    // Each connection answers once; enough of them for the scrapes of the test.
    let answering = |reply: &'static [u8]| ScriptedUpstream::start(vec![vec![Some(reply)]; 1000]);
    let garbage = answering(
        b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{A}0\nm{a=\"\nhttp_requests_total{ 5\n\xff\xfe\x00 1\n",
    )
    .await;
    let mut oversized = b"HTTP/1.1 200 OK\r\nContent-Length: 2097152\r\n\r\n".to_vec();
    oversized.resize(oversized.len() + 2 * 1024 * 1024, b'#');
    let oversized = answering(Vec::leak(oversized)).await;
    let mut config = config(vec![
        route("/garbage", &[&garbage.url]),
        route("/oversized", &[&oversized.url]),
    ]);
    config.ops = quick_ops();
    let gateway = spawn(config);
    let admin = format!("Bearer {}", testing::admin_token(1));
    let state = || async {
        let body: Value = overview(&gateway, Some(&admin))
            .await
            .json()
            .await
            .expect("JSON");
        body["services"].clone()
    };
    testing::eventually(
        "two scrapes of the garbage and an oversized one",
        std::time::Duration::from_secs(20),
        || async {
            let services = state().await;
            services[0]["points"]
                .as_array()
                .is_some_and(|p| p.len() >= 2)
                && services[1]["error"]
                    .as_str()
                    .is_some_and(|error| error.contains("length limit exceeded"))
        },
    )
    .await;
    let services = state().await;
    let point = &services[0]["points"][0];
    assert_eq!(services[0]["healthy"], true, "{services}");
    assert_eq!(
        (&point["rate"], &point["error_rate"], &point["p99"]),
        (&json!(0.0), &Value::Null, &Value::Null),
        "nothing readable: no request counted: {services}"
    );
    assert!(services[0]["error"].is_null(), "{services}");
    assert_eq!(
        services[1]["readiness"]["status"], "unreachable",
        "{services}"
    );
    assert_eq!(services[1]["points"], json!([]), "{services}");
    assert_eq!(gateway.get("/healthz").await.status(), 200);
    gateway.server.stop().await;
}

#[tokio::test]
async fn the_page_and_its_files_are_the_gateways_own_under_a_strict_policy() {
    let users = users_service(None).await;
    for path in ["direct", "hyper"] {
        // A catch-all route below: `/ops` is answered before it.
        let mut gateway_config = config(vec![route("/", &[&users.address])]);
        gateway_config.server.direct_path = path == "direct";
        let gateway = spawn(gateway_config);
        let page = gateway.get("/ops").await;
        assert_eq!(page.status(), 200, "{path}");
        let policy = page.headers()["content-security-policy"]
            .to_str()
            .expect("text")
            .to_owned();
        assert!(
            policy.starts_with("default-src 'self'; script-src 'self';"),
            "{policy}"
        );
        assert!(
            !policy.contains("unsafe") && !policy.contains("http"),
            "{policy}"
        );
        assert!(
            page.text()
                .await
                .expect("text")
                .contains("/ops/assets/ops.js")
        );
        for (file, content_type) in [
            ("/ops/assets/ops.js", "text/javascript; charset=utf-8"),
            ("/ops/assets/ops.css", "text/css; charset=utf-8"),
        ] {
            let response = gateway.get(file).await;
            assert_eq!(response.status(), 200, "{path} {file}");
            assert_eq!(response.headers()["content-type"], content_type);
        }
        let missing = gateway.get("/ops/assets/nothing.js").await;
        assert_eq!(missing.status(), 404, "{path}");
        assert_eq!(testing::error_code(missing).await, "not_found");
        gateway.server.stop().await;
    }
    users.server.stop().await;
}

/// The worker on the embedded queue in `dir`, checking the test keys' tokens.
async fn worker_service(dir: &std::path::Path) -> TestService {
    let url = runtime::DatabaseUrl(format!("sqlite://{}/worker.db", dir.display()));
    let settings = service_settings(worker::NAME, worker::DEFAULT_PORT, url);
    let worker_settings = worker::Settings::embedded(dir);
    TestService::start(settings, test_logger("worker"), |settings, logger| {
        worker::Application::build(settings, worker_settings, logger)
    })
    .await
}

/// Evaluated in the page before its own scripts: the policy's violations, kept for the test.
const RECORD_VIOLATIONS: &str = "window.violations = []; document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));";

/// The dead letters' ids in the page's table.
const DEAD_IDS: &str =
    "[...document.querySelectorAll('#dead tbody tr[data-id]')].map(row => row.dataset.id)";

#[tokio::test]
async fn an_admin_watches_the_services_and_replays_and_purges_dead_letters() {
    testing::skip_unless!(Chromium);
    let dir = std::env::temp_dir().join(format!("gateway-ops-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let email = "ops-admin@example.com";
    let password = "an ops admin password 42";
    let users = users_service(Some((email, password))).await;
    let worker = worker_service(&dir).await;
    let gateway = ops_gateway("direct", &users.address, Some(&worker.address));
    // Some traffic for the charts, paced, until the test ends.
    let traffic = {
        let client = gateway.client.clone();
        let (users_url, jobs_url) = (gateway.url("/api/users"), gateway.url("/api/jobs/stats"));
        let token = testing::admin_token(1);
        tokio::spawn(async move {
            loop {
                let _ = client.get(&users_url).send().await;
                let _ = client.get(&jobs_url).bearer_auth(&token).send().await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };

    // Jobs of kinds the worker does not know: dead letters at once, one with markup for an
    // error text.
    let queue =
        queue::JobQueue::connect(&queue::QueueArgs::embedded(&dir), test_logger("producer"))
            .await
            .expect("the worker's queue");
    for kind in ["launch_rockets", "<img src=x id=injected>"] {
        queue
            .enqueue(kind, json!({}), None)
            .await
            .expect("enqueued");
    }

    let mut browser = Browser::launch_with_window(1280, 1400).await;
    let page = browser.open("about:blank").await;
    browser.call(Some(&page), "Page.enable", json!({})).await;
    browser
        .call(
            Some(&page),
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": RECORD_VIOLATIONS}),
        )
        .await;
    browser
        .call(
            Some(&page),
            "Page.navigate",
            json!({"url": gateway.url("/ops")}),
        )
        .await;
    browser
        .wait_for(
            &page,
            "the sign-in form",
            "!document.getElementById('signin').hidden",
        )
        .await;
    browser
        .evaluate(
            &page,
            &format!(
                "document.getElementById('signin-email').value = {}; document.getElementById('signin-password').value = {}; document.getElementById('signin-submit').click(); true",
                json!(email),
                json!(password)
            ),
        )
        .await;

    // Both services' cards: ready, with points in each chart.
    for service in ["users", "worker"] {
        let card = format!("document.querySelector('.card[data-service=\"{service}\"]')");
        browser
            .wait_for(
                &page,
                &format!("{service}'s card ready with points"),
                &format!(
                    "{card}.querySelector('.readiness').textContent === 'ready' && [...{card}.querySelectorAll('svg.spark')].every(svg => Number(svg.dataset.points) >= 3)"
                ),
            )
            .await;
    }
    browser
        .wait_for(
            &page,
            "the queue's figures",
            "document.querySelector('#queues tbody tr') !== null && !document.getElementById('queues').hidden",
        )
        .await;
    browser
        .wait_for(
            &page,
            "two dead letters",
            &format!("{DEAD_IDS}.length === 2"),
        )
        .await;
    let shown = browser
        .evaluate(
            &page,
            "[[...document.querySelectorAll('#dead td.error-text')].map(cell => cell.textContent).join(' | '), document.getElementById('injected') === null, document.querySelector('#queues tbody tr td:nth-child(6)').textContent]",
        )
        .await;
    assert!(
        shown[0]
            .as_str()
            .is_some_and(|errors| errors.contains("<img src=x id=injected>")),
        "the hostile error shown as text: {shown}"
    );
    assert_eq!(shown[1], true, "and never as markup: {shown}");
    assert_eq!(shown[2], "2", "the queue's dead count: {shown}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops.png");
    browser.screenshot(&page, &path).await;

    // Replay one: its row goes (the job goes back to the queue, and dies again as a new row).
    let ids = browser.evaluate(&page, DEAD_IDS).await;
    let first = ids[0].as_str().expect("an id").to_owned();
    browser
        .evaluate(
            &page,
            &format!("document.querySelector('#dead tr[data-id=\"{first}\"] button.replay').click(); true"),
        )
        .await;
    browser
        .wait_for(
            &page,
            "the replay done",
            &format!(
                "document.getElementById('dead-status').textContent.startsWith('Replayed {first}.') && !{DEAD_IDS}.includes('{first}')"
            ),
        )
        .await;
    // Delete another.
    browser
        .wait_for(
            &page,
            "a dead letter to delete",
            &format!("{DEAD_IDS}.length >= 1"),
        )
        .await;
    let victim = browser.evaluate(&page, &format!("{DEAD_IDS}[0]")).await;
    let victim = victim.as_str().expect("an id").to_owned();
    browser
        .evaluate(
            &page,
            &format!("document.querySelector('#dead tr[data-id=\"{victim}\"] button.delete').click(); true"),
        )
        .await;
    browser
        .wait_for(
            &page,
            "the delete done",
            &format!("!{DEAD_IDS}.includes('{victim}')"),
        )
        .await;
    // Purge the rest: asked once more, then done.
    testing::eventually(
        "the replayed job dead again",
        std::time::Duration::from_secs(20),
        || async { queue.depth().await.is_ok_and(|depth| depth.ready == 0) },
    )
    .await;
    browser
        .evaluate(&page, "document.getElementById('purge-all').click(); true")
        .await;
    assert_eq!(
        browser
            .evaluate(&page, "[document.getElementById('confirm').hidden, document.getElementById('confirm-text').textContent]")
            .await,
        json!([false, "Delete every dead letter for good?"]),
        "a confirm step first"
    );
    browser
        .evaluate(
            &page,
            "document.getElementById('confirm-yes').click(); true",
        )
        .await;
    browser
        .wait_for(
            &page,
            "no dead letter left",
            &format!(
                "{DEAD_IDS}.length === 0 && document.querySelector('#dead tbody tr.empty') !== null"
            ),
        )
        .await;
    assert_eq!(
        browser.evaluate(&page, "window.violations").await,
        json!([]),
        "nothing the policy blocks"
    );

    traffic.abort();
    queue.close().await;
    gateway.server.stop().await;
    worker.server.stop().await;
    users.server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
