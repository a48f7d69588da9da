-- +goose Up
-- Analyst dispositions of alerts: the labels a model is trained on. One
-- label per transaction; a second disposition replaces the first.
CREATE TABLE labels (
    transaction_id text PRIMARY KEY REFERENCES scored_transactions (transaction_id),
    disposition    text NOT NULL CHECK (disposition IN ('confirmed_fraud', 'false_positive')),
    note           text NOT NULL DEFAULT '',
    analyst        text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX labels_updated ON labels (updated_at, transaction_id);

-- The alert queue and card history page by (event_time, transaction_id).
CREATE INDEX scored_transactions_time_id ON scored_transactions (event_time, transaction_id);
-- Live-stream resume reads by position.
CREATE INDEX scored_transactions_position ON scored_transactions (kafka_partition, kafka_offset);

-- +goose Down
DROP INDEX scored_transactions_position;
DROP INDEX scored_transactions_time_id;
DROP TABLE labels;
