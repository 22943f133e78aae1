//! The users REST API and the platform's identities: `/api/users…` and `/api/auth/…` on port
//! 3001, and the public keys at `/.well-known/jwks.json`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`domain`] | [`domain::User`], and the validation of what clients send |
//! | [`repository`] | the users SQL, the same for SQLite and PostgreSQL |
//! | [`routes`] | the users handlers, with cache-aside reads by id and the access rules |
//! | [`accounts`] | identities: password hashes, roles, refresh tokens |
//! | [`passwords`] | the password rules and bounded argon2id hashing |
//! | [`throttle`] | failed sign-ins throttled per account and per address |
//! | [`session`] | the `/api/auth/…` handlers and the JWKS |
//! | [`bootstrap`] | the first admin |
//! | [`openapi`] | the OpenAPI 3 document served at `/api/users/openapi.json` |
//!
//! Everything else (config, logging, errors, health, metrics, cache, shutdown, token checks) is
//! `shared`'s and `auth`'s.

pub mod accounts;
pub mod bootstrap;
pub mod domain;
pub mod openapi;
pub mod passwords;
pub mod repository;
pub mod routes;
pub mod session;
pub mod throttle;

use std::{num::NonZeroU32, path::PathBuf, sync::Arc, time::Duration};

use actix_web::web;
use anyhow::Context;
use auth::{KeySource, SigningKeys, TokenIssuer, Verifier};
use db::Migrations;
use runtime::{AuthArgs, CommonArgs, Service};
use server::{HttpService, Resource, ServiceContext, ServiceSettings};
use slog::Logger;

use crate::{
    accounts::Accounts, bootstrap::AdminAccount, passwords::Passwords, repository::UserRepository,
    session::Identity, throttle::LoginThrottle,
};

/// The service's name (logs, metrics, default database `data/users.db`).
pub const NAME: &str = "users";
/// The port of docs/contracts.md.
pub const DEFAULT_PORT: u16 = 3001;
/// The signing keys' file in the data directory, when `AUTH_SIGNING_KEY_FILE` names none.
pub const SIGNING_KEY_FILE: &str = "auth-signing-key.pem";

/// The flags and environment variables of `users-service`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "users-service",
    version,
    about = "The users REST API and the platform's identities"
)]
pub struct Config {
    /// What every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Accounts and tokens.
    #[command(flatten)]
    pub identity: IdentityArgs,
}

/// The identity flags of users-service.
#[derive(clap::Args, Debug, Clone)]
pub struct IdentityArgs {
    /// PEM file of the Ed25519 signing keys: the first signs, a second is the previous key,
    /// still published (created, mode 0600, when missing) [default: <data dir>/auth-signing-key.pem]
    #[arg(long, env = "AUTH_SIGNING_KEY_FILE")]
    pub auth_signing_key_file: Option<PathBuf>,
    /// Lifetime of an access token, in seconds
    #[arg(long, env = "AUTH_ACCESS_TTL_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub auth_access_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds (30 days)
    #[arg(long, env = "AUTH_REFRESH_TTL_SECS", default_value_t = 2_592_000, value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub auth_refresh_ttl_secs: u64,
    /// Password hashes computed at once (each takes 19 MiB and one core for tens of ms)
    #[arg(long, env = "AUTH_HASH_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub auth_hash_concurrency: u32,
    /// Failed sign-ins per account per minute before it is throttled (429)
    #[arg(long, env = "LOGIN_FAILURES_PER_ACCOUNT", default_value_t = NonZeroU32::new(5).expect("5"))]
    pub login_failures_per_account: NonZeroU32,
    /// Failed sign-ins per client address per minute before it is throttled (429)
    #[arg(long, env = "LOGIN_FAILURES_PER_ADDRESS", default_value_t = NonZeroU32::new(20).expect("20"))]
    pub login_failures_per_address: NonZeroU32,
    /// Seconds the failed sign-in budgets are counted over (the "minute" of the two above);
    /// within it, the budget comes back one failure at a time, evenly. At most an hour, the
    /// time a blocked key is remembered without attempts
    #[arg(long, env = "LOGIN_FAILURES_PERIOD_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=throttle::MAX_PERIOD_SECS))]
    pub login_failures_period_secs: u64,
    /// Sign-ups per client address per hour before it is throttled (429)
    #[arg(long, env = "SIGNUPS_PER_ADDRESS", default_value_t = NonZeroU32::new(60).expect("60"))]
    pub signups_per_address: NonZeroU32,
    /// Create or promote this admin at start (with ADMIN_PASSWORD or ADMIN_PASSWORD_FILE)
    #[arg(long, env = "ADMIN_EMAIL", requires = "admin_secret")]
    pub admin_email: Option<String>,
    /// The admin's password (prefer ADMIN_PASSWORD_FILE)
    #[arg(
        long,
        env = "ADMIN_PASSWORD",
        hide_env_values = true,
        group = "admin_secret"
    )]
    pub admin_password: Option<String>,
    /// A file holding the admin's password (a container secret)
    #[arg(long, env = "ADMIN_PASSWORD_FILE", group = "admin_secret")]
    pub admin_password_file: Option<PathBuf>,
}

/// How the service signs in users and issues tokens.
#[derive(Debug, Clone)]
pub struct IdentityOptions {
    /// The signing keys (the first signs).
    pub keys: Arc<SigningKeys>,
    /// Accepted and issued `iss` and `aud`.
    pub auth: AuthArgs,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Hashes at once.
    pub hash_concurrency: usize,
    /// Failed sign-ins per account in [`IdentityOptions::failures_period`].
    pub failures_per_account: NonZeroU32,
    /// Failed sign-ins per address in [`IdentityOptions::failures_period`].
    pub failures_per_address: NonZeroU32,
    /// What the failure budgets are counted over (a minute).
    pub failures_period: Duration,
    /// Sign-ups an hour per address.
    pub signups_per_address: NonZeroU32,
    /// The admin to create or promote at start.
    pub admin: Option<AdminAccount>,
}

