//! The deployment files against the code: every binary is built by CI, every service is in
//! docker-compose, the release workflow and the Kubernetes manifests, with the port and health
//! paths it really uses, and the gateway's cluster routes reach each service on its port.

use std::path::{Path, PathBuf};

use serde_norway::Value;

/// The services that deploy (the `stack` binary is the embedded all-in-one, not a unit of a
/// deployment on real backends).
fn services() -> Vec<(&'static str, &'static str, u16)> {
    vec![
        // (compose and Kubernetes name, binary, port)
        ("gateway", "gateway", gateway::config::DEFAULT_PORT),
        ("users", "users-service", users_service::DEFAULT_PORT),
        (
            "products",
            "products-service",
            products_service::DEFAULT_PORT,
        ),
        ("graphql", "graphql-service", graphql_service::DEFAULT_PORT),
        ("chat", "chat-service", chat_service::DEFAULT_PORT),
        ("media", "media-service", media_service::DEFAULT_PORT),
        ("worker", "worker", worker::DEFAULT_PORT),
    ]
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut value: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    // docker-compose.yml shares settings through YAML merge keys (`<<: *service`).
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    value
}

fn yaml_documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            serde_norway::with::singleton_map_recursive::deserialize(document).expect("YAML")
        })
        .collect()
}

/// Every binary of the workspace: each member's `[[bin]]` names, or its package name when it
/// has a `src/main.rs`.
fn workspace_binaries() -> Vec<String> {
    let workspace: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml"))
            .expect("TOML");
    let members = workspace["workspace"]["members"]
        .as_array()
        .expect("members");
    // A member ending in `/*` names every folder below it (the building-block crates).
    let dirs = members.iter().flat_map(|member| {
        let member = member.as_str().expect("a path");
        match member.strip_suffix("/*") {
            Some(parent) => std::fs::read_dir(root().join(parent))
                .expect("the members' folder")
                .map(|entry| entry.expect("an entry").path())
                .filter(|path| path.join("Cargo.toml").exists())
                .collect::<Vec<_>>(),
            None => vec![root().join(member)],
        }
    });
    let mut binaries = Vec::new();
    for dir in dirs {
        let manifest: toml::Table = toml::from_str(
            &std::fs::read_to_string(dir.join("Cargo.toml")).expect("member manifest"),
        )
        .expect("TOML");
        match manifest.get("bin").and_then(|bins| bins.as_array()) {
            Some(bins) => binaries.extend(
                bins.iter()
                    .map(|bin| bin["name"].as_str().expect("bin name").to_owned()),
            ),
            None if dir.join("src/main.rs").exists() => binaries.push(
                manifest["package"]["name"]
                    .as_str()
                    .expect("name")
                    .to_owned(),
            ),
            None => {}
        }
    }
    binaries.sort();
    binaries
}

#[test]
fn every_binary_is_deployed_or_known_not_to_be() {
    let mut deployed: Vec<String> = services()
        .iter()
        .map(|(_, binary, _)| (*binary).to_owned())
        .collect();
    deployed.push("stack".to_owned());
    deployed.sort();
    assert_eq!(
        workspace_binaries(),
        deployed,
        "a new binary must be added to the deployment files (and here)"
    );
}

/// A key of `[workspace.package]` in the root Cargo.toml (`version`, `rust-version`).
fn workspace_package(key: &str) -> String {
    let workspace: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml"))
            .expect("TOML");
    workspace["workspace"]["package"][key]
        .as_str()
        .unwrap_or_else(|| panic!("[workspace.package] {key}"))
        .to_owned()
}

