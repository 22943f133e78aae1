//! Hostile load on graphql, every process on real backends (PostgreSQL, Redis, RabbitMQ, S3),
//! through the gateway, while a normal client runs ordinary queries: the cost attacks measured
//! before the limits (docs/architecture.md, failure table) are refused with the code of the
//! limit they break, and graphql-service's peak resident memory (`VmHWM`, from `/proc`) stays
//! under the 256 MiB of its Kubernetes limit.
//!
//! - the alias bomb: 10 aliases of `posts { author { posts { author { posts … } } } }` as deep
//!   as the depth limit allows (1.68 M nodes, 21 MB, 44 → 909 MB unguarded) →
//!   `QUERY_TOO_COMPLEX`, before anything runs;
//! - the users bomb: 300 aliases of `users(limit: 1000)` (300 calls to users-service
//!   unguarded) → `TOO_MANY_ALIASES`, no call made;
//! - a fan-out within the static limits: one mutation of 20 `createPost { author }`, each
//!   calling users-service twice → `UPSTREAM_CALLS_EXCEEDED` past 20 calls;
//! - 20 000 `subscribe` messages on one WebSocket (57 → 189 MB unguarded) → 32 run, the rest
//!   `TOO_MANY_SUBSCRIPTIONS`.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use e2e::Platform;
use futures_util::{SinkExt, StreamExt, future::join_all};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    clients::{graphql_as, websocket},
    journey::S3,
};

/// Kubernetes' memory limit of the graphql pod.
const PEAK_RSS_BOUND: u64 = 256 * 1024 * 1024;
/// How many times each HTTP attack is sent.
const ATTACKS: usize = 60;
/// How many of them are in flight at once.
const ATTACKERS: usize = 12;
/// `subscribe` messages sent on one WebSocket.
const SUBSCRIBES: usize = 20_000;
/// graphql-service's default limit of operations per WebSocket.
const RUNNING_PER_SOCKET: usize = 32;

/// The alias bomb: `aliases` copies of posts → author → … ten fields deep.
fn alias_bomb(aliases: usize) -> String {
    let nested = "posts { author { posts { author { posts { author { posts { author { posts { id } } } } } } } } }";
    let fields: String = (0..aliases).map(|i| format!("a{i}: {nested} ")).collect();
    format!("{{ {fields}}}")
}

/// The users bomb: 300 aliases of the largest page of users.
fn users_bomb() -> String {
    let fields: String = (0..300)
        .map(|i| format!("u{i}: users(limit: 1000) {{ id name }} "))
        .collect();
    format!("{{ {fields}}}")
}

/// Within the static limits (20 root fields, 20 aliases, a small cost) but each root field
/// calls users-service twice: the author's check, and the author answered.
fn fan_out() -> String {
    let fields: String = (0..20)
        .map(|i| format!("c{i}: createPost(title: \"fan-out {i}\") {{ id author {{ name }} }} "))
        .collect();
    format!("mutation {{ {fields}}}")
}

/// POSTs `query` through the gateway; the HTTP status and the body.
async fn post(client: &reqwest::Client, gateway: &str, token: &str, query: &str) -> (u16, Value) {
    let response = client
        .post(format!("{gateway}/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": query}))
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every `extensions.code` of a GraphQL response.
fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|error| error["extensions"]["code"].as_str().map(str::to_owned))
        .collect()
}

/// Calls graphql-service has made to users-service, whatever their outcome.
async fn users_calls(platform: &Platform) -> f64 {
    let mut total = 0.0;
    for outcome in ["ok", "rejected", "error", "timeout"] {
        total += e2e::metric(
            &platform.services["graphql"],
            "graphql_upstream_requests_total",
            &[("upstream", "users"), ("outcome", outcome)],
        )
        .await;
    }
    total
}

/// Sends `query` `ATTACKS` times, `ATTACKERS` at once; the codes of the answers, counted.
async fn attack(gateway: &str, token: &str, query: &str) -> BTreeMap<String, usize> {
    let client = reqwest::Client::new();
    let sent = Arc::new(AtomicUsize::new(0));
    let answers = join_all((0..ATTACKERS).map(|_| {
        let (client, sent) = (client.clone(), sent.clone());
        async move {
            let mut codes_seen = Vec::new();
            while sent.fetch_add(1, Ordering::Relaxed) < ATTACKS {
                let (status, body) = post(&client, gateway, token, query).await;
                assert_eq!(status, 200, "a GraphQL answer, not an HTTP error: {body}");
                codes_seen.push(codes(&body).join(","));
            }
            codes_seen
        }
    }))
    .await;
    let mut counted = BTreeMap::new();
    for code in answers.into_iter().flatten() {
        *counted.entry(code).or_insert(0) += 1;
    }
    counted
}

