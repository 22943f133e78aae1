//! CORS at the gateway, on both paths: a table of raw requests (preflights allowed and
//! refused, actual requests from a listed origin, an unlisted one and none, the gateway's own
//! error answers) goes through the direct path and hyper's, and each must get the same status
//! and the same CORS fields, the ones the table expects. Preflights never reach the upstream,
//! and the upstream's own CORS fields never reach the client. Off (the default), the gateway
//! adds nothing and forwards preflights.
//!
//! The direct path hands preflights, local paths, unknown paths and rate-limited requests to
//! hyper: for those cases (marked "hyper with hyper") both runs are served by hyper.

use gateway::{
    config::{GatewayConfig, RateLimitConfig, RouteAuth},
    cors::CorsConfig,
};

use crate::{
    helpers::{config, exchange_raw, route, spawn},
    scripted::ScriptedUpstream,
};

/// The origin the gateway lists.
const APP: &str = "https://app.example";

/// An upstream answer that sets CORS fields of its own, beside a `Vary` of its own.
const UPSTREAM_OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVary: Accept-Encoding\r\n\
    Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: false\r\n\
    access-control-expose-headers: X-Internal\r\n\r\nok";

/// A one-thread gateway on `path` listing [`APP`] with credentials: `/a` to `upstream`,
/// `/closed` to it with a token required, `/down` to a port nobody listens on; one request per
/// second per client.
fn cors_gateway(path: &str, upstream: &str, cors: CorsConfig) -> crate::helpers::TestGateway {
    let mut closed = route("/closed", &[upstream]);
    closed.auth = RouteAuth::Required;
    let mut config: GatewayConfig = config(vec![
        route("/a", &[upstream]),
        closed,
        route("/down", &["http://127.0.0.1:9"]),
    ]);
    config.server.threads = 1;
    config.server.direct_path = path == "direct";
    config.rate_limit = Some(RateLimitConfig {
        per_second: 1,
        burst: 1,
    });
    config.cors = cors;
    spawn(config)
}

fn listing_app() -> CorsConfig {
    CorsConfig {
        allowed_origins: vec![APP.to_owned()],
        allow_credentials: true,
        max_age: Some(600),
        ..CorsConfig::default()
    }
}

/// The status of the last response in `text`, and its CORS fields (`Access-Control-*` and
/// `Vary`), lower-cased and sorted.
fn cors_view(text: &str) -> (u16, Vec<String>) {
    let last = text.rfind("HTTP/1.1 ").unwrap_or(0);
    let (head, _) = text[last..]
        .split_once("\r\n\r\n")
        .unwrap_or((&text[last..], ""));
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let mut fields: Vec<String> = head
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let name = name.to_ascii_lowercase();
            (name.starts_with("access-control-") || name == "vary")
                .then(|| format!("{name}: {}", value.trim().to_ascii_lowercase()))
        })
        .collect();
    fields.sort();
    (status, fields)
}

const PREFLIGHT_VARY: &str =
    "vary: origin, access-control-request-method, access-control-request-headers";
const ALLOW_ORIGIN: &str = "access-control-allow-origin: https://app.example";
const CREDENTIALS: &str = "access-control-allow-credentials: true";
const EXPOSED: &str = "access-control-expose-headers: x-request-id, link, x-total-count, x-total-count-estimate, retry-after";
const VARY: &str = "vary: origin";
const UPSTREAM_VARY: &str = "vary: accept-encoding";

