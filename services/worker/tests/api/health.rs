//! `/healthz`, `/readyz` (the queue, the store, the database) and `/metrics` on the worker's port.

use queue::QueueArgs;
use testing::error_code;

use crate::{
    helpers::{Broker, TestBroker, quick, spawn_worker, spawn_worker_with, worker_settings},
    on_every_broker,
};

on_every_broker!(the_worker_is_ready_when_its_queue_answers);

async fn the_worker_is_ready_when_its_queue_answers(kind: Broker) {
    let broker = TestBroker::new(kind).await;
    let worker = spawn_worker(&broker, quick()).await;
    let response = worker.service.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["checks"]["queue"], "ok");
    assert_eq!(body["checks"]["store"], "ok");
    let metrics = worker.service.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    assert!(text.contains("worker_jobs_in_flight"), "{text}");
    assert_eq!(worker.service.get("/api/anything").await.status(), 404);
    worker.stop().await;
    broker.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_naming_the_queue_while_the_broker_is_unreachable() {
    testing::skip_unless!(RabbitMq);
    let broker = TestBroker::new(Broker::RabbitMq).await;
    let mut settings = worker_settings(&broker, quick());
    settings.queue = QueueArgs {
        amqp_url: Some("amqp://guest:guest@127.0.0.1:1/%2f".to_owned()),
        ..broker.args.clone()
    };
    // The worker starts anyway (the broker may come back) and says it is not ready.
    let worker = spawn_worker_with(settings, &broker).await;
    assert_eq!(worker.service.get("/healthz").await.status(), 200);
    let response = worker.service.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("queue")),
        "{text}"
    );
    assert_eq!(body["error"]["details"][0]["field"], "queue");
    let response = worker.service.get("/readyz").await;
    assert_eq!(error_code(response).await, "unavailable");
    worker.stop().await;
    broker.cleanup().await;
}
