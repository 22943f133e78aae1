//! Bearer tokens at the gateway: verified on every route, refused with 401 `invalid_token`
//! before any upstream sees them, `auth = "required"` routes, the rate limiter keyed by the
//! token's user, and the direct path deciding exactly as hyper's.

use std::sync::atomic::Ordering;

use auth::{Claims, Role};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gateway::config::{GatewayConfig, RateLimitConfig, RouteAuth};
use serde_json::{Value, json};
use testing::{admin_token, error_code, test_issuer, test_keys, user_token};

use crate::{
    helpers::{TestGateway, config, raw, route, spawn, spawn_logging_to, spawn_with},
    upstream::{self, Upstream},
};

/// Seconds since the Unix epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The claims of a fresh token of user `user_id`.
fn claims(user_id: i64) -> Claims {
    test_issuer().claims(user_id, &format!("user-{user_id}"), &[Role::User])
}

/// A token signed with the right key that expired an hour ago.
fn expired_token() -> String {
    let mut claims = claims(7);
    claims.iat = now() - 2 * 3600;
    claims.exp = now() - 3600;
    test_keys().sign(&claims).expect("signed")
}

/// An unsigned token (`alg: none`) naming the right key and claiming the admin role.
fn alg_none_token() -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": test_keys().current_kid()});
    let mut claims = claims(7);
    claims.roles.push(Role::Admin);
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims"))
    )
}

/// A well-formed token signed by a key the platform never published.
fn strangers_token() -> String {
    auth::SigningKeys::generate()
        .expect("a key")
        .sign(&claims(7))
        .expect("signed")
}

/// `/open` (optional) and `/closed` (required) to `upstream`.
fn two_routes(upstream: &Upstream) -> GatewayConfig {
    let mut closed = route("/closed", &[&upstream.url]);
    closed.auth = RouteAuth::Required;
    config(vec![route("/open", &[&upstream.url]), closed])
}

/// `GET path` with `authorization` (if any) through reqwest (so: the direct path).
async fn get_with(
    gateway: &TestGateway,
    path: &str,
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut request = gateway.client.get(gateway.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.expect("GET")
}

/// The `WWW-Authenticate` of a response.
fn challenge(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().expect("ascii").to_owned())
}

#[tokio::test]
async fn a_valid_token_reaches_the_upstream_with_its_authorization_intact() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(two_routes(&upstream));
    for (path, token) in [
        ("/open/x", user_token(1)),
        ("/closed/x", user_token(2)),
        ("/closed/y", admin_token(3)),
    ] {
        let authorization = format!("Bearer {token}");
        let response = get_with(&gateway, path, Some(&authorization)).await;
        assert_eq!(response.status(), 200, "{path}");
        let echo: Value = response.json().await.expect("echo");
        assert_eq!(
            echo["headers"]["authorization"],
            json!([authorization]),
            "the header goes upstream as the client sent it"
        );
        assert_eq!(echo["path"], path);
    }
    let anonymous = gateway.get("/open/x").await;
    assert_eq!(anonymous.status(), 200, "no token on an optional route");
    let echo: Value = anonymous.json().await.expect("echo");
    assert!(echo["headers"]["authorization"].is_null(), "{echo}");
    gateway.server.stop().await;
}

#[tokio::test]
async fn refused_tokens_are_401_invalid_token_with_a_json_body_on_every_route() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(two_routes(&upstream));
    let cases = [
        ("garbage", "Bearer not-a-token".to_owned()),
        ("three garbage parts", "Bearer aaa.bbb.ccc".to_owned()),
        ("expired", format!("Bearer {}", expired_token())),
        ("alg none", format!("Bearer {}", alg_none_token())),
        ("a stranger's key", format!("Bearer {}", strangers_token())),
        (
            "tampered",
            format!("Bearer {}", user_token(4).replacen('.', ".e", 1)),
        ),
        ("basic scheme", "Basic dXNlcjpwYXNz".to_owned()),
        ("no token after the scheme", "Bearer ".to_owned()),
    ];
    for (case, authorization) in &cases {
        // Every route: optional, required, and a path no route serves.
        for path in ["/open/x", "/closed/x", "/nowhere"] {
            let response = get_with(&gateway, path, Some(authorization)).await;
            assert_eq!(response.status(), 401, "{case} on {path}");
            assert_eq!(
                challenge(&response).as_deref(),
                Some(auth::www_authenticate(true)),
                "{case} on {path}"
            );
            assert_eq!(
                error_code(response).await,
                "unauthorized",
                "{case} on {path}"
            );
        }
    }
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        0,
        "no refused request reached the upstream"
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn a_required_route_answers_401_without_a_token_and_passes_with_one() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(two_routes(&upstream));
    let response = gateway.get("/closed/x").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenge(&response).as_deref(),
        Some(auth::www_authenticate(false)),
        "Bearer realm=…, without an error: no token was presented"
    );
    assert_eq!(error_code(response).await, "unauthorized");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 0);
    let authorization = format!("Bearer {}", user_token(5));
    let response = get_with(&gateway, "/closed/x", Some(&authorization)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(gateway.get("/open/x").await.status(), 200);
    gateway.server.stop().await;
}