/// Opens one WebSocket through the gateway and sends `SUBSCRIBES` subscriptions on it, reading
/// its answers all along; the `extensions.code`s of the refusals, counted.
async fn subscribe_flood(gateway: &str, token: &str) -> BTreeMap<String, usize> {
    let socket = websocket(gateway, "/graphql", Some("graphql-transport-ws")).await;
    let (mut sink, mut stream) = socket.split();
    sink.send(Message::text(
        json!({"type": "connection_init", "payload": {"token": token}}).to_string(),
    ))
    .await
    .expect("connection_init sent");
    let refusals_expected = SUBSCRIBES - RUNNING_PER_SOCKET;
    let reader = tokio::spawn(async move {
        let mut refusals = BTreeMap::new();
        let mut acknowledged = false;
        while refusals.values().sum::<usize>() < refusals_expected {
            let frame = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("the socket keeps answering");
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                other => panic!("the socket ended: {other:?}"),
            };
            let message: Value = serde_json::from_str(&text).expect("JSON frames");
            match message["type"].as_str() {
                Some("connection_ack") => acknowledged = true,
                Some("error") => {
                    let code = message["payload"][0]["extensions"]["code"]
                        .as_str()
                        .unwrap_or("none")
                        .to_owned();
                    *refusals.entry(code).or_insert(0) += 1;
                }
                // The subscriptions that run get the attack's own posts.
                Some("next" | "ping" | "pong" | "ka") => {}
                _ => panic!("unexpected {message}"),
            }
        }
        assert!(acknowledged, "the connection was acknowledged");
        (refusals, stream)
    });
    let query = "subscription { postCreated { id title author { name } } }";
    for id in 0..SUBSCRIBES {
        let message =
            json!({"id": id.to_string(), "type": "subscribe", "payload": {"query": query}});
        sink.send(Message::text(message.to_string()))
            .await
            .expect("a subscribe sent");
    }
    let (refusals, stream) = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("every refusal within 2 minutes")
        .expect("the reader");
    drop(stream.reunite(sink));
    refusals
}

#[tokio::test]
async fn graphql_cost_attacks_are_refused_while_normal_queries_answer() {
    testing::skip_unless!(Postgres, Redis, RabbitMq, S3sFs);
    let s3 = S3::start().await;
    let backends = s3.backends.clone();
    let mut platform = Platform::processes(&backends)
        .await
        .expect("every process starts");
    let gateway = platform.gateway.clone();
    let normal = platform.sign_up("Normal").await;
    let attacker = platform.sign_up("Attacker").await;
    // Posts to nest: 30 of them, by both.
    for (i, author) in [&normal, &attacker].iter().cycle().take(30).enumerate() {
        graphql_as(
            &gateway,
            Some(&author.access_token),
            "mutation($t: String!) { createPost(title: $t, content: \"text\") { id } }",
            json!({"t": format!("Post {i}")}),
        )
        .await;
    }

    // One at a time first, to count the calls each makes to users-service.
    let client = reqwest::Client::new();
    let before = users_calls(&platform).await;
    let (_, body) = post(&client, &gateway, &attacker.access_token, &users_bomb()).await;
    assert_eq!(codes(&body), ["TOO_MANY_ALIASES"], "{body}");
    assert_eq!(
        users_calls(&platform).await,
        before,
        "the users bomb made no call"
    );
    let (_, body) = post(&client, &gateway, &attacker.access_token, &fan_out()).await;
    assert!(
        codes(&body)
            .iter()
            .any(|code| code == "UPSTREAM_CALLS_EXCEEDED"),
        "{body}"
    );
    assert!(
        users_calls(&platform).await - before <= 20.0,
        "at most 20 calls for one operation"
    );

    // Then everything at once, with a normal client alongside.
    let stop = Arc::new(AtomicBool::new(false));
    let normal_client = {
        let (stop, gateway, token) = (stop.clone(), gateway.clone(), normal.access_token.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut answered = 0_usize;
            while !stop.load(Ordering::Relaxed) || answered == 0 {
                let (status, body) = post(
                    &client,
                    &gateway,
                    &token,
                    "{ posts(limit: 10) { title author { name } } me { name } }",
                )
                .await;
                assert_eq!(status, 200, "{body}");
                assert!(body.get("errors").is_none(), "{body}");
                assert_eq!(body["data"]["posts"].as_array().map(Vec::len), Some(10));
                answered += 1;
            }
            answered
        })
    };
    let (alias_bomb, users_bomb, fan_out) = (alias_bomb(10), users_bomb(), fan_out());
    let (alias_bombs, users_bombs, fan_outs, subscriptions) = tokio::join!(
        attack(&gateway, &attacker.access_token, &alias_bomb),
        attack(&gateway, &attacker.access_token, &users_bomb),
        attack(&gateway, &attacker.access_token, &fan_out),
        subscribe_flood(&gateway, &attacker.access_token),
    );
    stop.store(true, Ordering::Relaxed);
    let answered = normal_client.await.expect("the normal client");

    assert_eq!(
        alias_bombs,
        BTreeMap::from([("QUERY_TOO_COMPLEX".to_owned(), ATTACKS)])
    );
    assert_eq!(
        users_bombs,
        BTreeMap::from([("TOO_MANY_ALIASES".to_owned(), ATTACKS)])
    );
    assert_eq!(fan_outs.values().sum::<usize>(), ATTACKS);
    assert!(
        fan_outs.keys().all(|codes| codes
            .split(',')
            .all(|code| code == "UPSTREAM_CALLS_EXCEEDED")
            && !codes.is_empty()),
        "{fan_outs:?}"
    );
    assert_eq!(
        subscriptions,
        BTreeMap::from([(
            "TOO_MANY_SUBSCRIPTIONS".to_owned(),
            SUBSCRIBES - RUNNING_PER_SOCKET
        )])
    );
    assert!(answered > 0);

    let graphql = platform.process("graphql");
    let peak = graphql.peak_rss_bytes();
    eprintln!(
        "graphql-service: peak RSS {:.1} MiB, RSS {:.1} MiB after the attacks; normal client \
         answered {answered} times",
        peak as f64 / 1048576.0,
        graphql.rss_bytes() as f64 / 1048576.0
    );
    assert!(
        peak < PEAK_RSS_BOUND,
        "graphql-service's peak RSS {peak} bytes is over {PEAK_RSS_BOUND}"
    );
    platform
        .stop(Duration::from_secs(20))
        .expect("every process exits 0 on SIGTERM");
}
