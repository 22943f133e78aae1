//! Command-line flags and environment variables (docs/contracts.md, "Configuration").
//!
//! Every binary flattens [`CommonArgs`] into its own clap parser and calls [`parse_args`], which turns
//! a value that cannot be parsed into one line naming the variable, then exits with status 2.

use std::{net::IpAddr, path::PathBuf, str::FromStr};

use crate::log_filter::{LogFilter, LogFormat};
use clap::{
    Parser,
    error::{ContextKind, ContextValue, ErrorKind},
};

/// The flags and variables every HTTP service of the platform takes.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Listen port [default: the service's port from docs/contracts.md]
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// Address and logging.
    #[command(flatten)]
    pub process: ProcessArgs,
    /// `sqlite://…` or `postgres://…` [default: sqlite://data/<service>.db]
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<DatabaseUrl>,
    /// Redis for the cache (`redis://host:port`); unset: an in-process cache
    #[arg(long, env = "REDIS_URL", value_parser = parse_redis_url)]
    pub redis_url: Option<String>,
    /// Time to live of cache-aside entries, in seconds
    #[arg(long, env = "CACHE_TTL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub cache_ttl_secs: u64,
    /// Prefix of every cache key in Redis, so deployments that share one Redis (each with its
    /// own databases) never read each other's cache entries (pub/sub channels are not prefixed)
    #[arg(long, env = "CACHE_NAMESPACE", default_value = DEFAULT_CACHE_NAMESPACE)]
    pub cache_namespace: String,
    /// How access tokens are checked.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Peers whose `X-Forwarded-For` names the client (comma-separated addresses or CIDRs,
    /// the gateway's) [default: loopback]
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<crate::network::Network>,
    /// Ask the service on PORT for `/healthz` and exit 0 when it answers 200 (a container's
    /// health check, with no curl in the image)
    #[arg(long, hide = true)]
    pub healthcheck: bool,
}

/// The prefix of every cache key when `CACHE_NAMESPACE` is not set.
pub const DEFAULT_CACHE_NAMESPACE: &str = "platform";

/// users-service's JWKS (`auth::JWKS_PATH`) on its port of docs/contracts.md.
pub const DEFAULT_JWKS_URL: &str = "http://127.0.0.1:3001/.well-known/jwks.json";

/// How a server checks the access tokens users-service issues (docs/contracts.md, "Identity
/// and access").
#[derive(clap::Args, Debug, Clone)]
pub struct AuthArgs {
    /// The only accepted token issuer (`iss`)
    #[arg(long, env = "AUTH_ISSUER", default_value = auth::DEFAULT_ISSUER)]
    pub auth_issuer: String,
    /// The only accepted token audience (`aud`)
    #[arg(long, env = "AUTH_AUDIENCE", default_value = auth::DEFAULT_AUDIENCE)]
    pub auth_audience: String,
    /// Where users-service publishes its public keys
    #[arg(
        long,
        env = "AUTH_JWKS_URL",
        default_value = DEFAULT_JWKS_URL
    )]
    pub auth_jwks_url: String,
}

impl Default for AuthArgs {
    fn default() -> Self {
        Self {
            auth_issuer: auth::DEFAULT_ISSUER.to_owned(),
            auth_audience: auth::DEFAULT_AUDIENCE.to_owned(),
            auth_jwks_url: DEFAULT_JWKS_URL.to_owned(),
        }
    }
}

impl AuthArgs {
    /// What a verifier built from these flags accepts.
    pub fn verifier_settings(&self) -> auth::VerifierSettings {
        auth::VerifierSettings {
            issuer: self.auth_issuer.clone(),
            audience: self.auth_audience.clone(),
            ..auth::VerifierSettings::default()
        }
    }

    /// A verifier that fetches its keys from `AUTH_JWKS_URL`.
    pub fn remote_verifier(&self) -> std::sync::Arc<auth::Verifier> {
        std::sync::Arc::new(auth::Verifier::new(
            self.verifier_settings(),
            auth::KeySource::Remote(self.auth_jwks_url.clone()),
        ))
    }
}

/// What every binary takes, services, gateway and stack alike: where to listen and how to log.
#[derive(clap::Args, Debug, Clone)]
pub struct ProcessArgs {
    /// Listen address (`0.0.0.0` in containers)
    #[arg(long, env = "BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// What is logged: a level, or per-target levels like `info,sqlx=warn` [default: info]
    #[arg(long, env = "LOG_LEVEL")]
    pub log_level: Option<LogFilter>,
    /// What is logged when LOG_LEVEL is unset (the same syntax; read only then, so a RUST_LOG
    /// meant for another program does not matter once LOG_LEVEL is set)
    #[arg(long = "rust-log", env = "RUST_LOG")]
    pub rust_log: Option<String>,
    /// Log lines as `json` or `text`; `auto` writes text on a terminal, JSON otherwise
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Also write `error.log` (errors only) and `combined.log` into this directory
    #[arg(long, env = "LOG_DIR")]
    pub log_dir: Option<PathBuf>,
    /// Where spans are exported (OpenTelemetry's variables).
    #[command(flatten)]
    pub trace: crate::export::TraceArgs,
}