#[tokio::test]
async fn the_rate_limit_keys_on_the_tokens_user_and_refused_tokens_on_the_address() {
    let upstream = upstream::start("u").await;
    let mut limited = config(vec![route("/", &[&upstream.url])]);
    limited.rate_limit = Some(RateLimitConfig {
        per_second: 1,
        burst: 3,
    });
    let gateway = spawn(limited);
    let first = format!("Bearer {}", user_token(11));
    let second = format!("Bearer {}", user_token(12));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = get_with(&gateway, "/x", Some(&first)).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            let body: Value = response.json().await.expect("a JSON error");
            assert_eq!(body["error"]["code"], "rate_limited");
            assert_eq!(body["error"]["message"], "too many requests from this user");
        }
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "the first user's burst is spent"
    );
    assert_eq!(
        get_with(&gateway, "/x", Some(&second)).await.status(),
        200,
        "another user from the same address has a bucket of their own"
    );
    // Anonymous requests and refused tokens share the address's bucket.
    for _ in 0..2 {
        let refused = get_with(&gateway, "/x", Some("Bearer bad")).await;
        assert_eq!(refused.status(), 401);
    }
    assert_eq!(gateway.get("/x").await.status(), 200, "the address's third");
    let limited = gateway.get("/x").await;
    assert_eq!(
        limited.status(),
        429,
        "refused tokens drew from the address"
    );
    assert_eq!(
        get_with(&gateway, "/x", Some(&second)).await.status(),
        200,
        "users keep their own buckets"
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_are_a_503_not_a_pass() {
    let upstream = upstream::start("u").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/.well-known/jwks.json",
        closed.local_addr().expect("address")
    );
    drop(closed);
    // Every verification tries the fetch again, so each request meets the failure itself.
    let settings = auth::VerifierSettings {
        refetch_interval: std::time::Duration::ZERO,
        ..auth::VerifierSettings::default()
    };
    let verifier = std::sync::Arc::new(auth::Verifier::new(settings, auth::KeySource::Remote(url)));
    let gateway = spawn_with(
        two_routes(&upstream),
        runtime::test_logger("gateway"),
        verifier,
    );
    let authorization = format!("Bearer {}", user_token(1));
    for path in ["/open/x", "/closed/x", "/nowhere"] {
        let response = get_with(&gateway, path, Some(&authorization)).await;
        assert_eq!(response.status(), 503, "{path}");
        assert_eq!(challenge(&response), None);
        assert_eq!(error_code(response).await, "unavailable");
    }
    assert_eq!(
        gateway.get("/open/x").await.status(),
        200,
        "anonymous requests need no keys"
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn the_access_line_names_the_user_and_never_the_token() {
    let upstream = upstream::start("u").await;
    let (logger, logs) = testing::capturing_logger("gateway");
    let gateway = spawn_logging_to(two_routes(&upstream), logger);
    let token = user_token(42);
    let refused = alg_none_token();
    for (authorization, request_id) in [
        (format!("Bearer {token}"), "with-user"),
        (format!("Bearer {refused}"), "refused"),
    ] {
        gateway
            .client
            .get(gateway.url("/open/x"))
            .header("authorization", authorization)
            .header("x-request-id", request_id)
            .send()
            .await
            .expect("GET");
    }
    gateway
        .client
        .get(gateway.url("/open/x"))
        .header("x-request-id", "anonymous")
        .send()
        .await
        .expect("GET");
    gateway.server.stop().await;
    let text = String::from_utf8(logs.lock().expect("logs").clone()).expect("utf-8");
    for secret in [&token, &refused] {
        assert!(
            !text.contains(secret.as_str()),
            "a token in the logs: {text}"
        );
        let signature = secret.rsplit('.').next().expect("parts");
        assert!(signature.is_empty() || !text.contains(signature), "{text}");
    }
    let line = |request_id: &str| -> Value {
        text.lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("JSON lines"))
            .find(|line| line["msg"] == "request" && line["request_id"] == request_id)
            .unwrap_or_else(|| panic!("the line of {request_id}: {text}"))
    };
    assert_eq!(line("with-user")["user_id"], 42);
    assert_eq!(line("with-user")["status"], 200);
    assert_eq!(line("refused")["status"], 401);
    assert_eq!(line("refused")["route"], "/open");
    assert!(line("refused")["user_id"].is_null());
    assert!(line("anonymous")["user_id"].is_null());
}

/// What a raw exchange answered: status, `WWW-Authenticate` (lower-cased) and the body.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    body: Value,
}

