//! The `users-service` binary itself: flags and variables, JSON logs to stdout and `LOG_DIR`,
//! and a clean exit on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use testing::{assert_bad_values_refused, assert_help_names};

const BINARY: &str = env!("CARGO_BIN_EXE_users-service");

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_the_variable() {
    assert_bad_values_refused(
        BINARY,
        &[
            ("PORT", "abc"),
            ("DATABASE_URL", "mysql://db"),
            ("LOG_LEVEL", "loud"),
            ("CACHE_TTL_SECS", "0"),
        ],
    );
    assert_help_names(
        BINARY,
        &[
            "PORT",
            "BIND",
            "LOG_LEVEL",
            "LOG_DIR",
            "DATABASE_URL",
            "REDIS_URL",
            "CACHE_TTL_SECS",
        ],
    );
}

#[tokio::test]
async fn logs_json_everywhere_and_exits_zero_on_sigterm() {
    let dir = std::env::temp_dir().join(format!(
        "platform-users-bin-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let port = testing::free_port();
    let mut child = Command::new(BINARY)
        .env("PORT", port.to_string())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/users.db", dir.display()),
        )
        .env("LOG_DIR", dir.join("logs"))
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

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/users/7");
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(response) = client
            .get(&url)
            .header("x-request-id", "bin-test-1")
            .header("user-agent", "it")
            .send()
            .await
        {
            answered = Some(response.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, Some(reqwest::StatusCode::NOT_FOUND));

    let probe = |port: u16| {
        Command::new(BINARY)
            .arg("--healthcheck")
            .env("PORT", port.to_string())
            .status()
            .expect("probe")
    };
    assert!(
        probe(port).success(),
        "--healthcheck passes while the service runs"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0), "SIGTERM is a clean exit");
    assert!(
        !probe(port).success(),
        "--healthcheck fails once it is gone"
    );

    let stdout: Vec<Value> = lines
        .join()
        .expect("reader")
        .iter()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    let access = stdout
        .iter()
        .find(|line| line["msg"] == "request")
        .expect("an access line");
    for field in [
        "ts",
        "level",
        "msg",
        "service",
        "version",
        "method",
        "path",
        "status",
        "duration_ms",
        "ip",
        "user_agent",
        "request_id",
    ] {
        assert!(
            !access[field].is_null(),
            "access line has {field}: {access}"
        );
    }
    assert_eq!(access["request_id"], "bin-test-1");
    assert_eq!(access["status"], 404);
    assert_eq!(access["path"], "/api/users/7");
    assert_eq!(access["service"], "users");
    assert!(
        stdout.iter().any(|line| line["msg"] == "stopped"),
        "the shutdown is logged and flushed"
    );

    let combined = std::fs::read_to_string(dir.join("logs/combined.log")).expect("combined.log");
    assert!(
        combined
            .lines()
            .any(|line| line.contains("\"request_id\":\"bin-test-1\""))
    );
    let errors = std::fs::read_to_string(dir.join("logs/error.log")).expect("error.log");
    assert!(
        errors
            .lines()
            .all(|line| line.contains("\"level\":\"error\"")),
        "only errors in error.log"
    );
    std::fs::remove_dir_all(dir).expect("cleanup");
}
