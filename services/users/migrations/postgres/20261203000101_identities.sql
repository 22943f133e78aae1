-- Identities: a password hash (argon2id, PHC string; NULL: the row cannot log in until one is
-- set) and a role per user, and the refresh tokens issued to them.
ALTER TABLE users ADD COLUMN IF NOT EXISTS password_hash TEXT;
ALTER TABLE users ADD COLUMN IF NOT EXISTS role TEXT NOT NULL DEFAULT 'user';

-- A refresh token is stored as the SHA-256 of its value only. Tokens rotated from one login
-- share a family; presenting a spent one revokes the family. Times are Unix seconds.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT   PRIMARY KEY,
    family_id  TEXT   NOT NULL,
    user_id    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens (user_id);
