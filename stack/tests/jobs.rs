//! The jobs API through the stack's gateway: `/api/jobs` reaches the worker, anonymous callers
//! are stopped at the gateway (401), signed-in users are refused by the worker (403), and an
//! admin sees the queue's figures, lists a dead letter, replays it and deletes it.

use std::time::Duration;

use runtime::{Shutdown, test_logger};
use serde_json::{Value, json};
use stack::{Stack, StackSettings};

/// Waits until `condition` holds (20 s at most).
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(std::time::Instant::now() < deadline, "{what} within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_admin_manages_dead_letters_through_the_gateway() {
    let data_dir = std::env::temp_dir().join(format!("platform-stack-jobs-{}", uuid_like()));
    let mut settings = StackSettings::new([127, 0, 0, 1].into());
    settings.port_override = Some(0);
    settings.data_dir = data_dir.clone();
    let stack = Stack::build(settings, &test_logger("stack"))
        .await
        .expect("the stack builds");
    let gateway = stack
        .endpoints("127.0.0.1")
        .into_iter()
        .find(|endpoint| endpoint.service == "gateway")
        .expect("the gateway")
        .url;
    let shutdown = Shutdown::new();
    let task = tokio::spawn(stack.run_until_stopped(shutdown.wait()));
    let client = reqwest::Client::new();

    let text = std::fs::read_to_string(data_dir.join(stack::ADMIN_CREDENTIALS_FILE))
        .expect("the generated admin");
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .expect("a field")
            .to_owned()
    };
    let token = |session: Value| {
        session["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    };
    let admin = token(
        client
            .post(format!("{gateway}/api/auth/login"))
            .json(&json!({"email": field("email"), "password": field("password")}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("a session"),
    );
    let user = token(
        client
            .post(format!("{gateway}/api/auth/signup"))
            .json(&json!({"name": "Jobless", "email": "jobless@example.com",
                          "password": "correct horse battery staple"}))
            .send()
            .await
            .expect("signup")
            .json()
            .await
            .expect("a session"),
    );
    let stats = format!("{gateway}/api/jobs/stats");
    let anonymous = client.get(&stats).send().await.expect("GET");
    assert_eq!(anonymous.status(), 401);
    let refused = client
        .get(&stats)
        .bearer_auth(&user)
        .send()
        .await
        .expect("GET");
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.expect("JSON")["error"]["code"],
        "forbidden"
    );
    let figures: Value = client
        .get(&stats)
        .bearer_auth(&admin)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(figures["queues"][0]["queue"], "tasks_queue", "{figures}");
    assert_eq!(figures["queues"][0]["backend"], "embedded", "{figures}");

    // A job of no known kind, on the stack's queue: dead at once.
    let queue = queue::JobQueue::connect(
        &queue::QueueArgs::embedded(&data_dir),
        test_logger("producer"),
    )
    .await
    .expect("the stack's queue");
    let job = queue
        .enqueue("no_such_kind", json!({}), Some("req-stack-jobs"))
        .await
        .expect("enqueued");
    let dead_url = format!("{gateway}/api/jobs/dead");
    let list = || async {
        client
            .get(&dead_url)
            .bearer_auth(&admin)
            .send()
            .await
            .expect("GET")
            .json::<Vec<Value>>()
            .await
            .expect("JSON")
    };
    eventually("the dead letter listed", || async {
        list().await.len() == 1
    })
    .await;
    let row = list().await.remove(0);
    assert_eq!(row["job_id"], job.to_string());
    assert_eq!(row["kind"], "no_such_kind");
    assert_eq!(row["request_id"], "req-stack-jobs");
    let id = row["id"].as_i64().expect("an id");
    let replayed = client
        .post(format!("{dead_url}/{id}/replay"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("POST");
    assert_eq!(replayed.status(), 200);
    // Still of no known kind: dead again (one row for the job, failed later), then deleted.
    let failed = row["last_failed_at"].as_str().expect("a time").to_owned();
    eventually("dead again", || async {
        list().await.first().is_some_and(|again| {
            again["job_id"] == job.to_string()
                && again["last_failed_at"]
                    .as_str()
                    .is_some_and(|at| at > failed.as_str())
        })
    })
    .await;
    let deleted: Value = client
        .post(format!("{dead_url}/delete"))
        .bearer_auth(&admin)
        .json(&json!({"all": true}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(deleted["deleted"], 1, "{deleted}");
    assert_eq!(deleted["remaining"], 0, "{deleted}");
    assert!(list().await.is_empty());

    queue.close().await;
    shutdown.trigger();
    task.await
        .expect("joined")
        .expect("the stack stops cleanly");
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// A name unique to this run.
fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos())
    )
}
