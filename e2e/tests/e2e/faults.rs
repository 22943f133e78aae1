//! Faults on real backends, through relays the test can cut (so the shared Redis and RabbitMQ
//! other tests use are never stopped): Redis lost under read load, RabbitMQ lost during uploads,
//! a service killed and restarted under load, and SIGTERM to every process under load.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::{Backends, Platform};
use serde_json::{Value, json};
use testing::TcpSwitch;

use crate::clients::png;

/// One answer of a load run: status (0: no answer) and how long it took.
type Outcome = (u16, Duration);

/// `workers` loops of GET `url` until `stop`; every outcome, in order of completion.
fn load(
    url: String,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Outcome>> {
    tokio::spawn(async move {
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a client");
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let (client, url, stop, outcomes) =
                (client.clone(), url.clone(), stop.clone(), outcomes.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let status = match client.get(&url).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    outcomes
                        .lock()
                        .expect("outcomes")
                        .push((status, started.elapsed()));
                }
            }));
        }
        for task in tasks {
            task.await.expect("a load task");
        }
        outcomes.lock().expect("outcomes").clone()
    })
}

async fn upload(gateway: &str, token: &str, name: &str) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png(300, 200))
            .file_name(name.to_owned())
            .mime_str("image/png")
            .expect("a MIME type"),
    );
    reqwest::Client::new()
        .post(format!("{gateway}/api/upload"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("an upload answer")
}

async fn redis_lost_under_read_load(platform: &Platform, redis: &TcpSwitch) {
    let admin = platform.admin_token().await;
    let user: Value = reqwest::Client::new()
        .post(platform.url("/api/users"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Reader", "email": format!("reader-{}@example.com", uuid::Uuid::new_v4().simple())}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let url = platform.url(&format!("/api/users/{}", user["id"]));
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(url.clone(), 8, stop.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restore();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = running.await.expect("the load");
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(
        outcomes.len() > 100,
        "a real load: {} requests",
        outcomes.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} reads failed: {failed:?}",
        failed.len(),
        outcomes.len()
    );

    // Back: users-service is ready again and serves from Redis.
    let users = &platform.services["users"];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = reqwest::get(format!("{users}/readyz"))
            .await
            .ok()
            .map(|r| r.status().as_u16());
        let cached = match reqwest::get(&url).await {
            Ok(response) => testing::cache_header(&response) == "hit",
            Err(_) => false,
        };
        if ready == Some(200) && cached {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis did not come back: ready {ready:?}, cache {cached:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn rabbitmq_lost_during_uploads(platform: &Platform, rabbitmq: &TcpSwitch) {
    // Uploads go on while the broker is away for 2 s: each is accepted once its job is
    // confirmed (the publisher reconnects), and every one gets its thumbnail.
    let uploader = platform.sign_up("Uploader").await;
    let outage = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        rabbitmq.cut();
        tokio::time::sleep(Duration::from_secs(2)).await;
        rabbitmq.restore();
    };
    let uploads = async {
        let mut ids = Vec::new();
        for index in 0..10 {
            let response = upload(
                &platform.gateway,
                &uploader.access_token,
                &format!("fault-{index}.png"),
            )
            .await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("a JSON answer");
            assert_eq!(status, 201, "upload {index}: {body}");
            ids.push(body["file"]["id"].as_str().expect("an id").to_owned());
        }
        ids
    };
    let ((), ids) = tokio::join!(outage, uploads);
    let deadline = Instant::now() + Duration::from_secs(90);
    for id in ids {
        loop {
            let metadata: Value = reqwest::Client::new()
                .get(platform.url(&format!("/api/media/{id}")))
                .bearer_auth(&uploader.access_token)
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("JSON");
            if metadata["thumbnail_url"].is_string() {
                break;
            }
            if Instant::now() >= deadline {
                // What media-service and the worker said about it, and every warning or error.
                let said: Vec<String> = platform
                    .log_lines()
                    .into_iter()
                    .filter(|line| {
                        line.to_string().contains(id.as_str())
                            || matches!(line["level"].as_str(), Some("warn" | "error"))
                    })
                    .map(|line| line.to_string())
                    .collect();
                panic!(
                    "upload {id} lost its job: {metadata}\nlogs:\n{}",
                    said.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The gateway's connect and response timeouts in [`faults_on_real_backends`].
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(10);

/// How soon a request to a dead upstream gets its 502: a loaded machine's margin, well under
/// [`GATEWAY_TIMEOUT`].
const QUICK_502: Duration = Duration::from_secs(3);

async fn service_killed_and_restarted_under_load(platform: &mut Platform) {
    let url = platform.url("/api/products/1");
    let created = reqwest::Client::new()
        .post(platform.url("/api/products"))
        .bearer_auth(platform.admin_token().await)
        .json(&json!({"name": "Anvil", "price": 10}))
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), 201);
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(url.clone(), 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    platform.process("products").kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    platform.process("products").restart();
    // Recovered by itself: 200s again, without anything telling the gateway.
    let recovered_after = loop {
        let status = reqwest::get(&url).await.ok().map(|r| r.status().as_u16());
        if status == Some(200) {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "the gateway did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let outcomes = running.await.expect("the load");
    let bad_gateways = outcomes.iter().filter(|(status, _)| *status == 502).count();
    assert!(bad_gateways > 0, "the outage was seen as 502s");
    // Only 200s and quick 502s (the gateway does not wait out a dead upstream: the bound is a
    // fraction of its timeouts); no hung or dropped client connection (0).
    let unexpected: Vec<String> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, (status, took))| match status {
            200 => false,
            502 => *took >= QUICK_502,
            _ => true,
        })
        .map(|(index, (status, took))| {
            let status = match status {
                0 => "no answer".to_owned(),
                status => status.to_string(),
            };
            format!("request {index}: {status} after {took:?}")
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "of {} requests ({bad_gateways} 502s), answers other than a 200 or a 502 within {QUICK_502:?}:\n{}",
        outcomes.len(),
        unexpected.join("\n")
    );
    assert!(
        recovered_after < Duration::from_secs(15),
        "recovered only after {recovered_after:?}"
    );
}

async fn sigterm_to_every_process_under_load(platform: Platform) {
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(platform.url("/api/users?limit=5"), 6, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = tokio::task::spawn_blocking(move || platform.stop(Duration::from_secs(15)));
    let stopped = stopping.await.expect("the stop task");
    stop.store(true, Ordering::SeqCst);
    stopped.expect("every process exits 0 within its drain bound");
    let outcomes = running.await.expect("the load");
    let server_errors: Vec<_> = outcomes
        .iter()
        .filter(|(status, _)| *status >= 500)
        .collect();
    assert!(
        server_errors.is_empty(),
        "an accepted request got a 5xx during shutdown: {server_errors:?}"
    );
}

#[tokio::test]
async fn faults_on_real_backends() {
    testing::skip_unless!(Postgres, Redis, RabbitMq, S3sFs);
    let (redis, redis_url) = TcpSwitch::for_url(&testing::redis_url()).await;
    let amqp = testing::amqp_url();
    let (rabbitmq, amqp_url) = TcpSwitch::for_url(&amqp).await;
    let s3 = crate::journey::S3::start().await;
    let backends = Backends {
        redis_url,
        amqp_url,
        ..s3.backends.clone()
    };
    // Timeouts far above the quick-502 bound below, so a gateway that waited out a dead
    // upstream instead of failing at once would be seen.
    let tuning = e2e::Tuning {
        gateway_server: format!(
            "connect_timeout_ms = {0}\nresponse_timeout_ms = {0}",
            GATEWAY_TIMEOUT.as_millis()
        ),
        ..Default::default()
    };
    let mut platform = Platform::processes_tuned(&backends, &tuning)
        .await
        .expect("every process starts");

    redis_lost_under_read_load(&platform, &redis).await;
    rabbitmq_lost_during_uploads(&platform, &rabbitmq).await;
    service_killed_and_restarted_under_load(&mut platform).await;
    sigterm_to_every_process_under_load(platform).await;
}
