//! `Subscription.postCreated` with a real WebSocket client: through the gateway on
//! `graphql-transport-ws` and the legacy `graphql-ws`, and across two instances over Redis.

use std::{net::Ipv4Addr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use gateway::{Gateway, config::GatewayConfig};
use serde_json::{Value, json};
use testing::{TestBackend, TestServer, TestService};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::{
    helpers::{
        GraphqlApi, TestPlatform, answers_within, create_user, graphql_settings,
        instances_over_redis, spawn_graphql, user,
    },
    limits::doubling_fragments,
};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

const SUBSCRIPTION: &str = "subscription { postCreated { id title author { name } } }";

/// The gateway with its built-in routes, `/graphql` pointing at `graphql`.
fn spawn_gateway(graphql: &TestService) -> TestServer {
    let mut config = GatewayConfig::builtin();
    config.server.threads = 1;
    for route in &mut config.routes {
        if route.prefix == "/graphql" {
            route.upstreams = vec![graphql.url("")];
        }
    }
    let gateway = Gateway::build(
        config,
        (Ipv4Addr::LOCALHOST, 0).into(),
        runtime::test_logger("gateway"),
        testing::test_verifier(),
    )
    .expect("the gateway builds");
    let port = runtime::Service::port(&gateway);
    TestServer::start(port, |shutdown| {
        runtime::Service::run_until_stopped(gateway, shutdown)
    })
}

async fn connect(http_url: &str, protocol: &str) -> Socket {
    connect_as(http_url, protocol, None).await
}

/// Opens a WebSocket speaking `protocol`, with `Authorization: Bearer <token>` on the
/// handshake when given.
async fn connect_as(http_url: &str, protocol: &str, token: Option<&str>) -> Socket {
    let ws_url = format!("{}/graphql", http_url.replacen("http://", "ws://", 1));
    let mut request = ws_url.into_client_request().expect("a WebSocket request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(protocol).expect("a header value"),
    );
    if let Some(token) = token {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value"),
        );
    }
    let (socket, response) = connect_async(request).await.expect("the WebSocket opens");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        protocol,
        "the server speaks the protocol asked for"
    );
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("a sent frame");
}

/// The next JSON text frame, skipping keep-alives, within `wait`.
async fn next_json(socket: &mut Socket, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON frames");
                    if value["type"] == "ka" || value["type"] == "ping" || value["type"] == "pong" {
                        continue;
                    }
                    return value;
                }
                Some(Ok(_)) => {}
                other => panic!("the socket ended: {other:?}"),
            }
        }
    })
    .await
    .ok()
}

/// Connects to `http_url` speaking `protocol`, waits for the connection's acknowledgement,
/// and starts the `postCreated` subscription as operation `id` with the protocol's `start`
/// message (`subscribe` or, in the legacy protocol, `start`).
async fn subscribe(http_url: &str, protocol: &str, start: &str, id: &str) -> Socket {
    let mut socket = connect(http_url, protocol).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {}}),
    )
    .await;
    let ack = next_json(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(
        ack.map(|ack| ack["type"].clone()),
        Some(json!("connection_ack"))
    );
    send(
        &mut socket,
        json!({"id": id, "type": start, "payload": {"query": SUBSCRIPTION}}),
    )
    .await;
    socket
}

/// Creates posts on `creator` until `socket` receives one (the subscription starts when the
/// server has read the subscribe message, which nothing acknowledges); returns the event.
async fn create_until_received(creator: &TestService, author: i64, socket: &mut Socket) -> Value {
    for attempt in 0..50 {
        creator
            .data_as(
                Some(&crate::helpers::user(author)),
                "mutation($t: String!, $a: ID!) { createPost(title: $t, authorId: $a) { id } }",
                json!({"t": format!("Live {attempt}"), "a": author.to_string()}),
            )
            .await;
        if let Some(event) = next_json(socket, Duration::from_millis(200)).await {
            return event;
        }
    }
    panic!("no postCreated event arrived");
}

