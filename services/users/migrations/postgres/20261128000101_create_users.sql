-- Users. `email_key` is the address lower-cased by the service, so uniqueness is
-- case-insensitive and the same on SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS users (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT      NOT NULL,
    email      TEXT      NOT NULL,
    email_key  TEXT      NOT NULL,
    created_at TEXT      NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email_key);
