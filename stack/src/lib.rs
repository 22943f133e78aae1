//! The whole platform in one process, on embedded defaults: the gateway on port 3000 in front of
//! each service on its own port (docs/contracts.md), SQLite files under `data/`, in-process caches. `cargo run --release -p stack`
//! on a fresh machine needs nothing else.
//!
//! [`Stack::build`] builds every service through its own `Application::build` (the path its
//! binary takes), seeds the demo rows into empty databases, and
//! [`Stack::run_until_stopped`] fans one shutdown out to all of them.

use std::{net::IpAddr, sync::Arc};

use anyhow::Context;
use futures_util::future::try_join_all;
use runtime::{CommonArgs, DatabaseUrl, ProcessArgs, Service, Shutdown, service_logger};
use server::ServiceSettings;
use slog::Logger;

/// The flags and variables of `stack`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "stack",
    version,
    about = "The whole platform in one process, on embedded defaults"
)]
pub struct Config {
    /// Address (of every service) and logging.
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Where the SQLite files, the embedded queue and the media files go.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: std::path::PathBuf,
    /// Listen on free ports instead of docs/contracts.md's (printed at start; for tests and for a
    /// second stack beside a running one).
    #[arg(long)]
    pub free_ports: bool,
    /// The admin account and the signing keys (without ADMIN_EMAIL, an admin with a random
    /// password is created on first start and written to `<data dir>/admin-credentials`).
    #[command(flatten)]
    pub identity: users_service::IdentityArgs,
    /// Origins whose pages may call the gateway across origins (comma-separated
    /// `scheme://host[:port]`, e.g. a front end's dev server `http://localhost:5173`)
    /// [default: none, CORS off]
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
}

impl Config {
    /// The stack's settings from its flags: reads (or creates) the signing keys and the admin's
    /// password file.
    pub fn settings(&self) -> anyhow::Result<StackSettings> {
        let mut settings = StackSettings::new(self.process.bind);
        settings.data_dir = self.data_dir.clone();
        if self.free_ports {
            settings.port_override = Some(0);
        }
        settings.cors_allowed_origins = self
            .cors_allowed_origins
            .iter()
            .map(|origin| origin.trim().to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        settings.identity = Some(users_service::IdentityOptions::from_args(
            &self.identity,
            &runtime::AuthArgs::default(),
            &self.data_dir,
        )?);
        Ok(settings)
    }
}

/// Where the stack puts its services and data.
#[derive(Debug, Clone)]
pub struct StackSettings {
    /// Listen address of every service.
    pub bind: IpAddr,
    /// `None`: each service's port from docs/contracts.md; `Some(0)`: free ports (tests).
    pub port_override: Option<u16>,
    /// Directory of the SQLite files.
    pub data_dir: std::path::PathBuf,
    /// Accounts and tokens; `None`: the defaults, with the keys in `data_dir`.
    pub identity: Option<users_service::IdentityOptions>,
    /// Origins the gateway answers CORS for (empty: CORS off).
    pub cors_allowed_origins: Vec<String>,
}

impl StackSettings {
    /// The defaults of docs/contracts.md, data under `./data`.
    pub fn new(bind: IpAddr) -> Self {
        Self {
            bind,
            port_override: None,
            data_dir: "data".into(),
            identity: None,
            cors_allowed_origins: Vec::new(),
        }
    }

    /// The identity options: the ones given, or the defaults with the keys in the data
    /// directory (created on first start).
    fn identity(&self) -> anyhow::Result<users_service::IdentityOptions> {
        match &self.identity {
            Some(identity) => Ok(identity.clone()),
            None => {
                let path = self.data_dir.join(users_service::SIGNING_KEY_FILE);
                let keys = auth::SigningKeys::load_or_create(&path)
                    .with_context(|| format!("the signing keys in {}", path.display()))?;
                Ok(users_service::IdentityOptions::new(Arc::new(keys)))
            }
        }
    }

