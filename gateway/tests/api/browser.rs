//! CORS in a real browser: headless Chromium ([`testing::Browser`]) loads a page from another
//! origin (a second port) and calls the gateway with `fetch`: a `PUT` and a `DELETE` with
//! `Authorization` (so the browser sends a preflight first), credentials included, reading the
//! exposed `X-Request-Id`. From the listed origin
//! both pass; from an unlisted one the browser blocks them (`fetch` rejects) and nothing
//! reaches the upstream.

use gateway::cors::CorsConfig;
use serde_json::json;
use testing::Browser;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    helpers::{config, route, spawn},
    scripted::ScriptedUpstream,
};

/// Serves one small HTML page on a port of its own (another origin than the gateway's);
/// returns its origin, `http://127.0.0.1:<port>`.
async fn page_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    if stream.read_buf(&mut head).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                let page = "<!doctype html><title>another origin</title><p>calls the gateway</p>";
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    origin
}

/// The page's calls: a `PUT` and a `DELETE` to the gateway with a bearer token and credentials,
/// each giving `{status, id}` (the exposed `X-Request-Id`), or `{error}` when `fetch` rejects.
fn calls(gateway: &str, token: &str) -> String {
    format!(
        r#"(async () => {{
            const call = (method, id) => fetch({gateway} + '/api/items/1', {{
                method,
                credentials: 'include',
                headers: {{'Authorization': 'Bearer ' + {token}, 'Content-Type': 'application/json', 'X-Request-Id': id}},
                body: method === 'PUT' ? '{{"name":"x"}}' : undefined,
            }}).then(
                response => ({{status: response.status, id: response.headers.get('X-Request-Id')}}),
                error => ({{error: String(error)}}),
            );
            return [await call('PUT', 'browser-put'), await call('DELETE', 'browser-delete')];
        }})()"#,
        gateway = json!(gateway),
        token = json!(token),
    )
}

#[tokio::test]
async fn a_page_of_a_listed_origin_calls_the_api_and_an_unlisted_one_is_blocked() {
    testing::skip_unless!(Chromium);
    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let upstream = ScriptedUpstream::always(OK).await;
    let listed = page_origin().await;
    let unlisted = page_origin().await;
    let mut config = config(vec![route("/api/items", &[&upstream.url])]);
    config.cors = CorsConfig {
        allowed_origins: vec![listed.clone()],
        allow_credentials: true,
        ..CorsConfig::default()
    };
    let gateway = spawn(config);
    let gateway_origin = format!("http://{}", gateway.authority);
    let token = testing::user_token(7);

    let mut browser = Browser::launch().await;
    let page = browser.open(&format!("{listed}/")).await;
    browser
        .wait_for(
            &page,
            "the listed origin's page",
            &format!(
                "document.readyState === 'complete' && location.origin === {}",
                json!(listed)
            ),
        )
        .await;
    assert_eq!(
        browser
            .evaluate(&page, &calls(&gateway_origin, &token))
            .await,
        json!([
            {"status": 200, "id": "browser-put"},
            {"status": 200, "id": "browser-delete"},
        ]),
        "the listed origin's calls pass, and the page reads the exposed X-Request-Id"
    );
    let methods: Vec<String> = upstream
        .requests()
        .iter()
        .map(|line| line.split(' ').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        methods,
        ["PUT", "DELETE"],
        "the preflights were answered by the gateway, the calls forwarded"
    );

    let page = browser.open(&format!("{unlisted}/")).await;
    browser
        .wait_for(
            &page,
            "the unlisted origin's page",
            &format!(
                "document.readyState === 'complete' && location.origin === {}",
                json!(unlisted)
            ),
        )
        .await;
    let blocked = browser
        .evaluate(&page, &calls(&gateway_origin, &token))
        .await;
    for call in blocked.as_array().expect("two calls") {
        assert!(
            call["error"]
                .as_str()
                .is_some_and(|error| error.contains("Failed to fetch")),
            "the browser blocks an unlisted origin's call: {blocked}"
        );
    }
    assert_eq!(
        upstream.requests().len(),
        2,
        "nothing of the unlisted origin's reached the upstream"
    );
}
