-- The embedded job queue (shared::messaging::embedded): one row per message not yet acked.
CREATE TABLE IF NOT EXISTS queue_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT,
    request_id TEXT,
    body BLOB NOT NULL,
    -- 'ready' (in the queue, maybe leased) or 'dead' (in the dead-letter queue)
    state TEXT NOT NULL DEFAULT 'ready',
    -- milliseconds since the Unix epoch before which it is not delivered (retry delays)
    available_at BIGINT NOT NULL,
    -- the consumer holding it, until lease_until (milliseconds since the epoch)
    lease_token TEXT,
    lease_until BIGINT,
    deliveries BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_jobs_ready ON queue_jobs (queue, state, available_at);
CREATE INDEX IF NOT EXISTS queue_jobs_lease ON queue_jobs (lease_token);
