package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// pgStore is the production store.
type pgStore struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	retentionState
}

var _ Store = (*pgStore)(nil)

// migrationLockID is the advisory lock that serializes migrations when
// several replicas start at once.
const migrationLockID = 0x66726175645f6d31 // "fraud_m1"

func openPostgres(ctx context.Context, dsn string, maxConns int, log *slog.Logger) (*pgStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("database URL: not a valid PostgreSQL URL")
	}
	cfg.MaxConns = int32(maxConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL %s: %w", cfg.ConnConfig.Host, err)
	}
	s := &pgStore{pool: pool, log: log}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if _, err := s.createDays(ctx, time.Now()); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *pgStore) migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	// A session advisory lock serializes replicas that start at once;
	// each migration runs in its own transaction.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("migrate PostgreSQL: %w", err)
	}
	return migrate(ctx, db, goose.DialectPostgres, "postgres", locker, s.log)
}

var pgColumns = []string{
	"event_time", "kafka_offset", "scored_at", "kafka_partition", "decision", "transaction_id", "card_id", "record",
}

// SaveBatch copies the rows into a temporary table and inserts from there:
// first each new transaction_id into transaction_ids (ON CONFLICT DO
// NOTHING: the table holds every stored id, on any day, so a reused id is
// caught whatever its day), then the rows whose id was new into the
// partitioned scored_transactions. COPY is the fast path for bulk rows, but
// COPY itself cannot skip rows that are already stored.
func (s *pgStore) SaveBatch(ctx context.Context, topic string, rows []Record, offsets map[int32]int64) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("save batch: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	stored := 0
	keep := s.policy().live(rows, s.clock())
	if len(keep) > 0 {
		// Created once per connection; ON COMMIT DELETE ROWS empties it
		// after every batch without dropping it from the catalog.
		// Constraints are checked by the INSERT into scored_transactions.
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS scored_in_v4 (
			event_time timestamptz, kafka_offset bigint, scored_at timestamptz, kafka_partition integer,
			decision text, transaction_id text COLLATE "C", card_id text, record bytea) ON COMMIT DELETE ROWS`); err != nil {
			return 0, fmt.Errorf("save batch: temp table: %w", err)
		}
		src := make([][]any, len(keep))
		for i, r := range keep {
			rec, err := encodeRecord(r)
			if err != nil {
				return 0, err
			}
			if rec, err = compressRecord(rec); err != nil {
				return 0, err
			}
			t := r.Scored.Transaction
			src[i] = []any{t.EventTime, r.Offset, nullTime(r.Scored.ScoredAt), r.Partition, r.Scored.Decision,
				t.TransactionID, t.CardID, rec}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"scored_in_v4"}, pgColumns, pgx.CopyFromRows(src)); err != nil {
			return 0, fmt.Errorf("save batch: copy: %w", err)
		}
		// DISTINCT ON in topic order: should one batch hold a transaction
		// twice, the first occurrence in the topic wins.
		tag, err := tx.Exec(ctx, `WITH firsts AS (
				SELECT DISTINCT ON (transaction_id) * FROM scored_in_v4
				ORDER BY transaction_id, kafka_partition, kafka_offset),
			ids AS (
				INSERT INTO transaction_ids (transaction_id, event_time)
				SELECT transaction_id, event_time FROM firsts
				ON CONFLICT (transaction_id) DO NOTHING RETURNING transaction_id)
			INSERT INTO scored_transactions
				(event_time, kafka_offset, scored_at, kafka_partition, class, decision, transaction_id, card_id, record)
			SELECT f.event_time, f.kafka_offset, f.scored_at, f.kafka_partition,
				CASE WHEN f.decision = 'approve' THEN 'a' ELSE 'r' END::"char", f.decision, f.transaction_id, f.card_id, f.record
			FROM firsts f JOIN ids ON ids.transaction_id = f.transaction_id
			ORDER BY f.event_time`)
		if err != nil {
			return 0, fmt.Errorf("save batch: insert: %w", err)
		}
		stored = int(tag.RowsAffected())
		if stored < len(keep) {
			// Some ids were stored already (or twice in rows): each is a
			// redelivery if its record is the same, else a conflict. Only
			// batches with such rows pay for this look-up.
			if err := pgConflicts(ctx, tx, keep); err != nil {
				return 0, err // rolled back
			}
		}
	}
	if len(offsets) > 0 {
		parts := make([]int32, 0, len(offsets))
		nexts := make([]int64, 0, len(offsets))
		for p, n := range offsets {
			parts = append(parts, p)
			nexts = append(nexts, n)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sink_offsets (topic, partition, next_offset)
			SELECT $1, p, n FROM unnest($2::integer[], $3::bigint[]) AS o(p, n)
			ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()
			WHERE sink_offsets.next_offset < excluded.next_offset`, topic, parts, nexts); err != nil {
			return 0, fmt.Errorf("save batch: offsets: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("save batch: commit: %w", err)
	}
	return stored, nil
}

// pgConflicts returns a *ConflictError for the rows of scored_in_v4 whose
// transaction_id is stored from another position with another record
// (sameRecord: the same bytes, or for rows moved from jsonb the same
// content), nil if there are none.
func pgConflicts(ctx context.Context, tx pgx.Tx, rows []Record) error {
	res, err := tx.Query(ctx, `SELECT i.kafka_partition, i.kafka_offset, s.kafka_partition, s.kafka_offset, s.record
		FROM scored_in_v4 i
		JOIN transaction_ids t ON t.transaction_id = i.transaction_id
		JOIN scored_transactions s ON s.event_time = t.event_time AND s.transaction_id = t.transaction_id
		WHERE (s.kafka_partition, s.kafka_offset) <> (i.kafka_partition, i.kafka_offset)
		ORDER BY i.kafka_partition, i.kafka_offset`)
	if err != nil {
		return fmt.Errorf("save batch: find conflicts: %w", err)
	}
	defer res.Close()
	type pos struct {
		p int32
		o int64
	}
	byPos := make(map[pos]Record, len(rows))
	for _, r := range rows {
		byPos[pos{r.Partition, r.Offset}] = r
	}
	var conflicts []Conflict
	for res.Next() {
		var in pos
		var c Conflict
		var held []byte
		if err := res.Scan(&in.p, &in.o, &c.StoredPartition, &c.StoredOffset, &held); err != nil {
			return fmt.Errorf("save batch: find conflicts: %w", err)
		}
		c.Row = byPos[in]
		heldValue, err := expandRecord(held)
		if err != nil {
			return fmt.Errorf("save batch: find conflicts: %w", err)
		}
		value, err := encodeRecord(c.Row)
		if err != nil {
			return err
		}
		if !sameRecord(heldValue, value) {
			conflicts = append(conflicts, c)
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("save batch: find conflicts: %w", err)
	}
	if len(conflicts) > 0 {
		return &ConflictError{Conflicts: conflicts}
	}
	return nil
}

func (s *pgStore) Offsets(ctx context.Context, topic string) (map[int32]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT partition, next_offset FROM sink_offsets WHERE topic = $1`, topic)
	if err != nil {
		return nil, fmt.Errorf("read offsets: %w", err)
	}
	defer rows.Close()
	return scanOffsets(rows)
}

func (s *pgStore) Transaction(ctx context.Context, id string) (event.Scored, error) {
	var rec []byte
	var scoredAt *time.Time
	// transaction_ids gives the event_time, which prunes the look-up to
	// one day's partitions and their (event_time, transaction_id) index.
	err := s.pool.QueryRow(ctx, `SELECT s.record, s.scored_at FROM transaction_ids t
		JOIN scored_transactions s ON s.event_time = t.event_time AND s.transaction_id = t.transaction_id
		WHERE t.transaction_id = $1`, id).Scan(&rec, &scoredAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return event.Scored{}, fmt.Errorf("transaction %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return event.Scored{}, fmt.Errorf("read transaction %s: %w", id, err)
	}
	var at time.Time
	if scoredAt != nil {
		at = *scoredAt
	}
	return decodeStored(rec, at)
}

func (s *pgStore) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM scored_transactions`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count transactions: %w", err)
	}
	return n, nil
}

func pgPH(n int) string { return "$" + strconv.Itoa(n) }

func pgTS(t time.Time) any { return t }

const pgStoredCols = `s.record, s.scored_at, s.kafka_partition, s.kafka_offset, s.event_time,
	l.disposition, l.note, l.analyst, l.created_at, l.updated_at`

func scanPGStored(rows pgx.Rows) ([]Stored, error) {
	defer rows.Close()
	return scanStored(rows, scanPGRow)
}

// scanPGRow reads one row of pgStoredCols.
func scanPGRow(row rowScanner) (Stored, error) {
	var (
		rec                 []byte
		scoredAt, c, u      *time.Time
		disp, note, analyst *string
		st                  Stored
	)
	if err := row.Scan(&rec, &scoredAt, &st.Partition, &st.Offset, &st.eventTime, &disp, &note, &analyst, &c, &u); err != nil {
		return Stored{}, fmt.Errorf("scan transaction: %w", err)
	}
	var at time.Time
	if scoredAt != nil {
		at = *scoredAt
	}
	var err error
	if st.Scored, err = decodeStored(rec, at); err != nil {
		return Stored{}, err
	}
	if disp != nil {
		st.Label = &Label{TransactionID: st.Scored.Transaction.TransactionID, Disposition: *disp,
			Note: *note, Analyst: *analyst, CreatedAt: *c, UpdatedAt: *u}
	}
	return st, nil
}

// pgClasses is the condition on the partition column class that q's
// decisions imply, as literals so that the planner prunes the partitions
// of the other classes (labeled rows may have any decision).
func pgClasses(decisions []string) string {
	if len(decisions) == 0 {
		return ""
	}
	cls := map[string]bool{"'l'": true}
	for _, d := range decisions {
		if d == event.DecisionApprove {
			cls["'a'"] = true
		} else {
			cls["'r'"] = true
		}
	}
	if len(cls) == 3 {
		return ""
	}
	out := make([]string, 0, len(cls))
	for _, c := range []string{"'a'", "'r'", "'l'"} {
		if cls[c] {
			out = append(out, c)
		}
	}
	return `s.class IN (` + strings.Join(out, ", ") + `)`
}

func (s *pgStore) Transactions(ctx context.Context, q Query) ([]Stored, error) {
	where, args := q.where(pgPH, pgTS)
	if c := pgClasses(q.Decisions); c != "" {
		where = strings.Replace(where, "WHERE ", "WHERE "+c+" AND ", 1)
	}
	args = append(args, q.Limit)
	rows, err := s.pool.Query(ctx, `SELECT `+pgStoredCols+`
		FROM scored_transactions s LEFT JOIN labels l ON l.transaction_id = s.transaction_id
		`+where+` ORDER BY s.event_time DESC, s.transaction_id DESC LIMIT `+pgPH(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("query transactions: %w", err)
	}
	return scanPGStored(rows)
}

func (s *pgStore) Range(ctx context.Context, from, to map[int32]int64, limit int) ([]Stored, error) {
	where, args := rangeWhere(from, to, pgPH)
	if where == "" {
		return nil, nil
	}
	where = strings.ReplaceAll(strings.ReplaceAll(where, "kafka_partition", "s.kafka_partition"), "kafka_offset", "s.kafka_offset")
	args = append(args, limit)
	rows, err := s.pool.Query(ctx, `SELECT `+pgStoredCols+`
		FROM scored_transactions s LEFT JOIN labels l ON l.transaction_id = s.transaction_id
		`+where+` ORDER BY s.kafka_partition, s.kafka_offset LIMIT `+pgPH(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("query range: %w", err)
	}
	return scanPGStored(rows)
}

// SetLabel stores the label and moves the transaction's row to the
// labeled partition (class 'l'), which retention keeps longest. The shared
// advisory lock keeps it from interleaving with a retention step, which
// takes the lock exclusively while it deletes ids (see retention_pg.go):
// a transaction is either labeled and kept, or expired and not labeled.
func (s *pgStore) SetLabel(ctx context.Context, l Label) (Label, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Label{}, fmt.Errorf("label %s: %w", l.TransactionID, err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, retentionLockID); err != nil {
		return Label{}, fmt.Errorf("label %s: %w", l.TransactionID, err)
	}
	err = tx.QueryRow(ctx, `INSERT INTO labels (transaction_id, disposition, note, analyst)
		SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM transaction_ids WHERE transaction_id = $1)
		ON CONFLICT (transaction_id) DO UPDATE SET disposition = excluded.disposition, note = excluded.note,
			analyst = excluded.analyst, updated_at = clock_timestamp()
		RETURNING created_at, updated_at`,
		l.TransactionID, l.Disposition, l.Note, l.Analyst).Scan(&l.CreatedAt, &l.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Label{}, fmt.Errorf("label %s: %w", l.TransactionID, ErrNotFound)
	}
	if err != nil {
		return Label{}, fmt.Errorf("label %s: %w", l.TransactionID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE scored_transactions s SET class = 'l' FROM transaction_ids t
		WHERE t.transaction_id = $1 AND s.event_time = t.event_time AND s.transaction_id = t.transaction_id
		  AND s.class <> 'l'`, l.TransactionID); err != nil {
		return Label{}, fmt.Errorf("label %s: move to the labeled partition: %w", l.TransactionID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Label{}, fmt.Errorf("label %s: %w", l.TransactionID, err)
	}
	return l, nil
}

func (s *pgStore) Label(ctx context.Context, id string) (Label, error) {
	l := Label{TransactionID: id}
	err := s.pool.QueryRow(ctx, `SELECT disposition, note, analyst, created_at, updated_at FROM labels WHERE transaction_id = $1`, id).
		Scan(&l.Disposition, &l.Note, &l.Analyst, &l.CreatedAt, &l.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Label{}, fmt.Errorf("label %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Label{}, fmt.Errorf("read label %s: %w", id, err)
	}
	return l, nil
}

func (s *pgStore) Labeled(ctx context.Context, afterID string, limit int) ([]Stored, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+pgStoredCols+`
		FROM labels l JOIN transaction_ids t ON t.transaction_id = l.transaction_id
		JOIN scored_transactions s ON s.class = 'l' AND s.event_time = t.event_time AND s.transaction_id = t.transaction_id
		WHERE l.transaction_id > $1 ORDER BY l.transaction_id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("query labeled: %w", err)
	}
	return scanPGStored(rows)
}

func (s *pgStore) CreateSession(ctx context.Context, ss Session) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO dashboard_sessions (session_key, created_at, idle_until, expires_at)
		VALUES ($1, $2, $3, $4)`, ss.Key, ss.CreatedAt.UTC(), ss.IdleUntil.UTC(), ss.ExpiresAt.UTC()); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

func (s *pgStore) Session(ctx context.Context, key []byte) (Session, error) {
	ss := Session{Key: key}
	err := s.pool.QueryRow(ctx, `SELECT created_at, idle_until, expires_at FROM dashboard_sessions WHERE session_key = $1`, key).
		Scan(&ss.CreatedAt, &ss.IdleUntil, &ss.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	return ss, nil
}

func (s *pgStore) TouchSession(ctx context.Context, key []byte, idleUntil time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE dashboard_sessions SET idle_until = LEAST($2, expires_at)
		WHERE session_key = $1 AND idle_until < LEAST($2, expires_at)`, key, idleUntil.UTC()); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

func (s *pgStore) DeleteSession(ctx context.Context, key []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM dashboard_sessions WHERE session_key = $1`, key); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func (s *pgStore) DeleteEndedSessions(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM dashboard_sessions WHERE idle_until <= $1 OR expires_at <= $1`, now.UTC())
	if err != nil {
		return 0, fmt.Errorf("delete ended sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func (s *pgStore) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

func (s *pgStore) Close() error {
	s.pool.Close()
	return nil
}