    /// The gateway's routes: each service the stack runs, at the port it got.
    fn gateway_config(&self, services: &[(&str, u16)]) -> gateway::config::GatewayConfig {
        let mut config = gateway::config::GatewayConfig::builtin();
        for route in &mut config.routes {
            // Every built-in route is served by a service of the stack: one the stack left
            // out would answer 404 only here, not in a deployment.
            let (_, port) = services
                .iter()
                .find(|(prefix, _)| route.prefix == *prefix)
                .unwrap_or_else(|| panic!("the stack serves no built-in route {}", route.prefix));
            route.upstreams = vec![format!("http://{}:{port}", self.upstream_host())];
        }
        config
            .cors
            .allowed_origins
            .clone_from(&self.cors_allowed_origins);
        config
    }

    /// Where one service of the stack reaches another.
    fn upstream_host(&self) -> String {
        if self.bind.is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            self.bind.to_string()
        }
    }

    /// A service's settings; every service of the stack checks tokens with `verifier`.
    fn service(
        &self,
        name: &'static str,
        default_port: u16,
        verifier: &Arc<auth::Verifier>,
    ) -> ServiceSettings {
        let database = DatabaseUrl(format!("sqlite://{}/{name}.db", self.data_dir.display()));
        let args = CommonArgs::embedded(
            self.port_override.unwrap_or(default_port),
            self.bind,
            database,
        );
        ServiceSettings {
            verifier: verifier.clone(),
            ..ServiceSettings::from_args(name, default_port, &args)
        }
    }
}

/// Where a generated admin's credentials are written, in the data directory.
pub const ADMIN_CREDENTIALS_FILE: &str = "admin-credentials";

/// Every service, built and bound.
pub struct Stack {
    /// The gateway in front of them.
    gateway: gateway::Gateway,
    /// The users service.
    users: users_service::Application,
    /// The products service.
    products: products_service::Application,
    /// The GraphQL service.
    graphql: graphql_service::Application,
    /// The chat service.
    chat: chat_service::Application,
    /// The media service.
    media: media_service::Application,
    /// The worker (health, metrics, the jobs API).
    worker: worker::Application,
    /// The stack's logger.
    logger: Logger,
    /// The admin created with a random password on this start, to be shown once.
    generated_admin: Option<users_service::bootstrap::AdminAccount>,
}

/// A service's name and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The service.
    pub service: &'static str,
    /// Its base URL.
    pub url: String,
}

