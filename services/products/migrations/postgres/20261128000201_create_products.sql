-- Products. Prices are integer cents, so they are exact.
CREATE TABLE IF NOT EXISTS products (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT      NOT NULL,
    price_cents BIGINT    NOT NULL CHECK (price_cents >= 0),
    created_at  TEXT      NOT NULL
);
