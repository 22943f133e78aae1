//! Hostile load on the worker, every process on real backends (RabbitMQ, S3, PostgreSQL), the
//! worker tuned as compose and Kubernetes run it (50 jobs at once, prefetch 50) under their
//! 256 MiB limit. An attacker uploads through the gateway 50 decompression bombs (PNGs of
//! 400 KB declaring 20 000 × 20 000 RGBA pixels, 1.6 GB decoded; their data inflates to 64 MB
//! of rows before it runs out, so 50 decoded at once would take over 3 GB) and 12 heavy but
//! legal images (3000 × 2000: 18 MB of pixels each, 216 MB together), while a normal user
//! uploads ordinary photos. The worker reads each header before decoding: the bombs are
//! dead-lettered with the reason (the pixel cap), never retried; the heavy images wait for
//! their share of the decode budget; everyone's legal images get their thumbnails. The
//! worker's peak resident memory (`VmHWM`) is read from `/proc` and bounded.
//!
//! A bomb media-service itself refuses at the upload (a guard of its own) is put in the store
//! and its job enqueued the way media-service does, so the worker meets every bomb.
//!
//! A poison job takes its worker down on every delivery (the worker process is killed while
//! the job runs, as the kernel's OOM killer or a crash would), while a normal user keeps
//! uploading photos and waiting for their thumbnails: the job is dead-lettered unrun with the
//! reason once it has been delivered `WORKER_MAX_DELIVERIES` times, never runs again, and every
//! one of the normal user's images gets its thumbnail.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::{Backends, Platform, Tuning};
use futures_util::future::join_all;
use queue::{JobQueue, QueueArgs};
use serde_json::{Value, json};
use store::{ObjectStore, StoreArgs, StoreKind};

use crate::{clients::png, journey::S3};

/// compose's and Kubernetes' memory limit of the worker.
const PEAK_RSS_BOUND: u64 = 256 * 1024 * 1024;
const BOMBS: usize = 50;
const HEAVY: usize = 24;
const NORMAL: usize = 10;
/// How long every thumbnail and dead letter may take.
const PATIENCE: Duration = Duration::from_secs(180);

/// A file to upload.
struct Payload {
    /// Its bytes.
    bytes: Vec<u8>,
    /// Its name.
    name: String,
    /// Its type.
    content_type: &'static str,
}

/// A zlib stream of `n` zero bytes: one fixed-Huffman block of a zero literal and copies of
/// it 258 bytes at a time (13 bits each: about 1/159 of the data).
fn zlib_zeros(n: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        count: u32,
    }
    impl Bits {
        /// `count` bits of `value`, least significant first.
        fn put(&mut self, value: u32, count: u32) {
            self.acc |= u64::from(value) << self.count;
            self.count += count;
            while self.count >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.count -= 8;
            }
        }
        /// A Huffman code of `len` bits, most significant first.
        fn code(&mut self, code: u32, len: u32) {
            self.put(code.reverse_bits() >> (32 - len), len);
        }
    }
    let mut bits = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        count: 0,
    };
    // The last block, fixed Huffman codes.
    bits.put(1, 1);
    bits.put(1, 2);
    // Literal 0 (code 0x30, 8 bits), then <length 258 (code 285), distance 1 (code 0)>.
    bits.code(0x30, 8);
    let mut left = n - 1;
    while left >= 258 {
        bits.code(0xC5, 8);
        bits.code(0, 5);
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    // End of block.
    bits.code(0, 7);
    if bits.count > 0 {
        bits.out.push(bits.acc as u8);
    }
    // Adler-32 of n zeros: a = 1, b = n.
    let adler = ((n % 65_521) as u32) << 16 | 1;
    bits.out.extend_from_slice(&adler.to_be_bytes());
    bits.out
}