impl IdentityOptions {
    /// The defaults, signing with `keys`.
    pub fn new(keys: Arc<SigningKeys>) -> Self {
        Self {
            keys,
            auth: AuthArgs::default(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            hash_concurrency: 2,
            failures_per_account: NonZeroU32::new(5).expect("5"),
            failures_per_address: NonZeroU32::new(20).expect("20"),
            failures_period: Duration::from_secs(60),
            signups_per_address: NonZeroU32::new(60).expect("60"),
            admin: None,
        }
    }

    /// The options of the flags: loads (or creates) the key file (`data_dir`'s
    /// `auth-signing-key.pem` unless one is named), reads the admin's password.
    pub fn from_args(
        args: &IdentityArgs,
        auth: &AuthArgs,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let key_file = args
            .auth_signing_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join(SIGNING_KEY_FILE));
        let keys = SigningKeys::load_or_create(&key_file).context("AUTH_SIGNING_KEY_FILE")?;
        let admin_password = match (&args.admin_password, &args.admin_password_file) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("ADMIN_PASSWORD_FILE {}", path.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            ),
            (None, None) => None,
        };
        Ok(Self {
            auth: auth.clone(),
            access_ttl: Duration::from_secs(args.auth_access_ttl_secs),
            refresh_ttl: Duration::from_secs(args.auth_refresh_ttl_secs),
            hash_concurrency: usize::try_from(args.auth_hash_concurrency).unwrap_or(2),
            failures_per_account: args.login_failures_per_account,
            failures_per_address: args.login_failures_per_address,
            failures_period: Duration::from_secs(args.login_failures_period_secs),
            signups_per_address: args.signups_per_address,
            admin: args
                .admin_email
                .clone()
                .zip(admin_password)
                .map(|(email, password)| AdminAccount { email, password }),
            ..Self::new(Arc::new(keys))
        })
    }

    /// A verifier of these keys' tokens, for the processes that hold them.
    pub fn verifier(&self) -> Arc<Verifier> {
        Arc::new(Verifier::new(
            self.auth.verifier_settings(),
            KeySource::Fixed(self.keys.jwks()),
        ))
    }
}

/// The embedded migrations, per engine.
pub fn migrations() -> Migrations {
    db::embedded_migrations!()
}

/// A built users service: database migrated, admin in place, listener bound.
pub struct Application {
    /// The server.
    service: HttpService,
    /// The users table (for seeding).
    table: UserRepository,
    /// Identities (for the generated admin).
    identity: web::Data<Identity>,
}

impl Application {
    /// Connects, migrates, creates or promotes the configured admin, binds. The binary, the
    /// stack and the tests all start here.
    pub async fn build(
        settings: ServiceSettings,
        options: IdentityOptions,
        logger: Logger,
    ) -> anyhow::Result<Self> {
        let context = ServiceContext::open(&settings, migrations(), logger).await?;
        let table = UserRepository::new(context.database.clone());
        let users = web::Data::new(Resource {
            table: table.clone(),
            cache: context.cache.clone(),
            name: "user",
            path: "/api/users",
        });
        let accounts = Accounts::new(context.database.clone());
        let passwords = Passwords::new(options.hash_concurrency)?;
        if let Some(admin) = &options.admin {
            let id = bootstrap::ensure_admin(&accounts, &passwords, admin)
                .await
                .context("ADMIN_EMAIL")?;
            users.invalidate(id).await;
            slog::info!(context.logger, "admin in place"; "user_id" => id);
        }
        let identity = web::Data::new(Identity {
            accounts,
            passwords,
            throttle: LoginThrottle::new(
                options.failures_per_account,
                options.failures_per_address,
                options.failures_period,
            ),
            signups: governor::RateLimiter::keyed(governor::Quota::per_hour(
                options.signups_per_address,
            )),
            issuer: TokenIssuer::new(
                options.keys.clone(),
                options.auth.auth_issuer.clone(),
                options.auth.auth_audience.clone(),
                options.access_ttl,
            ),
            refresh_lifetime: options.refresh_ttl,
        });
        let routes_identity = identity.clone();
        let service = HttpService::bind(&settings, &context, move |config| {
            config.route("/api/users/openapi.json", web::get().to(openapi::document));
            routes::configure(config, users.clone());
            session::configure(config, routes_identity.clone());
        })?;
        Ok(Self {
            service,
            table,
            identity,
        })
    }

    /// Inserts the demo users (Alice, Bob) when there are none at all. They have no
    /// password: they cannot sign in until one is set.
    pub async fn seed_demo_data(&self) -> anyhow::Result<bool> {
        self.table.seed_if_empty().await
    }

    /// With no admin yet, creates one with a random password, writes its credentials to
    /// `credentials_file` (0600) and returns them to be shown once.
    pub async fn generate_admin_if_none(
        &self,
        credentials_file: &std::path::Path,
    ) -> anyhow::Result<Option<AdminAccount>> {
        bootstrap::generate_admin_if_none(
            &self.identity.accounts,
            &self.identity.passwords,
            credentials_file,
        )
        .await
    }
}

impl Service for Application {
    fn port(&self) -> u16 {
        self.service.port()
    }

    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.service.run_until_stopped(shutdown).await
    }
}
