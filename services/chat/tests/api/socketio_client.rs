//! The real `socket.io-client` (the version pinned in `tests/socketio/package.json`, run by
//! `node`) against the server: `tests/socketio/scenario.js` with the default transports
//! (long-polling, then the upgrade to WebSocket), WebSocket only, and long-polling only.
//!
//! Needs `npm ci` in `services/chat/tests/socketio/`. Without its `node_modules` the tests
//! are skipped with a message, except in CI (`CI=true`), where they fail.

use std::{path::PathBuf, process::Stdio, time::Duration};

use testing::TestBackend;

use crate::helpers::{ChatApp, spawn_app, token_named};

/// How long one scenario may take.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// `services/chat/tests/socketio/`, if its `node_modules` is installed; `None` to skip
/// (outside CI only).
fn scenario_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/socketio");
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

/// Runs the scenario with `transports`; panics with node's output unless it passed.
async fn run_scenario(app: &ChatApp, dir: &PathBuf, transports: &str, token: Option<&str>) {
    let mut command = tokio::process::Command::new("node");
    command
        .current_dir(dir)
        .arg("scenario.js")
        .arg(&app.service.address)
        .arg(transports)
        .args(token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SCENARIO_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("the {transports} scenario did not end"))
        .expect("node runs (node 20 is installed by .ci/run)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the {transports} scenario failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains(&format!("ok {transports}")), "{stdout}");
}

#[tokio::test]
async fn socket_io_client_chats_with_the_default_transports_through_the_upgrade() {
    let Some(dir) = scenario_dir() else { return };
    let app = spawn_app(TestBackend::Sqlite).await;
    run_scenario(&app, &dir, "default", Some(&token_named("Alice"))).await;
}

#[tokio::test]
async fn socket_io_client_chats_over_websocket_only() {
    let Some(dir) = scenario_dir() else { return };
    let app = spawn_app(TestBackend::Sqlite).await;
    run_scenario(&app, &dir, "websocket", None).await;
}

#[tokio::test]
async fn socket_io_client_chats_over_long_polling_only() {
    testing::skip_unless!(Postgres);
    let Some(dir) = scenario_dir() else { return };
    let app = spawn_app(TestBackend::Postgres).await;
    run_scenario(&app, &dir, "polling", Some(&token_named("Alice"))).await;
}
