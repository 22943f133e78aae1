//! Who may do what (services/media/README.md, "Access"): every route × {anonymous, user A,
//! user B, admin} → status, on both engines; private items answer 404 to whoever may not read
//! them, public ones are read by anyone and deleted only by their owner or an admin; lists show
//! the caller's own items; rows from before ownership are the admins'; garbage tokens and
//! client-sent identity headers.

use std::borrow::Cow;

use reqwest::{Method, Response};
use serde_json::{Value, json};
use testing::{TestBackend, error_code, fresh_database, on_both_backends, total_count};

use crate::helpers::{
    ADMIN, MAX, Multipart, Store, Who, plain_client, png, spawn_app, start_on, temp_dir,
};

const ANONYMOUS: Who = Who::Anonymous;
const USER_A: Who = Who::User(2);
const USER_B: Who = Who::User(3);
const CALLERS: [Who; 4] = [ANONYMOUS, USER_A, USER_B, ADMIN];

/// Checks a response's status and, for errors, its code (and a 401's challenge).
async fn expect(response: Response, status: u16, label: &str) -> Option<Value> {
    assert_eq!(response.status(), status, "{label}");
    let code = match status {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        400 => "bad_request",
        _ => return response.json().await.ok(),
    };
    if status == 401 {
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("a challenge");
        assert!(challenge.starts_with("Bearer"), "{label}: {challenge}");
    }
    assert_eq!(error_code(response).await, code, "{label}");
    None
}

fn id_of(file: &Value) -> String {
    file["id"].as_str().expect("id").to_owned()
}

