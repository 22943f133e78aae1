-- Job ids whose effect happened (the worker's idempotency record), and the effect of `task`
-- jobs, written in the same transaction.
CREATE TABLE IF NOT EXISTS processed_jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    processed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS task_runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    task TEXT NOT NULL,
    processed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS task_runs_job ON task_runs (job_id);
