-- +goose Up
-- Compact storage (docs/design/storage.md): "record" is the scored record
-- as consumed, compressed (codec.go; rows moved here stay plain JSON, which
-- starts with '{'); only what queries filter on has a column of its own.
-- Retention deletes rows in small batches (SQLite has no partitions) and
-- the file gives freed pages back with incremental vacuum.
-- The new table is filled, the old one dropped, and the new one renamed
-- in that order, so that labels' foreign key keeps naming
-- scored_transactions (a rename rewrites references to the renamed table).
CREATE TABLE scored_transactions_v4 (
    transaction_id  TEXT NOT NULL UNIQUE,
    card_id         TEXT NOT NULL,
    event_time      TEXT NOT NULL,
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'review', 'decline')),
    kafka_partition INTEGER NOT NULL,
    kafka_offset    INTEGER NOT NULL,
    scored_at       TEXT,
    record          BLOB NOT NULL
);
INSERT INTO scored_transactions_v4 (transaction_id, card_id, event_time, decision, kafka_partition, kafka_offset, scored_at, record)
SELECT transaction_id, card_id, event_time, decision, kafka_partition, kafka_offset, scored_at, CAST(record AS BLOB)
FROM scored_transactions ORDER BY rowid;
DROP TABLE scored_transactions;
ALTER TABLE scored_transactions_v4 RENAME TO scored_transactions;

-- Lists, time ranges and retention page by (event_time, transaction_id).
CREATE INDEX scored_transactions_time_id ON scored_transactions (event_time, transaction_id);
-- One card's history and alerts.
CREATE INDEX scored_transactions_card_time ON scored_transactions (card_id, event_time);
-- The alert queue: only review and decline rows, a few percent.
CREATE INDEX scored_transactions_alerts ON scored_transactions (event_time, transaction_id) WHERE decision <> 'approve';
-- Live-stream resume reads by position.
CREATE INDEX scored_transactions_position ON scored_transactions (kafka_partition, kafka_offset);

-- +goose Down
SELECT 'down migration not supported: 0004 moved rows into a new layout';