async fn the_access_matrix_holds(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    // Uploads: anonymous callers are refused on both routes, anyone signed in may upload.
    for path in ["/api/upload", "/api/media"] {
        for (who, status) in [(ANONYMOUS, 401), (USER_A, 201), (USER_B, 201), (ADMIN, 201)] {
            let response = app.upload_as(who, path, "x.txt", b"matrix").await;
            expect(response, status, &format!("POST {path} as {who:?}")).await;
        }
    }
    let a_private = app
        .upload_ok_as(USER_A, "/api/upload", "a.png", &png(500, 1))
        .await;
    let a_public = app
        .upload_ok_as(
            USER_A,
            "/api/media?visibility=public",
            "a-public.txt",
            b"for all",
        )
        .await;
    let b_private = app
        .upload_ok_as(USER_B, "/api/upload?visibility=private", "b.txt", b"mine")
        .await;
    assert_eq!(
        (&a_private["owner_id"], &a_private["visibility"]),
        (&json!(2), &json!("private"))
    );
    assert_eq!(
        (&a_public["owner_id"], &a_public["visibility"]),
        (&json!(2), &json!("public"))
    );
    assert_eq!(b_private["owner_id"], 3);

    // Reads: a private item is its owner's and the admins'; to anyone else it does not exist.
    let reads = [
        (&a_private, [404, 200, 404, 200]),
        (&a_public, [200, 200, 200, 200]),
        (&b_private, [404, 404, 200, 200]),
    ];
    for (file, statuses) in reads {
        let path = format!("/api/media/{}", id_of(file));
        for (who, status) in CALLERS.into_iter().zip(statuses) {
            let label = format!("GET {} as {who:?}", file["name"]);
            let response = app.send_as(who, Method::GET, &path).await;
            if let Some(read) = expect(response, status, &label).await {
                assert_eq!(read["id"], file["id"], "{label}");
                assert_eq!(read["owner_id"], file["owner_id"], "{label}");
                // The URL it hands out downloads, with no token.
                let url = read["url"].as_str().expect("url");
                assert_eq!(app.fetch(url).await.status(), 200, "{label}: its URL");
            }
        }
    }
    // A signed URL is a capability: issued to the owner, it downloads for whoever holds it.
    let url = a_private["url"].as_str().expect("url");
    let response = app.fetch(url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.expect("bytes").as_ref(),
        png(500, 1).as_slice()
    );

    // Lists: one's own items (admins: all; anonymous callers: the public ones).
    for (who, wanted) in [
        (ANONYMOUS, vec![id_of(&a_public)]),
        (USER_A, vec![id_of(&a_private), id_of(&a_public)]),
        (USER_B, vec![id_of(&b_private)]),
    ] {
        let response = app
            .send_as(who, Method::GET, "/api/media?offset=0&count=exact")
            .await;
        assert_eq!(response.status(), 200, "{who:?}");
        let owned_before = match who {
            ANONYMOUS => 0,
            _ => 2,
        };
        assert_eq!(
            total_count(&response),
            (wanted.len() + owned_before) as u64,
            "{who:?}"
        );
        let items: Vec<Value> = response.json().await.expect("JSON");
        let ids: Vec<String> = items.iter().skip(owned_before).map(id_of).collect();
        assert_eq!(ids, wanted, "{who:?}");
        if let Who::User(id) = who {
            assert!(items.iter().all(|item| item["owner_id"] == id), "{who:?}");
        }
    }
    let all = app
        .send_as(ADMIN, Method::GET, "/api/media?count=exact")
        .await;
    assert_eq!(total_count(&all), 9, "the admin lists every item");

    // Deletes: a signed-in caller who owns the item or is an admin.
    let deletes = [
        (&a_private, [(ANONYMOUS, 401), (USER_B, 404)]),
        (&a_public, [(ANONYMOUS, 401), (USER_B, 403)]),
        (&b_private, [(ANONYMOUS, 401), (USER_A, 404)]),
    ];
    for (file, refusals) in deletes {
        let path = format!("/api/media/{}", id_of(file));
        for (who, status) in refusals {
            let response = app.send_as(who, Method::DELETE, &path).await;
            expect(
                response,
                status,
                &format!("DELETE {} as {who:?}", file["name"]),
            )
            .await;
        }
    }
    assert_eq!(
        app.row_count().await,
        9,
        "the refused deletes removed nothing"
    );
    for (file, who) in [
        (&a_public, USER_A),
        (&a_private, ADMIN),
        (&b_private, USER_B),
    ] {
        let path = format!("/api/media/{}", id_of(file));
        let response = app.send_as(who, Method::DELETE, &path).await;
        expect(
            response,
            204,
            &format!("DELETE {} as {who:?}", file["name"]),
        )
        .await;
        let response = app.send_as(ADMIN, Method::GET, &path).await;
        expect(response, 404, "gone").await;
    }
    app.stop().await;
}

on_both_backends!(the_access_matrix_holds);

#[tokio::test]
async fn uploads_need_a_signed_in_caller_before_the_body_is_read() {
    let app = spawn_app(TestBackend::Sqlite, Store::Fs).await;
    let cases: [(&str, Vec<u8>); 3] = [
        ("/api/upload", b"small".to_vec()),
        ("/api/media", b"small".to_vec()),
        ("/api/upload", png(MAX + 1, 0)),
    ];
    for (path, content) in cases {
        let response = app.upload_as(ANONYMOUS, path, "f.png", &content).await;
        expect(response, 401, &format!("{path}, {} bytes", content.len())).await;
    }
    // Authentication comes before the query's checks, and before the form's.
    let response = app
        .upload_as(ANONYMOUS, "/api/upload?visibility=secret", "f.txt", b"x")
        .await;
    expect(response, 401, "a bad visibility, anonymous").await;
    let response = plain_client()
        .post(app.url("/api/upload"))
        .body("not a form")
        .send()
        .await
        .expect("POST");
    expect(response, 401, "not a form, anonymous").await;

    for bad in ["secret", "PUBLIC", "", "public,private"] {
        let path = format!("/api/upload?visibility={bad}");
        let response = app.upload_as(USER_A, &path, "f.txt", b"x").await;
        expect(response, 400, &format!("visibility={bad:?}")).await;
    }
    assert_eq!(app.row_count().await, 0);
    assert_eq!(
        app.objects(),
        Vec::<String>::new(),
        "nothing stored or staged"
    );
    assert_eq!(
        app.metric("media_uploads_total", &[("outcome", "stored")])
            .await,
        0.0
    );
    app.stop().await;
}

