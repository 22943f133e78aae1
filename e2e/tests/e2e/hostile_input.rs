//! Malformed and hostile requests at the front door: every answer is a docs/contracts.md error (or a
//! GraphQL error body on `/graphql`), never a 5xx, and every service is healthy afterwards.

use std::time::Duration;

use e2e::Platform;
use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::clients::{next_of_type, send, websocket};

/// One hostile request: method, path, content type, body.
#[derive(Clone)]
struct Case {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn case(method: Method, path: &str, content_type: Option<&'static str>, body: &[u8]) -> Case {
    Case {
        method,
        path: path.to_owned(),
        content_type,
        body: body.to_vec(),
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let json = Some("application/json");
    for resource in ["/api/users", "/api/products"] {
        for body in [
            &b"{"[..],
            b"[]",
            b"null",
            b"{\"name\": 5, \"email\": []}",
            b"{\"name\": \"x\", \"price\": \"free\"}",
            b"{\"name\": \"\xff\xfe\", \"email\": \"a@b.c\"}",
            b"{\"name\": \"a\", \"email\": \"a@b.c\", \"extra\": true}",
        ] {
            cases.push(case(Method::POST, resource, json, body));
            cases.push(case(Method::PUT, &format!("{resource}/1"), json, body));
        }
        cases.push(case(Method::POST, resource, Some("text/plain"), b"name=x"));
        cases.push(case(Method::POST, resource, json, &vec![b'['; 200_000]));
        for path in [
            format!("{resource}/abc"),
            format!("{resource}/-1"),
            format!("{resource}/99999999999999999999999"),
            format!("{resource}/%00"),
            format!("{resource}/..%2F..%2Fetc%2Fpasswd"),
            format!("{resource}?limit=-1"),
            format!("{resource}?limit=99999"),
            format!("{resource}?ids=1,x"),
            format!("{resource}?offset=%FF"),
        ] {
            cases.push(case(Method::GET, &path, None, b""));
        }
        cases.push(case(Method::DELETE, &format!("{resource}/abc"), None, b""));
        cases.push(case(Method::PATCH, resource, json, b"{}"));
    }
    let deep = format!(
        "{{\"query\": \"{{ {} }}\"}}",
        "posts { author { ".repeat(25) + "name" + &" } }".repeat(25)
    );
    for body in [
        &b"{"[..],
        b"[]",
        b"{\"query\": 1}",
        deep.as_bytes(),
        b"{\"query\": \"{ \xff }\"}",
    ] {
        cases.push(case(Method::POST, "/graphql", json, body));
    }
    cases.push(case(Method::POST, "/graphql", Some("text/plain"), b"{}"));
    cases.push(case(Method::DELETE, "/graphql", None, b""));
    for path in ["/api/upload", "/api/media"] {
        cases.push(case(Method::POST, path, json, b"{\"file\": \"x\"}"));
        cases.push(case(
            Method::POST,
            path,
            Some("multipart/form-data; boundary=X"),
            b"--X\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhi\r\n--X--\r\n",
        ));
        cases.push(case(
            Method::POST,
            path,
            Some("multipart/form-data; boundary=X"),
            b"--X\r\nthis is not a part",
        ));
        cases.push(case(
            Method::POST,
            path,
            Some("multipart/form-data"),
            b"no boundary",
        ));
    }
    for path in [
        "/api/media/not-a-uuid",
        "/api/media/00000000-0000-0000-0000-000000000000",
        "/api/media/00000000-0000-0000-0000-000000000000/content?expires=1&sig=00",
        "/api/media/..%2F..%2Fetc%2Fpasswd/content",
        "/api/media?limit=abc",
        "/chat/rooms?x=%ZZ",
        "/nowhere",
        "/api/usersX",
        "/%2e%2e/%2e%2e/etc/passwd",
    ] {
        cases.push(case(Method::GET, path, None, b""));
    }
    cases.push(case(
        Method::DELETE,
        "/api/media/00000000-0000-0000-0000-000000000000",
        None,
        b"",
    ));
    cases
}

/// Whether `body` is an error body of ours: docs/contracts.md's, or GraphQL's `errors`.
fn is_error_body(body: &Value) -> bool {
    body["error"]["code"].is_string()
        || body["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().all(|error| error["message"].is_string()))
}

async fn hostile_requests(platform: &Platform) {
    let client = reqwest::Client::new();
    // Each case as an admin (so writes get past the access check to the body) and anonymously.
    let admin = platform.admin_token().await;
    for (case, token) in cases()
        .into_iter()
        .flat_map(|case| [(case.clone(), Some(admin.as_str())), (case, None)])
    {
        let mut request = client
            .request(case.method.clone(), platform.url(&case.path))
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let text = response.bytes().await.expect("a body");
        let label = format!(
            "{} {} ({:?}, {} bytes, {})",
            case.method,
            case.path,
            case.content_type,
            case.body.len(),
            if token.is_some() {
                "admin"
            } else {
                "anonymous"
            }
        );
        assert!(!status.is_server_error(), "{label}: {status} {text:?}");
        if status.is_client_error() {
            let body: Value = serde_json::from_slice(&text)
                .unwrap_or_else(|_| panic!("{label}: {status} with a non-JSON body {text:?}"));
            assert!(is_error_body(&body), "{label}: {status} {body}");
        }
    }

    // Authorization fields that are not a verifiable bearer token: 401 `invalid_token` with a
    // JSON body on every route, whatever the route's own rule.
    let fake_jwt = format!(
        "{}.{}.{}",
        "eyJhbGciOiJFZERTQSIsImtpZCI6Im5vIn0",
        "eyJzdWIiOiIxIn0",
        "a".repeat(86)
    );
    let long = "a".repeat(8 * 1024);
    for authorization in [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer ....",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        &format!("Bearer {fake_jwt}"),
        &format!("Bearer {long}"),
        "Bearer",
        "Bearer ",
        "Basic YWRtaW46YWRtaW4=",
        "Token abc",
        "bearer",
    ] {
        for (method, path) in [
            (Method::GET, "/api/users"),
            (Method::GET, "/api/products/1"),
            (Method::POST, "/api/products"),
            (Method::GET, "/api/auth/me"),
            (Method::GET, "/api/media"),
            (Method::POST, "/graphql"),
            (Method::GET, "/chat/rooms"),
        ] {
            let response = client
                .request(method.clone(), platform.url(path))
                .header("authorization", authorization)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("an answer");
            let status = response.status();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let text = response.bytes().await.expect("a body");
            let label = format!(
                "{method} {path} with `Authorization: {:.40}`",
                authorization
            );
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {text:?}");
            assert!(
                challenge.contains("invalid_token"),
                "{label}: {challenge:?}"
            );
            let body: Value = serde_json::from_slice(&text)
                .unwrap_or_else(|_| panic!("{label}: a non-JSON body {text:?}"));
            assert_eq!(body["error"]["code"], "unauthorized", "{label}: {body}");
        }
    }

    // A huge header block: refused by the gateway with a JSON 431.
    let huge = client
        .get(platform.url("/api/users"))
        .header("x-padding", "a".repeat(20 * 1024))
        .send()
        .await
        .expect("an answer to a huge header block");
    assert_eq!(huge.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = huge.json().await.expect("a JSON 431");
    assert!(is_error_body(&body), "{body}");

    // Chat: bad frames get `error` events and the connection stays; an oversized frame closes
    // only that connection (1009).
    let mut chat = websocket(
        &platform.gateway,
        "/chat/ws?room=hostile&name=mallory",
        None,
    )
    .await;
    next_of_type(&mut chat, "history", Duration::from_secs(5)).await;
    for frame in [
        json!("not an object"),
        json!({"type": "noSuchType"}),
        json!({"type": "chatMessage"}),
        json!({"type": "chatMessage", "text": ""}),
        json!({"type": "chatMessage", "text": "x".repeat(2001)}),
        json!({"type": "chatMessage", "text": 42}),
    ] {
        send(&mut chat, frame.clone()).await;
        let error = next_of_type(&mut chat, "error", Duration::from_secs(5)).await;
        assert!(error["code"].is_string(), "{frame}: {error}");
    }
    chat.send(Message::text("{not json")).await.expect("sent");
    next_of_type(&mut chat, "error", Duration::from_secs(5)).await;
    chat.send(Message::binary(vec![0xff; 16]))
        .await
        .expect("sent");
    chat.send(Message::text("x".repeat(70 * 1024)))
        .await
        .expect("sent");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        use futures_util::StreamExt;
        loop {
            match chat.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| u16::from(frame.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("the oversized frame closes the socket");
    assert_eq!(closed, Some(1009));

    // Everything is still up.
    for (service, url) in &platform.services {
        let ready = client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .expect("GET /readyz");
        assert_eq!(
            ready.status(),
            200,
            "{service} is ready after the hostile pass"
        );
    }
}

#[tokio::test]
async fn hostile_input_on_embedded_defaults() {
    let platform = Platform::stack().await.expect("the stack starts");
    hostile_requests(&platform).await;
    platform
        .stop(Duration::from_secs(15))
        .expect("the stack exits 0 on SIGTERM");
}
