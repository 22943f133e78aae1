//! The route table: longest prefix on whole path segments, and the optional prefix rewrite.

use std::{borrow::Cow, sync::Arc, time::Duration};

use http::HeaderValue;

use crate::{
    config::{GatewayConfig, RouteAuth, RouteConfig, Sticky},
    sticky::Sessions,
    upstream::Upstreams,
};

/// One route, ready to serve.
#[derive(Debug)]
pub struct Route {
    /// The prefix, also the route's label in logs and metrics.
    pub prefix: Arc<str>,
    /// Replaces the prefix when forwarding, if set.
    rewrite: Option<String>,
    /// The `Host` sent upstream instead of the client's, if set.
    pub host: Option<HeaderValue>,
    /// How long to wait for the upstream's response headers.
    pub response_timeout: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: Option<u64>,
    /// Whether a request needs a bearer token.
    pub auth: RouteAuth,
    /// Where requests go.
    pub upstreams: Upstreams,
    /// The Engine.IO sessions of a `sticky = "engine.io"` route, and which instance opened each.
    pub sessions: Option<Sessions>,
}

/// Whether `path` is `prefix` or below it on a segment boundary (`/api/docs`,
/// `/api/docs/x`, not `/api/docsx`); every path is under `/`. Routes and the gateway's own
/// pages match paths by this one rule.
pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
}

impl Route {
    /// Whether `path` is this route's prefix or below it, on a segment boundary.
    pub fn matches(&self, path: &str) -> bool {
        is_under(path, &self.prefix)
    }

    /// The path to send upstream: unchanged, or with the prefix replaced by the rewrite.
    pub fn upstream_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        match &self.rewrite {
            None => Cow::Borrowed(path),
            Some(rewrite) => {
                let rest = if self.prefix.as_ref() == "/" {
                    path
                } else {
                    &path[self.prefix.len()..]
                };
                match (rewrite.ends_with('/'), rest.starts_with('/')) {
                    (true, true) => Cow::Owned(format!("{rewrite}{}", &rest[1..])),
                    (_, _) if rest.is_empty() => Cow::Owned(rewrite.clone()),
                    (false, false) => Cow::Owned(format!("{rewrite}/{rest}")),
                    _ => Cow::Owned(format!("{rewrite}{rest}")),
                }
            }
        }
    }
}

/// Every route, longest prefix first.
#[derive(Debug)]
pub struct RouteTable {
    /// Sorted by prefix length, longest first, so the first match is the longest.
    routes: Vec<Arc<Route>>,
    /// The OpenAPI documents the routes name (`openapi`), in the table's order, each once:
    /// `(prefix of the route naming it first, its URL)`.
    documents: Vec<(Arc<str>, Arc<str>)>,
}

impl RouteTable {
    /// Builds the routes of `config`.
    pub fn new(config: &GatewayConfig) -> anyhow::Result<Self> {
        let mut routes = config
            .routes
            .iter()
            .map(|route| build_route(route, config))
            .collect::<anyhow::Result<Vec<_>>>()?;
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        let mut documents: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        for route in &config.routes {
            if let Some(url) = &route.openapi
                && !documents.iter().any(|(_, known)| **known == **url)
            {
                documents.push((Arc::from(route.prefix.as_str()), Arc::from(url.as_str())));
            }
        }
        Ok(Self { routes, documents })
    }

    /// The OpenAPI documents the routes name, in the table's order, each once: `(prefix of the
    /// route naming it, its URL)`.
    pub fn documents(&self) -> &[(Arc<str>, Arc<str>)] {
        &self.documents
    }

    /// The route of `path`, if any.
    pub fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|route| route.matches(path))
    }

    /// Every route.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

