//! CORS at the gateway, once for both paths: pure functions over a request head that decide
//! whether a request is a preflight the gateway answers itself ([`Cors::decide`]), what it
//! grants an actual request ([`Grant`]), and the fields either answer carries
//! ([`Cors::preflight_fields`], [`Cors::response_fields`]).
//!
//! Off unless origins are configured (`[cors] allowed_origins`, or `CORS_ALLOWED_ORIGINS`):
//! then the gateway adds no field and passes the upstreams' as they are. On, the gateway is the
//! one authority: a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
//! answered by the gateway and never forwarded, every upstream `Access-Control-*` field is
//! dropped, and every response (the upstreams' and the gateway's own errors alike) carries
//! `Vary: Origin` and, for a listed origin, the allow fields.

use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;

use crate::headers::{Field, tokens};

/// The response fields the platform's clients read, exposed by default: the request id, the
/// list headers (docs/contracts.md, "Lists") and the rate limit's wait.
pub const DEFAULT_EXPOSED: [&str; 5] = [
    "X-Request-Id",
    "Link",
    "X-Total-Count",
    "X-Total-Count-Estimate",
    "Retry-After",
];

/// The methods allowed by default: every one the services answer.
pub const DEFAULT_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// The request fields allowed by default, beside the ones browsers send without asking (the
/// CORS-safelisted ones): the bearer token, a JSON body's type, the request id.
pub const DEFAULT_HEADERS: [&str; 3] = ["Authorization", "Content-Type", "X-Request-Id"];

