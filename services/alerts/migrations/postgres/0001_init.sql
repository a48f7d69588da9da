-- +goose Up
-- IF NOT EXISTS: databases created before goose was adopted already have
-- this schema (recorded in the old schema_migrations table).
-- Scored transactions as consumed from scored-transactions, one row per
-- transaction_id. The columns are what analysts filter on; "record" is the
-- whole scored record (features, reasons, versions) as it was consumed.
CREATE TABLE IF NOT EXISTS scored_transactions (
    transaction_id   text PRIMARY KEY,
    card_id          text NOT NULL,
    event_time       timestamptz NOT NULL,
    amount_minor     bigint NOT NULL,
    currency         text NOT NULL,
    merchant_country text NOT NULL,
    score            double precision NOT NULL,
    decision         text NOT NULL CHECK (decision IN ('approve', 'review', 'decline')),
    -- Position in scored-transactions (the raw-transactions position is in record).
    kafka_partition  integer NOT NULL,
    kafka_offset     bigint NOT NULL,
    scored_at        timestamptz,
    ingest_time      timestamptz,
    stored_at        timestamptz NOT NULL DEFAULT now(),
    record           jsonb NOT NULL
);

-- Card history, and the alert queue by decision.
CREATE INDEX IF NOT EXISTS scored_transactions_card_time ON scored_transactions (card_id, event_time);
CREATE INDEX IF NOT EXISTS scored_transactions_decision_time ON scored_transactions (decision, event_time);

-- The sink's consumer positions: the next offset to read per partition,
-- written in the same transaction as the rows read before it.
CREATE TABLE IF NOT EXISTS sink_offsets (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
