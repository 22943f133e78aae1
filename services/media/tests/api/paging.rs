//! The media list at scale: keyset pages by cursor with `Link` headers, walked both ways in
//! every caller's scope (anonymous: public items; a user: their own; an admin: all), totals
//! only on request, hostile paging queries, and PostgreSQL plans that seek an index for every
//! list page and every per-request statement.

use db::Database;
use reqwest::Method;
use serde_json::Value;
use server::encode_cursor;
use testing::{
    TestBackend, assert_index_plan, assert_index_plan_uses, error_code, fresh_database, link,
    on_both_backends, total_count,
};

use crate::helpers::{ADMIN, Store, TestApp, Who, spawn_app};

const ANONYMOUS: Who = Who::Anonymous;
const USER_A: Who = Who::User(2);
const USER_B: Who = Who::User(3);

on_both_backends!(
    cursors_walk_every_item_once_both_ways,
    each_caller_pages_through_its_own_scope,
    bad_paging_queries_are_400s_with_the_json_body,
);

fn ids(page: &[Value]) -> Vec<String> {
    page.iter()
        .map(|item| item["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// One page of the list as one caller saw it.
struct Listed {
    /// The items' ids, in order.
    ids: Vec<String>,
    /// The `Link` header's targets.
    next: Option<String>,
    prev: Option<String>,
    first: Option<String>,
    /// `X-Total-Count`, if sent.
    total: Option<u64>,
    /// Whether `X-Total-Count-Estimate` was sent.
    estimated: bool,
}

/// `GET url` as `who`: a 200 with a JSON array.
async fn page(app: &TestApp, who: Who, url: &str) -> Listed {
    let response = app.send_as(who, Method::GET, url).await;
    assert_eq!(response.status(), 200, "{who:?} {url}");
    let headers = response.headers();
    let total = headers.get("x-total-count").map(|_| total_count(&response));
    let estimated = headers.get("x-total-count-estimate").is_some();
    let [next, prev, first] = ["next", "prev", "first"].map(|rel| link(&response, rel));
    let items: Vec<Value> = response.json().await.expect("a JSON array");
    Listed {
        ids: ids(&items),
        next,
        prev,
        first,
        total,
        estimated,
    }
}

/// Follows `rel` links as `who` from `start` until there is none; the pages' ids in the order
/// visited, and the last URL fetched. Every page checks the headers of an uncounted page.
async fn walk(app: &TestApp, who: Who, start: &str, rel: &str) -> (Vec<Vec<String>>, String) {
    let mut pages = Vec::new();
    let mut url = start.to_owned();
    loop {
        let listed = page(app, who, &url).await;
        assert_eq!(listed.total, None, "no exact count unless asked: {url}");
        assert!(
            listed
                .first
                .as_deref()
                .is_some_and(|first| first.starts_with("/api/media?limit=")),
            "a first link: {url}"
        );
        pages.push(listed.ids);
        assert!(pages.len() <= 100, "the walk from {start} does not end");
        let target = if rel == "next" {
            listed.next
        } else {
            listed.prev
        };
        match target {
            Some(target) => {
                assert!(target.starts_with("/api/media?limit="), "{target}");
                url = target;
            }
            None => return (pages, url),
        }
    }
}

/// Walks `who`'s list forwards from the first page of `limit` items and back from its last
/// page; both must give `expected`, every item once, in upload order.
async fn assert_walks(app: &TestApp, who: Who, limit: usize, expected: &[String]) {
    let first = format!("/api/media?limit={limit}");
    let (forwards, last_url) = walk(app, who, &first, "next").await;
    assert_eq!(
        forwards.concat(),
        expected,
        "{who:?}: forwards, every item once"
    );
    assert!(
        forwards.iter().all(|page| page.len() <= limit),
        "{who:?}: pages of at most {limit}"
    );
    assert_eq!(
        forwards.len(),
        expected.len().div_ceil(limit).max(1),
        "{who:?}: full pages until the last"
    );
    let first_page = page(app, who, &first).await;
    assert!(
        first_page.prev.is_none(),
        "{who:?}: nothing before the first page"
    );
    assert_eq!(first_page.ids, forwards[0]);

    let (mut backwards, first_reached) = walk(app, who, &last_url, "prev").await;
    backwards.reverse();
    assert_eq!(
        backwards.concat(),
        expected,
        "{who:?}: backwards, every item once"
    );
    let earliest = page(app, who, &first_reached).await;
    assert!(
        earliest.prev.is_none(),
        "{who:?}: the walk back ends at the first item"
    );
}

async fn cursors_walk_every_item_once_both_ways(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let mut uploaded = Vec::new();
    for n in 0..11 {
        let file = app
            .upload_ok(&format!("f{n}.txt"), format!("file {n}").as_bytes())
            .await;
        uploaded.push(file["id"].as_str().expect("id").to_owned());
    }
    for limit in [1, 3, 11, 1000] {
        assert_walks(&app, ADMIN, limit, &uploaded).await;
    }

    // Totals only with count=exact, on any page.
    let counted = page(&app, ADMIN, "/api/media?limit=3&count=exact").await;
    assert_eq!(counted.total, Some(11));
    let next = counted.next.expect("a next page");
    assert!(!next.contains("count="), "{next}");
    let counted = page(&app, ADMIN, &format!("{next}&count=exact")).await;
    assert_eq!(counted.ids, uploaded[3..6]);
    assert_eq!(counted.total, Some(11));

    // Offsets still page (short lists), and lead on by cursor.
    let offset = page(&app, ADMIN, "/api/media?limit=3&offset=3").await;
    assert_eq!(offset.ids, uploaded[3..6]);
    assert_eq!(offset.total, None);
    let after = page(&app, ADMIN, &offset.next.expect("next")).await;
    assert_eq!(after.ids, uploaded[6..9]);
    let before = page(&app, ADMIN, &offset.prev.expect("prev")).await;
    assert_eq!(before.ids, uploaded[..3]);
    let deep = page(&app, ADMIN, "/api/media?offset=10000").await;
    assert!(deep.ids.is_empty());
    assert!(deep.next.is_none());

    // A cursor keeps its place when its own item is deleted.
    let next = page(&app, ADMIN, "/api/media?limit=3")
        .await
        .next
        .expect("a next page");
    let deleted = app
        .send_as(
            ADMIN,
            Method::DELETE,
            &format!("/api/media/{}", uploaded[2]),
        )
        .await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(page(&app, ADMIN, &next).await.ids, uploaded[3..6]);

    // Cursors past either end: empty pages, not errors.
    let beyond = encode_cursor("media", i64::MAX);
    let past = page(&app, ADMIN, &format!("/api/media?after={beyond}")).await;
    assert!(past.ids.is_empty());
    assert!(past.next.is_none());
    let below = encode_cursor("media", i64::MIN);
    let under = page(&app, ADMIN, &format!("/api/media?before={below}")).await;
    assert!(under.ids.is_empty());
    app.stop().await;
}

async fn each_caller_pages_through_its_own_scope(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    let (mut all, mut public, mut owned_a, mut owned_b) = (vec![], vec![], vec![], vec![]);
    // Interleaved owners and visibilities, so every scope's items are scattered in `seq`.
    for n in 0..15 {
        let (who, owned) = match n % 3 {
            0 | 1 => (USER_A, &mut owned_a),
            _ => (USER_B, &mut owned_b),
        };
        let is_public = n % 4 == 0;
        let path = if is_public {
            "/api/media?visibility=public"
        } else {
            "/api/upload"
        };
        let file = app
            .upload_ok_as(who, path, &format!("f{n}.txt"), b"x")
            .await;
        let id = file["id"].as_str().expect("id").to_owned();
        owned.push(id.clone());
        if is_public {
            public.push(id.clone());
        }
        all.push(id);
    }
    let admin_own = app.upload_ok("admin.txt", b"admin").await;
    all.push(admin_own["id"].as_str().expect("id").to_owned());
    if backend == TestBackend::Postgres {
        // Planner statistics: the table's estimate exists from here on.
        analyze_media(&app).await;
        let listed = page(&app, ADMIN, "/api/media?limit=1").await;
        assert!(listed.estimated, "the admins' list carries the estimate");
        assert_eq!(listed.total, None);
        let counted = page(&app, ADMIN, "/api/media?limit=1&count=exact").await;
        assert!(!counted.estimated, "an exact count replaces the estimate");
    }

    for (who, expected) in [
        (ANONYMOUS, &public),
        (USER_A, &owned_a),
        (USER_B, &owned_b),
        (ADMIN, &all),
    ] {
        for limit in [1, 2, 4] {
            assert_walks(&app, who, limit, expected).await;
        }
        let counted = page(&app, who, "/api/media?limit=1&count=exact").await;
        assert_eq!(
            counted.total,
            Some(expected.len() as u64),
            "{who:?}: the exact total of the scope"
        );
        if who != ADMIN {
            assert!(
                !page(&app, who, "/api/media?limit=1").await.estimated,
                "{who:?}: the table's estimate is not the scope's"
            );
        }
    }
    // Another scope's cursor only positions the caller's own list.
    let next = page(&app, ADMIN, "/api/media?limit=5")
        .await
        .next
        .expect("a next page");
    let ids = page(&app, ANONYMOUS, &next).await.ids;
    assert!(ids.iter().all(|id| public.contains(id)), "{ids:?}");
    app.stop().await;
}

/// `ANALYZE media` on the service's PostgreSQL database.
async fn analyze_media(app: &TestApp) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.service.settings.database_url.0)
        .await
        .expect("the service's database");
    sqlx::query("ANALYZE media")
        .execute(&pool)
        .await
        .expect("ANALYZE");
    pool.close().await;
}

async fn bad_paging_queries_are_400s_with_the_json_body(backend: TestBackend) {
    let app = spawn_app(backend, Store::Fs).await;
    app.upload_ok("a.txt", b"a").await;
    let media = encode_cursor("media", 1);
    let users = encode_cursor("users", 1);
    let too_long = "A".repeat(200);
    let bad = [
        "/api/media?after=not-a-cursor!".to_owned(),
        "/api/media?before=%00%ff".to_owned(),
        format!("/api/media?after={users}"),
        format!("/api/media?before={users}"),
        format!("/api/media?after={too_long}"),
        // base64url of "media:abc", "media:", "media:1:2", "media: 1".
        "/api/media?after=bWVkaWE6YWJj".to_owned(),
        "/api/media?after=bWVkaWE6".to_owned(),
        "/api/media?before=bWVkaWE6MToy".to_owned(),
        "/api/media?after=bWVkaWE6IDE".to_owned(),
        "/api/media?after=".to_owned(),
        format!("/api/media?after={media}&before={media}"),
        format!("/api/media?after={media}&offset=1"),
        "/api/media?count=estimate".to_owned(),
        "/api/media?count=".to_owned(),
        "/api/media?ids=1,2".to_owned(),
        "/api/media?limit=1001".to_owned(),
        "/api/media?limit=99999999999".to_owned(),
        "/api/media?limit=-1".to_owned(),
        "/api/media?offset=10001".to_owned(),
        "/api/media?offset=x".to_owned(),
    ];
    let refused = app.get("/api/media?ids=1").await;
    let body: Value = refused.json().await.expect("a JSON error");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.contains("ids"), "{message}");
    for url in bad {
        for who in [ANONYMOUS, USER_A, ADMIN] {
            let response = app.send_as(who, Method::GET, &url).await;
            assert_eq!(response.status(), 400, "{who:?} {url}");
            assert_eq!(error_code(response).await, "bad_request", "{who:?} {url}");
        }
    }
    app.stop().await;
}

