//! The stack starts every service on embedded defaults, seeds the demo rows once, and stops
//! cleanly.

use serde_json::Value;
use shared::{shutdown::Shutdown, telemetry::test_logger};
use stack::{Stack, StackSettings};

async fn start(
    data_dir: &std::path::Path,
) -> (
    Vec<stack::Endpoint>,
    Shutdown,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut settings = StackSettings::new([127, 0, 0, 1].into());
    settings.port_override = Some(0);
    settings.data_dir = data_dir.to_owned();
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
        assert_eq!(names(&url("users"), "name").await, ["Alice", "Bob"]);
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
            ["Alice", "Bob"],
            "users through the gateway"
        );
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
