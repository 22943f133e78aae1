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