/// The `[cors]` table of the gateway's TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins (`scheme://host[:port]`) whose pages may call the API; `"*"`: any (only
    /// without credentials); empty (the default): CORS is off.
    pub allowed_origins: Vec<String>,
    /// Methods a preflight may ask for (default [`DEFAULT_METHODS`]).
    pub allowed_methods: Vec<String>,
    /// Request fields a preflight may ask for (default [`DEFAULT_HEADERS`]).
    pub allowed_headers: Vec<String>,
    /// Response fields a page may read beside the safelisted ones (default
    /// [`DEFAULT_EXPOSED`]).
    pub exposed_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true` for listed origins (cookies, HTTP
    /// authentication); never with `"*"`.
    pub allow_credentials: bool,
    /// How long a browser may keep a preflight's answer, in seconds (default: the browser's).
    pub max_age: Option<u64>,
}

impl Default for CorsConfig {
    fn default() -> Self {
        let owned = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
        Self {
            allowed_origins: Vec::new(),
            allowed_methods: owned(&DEFAULT_METHODS),
            allowed_headers: owned(&DEFAULT_HEADERS),
            exposed_headers: owned(&DEFAULT_EXPOSED),
            allow_credentials: false,
            max_age: None,
        }
    }
}

/// Which origins are allowed.
#[derive(Debug)]
enum Origins {
    /// None: CORS is off.
    Off,
    /// Any (`*`, no credentials).
    Any,
    /// These, lower-cased.
    Listed(Vec<HeaderValue>),
}

/// The CORS rule of a configuration, its fields' values made once.
#[derive(Debug)]
pub struct Cors {
    /// Allowed origins.
    origins: Origins,
    /// Allowed methods.
    methods: Vec<Method>,
    /// Allowed request fields (lower-case).
    headers: Vec<HeaderName>,
    /// `Access-Control-Allow-Credentials: true` for allowed origins.
    credentials: bool,
    /// `Access-Control-Allow-Methods`.
    allow_methods: HeaderValue,
    /// `Access-Control-Allow-Headers`, none for an empty list.
    allow_headers: Option<HeaderValue>,
    /// `Access-Control-Expose-Headers`, none for an empty list.
    expose_headers: Option<HeaderValue>,
    /// `Access-Control-Max-Age`.
    max_age: Option<HeaderValue>,
}

/// What CORS grants one request's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// CORS is off: no field added, the upstream's passed as they are.
    Off,
    /// No `Origin`, or one not allowed: `Vary: Origin` alone.
    Denied,
    /// The listed origin of this index: it is echoed.
    Listed(usize),
    /// Any origin (`*`): `Access-Control-Allow-Origin: *`.
    Any,
}

/// What [`Cors::decide`] makes of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// An actual request (or CORS is off): forwarded, its answers carrying what is granted.
    Actual(Grant),
    /// A preflight, answered by the gateway: 204 with the allow fields, or refused.
    Preflight(Preflight),
}

/// The gateway's answer to a preflight.
#[derive(Debug, PartialEq, Eq)]
pub enum Preflight {
    /// 204 with [`Cors::preflight_fields`] of this grant.
    Allowed(Grant),
    /// 403 `forbidden` with this message, and no allow field.
    Refused(String),
}

impl Cors {
    /// The rule of `config`; an error names what is wrong (an origin with a path, `*` with
    /// credentials, a name that is not a token).
    pub fn new(config: &CorsConfig) -> anyhow::Result<Self> {
        let mut any = false;
        let mut listed = Vec::new();
        for origin in &config.allowed_origins {
            if origin == "*" {
                any = true;
            } else {
                listed.push(checked_origin(origin)?);
            }
        }
        anyhow::ensure!(
            !(any && config.allow_credentials),
            "[cors] allowed_origins \"*\" cannot go with allow_credentials = true (browsers refuse \
             it): list the origins"
        );
        let origins = match (any, listed.is_empty()) {
            (true, _) => Origins::Any,
            (false, true) => Origins::Off,
            (false, false) => Origins::Listed(listed),
        };
        let methods = config
            .allowed_methods
            .iter()
            .map(|method| {
                anyhow::ensure!(
                    method != "*",
                    "[cors] allowed_methods: list the methods, not *"
                );
                Method::from_bytes(standard_method(method).as_bytes()).map_err(|_| {
                    anyhow::anyhow!("[cors] allowed_methods: {method:?} is not a method")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let names = |what: &str, names: &[String]| {
            names
                .iter()
                .map(|name| {
                    anyhow::ensure!(name != "*", "[cors] {what}: list the fields, not *");
                    HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| anyhow::anyhow!("[cors] {what}: {name:?} is not a field name"))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        };
        let headers = names("allowed_headers", &config.allowed_headers)?;
        let exposed = names("exposed_headers", &config.exposed_headers)?;
        let joined = |items: Vec<&str>| {
            (!items.is_empty()).then(|| {
                HeaderValue::from_str(&items.join(", ")).expect("tokens make a header value")
            })
        };
        Ok(Self {
            origins,
            allow_methods: joined(methods.iter().map(Method::as_str).collect())
                .unwrap_or_else(|| HeaderValue::from_static("")),
            allow_headers: joined(headers.iter().map(HeaderName::as_str).collect()),
            expose_headers: joined(exposed.iter().map(HeaderName::as_str).collect()),
            max_age: config.max_age.map(HeaderValue::from),
            methods,
            headers,
            credentials: config.allow_credentials,
        })
    }

    /// Whether CORS is on (some origin is allowed).
    pub fn is_on(&self) -> bool {
        !matches!(self.origins, Origins::Off)
    }

    /// What the origin `origin` (a request's first `Origin`) is granted.
    pub fn grant(&self, origin: Option<&[u8]>) -> Grant {
        match (&self.origins, origin) {
            (Origins::Off, _) => Grant::Off,
            (_, None) => Grant::Denied,
            (Origins::Any, Some(_)) => Grant::Any,
            (Origins::Listed(listed), Some(origin)) => listed
                .iter()
                .position(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin))
                .map_or(Grant::Denied, Grant::Listed),
        }
    }

    /// What the gateway makes of a request with `method` and header `fields`: a preflight
    /// (`OPTIONS` with `Origin` and `Access-Control-Request-Method`, CORS on) is answered here,
    /// allowed when its origin is, its method is listed and every field it asks for is; any
    /// other request is actual, granted by its origin ([`Cors::grant`]).
    pub fn decide<'h, F: Field<'h>>(
        &self,
        method: &Method,
        fields: impl IntoIterator<Item = F>,
    ) -> Decision {
        if !self.is_on() {
            return Decision::Actual(Grant::Off);
        }
        let mut origin = None;
        let mut request_method = None;
        let mut request_headers = Vec::new();
        for field in fields {
            let name = field.name();
            if name.eq_ignore_ascii_case("origin") {
                origin.get_or_insert(field.value());
            } else if name.eq_ignore_ascii_case("access-control-request-method") {
                request_method.get_or_insert(field.value());
            } else if name.eq_ignore_ascii_case("access-control-request-headers") {
                request_headers.push(field.value());
            }
        }
        let grant = self.grant(origin);
        let Some(request_method) = request_method.filter(|_| method == Method::OPTIONS) else {
            return Decision::Actual(grant);
        };
        if origin.is_none() {
            return Decision::Actual(grant);
        }
        Decision::Preflight(self.preflight(grant, request_method, &request_headers))
    }

    /// A preflight's answer: refused for an origin not allowed, a method not listed (methods
    /// are case-sensitive, RFC 9110 §9.1) or a field not listed.
    fn preflight(&self, grant: Grant, method: &[u8], headers: &[&[u8]]) -> Preflight {
        if grant == Grant::Denied {
            return Preflight::Refused("CORS: the origin is not allowed".to_owned());
        }
        if !self
            .methods
            .iter()
            .any(|allowed| allowed.as_str().as_bytes() == method)
        {
            return Preflight::Refused(format!(
                "CORS: the method {} is not allowed",
                String::from_utf8_lossy(method)
            ));
        }
        for asked in headers.iter().flat_map(|value| tokens(value)) {
            if !self
                .headers
                .iter()
                .any(|allowed| allowed.as_str().as_bytes().eq_ignore_ascii_case(asked))
            {
                return Preflight::Refused(format!(
                    "CORS: the header {} is not allowed",
                    String::from_utf8_lossy(asked)
                ));
            }
        }
        Preflight::Allowed(grant)
    }

    /// The `Access-Control-Allow-Origin` value of a grant.
    fn allow_origin(&self, grant: Grant) -> Option<&[u8]> {
        match (grant, &self.origins) {
            (Grant::Listed(index), Origins::Listed(listed)) => {
                listed.get(index).map(HeaderValue::as_bytes)
            }
            (Grant::Any, _) => Some(b"*"),
            _ => None,
        }
    }

    /// The fields of every answer to an actual request (the upstream's and the gateway's own),
    /// lower-case name and value: `Vary: Origin` while CORS is on, and for an allowed origin
    /// `Access-Control-Allow-Origin`, `-Allow-Credentials` (when configured) and
    /// `-Expose-Headers`.
    pub fn response_fields(&self, grant: Grant) -> impl Iterator<Item = (&'static str, &[u8])> {
        let origin = self.allow_origin(grant);
        let allowed = origin.is_some();
        [
            (grant != Grant::Off).then_some(("vary", &b"origin"[..])),
            origin.map(|origin| ("access-control-allow-origin", origin)),
            (allowed && self.credentials)
                .then_some(("access-control-allow-credentials", &b"true"[..])),
            self.expose_headers
                .as_ref()
                .filter(|_| allowed)
                .map(|exposed| ("access-control-expose-headers", exposed.as_bytes())),
        ]
        .into_iter()
        .flatten()
    }

    /// The fields of a preflight's answer: `Vary` on what it was decided by, and when allowed
    /// the origin, credentials, methods, fields and `Access-Control-Max-Age`.
    pub fn preflight_fields(&self, grant: Grant) -> impl Iterator<Item = (&'static str, &[u8])> {
        let origin = self.allow_origin(grant);
        let allowed = origin.is_some();
        [
            Some((
                "vary",
                &b"origin, access-control-request-method, access-control-request-headers"[..],
            )),
            origin.map(|origin| ("access-control-allow-origin", origin)),
            (allowed && self.credentials)
                .then_some(("access-control-allow-credentials", &b"true"[..])),
            allowed.then_some((
                "access-control-allow-methods",
                self.allow_methods.as_bytes(),
            )),
            self.allow_headers
                .as_ref()
                .filter(|_| allowed)
                .map(|headers| ("access-control-allow-headers", headers.as_bytes())),
            self.max_age
                .as_ref()
                .filter(|_| allowed)
                .map(|max_age| ("access-control-max-age", max_age.as_bytes())),
        ]
        .into_iter()
        .flatten()
    }
}

/// Whether an upstream response's field reaches the client under `grant`: all of them while
/// CORS is off; none of the upstream's `Access-Control-*` while it is on (the gateway's own
/// replace them).
pub fn passes_upstream_field(grant: Grant, name: &str) -> bool {
    grant == Grant::Off
        || !name
            .get(.."access-control-".len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("access-control-"))
}

/// Sets a response's CORS fields in its map (hyper's path): drops the upstream's
/// ([`passes_upstream_field`]) and appends [`Cors::response_fields`] (`Vary` beside the
/// upstream's own).
pub fn apply(cors: &Cors, grant: Grant, headers: &mut http::HeaderMap) {
    if grant == Grant::Off {
        return;
    }
    let dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|name| !passes_upstream_field(grant, name.as_str()))
        .cloned()
        .collect();
    for name in &dropped {
        headers.remove(name);
    }
    for (name, value) in cors.response_fields(grant) {
        let value = HeaderValue::from_bytes(value).expect("the CORS fields are header values");
        headers.append(HeaderName::from_static(name), value);
    }
}

/// A configured origin, checked (`scheme://host[:port]`, nothing after) and lower-cased.
fn checked_origin(origin: &str) -> anyhow::Result<HeaderValue> {
    let refuse = |why: &str| {
        anyhow::anyhow!("[cors] allowed_origins: {origin:?} {why} (scheme://host[:port])")
    };
    let (scheme, authority) = origin
        .split_once("://")
        .ok_or_else(|| refuse("is not an origin"))?;
    if scheme.is_empty()
        || !scheme.starts_with(|first: char| first.is_ascii_alphabetic())
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(refuse("has no scheme"));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(refuse("has a path: an origin ends after the host and port"));
    }
    if authority.contains('@') {
        return Err(refuse("has user information"));
    }
    let parsed: http::uri::Authority =
        authority.parse().map_err(|_| refuse("has no valid host"))?;
    if parsed.host().is_empty() {
        return Err(refuse("has no valid host"));
    }
    // The port, when there is one: what follows the last `:` after the host (an IPv6 host is
    // bracketed), digits of a `u16`.
    let host_end = if authority.starts_with('[') {
        authority.find(']').unwrap_or(0)
    } else {
        0
    };
    if let Some(colon) = authority[host_end..].rfind(':') {
        let port = &authority[host_end + colon + 1..];
        if port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err()
        {
            return Err(refuse("has no valid port"));
        }
    }
    HeaderValue::from_str(&origin.to_ascii_lowercase()).map_err(|_| refuse("is not a header value"))
}

