//! The API docs at `/api/docs`: served by the gateway itself on both paths, before any `/api`
//! route; its Swagger UI files gzipped (or decompressed), cached for a year under a versioned
//! path; the page under a strict `Content-Security-Policy`. Then in headless Chromium
//! ([`testing::Browser`]) against a real users-service behind the gateway: the page lists the
//! three documents, renders the users one, signs in through its form with an account made by
//! the API, and "Try it out" on `GET /api/auth/me` answers 200 with that account. A screenshot
//! is written to `$CARGO_TARGET_TMPDIR/api-docs.png`.

use std::io::Read;

use gateway::config::GatewayConfig;
use runtime::test_logger;
use serde_json::{Value, json};
use testing::{Browser, TestBackend, TestService, fresh_database, service_settings, test_keys};

use crate::{
    framing::{PATHS, split},
    helpers::{TestGateway, config, exchange_raw, route, spawn},
    scripted::ScriptedUpstream,
};

/// Where the vendored Swagger UI is served.
const ASSETS: &str = "/api/docs/assets/swagger-ui-5.35.0";

/// A gateway on `path` whose `/api` route goes to `upstream`, with the built-in routes' OpenAPI
/// documents.
fn docs_gateway(path: &str, upstream: &str) -> TestGateway {
    let mut routes = GatewayConfig::builtin().routes;
    for route in &mut routes {
        route.upstreams = vec![upstream.to_owned()];
    }
    routes.push(route("/api", &[upstream]));
    let mut config = config(routes);
    config.server.threads = 1;
    config.server.direct_path = path == "direct";
    spawn(config)
}

/// `GET target` with `fields`, as raw bytes; the status, lower-cased head and raw body.
async fn get(gateway: &TestGateway, target: &str, fields: &str) -> (u16, String, Vec<u8>) {
    let request = format!("GET {target} HTTP/1.1\r\nHost: h\r\n{fields}Connection: close\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(&gateway.authority)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .expect("send");
    let mut response = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response)
        .await
        .expect("read");
    let end = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let (status, head, _) = split(&String::from_utf8_lossy(&response[..end]));
    (status, head, response[end..].to_vec())
}

#[tokio::test]
async fn the_docs_are_the_gateways_own_with_a_strict_policy_and_versioned_assets() {
    for path in PATHS {
        let upstream =
            ScriptedUpstream::always(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nup").await;
        let gateway = docs_gateway(path, &upstream.url);

        let (status, head, body) = get(&gateway, "/api/docs", "").await;
        assert_eq!(status, 200, "{path}: {head}");
        assert!(
            head.contains("content-type: text/html; charset=utf-8"),
            "{path}: {head}"
        );
        assert!(head.contains("cache-control: no-cache"), "{path}: {head}");
        let policy = head
            .lines()
            .find_map(|line| line.strip_prefix("content-security-policy: "))
            .unwrap_or_else(|| panic!("{path}: a policy: {head}"));
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(
            !policy.contains("http") && !policy.contains("unsafe"),
            "{policy}"
        );
        let page = String::from_utf8(body).expect("text");
        for document in [
            "/api/users/openapi.json",
            "/api/products/openapi.json",
            "/api/media/openapi.json",
        ] {
            assert!(page.contains(document), "{path}: {document} listed: {page}");
        }
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "{page}"
        );

        // Swagger UI's files: gzip for a client that takes it, plain for one that does not.
        let bundle = format!("{ASSETS}/swagger-ui-bundle.js");
        let (status, head, gzipped) = get(&gateway, &bundle, "Accept-Encoding: br, gzip\r\n").await;
        assert_eq!(status, 200, "{path}: {head}");
        assert!(head.contains("content-encoding: gzip"), "{path}: {head}");
        assert!(
            head.contains("cache-control: public, max-age=31536000, immutable"),
            "{path}: {head}"
        );
        assert!(head.contains("vary: accept-encoding"), "{path}: {head}");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gzipped[..])
            .read_to_end(&mut unzipped)
            .expect("gzip");
        let (status, head, plain) = get(&gateway, &bundle, "Accept-Encoding: gzip;q=0\r\n").await;
        assert_eq!(status, 200, "{path}: {head}");
        assert!(!head.contains("content-encoding"), "{path}: {head}");
        assert_eq!(plain, unzipped, "{path}: the same script either way");
        assert!(
            String::from_utf8_lossy(&plain).contains("SwaggerUIBundle"),
            "{path}"
        );

        let (status, head, body) = get(&gateway, "/api/docs/docs.js", "").await;
        assert_eq!(status, 200, "{path}: {head}");
        assert!(String::from_utf8_lossy(&body).contains("preauthorizeApiKey"));
        let (status, _, body) = get(&gateway, &format!("{ASSETS}/nothing.js"), "").await;
        assert_eq!(status, 404, "{path}");
        let error: Value = serde_json::from_slice(&body).expect("the JSON error body");
        assert_eq!(error["error"]["code"], "not_found");

        // The `/api` route below: only what is not the docs reaches it.
        assert!(
            upstream.received().is_empty(),
            "{path}: {:?}",
            upstream.requests()
        );
        let text = exchange_raw(
            &gateway.authority,
            b"GET /api/docsx HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(split(&text).0, 200, "{path}: {text}");
        assert_eq!(upstream.received().len(), 1, "{path}");
        gateway.server.stop().await;
    }
}

