-- +goose Up
-- IF NOT EXISTS: databases created before goose was adopted already have
-- this schema (recorded in the old schema_migrations table).
-- Scored transactions as consumed from scored-transactions, one row per
-- transaction_id. Times are UTC RFC 3339 text with exactly nine fractional
-- digits, so text order is time order. "record" is the whole scored record.
CREATE TABLE IF NOT EXISTS scored_transactions (
    transaction_id   TEXT PRIMARY KEY,
    card_id          TEXT NOT NULL,
    event_time       TEXT NOT NULL,
    amount_minor     INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    merchant_country TEXT NOT NULL,
    score            REAL NOT NULL,
    decision         TEXT NOT NULL CHECK (decision IN ('approve', 'review', 'decline')),
    -- Position in scored-transactions (the raw-transactions position is in record).
    kafka_partition  INTEGER NOT NULL,
    kafka_offset     INTEGER NOT NULL,
    scored_at        TEXT,
    ingest_time      TEXT,
    stored_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    record           TEXT NOT NULL CHECK (json_valid(record))
);

CREATE INDEX IF NOT EXISTS scored_transactions_card_time ON scored_transactions (card_id, event_time);
CREATE INDEX IF NOT EXISTS scored_transactions_decision_time ON scored_transactions (decision, event_time);

CREATE TABLE IF NOT EXISTS sink_offsets (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (topic, partition)
);
