//! Identities: sign-up, login, refresh rotation and reuse detection, logout, throttling, the
//! admin bootstrap, the published keys, and the access rules of `/api/users` as a matrix.

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use testing::{
    TestBackend, admin_token, capturing_logger, error_code, fresh_database, on_both_backends,
    test_keys, user_token,
};
use users_service::{IdentityOptions, bootstrap::AdminAccount};

use crate::helpers::{TestApp, spawn_app, spawn_with_identity, test_settings};

const PASSWORD: &str = "correct horse battery staple";

/// A client that sends no token unless told to.
fn anonymous() -> Client {
    Client::builder().no_proxy().build().expect("client")
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = anonymous().request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

async fn signup(app: &TestApp, name: &str, email: &str) -> Value {
    let response = send(
        app,
        Method::POST,
        "/api/auth/signup",
        None,
        Some(json!({"name": name, "email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(response.status(), 201, "signing up {email}");
    response.json().await.expect("session JSON")
}

async fn login(app: &TestApp, email: &str, password: &str) -> Response {
    send(
        app,
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

async fn sign_up_log_in_refresh_and_log_out(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let session = signup(&app, "Carol", "Carol@Example.com").await;
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in"], 900);
    assert_eq!(session["user"]["email"], "Carol@Example.com");
    assert_eq!(session["user"]["role"], "user");
    assert!(session["user"].get("password_hash").is_none());
    let id = session["user"]["id"].as_i64().expect("id");

    // The access token is an EdDSA JWT with the claims of the contract.
    let access = session["access_token"].as_str().expect("access token");
    let header = jwt_part(access, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], test_keys().current_kid());
    let claims = jwt_part(access, 1);
    for claim in ["iss", "aud", "sub", "exp", "iat", "jti", "roles"] {
        assert!(claims.get(claim).is_some(), "claim {claim} in {claims}");
    }
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["roles"], json!(["user"]));

    let me = send(&app, Method::GET, "/api/auth/me", Some(access), None).await;
    assert_eq!(me.status(), 200);
    assert_eq!(
        me.json::<Value>().await.expect("JSON")["email"],
        "Carol@Example.com"
    );

    // Login in any case of the address.
    let logged_in = login(&app, "carol@example.COM", PASSWORD).await;
    assert_eq!(logged_in.status(), 200);
    assert_eq!(logged_in.headers()["cache-control"], "no-store");
    let logged_in: Value = logged_in.json().await.expect("JSON");

    // Refresh: a new pair, and the old refresh token is spent.
    let refresh = logged_in["refresh_token"].as_str().expect("refresh token");
    assert!(refresh.len() >= 43, "256 bits of base64url");
    let renewed = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(renewed.status(), 200);
    let renewed: Value = renewed.json().await.expect("JSON");
    assert_ne!(renewed["refresh_token"], logged_in["refresh_token"]);
    assert_ne!(renewed["access_token"], logged_in["access_token"]);

    // Logout ends the session: its refresh token no longer works.
    let next = renewed["refresh_token"].as_str().expect("refresh token");
    let logout = send(
        &app,
        Method::POST,
        "/api/auth/logout",
        None,
        Some(json!({"refresh_token": next})),
    )
    .await;
    assert_eq!(logout.status(), 204);
    let after = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        None,
        Some(json!({"refresh_token": next})),
    )
    .await;
    assert_eq!(after.status(), 401);
    // The sign-up's own session is another family: still alive.
    let first = session["refresh_token"].as_str().expect("refresh token");
    let other = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        None,
        Some(json!({"refresh_token": first})),
    )
    .await;
    assert_eq!(other.status(), 200);
    app.server.stop().await;
}

fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).expect("JWT part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

async fn a_reused_refresh_token_revokes_its_family(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let session = signup(&app, "Dave", "dave@example.com").await;
    let first = session["refresh_token"].as_str().expect("token").to_owned();
    let refresh = |token: String| {
        let app = &app;
        async move {
            send(
                app,
                Method::POST,
                "/api/auth/refresh",
                None,
                Some(json!({"refresh_token": token})),
            )
            .await
        }
    };
    let second: Value = refresh(first.clone()).await.json().await.expect("JSON");
    let second = second["refresh_token"].as_str().expect("token").to_owned();
    // The spent first token comes back (stolen): refused, and the family is revoked, so the
    // legitimate holder's current token stops working too.
    let reused = refresh(first).await;
    assert_eq!(reused.status(), 401);
    assert!(
        reused.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("invalid_token")
    );
    assert_eq!(refresh(second).await.status(), 401);
    // Garbage is simply invalid.
    assert_eq!(refresh("not-a-token".into()).await.status(), 401);
    app.server.stop().await;
}

async fn a_wrong_password_and_an_unknown_email_answer_alike(backend: TestBackend) {
    let app = spawn_app(backend).await;
    signup(&app, "Erin", "erin@example.com").await;
    let wrong = login(&app, "erin@example.com", "wrong password here").await;
    let unknown = login(&app, "nobody@example.com", "wrong password here").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert_eq!(
        wrong.headers()["www-authenticate"],
        unknown.headers()["www-authenticate"]
    );
    let wrong: Value = wrong.json().await.expect("JSON");
    let unknown: Value = unknown.json().await.expect("JSON");
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "unauthorized");
    // The demo rows have no password: they cannot log in.
    let app_with_demo = app;
    send(
        &app_with_demo,
        Method::POST,
        "/api/users",
        Some(&admin_token(1_000_000)),
        Some(json!({"name": "Nopass", "email": "nopass@example.com"})),
    )
    .await;
    assert_eq!(
        login(&app_with_demo, "nopass@example.com", "")
            .await
            .status(),
        401
    );
    assert_eq!(
        login(&app_with_demo, "nopass@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    app_with_demo.server.stop().await;
}

on_both_backends!(
    sign_up_log_in_refresh_and_log_out,
    a_reused_refresh_token_revokes_its_family,
    a_wrong_password_and_an_unknown_email_answer_alike,
    the_users_rules_hold_for_every_caller,
);

#[tokio::test]
async fn sign_up_refuses_weak_passwords_roles_and_taken_addresses() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let short = send(
        &app,
        Method::POST,
        "/api/auth/signup",
        None,
        Some(json!({"name": "F", "email": "f@example.com", "password": "short"})),
    )
    .await;
    assert_eq!(short.status(), 422);
    let common = send(
        &app,
        Method::POST,
        "/api/auth/signup",
        None,
        Some(json!({"name": "F", "email": "f@example.com", "password": "Password123"})),
    )
    .await;
    assert_eq!(common.status(), 422);
    let body: Value = common.json().await.expect("JSON");
    assert_eq!(body["error"]["details"][0]["field"], "password");
    // Nobody makes themself admin: a role is an unknown field.
    let role = send(
        &app,
        Method::POST,
        "/api/auth/signup",
        None,
        Some(json!({"name": "F", "email": "f@example.com", "password": PASSWORD, "role": "admin"})),
    )
    .await;
    assert_eq!(role.status(), 422);
    signup(&app, "F", "f@example.com").await;
    let taken = send(
        &app,
        Method::POST,
        "/api/auth/signup",
        None,
        Some(json!({"name": "G", "email": "F@EXAMPLE.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(error_code(taken).await, "conflict");
    app.server.stop().await;
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_per_address() {
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let mut options = IdentityOptions::new(test_keys());
    options.failures_per_account = 3.try_into().expect("3");
    options.failures_per_address = 6.try_into().expect("6");
    // Budgets of an hour: none of them comes back while the test runs, however slow the hashes.
    options.failures_period = std::time::Duration::from_secs(3600);
    let app = spawn_with_identity(
        test_settings(database),
        options,
        runtime::test_logger("users"),
    )
    .await;
    signup(&app, "Hank", "hank@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            login(&app, "hank@example.com", "not the password")
                .await
                .status(),
            401
        );
    }
    let throttled = login(&app, "hank@example.com", "not the password").await;
    assert_eq!(throttled.status(), 429);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    // 3 an hour: the budget's first failure comes back 20 minutes after it.
    assert!((19 * 60..=20 * 60).contains(&wait), "{wait}");
    assert_eq!(error_code(throttled).await, "rate_limited");
    // Blocked means blocked: even the right password waits.
    assert_eq!(
        login(&app, "hank@example.com", PASSWORD).await.status(),
        429
    );
    // The address budget is wider: other accounts from here fail normally until it is spent.
    assert_eq!(
        login(&app, "ivy@example.com", "nope nope nope")
            .await
            .status(),
        401
    );
    assert_eq!(
        login(&app, "jay@example.com", "nope nope nope")
            .await
            .status(),
        401
    );
    // 4 failures from this address so far (3 + the throttled one) + 2 = 6: the next trips it.
    let tripped = login(&app, "kim@example.com", "nope nope nope").await;
    assert_eq!(tripped.status(), 429);
    app.server.stop().await;
}

/// Every route of users-service × {anonymous, the user, another user, an admin}.
async fn the_users_rules_hold_for_every_caller(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let alice: Value = signup(&app, "Alice", "alice@example.com").await;
    let alice_id = alice["user"]["id"].as_i64().expect("id");
    let bob: Value = signup(&app, "Bob", "bob@example.com").await;
    let bob_id = bob["user"]["id"].as_i64().expect("id");
    let alice_token = alice["access_token"].as_str().expect("token").to_owned();
    let bob_token = bob["access_token"].as_str().expect("token").to_owned();
    let admin = admin_token(1_000_000);

    let callers: [(&str, Option<&str>); 4] = [
        ("anonymous", None),
        ("self", Some(&alice_token)),
        ("another user", Some(&bob_token)),
        ("admin", Some(&admin)),
    ];
    // (method, path, body, expected status per caller, whether the email shows per caller)
    let user_path = format!("/api/users/{alice_id}");
    let reads: [(&str, [bool; 4]); 3] = [
        ("/api/users", [false, true, false, true]),
        (user_path.as_str(), [false, true, false, true]),
        (
            &format!("/api/users?ids={alice_id},{bob_id}"),
            [false, true, false, true],
        ),
    ];
    for (path, shows) in &reads {
        for ((who, token), shows) in callers.iter().zip(shows) {
            let response = send(&app, Method::GET, path, *token, None).await;
            assert_eq!(response.status(), 200, "GET {path} as {who}");
            let body: Value = response.json().await.expect("JSON");
            let rows = body
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![body.clone()]);
            let alice_row = rows
                .iter()
                .find(|row| row["id"] == alice_id)
                .expect("Alice listed");
            assert_eq!(
                alice_row.get("email").is_some(),
                *shows,
                "Alice's email, GET {path} as {who}: {alice_row}"
            );
            // Bob's own email shows only to Bob and admins, never to Alice.
            if let Some(bob_row) = rows.iter().find(|row| row["id"] == bob_id) {
                assert_eq!(
                    bob_row.get("email").is_some(),
                    *who == "admin" || *who == "another user",
                    "Bob's email as {who}"
                );
            }
        }
    }
    let writes: [(Method, String, Option<Value>, [u16; 4]); 4] = [
        (
            Method::POST,
            "/api/users".into(),
            Some(json!({"name": "New", "email": "new@example.com"})),
            [401, 403, 403, 201],
        ),
        (
            Method::PUT,
            user_path.clone(),
            Some(json!({"name": "Alice B", "email": "alice@example.com"})),
            [401, 200, 403, 200],
        ),
        (
            Method::PUT,
            format!("/api/users/{alice_id}/password"),
            Some(json!({"password": "another long passphrase", "current_password": PASSWORD})),
            [401, 204, 403, 204],
        ),
        (
            Method::DELETE,
            user_path.clone(),
            None,
            [401, 403, 403, 204],
        ),
    ];
    for (method, path, body, expected) in writes {
        for ((who, token), expected) in callers.iter().zip(expected) {
            // Deleting Alice as herself would end the matrix early: that row is checked last.
            if method == Method::DELETE && *who == "self" {
                continue;
            }
            let response = send(&app, method.clone(), &path, *token, body.clone()).await;
            assert_eq!(
                response.status().as_u16(),
                expected,
                "{method} {path} as {who}"
            );
            if expected == 401 {
                assert!(response.headers().contains_key("www-authenticate"));
                assert_eq!(error_code(response).await, "unauthorized");
            } else if expected == 403 {
                assert_eq!(error_code(response).await, "forbidden");
            }
        }
    }
    // Bob deletes himself.
    let response = send(
        &app,
        Method::DELETE,
        &format!("/api/users/{bob_id}"),
        Some(&bob_token),
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    app.server.stop().await;
}

#[tokio::test]
async fn a_client_sent_identity_header_or_a_bad_token_gives_nothing() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let response = anonymous()
        .post(app.url("/api/users"))
        .header("X-User-Id", "1")
        .header("X-User-Roles", "admin")
        .json(&json!({"name": "Mallory", "email": "mallory@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    for bad in ["garbage", "a.b.c", "Basic dXNlcjpwYXNz"] {
        let response = anonymous()
            .get(app.url("/api/users"))
            .header(
                "authorization",
                if bad.starts_with("Basic") {
                    bad.to_owned()
                } else {
                    format!("Bearer {bad}")
                },
            )
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401, "{bad}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .expect("ascii")
                .contains("invalid_token")
        );
        assert_eq!(error_code(response).await, "unauthorized");
    }
    // A user's token cannot reach the admin's writes.
    let response = send(
        &app,
        Method::POST,
        "/api/users",
        Some(&user_token(5)),
        Some(json!({"name": "X", "email": "x@example.com"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    app.server.stop().await;
}

#[tokio::test]
async fn a_login_token_verifies_against_the_published_keys() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let session = signup(&app, "Lee", "lee@example.com").await;
    let jwks: Value = anonymous()
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
    let verifier = auth::Verifier::new(
        auth::VerifierSettings::default(),
        auth::KeySource::Remote(app.url("/.well-known/jwks.json")),
    );
    let principal = verifier
        .verify(session["access_token"].as_str().expect("token"))
        .await
        .expect("verifies against the JWKS");
    assert_eq!(Some(principal.user_id), session["user"]["id"].as_i64());
    assert_eq!(principal.name.as_deref(), Some("Lee"));
    app.server.stop().await;
}

#[tokio::test]
async fn the_configured_admin_is_created_or_promoted_and_can_sign_in() {
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let settings = test_settings(database);
    let first = spawn_app_with_admin(settings.clone(), "root@example.com").await;
    let session: Value = login(&first, "root@example.com", "an operator's long secret")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(session["user"]["role"], "admin");
    assert_eq!(
        jwt_part(session["access_token"].as_str().expect("token"), 1)["roles"],
        json!(["user", "admin"])
    );
    signup(&first, "Promoted", "promote@example.com").await;
    first.server.stop().await;
    // Naming an existing user promotes it (and sets the operator's password).
    let second = spawn_app_with_admin(settings, "promote@example.com").await;
    let session: Value = login(&second, "promote@example.com", "an operator's long secret")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(session["user"]["role"], "admin");
    second.server.stop().await;
}

async fn spawn_app_with_admin(settings: server::ServiceSettings, email: &str) -> TestApp {
    let mut options = IdentityOptions::new(test_keys());
    options.admin = Some(AdminAccount {
        email: email.into(),
        password: "an operator's long secret".into(),
    });
    spawn_with_identity(settings, options, runtime::test_logger("users")).await
}

#[tokio::test]
async fn no_password_or_hash_reaches_a_response_or_a_log_line() {
    let (logger, logs) = capturing_logger("users");
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let app = spawn_with_identity(
        test_settings(database),
        IdentityOptions::new(test_keys()),
        logger,
    )
    .await;
    let session = signup(&app, "Quinn", "quinn@example.com").await;
    let body = session.to_string();
    assert!(
        !body.contains(PASSWORD) && !body.contains("argon2"),
        "{body}"
    );
    login(&app, "quinn@example.com", "a wrong password!").await;
    let me = send(
        &app,
        Method::GET,
        "/api/auth/me",
        session["access_token"].as_str(),
        None,
    )
    .await;
    assert!(!me.text().await.expect("text").contains("argon2"));
    app.server.stop().await;
    let logs = String::from_utf8(logs.lock().expect("logs").clone()).expect("UTF-8");
    assert!(logs.contains("/api/auth/login"), "the requests were logged");
    for secret in [
        PASSWORD,
        "a wrong password!",
        "$argon2id$",
        session["refresh_token"].as_str().expect("t"),
        session["access_token"].as_str().expect("t"),
    ] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

#[tokio::test]
async fn the_generated_admin_is_written_once_privately_and_signs_in() {
    use std::os::unix::fs::PermissionsExt;
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let settings = test_settings(database);
    let directory = std::env::temp_dir().join(format!("users-admin-{}", uuid::Uuid::new_v4()));
    let file = directory.join("admin-credentials");
    let app = users_service::Application::build(
        settings.clone(),
        IdentityOptions::new(test_keys()),
        runtime::test_logger("users"),
    )
    .await
    .expect("built");
    let admin = app
        .generate_admin_if_none(&file)
        .await
        .expect("generated")
        .expect("no admin yet");
    assert!(admin.password.len() >= 40, "a random password");
    let text = std::fs::read_to_string(&file).expect("written");
    assert_eq!(
        text,
        format!("email={}\npassword={}\n", admin.email, admin.password)
    );
    assert_eq!(
        std::fs::metadata(&file).expect("file").permissions().mode() & 0o777,
        0o600
    );
    // An admin exists now: nothing new is generated, the file stays as it was.
    assert!(
        app.generate_admin_if_none(&file)
            .await
            .expect("checked")
            .is_none()
    );
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), text);
    drop(app);
    let running = spawn_with_identity(
        settings,
        IdentityOptions::new(test_keys()),
        runtime::test_logger("users"),
    )
    .await;
    let session = login(&running, &admin.email, &admin.password).await;
    assert_eq!(session.status(), 200);
    running.server.stop().await;
    std::fs::remove_dir_all(directory).expect("cleaned up");
}

/// A refresh racing a reuse (or a logout) can store a new token after its family was revoked:
/// that token is refused too.
#[tokio::test]
async fn a_token_stored_into_a_revoked_family_is_refused() {
    use users_service::accounts::{Accounts, Redeemed};
    let database_url = fresh_database(TestBackend::Sqlite).await.expect("database");
    let app = spawn_with_identity(
        test_settings(database_url.clone()),
        IdentityOptions::new(test_keys()),
        runtime::test_logger("users"),
    )
    .await;
    let session = signup(&app, "Race", "race@example.com").await;
    let user_id = session["user"]["id"].as_i64().expect("id");
    let first = session["refresh_token"].as_str().expect("token").to_owned();
    let database = db::Database::connect(&database_url, users_service::migrations())
        .await
        .expect("database");
    let accounts = Accounts::new(database);
    let family = accounts
        .family_of(&auth::token_hash(&first))
        .await
        .expect("query")
        .expect("known");
    accounts.revoke_family(&family).await.expect("revoked");
    // The racing refresh stores its new token after the revocation.
    let late = auth::random_token().expect("token");
    accounts
        .store_refresh(&auth::token_hash(&late), &family, user_id, 3600)
        .await
        .expect("stored");
    assert_eq!(
        accounts
            .redeem(&auth::token_hash(&late))
            .await
            .expect("query"),
        Redeemed::Invalid
    );
    let refused = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        None,
        Some(json!({"refresh_token": late})),
    )
    .await;
    assert_eq!(refused.status(), 401);
    app.server.stop().await;
}

/// Anonymous reads are served from a redacted cache entry of their own: it never holds the
/// email, and a write drops it as it drops the full one.
#[tokio::test]
async fn the_redacted_cache_entry_follows_writes() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let session = signup(&app, "Reader", "reader@example.com").await;
    let path = format!("/api/users/{}", session["user"]["id"]);
    for expected in ["miss", "hit"] {
        let response = send(&app, Method::GET, &path, None, None).await;
        assert_eq!(testing::cache_header(&response), expected);
        let body: Value = response.json().await.expect("JSON");
        assert!(body.get("email").is_none(), "{body}");
    }
    let own = send(
        &app,
        Method::GET,
        &path,
        session["access_token"].as_str(),
        None,
    )
    .await;
    assert_eq!(
        own.json::<Value>().await.expect("JSON")["email"],
        "reader@example.com"
    );
    let renamed = send(
        &app,
        Method::PUT,
        &path,
        session["access_token"].as_str(),
        Some(json!({"name": "Renamed", "email": "reader@example.com"})),
    )
    .await;
    assert_eq!(renamed.status(), 200);
    let after: Value = send(&app, Method::GET, &path, None, None)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(after["name"], "Renamed");
    assert!(after.get("email").is_none());
    app.server.stop().await;
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let mut options = IdentityOptions::new(test_keys());
    options.signups_per_address = 2.try_into().expect("2");
    let app = spawn_with_identity(
        test_settings(database),
        options,
        runtime::test_logger("users"),
    )
    .await;
    signup(&app, "One", "one@example.com").await;
    signup(&app, "Two", "two@example.com").await;
    let third = send(
        &app,
        Method::POST,
        "/api/auth/signup",
        None,
        Some(json!({"name": "Three", "email": "three@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    assert_eq!(error_code(third).await, "rate_limited");
    // Nothing was created.
    assert_eq!(
        login(&app, "three@example.com", PASSWORD).await.status(),
        401
    );
    app.server.stop().await;
}
