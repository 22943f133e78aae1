//! The deployment files against the code: every binary is built by CI, every service is in
//! docker-compose, the release workflow and the Kubernetes manifests, with the port and health
//! paths it really uses, and the gateway's cluster routes reach each service on its port.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

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
    let mut value: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    // docker-compose.yml shares settings through YAML merge keys (`<<: *service`).
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    value
}

fn yaml_documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            serde_yaml::with::singleton_map_recursive::deserialize(document).expect("YAML")
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
    let mut binaries = Vec::new();
    for member in members {
        let dir = root().join(member.as_str().expect("a path"));
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

#[test]
fn ci_builds_every_binary() {
    let ci = yaml(".github/workflows/ci.yml");
    let mut matrix: Vec<String> = ci["jobs"]["build"]["strategy"]["matrix"]["binary"]
        .as_sequence()
        .expect("a binary matrix")
        .iter()
        .map(|b| b.as_str().expect("a name").to_owned())
        .collect();
    matrix.sort();
    assert_eq!(matrix, workspace_binaries());
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
}

#[test]
fn compose_runs_every_service_on_its_port_with_health_checks() {
    let compose = yaml("docker-compose.yml");
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
        let published: Vec<&str> = service["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .filter_map(|p| p.as_str())
            .collect();
        // chat scales out (`--scale chat=2`): it publishes its port on any host port.
        let expected = if name == "chat" {
            port.to_string()
        } else {
            format!("{port}:{port}")
        };
        assert!(
            published.contains(&expected.as_str()),
            "{name} publishes {expected}: {published:?}"
        );
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
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert!(
            container["image"]
                .as_str()
                .is_some_and(|image| image.contains(&format!("/{binary}:"))),
            "{name} runs {binary}"
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
    for (prefix, service) in [("/api/users", "users"), ("/api/products", "products")] {
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
    let k8s: Vec<Value> = yaml("deploy/k8s/kustomization.yaml")["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .filter_map(|r| r.as_str())
        .flat_map(|file| yaml_documents(&format!("deploy/k8s/{file}")))
        .collect();
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
        let deployment = k8s
            .iter()
            .find(|d| {
                d["kind"].as_str() == Some("Deployment")
                    && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no Deployment {name}"));
        let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
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
