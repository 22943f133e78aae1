-- The leased jobs of a queue (JobQueue::leased, read by every worker's stats every 5 s) by
-- index rather than by a scan of the queue's rows; only leased rows are in it.
CREATE INDEX IF NOT EXISTS queue_jobs_leased ON queue_jobs (queue, lease_until)
    WHERE lease_until IS NOT NULL;
