//! GraphQL over HTTP: methods, content types, Accept negotiation, status codes, limits,
//! introspection, and GraphiQL.

use reqwest::{Method, header};
use serde_json::{Value, json};
use testing::{TestBackend, TestService, fresh_database};

use crate::helpers::{GraphqlApi, TestPlatform, graphql_settings, spawn_graphql};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

async fn send(
    service: &TestService,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String, Value) {
    let mut request = service.client.request(method, service.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.expect("a response");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let allow = response
        .headers()
        .get(header::ALLOW)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, allow, body)
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("an error with a code in {body}"))
}

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let graphql = &platform.graphql;
    let (status, content_type, _, body) = send(
        graphql,
        Method::GET,
        "/graphql?query=%7B%20posts%20%7B%20id%20%7D%20%7D",
        &[],
        None,
    )
    .await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(body, json!({"data": {"posts": []}}));

    let with_variables = "/graphql?query=query(%24id%3A%20ID!)%7B%20post(id%3A%20%24id)%20%7B%20id%20%7D%20%7D&variables=%7B%22id%22%3A%221%22%7D";
    let (status, _, _, body) = send(graphql, Method::GET, with_variables, &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"data": {"post": null}}));

    let mutation = "/graphql?query=mutation%20%7B%20deletePost(id%3A%201)%20%7D";
    let (status, _, allow, body) = send(graphql, Method::GET, mutation, &[], None).await;
    assert_eq!((status, allow.as_str()), (405, "POST"));
    assert_eq!(code(&body), "METHOD_NOT_ALLOWED");

    let (status, _, _, body) =
        send(graphql, Method::GET, "/graphql?variables=%7B%7D", &[], None).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _, body) = send(
        graphql,
        Method::GET,
        "/graphql?query=%7Bposts%7Bid%7D%7D&variables=not-json",
        &[],
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (400, "BAD_REQUEST"));

    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        let (status, _, allow, body) = send(graphql, method, "/graphql", &[], None).await;
        assert_eq!((status, allow.as_str()), (405, "GET, POST"));
        assert_eq!(code(&body), "METHOD_NOT_ALLOWED");
    }
}

#[tokio::test]
async fn post_bodies_and_content_types() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let graphql = &platform.graphql;
    let json_type = [("content-type", "application/json")];
    let ok = r#"{"query":"{ posts { id } }"}"#;
    let (status, _, _, body) = send(graphql, Method::POST, "/graphql", &json_type, Some(ok)).await;
    assert_eq!((status, body), (200, json!({"data": {"posts": []}})));
    let (status, _, _, _) = send(
        graphql,
        Method::POST,
        "/graphql",
        &[("content-type", "application/json; charset=utf-8")],
        Some(ok),
    )
    .await;
    assert_eq!(status, 200);

    for (content_type, body) in [
        ("text/plain", ok),
        (
            "application/x-www-form-urlencoded",
            "query=%7Bposts%7Bid%7D%7D",
        ),
    ] {
        let (status, _, _, answer) = send(
            graphql,
            Method::POST,
            "/graphql",
            &[("content-type", content_type)],
            Some(body),
        )
        .await;
        assert_eq!((status, code(&answer)), (415, "UNSUPPORTED_MEDIA_TYPE"));
    }
    let (status, _, _, answer) = send(graphql, Method::POST, "/graphql", &[], Some(ok)).await;
    assert_eq!((status, code(&answer)), (415, "UNSUPPORTED_MEDIA_TYPE"));

    for malformed in [
        "{",
        "[]",
        "null",
        r#"{"query": 42}"#,
        r#"{"variables": {}}"#,
        r#"{"query": "{ posts { id } }", "variables": [1]}"#,
        r#"{"query": "{ posts { id } }", "operationName": 7}"#,
        "\u{feff}{}",
    ] {
        let (status, content_type, _, answer) = send(
            graphql,
            Method::POST,
            "/graphql",
            &json_type,
            Some(malformed),
        )
        .await;
        assert_eq!(status, 400, "{malformed}: {answer}");
        assert_eq!(content_type, "application/json");
        assert_eq!(code(&answer), "BAD_REQUEST", "{malformed}");
    }
    let invalid_utf8 = reqwest::Body::from(vec![b'{', 0xff, 0xfe, b'}']);
    let response = graphql
        .client
        .post(graphql.url("/graphql"))
        .header("content-type", "application/json")
        .body(invalid_utf8)
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn accept_decides_the_media_type_and_the_status() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let graphql = &platform.graphql;
    let invalid = r#"{"query":"{ noSuchField }"}"#;
    let valid = r#"{"query":"{ posts { id } }"}"#;
    let post = |accept: &'static str, body: &'static str| async move {
        let mut headers = vec![("content-type", "application/json")];
        if !accept.is_empty() {
            headers.push(("accept", accept));
        }
        send(graphql, Method::POST, "/graphql", &headers, Some(body)).await
    };

    let (status, content_type, _, _) = post(GRAPHQL_RESPONSE_JSON, valid).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, GRAPHQL_RESPONSE_JSON)
    );
    // A request that cannot run is a 400 with the new media type, a 200 with the legacy one.
    let (status, content_type, _, body) = post(GRAPHQL_RESPONSE_JSON, invalid).await;
    assert_eq!(
        (status, content_type.as_str()),
        (400, GRAPHQL_RESPONSE_JSON)
    );
    assert!(body["errors"][0]["message"].is_string() && body.get("data").is_none());
    let (status, content_type, _, _) = post("application/json", invalid).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let (status, content_type, _, _) = post("", invalid).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let (status, content_type, _, _) = post("*/*", valid).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let (_, content_type, _, _) = post(
        "application/graphql-response+json, application/json;q=0.9",
        valid,
    )
    .await;
    assert_eq!(content_type, GRAPHQL_RESPONSE_JSON);
    let (_, content_type, _, _) = post(
        "application/graphql-response+json;q=0.5, application/json",
        valid,
    )
    .await;
    assert_eq!(content_type, "application/json");
    let (status, _, _, body) = post("text/xml", valid).await;
    assert_eq!((status, code(&body)), (406, "NOT_ACCEPTABLE"));
}

