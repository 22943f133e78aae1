//! The `users-service` binary itself: flags and variables, logs to stdout (JSON, or text on a
//! terminal) and `LOG_DIR`, per-target log filters, and a clean exit on SIGTERM.

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
            ("LOGIN_FAILURES_PERIOD_SECS", "0"),
            ("LOGIN_FAILURES_PERIOD_SECS", "3601"),
        ],
    );
    assert_help_names(
        BINARY,
        &[
            "PORT",
            "BIND",
            "LOG_LEVEL",
            "RUST_LOG",
            "LOG_FORMAT",
            "LOG_DIR",
            "DATABASE_URL",
            "REDIS_URL",
            "CACHE_TTL_SECS",
            "LOGIN_FAILURES_PER_ACCOUNT",
            "LOGIN_FAILURES_PER_ADDRESS",
            "LOGIN_FAILURES_PERIOD_SECS",
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
    let answered = std::cell::Cell::new(None);
    testing::eventually("the binary answers", Duration::from_secs(20), || {
        let request = client
            .get(&url)
            .header("x-request-id", "bin-test-1")
            .header("user-agent", "it")
            .send();
        let answered = &answered;
        async move {
            let status = request.await.ok().map(|response| response.status());
            answered.set(status);
            status.is_some()
        }
    })
    .await;
    assert_eq!(answered.get(), Some(reqwest::StatusCode::NOT_FOUND));

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

/// How the binary's stdout is attached in [`run_and_log`].
#[derive(Clone, Copy)]
enum Stdout {
    /// A pipe (log collectors, `docker logs`).
    Pipe,
    /// A pseudo-terminal, by util-linux's `script` (a person at a terminal).
    Terminal,
}

/// Runs the binary with `variables`, makes one request (`X-Request-Id: <request_id>`), stops it
/// with SIGTERM and returns what it wrote to stdout.
async fn run_and_log(stdout: Stdout, variables: &[(&str, &str)], request_id: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "platform-users-logs-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let port = testing::free_port();
    let mut command = match stdout {
        Stdout::Pipe => Command::new(BINARY),
        Stdout::Terminal => {
            let mut script = Command::new("script");
            script.args(["-qfec", &format!("exec {BINARY}"), "/dev/null"]);
            script
        }
    };
    command
        .env("PORT", port.to_string())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/users.db", dir.display()),
        )
        .env_remove("REDIS_URL")
        .env_remove("LOG_LEVEL")
        .env_remove("RUST_LOG")
        .env_remove("LOG_FORMAT")
        .envs(variables.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("start the binary");
    let output = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(output), &mut text).ok();
        text
    });
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/users/7");
    testing::eventually("the binary answers", Duration::from_secs(20), || {
        let request = client.get(&url).header("x-request-id", request_id).send();
        async move { request.await.is_ok() }
    })
    .await;
    // Under `script` the service is the child of the pseudo-terminal's owner.
    let signalled = match stdout {
        Stdout::Pipe => Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status(),
        Stdout::Terminal => Command::new("pkill")
            .args(["-TERM", "-P", &child.id().to_string()])
            .status(),
    };
    assert!(signalled.expect("signal").success());
    assert!(child.wait().expect("wait").success(), "a clean exit");
    let text = reader.join().expect("reader");
    let _ = std::fs::remove_dir_all(dir);
    text
}

/// `text` without its terminal escape sequences (`ESC [ … letter`, `ESC ( B`).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character != '\u{1b}' {
            plain.push(character);
            continue;
        }
        match characters.next() {
            Some('[') => {
                for code in characters.by_ref() {
                    if code.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            Some('(') => {
                characters.next();
            }
            _ => {}
        }
    }
    plain
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line.trim_end_matches('\r')).expect("every line is JSON"))
        .collect()
}

#[tokio::test]
async fn a_terminal_gets_coloured_text_lines_and_a_pipe_or_log_format_json_gets_json() {
    let text = run_and_log(Stdout::Terminal, &[], "tty-text-1").await;
    assert!(
        text.lines().all(|line| !line.trim_start().starts_with('{')),
        "no JSON on a terminal:\n{text}"
    );
    assert!(text.contains("\u{1b}["), "coloured:\n{text}");
    let text = without_colours(&text);
    let access = text
        .lines()
        .find(|line| line.contains("tty-text-1"))
        .unwrap_or_else(|| panic!("an access line:\n{text}"));
    for part in [
        "INFO",
        "request",
        "status: 404",
        "path: /api/users/7",
        "service: users",
    ] {
        assert!(access.contains(part), "{part} in {access:?}");
    }

    let forced = run_and_log(Stdout::Terminal, &[("LOG_FORMAT", "json")], "tty-json-1").await;
    assert!(
        json_lines(&forced)
            .iter()
            .any(|line| line["request_id"] == "tty-json-1"),
        "LOG_FORMAT=json on a terminal:\n{forced}"
    );
    let piped = run_and_log(Stdout::Pipe, &[], "pipe-json-1").await;
    assert!(
        json_lines(&piped)
            .iter()
            .any(|line| line["request_id"] == "pipe-json-1")
    );
    let text_in_a_pipe = run_and_log(Stdout::Pipe, &[("LOG_FORMAT", "text")], "pipe-text-1").await;
    assert!(
        text_in_a_pipe.contains("request_id: pipe-text-1"),
        "{text_in_a_pipe}"
    );
    assert!(
        !text_in_a_pipe.contains("\u{1b}["),
        "no colour codes into a pipe"
    );
}

#[tokio::test]
async fn log_level_and_rust_log_take_per_target_directives() {
    let messages = |text: &str| -> Vec<String> {
        json_lines(text)
            .iter()
            .map(|line| line["msg"].as_str().expect("msg").to_owned())
            .collect()
    };
    // The access lines have the target `access`, the lifecycle lines `server::service`.
    let only_access = [("LOG_LEVEL", "warn,access=info")];
    let logged = messages(&run_and_log(Stdout::Pipe, &only_access, "filter-1").await);
    assert!(logged.contains(&"request".to_owned()), "{logged:?}");
    assert!(!logged.contains(&"listening".to_owned()), "{logged:?}");

    let from_rust_log = [("RUST_LOG", "warn,access=info")];
    let logged = messages(&run_and_log(Stdout::Pipe, &from_rust_log, "filter-2").await);
    assert!(logged.contains(&"request".to_owned()), "{logged:?}");
    assert!(!logged.contains(&"listening".to_owned()), "{logged:?}");

    let log_level_wins = [("LOG_LEVEL", "info"), ("RUST_LOG", "error")];
    let logged = messages(&run_and_log(Stdout::Pipe, &log_level_wins, "filter-3").await);
    assert!(logged.contains(&"listening".to_owned()), "{logged:?}");
    // A RUST_LOG written for another program (tracing's syntax) is not read once LOG_LEVEL is
    // set.
    let log_level_wins = [("LOG_LEVEL", "info"), ("RUST_LOG", "info/regex")];
    let logged = messages(&run_and_log(Stdout::Pipe, &log_level_wins, "filter-3").await);
    assert!(logged.contains(&"listening".to_owned()), "{logged:?}");

    assert_bad_values_refused(
        BINARY,
        &[
            ("LOG_LEVEL", "info,sqlx=loud"),
            ("LOG_LEVEL", "verbose"),
            ("RUST_LOG", "a=b=c"),
            ("LOG_FORMAT", "yaml"),
        ],
    );
}
