//! Sessions through the gateway: refresh-token rotation and reuse detection, logout, login
//! throttling; and afterwards, no password, password hash or token in any process's output.

use std::time::Duration;

use e2e::Platform;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Answer, World, assert_invalid_token, call, unique_email};
use crate::clients::{next_of_type, websocket};

async fn refresh(platform: &Platform, token: &str) -> Answer {
    call(
        Method::POST,
        &platform.url("/api/auth/refresh"),
        None,
        &[],
        Some(json!({"refresh_token": token})),
    )
    .await
}

async fn login(platform: &Platform, email: &str, password: &str) -> Answer {
    call(
        Method::POST,
        &platform.url("/api/auth/login"),
        None,
        &[],
        Some(json!({"email": email, "password": password})),
    )
    .await
}

fn field(answer: &Answer, name: &str) -> String {
    answer.body[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {}", answer.body))
        .to_owned()
}

/// Runs the flows; returns every secret they handled (passwords, access and refresh tokens).
pub async fn refresh_logout_and_throttling(world: &World) -> Vec<String> {
    let platform = &world.platform;
    let mut secrets = vec![
        e2e::PASSWORD.to_owned(),
        platform.admin.password.clone(),
        "a brand new passphrase".to_owned(),
    ];
    for session in [&world.user, &world.other, &world.admin] {
        secrets.push(session.access_token.clone());
        secrets.push(session.refresh_token.clone());
    }
    let password = format!("carol's secret {}", uuid::Uuid::new_v4().simple());
    secrets.push(password.clone());
    let carol = platform
        .signup("Carol", &unique_email("carol"), &password)
        .await
        .expect("Carol signs up");
    secrets.extend([carol.access_token.clone(), carol.refresh_token.clone()]);

    // Refresh rotates: each refresh token works once and yields a new pair.
    let first = refresh(platform, &carol.refresh_token).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = refresh(platform, &field(&first, "refresh_token")).await;
    assert_eq!(second.status, 200, "{}", second.body);
    for answer in [&first, &second] {
        secrets.push(field(answer, "access_token"));
        secrets.push(field(answer, "refresh_token"));
    }
    let other_family = login(platform, &carol.email, &password).await;
    assert_eq!(other_family.status, 200, "{}", other_family.body);
    secrets.push(field(&other_family, "access_token"));
    secrets.push(field(&other_family, "refresh_token"));

    // A spent token comes back (stolen): refused, and its whole family with it, so the
    // current token of that family stops working; another login's family lives on.
    let reused = refresh(platform, &carol.refresh_token).await;
    assert_invalid_token(&reused, "a reused refresh token");
    let current = refresh(platform, &field(&second, "refresh_token")).await;
    assert_eq!(
        current.status, 401,
        "the family is revoked: {}",
        current.body
    );
    let alive = refresh(platform, &field(&other_family, "refresh_token")).await;
    assert_eq!(alive.status, 200, "another family: {}", alive.body);
    secrets.push(field(&alive, "access_token"));
    secrets.push(field(&alive, "refresh_token"));

    // Logout ends that session.
    let logout = call(
        Method::POST,
        &platform.url("/api/auth/logout"),
        None,
        &[],
        Some(json!({"refresh_token": field(&alive, "refresh_token")})),
    )
    .await;
    assert_eq!(logout.status, 204, "{}", logout.body);
    let after = refresh(platform, &field(&alive, "refresh_token")).await;
    assert_eq!(after.status, 401, "after logout: {}", after.body);

    // The third place of a chat token, `?access_token=`: the access lines log paths without
    // queries, which the log check below holds them to.
    let mut chat = websocket(
        &platform.gateway,
        &format!(
            "/chat/ws?room=sessions&access_token={}",
            field(&alive, "access_token")
        ),
        None,
    )
    .await;
    let welcome = next_of_type(&mut chat, "welcome", Duration::from_secs(5)).await;
    assert_eq!(welcome["user"], "Carol", "{welcome}");
    let _ = chat.close(None).await;

    // Throttling: 5 failed logins per period per account (an hour here: the platform's
    // LOGIN_FAILURES_PERIOD_SECS), then 429 with Retry-After, even with the right password. An
    // unknown address answers as a wrong password does.
    let dave_password = format!("dave's secret {}", uuid::Uuid::new_v4().simple());
    secrets.push(dave_password.clone());
    let dave = platform
        .signup("Dave", &unique_email("dave"), &dave_password)
        .await
        .expect("Dave signs up");
    secrets.extend([dave.access_token.clone(), dave.refresh_token.clone()]);
    let unknown = login(platform, &unique_email("nobody"), "a wrong guess").await;
    let mut wrong_answer = None;
    for attempt in 1..=5 {
        let guess = format!("wrong guess {attempt} {}", uuid::Uuid::new_v4().simple());
        secrets.push(guess.clone());
        let answer = login(platform, &dave.email, &guess).await;
        assert_eq!(
            answer.status, 401,
            "failed login {attempt}: {}",
            answer.body
        );
        wrong_answer = Some(answer.body);
    }
    assert_eq!(
        wrong_answer.as_ref(),
        Some(&unknown.body),
        "an unknown email and a wrong password answer alike"
    );
    let throttled = reqwest::Client::new()
        .post(platform.url("/api/auth/login"))
        .json(&json!({"email": dave.email, "password": "wrong guess 6"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(throttled.status(), 429, "the sixth failure in the hour");
    let retry_after: u64 = throttled
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    // 5 an hour: the budget's first failure comes back 12 minutes after it.
    assert!(
        (11 * 60..=12 * 60).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let body: Value = throttled.json().await.expect("a JSON body");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let right = login(platform, &dave.email, &dave_password).await;
    assert_eq!(
        right.status, 429,
        "the right password is throttled too: {}",
        right.body
    );
    secrets
}

/// No line any process wrote (stdout and stderr, every process, restarts included) holds one of
/// `secrets` or an argon2id hash.
pub fn no_secret_in_any_output(world: &World, secrets: Vec<String>) {
    let lines = world.platform.output_lines();
    assert!(
        lines
            .iter()
            .any(|(name, line)| name == "users" && line.contains("/api/auth/login")),
        "users-service's access lines were collected"
    );
    let mut leaks = Vec::new();
    for (process, line) in &lines {
        if line.contains("$argon2id$") {
            leaks.push(format!("{process}: a password hash: {line}"));
        }
        for secret in &secrets {
            if line.contains(secret.as_str()) {
                leaks.push(format!("{process}: {secret:.12}…: {line}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets in the output:\n{}",
        leaks.join("\n")
    );
}