/// The OpenAPI document declares the list's paging parameters (not `ids`) and headers.
#[tokio::test]
async fn the_openapi_document_declares_the_paging_parameters_and_headers() {
    let app = spawn_app(TestBackend::Sqlite, Store::Fs).await;
    let document: Value = app
        .get("/api/media/openapi.json")
        .await
        .json()
        .await
        .expect("JSON");
    let list = &document["paths"]["/api/media"]["get"];
    let mut parameters: Vec<&str> = list["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|parameter| parameter["name"].as_str().expect("a name"))
        .collect();
    parameters.sort_unstable();
    assert_eq!(parameters, ["after", "before", "count", "limit", "offset"]);
    let headers = list["responses"]["200"]["headers"]
        .as_object()
        .expect("headers");
    for header in ["Link", "X-Total-Count", "X-Total-Count-Estimate"] {
        assert!(headers.contains_key(header), "{header}: {headers:?}");
    }
    app.stop().await;
}

/// Every list page (each scope: first page, after a cursor, before a cursor, by offset), the
/// scope counts of `count=exact`, and each statement an upload, a read or a delete runs seek
/// an index on PostgreSQL: none scans the table or sorts its rows. The counted total of the
/// admins' list (every row) is the one statement that reads the whole table, and only on
/// request.
#[tokio::test]
async fn every_per_request_statement_seeks_an_index_on_postgres() {
    testing::skip_unless!(Postgres);
    let url = fresh_database(TestBackend::Postgres)
        .await
        .expect("a database");
    let database = Database::connect(&url, media_service::migrations())
        .await
        .expect("migrated");
    let columns = "seq, id, name, content_type, size, object_key, thumbnail_key, \
                   thumbnail_ready_at, owner_id, visibility, created_at";
    let mut statements = Vec::new();
    let mut pages = Vec::new();
    for (scope, filter, index) in [
        ("admins' list", None, "media_pkey"),
        ("a user's list", Some("owner_id = 2"), "media_owner_seq"),
        (
            "the public list",
            Some("visibility = 'public'"),
            "media_visibility_seq",
        ),
    ] {
        let with = |condition: Option<&str>| match (filter, condition) {
            (None, None) => String::new(),
            (Some(one), None) | (None, Some(one)) => format!("WHERE {one} "),
            (Some(filter), Some(condition)) => format!("WHERE {filter} AND {condition} "),
        };
        let select = |condition: Option<&str>, tail: &str| {
            format!("SELECT {columns} FROM media {}{tail}", with(condition))
        };
        for (what, sql) in [
            ("first page", select(None, "ORDER BY seq ASC LIMIT 101")),
            (
                "page after a cursor",
                select(Some("seq > 500000"), "ORDER BY seq ASC LIMIT 101"),
            ),
            (
                "page before a cursor",
                select(Some("seq < 500000"), "ORDER BY seq DESC LIMIT 101"),
            ),
            (
                "page by offset",
                select(None, "ORDER BY seq ASC LIMIT 101 OFFSET 300"),
            ),
        ] {
            pages.push((format!("{scope}: {what}"), sql, index));
        }
        if let Some(filter) = filter {
            statements.push((
                format!("{scope}: count=exact"),
                format!("SELECT COUNT(*) FROM media WHERE {filter}"),
            ));
        }
    }
    for (what, sql) in [
        (
            "a read",
            format!("SELECT {columns} FROM media WHERE id = 'x'"),
        ),
        ("a delete", "DELETE FROM media WHERE id = 'x'".to_owned()),
        (
            "a thumbnail seen",
            "UPDATE media SET thumbnail_ready_at = 't' WHERE id = 'x' \
             AND thumbnail_ready_at IS NULL"
                .to_owned(),
        ),
        (
            "a thumbnail forgotten",
            "UPDATE media SET thumbnail_key = NULL WHERE id = 'x'".to_owned(),
        ),
        (
            "the quota's lapsed reservations",
            "DELETE FROM media_reservations WHERE owner_id = 2 AND expires_at <= 100".to_owned(),
        ),
        (
            "the quota's usage",
            "SELECT \
               CAST((SELECT COALESCE(SUM(size), 0) FROM media WHERE owner_id = 2) \
                  + (SELECT COALESCE(SUM(bytes), 0) FROM media_reservations \
                     WHERE owner_id = 2 AND id <> 'r') AS BIGINT), \
               CAST((SELECT COUNT(*) FROM media WHERE owner_id = 2) \
                  + (SELECT COUNT(*) FROM media_reservations \
                     WHERE owner_id = 2 AND id <> 'r') AS BIGINT)"
                .to_owned(),
        ),
        (
            "a reservation released",
            "DELETE FROM media_reservations WHERE id = 'r'".to_owned(),
        ),
    ] {
        statements.push((what.to_owned(), sql));
    }
    for (what, sql, index) in &pages {
        assert_index_plan_uses(&database, what, sql, index).await;
    }
    for (what, sql) in &statements {
        assert_index_plan(&database, what, sql).await;
    }
    database.close().await;
}
