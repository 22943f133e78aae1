-- Thumbnails being written (worker::thumbnail::write): a row from before the write until the
-- media item was checked again after it; a row left by a worker that died in between is
-- finished by the orphan sweep (worker::orphans).
CREATE TABLE IF NOT EXISTS thumbnail_writes (
    writer TEXT PRIMARY KEY,
    thumbnail_key TEXT NOT NULL,
    original_key TEXT NOT NULL,
    -- milliseconds since the Unix epoch
    started_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS thumbnail_writes_started ON thumbnail_writes (started_at);