#[test]
fn ci_tests_the_workspace_per_system_and_toolchain_and_release_builds_every_image() {
    let ci = yaml(".github/workflows/ci.yml");
    let test = &ci["jobs"]["test"];
    let axis = |name: &str| -> Vec<String> {
        test["strategy"]["matrix"][name]
            .as_sequence()
            .unwrap_or_else(|| panic!("a {name} axis"))
            .iter()
            .map(|value| value.as_str().expect("a name").to_owned())
            .collect()
    };
    assert_eq!(axis("os"), ["ubuntu-latest", "macos-latest"]);
    assert_eq!(
        axis("toolchain"),
        ["stable".to_owned(), workspace_package("rust-version")]
    );
    let runs: Vec<&str> = test["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .filter_map(|step| step["run"].as_str())
        .collect();
    assert!(
        runs.iter().any(|run| run.contains("scripts/test.sh")),
        "Linux runs the README's test command"
    );
    assert!(
        ci["jobs"].as_mapping().expect("jobs").len() <= 3,
        "no per-binary build matrix: one workspace build per system and toolchain"
    );
    for workflow in ["ci.yml", "release.yml"] {
        let text = std::fs::read_to_string(root().join(".github/workflows").join(workflow))
            .expect("workflow");
        for line in text.lines().filter(|line| {
            line.trim_start().starts_with("- uses:") || line.trim_start().starts_with("uses:")
        }) {
            let reference = line.split('@').nth(1).unwrap_or("");
            let commit = reference.split_whitespace().next().unwrap_or("");
            assert!(
                commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
                "{workflow}: not pinned by commit: {line}"
            );
        }
    }
    let release = yaml(".github/workflows/release.yml");
    for (_, binary, port) in services() {
        let entry = release["jobs"]["image"]["strategy"]["matrix"]["include"]
            .as_sequence()
            .expect("include")
            .iter()
            .find(|entry| entry["binary"].as_str() == Some(binary))
            .unwrap_or_else(|| panic!("release.yml builds no image of {binary}"));
        assert_eq!(
            entry["port"].as_str(),
            Some(port.to_string().as_str()),
            "{binary}'s port in release.yml"
        );
    }
    // Release tags publish the version the manifests pin.
    let tags: Vec<&str> = release["on"]["push"]["tags"]
        .as_sequence()
        .expect("release.yml runs on tags")
        .iter()
        .filter_map(|tag| tag.as_str())
        .collect();
    assert_eq!(tags, ["v*"]);
    let text =
        std::fs::read_to_string(root().join(".github/workflows/release.yml")).expect("release");
    assert!(text.contains("version=\"${GITHUB_REF_NAME#v}\""));
    assert!(text.contains("tags=$image:$version"));
    assert!(!text.contains(":latest"));
}

#[test]
fn compose_runs_every_service_on_its_port_with_health_checks() {
    let compose = yaml("docker-compose.yml");
    let debug = yaml("deploy/compose.debug.yml");
    let services_yaml = &compose["services"];
    for (name, binary, port) in services() {
        let service = &services_yaml[name];
        assert!(
            service.is_mapping(),
            "docker-compose.yml has no service {name}"
        );
        assert_eq!(
            service["build"]["args"]["SERVICE"].as_str(),
            Some(binary),
            "{name} builds {binary}"
        );
        assert_eq!(
            service["build"]["args"]["PORT"].as_str(),
            Some(port.to_string().as_str()),
            "{name}'s image port"
        );
        let published = published_ports(service);
        // Only the gateway faces clients; the debugging override publishes the rest, on
        // loopback (chat on any host port: it scales out with `--scale chat=2`).
        if name == "gateway" {
            assert_eq!(published, [format!("{port}:{port}")], "the gateway's port");
        } else {
            assert!(published.is_empty(), "{name} is published: {published:?}");
            let expected = if name == "chat" {
                format!("127.0.0.1::{port}")
            } else {
                format!("127.0.0.1:{port}:{port}")
            };
            assert_eq!(
                published_ports(&debug["services"][name]),
                [expected],
                "deploy/compose.debug.yml publishes {name} on loopback"
            );
        }
        let check: Vec<&str> = service["healthcheck"]["test"]
            .as_sequence()
            .expect("healthcheck")
            .iter()
            .filter_map(|p| p.as_str())
            .collect();
        assert!(
            check.contains(&"--healthcheck"),
            "{name}'s health check probes /healthz"
        );
        assert_eq!(service["restart"].as_str(), Some("unless-stopped"));
        if name != "gateway" {
            let environment = &service["environment"];
            assert!(
                environment["DATABASE_URL"]
                    .as_str()
                    .is_some_and(|url| url.starts_with("postgres://")),
                "{name} on PostgreSQL"
            );
            assert!(
                environment["REDIS_URL"]
                    .as_str()
                    .is_some_and(|url| url.starts_with("redis://")),
                "{name} on Redis"
            );
        }
    }
}

/// The `ports` a compose service publishes.
fn published_ports(service: &Value) -> Vec<String> {
    service["ports"]
        .as_sequence()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|port| port.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_publishes_no_backend_and_every_debug_port_on_loopback_only() {
    let compose = yaml("docker-compose.yml");
    for (name, service) in compose["services"].as_mapping().expect("services") {
        let name = name.as_str().expect("a name");
        if name != "gateway" {
            assert!(
                published_ports(service).is_empty(),
                "{name} is published by default"
            );
        }
    }
    let debug = yaml("deploy/compose.debug.yml");
    for (name, service) in debug["services"].as_mapping().expect("services") {
        for port in published_ports(service) {
            assert!(port.starts_with("127.0.0.1:"), "{name:?} publishes {port}");
        }
    }
}

/// Every `${…}` of `text`: the variable and what follows its name (`:?message`, `:-default`).
fn interpolations(text: &str) -> Vec<(String, String)> {
    text.split("${")
        .skip(1)
        .map(|rest| {
            let inside = rest.split('}').next().unwrap_or(rest);
            let name_end = inside
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inside.len());
            (inside[..name_end].to_owned(), inside[name_end..].to_owned())
        })
        .collect()
}

#[test]
fn compose_credentials_come_from_the_generated_env_file_and_have_no_default() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose");
    // The credentials that ship with the images' examples appear nowhere.
    for known in ["platform:platform@", "platform-secret-key", "guest:guest"] {
        assert!(!text.contains(known), "docker-compose.yml holds {known}");
    }
    let seaweed = std::fs::read_to_string(root().join("deploy/seaweedfs-s3.json")).expect("json");
    assert!(
        seaweed.contains("@ACCESS_KEY@") && seaweed.contains("@SECRET_KEY@"),
        "the S3 keys are filled in at start, not kept in the repository"
    );
    let variables = interpolations(&text);
    assert!(!variables.is_empty());
    for (name, rest) in &variables {
        assert!(
            rest.starts_with(":?"),
            "${{{name}{rest}}}: compose must refuse to start without it, not use a default"
        );
    }
    let compose = yaml("docker-compose.yml");
    let composed = &compose["services"];
    for (name, _, _) in services()
        .into_iter()
        .filter(|(name, ..)| *name != "gateway")
    {
        let url = composed[name]["environment"]["DATABASE_URL"]
            .as_str()
            .expect("DATABASE_URL");
        assert!(url.contains("${POSTGRES_PASSWORD:?"), "{name}: {url}");
    }
    assert!(
        composed["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"]
            .as_str()
            .is_some_and(|value| value.starts_with("${RABBITMQ_PASSWORD:?")),
    );

    // deploy/generate-env.sh writes every variable compose needs, random, into a 0600 `.env`,
    // and keeps an existing one.
    let scratch = std::env::temp_dir().join(format!("platform-env-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("deploy")).expect("scratch");
    std::fs::copy(
        root().join("deploy/generate-env.sh"),
        scratch.join("deploy/generate-env.sh"),
    )
    .expect("copy");
    let generate = || {
        std::process::Command::new("sh")
            .arg(scratch.join("deploy/generate-env.sh"))
            .output()
            .expect("sh runs")
    };
    assert!(generate().status.success());
    let env_file = scratch.join(".env");
    let written = std::fs::read_to_string(&env_file).expect(".env");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env_file)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let values: std::collections::BTreeMap<&str, &str> = written
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .collect();
    for (name, _) in &variables {
        let value = values
            .get(name.as_str())
            .unwrap_or_else(|| panic!("generate-env.sh does not write {name}"));
        assert!(
            value.len() >= 16,
            "{name}={value} is too short to be a secret"
        );
    }
    assert!(!generate().status.success(), "an existing .env is kept");
    assert_eq!(std::fs::read_to_string(&env_file).expect(".env"), written);
    let again = std::fs::remove_file(&env_file).map(|()| generate());
    assert_ne!(
        std::fs::read_to_string(&env_file).expect(".env"),
        written,
        "every run draws new secrets ({again:?})"
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn the_deployed_worker_bounds_its_decode_memory_and_media_replicas_share_a_signing_key() {
    let compose = yaml("docker-compose.yml");
    let k8s = k8s_documents();
    for (variable, value) in [
        ("WORKER_DECODE_MEMORY_MB", "128"),
        ("WORKER_MAX_IMAGE_PIXELS", "24000000"),
        ("WORKER_MAX_DELIVERIES", "5"),
    ] {
        assert_eq!(
            compose["services"]["worker"]["environment"][variable].as_str(),
            Some(value)
        );
        assert_eq!(
            k8s_variable(&k8s, "worker", variable).as_deref(),
            Some(value)
        );
    }
    assert!(
        compose["services"]["media"]["environment"]["MEDIA_SIGNING_KEY"]
            .as_str()
            .is_some_and(|value| value.starts_with("${MEDIA_SIGNING_KEY:?"))
    );
    let media = &k8s_deployment(&k8s, "media")["spec"]["template"]["spec"]["containers"][0];
    assert!(
        media["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .any(|entry| entry["name"].as_str() == Some("MEDIA_SIGNING_KEY")
                && entry["valueFrom"]["secretKeyRef"]["name"].as_str() == Some("platform-secrets")),
        "every media replica reads the same key from the Secret"
    );
}

#[test]
fn the_chat_service_lists_its_pods_so_socket_io_sessions_can_stay_on_theirs() {
    let service = k8s_documents()
        .into_iter()
        .find(|d| {
            d["kind"].as_str() == Some("Service") && d["metadata"]["name"].as_str() == Some("chat")
        })
        .expect("a chat Service");
    assert_eq!(
        service["spec"]["clusterIP"].as_str(),
        Some("None"),
        "headless: the gateway's lookups of `chat` return every pod, and a session is pinned to one"
    );
    let routes = gateway::config::GatewayConfig::from_file(&root().join("deploy/k8s/gateway.toml"))
        .expect("valid routes");
    let socket_io = routes
        .routes
        .iter()
        .find(|route| route.prefix == "/socket.io")
        .expect("a /socket.io route");
    assert_eq!(socket_io.upstreams, ["http://chat:3004"]);
    assert!(socket_io.sticky.is_some(), "the /socket.io route is sticky");
}

#[test]
fn graphql_introspection_is_off_in_the_deployments() {
    let compose = yaml("docker-compose.yml");
    assert_eq!(
        compose["services"]["graphql"]["environment"]["GRAPHQL_INTROSPECTION"].as_str(),
        Some("false")
    );
    assert_eq!(
        k8s_variable(&k8s_documents(), "graphql", "GRAPHQL_INTROSPECTION").as_deref(),
        Some("false")
    );
}

#[test]
fn the_kubernetes_base_holds_no_credentials() {
    for document in k8s_documents() {
        assert_ne!(
            document["kind"].as_str(),
            Some("Secret"),
            "a Secret in the base gives its credentials a default: {:?}",
            document["metadata"]["name"]
        );
    }
}

#[test]
fn kubernetes_runs_every_service_with_its_port_and_probes() {
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    let resources: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    let documents: Vec<Value> = resources
        .iter()
        .flat_map(|file| yaml_documents(&format!("deploy/k8s/{file}")))
        .collect();
    for (name, binary, port) in services() {
        let deployment = documents
            .iter()
            .find(|d| {
                d["kind"].as_str() == Some("Deployment")
                    && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no Deployment {name}"));
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        // The image is named without a tag; kustomize's `images:` pins the release.
        let image = format!("ghcr.io/platform/{binary}");
        assert_eq!(container["image"].as_str(), Some(image.as_str()), "{name}");
        let pinned = kustomization["images"]
            .as_sequence()
            .expect("images")
            .iter()
            .find(|entry| entry["name"].as_str() == Some(image.as_str()))
            .unwrap_or_else(|| panic!("kustomization.yaml pins no tag of {image}"));
        assert_eq!(
            pinned["newTag"].as_str(),
            Some(workspace_package("version").as_str()),
            "{image} runs the release of this version (release.yml publishes it)"
        );
        // Migrations before the port opens; endpoints updated before the drain starts.
        assert_eq!(
            container["startupProbe"]["httpGet"]["path"].as_str(),
            Some("/healthz")
        );
        assert!(
            container["lifecycle"]["preStop"]["sleep"]["seconds"]
                .as_u64()
                .is_some_and(|seconds| seconds > 0),
            "{name} pauses before its drain"
        );
        assert!(
            pod["terminationGracePeriodSeconds"]
                .as_u64()
                .is_some_and(|grace| grace >= 20),
            "{name}: the pause and the 10 s drain fit in the grace period"
        );
        assert_eq!(
            container["ports"][0]["containerPort"].as_u64(),
            Some(u64::from(port))
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"].as_str(),
            Some("/healthz")
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"].as_str(),
            Some("/readyz")
        );
        assert_eq!(
            container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
            Some(true)
        );
        let service = documents
            .iter()
            .find(|d| {
                d["kind"].as_str() == Some("Service")
                    && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no Service {name}"));
        assert_eq!(
            service["spec"]["ports"][0]["port"].as_u64(),
            Some(u64::from(port))
        );
    }
}

#[test]
fn the_cluster_routes_reach_each_service_on_its_port() {
    let config = gateway::config::GatewayConfig::from_file(&root().join("deploy/k8s/gateway.toml"))
        .expect("valid routes");
    for (prefix, service) in [
        ("/api/users", "users"),
        ("/api/auth", "users"),
        (auth::JWKS_PATH, "users"),
        ("/api/products", "products"),
    ] {
        let port = services()
            .into_iter()
            .find(|(name, _, _)| *name == service)
            .expect("a service")
            .2;
        let route = config
            .routes
            .iter()
            .find(|route| route.prefix == prefix)
            .unwrap_or_else(|| panic!("no route {prefix}"));
        assert_eq!(route.upstreams, [format!("http://{service}:{port}")]);
    }
}

#[test]
fn the_deployed_gateway_limits_rates_and_bodies() {
    let config = gateway::config::GatewayConfig::from_file(&root().join("deploy/k8s/gateway.toml"))
        .expect("valid routes");
    let rate = config.rate_limit.expect("a rate limit");
    assert!(rate.per_second > 0 && rate.burst >= rate.per_second);
    for route in &config.routes {
        // Routes that take no request body (the key set, WebSocket upgrades) need no limit.
        if route.prefix != auth::JWKS_PATH && route.prefix != "/chat" {
            assert!(
                route
                    .max_body_bytes
                    .is_some_and(|limit| limit <= 8 * 1024 * 1024),
                "{} has no body limit",
                route.prefix
            );
        }
    }
}

/// The environment variables a binary reads: its clap arguments' `env` names, plus the AWS
/// SDK's credentials for the two binaries that talk to S3.
fn variables(binary: &str) -> std::collections::BTreeSet<String> {
    use clap::CommandFactory;
    fn collect(command: &clap::Command, into: &mut std::collections::BTreeSet<String>) {
        for argument in command.get_arguments() {
            if let Some(env) = argument.get_env() {
                into.insert(env.to_string_lossy().into_owned());
            }
        }
        for subcommand in command.get_subcommands() {
            collect(subcommand, into);
        }
    }
    let command = match binary {
        "gateway" => gateway::config::Args::command(),
        "users-service" => users_service::Config::command(),
        "products-service" => products_service::Config::command(),
        "graphql-service" => graphql_service::Config::command(),
        "chat-service" => chat_service::Config::command(),
        "media-service" => media_service::Config::command(),
        "worker" => worker::Config::command(),
        other => panic!("no Config for {other}"),
    };
    let mut names = std::collections::BTreeSet::new();
    collect(&command, &mut names);
    if matches!(binary, "media-service" | "worker") {
        names.insert("AWS_ACCESS_KEY_ID".to_owned());
        names.insert("AWS_SECRET_ACCESS_KEY".to_owned());
    }
    names
}

#[test]
fn every_variable_the_deployments_set_is_one_the_binary_reads() {
    let compose = yaml("docker-compose.yml");
    let k8s = k8s_documents();
    let mut read_by_someone = std::collections::BTreeSet::new();
    for (name, binary, _) in services() {
        let known = variables(binary);
        read_by_someone.extend(known.iter().cloned());
        let environment = compose["services"][name]["environment"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{name} has an environment in compose"));
        for key in environment.keys().filter_map(|key| key.as_str()) {
            assert!(
                known.contains(key),
                "compose sets {key} for {name}, which {binary} does not read"
            );
        }
        let env = k8s_deployment(&k8s, name)["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        for variable in env.iter().filter_map(|entry| entry["name"].as_str()) {
            assert!(
                known.contains(variable),
                "the {name} Deployment sets {variable}, which {binary} does not read"
            );
        }
    }
    // The ConfigMap goes to every service (envFrom): each of its keys is read by at least one.
    let config_map = k8s
        .iter()
        .find(|d| {
            d["kind"].as_str() == Some("ConfigMap")
                && d["metadata"]["name"].as_str() == Some("platform-config")
        })
        .expect("the platform-config ConfigMap");
    for key in config_map["data"]
        .as_mapping()
        .expect("data")
        .keys()
        .filter_map(|key| key.as_str())
    {
        assert!(
            read_by_someone.contains(key),
            "platform-config sets {key}, which no binary reads"
        );
    }
}

/// The Kubernetes documents of the kustomization's resources.
fn k8s_documents() -> Vec<Value> {
    yaml("deploy/k8s/kustomization.yaml")["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .filter_map(|r| r.as_str())
        .flat_map(|file| yaml_documents(&format!("deploy/k8s/{file}")))
        .collect()
}

fn k8s_deployment<'a>(documents: &'a [Value], name: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| {
            d["kind"].as_str() == Some("Deployment") && d["metadata"]["name"].as_str() == Some(name)
        })
        .unwrap_or_else(|| panic!("no Deployment {name}"))
}

/// The value a Deployment's first container gets for `variable`: its own `env` entry (a
/// literal value), else the key of a ConfigMap it takes whole (`envFrom`).
fn k8s_variable(documents: &[Value], name: &str, variable: &str) -> Option<String> {
    let container = &k8s_deployment(documents, name)["spec"]["template"]["spec"]["containers"][0];
    if let Some(entry) = container["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|entry| entry["name"].as_str() == Some(variable))
    {
        return entry["value"].as_str().map(str::to_owned);
    }
    container["envFrom"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|source| source["configMapRef"]["name"].as_str())
        .find_map(|config_map| {
            documents
                .iter()
                .find(|d| {
                    d["kind"].as_str() == Some("ConfigMap")
                        && d["metadata"]["name"].as_str() == Some(config_map)
                })
                .and_then(|d| d["data"][variable].as_str())
                .map(str::to_owned)
        })
}

#[test]
fn the_gateway_and_every_service_fetch_the_token_keys_from_users_service() {
    let users_port = users_service::DEFAULT_PORT;
    let jwks = format!("http://users:{users_port}{}", auth::JWKS_PATH);
    let compose = yaml("docker-compose.yml");
    let k8s = k8s_documents();
    // users-service checks tokens with the keys it holds; every other binary fetches them.
    for (name, binary, _) in services()
        .into_iter()
        .filter(|(name, _, _)| *name != "users")
    {
        assert!(
            variables(binary).contains("AUTH_JWKS_URL"),
            "{binary} reads AUTH_JWKS_URL"
        );
        assert_eq!(
            compose["services"][name]["environment"]["AUTH_JWKS_URL"].as_str(),
            Some(jwks.as_str()),
            "{name}'s AUTH_JWKS_URL in docker-compose.yml (without it every request with a token gets 503)"
        );
        assert_eq!(
            k8s_variable(&k8s, name, "AUTH_JWKS_URL").as_deref(),
            Some(jwks.as_str()),
            "the {name} Deployment's AUTH_JWKS_URL"
        );
    }
}

#[test]
fn compose_keeps_the_signing_key_in_a_volume_and_names_no_admin_password() {
    let compose = yaml("docker-compose.yml");
    let users = &compose["services"]["users"];
    let key_file = users["environment"]["AUTH_SIGNING_KEY_FILE"]
        .as_str()
        .expect("users sets AUTH_SIGNING_KEY_FILE");
    // A named volume (declared at the top level) mounted over the key file's directory: the key
    // survives restarts, rebuilds and `docker compose up --force-recreate`.
    let volume = users["volumes"]
        .as_sequence()
        .expect("users has volumes")
        .iter()
        .filter_map(|mount| mount.as_str())
        .filter_map(|mount| mount.split_once(':'))
        .find(|(_, target)| {
            let target = target.split(':').next().unwrap_or(target);
            Path::new(key_file).starts_with(target)
        })
        .map(|(source, _)| source)
        .unwrap_or_else(|| panic!("no volume holds {key_file}"));
    assert!(
        compose["volumes"]
            .as_mapping()
            .expect("volumes")
            .contains_key(volume),
        "{volume} is a named volume declared in docker-compose.yml"
    );
    // No fixed password: the admin is named by the operator (deploy/compose.admin.yml).
    for variable in ["ADMIN_PASSWORD", "ADMIN_PASSWORD_FILE", "ADMIN_EMAIL"] {
        assert!(
            users["environment"][variable].is_null(),
            "docker-compose.yml sets {variable}: no admin may exist before the operator names one"
        );
    }
    let admin = yaml("deploy/compose.admin.yml");
    let users_admin = &admin["services"]["users"];
    assert!(
        users_admin["environment"]["ADMIN_PASSWORD"].is_null(),
        "the admin's password comes as a file"
    );
    let password_file = users_admin["environment"]["ADMIN_PASSWORD_FILE"]
        .as_str()
        .expect("ADMIN_PASSWORD_FILE");
    let secret = users_admin["secrets"][0]["source"]
        .as_str()
        .expect("a secret");
    assert_eq!(password_file, format!("/run/secrets/{secret}"));
    assert!(
        admin["secrets"][secret]["environment"].is_string(),
        "the password comes from the operator's environment, not from the repository"
    );
    let known = variables("users-service");
    for key in users_admin["environment"]
        .as_mapping()
        .expect("environment")
        .keys()
        .filter_map(|key| key.as_str())
    {
        assert!(known.contains(key), "users-service does not read {key}");
    }
}

#[test]
fn kubernetes_gives_every_users_replica_the_same_key_and_admin_from_secrets() {
    let k8s = k8s_documents();
    let pod = &k8s_deployment(&k8s, "users")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = |variable: &str| {
        container["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .find(|entry| entry["name"].as_str() == Some(variable))
            .unwrap_or_else(|| panic!("the users Deployment sets no {variable}"))
    };
    // A file of a Secret volume, mounted read-only, readable by the service's group.
    let secret_file = |variable: &str| -> String {
        let path = env(variable)["value"]
            .as_str()
            .unwrap_or_else(|| panic!("{variable} is a path"));
        let (directory, file) = path.rsplit_once('/').expect("a file in a directory");
        let mount = container["volumeMounts"]
            .as_sequence()
            .expect("volumeMounts")
            .iter()
            .find(|mount| mount["mountPath"].as_str() == Some(directory))
            .unwrap_or_else(|| panic!("nothing is mounted at {directory}"));
        assert_eq!(mount["readOnly"].as_bool(), Some(true), "{directory}");
        let volume = pod["volumes"]
            .as_sequence()
            .expect("volumes")
            .iter()
            .find(|volume| volume["name"] == mount["name"])
            .expect("the mounted volume");
        let secret = &volume["secret"];
        assert!(
            secret["items"]
                .as_sequence()
                .expect("items")
                .iter()
                .any(|item| item["path"].as_str() == Some(file)),
            "{variable}: the Secret puts {file} there"
        );
        // Secret files belong to root and the pod's fsGroup: the service (uid 10001, not root)
        // reads them through the group; nobody else may.
        assert_eq!(pod["securityContext"]["fsGroup"].as_u64(), Some(10001));
        let mode = secret["defaultMode"]
            .as_u64()
            .unwrap_or_else(|| panic!("{variable}'s Secret has a mode"));
        assert!(
            mode & 0o040 != 0 && mode & 0o007 == 0,
            "{variable}: mode {mode:o} is group-readable and not world-readable"
        );
        secret["secretName"]
            .as_str()
            .expect("secretName")
            .to_owned()
    };
    let signing = secret_file("AUTH_SIGNING_KEY_FILE");
    let admin = secret_file("ADMIN_PASSWORD_FILE");
    assert_eq!(
        env("ADMIN_EMAIL")["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some(admin.as_str()),
        "the admin's address is in the same Secret as its password"
    );
    // No key or password in the repository: the Secrets are created by the operator
    // (deploy/k8s/README.md), not by the base.
    for secret in [&signing, &admin] {
        assert!(
            !k8s.iter().any(|d| d["kind"].as_str() == Some("Secret")
                && d["metadata"]["name"].as_str() == Some(secret)),
            "the base must not hold the {secret} Secret"
        );
    }
    let readme = std::fs::read_to_string(root().join("deploy/k8s/README.md")).expect("README");
    for secret in [&signing, &admin] {
        assert!(
            readme.contains(&format!("kubectl create secret generic {secret}")),
            "deploy/k8s/README.md says how to create {secret}"
        );
    }
    assert!(readme.contains("openssl genpkey -algorithm ed25519"));
}

#[test]
fn no_deployment_file_holds_a_private_key() {
    let mut files = vec![root().join("docker-compose.yml")];
    let mut directories = vec![root().join("deploy")];
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(&directory).expect("deploy/") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                directories.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for file in files {
        let text = std::fs::read(&file).expect("readable");
        assert!(
            !String::from_utf8_lossy(&text).contains("PRIVATE KEY-----"),
            "{} holds a private key",
            file.display()
        );
    }
}

/// Whether a Kubernetes label selector (`matchLabels`, `matchExpressions` with `In`, `NotIn`,
/// `Exists`, `DoesNotExist`) selects a pod with `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |key: &str| labels[key].as_str();
    let by_labels = selector["matchLabels"]
        .as_mapping()
        .into_iter()
        .flatten()
        .all(|(key, value)| label(key.as_str().expect("key")) == value.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_sequence()
        .into_iter()
        .flatten()
        .all(|expression| {
            let value = label(expression["key"].as_str().expect("key"));
            let listed = |v: &str| {
                expression["values"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|listed| listed.as_str() == Some(v))
            };
            match expression["operator"].as_str().expect("operator") {
                "In" => value.is_some_and(listed),
                "NotIn" => !value.is_some_and(listed),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("unknown operator {other}"),
            }
        });
    by_labels && by_expressions
}

/// The Deployments whose pods the cluster lets open a connection to `name`'s pods, by the
/// NetworkPolicies that select them; `None` when no policy selects them (anyone may).
fn allowed_callers(documents: &[Value], name: &str) -> Option<std::collections::BTreeSet<String>> {
    let pod_labels = |deployment: &str| {
        k8s_deployment(documents, deployment)["spec"]["template"]["metadata"]["labels"].clone()
    };
    let target = pod_labels(name);
    let policies: Vec<&Value> = documents
        .iter()
        .filter(|d| d["kind"].as_str() == Some("NetworkPolicy"))
        .filter(|d| selects(&d["spec"]["podSelector"], &target))
        .collect();
    if policies.is_empty() {
        return None;
    }
    let mut allowed = std::collections::BTreeSet::new();
    for policy in policies {
        let policy_name = policy["metadata"]["name"].as_str().unwrap_or("?");
        for rule in policy["spec"]["ingress"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let peers = rule["from"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{policy_name}: a rule without `from` lets anyone in"));
            let ports: Vec<&str> = rule["ports"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|port| port["port"].as_str())
                .collect();
            assert_eq!(
                ports,
                ["http"],
                "{policy_name}: a rule opens the service's port alone (no `ports` opens every one)"
            );
            for peer in peers {
                assert!(
                    peer["namespaceSelector"].is_null() && peer["ipBlock"].is_null(),
                    "{policy_name}: only the platform's own pods are peers, by podSelector"
                );
                let selected: Vec<&str> = services()
                    .into_iter()
                    .map(|(caller, _, _)| caller)
                    .filter(|caller| selects(&peer["podSelector"], &pod_labels(caller)))
                    .collect();
                // A peer that names no Deployment of the platform lets in whichever pods carry
                // its labels.
                assert!(
                    !selected.is_empty(),
                    "{policy_name}: a peer selects none of the platform's Deployments"
                );
                allowed.extend(selected.into_iter().map(str::to_owned));
            }
        }
    }
    Some(allowed)
}

#[test]
fn network_policies_let_each_service_be_reached_only_by_its_callers() {
    let k8s = k8s_documents();
    // Who calls whom: the gateway every service it routes to, and each binary the services its
    // URL settings name (graphql: users and products; everyone: users' JWKS).
    let mut callers: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    let routes: toml::Table = toml::from_str(
        &std::fs::read_to_string(root().join("deploy/k8s/gateway.toml")).expect("gateway.toml"),
    )
    .expect("TOML");
    let host_of = |url: &str| {
        url.strip_prefix("http://")
            .and_then(|rest| rest.split([':', '/']).next())
            .map(str::to_owned)
    };
    for route in routes["routes"].as_array().expect("routes") {
        for upstream in route["upstreams"].as_array().expect("upstreams") {
            let host = host_of(upstream.as_str().expect("upstream")).expect("http upstream");
            callers.entry(host).or_default().insert("gateway".into());
        }
    }
    for (name, binary, _) in services() {
        for variable in variables(binary)
            .iter()
            .filter(|variable| variable.ends_with("_URL"))
        {
            let Some(url) = k8s_variable(&k8s, name, variable) else {
                continue;
            };
            // A service's own name (users-service's AUTH_JWKS_URL, from the shared ConfigMap) is
            // not a call: it checks tokens with the keys it holds.
            if let Some(host) =
                host_of(&url).filter(|host| host != name && services().iter().any(|s| s.0 == host))
            {
                callers.entry(host).or_default().insert(name.to_owned());
            }
        }
    }
    assert!(
        callers["users"].len() == services().len() - 1,
        "every other binary calls users-service (the token keys): {:?}",
        callers["users"]
    );
    assert!(callers["products"].contains("graphql"));
    // The gateway is the way in from outside: the Ingress reaches it, so nothing restricts it.
    assert_eq!(allowed_callers(&k8s, "gateway"), None);
    for (name, _, _) in services().into_iter().filter(|s| s.0 != "gateway") {
        let expected = callers.get(name).cloned().unwrap_or_default();
        let allowed = allowed_callers(&k8s, name)
            .unwrap_or_else(|| panic!("no NetworkPolicy selects {name}: any pod may reach it"));
        assert_eq!(allowed, expected, "who may reach {name}");
    }
}
