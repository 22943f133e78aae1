//! Who sees what: `User.email` for the user themself and admins only (`""` for anyone else),
//! `me`, tokens that are refused with 401, identity headers a client invents, and the caller's
//! token relayed to users-service and products-service (and only that caller's).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use testing::{TestBackend, fresh_database};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    ADMIN_ID, GraphqlApi, TestPlatform, admin, create_post, create_user, graphql_settings,
    spawn_graphql, user,
};

testing::on_both_backends!(emails_show_to_their_owner_and_admins_only, me_is_the_caller);

async fn emails_show_to_their_owner_and_admins_only(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let lea = create_user(&platform.users, "Lea", "lea@example.com").await;
    let max = create_user(&platform.users, "Max", "max@example.com").await;
    create_post(&platform.graphql, "Lea's post", lea).await;
    let graphql = &platform.graphql;

    let names = graphql.data("{ users { name } }", json!({})).await;
    assert_eq!(
        names["users"],
        json!([{"name": "Lea"}, {"name": "Max"}]),
        "anyone may list names"
    );

    // Anyone but the user and admins gets the empty string: never the address, never an error
    // (`User.email` is the seed's `String!`; an error there would null the whole list).
    let anonymous = graphql.graphql("{ users { name email } }", json!({})).await;
    assert!(anonymous.get("errors").is_none(), "{anonymous}");
    assert_eq!(
        anonymous["data"]["users"],
        json!([{"name": "Lea", "email": ""}, {"name": "Max", "email": ""}]),
        "{anonymous}"
    );

    let as_lea = graphql
        .graphql_as(Some(&user(lea)), "{ users { name email } }", json!({}))
        .await;
    assert!(as_lea.get("errors").is_none(), "{as_lea}");
    assert_eq!(
        as_lea["data"]["users"],
        json!([{"name": "Lea", "email": "lea@example.com"}, {"name": "Max", "email": ""}]),
        "{as_lea}"
    );

    // The same rule on every path to a user: by id, and as a post's author.
    let max_by_id = graphql
        .data_as(
            Some(&user(lea)),
            "query($id: ID!) { user(id: $id) { name email } }",
            json!({"id": max.to_string()}),
        )
        .await;
    assert_eq!(max_by_id["user"], json!({"name": "Max", "email": ""}));
    let authors = "{ posts { author { email } } }";
    let as_max = graphql.data_as(Some(&user(max)), authors, json!({})).await;
    assert_eq!(as_max["posts"][0]["author"]["email"], "");
    let as_author = graphql.data_as(Some(&user(lea)), authors, json!({})).await;
    assert_eq!(as_author["posts"][0]["author"]["email"], "lea@example.com");
    // Asked again anonymously right after the author: nothing fetched for her is served.
    let anonymous_again = graphql.data(authors, json!({})).await;
    assert_eq!(anonymous_again["posts"][0]["author"]["email"], "");

    let as_admin = graphql
        .data_as(Some(&admin()), "{ users { email } }", json!({}))
        .await;
    assert_eq!(
        as_admin["users"],
        json!([{"email": "lea@example.com"}, {"email": "max@example.com"}])
    );
}

async fn me_is_the_caller(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let nia = create_user(&platform.users, "Nia", "nia@example.com").await;
    create_post(&platform.graphql, "By Nia", nia).await;
    let query = "{ me { id name email posts { title } } }";
    let anonymous = platform.graphql.data(query, json!({})).await;
    assert_eq!(anonymous["me"], Value::Null);
    let signed_in = platform
        .graphql
        .data_as(Some(&user(nia)), query, json!({}))
        .await;
    assert_eq!(
        signed_in["me"],
        json!({"id": nia.to_string(), "name": "Nia", "email": "nia@example.com",
               "posts": [{"title": "By Nia"}]})
    );
    // An admin whose account is not in users-service: no user to show.
    let admin = platform
        .graphql
        .data_as(Some(&admin()), "{ me { id } }", json!({}))
        .await;
    assert_eq!(admin["me"], Value::Null, "user {ADMIN_ID} does not exist");
}