/// Sends `GET path` with `fields` as written, on the direct path, or with an empty chunked
/// body, which the direct path always hands to hyper.
async fn raw_get(gateway: &TestGateway, path: &str, fields: &[String], via_hyper: bool) -> Answer {
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: gateway.test\r\nconnection: close\r\n");
    for field in fields {
        request.push_str(field);
        request.push_str("\r\n");
    }
    if via_hyper {
        request.push_str("transfer-encoding: chunked\r\n\r\n0\r\n\r\n");
    } else {
        request.push_str("\r\n");
    }
    let (head, body) = raw(&gateway.authority, &request).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    let challenge = head
        .lines()
        .find_map(|line| line.strip_prefix("www-authenticate: "))
        .map(str::to_owned);
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    let body =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("a JSON body: {head}\n{body}"));
    Answer {
        status,
        challenge,
        body,
    }
}

/// The payload of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut payload = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        payload.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    payload
}

#[tokio::test]
async fn the_direct_path_and_hyper_decide_alike() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(two_routes(&upstream));
    let valid = format!("authorization: Bearer {}", user_token(21));
    let invalid = Some(auth::www_authenticate(true).to_lowercase());
    // Case, path, header fields, status, `WWW-Authenticate`.
    type Case = (&'static str, &'static str, Vec<String>, u16, Option<String>);
    let cases: Vec<Case> = vec![
        ("anonymous, optional", "/open/a", vec![], 200, None),
        (
            "anonymous, required",
            "/closed/a",
            vec![],
            401,
            Some(auth::www_authenticate(false).to_lowercase()),
        ),
        ("valid, optional", "/open/a", vec![valid.clone()], 200, None),
        (
            "valid, required",
            "/closed/a",
            vec![valid.clone()],
            200,
            None,
        ),
        (
            "lower-case scheme",
            "/closed/a",
            vec![format!("authorization: bearer {}", user_token(22))],
            200,
            None,
        ),
        (
            "valid, no route",
            "/nowhere",
            vec![valid.clone()],
            404,
            None,
        ),
        (
            "garbage",
            "/open/a",
            vec!["authorization: Bearer garbage".to_owned()],
            401,
            invalid.clone(),
        ),
        (
            "expired",
            "/closed/a",
            vec![format!("authorization: Bearer {}", expired_token())],
            401,
            invalid.clone(),
        ),
        (
            "alg none",
            "/open/a",
            vec![format!("authorization: Bearer {}", alg_none_token())],
            401,
            invalid.clone(),
        ),
        (
            "a valid and a garbage field",
            "/open/a",
            vec![valid.clone(), "Authorization: Bearer garbage".to_owned()],
            401,
            invalid.clone(),
        ),
        (
            "a valid field twice",
            "/open/a",
            vec![valid.clone(), valid.clone()],
            401,
            invalid.clone(),
        ),
        (
            "non-ASCII bytes",
            "/open/a",
            vec!["authorization: Bearer \u{e9}t\u{e9}".to_owned()],
            401,
            invalid.clone(),
        ),
        (
            "an empty field",
            "/open/a",
            vec!["authorization:".to_owned()],
            401,
            invalid.clone(),
        ),
        (
            "a bad token on no route",
            "/nowhere",
            vec!["authorization: Bearer garbage".to_owned()],
            401,
            invalid.clone(),
        ),
    ];
    for (case, path, fields, status, challenge) in &cases {
        let direct = raw_get(&gateway, path, fields, false).await;
        let hyper = raw_get(&gateway, path, fields, true).await;
        assert_eq!(
            (direct.status, &direct.challenge),
            (*status, challenge),
            "{case} on the direct path: {direct:?}"
        );
        assert_eq!(
            (hyper.status, &hyper.challenge),
            (*status, challenge),
            "{case} through hyper: {hyper:?}"
        );
        if *status == 200 {
            assert_eq!(
                direct.body["headers"]["authorization"], hyper.body["headers"]["authorization"],
                "{case}: the same header upstream"
            );
            let sent = fields
                .iter()
                .find_map(|field| field.split_once(": ").map(|(_, value)| value));
            assert_eq!(
                direct.body["headers"]["authorization"],
                json!(sent.map(|value| [value])),
                "{case}: the header went upstream unchanged"
            );
        } else {
            assert_eq!(
                direct.body["error"]["code"], hyper.body["error"]["code"],
                "{case}"
            );
            assert_eq!(
                direct.body["error"]["message"], hyper.body["error"]["message"],
                "{case}"
            );
        }
    }
    gateway.server.stop().await;
}

#[tokio::test]
async fn a_refused_request_leaves_the_connection_ready_for_the_next() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(two_routes(&upstream));
    let request = format!(
        concat!(
            "GET /open/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bad\r\n\r\n",
            "POST /closed/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            "GET /closed/3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n",
            "Connection: close\r\n\r\n",
        ),
        user_token(31)
    );
    let (head, body) = raw(&gateway.authority, &request).await;
    let text = format!("{head}\r\n\r\n{body}");
    let statuses: Vec<&str> = text
        .match_indices("http/1.1 ")
        .chain(text.match_indices("HTTP/1.1 "))
        .map(|(at, _)| &text[at + 9..at + 12])
        .collect();
    assert_eq!(statuses, ["401", "401", "200"], "{text}");
    assert!(text.contains(r#""path":"/closed/3""#), "{text}");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    gateway.server.stop().await;
}
