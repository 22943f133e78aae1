-- Posts, owned by graphql-service. `author_id` names a user of users-service (no foreign key:
-- users live in another service's database).
CREATE TABLE IF NOT EXISTS posts (
    id         BIGSERIAL PRIMARY KEY,
    title      TEXT      NOT NULL,
    content    TEXT,
    author_id  BIGINT    NOT NULL,
    created_at TEXT      NOT NULL
);
CREATE INDEX IF NOT EXISTS posts_author_id ON posts (author_id);