fn build_route(route: &RouteConfig, config: &GatewayConfig) -> anyhow::Result<Arc<Route>> {
    let prefix = if route.prefix.len() > 1 {
        route.prefix.trim_end_matches('/')
    } else {
        "/"
    };
    Ok(Arc::new(Route {
        prefix: Arc::from(prefix),
        rewrite: route.rewrite.clone(),
        host: route
            .host
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()?,
        response_timeout: Duration::from_millis(
            route
                .response_timeout_ms
                .unwrap_or(config.server.response_timeout_ms),
        ),
        max_body_bytes: route.max_body_bytes,
        auth: route.auth,
        upstreams: Upstreams::new(&route.upstreams, &config.server)?,
        sessions: route.sticky.map(|Sticky::EngineIo| Sessions::default()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, Option<&str>)]) -> RouteTable {
        let mut config = GatewayConfig::builtin();
        config.routes = routes
            .iter()
            .map(|(prefix, rewrite)| crate::config::RouteConfig {
                prefix: (*prefix).to_owned(),
                upstreams: vec!["http://127.0.0.1:1".into()],
                rewrite: rewrite.map(str::to_owned),
                host: None,
                response_timeout_ms: None,
                max_body_bytes: None,
                auth: RouteAuth::Optional,
                sticky: None,
                openapi: None,
            })
            .collect();
        RouteTable::new(&config).expect("table")
    }

    fn found(table: &RouteTable, path: &str) -> Option<String> {
        table.find(path).map(|route| route.prefix.to_string())
    }

    #[test]
    fn the_longest_prefix_on_segment_boundaries_wins() {
        let table = table(&[
            ("/api", None),
            ("/api/users", None),
            ("/api/users/admin/", None),
        ]);
        assert_eq!(found(&table, "/api/users").as_deref(), Some("/api/users"));
        assert_eq!(found(&table, "/api/users/1").as_deref(), Some("/api/users"));
        assert_eq!(found(&table, "/api/usersX").as_deref(), Some("/api"));
        assert_eq!(
            found(&table, "/api/users/admin/x").as_deref(),
            Some("/api/users/admin")
        );
        assert_eq!(found(&table, "/apix"), None);
        assert_eq!(found(&table, "/"), None);
    }

    #[test]
    fn the_builtin_table_routes_accounts_and_keys_to_users_service() {
        let table = RouteTable::new(&GatewayConfig::builtin()).expect("table");
        let users = |path: &str| {
            let route = table
                .find(path)
                .unwrap_or_else(|| panic!("a route for {path}"));
            let instances = route.upstreams.instances();
            (route.prefix.to_string(), instances[0].label.to_string())
        };
        for (path, prefix) in [
            ("/.well-known/jwks.json", "/.well-known/jwks.json"),
            ("/api/auth/login", "/api/auth"),
            ("/api/auth", "/api/auth"),
        ] {
            assert_eq!(
                users(path),
                (prefix.to_owned(), "127.0.0.1:3001".to_owned())
            );
        }
        assert_eq!(found(&table, "/.well-known/jwks.jsonx"), None);
        assert_eq!(found(&table, "/.well-known"), None);
        assert_eq!(found(&table, "/api/authx"), None);
    }

    #[test]
    fn a_root_route_catches_everything_else() {
        let table = table(&[("/", None), ("/chat", None)]);
        assert_eq!(found(&table, "/anything").as_deref(), Some("/"));
        assert_eq!(found(&table, "/chat/ws").as_deref(), Some("/chat"));
    }

    #[test]
    fn rewrites_replace_the_prefix() {
        let table = table(&[
            ("/api/users", Some("/users")),
            ("/v1", Some("/")),
            ("/keep", None),
        ]);
        let path = |p: &str| table.find(p).expect("route").upstream_path(p).into_owned();
        assert_eq!(path("/api/users"), "/users");
        assert_eq!(path("/api/users/7"), "/users/7");
        assert_eq!(path("/v1/items"), "/items");
        assert_eq!(path("/v1"), "/");
        assert_eq!(path("/keep/x"), "/keep/x");
    }
}
