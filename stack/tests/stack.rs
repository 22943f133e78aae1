//! The stack starts every service on embedded defaults, seeds the demo rows once, and stops
//! cleanly.

use runtime::{Shutdown, test_logger};
use serde_json::Value;
use stack::{Stack, StackSettings};

async fn start(
    data_dir: &std::path::Path,
) -> (
    Vec<stack::Endpoint>,
    Shutdown,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    start_with(data_dir, Vec::new()).await
}

async fn start_with(
    data_dir: &std::path::Path,
    cors_allowed_origins: Vec<String>,
) -> (
    Vec<stack::Endpoint>,
    Shutdown,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut settings = StackSettings::new([127, 0, 0, 1].into());
    settings.port_override = Some(0);
    settings.data_dir = data_dir.to_owned();
    settings.cors_allowed_origins = cors_allowed_origins;
    let stack = Stack::build(settings, &test_logger("stack"))
        .await
        .expect("the stack builds");
    let endpoints = stack.endpoints("127.0.0.1");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(stack.run_until_stopped(shutdown.wait()));
    (endpoints, shutdown, task)
}

async fn names(url: &str, field: &str) -> Vec<String> {
    let rows: Vec<Value> = reqwest::get(url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON array");
    rows.iter()
        .map(|row| row[field].as_str().expect("a string field").to_owned())
        .collect()
}

#[tokio::test]
async fn serves_every_service_with_the_demo_rows_seeded_once() {
    let data_dir = std::env::temp_dir().join(format!("platform-stack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);

    for _ in 0..2 {
        let (endpoints, shutdown, task) = start(&data_dir).await;
        let url = |service: &str| {
            endpoints
                .iter()
                .find(|e| e.service == service)
                .expect("endpoint")
                .url
                .clone()
        };
        // The demo rows, then the admin generated on the first start (and only then).
        assert_eq!(
            names(&url("users"), "name").await,
            ["Alice", "Bob", "Admin"]
        );
        assert_eq!(
            names(&url("products"), "name").await,
            ["Laptop", "Smartphone"]
        );
        let laptop: Value = reqwest::get(format!("{}/1", url("products")))
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        assert_eq!(laptop["price"], 999.99);
        let gateway = url("gateway");
        let root = reqwest::get(&gateway)
            .await
            .expect("GET /")
            .text()
            .await
            .expect("text");
        assert_eq!(root, "API Gateway");
        let through_gateway = names(&format!("{gateway}/api/users"), "name").await;
        assert_eq!(
            through_gateway,
            ["Alice", "Bob", "Admin"],
            "users through the gateway"
        );
        signs_in_the_generated_admin_and_writes(&gateway, &data_dir).await;
        let products = names(&format!("{gateway}/api/products"), "name").await;
        assert_eq!(
            products,
            ["Laptop", "Smartphone"],
            "products through the gateway"
        );
        let posts: Value = reqwest::Client::new()
            .post(format!("{gateway}/graphql"))
            .json(&serde_json::json!({"query": "{ posts { title author { name } } }"}))
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("a GraphQL response");
        assert_eq!(
            posts["data"]["posts"],
            serde_json::json!([
                {"title": "GraphQL Intro", "author": {"name": "Alice"}},
                {"title": "Apollo Server", "author": {"name": "Alice"}},
                {"title": "REST vs GraphQL", "author": {"name": "Bob"}},
            ]),
            "the seed's posts, with authors from users-service, through the gateway"
        );
        let chat_page = reqwest::get(format!("{gateway}/chat"))
            .await
            .expect("GET /chat");
        assert_eq!(chat_page.status(), 200, "the chat page through the gateway");
        let handshake = reqwest::get(format!("{gateway}/socket.io/?EIO=4&transport=polling"))
            .await
            .expect("GET /socket.io/");
        assert_eq!(handshake.status(), 200, "Socket.IO through the gateway");
        let open = handshake.text().await.expect("a handshake");
        assert!(
            open.starts_with("0{") && open.contains("\"sid\""),
            "an Engine.IO open packet: {open}"
        );
        let media = reqwest::get(format!("{gateway}/api/media"))
            .await
            .expect("GET /api/media");
        assert_eq!(media.status(), 200, "media through the gateway");
        let worker = reqwest::get(format!(
            "{}/readyz",
            url("worker").trim_end_matches("/metrics")
        ))
        .await
        .expect("the worker's /readyz");
        assert_eq!(
            worker.status(),
            200,
            "the worker is ready on the embedded queue"
        );
        let ready = reqwest::get(format!("{gateway}/readyz"))
            .await
            .expect("GET /readyz");
        assert_eq!(
            ready.status(),
            200,
            "every route of the stack's gateway has a live upstream"
        );
        shutdown.trigger();
        task.await.expect("the stack task").expect("a clean stop");
    }
    for database in [
        stack::ADMIN_CREDENTIALS_FILE,
        "auth-signing-key.pem",
        "users.db",
        "products.db",
        "graphql.db",
        "chat.db",
        "media.db",
        "worker.db",
        "queue.db",
    ] {
        assert!(data_dir.join(database).exists(), "{database}");
    }
    std::fs::remove_dir_all(&data_dir).expect("cleanup");
}

/// The admin written to `admin-credentials` (0600) on the first start signs in through the
/// gateway and writes; anonymous writes are refused.
async fn signs_in_the_generated_admin_and_writes(gateway: &str, data_dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let file = data_dir.join(stack::ADMIN_CREDENTIALS_FILE);
    assert_eq!(
        std::fs::metadata(&file)
            .expect("written")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(data_dir.join("auth-signing-key.pem"))
            .expect("keys written")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&file).expect("readable");
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .expect("a field")
            .to_owned()
    };
    let client = reqwest::Client::new();
    let session: Value = client
        .post(format!("{gateway}/api/auth/login"))
        .json(&serde_json::json!({"email": field("email"), "password": field("password")}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("a session");
    assert_eq!(session["user"]["role"], "admin", "{session}");
    let token = session["access_token"].as_str().expect("a token");
    let product = serde_json::json!({"name": "Admin's", "price": 1.5});
    let anonymous = client
        .post(format!("{gateway}/api/products"))
        .json(&product)
        .send()
        .await
        .expect("POST");
    assert_eq!(anonymous.status(), 401);
    let created = client
        .post(format!("{gateway}/api/products"))
        .bearer_auth(token)
        .json(&product)
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.expect("JSON")["id"].clone();
    let deleted = client
        .delete(format!("{gateway}/api/products/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), 204);
}

/// `CORS_ALLOWED_ORIGINS` of the stack reaches its gateway: a front end on another origin (a dev
/// server) gets its preflight answered; another origin does not.
#[tokio::test]
async fn a_listed_origin_gets_cors_answers_from_the_stacks_gateway() {
    let data_dir = std::env::temp_dir().join(format!("platform-stack-cors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let (endpoints, shutdown, task) =
        start_with(&data_dir, vec!["http://localhost:5173".to_owned()]).await;
    let gateway = &endpoints
        .iter()
        .find(|e| e.service == "gateway")
        .expect("the gateway")
        .url;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{gateway}/api/products"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let listed = preflight("http://localhost:5173").await.expect("preflight");
    assert_eq!(listed.status(), 204);
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let unlisted = preflight("https://elsewhere.example")
        .await
        .expect("preflight");
    assert_eq!(unlisted.status(), 403);
    assert!(
        unlisted
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    shutdown.trigger();
    task.await.expect("the stack task").expect("a clean stop");
    std::fs::remove_dir_all(&data_dir).expect("cleanup");
}