async fn transport_ws_through_the_gateway(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let author = create_user(&platform.users, "Ivy", "ivy@example.com").await;
    let gateway = spawn_gateway(&platform.graphql);

    let mut socket = subscribe(&gateway.url(""), "graphql-transport-ws", "subscribe", "1").await;
    let event = create_until_received(&platform.graphql, author, &mut socket).await;
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(event["id"], "1");
    let post = &event["payload"]["data"]["postCreated"];
    assert!(
        post["title"]
            .as_str()
            .is_some_and(|title| title.starts_with("Live "))
    );
    assert_eq!(
        post["author"]["name"], "Ivy",
        "nested fields resolve in events"
    );

    // The next one arrives too, in order.
    platform
        .graphql
        .data_as(
            Some(&crate::helpers::user(author)),
            "mutation($a: ID!) { createPost(title: \"After\", authorId: $a) { id } }",
            json!({"a": author.to_string()}),
        )
        .await;
    let mut titles = Vec::new();
    while let Some(event) = next_json(&mut socket, Duration::from_secs(2)).await {
        titles.push(event["payload"]["data"]["postCreated"]["title"].clone());
        if titles.last() == Some(&json!("After")) {
            break;
        }
    }
    assert_eq!(titles.last(), Some(&json!("After")));

    send(&mut socket, json!({"id": "1", "type": "complete"})).await;
    socket.close(None).await.expect("a clean close");

    // A token reaches the service through the gateway: on a request, and in connection_init.
    let me: Value = gateway
        .client
        .post(gateway.url("/graphql"))
        .bearer_auth(user(author))
        .json(&json!({"query": "{ me { email } }"}))
        .send()
        .await
        .expect("POST /graphql")
        .json()
        .await
        .expect("JSON");
    assert_eq!(me["data"]["me"]["email"], "ivy@example.com", "{me}");
    let mut signed_in = signed_in(&gateway.url(""), None, json!({"token": user(author)})).await;
    assert_eq!(
        run(&mut signed_in, "me", "{ me { email } }").await,
        json!({"data": {"me": {"email": "ivy@example.com"}}})
    );
}

testing::on_both_backends!(transport_ws_through_the_gateway);

#[tokio::test]
async fn legacy_graphql_ws_protocol() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let author = create_user(&platform.users, "Jo", "jo@example.com").await;
    let mut socket = subscribe(&platform.graphql.url(""), "graphql-ws", "start", "7").await;
    let event = create_until_received(&platform.graphql, author, &mut socket).await;
    assert_eq!(event["type"], "data", "{event}");
    assert_eq!(event["id"], "7");
    assert_eq!(
        event["payload"]["data"]["postCreated"]["author"]["name"],
        "Jo"
    );
}

