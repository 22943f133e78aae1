//! The operations page at `/ops`: the overview is for admins only (401 without a token, 403
//! for a user, on both paths), and carries each upstream instance's series once the collector
//! has scraped it twice; an instance answering garbage or too much is shown so, and the
//! gateway goes on. Then in headless Chromium ([`testing::Browser`]) against a real
//! users-service and worker behind the gateway: an admin signs in through the page, the
//! services' cards show them ready with points in their charts, the queue's figures and its
//! dead letters are listed (a hostile error text shown as text), and a dead letter is replayed,
//! one deleted and the rest purged from the page. A screenshot is written to
//! `$CARGO_TARGET_TMPDIR/ops.png`.

use std::collections::HashMap;

use gateway::{config::OpsConfig, resolve::Resolver};
use runtime::test_logger;
use serde_json::{Value, json};
use testing::{Browser, TestBackend, TestService, fresh_database, service_settings, test_keys};

use crate::{
    helpers::{TestGateway, config, route, spawn, spawn_resolving},
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
            2,
            "one instance behind three routes, and the gateway: {body}"
        );
        let own = &services[1];
        assert_eq!(
            (&own["service"], &own["instance"], &own["healthy"]),
            (&json!("gateway"), &json!("gateway"), &json!(true)),
            "{body}"
        );
        assert_eq!(own["readiness"]["status"], "ready", "{body}");
        assert_eq!(
            own["readiness"]["checks"],
            json!([
                {"name": "/.well-known/jwks.json", "state": "ok"},
                {"name": "/api/users", "state": "ok"},
                {"name": "/api/auth", "state": "ok"},
            ]),
            "{body}"
        );
        assert_eq!(
            own["points"][0]["rate"], 0.0,
            "the gateway's own answers (this overview) are not its traffic: {body}"
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
            let busy = |index: usize| {
                body["services"][index]["points"]
                    .as_array()
                    .and_then(|points| points.iter().rev().find(|p| p["rate"].as_f64() > Some(0.0)))
                    .cloned()
            };
            // The gateway's card counts the same requests, from its own registry.
            busy(1).and(busy(0))
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
async fn each_address_of_a_name_is_an_instance_asked_with_the_name() {
    // Two pods behind one name (a headless Service): counters far apart, as two processes'.
    let pod = |requests: u32| {
        let body = format!(
            "http_requests_total{{service=\"users\",route=\"/x\",status=\"200\"}} {requests}\n"
        );
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        ScriptedUpstream::start(vec![vec![Some(String::leak(reply).as_bytes())]; 1000])
    };
    let (first, second) = (pod(1000).await, pod(5).await);
    let addresses: Vec<std::net::SocketAddr> = [&first.url, &second.url]
        .iter()
        .map(|url| {
            url.trim_start_matches("http://")
                .parse()
                .expect("an address")
        })
        .collect();
    let name = "users.test:80";
    let mut config = config(vec![route("/api/users", &[&format!("http://{name}")])]);
    config.ops = quick_ops();
    let gateway = spawn_resolving(
        config,
        test_logger("gateway"),
        testing::test_verifier(),
        Resolver::Fixed(HashMap::from([(name.to_owned(), addresses.clone())])),
    );
    let admin = format!("Bearer {}", testing::admin_token(1));
    let services = || async {
        let body: Value = overview(&gateway, Some(&admin))
            .await
            .json()
            .await
            .expect("JSON");
        body["services"].as_array().cloned().unwrap_or_default()
    };
    testing::eventually(
        "both pods with points",
        std::time::Duration::from_secs(20),
        || async {
            let services = services().await;
            services.len() == 3
                && services[..2]
                    .iter()
                    .all(|pod| pod["points"].as_array().is_some_and(|p| p.len() >= 2))
        },
    )
    .await;
    let services = services().await;
    for (index, address) in addresses.iter().enumerate() {
        let pod = &services[index];
        assert_eq!(pod["name"], name, "{pod}");
        assert_eq!(pod["instance"], address.to_string(), "{pod}");
        assert_eq!(pod["routes"], json!(["/api/users"]), "{pod}");
        assert_eq!(pod["healthy"], true, "{pod}");
        // Each pod's counter is read against its own: no drop read as a restart.
        assert!(
            pod["points"]
                .as_array()
                .expect("points")
                .iter()
                .all(|point| point["rate"] == 0.0),
            "{pod}"
        );
    }
    assert_eq!(services[2]["service"], "gateway");
    for pod in [&first, &second] {
        let asked = pod.received();
        assert!(!asked.is_empty());
        assert!(
            asked.iter().all(|request| String::from_utf8_lossy(request)
                .to_ascii_lowercase()
                .contains(&format!("\r\nhost: {name}\r\n"))),
            "asked with the name as Host"
        );
    }
    gateway.server.stop().await;
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

#[tokio::test]
async fn bad_tokens_at_the_overview_are_throttled_and_other_methods_refused() {
    let users = users_service(None).await;
    for path in ["direct", "hyper"] {
        // A catch-all route below: no method under `/ops` or `/api/docs` reaches it.
        let mut gateway_config = config(vec![route("/", &[&users.address])]);
        gateway_config.server.direct_path = path == "direct";
        gateway_config.rate_limit = Some(gateway::config::RateLimitConfig {
            per_second: 1,
            burst: 3,
        });
        let gateway = spawn(gateway_config);
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let response = overview(&gateway, Some("Bearer not-a-token")).await;
            statuses.push(response.status().as_u16());
            if response.status() == 429 {
                assert!(response.headers().contains_key("retry-after"), "{path}");
                assert_eq!(testing::error_code(response).await, "rate_limited");
            }
        }
        assert_eq!(statuses[..3], [401, 401, 401], "{path}");
        assert_eq!(statuses[4], 429, "{path}: {statuses:?}");

        for (method, target) in [
            ("POST", "/ops"),
            ("DELETE", "/ops/api/overview"),
            ("PUT", "/ops/assets/ops.js"),
            ("POST", "/api/docs"),
            ("PATCH", "/api/docs/docs.js"),
        ] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
            let response = gateway
                .client
                .request(method.clone(), gateway.url(target))
                .body("{}")
                .send()
                .await
                .expect("a request");
            assert_eq!(response.status(), 405, "{path} {method} {target}");
            assert_eq!(response.headers()["allow"], "GET, HEAD", "{path} {target}");
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{path} {target}"
            );
            assert_eq!(testing::error_code(response).await, "method_not_allowed");
        }
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

/// Evaluated in the signed-in page: each call the page makes, as `METHOD path`, in
/// `window.calls`.
const RECORD_CALLS: &str = "window.calls = []; const fetchOf = window.fetch; window.fetch = (path, options) => { window.calls.push(`${(options && options.method) || 'GET'} ${path}`); return fetchOf(path, options); }; true";

#[tokio::test]
async fn the_dead_letter_list_keeps_its_pages_and_a_click_is_one_call() {
    testing::skip_unless!(Chromium);
    let dir = std::env::temp_dir().join(format!("gateway-ops-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let email = "ops-pages@example.com";
    let password = "an ops admin password 43";
    let users = users_service(Some((email, password))).await;
    let worker = worker_service(&dir).await;
    let gateway = ops_gateway("hyper", &users.address, Some(&worker.address));
    // More dead letters than one page of the list (50).
    let queue =
        queue::JobQueue::connect(&queue::QueueArgs::embedded(&dir), test_logger("producer"))
            .await
            .expect("the worker's queue");
    for n in 0..56 {
        queue
            .enqueue(&format!("unknown_{n}"), json!({}), None)
            .await
            .expect("enqueued");
    }

    let mut browser = Browser::launch_with_window(1280, 1400).await;
    let page = browser.open("about:blank").await;
    browser.call(Some(&page), "Page.enable", json!({})).await;
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
    browser.evaluate(&page, RECORD_CALLS).await;
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
    // Page one, then "More": the second page's rows stay through the refreshes that follow.
    browser
        .wait_for(
            &page,
            "a first page and More",
            &format!("{DEAD_IDS}.length === 50 && !document.getElementById('dead-more').hidden"),
        )
        .await;
    browser
        .evaluate(&page, "document.getElementById('dead-more').click(); true")
        .await;
    browser
        .wait_for(&page, "the second page", &format!("{DEAD_IDS}.length > 50"))
        .await;
    // A refresh asks for the first page again: two asked means one drawn since.
    let calls = "window.calls.filter(call => call === 'GET /api/jobs/dead?limit=50').length";
    let lists = browser
        .evaluate(&page, calls)
        .await
        .as_u64()
        .expect("a count");
    browser
        .wait_for(
            &page,
            "two refreshes after More",
            &format!("{calls} >= {}", lists + 2),
        )
        .await;
    let shown = browser.evaluate(&page, &format!("{DEAD_IDS}.length")).await;
    assert!(
        shown.as_u64().is_some_and(|rows| rows > 50),
        "the rows More loaded stay: {shown}"
    );

    // Two clicks on a row's Replay: one call.
    let first = browser.evaluate(&page, &format!("{DEAD_IDS}[0]")).await;
    let first = first.as_str().expect("an id").to_owned();
    browser
        .evaluate(
            &page,
            &format!("const replay = document.querySelector('#dead tr[data-id=\"{first}\"] button.replay'); replay.click(); replay.click(); true"),
        )
        .await;
    browser
        .wait_for(
            &page,
            "the replay done",
            &format!(
                "document.getElementById('dead-status').textContent.startsWith('Replayed {first}.')"
            ),
        )
        .await;
    assert_eq!(
        browser
            .evaluate(
                &page,
                &format!("window.calls.filter(call => call === 'POST /api/jobs/dead/{first}/replay').length"),
            )
            .await,
        1,
        "one call for a double click"
    );
    // A bulk action disables both bulk buttons until it is done.
    browser
        .evaluate(&page, "document.getElementById('purge-all').click(); document.getElementById('confirm-yes').click(); true")
        .await;
    assert_eq!(
        browser
            .evaluate(
                &page,
                "[document.getElementById('purge-all').disabled, document.getElementById('replay-all').disabled]"
            )
            .await,
        json!([true, true]),
        "the bulk buttons while the purge runs"
    );
    browser
        .wait_for(
            &page,
            "the purge done, the buttons back",
            "document.getElementById('dead-status').textContent.startsWith('Purged') && !document.getElementById('purge-all').disabled",
        )
        .await;

    queue.close().await;
    gateway.server.stop().await;
    worker.server.stop().await;
    users.server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

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