#[tokio::test]
async fn rows_from_before_ownership_are_owned_by_nobody_and_only_admins_act_on_them() {
    let database_url = fresh_database(TestBackend::Sqlite)
        .await
        .expect("a fresh test database");
    // The schema before owners: the first migration only, and a row in it.
    let mut before = media_service::migrations();
    before.sqlite.migrations = Cow::Owned(before.sqlite.migrations[..1].to_vec());
    before.postgres.migrations = Cow::Owned(before.postgres.migrations[..1].to_vec());
    let old = db::Database::connect(&database_url, before)
        .await
        .expect("the old schema");
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO media (id, name, content_type, size, object_key, created_at) \
         VALUES ($1, 'old.txt', 'text/plain', 3, $2, '2026-01-01T00:00:00Z')",
    )
    .bind(&id)
    .bind(format!("{id}/old.txt"))
    .execute(old.pool())
    .await
    .expect("an old row");
    old.close().await;

    let data_dir = temp_dir("legacy");
    let mut options = media_service::Settings::embedded(&data_dir);
    options.media.signing_key = Some(crate::helpers::SIGNING_KEY.to_owned());
    let app = start_on(database_url, data_dir, options, None).await;
    app.store
        .put(
            &format!("{id}/old.txt"),
            bytes::Bytes::from_static(b"old"),
            "text/plain",
        )
        .await
        .expect("its object");
    let path = format!("/api/media/{id}");
    let read = expect(app.send_as(ADMIN, Method::GET, &path).await, 200, "admin").await;
    let read = read.expect("JSON");
    assert_eq!(read["owner_id"], Value::Null);
    assert_eq!(read["visibility"], "private");
    for who in [ANONYMOUS, USER_A, USER_B] {
        let response = app.send_as(who, Method::GET, &path).await;
        expect(response, 404, &format!("GET as {who:?}")).await;
        let response = app
            .send_as(who, Method::GET, "/api/media?count=exact")
            .await;
        assert_eq!(total_count(&response), 0, "{who:?} lists none");
    }
    for (who, status) in [(ANONYMOUS, 401), (USER_A, 404), (USER_B, 404), (ADMIN, 204)] {
        let response = app.send_as(who, Method::DELETE, &path).await;
        expect(response, status, &format!("DELETE as {who:?}")).await;
    }
    assert_eq!(app.objects(), Vec::<String>::new());
    app.stop().await;
}

#[tokio::test]
async fn a_garbage_token_is_a_401_with_a_challenge_on_every_route() {
    let app = spawn_app(TestBackend::Sqlite, Store::Fs).await;
    let file = app
        .upload_ok_as(USER_A, "/api/media?visibility=public", "p.txt", b"public")
        .await;
    let id = id_of(&file);
    let url = file["url"].as_str().expect("url").to_owned();
    let routes = [
        (Method::GET, "/api/media".to_owned()),
        (Method::GET, format!("/api/media/{id}")),
        (Method::DELETE, format!("/api/media/{id}")),
        (Method::GET, url.clone()),
        (
            Method::GET,
            format!("/api/media/{id}/thumbnail?expires=1&sig=00"),
        ),
        (Method::POST, "/api/upload".to_owned()),
        (Method::POST, "/api/media".to_owned()),
    ];
    for token in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        for (method, path) in &routes {
            let mut request = plain_client()
                .request(method.clone(), app.url(path))
                .bearer_auth(token);
            if *method == Method::POST {
                let (content_type, body) = Multipart::new()
                    .file("file", "f.txt", "text/plain", b"x")
                    .finish();
                request = request.header("content-type", content_type).body(body);
            }
            let response = request.send().await.expect("a response");
            let label = format!("{method} {path} with {token:?}");
            assert_eq!(response.status(), 401, "{label}");
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .expect("a challenge")
                .to_owned();
            assert!(challenge.contains("invalid_token"), "{label}: {challenge}");
            assert_eq!(error_code(response).await, "unauthorized", "{label}");
        }
    }
    assert_eq!(app.row_count().await, 1, "nothing uploaded or deleted");
    app.stop().await;
}

