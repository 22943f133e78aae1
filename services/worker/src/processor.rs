//! The consume loop: up to `--concurrency` deliveries handled at once, each settled exactly
//! once — acked after its effect, retried later with exponential backoff and jitter, or
//! dead-lettered with its error (malformed at once, failing after `--max-attempts`, and unrun
//! once delivered more than `--max-deliveries` times: a job whose handling kills the worker
//! would otherwise come back forever).
//!
//! Each job continues the trace of the work that enqueued it (the envelope's `traceparent`,
//! else a trace of its own): every line logged about it carries `trace_id` and the job's
//! `span_id`, and with spans exported the job is a consumer span whose parent is the
//! producer's.
//!
//! Shutdown: stop consuming (deliveries received but not started go back to the queue), let
//! in-flight jobs finish within `--shutdown-timeout-secs`, abandon the rest (the broker, or
//! the lease release, hands them to another worker), close the consumer.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use queue::{ConsumeOptions, Delivery, Envelope, JobQueue};
use runtime::{AttributeValue, Incoming, SpanKind, SpanRecord, TraceContext, Tracer};
use slog::Logger;
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    config::ProcessingArgs,
    context::JobContext,
    jobs::Job,
    message::job_envelope,
    metrics::{WorkerMetrics, kind_label},
    outcome::{JobError, Outcome},
};

/// Consumes the job queue.
#[derive(Clone)]
pub struct Processor {
    /// Shared by every in-flight job.
    inner: Arc<Inner>,
}

struct Inner {
    args: ProcessingArgs,
    queue: JobQueue,
    jobs: JobContext,
    metrics: WorkerMetrics,
    logger: Logger,
    /// Where the jobs' consumer spans go (nowhere unless spans are exported).
    tracer: Tracer,
}

