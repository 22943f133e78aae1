//! Forged, damaged and outdated tokens: each is refused with 401 `invalid_token` by the gateway
//! and by every service on its own port, while a well-formed token signed with users-service's
//! key (the control) is accepted by all of them, so each refusal is the token's doing. Crafted
//! tokens are signed with the key file users-service runs on (`Platform::signing_key_file`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth::{Claims, Role, SigningKeys};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Answer, World, assert_invalid_token, call};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Valid admin claims for the user `sub` (the platform's issuer and audience, 10 minutes).
fn admin_claims(sub: i64) -> Claims {
    let now = now();
    Claims {
        iss: auth::DEFAULT_ISSUER.to_owned(),
        aud: auth::DEFAULT_AUDIENCE.to_owned(),
        sub: sub.to_string(),
        exp: now + 600,
        iat: now,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
        roles: vec![Role::User, Role::Admin],
        name: Some("Forger".to_owned()),
    }
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// An HS256 JWT of `claims` keyed with `secret`, naming the real key's `kid`.
fn hs256(kid: &str, claims: &Claims, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        encode(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
        encode(&serde_json::to_value(claims).expect("claims JSON"))
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Where a token is presented: a name, and a request that succeeds for an admin's valid token.
const TARGETS: [(&str, &str, &str); 7] = [
    ("gateway", "POST /api/products", "201"),
    ("gateway", "GET /chat/ws (Authorization)", "101"),
    ("users", "GET /api/auth/me", "200"),
    ("products", "POST /api/products", "201"),
    ("graphql", "POST /graphql { me }", "200"),
    ("media", "GET /api/media", "200"),
    ("chat", "GET /chat/ws (Authorization)", "101"),
];

/// Presents `token` to a target.
async fn present(world: &World, (port, route, _): (&str, &str, &str), token: &str) -> Answer {
    let base = world.base(port);
    match route {
        "POST /api/products" => {
            call(
                Method::POST,
                &format!("{base}/api/products"),
                Some(token),
                &[],
                Some(json!({"name": "Forged", "price": 6.66})),
            )
            .await
        }
        "GET /api/auth/me" => {
            call(
                Method::GET,
                &format!("{base}/api/auth/me"),
                Some(token),
                &[],
                None,
            )
            .await
        }
        "POST /graphql { me }" => {
            call(
                Method::POST,
                &format!("{base}/graphql"),
                Some(token),
                &[],
                Some(json!({"query": "{ me { id } }"})),
            )
            .await
        }
        "GET /api/media" => {
            call(
                Method::GET,
                &format!("{base}/api/media"),
                Some(token),
                &[],
                None,
            )
            .await
        }
        _ => {
            // A WebSocket handshake, with the token in the Authorization header.
            let handshake = [
                ("connection", "Upgrade".to_owned()),
                ("upgrade", "websocket".to_owned()),
                ("sec-websocket-version", "13".to_owned()),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
            ];
            call(
                Method::GET,
                &format!("{base}/chat/ws?room=tokens"),
                Some(token),
                &handshake,
                None,
            )
            .await
        }
    }
}

/// Whether every target accepts `token`; the refusals otherwise.
async fn refusals(world: &World, token: &str) -> Vec<String> {
    let mut refused = Vec::new();
    for target in TARGETS {
        let answer = present(world, target, token).await;
        if answer.status.to_string() != target.2 {
            refused.push(format!(
                "{} on {}: {} {}",
                target.1, target.0, answer.status, answer.body
            ));
        }
    }
    refused
}

/// Every forgery, refused everywhere; the control accepted everywhere.
pub async fn attacks(world: &World) {
    let keys = SigningKeys::load(&world.platform.signing_key_file).expect("the key file");
    let admin = world.admin.id;
    let control = keys.sign(&admin_claims(admin)).expect("signed");
    let refused = refusals(world, &control).await;
    assert!(
        refused.is_empty(),
        "a valid token signed with the key file is refused:\n{}",
        refused.join("\n")
    );

    let jwks: Value = reqwest::get(world.platform.url("/.well-known/jwks.json"))
        .await
        .expect("the JWKS through the gateway")
        .json()
        .await
        .expect("JWKS JSON");
    let kid = jwks["keys"][0]["kid"].as_str().expect("a kid").to_owned();
    assert_eq!(kid, keys.current_kid(), "{jwks}");
    let x = jwks["keys"][0]["x"].as_str().expect("x").to_owned();
    let public_key = URL_SAFE_NO_PAD.decode(&x).expect("x is base64url");

    let claims = admin_claims(admin);
    let with = |change: &dyn Fn(&mut Claims)| {
        let mut claims = admin_claims(admin);
        change(&mut claims);
        keys.sign(&claims).expect("signed")
    };
    let tampered = {
        let parts: Vec<&str> = world.other.access_token.split('.').collect();
        let mut payload = decode(parts[1]);
        payload["roles"] = json!(["user", "admin"]);
        format!("{}.{}.{}", parts[0], encode(&payload), parts[2])
    };
    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                encode(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
                encode(&serde_json::to_value(&claims).expect("claims JSON"))
            ),
        ),
        (
            "HS256 keyed with the public key's bytes",
            hs256(&kid, &claims, &public_key),
        ),
        (
            "HS256 keyed with the public key's base64url text",
            hs256(&kid, &claims, x.as_bytes()),
        ),
        (
            "expired",
            with(&|claims| {
                claims.iat = now() - 1000;
                claims.exp = now() - 120;
            }),
        ),
        (
            "not valid yet (nbf in 10 minutes)",
            with(&|claims| claims.nbf = Some(now() + 600)),
        ),
        (
            "another issuer",
            with(&|claims| claims.iss = "someone-else".to_owned()),
        ),
        (
            "another audience",
            with(&|claims| claims.aud = "another-app".to_owned()),
        ),
        ("a user's token with roles changed to admin", tampered),
        (
            "an unknown kid",
            SigningKeys::generate()
                .expect("a key")
                .sign(&claims)
                .expect("signed"),
        ),
    ];
    for (attack, token) in &attacks {
        for target in TARGETS {
            let answer = present(world, target, token).await;
            assert_invalid_token(&answer, &format!("{attack}: {} on {}", target.1, target.0));
        }
    }
}

/// Rotates the key file twice (the original key is dropped), restarts users-service, and checks
/// that the gateway and every service refuse the original key's tokens once they have fetched
/// the new JWKS, while the previous key (still published) and the new one verify.
pub async fn a_key_rotated_out_stops_verifying(world: &mut World) {
    let path = world.platform.signing_key_file.clone();
    let original = SigningKeys::load(&path).expect("the key file");
    let admin = world.admin.id;
    let old = original.sign(&admin_claims(admin)).expect("signed");
    // Accepted (and so remembered as verified) everywhere before the rotation.
    let refused = refusals(world, &old).await;
    assert!(
        refused.is_empty(),
        "before rotating:\n{}",
        refused.join("\n")
    );

    let previous = original.rotated().expect("rotated");
    let current = previous.rotated().expect("rotated again");
    current.write(&path).expect("the key file is rewritten");
    world.platform.process("users").restart();
    e2e::wait_until_ready(
        &format!("{}/readyz", world.base("users")),
        Duration::from_secs(60),
    )
    .await
    .expect("users-service is back");
    let jwks: Value = reqwest::get(world.platform.url("/.well-known/jwks.json"))
        .await
        .expect("the JWKS")
        .json()
        .await
        .expect("JWKS JSON");
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|key| key["kid"].as_str())
        .collect();
    assert_eq!(
        kids,
        [current.current_kid(), previous.current_kid()],
        "the JWKS publishes the new and the previous key only"
    );

    // A token of the new key names a kid the verifiers do not know: each refetches the JWKS,
    // at most once every 30 s, so within 30 s (plus slack) every target accepts it.
    let new = current.sign(&admin_claims(admin)).expect("signed");
    let started = Instant::now();
    loop {
        let refused = refusals(world, &new).await;
        if refused.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "the new key is still refused after {:?}:\n{}",
            started.elapsed(),
            refused.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let by_previous = previous.sign(&admin_claims(admin)).expect("signed");
    let refused = refusals(world, &by_previous).await;
    assert!(
        refused.is_empty(),
        "the previous key, still published, is refused:\n{}",
        refused.join("\n")
    );
    for target in TARGETS {
        let answer = present(world, target, &old).await;
        assert_invalid_token(
            &answer,
            &format!("the rotated-out key: {} on {}", target.1, target.0),
        );
    }
}
