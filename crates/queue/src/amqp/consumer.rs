//! RabbitMQ's consumer: [`AmqpConsumer`] on a connection of its own (reconnecting forever), the
//! handles of its deliveries ([`AmqpHandle`]), and the settler that batches their acks.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::{
    Channel, Connection,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    },
    types::FieldTable,
};
use slog::Logger;
use tokio::sync::mpsc;

use super::{
    AmqpQueue, DELIVERIES_HEADER, ERROR_HEADER, FAILED_AT_HEADER, FIRST_FAILURE_HEADER,
    REQUEST_ID_HEADER, TRACEPARENT_HEADER, close_quietly, delivered_before, header, properties,
    reconnect_backoff, truncate,
};
use crate::{ConsumeOptions, Delivery, DeliveryHandle, EnqueueError, Envelope, QueueError};

/// The connection, channel and lapin consumer of an [`AmqpConsumer`].
struct Session {
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
    /// To this session's settler (see [`settle_deliveries`]).
    settle: mpsc::UnboundedSender<Settle>,
    /// The settler: flushed before the channel closes.
    settler: tokio::task::JoinHandle<()>,
}

/// Deliveries from RabbitMQ, on a connection of their own.
pub(crate) struct AmqpConsumer {
    /// The queue consumed, and the publisher of recounted copies.
    queue: AmqpQueue,
    /// Prefetch.
    options: ConsumeOptions,
    /// The live connection, when there is one.
    session: Option<Session>,
    /// No more reconnections once stopped.
    stopped: bool,
}

impl AmqpConsumer {
    /// A consumer not connected yet.
    pub(super) fn new(queue: AmqpQueue, options: ConsumeOptions) -> Self {
        Self {
            queue,
            options,
            session: None,
            stopped: false,
        }
    }