#[tokio::test]
async fn identity_headers_from_clients_are_ignored() {
    let app = spawn_app(TestBackend::Sqlite, Store::Fs).await;
    let private = app
        .upload_ok_as(Who::Admin(1), "/api/upload", "admin.txt", b"admin's")
        .await;
    let path = format!("/api/media/{}", id_of(&private));
    let spoof = |request: reqwest::RequestBuilder| {
        request
            .header("x-user-id", "1")
            .header("x-user-role", "admin")
            .header("x-forwarded-user", "1")
    };
    let (content_type, body) = Multipart::new()
        .file("file", "f.txt", "text/plain", b"x")
        .finish();
    let upload = spoof(plain_client().post(app.url("/api/upload")))
        .header("content-type", content_type)
        .body(body);
    expect(upload.send().await.expect("POST"), 401, "upload").await;
    let read = spoof(plain_client().get(app.url(&path)));
    expect(read.send().await.expect("GET"), 404, "read").await;
    let delete = spoof(plain_client().delete(app.url(&path)));
    expect(delete.send().await.expect("DELETE"), 401, "delete").await;
    let list = spoof(plain_client().get(app.url("/api/media?count=exact")));
    let list = list.send().await.expect("GET");
    assert_eq!(
        total_count(&list),
        0,
        "an anonymous list: public items only"
    );
    // A signed-in user's spoofed header does not make them the admin either.
    let as_user =
        spoof(plain_client().delete(app.url(&path))).bearer_auth(USER_A.token().expect("a token"));
    expect(as_user.send().await.expect("DELETE"), 404, "user delete").await;
    assert_eq!(app.row_count().await, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_declares_the_bearer_scheme_and_the_refusals() {
    let app = spawn_app(TestBackend::Sqlite, Store::Fs).await;
    let document: Value = app
        .get("/api/media/openapi.json")
        .await
        .json()
        .await
        .expect("JSON");
    let scheme = &document["components"]["securitySchemes"]["bearer_auth"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"], &scheme["bearerFormat"]),
        (&json!("http"), &json!("bearer"), &json!("JWT")),
        "{scheme}"
    );
    let operation = |path: &str, method: &str| document["paths"][path][method].clone();
    let required = json!([{"bearer_auth": []}]);
    let optional = json!([{}, {"bearer_auth": []}]);
    for path in ["/api/upload", "/api/media"] {
        let upload = operation(path, "post");
        assert_eq!(upload["security"], required, "POST {path}");
        assert!(upload["responses"]["401"].is_object(), "POST {path}");
        let parameters = upload["parameters"].as_array().expect("parameters");
        assert!(
            parameters.iter().any(|p| p["name"] == "visibility"),
            "POST {path}: {parameters:?}"
        );
    }
    let delete = operation("/api/media/{id}", "delete");
    assert_eq!(delete["security"], required);
    for status in ["401", "403", "404"] {
        assert!(delete["responses"][status].is_object(), "DELETE {status}");
    }
    for (path, method) in [("/api/media", "get"), ("/api/media/{id}", "get")] {
        let read = operation(path, method);
        assert_eq!(read["security"], optional, "{method} {path}");
        assert!(read["responses"]["401"].is_object(), "{method} {path}");
    }
    let media = &document["components"]["schemas"]["Media"]["properties"];
    assert!(media["owner_id"].is_object() && media["visibility"].is_object());
    app.stop().await;
}
