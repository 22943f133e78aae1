//! The jobs API (`/api/jobs`, admins only) on every broker: dead letters listed with their
//! fields and paged by cursor, replayed (done when their cause is gone, dead again when not),
//! deleted, one by one and in bulk; the stats and the queue gauges as jobs flow.

use std::{io::Cursor, time::Duration};

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{Broker, TestBroker, TestWorker, client, eventually, quick, spawn_worker, task},
    on_every_broker,
};
use worker::config::ProcessingArgs;

on_every_broker!(
    a_large_dead_letter_is_listed_cut_and_read_whole_by_id,
    a_poison_job_is_listed_with_its_fields_replayed_and_deleted,
    bulk_replay_and_delete_answer_counts_and_refuse_bad_selections,
    dead_letters_are_paged_by_cursor,
    stats_and_gauges_follow_the_jobs,
);

mod the_jobs_api_is_for_admins_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_sqlite() {
        super::the_jobs_api_is_for_admins_only(crate::helpers::Broker::Embedded).await
    }
}

/// An admin's call of the worker's API: the status and the JSON body (`null` when none).
async fn call(
    worker: &TestWorker,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, body) =
        call_as(worker, Some(&testing::admin_token(1)), method, path, body).await;
    (status, body)
}

/// A call with `token` (none: anonymous): the status, the `Link` header and the JSON body.
async fn call_as(
    worker: &TestWorker,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = client().request(method, worker.service.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the worker answers");
    let status = response.status();
    let link = response
        .headers()
        .get("link")
        .map(|value| value.to_str().expect("a text header").to_owned());
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"))
    };
    (status, link, body)
}

/// The dead letters' first page (up to 100), once it has `count` rows.
async fn dead_list(worker: &TestWorker, count: usize) -> Vec<Value> {
    eventually(
        &format!("{count} dead letters listed"),
        Duration::from_secs(20),
        || async {
            call(worker, Method::GET, "/api/jobs/dead?limit=100", None)
                .await
                .1
                .as_array()
                .is_some_and(|rows| rows.len() == count)
        },
    )
    .await;
    let (status, rows) = call(worker, Method::GET, "/api/jobs/dead?limit=100", None).await;
    assert_eq!(status, StatusCode::OK);
    rows.as_array().expect("an array").clone()
}

fn png(width: u32, height: u32) -> Bytes {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, 90])
    });
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encoding");
    Bytes::from(out.into_inner())
}

/// Dead-letters `count` malformed messages (bodies that are no JSON).
async fn malformed(broker: &TestBroker, count: usize) {
    for n in 0..count {
        broker
            .queue
            .publish_raw(
                format!("not json {n}").as_bytes(),
                &uuid::Uuid::new_v4().to_string(),
                Some("req-malformed"),
            )
            .await
            .expect("published");
    }
}

fn id_of(row: &Value) -> i64 {
    row["id"].as_i64().expect("an id")
}

