//! What the tests need besides the code: servers (PostgreSQL, Redis, RabbitMQ, an S3 server) and
//! programs (Chromium, schemathesis).
//!
//! A test that needs one starts with [`skip_unless!`](crate::skip_unless). When it is there, the
//! test runs. When it is not, the test returns at once, and one line per missing backend and
//! `cargo test` run (not per test) says what is missing and which command provides it. Under
//! `CI=true` a missing backend fails the test instead: CI must never pass by skipping.

use std::{
    io::Write,
    net::{TcpStream, ToSocketAddrs},
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

/// The command that installs and starts everything the tests need (README, "Tests").
pub const SETUP_COMMAND: &str = "scripts/test.sh";

/// Something outside the workspace some tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL at `TEST_POSTGRES_URL` (default 127.0.0.1:5432).
    Postgres,
    /// Redis at `TEST_REDIS_URL` (default 127.0.0.1:6379).
    Redis,
    /// RabbitMQ at `TEST_AMQP_URL` (default 127.0.0.1:5672).
    RabbitMq,
    /// The `s3s-fs` binary: a real S3 server the S3 tests start.
    S3sFs,
    /// Headless Chromium (`CHROMIUM`, default `chromium`) for the browser tests.
    Chromium,
    /// schemathesis (`SCHEMATHESIS`, default `st`), run against the OpenAPI documents.
    Schemathesis,
}

impl Backend {
    const ALL: [Self; 6] = [
        Self::Postgres,
        Self::Redis,
        Self::RabbitMq,
        Self::S3sFs,
        Self::Chromium,
        Self::Schemathesis,
    ];

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|backend| *backend == self)
            .expect("every backend is listed")
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Redis => "Redis",
            Self::RabbitMq => "RabbitMQ",
            Self::S3sFs => "s3s-fs",
            Self::Chromium => "Chromium",
            Self::Schemathesis => "schemathesis",
        }
    }

    /// Where it was looked for.
    fn location(self) -> String {
        match self {
            Self::Postgres => crate::postgres_admin_url(),
            Self::Redis => crate::redis_url(),
            Self::RabbitMq => crate::amqp_url(),
            Self::S3sFs => "`s3s-fs` on PATH".to_owned(),
            Self::Chromium => format!("`{}`", chromium_binary()),
            Self::Schemathesis => format!("`{}`", schemathesis_binary()),
        }
    }

    /// The command that provides it alone.
    fn provider(self) -> &'static str {
        match self {
            Self::Postgres => "apt-get install postgresql",
            Self::Redis => "apt-get install redis-server",
            Self::RabbitMq => "apt-get install rabbitmq-server",
            Self::S3sFs => "cargo install s3s-fs --version 0.14.1 --features binary --locked",
            Self::Chromium => {
                "apt-get install chromium (Debian), or Google Chrome with CHROMIUM naming it"
            }
            Self::Schemathesis => "pip install schemathesis==4.32.5",
        }
    }

    fn probe(self) -> bool {
        match self {
            Self::Postgres => answers(&self.location()) && logs_in(&self.location()),
            Self::Redis | Self::RabbitMq => answers(&self.location()),
            Self::S3sFs => runs("s3s-fs", "--version"),
            Self::Chromium => runs(&chromium_binary(), "--version"),
            Self::Schemathesis => runs(&schemathesis_binary(), "--version"),
        }
    }
}

/// The Chromium the browser tests start: `CHROMIUM`, else the first of `chromium`,
/// `chromium-browser` and `google-chrome` on PATH (Debian, older Ubuntu, Google's package).
pub fn chromium_binary() -> String {
    if let Ok(binary) = std::env::var("CHROMIUM") {
        return binary;
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|candidate| runs(candidate, "--version"))
        .unwrap_or("chromium")
        .to_owned()
}

/// The schemathesis command line program: `SCHEMATHESIS`, else the one `scripts/test.sh`
/// installs (`~/.cache/platform-tools/st-venv/bin/st`) when it is there, else `st` on PATH.
pub fn schemathesis_binary() -> String {
    if let Ok(binary) = std::env::var("SCHEMATHESIS") {
        return binary;
    }
    let tools = std::env::var_os("PLATFORM_TOOLS")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| std::path::Path::new(&home).join(".cache/platform-tools"))
        });
    tools
        .map(|tools| tools.join("st-venv/bin/st"))
        .filter(|installed| installed.is_file())
        .map_or_else(
            || "st".to_owned(),
            |installed| installed.display().to_string(),
        )
}

/// Whether something accepts TCP connections at the host and port of `url`.
fn answers(url: &str) -> bool {
    let Some((host, port)) = host_and_port(url) else {
        return false;
    };
    let Ok(addresses) = (host.as_str(), port).to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|address| TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok())
}