/// Sends `Authorization: <authorization>` on a POST, a GET, a WebSocket handshake and a PUT
/// (a method `/graphql` does not take) of `/graphql`; asserts each is a 401 with the JSON
/// error body and `WWW-Authenticate`: every route names its caller first.
async fn assert_refused(graphql: &testing::TestService, authorization: &str) {
    let client = &graphql.client;
    let query = "{ users { name } }";
    let requests = [
        client
            .post(graphql.url("/graphql"))
            .json(&json!({"query": query})),
        client.get(graphql.url("/graphql?query=%7B%20users%20%7B%20name%20%7D%20%7D")),
        client
            .get(graphql.url("/graphql"))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-protocol", "graphql-transport-ws"),
        client.put(graphql.url("/graphql")),
    ];
    for request in requests {
        let response = request
            .header("authorization", authorization)
            .send()
            .await
            .expect("a response");
        assert_eq!(response.status(), 401, "{authorization}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("ASCII")
            .to_owned();
        assert!(
            challenge.starts_with("Bearer") && challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }
}

#[tokio::test]
async fn tokens_that_do_not_verify_are_refused_with_401() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    // An admin token signed with a key that is not the platform's.
    let forger = auth::TokenIssuer::new(
        Arc::new(auth::SigningKeys::generate().expect("a key")),
        auth::DEFAULT_ISSUER,
        auth::DEFAULT_AUDIENCE,
        Duration::from_secs(900),
    );
    let forged = forger
        .issue(1, "mallory", &[auth::Role::User, auth::Role::Admin])
        .expect("a token")
        .token;
    // A real token with its payload changed (roles widened), the signature kept.
    let real = user(1);
    let mut parts: Vec<&str> = real.split('.').collect();
    let payload = format!("{}x", parts[1]);
    parts[1] = &payload;
    let tampered = parts.join(".");
    for authorization in [
        "Bearer garbage".to_owned(),
        format!("Bearer {forged}"),
        format!("Bearer {tampered}"),
        "Basic dXNlcjpwYXNz".to_owned(),
        "Bearer".to_owned(),
    ] {
        assert_refused(&platform.graphql, &authorization).await;
    }
    assert_eq!(platform.graphql.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_client_sent_identity_header_names_no_one() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let ola = create_user(&platform.users, "Ola", "ola@example.com").await;
    let post = |query: &str, variables: Value| {
        platform
            .graphql
            .client
            .post(platform.graphql.url("/graphql"))
            .header("x-user-id", ola.to_string())
            .header("x-user-roles", "admin")
            .header("x-forwarded-user", ola.to_string())
            .json(&json!({"query": query, "variables": variables}))
            .send()
    };
    let body: Value = post(
        "mutation($a: ID!) { createPost(title: \"t\", authorId: $a) { id } }",
        json!({"a": ola.to_string()}),
    )
    .await
    .expect("a response")
    .json()
    .await
    .expect("JSON");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{body}"
    );
    let body: Value = post("{ me { id } users { email } }", json!({}))
        .await
        .expect("a response")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["data"]["me"], Value::Null, "{body}");
    assert_eq!(
        body["data"]["users"],
        json!([{"email": ""}]),
        "no address for a header: {body}"
    );
}

/// What the fake upstream saw: `(path, Authorization)` of each request.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A users-service and products-service stand-in that records each request's path and
/// `Authorization`, and answers as users-service's contract says: `email` only with a token.
async fn recording_upstream() -> (String, Seen, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0_u8; 4096];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match connection.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                let authorization = head.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().to_owned())
                });
                let mut user =
                    json!({"id": 1, "name": "One", "created_at": "2026-01-01T00:00:00Z"});
                if authorization.is_some() {
                    user["email"] = json!("one@example.com");
                }
                let body = if path.starts_with("/api/products") {
                    json!([]).to_string()
                } else {
                    json!([user]).to_string()
                };
                record.lock().expect("lock").push((path, authorization));
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = connection.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, seen, task)
}

#[tokio::test]
async fn each_callers_own_token_goes_upstream() {
    let (upstream, seen, task) = recording_upstream().await;
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let graphql = spawn_graphql(graphql_settings(database, &upstream, &upstream)).await;
    let one = user(1);
    let two = user(2);

    let own = graphql
        .data_as(Some(&one), "{ users { email } products { id } }", json!({}))
        .await;
    assert_eq!(own["users"][0]["email"], "one@example.com");
    let other = graphql
        .data_as(Some(&two), "{ user(id: 1) { name email } }", json!({}))
        .await;
    assert_eq!(
        other["user"],
        json!({"name": "One", "email": ""}),
        "decided from the caller even though users-service sent the address"
    );
    graphql.data("{ users { name } }", json!({})).await;
    // A concurrent pair: each batch carries its own caller's token.
    let (first, second) = tokio::join!(
        graphql.data_as(Some(&one), "{ me { email } }", json!({})),
        graphql.data_as(Some(&two), "{ user(id: 1) { name } }", json!({})),
    );
    assert_eq!(first["me"]["email"], "one@example.com");
    assert_eq!(second["user"]["name"], "One");

    let seen = seen.lock().expect("lock").clone();
    let bearer = |token: &str| Some(format!("Bearer {token}"));
    let path_of = |prefix: &str, authorization: &Option<String>| {
        seen.iter()
            .filter(|(path, sent)| path.starts_with(prefix) && sent == authorization)
            .count()
    };
    assert_eq!(path_of("/api/users?limit", &bearer(&one)), 1, "{seen:?}");
    assert_eq!(path_of("/api/products", &bearer(&one)), 1, "{seen:?}");
    assert_eq!(path_of("/api/users?ids=1", &bearer(&two)), 2, "{seen:?}");
    assert_eq!(path_of("/api/users?limit", &None), 1, "anonymous: {seen:?}");
    assert_eq!(path_of("/api/users?ids=1", &bearer(&one)), 1, "{seen:?}");
    assert_eq!(seen.len(), 6, "{seen:?}");
    task.abort();
}