    pub(super) async fn start(&mut self) -> Result<(), lapin::Error> {
        let (connection, channel) = self.queue.open().await?;
        channel
            .basic_qos(self.options.prefetch.max(1), BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                self.queue.inner.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        slog::info!(self.queue.inner.logger, "consuming";
            "queue" => &self.queue.inner.queue, "prefetch" => self.options.prefetch);
        let (settle, settlements) = mpsc::unbounded_channel();
        let settler = tokio::spawn(settle_deliveries(
            settlements,
            self.queue.inner.logger.clone(),
        ));
        self.session = Some(Session {
            connection,
            channel,
            consumer,
            settle,
            settler,
        });
        Ok(())
    }

    /// The next delivery; reconnects (with backoff, forever) when the connection drops.
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        let mut delays = reconnect_backoff();
        loop {
            if self.session.is_none() {
                if self.stopped {
                    return None;
                }
                if let Err(error) = self.start().await {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    slog::warn!(self.queue.inner.logger, "consumer reconnect failed";
                        "error" => error.to_string(), "delay_ms" => delay.as_millis());
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            let session = self.session.as_mut()?;
            match session.consumer.next().await {
                Some(Ok(delivery)) => {
                    let settle = session.settle.clone();
                    if delivery.redelivered {
                        self.recount(delivery, settle).await;
                        continue;
                    }
                    return Some(self.wrap(delivery, settle));
                }
                Some(Err(error)) => {
                    slog::warn!(self.queue.inner.logger, "consumer connection failed";
                        "error" => error.to_string());
                    self.drop_session().await;
                }
                None => {
                    if self.stopped {
                        return None;
                    }
                    slog::warn!(self.queue.inner.logger, "consumer cancelled by the broker");
                    self.drop_session().await;
                }
            }
        }
    }

    /// A redelivered message (its consumer died or handed it back unsettled): publishes a copy
    /// carrying its delivery count to the job queue, then acks it, so the count is durable
    /// before the job is handed out again (the crate documentation). When the
    /// copy cannot be published, the message goes back to the queue as it is.
    async fn recount(
        &self,
        delivery: lapin::message::Delivery,
        settle: mpsc::UnboundedSender<Settle>,
    ) {
        let tag = delivery.delivery_tag;
        let _ = settle.send(Settle::Delivered(tag, delivery.acker));
        let handed_out = delivered_before(&delivery.properties).saturating_add(1);
        let count = handed_out.to_string();
        let mut extra = vec![(DELIVERIES_HEADER, count.as_str())];
        let last_error = header(&delivery.properties, ERROR_HEADER);
        if let Some(error) = last_error.as_deref() {
            extra.push((ERROR_HEADER, error));
        }
        let first_failure = header(&delivery.properties, FIRST_FAILURE_HEADER);
        if let Some(first_failure) = first_failure.as_deref() {
            extra.push((FIRST_FAILURE_HEADER, first_failure));
        }
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default();
        let request_id = header(&delivery.properties, REQUEST_ID_HEADER);
        let traceparent = header(&delivery.properties, TRACEPARENT_HEADER);
        if let Some(traceparent) = traceparent.as_deref() {
            extra.push((TRACEPARENT_HEADER, traceparent));
        }
        let copy = properties(&message_id, request_id.as_deref(), &extra);
        let settlement = match self
            .queue
            .publish_to(&self.queue.inner.queue, &delivery.data, copy)
            .await
        {
            Ok(()) => Settle::Ack(tag),
            Err(error) => {
                slog::warn!(self.queue.inner.logger,
                    "recounting a redelivered message failed: it goes back as it is";
                    "message_id" => &message_id, "error" => error.to_string());
                Settle::Requeue(tag)
            }
        };
        let _ = settle.send(settlement);
    }

    fn wrap(
        &self,
        delivery: lapin::message::Delivery,
        settle: mpsc::UnboundedSender<Settle>,
    ) -> Delivery {
        let tag = delivery.delivery_tag;
        // Registered before the handle exists, so the settler knows it before its settlement.
        let _ = settle.send(Settle::Delivered(tag, delivery.acker));
        let properties = &delivery.properties;
        let deliveries = delivered_before(properties).saturating_add(1);
        Delivery {
            deliveries,
            message_id: properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str().to_owned()),
            request_id: header(properties, REQUEST_ID_HEADER),
            handle: DeliveryHandle::Amqp(AmqpHandle {
                tag,
                settle,
                queue: self.queue.clone(),
                first_failure: header(properties, FIRST_FAILURE_HEADER),
            }),
            body: delivery.data,
        }
    }

    async fn drop_session(&mut self) {
        if let Some(session) = self.session.take() {
            // Its unsettled deliveries come back from the broker when the connection closes.
            drop(session.settle);
            close_quietly(session.connection.close(320, "reconnecting".into())).await;
        }
    }

    /// Cancels the consumer; the deliveries received but not handed out go back at once.
    pub(crate) async fn stop(&mut self) {
        self.stopped = true;
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let tag = session.consumer.tag();
        if let Err(error) = session
            .channel
            .basic_cancel(tag, BasicCancelOptions::default())
            .await
        {
            slog::warn!(self.queue.inner.logger, "cancelling the consumer failed";
                "error" => error.to_string());
            return;
        }
        // After the cancel, the stream yields what was already received, then ends.
        let drain = async {
            while let Some(Ok(delivery)) = session.consumer.next().await {
                let _ = delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    /// Closes the consumer's connection: the broker requeues whatever is still unacked.
    pub(crate) async fn close(mut self) {
        self.stopped = true;
        if let Some(session) = self.session.take() {
            // Every handle is gone by now (jobs finished or abandoned): the settler sends what
            // it holds and ends before the channel closes.
            drop(session.settle);
            let _ = tokio::time::timeout(Duration::from_secs(5), session.settler).await;
            close_quietly(session.channel.close(200, "closing".into())).await;
            close_quietly(session.connection.close(200, "closing".into())).await;
        }
    }
}

/// A RabbitMQ delivery: its tag on its session's channel, that session's settler, the queue to
/// publish retries and dead letters to, and when the job first failed (its
/// [`FIRST_FAILURE_HEADER`]), which they carry on.
pub(crate) struct AmqpHandle {
    tag: u64,
    settle: mpsc::UnboundedSender<Settle>,
    queue: AmqpQueue,
    first_failure: Option<String>,
}

impl AmqpHandle {
    /// Queues the ack with the session's settler (see [`settle_deliveries`]).
    pub(crate) async fn ack(self) -> Result<(), QueueError> {
        self.settle
            .send(Settle::Ack(self.tag))
            .map_err(|_| settler_gone())
    }

    pub(crate) async fn retry(
        self,
        next: &Envelope,
        delay: Duration,
        error: &str,
    ) -> Result<(), QueueError> {
        let (level, retry_queue) = self.queue.retry_queue(next.attempt.saturating_sub(1));
        self.queue
            .ensure_retry_queue(level, &retry_queue)
            .await
            .map_err(|error| EnqueueError::Unavailable(error.to_string()))?;
        let expiration = delay.as_millis().max(1).to_string();
        let first_failure = self.first_failure();
        let mut extra = vec![
            (ERROR_HEADER, truncate(error, 1024)),
            (FIRST_FAILURE_HEADER, first_failure.as_str()),
        ];
        if let Some(traceparent) = next.traceparent.as_deref() {
            extra.push((TRACEPARENT_HEADER, traceparent));
        }
        let properties = properties(&next.id.to_string(), next.request_id.as_deref(), &extra)
            .with_expiration(expiration.as_str().into());
        self.queue
            .publish_to(&retry_queue, &next.to_body(), properties)
            .await?;
        self.ack().await
    }

    /// When the job first failed: its header, or now (this is its first failure).
    fn first_failure(&self) -> String {
        self.first_failure.clone().unwrap_or_else(db_timestamp)
    }

    /// Publishes the message to `<queue>.dead` with the error, the deliveries of this attempt,
    /// the first failure and now as headers, then acks it. A message without an id gets one, so
    /// the drain into the dead letters' table is idempotent for it too.
    pub(crate) async fn dead_letter(
        self,
        body: &[u8],
        message_id: Option<&str>,
        request_id: Option<&str>,
        deliveries: u32,
        error: &str,
    ) -> Result<(), QueueError> {
        let failed_at = db_timestamp();
        let first_failure = self
            .first_failure
            .clone()
            .unwrap_or_else(|| failed_at.clone());
        let deliveries = deliveries.to_string();
        let made_up;
        let message_id = match message_id {
            Some(id) if !id.is_empty() => id,
            _ => {
                made_up = uuid::Uuid::new_v4().to_string();
                &made_up
            }
        };
        let properties = properties(
            message_id,
            request_id,
            &[
                (ERROR_HEADER, truncate(error, 4096)),
                (DELIVERIES_HEADER, &deliveries),
                (FIRST_FAILURE_HEADER, &first_failure),
                (FAILED_AT_HEADER, &failed_at),
            ],
        );
        self.queue
            .publish_to(&self.queue.inner.dead, body, properties)
            .await?;
        self.ack().await
    }

    pub(crate) async fn requeue(self) -> Result<(), QueueError> {
        self.settle
            .send(Settle::Requeue(self.tag))
            .map_err(|_| settler_gone())
    }
}

/// Now as RFC 3339 with milliseconds (the tables' format).
fn db_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn settler_gone() -> QueueError {
    QueueError::Broker(Box::new(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the consumer's connection was closed",
    )))
}

/// What a session's deliveries tell its settler.
enum Settle {
    /// A delivery was handed out (sent before any settlement of it).
    Delivered(u64, lapin::Acker),
    /// Its job is done: ack it.
    Ack(u64),
    /// Give it back to the queue.
    Requeue(u64),
}

/// How long an ack may wait behind an earlier delivery still in progress before it is sent
/// on its own.
pub(super) const ACK_DELAY: Duration = Duration::from_millis(20);

/// The most settlements taken in one go.
const SETTLE_BATCH: usize = 1024;

/// One session's settler: acks in batches. Deliveries are mostly finished in the order they
/// came, so when the oldest unsettled delivery is done, it and every done one after it up to
/// the next in progress are acked with one `multiple` ack (RabbitMQ then does one
/// acknowledgement's work instead of many). A done delivery stuck behind a long job is acked
/// on its own after [`ACK_DELAY`]. Every frame goes out from this one task, in order, so a
/// `multiple` ack never covers a delivery that was requeued or acked already.
async fn settle_deliveries(mut settlements: mpsc::UnboundedReceiver<Settle>, logger: Logger) {
    /// A delivery handed out and not yet acked; `done` once its ack was asked for.
    struct Unsettled {
        acker: lapin::Acker,
        done: bool,
    }
    async fn send(logger: &Logger, acker: &lapin::Acker, multiple: bool) {
        if let Err(error) = acker.ack(BasicAckOptions { multiple }).await {
            slog::warn!(logger, "acking failed: the deliveries will be delivered again";
                "error" => error.to_string());
        }
    }
    let mut unsettled: std::collections::BTreeMap<u64, Unsettled> = Default::default();
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    // Since when done deliveries have been waiting behind one in progress.
    let mut waiting_since: Option<tokio::time::Instant> = None;
    loop {
        let deadline = waiting_since.map(|since| since + ACK_DELAY);
        let received = tokio::select! {
            received = settlements.recv_many(&mut batch, SETTLE_BATCH) => received,
            () = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            } => {
                let done: Vec<u64> = unsettled
                    .iter()
                    .filter(|(_, delivery)| delivery.done)
                    .map(|(tag, _)| *tag)
                    .collect();
                for tag in done {
                    if let Some(delivery) = unsettled.remove(&tag) {
                        send(&logger, &delivery.acker, false).await;
                    }
                }
                waiting_since = None;
                continue;
            }
        };
        for settlement in batch.drain(..) {
            match settlement {
                Settle::Delivered(tag, acker) => {
                    unsettled.insert(tag, Unsettled { acker, done: false });
                }
                Settle::Ack(tag) => {
                    if let Some(delivery) = unsettled.get_mut(&tag) {
                        delivery.done = true;
                    }
                }
                Settle::Requeue(tag) => {
                    if let Some(delivery) = unsettled.remove(&tag)
                        && let Err(error) = delivery
                            .acker
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..BasicNackOptions::default()
                            })
                            .await
                    {
                        slog::warn!(logger, "requeueing failed: the delivery comes back anyway";
                            "error" => error.to_string());
                    }
                }
            }
        }
        // The done run at the front, acked up to its last tag at once.
        let mut last_done = None;
        while let Some(front) = unsettled.first_entry() {
            if !front.get().done {
                break;
            }
            last_done = Some(front.remove());
        }
        if let Some(delivery) = last_done {
            send(&logger, &delivery.acker, true).await;
        }
        if unsettled.values().any(|delivery| delivery.done) {
            waiting_since.get_or_insert_with(tokio::time::Instant::now);
        } else {
            waiting_since = None;
        }
        if received == 0 {
            // Every sender is gone: ack whatever is done; the rest comes back from the broker.
            for delivery in unsettled.into_values().filter(|delivery| delivery.done) {
                send(&logger, &delivery.acker, false).await;
            }
            return;
        }
    }
}