/// A PNG declaring `width` × `height` RGBA pixels whose data holds `rows` rows of zeros: about
/// 400 KB for 800 rows of 20 000, which inflate to 64 MB, inside a 1.6 GB image.
fn bomb(width: u32, height: u32, rows: usize) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // 8 bits per sample, RGBA, deflate, adaptive filtering, not interlaced.
    header.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    // Each row: its filter byte (0, none) and 4 bytes a pixel.
    chunk(
        &mut out,
        b"IDAT",
        &zlib_zeros(rows * (1 + 4 * width as usize)),
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A 3000 × 2000 PNG of smooth bands: small on the wire, 18 MB decoded.
fn heavy() -> Vec<u8> {
    let image = image::RgbImage::from_fn(3000, 2000, |x, y| {
        image::Rgb([(x / 12) as u8, (y / 8) as u8, 60])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("a PNG");
    bytes.into_inner()
}

/// Uploads through the gateway, waiting out a 429 as its `Retry-After` says; the status and
/// JSON body of the answer.
async fn upload(gateway: &str, token: &str, payload: &Payload) -> (u16, Value) {
    let client = reqwest::Client::new();
    loop {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(payload.bytes.clone())
                .file_name(payload.name.clone())
                .mime_str(payload.content_type)
                .expect("a MIME type"),
        );
        let response = client
            .post(format!("{gateway}/api/upload"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("an upload answer");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match (status, retry_after) {
            (429, Some(seconds)) => tokio::time::sleep(Duration::from_secs(seconds.max(1))).await,
            _ => return (status, body),
        }
    }
}

/// Whether media `id` has its thumbnail yet.
async fn has_thumbnail(platform: &Platform, token: &str, id: &str) -> bool {
    let metadata: Value = reqwest::Client::new()
        .get(platform.url(&format!("/api/media/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    metadata["thumbnail_url"].is_string()
}

#[tokio::test]
async fn bombs_are_dead_lettered_within_the_memory_budget_while_normal_images_get_thumbnails() {
    testing::skip_unless!(Postgres, Redis, RabbitMq, S3sFs);
    let s3 = S3::start().await;
    let backends = s3.backends.clone();
    let queue = format!("e2e-worker-{}", uuid::Uuid::new_v4().simple());
    let exchange = format!("{queue}.events");
    let mut env = Vec::new();
    for process in ["media", "worker"] {
        env.push((process.to_owned(), "QUEUE_NAME".to_owned(), queue.clone()));
        env.push((
            process.to_owned(),
            "EVENTS_EXCHANGE".to_owned(),
            exchange.clone(),
        ));
    }
    for (variable, value) in [("WORKER_PREFETCH", "50"), ("WORKER_CONCURRENCY", "50")] {
        env.push(("worker".to_owned(), variable.to_owned(), value.to_owned()));
    }
    let platform = Platform::processes_tuned(
        &backends,
        &Tuning {
            env,
            ..Tuning::default()
        },
    )
    .await
    .expect("every process starts");
    let jobs = JobQueue::connect(
        &QueueArgs::amqp(&backends.amqp_url).with_names(&queue, &exchange),
        runtime::test_logger("e2e"),
    )
    .await
    .expect("the platform's job queue");
    attack(&platform, &backends, &jobs, s3.root()).await;
    platform
        .stop(Duration::from_secs(20))
        .expect("every process exits 0 on SIGTERM");
    let _ = jobs.delete_topology().await;
    jobs.close().await;
}

async fn attack(platform: &Platform, backends: &Backends, jobs: &JobQueue, root: &std::path::Path) {
    let worker = platform
        .processes
        .iter()
        .find(|process| process.name == "worker")
        .expect("the worker process");
    let worker_url = &platform.services["worker"];
    let rss_at_start = worker.rss_bytes();
    let attacker = platform.sign_up("Bomber").await;
    let normal = platform.sign_up("Photographer").await;

    let bomb = bomb(20_000, 20_000, 800);
    let bombs: Vec<Payload> = (0..BOMBS)
        .map(|index| Payload {
            bytes: bomb.clone(),
            name: format!("bomb-{index}.png"),
            content_type: "image/png",
        })
        .collect();
    let heavy_bytes = heavy();
    let heavies: Vec<Payload> = (0..HEAVY)
        .map(|index| Payload {
            bytes: heavy_bytes.clone(),
            name: format!("heavy-{index}.png"),
            content_type: "image/png",
        })
        .collect();
    let photos: Vec<Payload> = (0..NORMAL)
        .map(|index| Payload {
            bytes: png(640 + 10 * index as u32, 480),
            name: format!("photo-{index}.png"),
            content_type: "image/png",
        })
        .collect();
    println!(
        "bomb: {} bytes declaring 20000×20000 RGBA; heavy: {} bytes, 3000×2000",
        bombs[0].bytes.len(),
        heavy_bytes.len()
    );

    // The attacker's uploads and the normal user's, at once.
    let started = Instant::now();
    let attacker_uploads = join_all(
        bombs
            .iter()
            .chain(&heavies)
            .map(|payload| upload(&platform.gateway, &attacker.access_token, payload)),
    );
    let normal_uploads = join_all(
        photos
            .iter()
            .map(|payload| upload(&platform.gateway, &normal.access_token, payload)),
    );
    let (attacker_answers, normal_answers) = tokio::join!(attacker_uploads, normal_uploads);
    println!(
        "{} uploads answered in {:?}",
        BOMBS + HEAVY + NORMAL,
        started.elapsed()
    );

    let mut normal_ids = Vec::new();
    for (status, body) in normal_answers {
        assert_eq!(status, 201, "the normal user's upload: {body}");
        normal_ids.push(body["file"]["id"].as_str().expect("an id").to_owned());
    }
    let (bomb_answers, heavy_answers) = attacker_answers.split_at(BOMBS);
    let mut heavy_ids = Vec::new();
    for (status, body) in heavy_answers {
        assert_eq!(*status, 201, "a heavy but legal upload: {body}");
        heavy_ids.push(body["file"]["id"].as_str().expect("an id").to_owned());
    }
    // Bombs media-service took go to the worker by their job; any it refused is put where
    // media-service would have put it, with its job, so the worker meets all of them.
    let mut bomb_ids = BTreeSet::new();
    let mut refused_by_media = 0;
    let store = s3_store(backends, root).await;
    for (index, (status, body)) in bomb_answers.iter().enumerate() {
        if *status == 201 {
            bomb_ids.insert(body["file"]["id"].as_str().expect("an id").to_owned());
            continue;
        }
        assert!(
            (400..500).contains(status) && body["error"]["code"].is_string(),
            "a bomb upload answered {status}: {body}"
        );
        refused_by_media += 1;
        let id = uuid::Uuid::new_v4().to_string();
        let key = format!("{id}/bomb-{index}.png");
        store
            .put(&key, bombs[index].bytes.clone().into(), "image/png")
            .await
            .expect("the bomb stored");
        jobs.enqueue("thumbnail", json!({"media_id": id, "key": key}), None)
            .await
            .expect("the bomb's job enqueued");
        bomb_ids.insert(id);
    }
    println!("bombs refused by media-service at the upload: {refused_by_media} of {BOMBS}");

    // Every bomb dead-lettered with the reason, once: listed by the worker's jobs API through
    // the gateway (RabbitMQ's dead queue is drained into the worker's database).
    let admin = platform.admin_token().await;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    let letters: Vec<Value> = loop {
        let answer = client
            .get(format!("{}/api/jobs/dead?limit=100", platform.gateway))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("GET /api/jobs/dead");
        let status = answer.status();
        let body: Value = answer.json().await.expect("JSON");
        assert_eq!(status, 200, "{body}");
        let page = body.as_array().expect("a page of dead letters").clone();
        if page.len() >= BOMBS {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {BOMBS} bombs dead-lettered",
            page.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut dead = BTreeSet::new();
    for letter in &letters {
        let reason = letter["last_error"].as_str().unwrap_or_default();
        assert!(
            reason.contains("20000×20000") && reason.contains("WORKER_MAX_IMAGE_PIXELS"),
            "{reason}"
        );
        assert_eq!(letter["attempts"], 1, "a bomb was retried: {letter}");
        dead.insert(
            letter["payload"]["media_id"]
                .as_str()
                .expect("a media id")
                .to_owned(),
        );
    }
    assert_eq!(letters.len(), BOMBS, "each bomb dead-lettered once");
    assert_eq!(dead, bomb_ids, "each bomb dead-lettered once");

    // Everyone else's images get their thumbnails: the normal user's, and the heavy ones,
    // which waited for their share of the budget.
    for (owner, ids) in [(&normal, &normal_ids), (&attacker, &heavy_ids)] {
        for id in ids {
            loop {
                if has_thumbnail(platform, &owner.access_token, id).await {
                    break;
                }
                assert!(Instant::now() < deadline, "no thumbnail for {id}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(
        e2e::metric(
            worker_url,
            "worker_jobs_retried_total",
            &[("kind", "thumbnail")]
        )
        .await,
        0.0
    );
    assert_eq!(
        e2e::metric(
            worker_url,
            "worker_jobs_dead_lettered_total",
            &[("kind", "thumbnail"), ("reason", "permanent")]
        )
        .await,
        BOMBS as f64
    );

    let peak = worker.peak_rss_bytes();
    println!(
        "worker: RSS at start {} MiB, peak (VmHWM) {} MiB, now {} MiB; {BOMBS} bombs \
         dead-lettered, {HEAVY} heavy and {NORMAL} normal thumbnails in {elapsed:?}",
        rss_at_start >> 20,
        peak >> 20,
        worker.rss_bytes() >> 20
    );
    assert!(
        peak < PEAK_RSS_BOUND,
        "the worker's peak RSS {} MiB is over {} MiB",
        peak >> 20,
        PEAK_RSS_BOUND >> 20
    );
}

/// The platform's S3 bucket, as media-service and the worker reach it.
async fn s3_store(backends: &Backends, root: &std::path::Path) -> ObjectStore {
    let mut args = StoreArgs::embedded(&root.join("spool"));
    args.media_store = StoreKind::S3;
    args.s3_endpoint = Some(backends.s3_endpoint.clone());
    args.s3_bucket = Some(backends.s3_bucket.clone());
    args.aws_access_key_id = Some(backends.s3_access_key.clone());
    args.aws_secret_access_key = Some(backends.s3_secret_key.clone());
    ObjectStore::connect(&args, runtime::test_logger("e2e"))
        .await
        .expect("the S3 store")
}

/// Deliveries of one job before the worker sets it aside (`WORKER_MAX_DELIVERIES`).
const MAX_DELIVERIES: usize = 3;

/// Worker log lines saying `message` of job `job_id`, across the worker's restarts.
fn worker_logged(platform: &Platform, message: &str, job_id: &str) -> usize {
    let worker = platform
        .processes
        .iter()
        .find(|process| process.name == "worker")
        .expect("the worker process");
    let lines = worker.stdout.lock().expect("the worker's log").clone();
    lines
        .iter()
        .filter(|line| line.contains(job_id))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["msg"] == message && line["job_id"] == job_id)
        .count()
}

/// What the normal user saw: the media ids uploaded, and every answer that was not a 2xx or a
/// thumbnail that did not come.
#[derive(Default)]
struct NormalUse {
    uploaded: Vec<String>,
    problems: Vec<String>,
}

/// Uploads a photo, waits for its thumbnail, and again, until `stop`; `thumbnails` counts the
/// thumbnails seen.
async fn upload_photos_and_wait_for_thumbnails(
    gateway: String,
    token: String,
    stop: Arc<AtomicBool>,
    thumbnails: Arc<AtomicUsize>,
) -> NormalUse {
    let client = reqwest::Client::new();
    let mut seen = NormalUse::default();
    let mut index = 0_u32;
    while !stop.load(Ordering::SeqCst) {
        let payload = Payload {
            bytes: png(320 + index % 50, 240),
            name: format!("photo-{index}.png"),
            content_type: "image/png",
        };
        index += 1;
        let (status, body) = upload(&gateway, &token, &payload).await;
        if status != 201 {
            seen.problems
                .push(format!("upload {}: {status} {body}", payload.name));
            continue;
        }
        let id = body["file"]["id"].as_str().expect("an id").to_owned();
        seen.uploaded.push(id.clone());
        let deadline = Instant::now() + PATIENCE;
        loop {
            let answer = client
                .get(format!("{gateway}/api/media/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("GET");
            let status = answer.status().as_u16();
            let metadata: Value = answer.json().await.unwrap_or(Value::Null);
            if status != 200 {
                seen.problems
                    .push(format!("GET /api/media/{id}: {status} {metadata}"));
                break;
            }
            if metadata["thumbnail_url"].is_string() {
                thumbnails.fetch_add(1, Ordering::SeqCst);
                break;
            }
            if Instant::now() > deadline {
                seen.problems
                    .push(format!("no thumbnail for {id} within {PATIENCE:?}"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    seen
}

#[tokio::test]
async fn a_job_that_kills_the_worker_each_time_is_dead_lettered_while_normal_images_get_thumbnails()
{
    testing::skip_unless!(Postgres, Redis, RabbitMq, S3sFs);
    let s3 = S3::start().await;
    let backends = s3.backends.clone();
    let queue = format!("e2e-poison-{}", uuid::Uuid::new_v4().simple());
    let exchange = format!("{queue}.events");
    let mut env = Vec::new();
    for process in ["media", "worker"] {
        env.push((process.to_owned(), "QUEUE_NAME".to_owned(), queue.clone()));
        env.push((
            process.to_owned(),
            "EVENTS_EXCHANGE".to_owned(),
            exchange.clone(),
        ));
    }
    // One delivery at a time: while the poison runs it is the worker's only unsettled delivery,
    // so each kill hands back the poison alone (no normal job gains a delivery), and its
    // redelivered message is acked before its recounted copy can be delivered.
    for (variable, value) in [
        ("WORKER_PREFETCH", "1".to_owned()),
        ("WORKER_CONCURRENCY", "1".to_owned()),
        ("WORKER_MAX_DELIVERIES", MAX_DELIVERIES.to_string()),
    ] {
        env.push(("worker".to_owned(), variable.to_owned(), value));
    }
    let mut platform = Platform::processes_tuned(
        &backends,
        &Tuning {
            env,
            ..Tuning::default()
        },
    )
    .await
    .expect("every process starts");
    let jobs = JobQueue::connect(
        &QueueArgs::amqp(&backends.amqp_url).with_names(&queue, &exchange),
        runtime::test_logger("e2e"),
    )
    .await
    .expect("the platform's job queue");

    // The normal user, uploading from before the first crash until after the last.
    let normal = platform.sign_up("Photographer").await;
    let stop = Arc::new(AtomicBool::new(false));
    let thumbnails = Arc::new(AtomicUsize::new(0));
    let normal_use = tokio::spawn(upload_photos_and_wait_for_thumbnails(
        platform.gateway.clone(),
        normal.access_token.clone(),
        stop.clone(),
        thumbnails.clone(),
    ));
    testing::eventually("the normal user's first thumbnail", PATIENCE, || {
        let thumbnails = thumbnails.clone();
        async move { thumbnails.load(Ordering::SeqCst) >= 1 }
    })
    .await;

    // The poison: a task of a minute, killed with its worker each time it runs.
    let request_id = format!("req-poison-{}", uuid::Uuid::new_v4().simple());
    let poison = jobs
        .enqueue(
            "task",
            json!({"task": "takes its worker down", "duration_ms": 60_000}),
            Some(&request_id),
        )
        .await
        .expect("the poison enqueued")
        .to_string();
    for delivery in 1..=MAX_DELIVERIES {
        testing::eventually(
            &format!("the poison running, delivery {delivery}"),
            Duration::from_secs(60),
            || {
                let runs = worker_logged(&platform, "task received", &poison);
                async move { runs >= delivery }
            },
        )
        .await;
        assert_eq!(
            worker_logged(&platform, "task received", &poison),
            delivery,
            "the poison runs once per delivery"
        );
        platform.process("worker").restart();
    }

    // The next delivery sets it aside unrun, with the reason; RabbitMQ's dead queue is drained
    // into the worker's database, listed through the gateway.
    let admin = platform.admin_token().await;
    let client = reqwest::Client::new();
    let dead_letters = || async {
        let answer = client
            .get(format!("{}/api/jobs/dead?limit=100", platform.gateway))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("GET /api/jobs/dead");
        // 502 while the restarted worker is not listening yet.
        if answer.status() != 200 {
            return Vec::new();
        }
        let page: Value = answer.json().await.expect("JSON");
        page.as_array().expect("a page of dead letters").clone()
    };
    testing::eventually("the poison dead-lettered", PATIENCE, || async {
        !dead_letters().await.is_empty()
    })
    .await;
    let thumbnails_by_then = thumbnails.load(Ordering::SeqCst);
    // The queue goes on: the normal user gets another thumbnail after the poison was set aside.
    testing::eventually("a thumbnail after the dead letter", PATIENCE, || {
        let thumbnails = thumbnails.clone();
        async move { thumbnails.load(Ordering::SeqCst) > thumbnails_by_then }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let normal_use = normal_use.await.expect("the normal user's uploads");

    let letters = dead_letters().await;
    assert_eq!(
        letters.len(),
        1,
        "only the poison dead-lettered: {letters:?}"
    );
    let letter = &letters[0];
    assert_eq!(letter["job_id"], poison.as_str(), "{letter}");
    assert_eq!(letter["kind"], "task", "{letter}");
    assert_eq!(letter["request_id"], request_id.as_str(), "{letter}");
    let reason = letter["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("delivered {MAX_DELIVERIES} times"))
            && reason.contains("WORKER_MAX_DELIVERIES"),
        "{reason}"
    );
    assert_eq!(
        e2e::metric(
            &platform.services["worker"],
            "worker_jobs_dead_lettered_total",
            &[("kind", "task"), ("reason", "redelivered")]
        )
        .await,
        1.0
    );
    // Never run again: nothing of it is left in the queue (every normal job done too, none
    // waiting), it ran once per delivery it was killed in, and it never completed.
    testing::eventually("the job queue empty", Duration::from_secs(30), || async {
        jobs.depth().await.expect("the queue's depth").ready == 0
    })
    .await;
    assert_eq!(
        worker_logged(&platform, "task received", &poison),
        MAX_DELIVERIES,
        "the poison ran again"
    );
    assert_eq!(worker_logged(&platform, "task processed", &poison), 0);

    assert!(
        normal_use.problems.is_empty(),
        "the normal user, alongside: {}",
        normal_use.problems.join("\n")
    );
    println!(
        "poison dead-lettered after {MAX_DELIVERIES} deliveries; the normal user uploaded {} \
         photos meanwhile, each with its thumbnail",
        normal_use.uploaded.len()
    );
    platform
        .stop(Duration::from_secs(20))
        .expect("every process exits 0 on SIGTERM");
    let _ = jobs.delete_topology().await;
    jobs.close().await;
}
