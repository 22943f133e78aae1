-- A replay's claim on a dead letter (milliseconds since the epoch until which it holds; NULL:
-- none): a row under a live claim is replayed by no other request, so one replay publishes
-- it once. A claim outlives a replayer that stopped midway by this long only.
ALTER TABLE queue_dead_letters ADD COLUMN replay_until BIGINT;