/// The methods of RFC 9110 and `PATCH`, which browsers send in upper case.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `method` in upper case when it is a standard one in any case (`put` is `PUT`, which is what
/// a browser's preflight names); any other method as written (methods are case-sensitive).
fn standard_method(method: &str) -> &str {
    STANDARD_METHODS
        .iter()
        .find(|standard| standard.eq_ignore_ascii_case(method))
        .copied()
        .unwrap_or(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors::new(&CorsConfig {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            allow_credentials: credentials,
            max_age: Some(600),
            ..CorsConfig::default()
        })
        .expect("valid")
    }

    fn decide(cors: &Cors, method: Method, fields: &[(&'static str, &'static str)]) -> Decision {
        let fields: Vec<httparse::Header<'static>> = fields
            .iter()
            .map(|(name, value)| httparse::Header {
                name,
                value: value.as_bytes(),
            })
            .collect();
        cors.decide(&method, fields.iter())
    }

    fn fields(fields: impl Iterator<Item = (&'static str, impl AsRef<[u8]>)>) -> Vec<String> {
        fields
            .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_ref())))
            .collect()
    }

    const APP: (&str, &str) = ("Origin", "https://app.example");

    #[test]
    fn off_without_origins_adds_nothing_and_forwards_preflights() {
        let off = Cors::new(&CorsConfig::default()).expect("valid");
        assert!(!off.is_on());
        let preflight = [APP, ("Access-Control-Request-Method", "PUT")];
        assert_eq!(
            decide(&off, Method::OPTIONS, &preflight),
            Decision::Actual(Grant::Off)
        );
        assert!(off.response_fields(Grant::Off).next().is_none());
        assert!(passes_upstream_field(
            Grant::Off,
            "Access-Control-Allow-Origin"
        ));
    }

    #[test]
    fn a_listed_origin_is_echoed_with_the_exposed_fields() {
        let cors = cors(&["https://app.example", "http://localhost:5173"], true);
        let grant = cors.grant(Some(b"http://localhost:5173"));
        assert_eq!(grant, Grant::Listed(1));
        assert_eq!(
            fields(cors.response_fields(grant)),
            [
                "vary: origin",
                "access-control-allow-origin: http://localhost:5173",
                "access-control-allow-credentials: true",
                "access-control-expose-headers: x-request-id, link, x-total-count, x-total-count-estimate, retry-after",
            ]
        );
        for unlisted in [
            &b"https://evil.example"[..],
            b"https://app.example.evil",
            b"https://app.example:443",
            b"null",
        ] {
            assert_eq!(cors.grant(Some(unlisted)), Grant::Denied);
        }
        assert_eq!(cors.grant(None), Grant::Denied);
        assert_eq!(
            fields(cors.response_fields(Grant::Denied)),
            ["vary: origin"],
            "Vary alone for a request from elsewhere or from no page"
        );
        assert!(!passes_upstream_field(grant, "access-control-allow-origin"));
        assert!(!passes_upstream_field(
            Grant::Denied,
            "ACCESS-CONTROL-MAX-AGE"
        ));
        assert!(passes_upstream_field(grant, "vary"));
    }

    #[test]
    fn preflights_are_answered_by_the_rule() {
        let cors = cors(&["https://app.example"], false);
        let ask = |method: &'static str, headers: &'static str| {
            decide(
                &cors,
                Method::OPTIONS,
                &[
                    APP,
                    ("access-control-request-method", method),
                    ("Access-Control-Request-Headers", headers),
                ],
            )
        };
        assert_eq!(
            ask("PUT", "authorization, Content-Type,x-request-id"),
            Decision::Preflight(Preflight::Allowed(Grant::Listed(0)))
        );
        assert_eq!(
            ask("DELETE", ""),
            Decision::Preflight(Preflight::Allowed(Grant::Listed(0)))
        );
        assert!(matches!(
            ask("put", ""),
            Decision::Preflight(Preflight::Refused(_))
        ));
        assert!(matches!(
            ask("TRACE", ""),
            Decision::Preflight(Preflight::Refused(_))
        ));
        assert!(matches!(
            ask("PUT", "authorization, x-secret"),
            Decision::Preflight(Preflight::Refused(message)) if message.contains("x-secret")
        ));
        assert!(matches!(
            decide(
                &cors,
                Method::OPTIONS,
                &[
                    ("Origin", "https://evil.example"),
                    ("access-control-request-method", "GET")
                ]
            ),
            Decision::Preflight(Preflight::Refused(_))
        ));
        assert_eq!(
            decide(&cors, Method::OPTIONS, &[APP]),
            Decision::Actual(Grant::Listed(0)),
            "OPTIONS without Access-Control-Request-Method is an actual request"
        );
        assert_eq!(
            decide(
                &cors,
                Method::PUT,
                &[APP, ("access-control-request-method", "PUT")]
            ),
            Decision::Actual(Grant::Listed(0))
        );
        assert_eq!(
            decide(
                &cors,
                Method::OPTIONS,
                &[("access-control-request-method", "PUT")]
            ),
            Decision::Actual(Grant::Denied),
            "no Origin: not from a page"
        );
        assert_eq!(
            fields(cors.preflight_fields(Grant::Listed(0))),
            [
                "vary: origin, access-control-request-method, access-control-request-headers",
                "access-control-allow-origin: https://app.example",
                "access-control-allow-methods: GET, HEAD, POST, PUT, PATCH, DELETE",
                "access-control-allow-headers: authorization, content-type, x-request-id",
                "access-control-max-age: 600",
            ]
        );
        assert_eq!(
            fields(cors.preflight_fields(Grant::Denied)),
            ["vary: origin, access-control-request-method, access-control-request-headers"]
        );
    }

    #[test]
    fn any_origin_is_a_star_without_credentials_only() {
        let any = cors(&["*"], false);
        assert_eq!(any.grant(Some(b"https://anywhere.example")), Grant::Any);
        assert!(
            fields(any.response_fields(Grant::Any))
                .contains(&"access-control-allow-origin: *".to_owned())
        );
        let error = Cors::new(&CorsConfig {
            allowed_origins: vec!["*".to_owned()],
            allow_credentials: true,
            ..CorsConfig::default()
        })
        .expect_err("* with credentials");
        assert!(error.to_string().contains("allow_credentials"), "{error}");
    }

    #[test]
    fn standard_methods_are_read_in_any_case() {
        let cors = Cors::new(&CorsConfig {
            allowed_origins: vec!["https://app.example".to_owned()],
            allowed_methods: vec!["put".to_owned(), "Patch".to_owned(), "PURGE".to_owned()],
            ..CorsConfig::default()
        })
        .expect("valid");
        for method in ["PUT", "PATCH", "PURGE"] {
            let fields = [APP, ("Access-Control-Request-Method", method)];
            assert!(
                matches!(
                    decide(&cors, Method::OPTIONS, &fields),
                    Decision::Preflight(Preflight::Allowed(_))
                ),
                "{method}"
            );
        }
        assert_eq!(cors.allow_methods, "PUT, PATCH, PURGE");
        assert_eq!(
            standard_method("purge"),
            "purge",
            "other methods as written"
        );
    }

    #[test]
    fn origins_and_names_are_checked_at_start() {
        for good in [
            "https://app.example",
            "http://localhost:5173",
            "HTTPS://App.Example",
            "http://[::1]:8080",
            "http://192.0.2.7",
        ] {
            cors(&[good], true);
        }
        assert_eq!(
            cors(&["HTTPS://App.Example"], false).grant(Some(b"https://app.example")),
            Grant::Listed(0)
        );
        for bad in [
            "app.example",
            "https://app.example/",
            "https://app.example/path",
            "https://app.example?q",
            "https://user@app.example",
            "https://",
            "https://app.example:",
            "https://app.example:port",
            "://app.example",
            "null",
        ] {
            let config = CorsConfig {
                allowed_origins: vec![bad.to_owned()],
                ..CorsConfig::default()
            };
            assert!(Cors::new(&config).is_err(), "{bad}");
        }
        for (methods, headers) in [
            (vec!["*"], vec![]),
            (vec!["GE T"], vec![]),
            (vec![], vec!["*"]),
            (vec![], vec!["a b"]),
        ] {
            let config = CorsConfig {
                allowed_origins: vec!["https://app.example".to_owned()],
                allowed_methods: methods.iter().map(|m| (*m).to_owned()).collect(),
                allowed_headers: headers.iter().map(|h| (*h).to_owned()).collect(),
                ..CorsConfig::default()
            };
            assert!(Cors::new(&config).is_err(), "{methods:?} {headers:?}");
        }
    }
}
