-- Uploaded files (media-service). `seq` orders lists; `id` is the public UUID.
CREATE TABLE IF NOT EXISTS media (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    -- Set for images: where the worker writes the thumbnail.
    thumbnail_key TEXT,
    -- Set once the thumbnail was seen in the store.
    thumbnail_ready_at TEXT,
    created_at TEXT NOT NULL
);