#[tokio::test]
async fn bad_subscription_messages_get_errors_not_crashes() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let mut socket = connect(&platform.graphql.url(""), "graphql-transport-ws").await;
    send(&mut socket, json!({"type": "connection_init"})).await;
    assert!(
        next_json(&mut socket, Duration::from_secs(5))
            .await
            .is_some()
    );
    send(
        &mut socket,
        json!({"id": "2", "type": "subscribe", "payload": {"query": "subscription { nope }"}}),
    )
    .await;
    let error = next_json(&mut socket, Duration::from_secs(5))
        .await
        .expect("an answer");
    // async-graphql reports a document that fails validation as a `next` carrying errors.
    assert!(
        matches!(error["type"].as_str(), Some("error" | "next")),
        "{error}"
    );
    assert_eq!(error["id"], "2");
    assert!(
        error["payload"]["errors"][0]["message"]
            .as_str()
            .is_some_and(|message| message.contains("nope")),
        "{error}"
    );
    // Not JSON: the protocol closes with 4400; the service keeps serving others.
    socket
        .send(Message::text("this is not json"))
        .await
        .expect("sent");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| u16::from(frame.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("the socket closes");
    assert_eq!(closed, Some(4400));
    assert_eq!(platform.graphql.get("/healthz").await.status(), 200);

    let refused = platform
        .graphql
        .client
        .get(platform.graphql.url("/graphql"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "mqtt")
        .send()
        .await
        .expect("a response");
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn post_created_reaches_subscribers_of_other_instances_over_redis() {
    testing::skip_unless!(Postgres, Redis);
    let users = crate::helpers::spawn_users(TestBackend::Postgres).await;
    let author = create_user(&users, "Kai", "kai@example.com").await;
    let instances = instances_over_redis(&users.url(""), &users.url(""), |_| {}).await;
    let mut socket = subscribe(
        &instances[0].url(""),
        "graphql-transport-ws",
        "subscribe",
        "x",
    )
    .await;
    let event = create_until_received(&instances[1], author, &mut socket).await;
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(
        event["payload"]["data"]["postCreated"]["author"]["name"],
        "Kai"
    );
}

/// Sends `connection_init` with `payload` and returns the server's answer: the next JSON
/// message, or the close code when the server closes instead.
async fn init(socket: &mut Socket, payload: Value) -> Result<Value, Option<u16>> {
    send(
        socket,
        json!({"type": "connection_init", "payload": payload}),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text).expect("JSON frames"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map(|frame| u16::from(frame.code)));
                }
                Some(Ok(_)) => {}
                _ => return Err(None),
            }
        }
    })
    .await
    .expect("an answer to connection_init")
}

/// Runs `query` as operation `id` on an acknowledged `graphql-transport-ws` socket; returns
/// its result's payload.
async fn run(socket: &mut Socket, id: &str, query: &str) -> Value {
    send(
        socket,
        json!({"id": id, "type": "subscribe", "payload": {"query": query}}),
    )
    .await;
    let answer = next_json(socket, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(answer["id"], id, "{answer}");
    assert_eq!(answer["type"], "next", "{answer}");
    let complete = next_json(socket, Duration::from_secs(5))
        .await
        .expect("the operation completes");
    assert_eq!(complete, json!({"id": id, "type": "complete"}));
    answer["payload"].clone()
}

/// A `graphql-transport-ws` socket on `url`, acknowledged after `connection_init` with
/// `payload`, and `handshake`'s token on the upgrade request.
async fn signed_in(url: &str, handshake: Option<&str>, payload: Value) -> Socket {
    let mut socket = connect_as(url, "graphql-transport-ws", handshake).await;
    let ack = init(&mut socket, payload.clone()).await;
    assert_eq!(
        ack.map(|ack| ack["type"].clone()),
        Ok(json!("connection_ack")),
        "{payload}"
    );
    socket
}

#[tokio::test]
async fn connection_init_names_the_caller() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let pia = create_user(&platform.users, "Pia", "pia@example.com").await;
    let quinn = create_user(&platform.users, "Quinn", "quinn@example.com").await;
    let url = platform.graphql.url("");
    let token = user(pia);
    let me = "{ me { id email } }";
    let pia_herself = json!({"data": {"me": {"id": pia.to_string(), "email": "pia@example.com"}}});
    for payload in [
        json!({"Authorization": format!("Bearer {token}")}),
        json!({"authorization": format!("Bearer {token}")}),
        json!({"token": token}),
    ] {
        let mut socket = signed_in(&url, None, payload).await;
        assert_eq!(run(&mut socket, "me", me).await, pia_herself);
    }
    let mut anonymous = signed_in(&url, None, json!({})).await;
    assert_eq!(
        run(&mut anonymous, "me", me).await,
        json!({"data": {"me": null}})
    );
    // Mutations over the socket obey the same rules.
    let create = format!("mutation {{ createPost(title: \"ws\", authorId: {pia}) {{ id }} }}");
    let refused = run(&mut anonymous, "create", &create).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{refused}"
    );

    // The handshake's header names the caller, unless connection_init names another.
    let mut by_header = signed_in(&url, Some(&token), json!({})).await;
    assert_eq!(run(&mut by_header, "me", me).await, pia_herself);
    let other = user(quinn);
    let mut overridden = signed_in(&url, Some(&token), json!({"token": other})).await;
    assert_eq!(
        run(&mut overridden, "me", "{ me { id } }").await,
        json!({"data": {"me": {"id": quinn.to_string()}}})
    );
    let mut own_mutation = signed_in(&url, None, json!({"token": token})).await;
    let created = run(&mut own_mutation, "create", &create).await;
    assert!(created.get("errors").is_none(), "{created}");
}

