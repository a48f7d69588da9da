-- +goose Up
-- Analyst dispositions of alerts: the labels a model is trained on. One
-- label per transaction; a second disposition replaces the first.
CREATE TABLE labels (
    transaction_id TEXT PRIMARY KEY REFERENCES scored_transactions (transaction_id),
    disposition    TEXT NOT NULL CHECK (disposition IN ('confirmed_fraud', 'false_positive')),
    note           TEXT NOT NULL DEFAULT '',
    analyst        TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX labels_updated ON labels (updated_at, transaction_id);

CREATE INDEX scored_transactions_time_id ON scored_transactions (event_time, transaction_id);
CREATE INDEX scored_transactions_position ON scored_transactions (kafka_partition, kafka_offset);

-- +goose Down
DROP INDEX scored_transactions_position;
DROP INDEX scored_transactions_time_id;
DROP TABLE labels;
