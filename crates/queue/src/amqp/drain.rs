//! The drain of `<queue>.dead` into the dead letters' table ([`crate::DeadLetters`]): a
//! consumer on a connection of its own acknowledges each dead letter only once its row is
//! committed; a row that cannot be written sends its message back to the queue, and the drain
//! waits before the next.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions},
    types::FieldTable,
};

use super::{
    AmqpQueue, DELIVERIES_HEADER, ERROR_HEADER, FAILED_AT_HEADER, FIRST_FAILURE_HEADER,
    REQUEST_ID_HEADER, close_quietly, header, reconnect_backoff,
};
use crate::dead::{DeadLetters, NewDeadLetter};

/// Dead letters received before any is stored.
const DRAIN_PREFETCH: u16 = 50;
/// The pause after a row could not be written (the database is likely down).
const STORE_RETRY: Duration = Duration::from_secs(1);

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
                match store.store(&letter).await {
                    Ok(()) => {
                        delivery.acker.ack(BasicAckOptions::default()).await?;
                    }
                    Err(error) => {
                        slog::warn!(self.inner.logger,
                            "storing a dead letter failed: it stays in the broker";
                            "message_id" => &message_id, "error" => error.to_string());
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

    use crate::{ConsumeOptions, DeadLetterRow, DeadLetters, JobQueue, PageClause, QueueArgs};

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
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let args =
            QueueArgs::amqp(&testing::amqp_url()).with_names(&name, &format!("{name}.events"));
        let queue = JobQueue::connect(&args, Logger::root(logs.clone().fuse(), slog::o!()))
            .await
            .expect("connected");
        let dir = std::env::temp_dir().join(format!("platform-drain-{name}"));
        let dead = queue
            .dead_letters(&runtime::DatabaseUrl(format!(
                "sqlite://{}/worker.db",
                dir.display()
            )))
            .await
            .expect("the dead letters' table");
        (queue, dead, dir)
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
        dead.list(
            None,
            PageClause {
                condition: None,
                tail: "ORDER BY seq ASC LIMIT $2",
                binds: &[100],
            },
        )
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