/// Whether the tests' PostgreSQL account logs in at `url` (a server that refuses it is as good
/// as missing: every test would fail on it). Asked from a thread of its own, since the caller
/// may be inside a runtime that must not block.
fn logs_in(url: &str) -> bool {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return false;
        };
        runtime.block_on(async {
            use sqlx::Connection;
            matches!(
                tokio::time::timeout(
                    Duration::from_secs(5),
                    sqlx::postgres::PgConnection::connect(&url)
                )
                .await,
                Ok(Ok(_))
            )
        })
    })
    .join()
    .unwrap_or(false)
}

/// `host` and `port` of `scheme://[user[:password]@]host[:port][/…]`, with the scheme's port.
fn host_and_port(url: &str) -> Option<(String, u16)> {
    let url = reqwest::Url::parse(url).ok()?;
    let default_port = match url.scheme() {
        "postgres" | "postgresql" => 5432,
        "redis" | "rediss" => 6379,
        "amqp" => 5672,
        "amqps" => 5671,
        _ => return None,
    };
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some((host.to_owned(), url.port().unwrap_or(default_port)))
}

/// `url` with its password (if any) replaced by `***`, for messages.
fn without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn runs(program: &str, argument: &str) -> bool {
    Command::new(program)
        .arg(argument)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// Whether `backend` is there (looked at once per test binary). When it is not: under `CI=true`
/// this panics; otherwise it returns `false` after writing one line about it, once per
/// `cargo test` run.
pub fn available(backend: Backend) -> bool {
    static SEEN: [OnceLock<bool>; 6] = [const { OnceLock::new() }; 6];
    let present = *SEEN[backend.index()].get_or_init(|| backend.probe());
    if present {
        return true;
    }
    let state = match backend {
        Backend::Postgres => "is missing or refuses the tests' login",
        _ => "is missing",
    };
    let line = format!(
        "{} {state} ({}): the tests that need it are skipped; `{SETUP_COMMAND}` installs and starts everything, or `{}` provides it alone",
        backend.name(),
        without_password(&backend.location()),
        backend.provider(),
    );
    assert!(!under_ci(), "{line} (CI=true: a missing backend fails)");
    report_once(backend, &line);
    false
}

/// Writes `line` to the terminal the first time any test binary of this `cargo test` run (the
/// binaries share cargo as their parent) reports `backend`. Written straight to stderr: the
/// test harness would hide `eprintln!` output of a test that passes.
fn report_once(backend: Backend, line: &str) {
    let parent = std::os::unix::process::parent_id();
    // The parent's start time too: a pid is reused, a (pid, start) pair is not.
    let started = std::fs::read_to_string(format!("/proc/{parent}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1.to_owned();
            after_name.split_whitespace().nth(19).map(str::to_owned)
        })
        .unwrap_or_default();
    let marker = std::env::temp_dir().join(format!(
        "platform-tests-missing-{parent}-{started}-{}",
        backend.name()
    ));
    let first = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .is_ok();
    if first {
        let _ = writeln!(std::io::stderr().lock(), "\nnote: {line}");
    }
}

/// Returns from the enclosing test when a backend it needs is missing (see [`available`]).
///
/// ```ignore
/// testing::skip_unless!(Postgres, Redis);
/// ```
#[macro_export]
macro_rules! skip_unless {
    ($($backend:ident),+ $(,)?) => {
        $(
            if !$crate::available($crate::Backend::$backend) {
                return;
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_their_host_and_port() {
        assert_eq!(
            host_and_port("postgres://postgres@127.0.0.1:5432/postgres"),
            Some(("127.0.0.1".to_owned(), 5432))
        );
        assert_eq!(
            host_and_port("amqp://guest:guest@rabbit/%2f"),
            Some(("rabbit".to_owned(), 5672))
        );
        assert_eq!(
            host_and_port("redis://[::1]:6380"),
            Some(("::1".to_owned(), 6380))
        );
        assert_eq!(
            host_and_port("redis://localhost"),
            Some(("localhost".to_owned(), 6379))
        );
        assert_eq!(host_and_port("nonsense"), None);
        assert_eq!(
            without_password("postgres://platform_test:s3cret@127.0.0.1:5432/postgres"),
            "postgres://platform_test:***@127.0.0.1:5432/postgres"
        );
    }

    #[test]
    fn a_closed_port_does_not_answer() {
        let port = crate::free_port();
        assert!(!answers(&format!("redis://127.0.0.1:{port}")));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        assert!(answers(&format!("redis://127.0.0.1:{port}")));
    }
}
