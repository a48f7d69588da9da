-- +goose Up
-- Compact, time-partitioned storage (docs/design/storage.md).
--
-- scored_transactions is partitioned first by retention class, then by
-- event day, so that retention drops whole partitions instead of deleting
-- rows:
--   class 'a' approved, unlabeled   -> scored_transactions_approve, by day
--   class 'r' review/decline, unlabeled -> scored_transactions_alert, by day
--   class 'l' labeled (any decision) -> scored_transactions_labeled
-- A label moves its row to class 'l' (an UPDATE of the partition key).
-- "record" is the scored record as consumed, compressed (codec.go); only
-- what queries filter on has a column of its own.
--
-- transaction_ids is unpartitioned and carries the global uniqueness of
-- transaction_id, which per-partition keys cannot: a reused id on another
-- day is still found. It also maps an id to its event_time, so that a
-- look-up by id reaches one day's partitions.
ALTER TABLE scored_transactions RENAME TO scored_transactions_v3;
ALTER TABLE labels DROP CONSTRAINT IF EXISTS labels_transaction_id_fkey;
ALTER INDEX IF EXISTS scored_transactions_card_time RENAME TO scored_transactions_v3_card_time;
ALTER INDEX IF EXISTS scored_transactions_decision_time RENAME TO scored_transactions_v3_decision_time;
ALTER INDEX IF EXISTS scored_transactions_time_id RENAME TO scored_transactions_v3_time_id;
ALTER INDEX IF EXISTS scored_transactions_position RENAME TO scored_transactions_v3_position;

CREATE TABLE transaction_ids (
    transaction_id text COLLATE "C" PRIMARY KEY,
    event_time     timestamptz NOT NULL
);

CREATE TABLE scored_transactions (
    event_time      timestamptz NOT NULL,
    kafka_offset    bigint NOT NULL,
    scored_at       timestamptz,
    kafka_partition integer NOT NULL,
    class           "char" NOT NULL CHECK (class IN ('a', 'r', 'l')),
    decision        text NOT NULL CHECK (decision IN ('approve', 'review', 'decline')),
    transaction_id  text COLLATE "C" NOT NULL,
    card_id         text COLLATE "C" NOT NULL,
    record          bytea NOT NULL
) PARTITION BY LIST (class);
-- Records are compressed already: no second compression, no out-of-line storage.
ALTER TABLE scored_transactions ALTER COLUMN record SET STORAGE MAIN;

CREATE TABLE scored_transactions_approve PARTITION OF scored_transactions FOR VALUES IN ('a') PARTITION BY RANGE (event_time);
CREATE TABLE scored_transactions_alert PARTITION OF scored_transactions FOR VALUES IN ('r') PARTITION BY RANGE (event_time);
CREATE TABLE scored_transactions_labeled PARTITION OF scored_transactions FOR VALUES IN ('l');
-- Rows outside the days created ahead (late or early events) land here
-- until their day's partition is created (which moves them) or they expire.
CREATE TABLE scored_transactions_approve_default PARTITION OF scored_transactions_approve DEFAULT;
CREATE TABLE scored_transactions_alert_default PARTITION OF scored_transactions_alert DEFAULT;

-- Lists and time ranges page by (event_time, transaction_id); a look-up by
-- id uses it with the event_time from transaction_ids.
CREATE INDEX scored_transactions_time_id ON scored_transactions (event_time, transaction_id);
-- One card's history and alerts.
CREATE INDEX scored_transactions_card_time ON scored_transactions (card_id, event_time);
-- Live-stream resume reads by position.
CREATE INDEX scored_transactions_position ON scored_transactions (kafka_partition, kafka_offset);

-- Move the rows: plain JSON records (format '{'), readable as they are.
INSERT INTO transaction_ids (transaction_id, event_time)
SELECT transaction_id, event_time FROM scored_transactions_v3;
INSERT INTO scored_transactions (event_time, kafka_offset, scored_at, kafka_partition, class, decision, transaction_id, card_id, record)
SELECT s.event_time, s.kafka_offset, s.scored_at, s.kafka_partition,
       CASE WHEN l.transaction_id IS NOT NULL THEN 'l' WHEN s.decision = 'approve' THEN 'a' ELSE 'r' END::"char",
       s.decision, s.transaction_id, s.card_id, convert_to(s.record::text, 'UTF8')
FROM scored_transactions_v3 s LEFT JOIN labels l ON l.transaction_id = s.transaction_id;
DROP TABLE scored_transactions_v3;

-- A label lives as long as its transaction's id: retention deletes the id
-- of a labeled transaction only when the labeled retention has passed.
DELETE FROM labels l WHERE NOT EXISTS (SELECT 1 FROM transaction_ids t WHERE t.transaction_id = l.transaction_id);
ALTER TABLE labels ADD CONSTRAINT labels_transaction_id_fkey
    FOREIGN KEY (transaction_id) REFERENCES transaction_ids (transaction_id) ON DELETE CASCADE;

-- +goose Down
SELECT 'down migration not supported: 0004 moved rows into a new layout';