impl Processor {
    /// A processor of `queue`.
    pub fn new(
        args: ProcessingArgs,
        queue: JobQueue,
        jobs: JobContext,
        metrics: WorkerMetrics,
        logger: Logger,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                args,
                queue,
                jobs,
                metrics,
                logger,
                tracer: Tracer::for_service(crate::NAME),
            }),
        }
    }

    /// Consumes until `shutdown` resolves, then drains (see the module documentation).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let args = self.inner.args;
        let mut consumer = self
            .inner
            .queue
            .consume(ConsumeOptions {
                prefetch: args.prefetch,
                visibility_timeout: Duration::from_secs(args.lease_secs),
                poll_interval: Duration::from_millis(args.poll_ms),
            })
            .await?;
        let slots = Arc::new(Semaphore::new(
            usize::try_from(args.concurrency).unwrap_or(1),
        ));
        let mut in_flight = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            while in_flight.try_join_next().is_some() {}
            let slot = tokio::select! {
                biased;
                () = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => slot?,
            };
            let delivery = tokio::select! {
                biased;
                () = &mut shutdown => break,
                delivery = consumer.next() => match delivery {
                    Some(delivery) => delivery,
                    None => break,
                },
            };
            let processor = self.clone();
            in_flight.spawn(async move {
                processor.handle(delivery).await;
                drop(slot);
            });
        }
        slog::info!(self.inner.logger, "shutting down: no new jobs; finishing in-flight ones";
            "in_flight" => in_flight.len(), "bound_secs" => args.shutdown_timeout_secs);
        consumer.stop().await;
        let drained = tokio::time::timeout(args.shutdown_timeout(), async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            slog::warn!(self.inner.logger,
                "in-flight jobs did not finish in time: handing them back to the queue";
                "abandoned" => in_flight.len());
            in_flight.abort_all();
            while in_flight.join_next().await.is_some() {}
            self.inner.metrics.in_flight.set(0);
        }
        consumer.close().await;
        Ok(())
    }

    /// Handles one delivery and settles it.
    async fn handle(&self, delivery: Delivery) {
        let metrics = &self.inner.metrics;
        metrics.in_flight.inc();
        let started = Instant::now();
        let (kind, outcome) = self.handle_inner(delivery).await;
        metrics
            .duration
            .with_label_values(&[kind, outcome])
            .observe(started.elapsed().as_secs_f64());
        metrics.in_flight.dec();
    }

    /// Returns the kind and outcome labels. The rare paths (retry, dead letter) publish with
    /// confirms and are boxed, so the future every job's task holds stays small.
    async fn handle_inner(&self, delivery: Delivery) -> (&'static str, &'static str) {
        let inner = &self.inner;
        if delivery.deliveries > inner.args.max_deliveries {
            let envelope = job_envelope(&delivery).ok();
            let kind = envelope
                .as_ref()
                .map_or("unknown", |envelope| kind_label(&envelope.kind));
            let reason = format!(
                "delivered {} times without being settled: the worker handling it died each \
                 time (killed for memory, or crashed); set aside after {} deliveries \
                 (WORKER_MAX_DELIVERIES)",
                delivery.deliveries - 1,
                inner.args.max_deliveries
            );
            Box::pin(self.dead_letter(
                &inner.logger,
                delivery,
                envelope.as_ref(),
                kind,
                "redelivered",
                &reason,
            ))
            .await;
            return (kind, "dead_lettered");
        }
        let envelope = match job_envelope(&delivery) {
            Ok(envelope) => envelope,
            Err(reason) => {
                Box::pin(self.dead_letter(
                    &inner.logger,
                    delivery,
                    None,
                    "unknown",
                    "malformed",
                    &reason,
                ))
                .await;
                return ("unknown", "dead_lettered");
            }
        };
        let kind = kind_label(&envelope.kind);
        let trace =
            TraceContext::accept_or_start(envelope.traceparent.as_deref().map(str::as_bytes), None);
        let logger = inner.logger.new(slog::OwnedKV(trace.context.clone()));
        let started = Instant::now();
        let outcome = self.process(delivery, &envelope, kind, &logger).await;
        if inner.tracer.records(&trace.context) {
            self.record_span(&envelope, kind, outcome, &trace, started);
        }
        (kind, outcome)
    }

    /// The job's consumer span: `process <kind>`, its parent the producer's span.
    fn record_span(
        &self,
        envelope: &Envelope,
        kind: &'static str,
        outcome: &'static str,
        trace: &Incoming,
        started: Instant,
    ) {
        let end = SystemTime::now();
        self.inner.tracer.record(SpanRecord {
            name: format!("process {kind}"),
            kind: SpanKind::Consumer,
            context: &trace.context,
            parent: trace.parent,
            start: end.checked_sub(started.elapsed()).unwrap_or(end),
            end,
            attributes: vec![
                (
                    "messaging.operation.type",
                    AttributeValue::Text("process".to_owned()),
                ),
                (
                    "messaging.message.id",
                    AttributeValue::Text(envelope.id.to_string()),
                ),
                ("job.kind", AttributeValue::Text(envelope.kind.clone())),
                (
                    "job.attempt",
                    AttributeValue::Int(i64::from(envelope.attempt)),
                ),
                ("job.outcome", AttributeValue::Text(outcome.to_owned())),
            ],
            error: outcome == "dead_lettered",
        });
    }

    /// Runs a parsed envelope's job and settles its delivery, logging to the job's `logger`;
    /// returns the outcome label.
    async fn process(
        &self,
        delivery: Delivery,
        envelope: &Envelope,
        kind: &'static str,
        logger: &Logger,
    ) -> &'static str {
        let inner = &self.inner;
        let job = match Job::parse(envelope) {
            Ok(job) => job,
            Err(error) => {
                Box::pin(self.dead_letter(
                    logger,
                    delivery,
                    Some(envelope),
                    kind,
                    "malformed",
                    &error.to_string(),
                ))
                .await;
                return "dead_lettered";
            }
        };
        // Thumbnails are checked first (their work is costly); tasks when they record their
        // effect (one statement for many jobs).
        let check_first = matches!(job, Job::Thumbnail(_));
        match self.already_processed(check_first, envelope).await {
            Ok(true) => {
                self.duplicate(logger, delivery, envelope, kind).await;
                return "duplicate";
            }
            Ok(false) => {}
            Err(error) => {
                // Cannot tell: treat as a failed attempt (the database may be back soon).
                let error = crate::outcome::database_error(error);
                return Box::pin(self.failed(logger, delivery, envelope, kind, error)).await;
            }
        }
        match self
            .run_keeping_lease(logger, job, envelope, &delivery)
            .await
        {
            Ok(Outcome::Done) => {
                settle(logger, envelope, delivery.ack().await);
                inner.metrics.processed.with_label_values(&[kind]).inc();
                "processed"
            }
            Ok(Outcome::Duplicate) => {
                self.duplicate(logger, delivery, envelope, kind).await;
                "duplicate"
            }
            Ok(Outcome::Skipped(reason)) => {
                slog::info!(logger, "job skipped: nothing to do";
                    "job_id" => %envelope.id, "kind" => &envelope.kind, "reason" => reason,
                    "request_id" => envelope.request_id.as_deref());
                settle(logger, envelope, delivery.ack().await);
                inner.metrics.skipped.with_label_values(&[kind]).inc();
                "skipped"
            }
            Err(error) => Box::pin(self.failed(logger, delivery, envelope, kind, error)).await,
        }
    }

    async fn already_processed(
        &self,
        check: bool,
        envelope: &Envelope,
    ) -> Result<bool, sqlx::Error> {
        if !check {
            return Ok(false);
        }
        self.inner.jobs.repository.is_processed(envelope.id).await
    }

    /// Runs the job, extending the delivery's lease (embedded queue) every third of the
    /// visibility timeout, so a job longer than the lease is not delivered to another worker.
    async fn run_keeping_lease(
        &self,
        logger: &Logger,
        job: Job,
        envelope: &Envelope,
        delivery: &Delivery,
    ) -> Result<Outcome, JobError> {
        let visibility = Duration::from_secs(self.inner.args.lease_secs);
        let context = JobContext {
            logger: logger.clone(),
            ..self.inner.jobs.clone()
        };
        let run = job.run(&context, envelope);
        tokio::pin!(run);
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + visibility / 3, visibility / 3);
        loop {
            tokio::select! {
                outcome = &mut run => return outcome,
                _ = heartbeat.tick() => {
                    if let Err(error) = delivery.extend_lease(visibility).await {
                        slog::warn!(logger, "extending a job's lease failed";
                            "job_id" => %envelope.id, "error" => error.to_string());
                    }
                }
            }
        }
    }

    async fn duplicate(
        &self,
        logger: &Logger,
        delivery: Delivery,
        envelope: &Envelope,
        kind: &'static str,
    ) {
        slog::info!(logger, "job already processed: acked without effect";
            "job_id" => %envelope.id, "kind" => &envelope.kind, "attempt" => envelope.attempt);
        settle(logger, envelope, delivery.ack().await);
        self.inner
            .metrics
            .duplicate
            .with_label_values(&[kind])
            .inc();
    }

    /// A failed attempt: retried later, or dead-lettered. Returns the outcome label.
    async fn failed(
        &self,
        logger: &Logger,
        delivery: Delivery,
        envelope: &Envelope,
        kind: &'static str,
        error: JobError,
    ) -> &'static str {
        let inner = &self.inner;
        inner.metrics.failed.with_label_values(&[kind]).inc();
        match error {
            JobError::Malformed(_) => {
                self.dead_letter(
                    logger,
                    delivery,
                    Some(envelope),
                    kind,
                    "malformed",
                    &error.to_string(),
                )
                .await;
                "dead_lettered"
            }
            JobError::Permanent(reason) => {
                self.dead_letter(logger, delivery, Some(envelope), kind, "permanent", &reason)
                    .await;
                "dead_lettered"
            }
            JobError::Transient(reason) if envelope.attempt >= inner.args.max_attempts => {
                let reason = format!("failed after {} attempts: {reason}", envelope.attempt);
                self.dead_letter(logger, delivery, Some(envelope), kind, "exhausted", &reason)
                    .await;
                "dead_lettered"
            }
            JobError::Transient(reason) => {
                let delay = inner
                    .args
                    .retry_delay(envelope.attempt, rand::random::<f64>());
                slog::warn!(logger, "job failed; retrying later";
                    "job_id" => %envelope.id, "kind" => &envelope.kind,
                    "attempt" => envelope.attempt, "max_attempts" => inner.args.max_attempts,
                    "delay_ms" => delay.as_millis(), "error" => &reason,
                    "request_id" => envelope.request_id.as_deref());
                let result = delivery
                    .retry(&envelope.next_attempt(), delay, &reason)
                    .await;
                settle(logger, envelope, result);
                inner.metrics.retried.with_label_values(&[kind]).inc();
                "retried"
            }
        }
    }

    async fn dead_letter(
        &self,
        logger: &Logger,
        delivery: Delivery,
        envelope: Option<&Envelope>,
        kind: &'static str,
        reason_label: &'static str,
        reason: &str,
    ) {
        let inner = &self.inner;
        slog::error!(logger, "job dead-lettered";
            "job_id" => envelope.map(|envelope| envelope.id.to_string())
                .or_else(|| delivery.message_id.clone()),
            "kind" => envelope.map(|envelope| envelope.kind.as_str()),
            "attempt" => envelope.map(|envelope| envelope.attempt),
            "reason" => reason_label, "error" => reason,
            "request_id" => delivery.request_id.clone());
        let id = envelope.map(|envelope| envelope.id.to_string());
        match delivery.dead_letter(reason).await {
            Ok(()) => {}
            Err(error) => slog::warn!(logger,
                "settling a delivery failed: it will be delivered again";
                "job_id" => id, "error" => error.to_string()),
        }
        inner
            .metrics
            .dead_lettered
            .with_label_values(&[kind, reason_label])
            .inc();
    }
}

/// Logs a settlement that failed (the delivery comes back: the job is idempotent).
fn settle(logger: &Logger, envelope: &Envelope, result: Result<(), queue::QueueError>) {
    if let Err(error) = result {
        slog::warn!(logger, "settling a delivery failed: it will be delivered again";
            "job_id" => %envelope.id, "error" => error.to_string());
    }
}