/// An actual request's fields for the listed origin, with `more` (sorted with them).
fn granted(more: &[&'static str]) -> Vec<&'static str> {
    let mut fields = vec![CREDENTIALS, EXPOSED, ALLOW_ORIGIN, VARY];
    fields.extend_from_slice(more);
    fields.sort_unstable();
    fields
}

/// (what the case is, the raw request(s), the status, the CORS fields, whether the upstream
/// is reached).
type Case = (&'static str, &'static str, u16, Vec<&'static str>, bool);

fn cases() -> Vec<Case> {
    let allowed_preflight = vec![
        CREDENTIALS,
        "access-control-allow-headers: authorization, content-type, x-request-id",
        "access-control-allow-methods: get, head, post, put, patch, delete",
        ALLOW_ORIGIN,
        "access-control-max-age: 600",
        PREFLIGHT_VARY,
    ];
    vec![
        // hyper with hyper: the direct path hands preflights over.
        (
            "an allowed preflight",
            "OPTIONS /a/items/1 HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: authorization,content-type\r\nConnection: close\r\n\r\n",
            204,
            allowed_preflight.clone(),
            false,
        ),
        // hyper with hyper: the direct path hands preflights over.
        (
            "an allowed preflight to a route that needs a token",
            "OPTIONS /closed/x HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: DELETE\r\nConnection: close\r\n\r\n",
            204,
            allowed_preflight,
            false,
        ),
        // hyper with hyper: the direct path hands preflights over.
        (
            "a preflight from an unlisted origin",
            "OPTIONS /a HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n",
            403,
            vec![PREFLIGHT_VARY],
            false,
        ),
        // hyper with hyper: the direct path hands preflights over.
        (
            "a preflight for a method not allowed",
            "OPTIONS /a HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: TRACE\r\nConnection: close\r\n\r\n",
            403,
            vec![PREFLIGHT_VARY],
            false,
        ),
        // hyper with hyper: the direct path hands preflights over.
        (
            "a preflight for a header not allowed",
            "OPTIONS /a HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization, x-secret\r\nConnection: close\r\n\r\n",
            403,
            vec![PREFLIGHT_VARY],
            false,
        ),
        (
            "a request from the listed origin",
            "PUT /a/items/1 HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            200,
            granted(&[UPSTREAM_VARY]),
            true,
        ),
        (
            "the listed origin in another case",
            "GET /a HTTP/1.1\r\nHost: h\r\nOrigin: HTTPS://APP.EXAMPLE\r\nConnection: close\r\n\r\n",
            200,
            granted(&[UPSTREAM_VARY]),
            true,
        ),
        (
            "a request from an unlisted origin",
            "GET /a HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n",
            200,
            vec![UPSTREAM_VARY, VARY],
            true,
        ),
        (
            "a request from no page",
            "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            200,
            vec![UPSTREAM_VARY, VARY],
            true,
        ),
        (
            "an OPTIONS that asks no method: an actual request",
            "OPTIONS /a HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n",
            200,
            granted(&[UPSTREAM_VARY]),
            true,
        ),
        (
            "a refused token",
            "GET /closed HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n",
            401,
            granted(&[]),
            false,
        ),
        (
            "a refused token from an unlisted origin",
            "GET /closed HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n",
            401,
            vec![VARY],
            false,
        ),
        (
            "an upstream nobody answers for",
            "GET /down HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n",
            502,
            granted(&[]),
            false,
        ),
        // hyper with hyper: the direct path hands unknown paths over.
        (
            "no route",
            "GET /nowhere HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n",
            404,
            granted(&[]),
            false,
        ),
        // hyper with hyper: the direct path hands the gateway's own paths over.
        (
            "the gateway's own path",
            "GET /healthz HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n",
            200,
            granted(&[]),
            false,
        ),
        // hyper with hyper for the second: the direct path hands rate-limited requests over.
        (
            "the rate limit",
            "GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n",
            429,
            granted(&[]),
            false,
        ),
    ]
}

#[tokio::test]
async fn both_paths_give_the_same_cors_answers() {
    for (what, request, status, fields, reaches_upstream) in cases() {
        let expected: Vec<String> = fields.iter().map(|field| (*field).to_owned()).collect();
        let mut seen = Vec::new();
        for path in ["direct", "hyper"] {
            let upstream = ScriptedUpstream::always(UPSTREAM_OK).await;
            let gateway = cors_gateway(path, &upstream.url, listing_app());
            let text = exchange_raw(&gateway.authority, request.as_bytes()).await;
            gateway.server.stop().await;
            let view = cors_view(&text);
            assert_eq!(view.0, status, "{what}, {path}: {text:?}");
            assert_eq!(view.1, expected, "{what}, {path}: {text:?}");
            assert_eq!(
                !upstream.received().is_empty(),
                reaches_upstream,
                "{what}, {path}: {:?}",
                upstream.requests()
            );
            if status == 403 {
                assert!(
                    text.contains(r#""code":"forbidden""#),
                    "{what}, {path}: {text}"
                );
            }
            seen.push(view);
        }
        assert_eq!(seen[0], seen[1], "{what}: the paths answered differently");
    }
}

#[tokio::test]
async fn off_by_default_the_gateway_adds_nothing_and_forwards_preflights() {
    const PREFLIGHT: &[u8] = b"OPTIONS /a HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n";
    const GET: &[u8] =
        b"GET /a HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n";
    for path in ["direct", "hyper"] {
        for request in [PREFLIGHT, GET] {
            let upstream = ScriptedUpstream::always(UPSTREAM_OK).await;
            let gateway = cors_gateway(path, &upstream.url, CorsConfig::default());
            let text = exchange_raw(&gateway.authority, request).await;
            gateway.server.stop().await;
            assert_eq!(
                cors_view(&text),
                (
                    200,
                    vec![
                        "access-control-allow-credentials: false".to_owned(),
                        "access-control-allow-origin: *".to_owned(),
                        "access-control-expose-headers: x-internal".to_owned(),
                        UPSTREAM_VARY.to_owned(),
                    ]
                ),
                "{path}: the upstream's own fields, nothing added: {text}"
            );
            assert_eq!(upstream.received().len(), 1, "{path}: forwarded");
        }
    }
}

#[tokio::test]
async fn any_origin_is_a_star_without_credentials() {
    let upstream = ScriptedUpstream::always(UPSTREAM_OK).await;
    let cors = CorsConfig {
        allowed_origins: vec!["*".to_owned()],
        ..CorsConfig::default()
    };
    let gateway = cors_gateway("direct", &upstream.url, cors);
    let text = exchange_raw(
        &gateway.authority,
        b"GET /a HTTP/1.1\r\nHost: h\r\nOrigin: https://anywhere.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (status, fields) = cors_view(&text);
    assert_eq!(status, 200);
    assert!(
        fields.contains(&"access-control-allow-origin: *".to_owned()),
        "{fields:?}"
    );
    assert!(
        !fields
            .iter()
            .any(|field| field.starts_with("access-control-allow-credentials")),
        "{fields:?}"
    );
}