#[tokio::test]
async fn events_show_emails_by_each_subscribers_rule() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let rae = create_user(&platform.users, "Rae", "rae@example.com").await;
    let sam = create_user(&platform.users, "Sam", "sam@example.com").await;
    let url = platform.graphql.url("");
    let subscription = json!({"id": "s", "type": "subscribe", "payload": {
        "query": "subscription { postCreated { title author { name email } } }"
    }});
    let mut author = signed_in(&url, None, json!({"token": user(rae)})).await;
    let mut other = signed_in(&url, None, json!({"token": user(sam)})).await;
    send(&mut author, subscription.clone()).await;
    send(&mut other, subscription).await;
    let seen_by_author = create_until_received(&platform.graphql, rae, &mut author).await;
    assert_eq!(
        seen_by_author["payload"]["data"]["postCreated"]["author"],
        json!({"name": "Rae", "email": "rae@example.com"}),
        "{seen_by_author}"
    );
    let seen_by_other = loop {
        let event = next_json(&mut other, Duration::from_secs(5))
            .await
            .expect("the event reaches every subscriber");
        if event["payload"]["data"]["postCreated"]["title"]
            == seen_by_author["payload"]["data"]["postCreated"]["title"]
        {
            break event;
        }
    };
    let author = &seen_by_other["payload"]["data"]["postCreated"]["author"];
    assert_eq!(author["name"], "Rae", "{seen_by_other}");
    assert_eq!(author["email"], "", "{seen_by_other}");
    assert!(
        seen_by_other["payload"].get("errors").is_none(),
        "{seen_by_other}"
    );
}

