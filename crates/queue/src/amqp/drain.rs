//! The drain of `<queue>.dead` into the dead letters' table ([`crate::DeadLetters`]): a
//! consumer on a connection of its own acknowledges each dead letter only once its row is
//! committed; a row that cannot be written sends its message back to the queue, and the drain
//! waits before the next. A message whose row fails [`DEGRADE_AFTER`] times is stored degraded
//! (its body and job id kept, its headers dropped, the error saying so), so one message the
//! table cannot take never stops the drain; a degraded store that fails too (the database is
//! down) leaves it in the broker.

use std::{collections::HashMap, time::Duration};

use futures_util::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions},
    types::FieldTable,
};

use super::{
    AmqpQueue, DELIVERIES_HEADER, ERROR_HEADER, FAILED_AT_HEADER, FIRST_FAILURE_HEADER,
    REQUEST_ID_HEADER, close_quietly, header, reconnect_backoff,
};
use crate::dead::{DeadLetters, NewDeadLetter, storable};

/// Dead letters received before any is stored.
const DRAIN_PREFETCH: u16 = 50;
/// The pause after a row could not be written (the database is likely down).
const STORE_RETRY: Duration = Duration::from_secs(1);
/// Failed stores of one dead letter after which it is stored degraded (its body, its job id,
/// an error saying so): a message the table cannot take as it is blocks the queue no longer.
const DEGRADE_AFTER: u32 = 3;
/// The most dead letters whose failed stores are counted at once (the counts are forgotten
/// past it: a database that is down fails every message, and none is degraded for it).
const MAX_TRACKED: usize = 1000;

/// A dead letter's error for a note, bounded.
fn error_text(error: Option<&str>) -> String {
    error.map_or_else(|| "none".to_owned(), |error| storable(error, 1024))
}

impl AmqpQueue {
    /// Drains `<queue>.dead` into `store` until the future is dropped, reconnecting with
    /// backoff.
    pub(crate) async fn drain_dead_letters(&self, store: &DeadLetters) {
        let mut delays = reconnect_backoff();
        loop {
            match self.drain_session(store).await {
                Ok(()) => slog::warn!(
                    self.inner.logger,
                    "the dead-letter drain was cancelled by the broker; resuming"
                ),
                Err(error) => slog::warn!(self.inner.logger,
                    "the dead-letter drain lost RabbitMQ; reconnecting";
                    "error" => error.to_string()),
            }
            tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
        }
    }