async fn a_poison_job_is_listed_with_its_fields_replayed_and_deleted(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(
        &broker,
        ProcessingArgs {
            max_attempts: 2,
            ..quick()
        },
    )
    .await;
    // A thumbnail of an upload that is no image: dead at once, attempt 1.
    let media = uuid::Uuid::new_v4();
    let key = format!("{media}/photo.png");
    worker
        .store
        .put(&key, Bytes::from_static(b"not an image yet"), "image/png")
        .await
        .expect("stored");
    let thumbnail = broker
        .queue
        .enqueue(
            "thumbnail",
            json!({"media_id": media.to_string(), "key": key}),
            Some("req-poison"),
        )
        .await
        .expect("enqueued");
    // A task failing every attempt: dead after its second, its first failure kept.
    let failing = broker
        .queue
        .enqueue("task", task("always failing", 0, 100), Some("req-task"))
        .await
        .expect("enqueued");
    let rows = dead_list(&worker, 2).await;
    let row_of = |job: uuid::Uuid| {
        rows.iter()
            .find(|row| row["job_id"] == job.to_string())
            .unwrap_or_else(|| panic!("{job} in {rows:?}"))
            .clone()
    };
    let dead_thumbnail = row_of(thumbnail);
    assert_eq!(dead_thumbnail["kind"], "thumbnail");
    assert_eq!(dead_thumbnail["attempts"], 1);
    assert_eq!(dead_thumbnail["deliveries"], 1);
    assert_eq!(dead_thumbnail["request_id"], "req-poison");
    assert_eq!(dead_thumbnail["payload"]["media_id"], media.to_string());
    let error = dead_thumbnail["last_error"].as_str().expect("an error");
    assert!(error.contains("not an image"), "{error}");
    assert_eq!(
        dead_thumbnail["first_failed_at"], dead_thumbnail["last_failed_at"],
        "failed once"
    );
    let dead_task = row_of(failing);
    assert_eq!(dead_task["kind"], "task");
    assert_eq!(dead_task["attempts"], 2);
    assert_eq!(dead_task["request_id"], "req-task");
    assert!(
        dead_task["last_error"]
            .as_str()
            .expect("an error")
            .starts_with("failed after 2 attempts"),
        "{dead_task}"
    );
    let (first, last) = (
        dead_task["first_failed_at"].as_str().expect("a time"),
        dead_task["last_failed_at"].as_str().expect("a time"),
    );
    assert!(
        first < last,
        "its first failure ({first}) is its first attempt's, before its dead-lettering ({last})"
    );

    // The cause gone (the upload is an image now), the replayed job is done.
    worker
        .store
        .put(&key, png(400, 300), "image/png")
        .await
        .expect("stored");
    let (status, body) = call(
        &worker,
        Method::POST,
        &format!("/api/jobs/dead/{}/replay", id_of(&dead_thumbnail)),
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"replayed": 1})));
    eventually(
        "the replayed thumbnail is written",
        Duration::from_secs(20),
        || async {
            worker
                .store
                .exists(&format!("{media}/thumbnail.png"))
                .await
                .expect("exists")
        },
    )
    .await;
    // The task's cause stays: replayed at attempt 1, it is dead again after two attempts.
    let (status, _) = call(
        &worker,
        Method::POST,
        &format!("/api/jobs/dead/{}/replay", id_of(&dead_task)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let again = dead_list(&worker, 1).await;
    assert_eq!(again[0]["job_id"], failing.to_string());
    assert_eq!(again[0]["attempts"], 2, "counted from 1 again");
    assert_eq!(again[0]["request_id"], "req-task");

    let path = format!("/api/jobs/dead/{}", id_of(&again[0]));
    let (status, body) = call(&worker, Method::DELETE, &path, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    dead_list(&worker, 0).await;
    for (method, path) in [
        (Method::DELETE, path.clone()),
        (Method::POST, format!("{path}/replay")),
    ] {
        let (status, body) = call(&worker, method, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    }
    worker.stop().await;
    broker.cleanup().await;
}

async fn a_large_dead_letter_is_listed_cut_and_read_whole_by_id(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    let pad = "p".repeat(10_000);
    // A job of no kind the worker knows: dead at once.
    broker
        .queue
        .enqueue("no-such-kind", json!({ "pad": pad }), None)
        .await
        .expect("enqueued");
    let rows = dead_list(&worker, 1).await;
    let listed = &rows[0];
    assert_eq!(listed["payload_truncated"], true, "{listed}");
    let cut = listed["payload"].as_str().expect("the payload's text, cut");
    assert_eq!(cut.len(), 4096);
    assert!(cut.starts_with("{\"pad\":\"ppp"), "{cut}");
    assert_eq!(listed["last_error_truncated"], false);
    let (status, whole) = call(
        &worker,
        Method::GET,
        &format!("/api/jobs/dead/{}", id_of(listed)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["payload"], json!({ "pad": pad }));
    assert_eq!(whole["job_id"], listed["job_id"]);
    let (status, body) = call(&worker, Method::GET, "/api/jobs/dead/999999999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    worker.stop().await;
    broker.cleanup().await;
}

async fn bulk_replay_and_delete_answer_counts_and_refuse_bad_selections(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    malformed(&broker, 5).await;
    let rows = dead_list(&worker, 5).await;
    assert!(
        rows.iter()
            .all(|row| row["kind"].is_null() && row["attempts"] == 0)
    );
    let (status, body) = call(
        &worker,
        Method::POST,
        "/api/jobs/dead/delete",
        Some(json!({"ids": [id_of(&rows[0]), id_of(&rows[1]), 999_999_999]})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"deleted": 2, "missing": [999_999_999]})
        )
    );
    // Malformed messages are no job of any kind.
    let (status, body) = call(
        &worker,
        Method::POST,
        "/api/jobs/dead/replay",
        Some(json!({"all": true, "kind": "thumbnail"})),
    )
    .await;
    let last = id_of(&rows[4]);
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"replayed": 0, "remaining": 0, "through": last})
        )
    );
    let (status, body) = call(
        &worker,
        Method::POST,
        "/api/jobs/dead/replay",
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["replayed"], &body["through"]),
        (&json!(3), &json!(last))
    );
    // Still malformed: dead again, under the same job ids.
    let again = dead_list(&worker, 3).await;
    let ids = |rows: &[Value]| {
        let mut ids: Vec<String> = rows.iter().map(|row| row["job_id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&again), ids(&rows[2..]));
    let (status, body) = call(
        &worker,
        Method::POST,
        "/api/jobs/dead/replay",
        Some(json!({"ids": [id_of(&again[0])]})),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"replayed": 1, "missing": []}))
    );
    dead_list(&worker, 3).await;
    let (status, body) = call(
        &worker,
        Method::POST,
        "/api/jobs/dead/delete",
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["deleted"], &body["remaining"]),
        (&json!(3), &json!(0))
    );
    dead_list(&worker, 0).await;
    let too_many: Vec<i64> = (1..=1001).collect();
    for (bad, field) in [
        (json!({}), "ids"),
        (json!({"ids": []}), "ids"),
        (json!({"ids": too_many}), "ids"),
        (json!({"ids": [1], "all": true}), "ids"),
        (json!({"ids": [1], "kind": "task"}), "kind"),
        (json!({"ids": [1], "through": 5}), "through"),
        (json!({"all": true, "kind": ""}), "kind"),
    ] {
        for action in ["replay", "delete"] {
            let (status, body) = call(
                &worker,
                Method::POST,
                &format!("/api/jobs/dead/{action}"),
                Some(bad.clone()),
            )
            .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad} {body}");
            assert_eq!(body["error"]["details"][0]["field"], field, "{bad} {body}");
        }
    }
    let (status, body) = call(
        &worker,
        Method::POST,
        "/api/jobs/dead/delete",
        Some(json!({"all": true, "kind": "no spaces"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &worker,
        Method::POST,
        "/api/jobs/dead/delete",
        Some(json!({"everything": true})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    worker.stop().await;
    broker.cleanup().await;
}

/// The URL of the `rel` link of a `Link` header, as a path.
fn link(header: &str, rel: &str) -> Option<String> {
    header.split(", ").find_map(|part| {
        let (url, relation) = part.split_once("; ")?;
        (relation == format!("rel=\"{rel}\""))
            .then(|| url.trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

async fn dead_letters_are_paged_by_cursor(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    malformed(&broker, 5).await;
    let all: Vec<i64> = dead_list(&worker, 5).await.iter().map(id_of).collect();
    assert!(all.windows(2).all(|pair| pair[0] < pair[1]), "{all:?}");
    let admin = testing::admin_token(1);
    let page = |path: String| {
        let admin = admin.clone();
        let worker = &worker;
        async move {
            let (status, link, body) =
                call_as(worker, Some(&admin), Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            let ids: Vec<i64> = body
                .as_array()
                .expect("an array")
                .iter()
                .map(id_of)
                .collect();
            (ids, link.expect("a Link header"))
        }
    };
    let (first, links) = page("/api/jobs/dead?limit=2".to_owned()).await;
    assert_eq!(first, all[..2]);
    assert_eq!(link(&links, "prev"), None);
    let (second, links) = page(link(&links, "next").expect("a next page")).await;
    assert_eq!(second, all[2..4]);
    let (third, links) = page(link(&links, "next").expect("a next page")).await;
    assert_eq!(third, all[4..]);
    assert_eq!(link(&links, "next"), None, "the last page");
    let (back, _) = page(link(&links, "prev").expect("a previous page")).await;
    assert_eq!(back, all[2..4]);
    let (_, _, body) = call_as(
        &worker,
        Some(&admin),
        Method::GET,
        "/api/jobs/dead?kind=task",
        None,
    )
    .await;
    assert_eq!(body, json!([]), "no task among them");
    let response = client()
        .get(worker.service.url("/api/jobs/dead?count=exact&limit=1"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.headers()["x-total-count"], "5");
    for bad in [
        "/api/jobs/dead?limit=1001",
        "/api/jobs/dead?limit=101",
        "/api/jobs/dead?after=garbage",
        "/api/jobs/dead?limit=-1",
        "/api/jobs/dead?ids=1,2",
        "/api/jobs/dead?kind=a%20b",
    ] {
        let (status, _, body) = call_as(&worker, Some(&admin), Method::GET, bad, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}: {body}");
    }
    worker.stop().await;
    broker.cleanup().await;
}

async fn the_jobs_api_is_for_admins_only(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    let user = testing::user_token(7);
    let admin = testing::admin_token(1);
    for (method, path) in [
        (Method::GET, "/api/jobs/stats"),
        (Method::GET, "/api/jobs/dead"),
        (Method::POST, "/api/jobs/dead/1/replay"),
        (Method::DELETE, "/api/jobs/dead/1"),
        (Method::POST, "/api/jobs/dead/replay"),
        (Method::POST, "/api/jobs/dead/delete"),
    ] {
        let body = (method == Method::POST && !path.contains("/1/")).then(|| json!({"all": true}));
        let (status, _, answer) = call_as(&worker, None, method.clone(), path, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "unauthorized");
        let (status, _, answer) =
            call_as(&worker, Some(&user), method.clone(), path, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
        let (status, _, answer) = call_as(&worker, Some(&admin), method.clone(), path, body).await;
        assert!(
            [StatusCode::OK, StatusCode::NOT_FOUND].contains(&status),
            "{method} {path}: {status} {answer}"
        );
    }
    let (status, _, body) = call_as(
        &worker,
        Some(&admin),
        Method::DELETE,
        "/api/jobs/dead/abc",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    worker.stop().await;
    broker.cleanup().await;
}

/// The stats of the worker's one queue.
async fn stats(worker: &TestWorker) -> Value {
    let (status, body) = call(worker, Method::GET, "/api/jobs/stats", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["queues"][0].clone()
}

async fn stats_and_gauges_follow_the_jobs(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(
        &broker,
        ProcessingArgs {
            prefetch: 1,
            concurrency: 1,
            ..quick()
        },
    )
    .await;
    let queue = broker.args.queue.clone();
    let before = stats(&worker).await;
    assert_eq!(before["queue"], queue.as_str());
    assert!(
        before["instance"]
            .as_str()
            .is_some_and(|name| !name.is_empty()),
        "{before}"
    );
    assert_eq!(
        before["backend"],
        if kind == Broker::RabbitMq {
            "amqp"
        } else {
            "embedded"
        }
    );
    assert_eq!(
        (&before["processed"], &before["failed"], &before["dead"]),
        (&json!(0), &json!(0), &json!(0))
    );
    assert_eq!(before["rates"]["processed_per_minute"]["last_1m"], 0.0);
    // Slow jobs one at a time: one in flight, the others waiting.
    for n in 0..3 {
        broker
            .queue
            .enqueue("task", task(&format!("slow {n}"), 1500, 0), None)
            .await
            .expect("enqueued");
    }
    eventually(
        "one job in flight, others waiting",
        Duration::from_secs(20),
        || async {
            let now = stats(&worker).await;
            now["in_flight"] == 1 && now["waiting"].as_u64().is_some_and(|waiting| waiting >= 1)
        },
    )
    .await;
    eventually("the gauges show them", Duration::from_secs(20), || async {
        worker
            .metric("queue_in_flight_jobs", &[("queue", &queue)])
            .await
            == 1.0
            && worker
                .metric("queue_ready_jobs", &[("queue", &queue)])
                .await
                >= 1.0
    })
    .await;
    malformed(&broker, 1).await;
    eventually("every job settled", Duration::from_secs(30), || async {
        let now = stats(&worker).await;
        now["processed"] == 3 && now["dead"] == 1 && now["waiting"] == 0 && now["in_flight"] == 0
    })
    .await;
    let after = stats(&worker).await;
    assert_eq!(after["dead_lettered"], 1);
    for window in ["last_1m", "last_5m"] {
        let rate = after["rates"]["processed_per_minute"][window]
            .as_f64()
            .expect("a rate");
        assert!(rate > 0.0, "{window}: {after}");
    }
    eventually("the gauges follow", Duration::from_secs(20), || async {
        worker.metric("queue_dead_jobs", &[("queue", &queue)]).await == 1.0
            && worker
                .metric("queue_ready_jobs", &[("queue", &queue)])
                .await
                == 0.0
            && worker
                .metric("queue_in_flight_jobs", &[("queue", &queue)])
                .await
                == 0.0
    })
    .await;
    let text = client()
        .get(worker.service.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let families = testing::assert_distinct_metric_families(&text);
    for family in [
        "queue_ready_jobs",
        "queue_in_flight_jobs",
        "queue_dead_jobs",
    ] {
        assert!(families.iter().any(|known| known == family), "{family}");
    }
    worker.stop().await;
    broker.cleanup().await;
}
