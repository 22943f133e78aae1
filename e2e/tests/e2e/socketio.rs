//! The seed's Socket.IO clients through the gateway (every binary in its own process, on real
//! backends, the gateway's `/socket.io` route sticky by `sid`): the real `socket.io-client`
//! (`services/chat/tests/socketio/scenario.js`, its version pinned there) chats with the
//! default transports (long-polling, then the upgrade) and over WebSocket only, and the page's
//! `/socket.io/socket.io.js` bundle is served. Two chat-service instances sharing Redis behind
//! a gateway sticky over both: a default-transport client and a WebSocket-only one, one on each
//! instance, chat in one room (`two_clients.js`). Needs `npm ci` in `services/chat/tests/socketio/`
//! (`.ci/run` does it); without it the tests are skipped with a message, except under
//! `CI=true`, where they fail.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use e2e::Platform;

use crate::journey::S3;

/// `services/chat/tests/socketio/`, if its `node_modules` is installed; `None` to skip (outside
/// CI only).
fn scenario_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../services/chat/tests/socketio");
    if dir.join("node_modules/socket.io-client").is_dir() {
        return Some(dir);
    }
    let message = format!(
        "socket.io-client is not installed: run `npm ci` in {}",
        dir.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{message} (CI=true: required)"
    );
    eprintln!("SKIPPED: {message}");
    None
}

/// Runs `node <args>` in `dir` (bounded to a minute); panics with node's output unless it
/// exited 0, else returns its standard output.
async fn run_node(dir: &Path, args: &[&str]) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("node")
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("node {args:?} did not end"))
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node {args:?} through the gateway failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

/// Runs the scenario against `base` with `transports`; panics with node's output unless it
/// passed.
async fn run_scenario(dir: &Path, base: &str, transports: &str) {
    run_node(dir, &["scenario.js", base, transports]).await;
}

#[tokio::test]
async fn socket_io_clients_chat_through_the_gateway() {
    testing::skip_unless!(Postgres, Redis, RabbitMq, S3sFs);
    let Some(dir) = scenario_dir() else { return };
    let s3 = S3::start().await;
    let platform = Platform::processes(&s3.backends)
        .await
        .expect("every process starts");
    let bundle = reqwest::get(platform.url("/socket.io/socket.io.js"))
        .await
        .expect("GET the bundle");
    assert_eq!(bundle.status(), 200);
    assert!(
        bundle.headers()["content-type"]
            .to_str()
            .is_ok_and(|value| value.starts_with("application/javascript")),
        "{:?}",
        bundle.headers()
    );
    run_scenario(&dir, &platform.gateway, "default").await;
    run_scenario(&dir, &platform.gateway, "websocket").await;
    platform
        .stop(Duration::from_secs(15))
        .expect("every process exits 0 on SIGTERM");
}

/// Times the two clients connect through the gateway, each with a room of its own, until a run
/// places them on different instances (the first does behind a round-robin: the scenario opens
/// its two sessions back to back; the others are a margin).
const ATTEMPTS: usize = 4;

/// Two chat-service processes sharing the machine's Redis (so rooms span them) behind a gateway
/// whose `/socket.io` route is sticky by Engine.IO session over both: the real
/// `socket.io-client` with the default transports (long-polling, every request of its session
/// reaching the instance that opened it, then the upgrade) and one with WebSocket only join a
/// room unique to this run and each gets the other's `chatMessage`
/// (`services/chat/tests/socketio/two_clients.js`). Each instance's `chat_connections_total`
/// (Socket.IO sessions counted there) shows where each client landed: in one of [`ATTEMPTS`]
/// runs, one on each. Without the sticky route the polling client's requests stray to the
/// instance that does not know its session, and the run fails.
#[tokio::test]
async fn socket_io_clients_on_two_chat_instances_chat_through_the_sticky_gateway() {
    testing::skip_unless!(Redis);
    let Some(dir) = scenario_dir() else { return };
    let pair = e2e::StickyChats::start(Some(testing::redis_url()))
        .await
        .expect("two chats behind a sticky gateway");
    let (chats, gateway) = (&pair.chats, &pair.gateway);

    let mut placements = Vec::new();
    for _ in 0..ATTEMPTS {
        let before = connections(chats).await;
        let room = format!("e2e-pair-{}", uuid::Uuid::new_v4().simple());
        let stdout = run_node(&dir, &["two_clients.js", gateway, &room]).await;
        let after = connections(chats).await;
        let placed = [after[0] - before[0], after[1] - before[1]];
        assert_eq!(
            placed[0] + placed[1],
            2.0,
            "two Socket.IO sessions, each counted once: {placed:?} ({stdout})"
        );
        placements.push(placed);
        if placed == [1.0, 1.0] {
            eprintln!("{}", stdout.trim());
            break;
        }
    }
    assert_eq!(
        placements.last(),
        Some(&[1.0, 1.0]),
        "in one of {ATTEMPTS} runs the clients sat on different instances: {placements:?}"
    );
    eprintln!("Socket.IO pair over two instances: sessions per instance by run {placements:?}");
    pair.stop().expect("every process exits on SIGTERM");
}

/// `chat_connections_total` (WebSocket and Socket.IO sessions accepted) of each instance.
async fn connections(chats: &[String]) -> [f64; 2] {
    [
        e2e::metric(&chats[0], "chat_connections_total", &[]).await,
        e2e::metric(&chats[1], "chat_connections_total", &[]).await,
    ]
}