    /// One connection's drain: until the broker cancels the consumer or the connection fails.
    async fn drain_session(&self, store: &DeadLetters) -> Result<(), lapin::Error> {
        let (connection, channel) = self.open().await?;
        let drained = async {
            channel
                .basic_qos(DRAIN_PREFETCH, BasicQosOptions::default())
                .await?;
            let mut consumer = channel
                .basic_consume(
                    self.inner.dead.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            slog::info!(self.inner.logger, "draining dead letters"; "queue" => &self.inner.dead);
            // Failed stores per job id, to store a degraded row instead of blocking the queue.
            let mut failed: HashMap<String, u32> = HashMap::new();
            while let Some(delivery) = consumer.next().await {
                let delivery = delivery?;
                let properties = &delivery.properties;
                let message_id = properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.as_str().to_owned())
                    .unwrap_or_default();
                let request_id = header(properties, REQUEST_ID_HEADER);
                let error = header(properties, ERROR_HEADER);
                let first_failure = header(properties, FIRST_FAILURE_HEADER);
                let letter = NewDeadLetter {
                    message_id: &message_id,
                    request_id: request_id.as_deref(),
                    body: &delivery.data,
                    error: error.as_deref(),
                    deliveries: header(properties, DELIVERIES_HEADER)
                        .and_then(|count| count.parse().ok())
                        .unwrap_or(0),
                    first_failed_at: first_failure.as_deref(),
                    failed_at: header(properties, FAILED_AT_HEADER).or_else(|| {
                        properties
                            .timestamp()
                            .and_then(|seconds| i64::try_from(seconds).ok())
                            .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
                            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    }),
                };
                let stored = match store.store(&letter).await {
                    Ok(()) => Ok(()),
                    Err(error) => {
                        let failures = failed.entry(message_id.clone()).or_insert(0);
                        *failures += 1;
                        if *failures < DEGRADE_AFTER {
                            Err(error)
                        } else {
                            // Stored as far as it goes: the body and the job id, the error
                            // saying why the rest is missing.
                            let note = format!(
                                "stored without its headers (the dead letter's own could not \
                                 be stored: {error}); its last error: {}",
                                error_text(letter.error)
                            );
                            let degraded = NewDeadLetter {
                                message_id: &message_id,
                                request_id: None,
                                body: &delivery.data,
                                error: Some(&note),
                                deliveries: letter.deliveries,
                                first_failed_at: None,
                                failed_at: None,
                            };
                            store.store(&degraded).await.inspect(|()| {
                                slog::warn!(self.inner.logger,
                                    "a dead letter was stored without its headers";
                                    "message_id" => &message_id, "error" => error.to_string());
                            })
                        }
                    }
                };
                match stored {
                    Ok(()) => {
                        failed.remove(&message_id);
                        delivery.acker.ack(BasicAckOptions::default()).await?;
                    }
                    Err(error) => {
                        slog::warn!(self.inner.logger,
                            "storing a dead letter failed: it stays in the broker";
                            "message_id" => &message_id, "error" => error.to_string());
                        if failed.len() > MAX_TRACKED {
                            failed.clear();
                        }
                        delivery
                            .acker
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..BasicNackOptions::default()
                            })
                            .await?;
                        tokio::time::sleep(STORE_RETRY).await;
                    }
                }
            }
            Ok(())
        }
        .await;
        close_quietly(connection.close(200, "closing".into())).await;
        drained
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use slog::{Drain, Logger};

    use crate::{ConsumeOptions, DeadLetterRow, DeadLetters, JobQueue, PageRequest, PageStart};

    /// A logger keeping every message, to wait for one.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<String>>>);

    impl Drain for Captured {
        type Ok = ();
        type Err = slog::Never;

        fn log(&self, record: &slog::Record, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(record.msg().to_string());
            Ok(())
        }
    }

    impl Captured {
        fn logged(&self, message: &str) -> bool {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .any(|logged| logged == message)
        }
    }

    /// A RabbitMQ queue of its own, its dead letters in a scratch SQLite file, the scratch
    /// directory.
    async fn fresh(logs: &Captured) -> (JobQueue, DeadLetters, std::path::PathBuf) {
        fresh_on(logs, testing::TestBackend::Sqlite).await
    }

    /// A RabbitMQ queue of its own, its dead letters in a fresh database of `backend`, the
    /// scratch directory.
    async fn fresh_on(
        logs: &Captured,
        backend: testing::TestBackend,
    ) -> (JobQueue, DeadLetters, std::path::PathBuf) {
        let (name, args) = crate::amqp::tests::own_queue();
        let queue = JobQueue::connect(&args, Logger::root(logs.clone().fuse(), slog::o!()))
            .await
            .expect("connected");
        let dir = std::env::temp_dir().join(format!("platform-drain-{name}"));
        let url = match backend {
            testing::TestBackend::Sqlite => {
                runtime::DatabaseUrl(format!("sqlite://{}/worker.db", dir.display()))
            }
            testing::TestBackend::Postgres => testing::fresh_database(backend)
                .await
                .expect("a PostgreSQL database"),
        };
        let dead = queue
            .dead_letters(&url)
            .await
            .expect("the dead letters' table");
        (queue, dead, dir)
    }

    /// Drains the dead letters until dropped.
    fn drain(dead: &DeadLetters) -> tokio::task::JoinHandle<()> {
        let dead = dead.clone();
        tokio::spawn(async move { dead.drain().await })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replays_racing_over_one_row_publish_its_job_once() {
        testing::skip_unless!(RabbitMq);
        let logs = Captured::default();
        let (queue, dead, dir) = fresh(&logs).await;
        for n in 0..5 {
            queue
                .enqueue("task", serde_json::json!({ "n": n }), None)
                .await
                .expect("enqueued");
            kill_next(&queue, "dead").await;
        }
        let drained = drain(&dead);
        testing::eventually("five rows", Duration::from_secs(10), || async {
            rows(&dead).await.len() == 5
        })
        .await;
        drained.abort();
        let ids: Vec<i64> = rows(&dead).await.iter().map(|row| row.id).collect();
        let one_by_one = |dead: DeadLetters, ids: Vec<i64>| async move {
            let mut replayed = 0;
            for id in ids {
                replayed += dead.replay(&[id]).await.expect("replayed").len();
            }
            replayed
        };
        let (first, second, all) = tokio::join!(
            one_by_one(dead.clone(), ids.clone()),
            one_by_one(dead.clone(), ids.clone()),
            dead.replay_all(None, None, 1000),
        );
        assert_eq!(first + second + all.expect("replayed").done as usize, 5);
        assert_eq!(
            queue.depth().await.expect("depth").ready,
            5,
            "each job published once"
        );
        queue.delete_topology().await.expect("deleted");
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nul_in_the_last_error_is_stored_without_it() {
        testing::skip_unless!(RabbitMq);
        testing::skip_unless!(Postgres);
        let logs = Captured::default();
        let (queue, dead, dir) = fresh_on(&logs, testing::TestBackend::Postgres).await;
        let id = queue
            .enqueue("task", serde_json::json!({}), Some("req-nul"))
            .await
            .expect("enqueued");
        kill_next(&queue, "bad\0error").await;
        let drained = drain(&dead);
        testing::eventually(
            "the dead letter stored",
            Duration::from_secs(10),
            || async {
                rows(&dead).await.len() == 1 && queue.depth().await.expect("depth").dead == 0
            },
        )
        .await;
        let row = rows(&dead).await.remove(0);
        assert_eq!(row.job_id, id.to_string());
        assert_eq!(row.last_error.as_deref(), Some("baderror"));
        assert_eq!(row.request_id.as_deref(), Some("req-nul"));
        drained.abort();
        queue.delete_topology().await.expect("deleted");
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_letter_the_table_refuses_is_stored_degraded_and_the_drain_goes_on() {
        testing::skip_unless!(RabbitMq);
        testing::skip_unless!(Postgres);
        let logs = Captured::default();
        let (queue, dead, dir) = fresh_on(&logs, testing::TestBackend::Postgres).await;
        // The table takes no request id: a dead letter with one cannot be stored as it is.
        sqlx::query(
            "ALTER TABLE queue_dead_letters ADD CONSTRAINT no_request CHECK (request_id IS NULL)",
        )
        .execute(dead.database.pool())
        .await
        .expect("constrained");
        let refused = queue
            .enqueue("task", serde_json::json!({}), Some("req-refused"))
            .await
            .expect("enqueued");
        kill_next(&queue, "first").await;
        let taken = queue
            .enqueue("task", serde_json::json!({}), None)
            .await
            .expect("enqueued");
        kill_next(&queue, "second").await;
        let drained = drain(&dead);
        testing::eventually("both stored", Duration::from_secs(20), || async {
            rows(&dead).await.len() == 2 && queue.depth().await.expect("depth").dead == 0
        })
        .await;
        let stored = rows(&dead).await;
        let row = |id: uuid::Uuid| {
            stored
                .iter()
                .find(|row| row.job_id == id.to_string())
                .unwrap_or_else(|| panic!("{id} in {stored:?}"))
        };
        let degraded = row(refused);
        assert_eq!(degraded.request_id, None);
        assert_eq!(degraded.kind.as_deref(), Some("task"), "its body kept");
        let error = degraded.last_error.as_deref().expect("an error");
        assert!(
            error.starts_with("stored without its headers") && error.ends_with("first"),
            "{error}"
        );
        assert_eq!(row(taken).last_error.as_deref(), Some("second"));
        assert!(logs.logged("a dead letter was stored without its headers"));
        drained.abort();
        queue.delete_topology().await.expect("deleted");
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Dead-letters the next job of `queue` with `error`.
    async fn kill_next(queue: &JobQueue, error: &str) {
        let mut consumer = queue
            .consume(ConsumeOptions::default())
            .await
            .expect("a consumer");
        let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
            .await
            .expect("a delivery within 5 s")
            .expect("a delivery");
        delivery.dead_letter(error).await.expect("dead-lettered");
        consumer.stop().await;
        consumer.close().await;
    }

    async fn rows(dead: &DeadLetters) -> Vec<DeadLetterRow> {
        dead.list(PageRequest {
            kind: None,
            start: PageStart::First,
            limit: 100,
        })
        .await
        .expect("listed")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_copies_of_a_dead_job_are_drained_into_one_row_with_its_fields() {
        testing::skip_unless!(RabbitMq);
        let logs = Captured::default();
        let (queue, dead, dir) = fresh(&logs).await;
        let envelope = crate::Envelope::new("task", serde_json::json!({"n": 1}), Some("req-d"));
        for error in ["first death", "second death"] {
            queue.publish(&envelope).await.expect("published");
            kill_next(&queue, error).await;
        }
        let drain = tokio::spawn({
            let dead = dead.clone();
            async move { dead.drain().await }
        });
        testing::eventually("both copies drained", Duration::from_secs(10), || async {
            queue.depth().await.expect("depth").dead == 0
                && rows(&dead)
                    .await
                    .first()
                    .and_then(|row| row.last_error.clone())
                    == Some("second death".to_owned())
        })
        .await;
        let stored = rows(&dead).await;
        assert_eq!(stored.len(), 1, "one row per job: {stored:?}");
        let row = &stored[0];
        assert_eq!(row.job_id, envelope.id.to_string());
        assert_eq!(row.kind.as_deref(), Some("task"));
        assert_eq!((row.attempts, row.deliveries), (1, 1));
        assert_eq!(row.request_id.as_deref(), Some("req-d"));
        assert!(row.first_failed_at <= row.last_failed_at, "{row:?}");
        drain.abort();
        queue.delete_topology().await.expect("deleted");
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_letter_the_table_cannot_take_stays_in_the_broker_until_it_can() {
        testing::skip_unless!(RabbitMq);
        let logs = Captured::default();
        let (queue, dead, dir) = fresh(&logs).await;
        sqlx::query("ALTER TABLE queue_dead_letters RENAME TO queue_dead_letters_away")
            .execute(dead.database.pool())
            .await
            .expect("the table moved away");
        let id = queue
            .enqueue("task", serde_json::json!({}), None)
            .await
            .expect("enqueued");
        kill_next(&queue, "dead").await;
        let drain = tokio::spawn({
            let dead = dead.clone();
            async move { dead.drain().await }
        });
        testing::eventually("a store failed", Duration::from_secs(10), || async {
            logs.logged("storing a dead letter failed: it stays in the broker")
        })
        .await;
        sqlx::query("ALTER TABLE queue_dead_letters_away RENAME TO queue_dead_letters")
            .execute(dead.database.pool())
            .await
            .expect("the table back");
        testing::eventually(
            "the dead letter stored",
            Duration::from_secs(10),
            || async {
                rows(&dead).await.len() == 1 && queue.depth().await.expect("depth").dead == 0
            },
        )
        .await;
        assert_eq!(rows(&dead).await[0].job_id, id.to_string());
        drain.abort();
        queue.delete_topology().await.expect("deleted");
        queue.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