impl ProcessArgs {
    /// `LOG_LEVEL`, else `RUST_LOG`, else `info`; an error names RUST_LOG when it is the one
    /// in use and cannot be read.
    pub fn log_filter(&self) -> Result<LogFilter, String> {
        match (&self.log_level, &self.rust_log) {
            (Some(filter), _) => Ok(filter.clone()),
            (None, Some(spec)) => spec
                .parse()
                .map_err(|error| format!("RUST_LOG (--rust-log): {error}")),
            (None, None) => Ok(LogFilter::default()),
        }
    }
}

impl CommonArgs {
    /// A service configured with nothing but its port, address and database: the defaults
    /// for everything else (in-process cache, 60 s TTL). What the stack and tests run.
    pub fn embedded(port: u16, bind: IpAddr, database_url: DatabaseUrl) -> Self {
        Self {
            port: Some(port),
            process: ProcessArgs {
                bind,
                log_level: None,
                rust_log: None,
                log_format: LogFormat::Auto,
                log_dir: None,
                trace: crate::export::TraceArgs::default(),
            },
            database_url: Some(database_url),
            redis_url: None,
            cache_ttl_secs: 60,
            cache_namespace: DEFAULT_CACHE_NAMESPACE.to_owned(),
            auth: AuthArgs::default(),
            trusted_proxies: Vec::new(),
            healthcheck: false,
        }
    }

    /// `TRUSTED_PROXIES`, or loopback when it is unset.
    pub fn trusted_proxies(&self) -> crate::network::TrustedProxies {
        if self.trusted_proxies.is_empty() {
            crate::network::TrustedProxies::loopback()
        } else {
            crate::network::TrustedProxies::new(self.trusted_proxies.clone())
        }
    }

    /// The database URL, or the embedded default `sqlite://data/<service>.db`.
    pub fn database_url_or_default(&self, service: &str) -> DatabaseUrl {
        self.database_url
            .clone()
            .unwrap_or_else(|| DatabaseUrl(format!("sqlite://data/{service}.db")))
    }
}

/// A database URL whose scheme the platform supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://")
        {
            Ok(Self(url.to_owned()))
        } else {
            Err("expected sqlite://… or postgres://…".to_owned())
        }
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_redis_url(url: &str) -> Result<String, String> {
    if url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("redis+unix://")
    {
        Ok(url.to_owned())
    } else {
        Err("expected redis://host:port".to_owned())
    }
}

/// Parses the process's arguments and environment into `T`.
///
/// `--help` and `--version` print and exit 0; any other problem prints one line that names the
/// environment variable (and flag) at fault and exits 2.
pub fn parse_args<T: Parser>() -> T {
    match T::try_parse() {
        Ok(parsed) => parsed,
        Err(error) => {
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) {
                error.exit();
            }
            eprintln!("{}", one_line_error(&error, &T::command()));
            std::process::exit(2);
        }
    }
}

/// clap's message, on one line, with the flag's environment variable named first.
fn one_line_error(error: &clap::Error, command: &clap::Command) -> String {
    let rendered = error.render().to_string();
    let mut line = rendered
        .lines()
        .next()
        .unwrap_or("error: invalid arguments")
        .to_owned();
    if let Some(ContextValue::String(invalid_arg)) = error.get(ContextKind::InvalidArg) {
        let flag = invalid_arg.split_whitespace().next().unwrap_or(invalid_arg);
        let env = command
            .get_arguments()
            .find(|arg| {
                arg.get_long()
                    .is_some_and(|long| flag == format!("--{long}"))
            })
            .and_then(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned());
        if let Some(env) = env {
            line = line.replace(&format!("'{invalid_arg}'"), &format!("{env} ({flag})"));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser, Debug)]
    struct TestConfig {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn error_line(args: &[&str]) -> String {
        let error = TestConfig::try_parse_from(args).expect_err("arguments must be rejected");
        one_line_error(&error, &<TestConfig as clap::CommandFactory>::command())
    }

    #[test]
    fn a_bad_port_names_its_variable_on_one_line() {
        let line = error_line(&["test", "--port", "abc"]);
        assert!(line.contains("PORT (--port)"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_bad_database_url_names_its_variable() {
        let line = error_line(&["test", "--database-url", "mysql://x"]);
        assert!(line.contains("DATABASE_URL (--database-url)"), "{line}");
        assert!(line.contains("sqlite://"), "{line}");
    }

    #[test]
    fn defaults_hold_when_nothing_is_set() {
        let config = TestConfig::try_parse_from(["test"]).expect("defaults parse");
        assert_eq!(config.common.cache_ttl_secs, 60);
        assert!(
            config
                .common
                .process
                .log_filter()
                .expect("a filter")
                .enabled("any", log::Level::Info)
        );
        assert!(
            !config
                .common
                .process
                .log_filter()
                .expect("a filter")
                .enabled("any", log::Level::Debug)
        );
        assert_eq!(
            config.common.database_url_or_default("users").0,
            "sqlite://data/users.db"
        );
    }
}
