//! The `chat-service` binary itself: flags and variables, and SIGTERM closing clients with 1001.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use crate::helpers::Client;

use testing::{assert_bad_values_refused, assert_help_names};

const BINARY: &str = env!("CARGO_BIN_EXE_chat-service");

#[test]
fn help_names_every_variable_and_a_bad_value_stops_start_up_on_one_line() {
    assert_help_names(
        BINARY,
        &[
            "PORT",
            "BIND",
            "LOG_LEVEL",
            "DATABASE_URL",
            "REDIS_URL",
            "CHAT_PING_INTERVAL_SECS",
            "CHAT_PONG_TIMEOUT_SECS",
            "CHAT_HISTORY_CAP",
            "CHAT_GUESTS",
            "CHAT_ALLOWED_ORIGINS",
            "CHAT_CONNECTIONS_PER_ADDRESS",
            "CHAT_ADDRESS_MESSAGES_PER_SECOND",
            "CHAT_ADDRESS_MESSAGE_BURST",
            "CHAT_ACCOUNT_MESSAGES_PER_SECOND",
            "CHAT_ACCOUNT_MESSAGE_BURST",
            "TRUSTED_PROXIES",
        ],
    );
    assert_bad_values_refused(
        BINARY,
        &[
            ("CHAT_PING_INTERVAL_SECS", "0"),
            ("CHAT_PONG_TIMEOUT_SECS", "soon"),
            ("CHAT_HISTORY_CAP", "10"),
            ("CHAT_GUESTS", "maybe"),
            ("CHAT_ALLOWED_ORIGINS", "chat.example"),
            ("CHAT_CONNECTIONS_PER_ADDRESS", "0"),
            ("CHAT_ADDRESS_MESSAGES_PER_SECOND", "many"),
            ("CHAT_ADDRESS_MESSAGE_BURST", "-1"),
            ("CHAT_ACCOUNT_MESSAGES_PER_SECOND", "0"),
            ("CHAT_ACCOUNT_MESSAGE_BURST", "1.5"),
            ("REDIS_URL", "http://redis"),
        ],
    );
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_exits_zero() {
    let dir = std::env::temp_dir().join(format!(
        "platform-chat-bin-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let port = testing::free_port();
    let mut child = Command::new(BINARY)
        .env("PORT", port.to_string())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/chat.db", dir.display()),
        )
        .env_remove("REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let url = format!("ws://127.0.0.1:{port}/chat/ws?room=general&name=alice");
    testing::eventually("the binary listens", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    let mut alice = Client::connect(&url).await;
    alice.expect("welcome").await;
    alice.expect("history").await;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert_eq!(alice.expect_close().await, 1001);
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(exit.code(), Some(0), "SIGTERM is a clean exit");
    let lines = lines.join().expect("reader");
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
        assert_eq!(value["service"], "chat", "{line}");
    }
    assert!(
        lines.iter().any(|line| line.contains("closing WebSocket")),
        "{lines:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