#[tokio::test]
async fn a_token_that_does_not_verify_refuses_the_connection() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let url = platform.graphql.url("");
    for payload in [
        json!({"Authorization": "Bearer garbage"}),
        json!({"token": "not a token"}),
        json!({"authorization": "Basic dXNlcjpwYXNz"}),
        json!({"Authorization": 42}),
        json!({"token": format!("{}x", user(1))}),
    ] {
        let mut socket = connect(&url, "graphql-transport-ws").await;
        assert_eq!(
            init(&mut socket, payload.clone()).await,
            Err(Some(4403)),
            "{payload}"
        );
    }
    // The legacy protocol answers connection_error.
    let mut legacy = connect(&url, "graphql-ws").await;
    let answer = init(&mut legacy, json!({"token": "garbage"})).await;
    assert_eq!(
        answer.map(|answer| answer["type"].clone()),
        Ok(json!("connection_error"))
    );
    assert_eq!(platform.graphql.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_connection_closes_when_its_token_expires() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let tia = create_user(&platform.users, "Tia", "tia@example.com").await;
    let short_lived = auth::TokenIssuer::new(
        testing::test_keys(),
        auth::DEFAULT_ISSUER,
        auth::DEFAULT_AUDIENCE,
        Duration::from_secs(2),
    )
    .issue(tia, "Tia", &[auth::Role::User])
    .expect("a token")
    .token;
    let mut socket = signed_in(
        &platform.graphql.url(""),
        None,
        json!({"token": short_lived}),
    )
    .await;
    assert_eq!(
        run(&mut socket, "me", "{ me { id } }").await,
        json!({"data": {"me": {"id": tia.to_string()}}})
    );
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| u16::from(frame.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("the server closes the connection");
    assert_eq!(closed, Some(4403));
}

/// graphql-service on SQLite with at most `max` operations per WebSocket, in front of
/// `platform`'s users-service and products-service.
async fn capped_instance(platform: &TestPlatform, max: usize) -> TestService {
    let database = testing::fresh_database(TestBackend::Sqlite)
        .await
        .expect("database");
    let mut settings = crate::helpers::graphql_settings(
        database,
        &platform.users.url(""),
        &platform.products.url(""),
    );
    settings.limits.max_subscriptions = max;
    crate::helpers::spawn_graphql(settings).await
}

#[tokio::test]
async fn a_socket_runs_a_bounded_number_of_operations() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let author = create_user(&platform.users, "Kit", "kit@example.com").await;
    let graphql = capped_instance(&platform, 3).await;

    let mut socket = subscribe(&graphql.url(""), "graphql-transport-ws", "subscribe", "1").await;
    for id in ["2", "3", "4", "5"] {
        send(
            &mut socket,
            json!({"id": id, "type": "subscribe", "payload": {"query": SUBSCRIPTION}}),
        )
        .await;
    }
    for id in ["4", "5"] {
        let refused = next_json(&mut socket, Duration::from_secs(5))
            .await
            .expect("a refusal");
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["id"], id, "{refused}");
        assert_eq!(
            refused["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
            "{refused}"
        );
    }
    // A query too large for the service is refused on its own.
    let padding = " ".repeat(65 * 1024);
    send(
        &mut socket,
        json!({"id": "big", "type": "subscribe", "payload": {"query": format!("{SUBSCRIPTION}{padding}")}}),
    )
    .await;
    let refused = next_json(&mut socket, Duration::from_secs(5))
        .await
        .expect("a refusal");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "QUERY_TOO_LARGE"
    );

    // One completed, another may start; the running ones still get their events.
    send(&mut socket, json!({"id": "1", "type": "complete"})).await;
    send(
        &mut socket,
        json!({"id": "6", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}),
    )
    .await;
    let first = create_until_received(&graphql, author, &mut socket).await;
    let mut ids = Vec::new();
    let mut message = Some(first);
    while let Some(event) = message {
        match event["type"].as_str() {
            Some("next") => ids.push(event["id"].as_str().unwrap_or_default().to_owned()),
            // async-graphql confirms the client's `complete`.
            Some("complete") => assert_eq!(event["id"], "1", "{event}"),
            _ => panic!("unexpected {event}"),
        }
        message = next_json(&mut socket, Duration::from_secs(1)).await;
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids, ["2", "3", "6"]);

    // The legacy protocol refuses with its own error shape.
    let mut legacy = subscribe(&graphql.url(""), "graphql-ws", "start", "a").await;
    for id in ["b", "c", "d"] {
        send(
            &mut legacy,
            json!({"id": id, "type": "start", "payload": {"query": SUBSCRIPTION}}),
        )
        .await;
    }
    let refused = next_json(&mut legacy, Duration::from_secs(5))
        .await
        .expect("a refusal");
    assert_eq!(
        (
            refused["id"].clone(),
            refused["payload"]["extensions"]["code"].clone()
        ),
        (json!("d"), json!("TOO_MANY_SUBSCRIPTIONS")),
        "{refused}"
    );
}

/// Over WebSocket too, fragments doubling 31 deep into an undefined one are refused at once.
#[test]
fn multiplying_fragments_are_refused_on_websocket() {
    answers_within(
        Duration::from_secs(10),
        || async {
            let database = testing::fresh_database(TestBackend::Sqlite)
                .await
                .expect("database");
            spawn_graphql(graphql_settings(
                database,
                "http://127.0.0.1:9",
                "http://127.0.0.1:9",
            ))
            .await
        },
        |graphql| async move {
            let mut socket = signed_in(&graphql.url(""), None, json!({})).await;
            send(
                &mut socket,
                json!({"id": "1", "type": "subscribe",
                       "payload": {"query": doubling_fragments(31, "")}}),
            )
            .await;
            let refused = next_json(&mut socket, Duration::from_secs(5))
                .await
                .expect("an answer");
            assert_eq!(refused["id"], "1", "{refused}");
            assert_eq!(
                refused["payload"]["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
                "{refused}"
            );
        },
    );
}