/// users-service on a fresh SQLite database, signing with the test keys the gateway checks.
async fn users_service() -> TestService {
    let database = fresh_database(TestBackend::Sqlite)
        .await
        .expect("a fresh test database");
    let settings = service_settings(users_service::NAME, users_service::DEFAULT_PORT, database);
    TestService::start(settings, test_logger("users"), |settings, logger| {
        users_service::Application::build(
            settings,
            users_service::IdentityOptions::new(test_keys()),
            logger,
        )
    })
    .await
}

/// Evaluated in the page before its own scripts: the policy's violations, kept for the test.
const RECORD_VIOLATIONS: &str = "window.violations = []; document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));";

/// The operation block of `path` on the page.
fn operation(path: &str) -> String {
    format!(
        "[...document.querySelectorAll('.opblock')].find(block => block.querySelector('.opblock-summary-path')?.getAttribute('data-path') === {})",
        json!(path)
    )
}

#[tokio::test]
async fn swagger_ui_signs_in_and_tries_an_authenticated_call() {
    testing::skip_unless!(Chromium);
    let users = users_service().await;
    // The built-in routes: users-service's behind the gateway, the other services' nowhere
    // (their documents are listed, not loaded).
    let mut gateway_config = GatewayConfig::builtin();
    for route in &mut gateway_config.routes {
        let users_route = ["/api/users", "/api/auth", "/.well-known/jwks.json"];
        route.upstreams = vec![if users_route.contains(&route.prefix.as_str()) {
            users.address.clone()
        } else {
            "http://127.0.0.1:9".to_owned()
        }];
    }
    gateway_config.server.threads = 1;
    let gateway = spawn(gateway_config);

    let email = format!("docs-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "a long docs password 42";
    let signup = gateway
        .client
        .post(gateway.url("/api/auth/signup"))
        .json(&json!({"name": "Dora Docs", "email": email, "password": password}))
        .send()
        .await
        .expect("sign up");
    assert_eq!(signup.status(), 201, "{:?}", signup.text().await);

    let mut browser = Browser::launch().await;
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
            json!({"url": gateway.url("/api/docs")}),
        )
        .await;

    // The three documents in Swagger UI's selector; the first, users-service's, rendered.
    let listed =
        "[...document.querySelectorAll('.topbar select option')].map(option => option.value)";
    browser
        .wait_for(
            &page,
            "the documents listed",
            &format!("{listed}.length === 3"),
        )
        .await;
    assert_eq!(
        browser.evaluate(&page, listed).await,
        json!([
            "/api/users/openapi.json",
            "/api/products/openapi.json",
            "/api/media/openapi.json"
        ])
    );
    let me = operation("/api/auth/me");
    browser
        .wait_for(
            &page,
            "users-service's operations",
            &format!("{me} !== undefined"),
        )
        .await;
    assert!(
        browser
            .evaluate(&page, "document.querySelectorAll('.opblock').length")
            .await
            .as_u64()
            .is_some_and(|count| count >= 10),
        "users-service's operations rendered"
    );

    // Sign in through the page's form.
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
    browser
        .wait_for(
            &page,
            "signed in",
            &format!(
                "document.getElementById('signin-status').textContent.includes({})",
                json!(format!("Signed in as {email}"))
            ),
        )
        .await;

    // `GET /api/auth/me`: opened, "Try it out", "Execute".
    browser
        .evaluate(
            &page,
            &format!("{me}.querySelector('.opblock-summary-control').click(); true"),
        )
        .await;
    browser
        .wait_for(
            &page,
            "the operation's Try it out",
            &format!("{me}.querySelector('.try-out__btn') !== null"),
        )
        .await;
    browser
        .evaluate(
            &page,
            &format!("{me}.querySelector('.try-out__btn').click(); true"),
        )
        .await;
    browser
        .wait_for(
            &page,
            "the operation's Execute",
            &format!("{me}.querySelector('.execute') !== null"),
        )
        .await;
    browser
        .evaluate(
            &page,
            &format!("{me}.querySelector('.execute').click(); true"),
        )
        .await;
    let live = format!("{me}.querySelector('.live-responses-table tbody tr.response')");
    browser
        .wait_for(
            &page,
            "the call's response",
            &format!("{live}.querySelector('.response-col_status') !== null"),
        )
        .await;
    let shown = browser
        .evaluate(
            &page,
            &format!(
                "[{live}.querySelector('.response-col_status').innerText.trim(), {live}.querySelector('.response-col_description').innerText, {me}.querySelector('.curl-command, .request-url')?.innerText ?? '']"
            ),
        )
        .await;
    assert_eq!(shown[0], "200", "the authenticated call: {shown}");
    assert!(
        shown[1]
            .as_str()
            .is_some_and(|body| body.contains(&email) && body.contains("Dora Docs")),
        "the account's data: {shown}"
    );

    browser
        .evaluate(&page, &format!("{me}.scrollIntoView(); true"))
        .await;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("api-docs.png");
    browser.screenshot(&page, &path).await;

    // The token is in this tab's sessionStorage only, nothing of it in the origin's
    // localStorage (which /ops, GraphiQL and chat share), even from Swagger UI's own Authorize
    // dialog (its action stands in here, for a scheme of another document, `other`).
    browser
        .evaluate(
            &page,
            "ui.authActions.authorizeWithPersistOption({other: {name: 'other', value: 'x', schema: {type: 'http', scheme: 'bearer'}}}); true",
        )
        .await;
    assert_eq!(
        browser
            .evaluate(
                &page,
                "[localStorage.length, typeof sessionStorage.getItem('api-docs.token'), ui.authSelectors.authorized().size]"
            )
            .await,
        json!([0, "string", 2]),
        "the token kept for this tab only"
    );
    // Signing out drops every authorisation, whichever document's scheme it is under, and the
    // stored token.
    browser
        .evaluate(&page, "document.getElementById('signout').click(); true")
        .await;
    assert_eq!(
        browser
            .evaluate(
                &page,
                "[ui.authSelectors.authorized().size, sessionStorage.getItem('api-docs.token'), localStorage.length]"
            )
            .await,
        json!([0, null, 0]),
        "nothing authorised after signing out"
    );
    assert_eq!(
        browser.evaluate(&page, "window.violations").await,
        json!([]),
        "nothing the policy blocks"
    );
    gateway.server.stop().await;
    users.server.stop().await;
}
