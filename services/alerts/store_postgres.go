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
}

var _ Store = (*pgStore)(nil)

// migrationLockID is the advisory lock that serializes migrations when
// several replicas start at once.
const migrationLockID = 0x66726175645f6d31 // "fraud_m1"

func openPostgres(ctx context.Context, dsn string, maxConns int, log *slog.Logger) (*pgStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("DATABASE_URL: not a valid PostgreSQL URL")
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
	"transaction_id", "card_id", "event_time", "amount_minor", "currency", "merchant_country",
	"score", "decision", "kafka_partition", "kafka_offset", "scored_at", "ingest_time", "record",
}

// SaveBatch copies the rows into a temporary table and inserts from there
// with ON CONFLICT DO NOTHING: COPY is the fast path for bulk rows, but
// COPY itself cannot skip rows that are already stored.
func (s *pgStore) SaveBatch(ctx context.Context, topic string, rows []Record, offsets map[int32]int64) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("save batch: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	stored := 0
	if len(rows) > 0 {
		// Created once per connection; ON COMMIT DELETE ROWS empties it
		// after every batch without dropping it from the catalog. The
		// record is text here and parsed into jsonb once, by the INSERT,
		// so the sink parses each record as often as a bare COPY does.
		// Constraints are checked by the INSERT into scored_transactions.
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS scored_in_v2 (
			transaction_id text, card_id text, event_time timestamptz, amount_minor bigint,
			currency text, merchant_country text, score double precision, decision text,
			kafka_partition integer, kafka_offset bigint, scored_at timestamptz,
			ingest_time timestamptz, record text) ON COMMIT DELETE ROWS`); err != nil {
			return 0, fmt.Errorf("save batch: temp table: %w", err)
		}
		src := make([][]any, len(rows))
		for i, r := range rows {
			rec, err := encodeRecord(r)
			if err != nil {
				return 0, err
			}
			t := r.Scored.Transaction
			src[i] = []any{t.TransactionID, t.CardID, t.EventTime, t.AmountMinor, t.Currency, t.MerchantCountry,
				r.Scored.Score, r.Scored.Decision, r.Partition, r.Offset, nullTime(r.Scored.ScoredAt), nullTime(t.IngestTime), string(rec)}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"scored_in_v2"}, pgColumns, pgx.CopyFromRows(src)); err != nil {
			return 0, fmt.Errorf("save batch: copy: %w", err)
		}
		// Ordered so that, should one batch hold a transaction twice, the
		// first occurrence in the topic wins.
		tag, err := tx.Exec(ctx, `INSERT INTO scored_transactions
			(transaction_id, card_id, event_time, amount_minor, currency, merchant_country,
			 score, decision, kafka_partition, kafka_offset, scored_at, ingest_time, record)
			SELECT transaction_id, card_id, event_time, amount_minor, currency, merchant_country,
			 score, decision, kafka_partition, kafka_offset, scored_at, ingest_time, record::jsonb
			FROM scored_in_v2 ORDER BY kafka_partition, kafka_offset
			ON CONFLICT (transaction_id) DO NOTHING`)
		if err != nil {
			return 0, fmt.Errorf("save batch: insert: %w", err)
		}
		stored = int(tag.RowsAffected())
		if stored < len(rows) {
			// Some ids were stored already (or twice in rows): each is a
			// redelivery if its record is the same, else a conflict. Only
			// batches with such rows pay for this look-up.
			if err := pgConflicts(ctx, tx, rows); err != nil {
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

// pgConflicts returns a *ConflictError for the rows of scored_in_v2 whose
// transaction_id is stored from another position with another record
// (jsonb equality: the same content, whatever the key order), nil if
// there are none.
func pgConflicts(ctx context.Context, tx pgx.Tx, rows []Record) error {
	res, err := tx.Query(ctx, `SELECT i.kafka_partition, i.kafka_offset, s.kafka_partition, s.kafka_offset
		FROM scored_in_v2 i JOIN scored_transactions s ON s.transaction_id = i.transaction_id
		WHERE (s.kafka_partition, s.kafka_offset) <> (i.kafka_partition, i.kafka_offset)
		  AND s.record <> i.record::jsonb
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
		if err := res.Scan(&in.p, &in.o, &c.StoredPartition, &c.StoredOffset); err != nil {
			return fmt.Errorf("save batch: find conflicts: %w", err)
		}
		c.Row = byPos[in]
		conflicts = append(conflicts, c)
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
	err := s.pool.QueryRow(ctx, `SELECT record, scored_at FROM scored_transactions WHERE transaction_id = $1`, id).
		Scan(&rec, &scoredAt)
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
	return decodeRecord(rec, at)
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
	if st.Scored, err = decodeRecord(rec, at); err != nil {
		return Stored{}, err
	}
	if disp != nil {
		st.Label = &Label{TransactionID: st.Scored.Transaction.TransactionID, Disposition: *disp,
			Note: *note, Analyst: *analyst, CreatedAt: *c, UpdatedAt: *u}
	}
	return st, nil
}

func (s *pgStore) Transactions(ctx context.Context, q Query) ([]Stored, error) {
	where, args := q.where(pgPH, pgTS)
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

func (s *pgStore) SetLabel(ctx context.Context, l Label) (Label, error) {
	err := s.pool.QueryRow(ctx, `INSERT INTO labels (transaction_id, disposition, note, analyst)
		SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM scored_transactions WHERE transaction_id = $1)
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
		FROM labels l JOIN scored_transactions s ON s.transaction_id = l.transaction_id
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
