//! The journey of issue 9, through the gateway only: REST → GraphQL, a subscription, chat,
//! an upload with its thumbnail, one request id across the logs, and the metrics — on the
//! `stack` binary (embedded defaults) and on every binary in its own process (real backends).

use std::time::Duration;

use e2e::{Backends, Platform, Process, free_port, metric};
use serde_json::{Value, json};

use crate::clients::{
    graphql, graphql_as, next_json, next_of_type, png, send, websocket, websocket_with,
};

async fn journey(platform: &Platform) {
    let gateway = platform.gateway.as_str();
    let client = reqwest::Client::new();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let admin = platform.admin_token().await;

    // 1. A user and a product over REST (admins create both), seen in GraphQL.
    let user: Value = client
        .post(format!("{gateway}/api/users"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Journey", "email": format!("journey-{unique}@example.com")}))
        .send()
        .await
        .expect("POST /api/users")
        .json()
        .await
        .expect("user JSON");
    let user_id = user["id"].as_i64().expect("a user id");
    let seen = graphql_as(
        gateway,
        Some(&admin),
        "query($id: ID!) { user(id: $id) { name email } }",
        json!({"id": user_id.to_string()}),
    )
    .await;
    assert_eq!(seen["user"]["name"], "Journey");
    assert_eq!(
        seen["user"]["email"],
        format!("journey-{unique}@example.com")
    );
    let product: Value = client
        .post(format!("{gateway}/api/products"))
        .bearer_auth(&admin)
        .json(&json!({"name": format!("Widget {unique}"), "price": 12.34}))
        .send()
        .await
        .expect("POST /api/products")
        .json()
        .await
        .expect("product JSON");
    let seen = graphql(
        gateway,
        "query($id: ID!) { product(id: $id) { name price } }",
        json!({"id": product["id"].to_string()}),
    )
    .await;
    assert_eq!(seen["product"]["price"], json!(12.34));

    // 2. A subscription receives a post created afterwards (by the admin, for the user).
    let mut subscription = websocket(gateway, "/graphql", Some("graphql-transport-ws")).await;
    send(&mut subscription, json!({"type": "connection_init"})).await;
    next_of_type(&mut subscription, "connection_ack", Duration::from_secs(5)).await;
    send(
        &mut subscription,
        json!({"id": "1", "type": "subscribe",
               "payload": {"query": "subscription { postCreated { title author { name } } }"}}),
    )
    .await;
    // Platforms sharing a Redis see each other's posts: only this journey's count.
    let ours = format!("Journey post {unique}");
    let mut event = None;
    for attempt in 0..50 {
        graphql_as(
            gateway,
            Some(&admin),
            "mutation($t: String!, $a: ID!) { createPost(title: $t, authorId: $a) { id } }",
            json!({"t": format!("{ours} {attempt}"), "a": user_id.to_string()}),
        )
        .await;
        while let Some(frame) = next_json(&mut subscription, Duration::from_millis(200)).await {
            let title = frame["payload"]["data"]["postCreated"]["title"].as_str();
            if frame["type"] != "next" || title.is_some_and(|title| title.starts_with(&ours)) {
                event = Some(frame);
                break;
            }
        }
        if event.is_some() {
            break;
        }
    }
    let event = event.expect("postCreated arrived");
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(
        event["payload"]["data"]["postCreated"]["author"]["name"],
        "Journey"
    );

    // 3. Two signed-in users and a guest in one room: the users chat under their account
    // names (the `name` parameter is ignored), the guest under a server-assigned one.
    let alice = platform.sign_up(&format!("alice-{}", &unique[..8])).await;
    let bob = platform.sign_up(&format!("bob-{}", &unique[..8])).await;
    let room = format!("journey-{unique}");
    let mut alice_chat = websocket(
        gateway,
        &format!("/chat/ws?room={room}&name=mallory"),
        Some(&format!("bearer, {}", alice.access_token)),
    )
    .await;
    let welcome = next_of_type(&mut alice_chat, "welcome", Duration::from_secs(5)).await;
    assert_eq!(welcome["user"], alice.name.as_str(), "{welcome}");
    next_of_type(&mut alice_chat, "history", Duration::from_secs(5)).await;
    let mut bob_chat = websocket_with(
        gateway,
        &format!("/chat/ws?room={room}"),
        &[("authorization", bob.bearer())],
    )
    .await
    .expect("bob's WebSocket opens");
    next_of_type(&mut bob_chat, "welcome", Duration::from_secs(5)).await;
    next_of_type(&mut bob_chat, "history", Duration::from_secs(5)).await;
    let joined = next_of_type(&mut alice_chat, "userJoined", Duration::from_secs(5)).await;
    assert_eq!(joined["user"], bob.name.as_str());
    let mut guest = websocket(gateway, &format!("/chat/ws?room={room}&name=alice"), None).await;
    let guest_welcome = next_of_type(&mut guest, "welcome", Duration::from_secs(5)).await;
    let guest_name = guest_welcome["user"]
        .as_str()
        .expect("a guest name")
        .to_owned();
    assert!(guest_name.starts_with("guest-"), "{guest_welcome}");
    next_of_type(&mut guest, "history", Duration::from_secs(5)).await;
    for socket in [&mut alice_chat, &mut bob_chat] {
        let joined = next_of_type(socket, "userJoined", Duration::from_secs(5)).await;
        assert_eq!(joined["user"], guest_name.as_str());
    }
    send(
        &mut alice_chat,
        json!({"type": "chatMessage", "text": "hello bob"}),
    )
    .await;
    for socket in [&mut alice_chat, &mut bob_chat, &mut guest] {
        let message = next_of_type(socket, "chatMessage", Duration::from_secs(5)).await;
        assert_eq!(
            (
                message["user"].as_str(),
                message["user_id"].as_i64(),
                message["text"].as_str()
            ),
            (Some(alice.name.as_str()), Some(alice.id), Some("hello bob")),
            "{message}"
        );
    }
    send(&mut guest, json!({"type": "chatMessage", "text": "hi all"})).await;
    let message = next_of_type(&mut bob_chat, "chatMessage", Duration::from_secs(5)).await;
    assert_eq!(message["user"], guest_name.as_str(), "{message}");
    assert!(
        message.get("user_id").is_none_or(Value::is_null),
        "{message}"
    );
    bob_chat.close(None).await.expect("bob leaves");
    let left = next_of_type(&mut alice_chat, "userLeft", Duration::from_secs(5)).await;
    assert_eq!(left["user"], bob.name.as_str());

    // 4. An upload, its signed download, and its thumbnail.
    let request_id = format!("journey-{unique}");
    let picture = png(640, 480);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(picture.clone())
            .file_name("journey.png")
            .mime_str("image/png")
            .expect("a MIME type"),
    );
    let uploaded = client
        .post(format!("{gateway}/api/upload"))
        .bearer_auth(&alice.access_token)
        .header("x-request-id", &request_id)
        .multipart(form)
        .send()
        .await
        .expect("POST /api/upload");
    assert_eq!(uploaded.status(), 201);
    let uploaded: Value = uploaded.json().await.expect("upload JSON");
    let file = &uploaded["file"];
    assert_eq!(file["type"], "image/png");
    assert_eq!(file["owner_id"], alice.id, "{uploaded}");
    assert_eq!(file["size"], picture.len());
    let absolute = |url: &str| {
        if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{gateway}{url}")
        }
    };
    let downloaded = client
        .get(absolute(file["url"].as_str().expect("a url")))
        .send()
        .await
        .expect("GET the signed URL");
    assert_eq!(downloaded.status(), 200);
    assert_eq!(
        downloaded.bytes().await.expect("bytes").as_ref(),
        picture.as_slice()
    );

    let media_id = file["id"].as_str().expect("an id");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let thumbnail_url = loop {
        let metadata: Value = client
            .get(format!("{gateway}/api/media/{media_id}"))
            .bearer_auth(&alice.access_token)
            .send()
            .await
            .expect("GET /api/media/{id}")
            .json()
            .await
            .expect("media JSON");
        if let Some(url) = metadata["thumbnail_url"].as_str() {
            break url.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no thumbnail: {metadata}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let thumbnail = client
        .get(absolute(&thumbnail_url))
        .send()
        .await
        .expect("GET the thumbnail")
        .bytes()
        .await
        .expect("thumbnail bytes");
    let thumbnail = image::load_from_memory(&thumbnail).expect("the thumbnail is an image");
    assert!(thumbnail.width().max(thumbnail.height()) <= 256);
    assert!(thumbnail.width() > 0 && thumbnail.height() > 0);

    // 5. The upload's request id in the gateway's, media-service's and worker's logs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let services = platform.services_logging(&request_id);
        if ["gateway", "media", "worker"]
            .iter()
            .all(|service| services.contains(*service))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "request id {request_id} logged only by {services:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 6. Every /metrics counted what happened.
    let gateway_metrics = &platform.services["gateway"];
    for route in [
        "/api/users",
        "/api/products",
        "/graphql",
        "/chat",
        "/api/upload",
        "/api/media",
    ] {
        assert!(
            metric(gateway_metrics, "http_requests_total", &[("route", route)]).await >= 1.0,
            "the gateway counted {route}"
        );
    }
    // Each service counted the requests of its own routes (not just the harness's /readyz).
    for (service, route) in [
        ("users", "/api/users"),
        ("products", "/api/products"),
        ("graphql", "/graphql"),
        ("chat", "/chat/ws"),
        ("media", "/api/upload"),
    ] {
        assert!(
            metric(
                &platform.services[service],
                "http_requests_total",
                &[("route", route)]
            )
            .await
                >= 1.0,
            "{service} counted {route}"
        );
    }
    assert!(
        metric(
            &platform.services["worker"],
            "worker_jobs_processed_total",
            &[]
        )
        .await
            >= 1.0,
        "the worker counted the thumbnail job"
    );

    // 7. The Grafana dashboard reads only series these processes export.
    crate::dashboard::assert_dashboard_matches(&platform.services).await;
}

#[tokio::test]
async fn journey_on_embedded_defaults() {
    let platform = Platform::stack().await.expect("the stack starts");
    journey(&platform).await;
    platform
        .stop(Duration::from_secs(15))
        .expect("the stack exits 0 on SIGTERM");
}

/// An S3-compatible server of a test's own (s3s-fs on a free port, in a scratch directory),
/// listening; killed and its directory removed when dropped. `backends` names it, beside the
/// machine's Redis and RabbitMQ.
pub struct S3 {
    /// The s3s-fs process.
    _process: Process,
    /// Its scratch directory.
    root: std::path::PathBuf,
    /// The backends of [`Platform::processes`] with this server as the store.
    pub backends: Backends,
}

impl S3 {
    /// Starts it and waits until it listens.
    pub async fn start() -> Self {
        let root =
            std::env::temp_dir().join(format!("platform-e2e-s3-{}", uuid::Uuid::new_v4().simple()));
        let (process, backends) = s3_server(&root);
        e2e::wait_for_port(&backends.s3_endpoint, Duration::from_secs(10))
            .await
            .expect("s3s-fs listens");
        Self {
            _process: process,
            root,
            backends,
        }
    }
}

impl S3 {
    /// Its directory: one folder per bucket, one file per object.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// s3s-fs on a free port, with a bucket directory.
fn s3_server(root: &std::path::Path) -> (Process, Backends) {
    let port = free_port();
    let bucket = "e2e";
    std::fs::create_dir_all(root.join(bucket)).expect("the bucket directory");
    let binary = which("s3s-fs").expect(
        "s3s-fs is not installed: cargo install s3s-fs --version 0.14.1 --features binary --locked",
    );
    let process = Process::spawn(
        "s3",
        &binary,
        &[],
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            "e2e-access",
            "--secret-key",
            "e2e-secret-key",
            &root.display().to_string(),
        ],
    );
    let backends = Backends {
        redis_url: testing::redis_url(),
        amqp_url: testing::amqp_url(),
        s3_endpoint: format!("http://127.0.0.1:{port}"),
        s3_bucket: bucket.to_owned(),
        s3_access_key: "e2e-access".to_owned(),
        s3_secret_key: "e2e-secret-key".to_owned(),
    };
    (process, backends)
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain(std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cargo/bin")))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.exists())
}

#[tokio::test]
async fn journey_on_real_backends() {
    testing::skip_unless!(Postgres, Redis, RabbitMq, S3sFs);
    let s3 = S3::start().await;
    let platform = Platform::processes(&s3.backends)
        .await
        .expect("every process starts");
    journey(&platform).await;
    platform
        .stop(Duration::from_secs(15))
        .expect("every process exits 0 on SIGTERM");
}
