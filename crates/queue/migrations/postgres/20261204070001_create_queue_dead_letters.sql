-- Dead letters of both queue backends (queue::DeadLetters): the embedded queue moves a job here
-- when it dead-letters it; with RabbitMQ the worker drains `<queue>.dead` into this table (in
-- its own database). One row per job id and queue.
CREATE TABLE IF NOT EXISTS queue_dead_letters (
    seq BIGSERIAL PRIMARY KEY,
    queue TEXT NOT NULL,
    -- the job id (the message's message_id)
    message_id TEXT NOT NULL,
    request_id TEXT,
    -- the envelope's kind and attempt; NULL and 0 for a body that is no envelope
    kind TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- how many times its last attempt was handed to a consumer
    deliveries BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    body BYTEA NOT NULL,
    -- RFC 3339: its first failed attempt, and its dead-lettering
    first_failed_at TEXT NOT NULL,
    last_failed_at TEXT NOT NULL,
    -- bumped by each copy stored over the row: a replay deletes only the copy it published
    generation BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS queue_dead_letters_job ON queue_dead_letters (queue, message_id);
CREATE INDEX IF NOT EXISTS queue_dead_letters_kind ON queue_dead_letters (queue, kind, seq);
-- When a job first failed (RFC 3339), kept through its retries.
ALTER TABLE queue_jobs ADD COLUMN first_failed_at TEXT;
-- The dead rows of queue_jobs move to the table above.
INSERT INTO queue_dead_letters (queue, message_id, request_id, attempts, deliveries, last_error,
        body, first_failed_at, last_failed_at)
    SELECT queue, COALESCE(message_id, 'row-' || CAST(seq AS TEXT)), request_id, 0, deliveries,
        last_error, body, created_at, created_at
    FROM queue_jobs WHERE state = 'dead'
    ON CONFLICT (queue, message_id) DO NOTHING;
DELETE FROM queue_jobs WHERE state = 'dead';
