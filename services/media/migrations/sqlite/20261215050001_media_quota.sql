-- Per-user quotas (MEDIA_QUOTA_BYTES, MEDIA_QUOTA_FILES). An upload reserves room before it
-- stores a byte; its reservation becomes a `media` row (in one transaction) or is released.

-- One row per uploader: each reservation first writes it, so that one user's reservations are
-- checked one after another (a row lock on PostgreSQL, the write lock on SQLite).
CREATE TABLE IF NOT EXISTS media_uploaders (
    owner_id INTEGER PRIMARY KEY
);
-- The room held by uploads in progress: `bytes` covers what the upload has received (and a
-- little ahead); each counts as one file. A reservation whose process died stops counting at
-- `expires_at` (Unix seconds); live uploads push it forward.
CREATE TABLE IF NOT EXISTS media_reservations (
    id TEXT PRIMARY KEY,
    owner_id INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS media_reservations_owner ON media_reservations (owner_id, expires_at);
