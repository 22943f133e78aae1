//! The seed's Socket.IO clients through the gateway (every binary in its own process, on real
//! backends, the gateway's `/socket.io` route sticky by `sid`): the real `socket.io-client`
//! (`services/chat/tests/socketio/scenario.js`, its version pinned there) chats with the
//! default transports (long-polling, then the upgrade) and over WebSocket only, and the page's
//! `/socket.io/socket.io.js` bundle is served. Needs `npm ci` in `services/chat/tests/socketio/`
//! (`.ci/run` does it); without it the tests are skipped with a message, except under
//! `CI=true`, where they fail.

use std::{path::PathBuf, process::Stdio, time::Duration};

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

/// Runs the scenario against `base` with `transports`; panics with node's output unless it
/// passed.
async fn run_scenario(dir: &PathBuf, base: &str, transports: &str) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("node")
            .current_dir(dir)
            .args(["scenario.js", base, transports])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("the {transports} scenario did not end"))
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the {transports} scenario through the gateway failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[tokio::test]
async fn socket_io_clients_chat_through_the_gateway() {
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