impl Stack {
    /// Builds every service and seeds the demo rows into empty databases.
    pub async fn build(settings: StackSettings, root: &Logger) -> anyhow::Result<Self> {
        let identity = settings.identity()?;
        // One process, one key set: every service checks tokens against it in memory.
        let verifier = identity.verifier();
        let bootstrap_admin = identity.admin.is_none();
        let users = users_service::Application::build(
            settings.service(users_service::NAME, users_service::DEFAULT_PORT, &verifier),
            identity,
            service_logger(root, users_service::NAME),
        )
        .await
        .context("starting users-service")?;

        let products = products_service::Application::build(
            settings.service(
                products_service::NAME,
                products_service::DEFAULT_PORT,
                &verifier,
            ),
            service_logger(root, products_service::NAME),
        )
        .await
        .context("starting products-service")?;
        let service_url = |port: u16| format!("http://{}:{port}", settings.upstream_host());
        let graphql = graphql_service::Application::build(
            graphql_service::Settings::new(
                settings.service(
                    graphql_service::NAME,
                    graphql_service::DEFAULT_PORT,
                    &verifier,
                ),
                &service_url(users.port()),
                &service_url(products.port()),
            )?,
            service_logger(root, graphql_service::NAME),
        )
        .await
        .context("starting graphql-service")?;
        let chat = chat_service::Application::build(
            settings.service(chat_service::NAME, chat_service::DEFAULT_PORT, &verifier),
            service_logger(root, chat_service::NAME),
        )
        .await
        .context("starting chat-service")?;
        let media = media_service::Application::build(
            settings.service(media_service::NAME, media_service::DEFAULT_PORT, &verifier),
            media_service::Settings::embedded(&settings.data_dir),
            service_logger(root, media_service::NAME),
        )
        .await
        .context("starting media-service")?;
        let worker = worker::Application::build(
            settings.service(worker::NAME, worker::DEFAULT_PORT, &verifier),
            worker::Settings::embedded(&settings.data_dir),
            service_logger(root, worker::NAME),
        )
        .await
        .context("starting the worker")?;
        users
            .seed_demo_data()
            .await
            .context("seeding the demo users")?;
        // After the demo rows, which go only into an empty table.
        let generated_admin = if bootstrap_admin {
            users
                .generate_admin_if_none(&settings.data_dir.join(ADMIN_CREDENTIALS_FILE))
                .await
                .context("creating the first admin")?
        } else {
            None
        };
        products
            .seed_demo_data()
            .await
            .context("seeding the demo products")?;
        graphql
            .seed_demo_data()
            .await
            .context("seeding the demo posts")?;
        let gateway = gateway::Gateway::build(
            settings.gateway_config(&[
                ("/api/users", users.port()),
                ("/api/auth", users.port()),
                ("/.well-known/jwks.json", users.port()),
                ("/api/products", products.port()),
                ("/graphql", graphql.port()),
                ("/chat", chat.port()),
                ("/socket.io", chat.port()),
                ("/api/upload", media.port()),
                ("/api/media", media.port()),
                ("/api/jobs", worker.port()),
            ]),
            std::net::SocketAddr::new(
                settings.bind,
                settings
                    .port_override
                    .unwrap_or(gateway::config::DEFAULT_PORT),
            ),
            service_logger(root, "gateway"),
            verifier,
        )
        .context("starting the gateway")?;
        let logger = service_logger(root, "stack");
        Ok(Self {
            gateway,
            users,
            products,
            graphql,
            chat,
            media,
            worker,
            logger,
            generated_admin,
        })
    }

    /// The admin created with a random password on this start (the first start on a data
    /// directory without an admin): to be shown once. Its credentials are also in
    /// `<data dir>/admin-credentials`, readable by the owner only.
    pub fn generated_admin(&self) -> Option<&users_service::bootstrap::AdminAccount> {
        self.generated_admin.as_ref()
    }

    /// Every service's URL (with `host` in it).
    pub fn endpoints(&self, host: &str) -> Vec<Endpoint> {
        vec![
            Endpoint {
                service: "gateway",
                url: format!("http://{host}:{}", self.gateway.port()),
            },
            Endpoint {
                service: "users",
                url: format!("http://{host}:{}/api/users", self.users.port()),
            },
            Endpoint {
                service: "products",
                url: format!("http://{host}:{}/api/products", self.products.port()),
            },
            Endpoint {
                service: "graphql",
                url: format!("http://{host}:{}/graphql", self.graphql.port()),
            },
            Endpoint {
                service: "chat",
                url: format!("http://{host}:{}/chat", self.chat.port()),
            },
            Endpoint {
                service: "media",
                url: format!("http://{host}:{}/api/media", self.media.port()),
            },
            Endpoint {
                service: "worker",
                url: format!("http://{host}:{}/metrics", self.worker.port()),
            },
        ]
    }

    /// Serves every service until `shutdown` resolves, then stops them all.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // The gateway drains first, while the services behind it still answer; then they stop.
        let services_stop = Shutdown::new();
        slog::info!(self.logger, "stack ready");
        let services = tokio::spawn(try_join_all([
            Box::pin(self.users.run_until_stopped(services_stop.wait()))
                as std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>,
            Box::pin(self.products.run_until_stopped(services_stop.wait())),
            Box::pin(self.graphql.run_until_stopped(services_stop.wait())),
            Box::pin(self.chat.run_until_stopped(services_stop.wait())),
            Box::pin(self.media.run_until_stopped(services_stop.wait())),
            Box::pin(self.worker.run_until_stopped(services_stop.wait())),
        ]));
        let gateway = self.gateway.run_until_stopped(shutdown).await;
        services_stop.trigger();
        let services = services.await.context("a service task panicked")?;
        gateway?;
        services?;
        Ok(())
    }
}
