-- Who uploaded each file: users-service's user id. NULL on rows from before uploads needed a
-- signed-in user: those are owned by nobody, and only admins act on them.
ALTER TABLE media ADD COLUMN owner_id BIGINT;
-- `private`: its owner and admins see it; `public`: anyone may read it (only the owner and
-- admins delete it). Earlier rows are private.
ALTER TABLE media ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private'
    CHECK (visibility IN ('private', 'public'));
-- The two filtered lists: a user's own items, and the public ones (anonymous callers).
CREATE INDEX IF NOT EXISTS media_owner_seq ON media (owner_id, seq);
CREATE INDEX IF NOT EXISTS media_visibility_seq ON media (visibility, seq);