#[tokio::test]
async fn depth_complexity_and_size_limits() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let graphql = &platform.graphql;
    // 11 levels: posts → author → posts → author …
    let deep = "{ posts { author { posts { author { posts { author { posts { author { posts { author { name } } } } } } } } } } }";
    let body = graphql.graphql(deep, json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_DEEP", "{body}");
    assert!(body.get("data").is_none() || body["data"].is_null());

    let wide: String = (0..1100)
        .map(|i| format!("a{i}: posts {{ id }} "))
        .collect();
    let body = graphql.graphql(&format!("{{ {wide} }}"), json!({})).await;
    assert_eq!(code(&body), "TOO_MANY_ALIASES", "{body}");
    let (status, _, _, body) = send(
        graphql,
        Method::POST,
        "/graphql",
        &[
            ("content-type", "application/json"),
            ("accept", GRAPHQL_RESPONSE_JSON),
        ],
        Some(&json!({"query": format!("{{ {wide} }}")}).to_string()),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "TOO_MANY_ALIASES"));

    let padding = " ".repeat(64 * 1024);
    let big = json!({"query": format!("{{ posts {{ id }} }}{padding}")}).to_string();
    let (status, _, _, body) = send(
        graphql,
        Method::POST,
        "/graphql",
        &[("content-type", "application/json")],
        Some(&big),
    )
    .await;
    assert_eq!((status, code(&body)), (413, "QUERY_TOO_LARGE"));
    let huge =
        json!({"query": "{ posts { id } }", "variables": {"x": "y".repeat(2 * 1024 * 1024)}})
            .to_string();
    let (status, _, _, body) = send(
        graphql,
        Method::POST,
        "/graphql",
        &[("content-type", "application/json")],
        Some(&huge),
    )
    .await;
    assert_eq!((status, code(&body)), (413, "PAYLOAD_TOO_LARGE"));
    // The service is still fine.
    let data = graphql.data("{ posts { id } }", json!({})).await;
    assert_eq!(data, json!({"posts": []}));
}

#[tokio::test]
async fn introspection_is_on_by_default_and_can_be_switched_off() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let data = platform
        .graphql
        .data("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");

    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let mut settings = graphql_settings(
        database,
        &platform.users.url(""),
        &platform.products.url(""),
    );
    settings.limits.introspection = false;
    let closed = spawn_graphql(settings).await;
    for query in [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Post\") { name } }",
        "{ ...F } fragment F on Query { posts { id } __schema { types { name } } }",
    ] {
        let body = closed.graphql(query, json!({})).await;
        assert_eq!(code(&body), "INTROSPECTION_DISABLED", "{body}");
    }
    let data = closed.data("{ posts { id } }", json!({})).await;
    assert_eq!(data, json!({"posts": []}));
}

#[tokio::test]
async fn browsers_get_graphiql_served_from_the_binary() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let graphql = &platform.graphql;
    let (status, content_type, _, body) = send(
        graphql,
        Method::GET,
        "/graphql",
        &[(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"));
    let page = body.as_str().expect("HTML");
    assert!(page.contains("/graphql/assets/graphiql.min.js") && !page.contains("unpkg.com"));

    for (asset, media) in [
        ("graphiql.min.js", "application/javascript"),
        ("graphiql.min.css", "text/css"),
        ("react.production.min.js", "application/javascript"),
        ("react-dom.production.min.js", "application/javascript"),
    ] {
        // reqwest here has no gzip support: it gets the plain bytes.
        let plain = graphql.get(&format!("/graphql/assets/{asset}")).await;
        assert_eq!(plain.status(), 200, "{asset}");
        assert!(
            plain.headers()[header::CONTENT_TYPE]
                .to_str()
                .is_ok_and(|value| value.starts_with(media))
        );
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert!(plain.bytes().await.expect("bytes").len() > 1000);
        let gzipped = graphql
            .client
            .get(graphql.url(&format!("/graphql/assets/{asset}")))
            .header("accept-encoding", "gzip, deflate")
            .send()
            .await
            .expect("asset");
        assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
    }
    let missing = graphql.get("/graphql/assets/nope.js").await;
    assert_eq!(missing.status(), 404);
}
