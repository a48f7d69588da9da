package alerts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/fraudstream/fraudstream/pkg/event"
)

// sqliteTime is the stored time format: fixed width, so text order is time
// order (RFC3339Nano trims zeros and would not sort).
const sqliteTime = "2006-01-02T15:04:05.000000000Z"

// sqliteStore keeps one writer connection, because SQLite allows a single
// writer anyway and a pool would only turn contention into SQLITE_BUSY, and
// a small pool of read-only connections that WAL lets run beside it.
type sqliteStore struct {
	w, r *sql.DB
	log  *slog.Logger
	retentionState

	cursorsMu sync.Mutex
	cursors   map[string]string // retention class → event_time the last delete batch reached
}

var _ Store = (*sqliteStore)(nil)

func openSQLite(ctx context.Context, path string, log *slog.Logger) (*sqliteStore, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("database URL: create directory for %s: %w", path, err)
		}
	}
	// _txlock=immediate takes the write lock at BEGIN, so a transaction
	// never fails half-way on a lock upgrade.
	dsn := func(extra ...string) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)") // durable at each WAL checkpoint; commits survive a process crash
		for _, e := range extra {
			q.Add("_pragma", e)
		}
		return "file:" + path + "?_txlock=immediate&" + q.Encode()
	}
	// The writer's page cache (64 MiB, SQLite's default is 2 MiB) holds
	// the indexes' hot pages: inserts land all over the id and card
	// indexes, and past a few MB each one would go to the file system.
	w, err := sql.Open("sqlite", dsn("cache_size(-65536)"))
	if err != nil {
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	s := &sqliteStore{w: w, log: log}
	if err := s.useIncrementalVacuum(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn("query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s.r = r
	return s, nil
}

func (s *sqliteStore) migrate(ctx context.Context) error {
	// SQLite has a single writer: the immediate-mode write lock taken by
	// each migration's transaction serializes concurrent starts.
	return migrate(ctx, s.w, goose.DialectSQLite3, "sqlite", nil, s.log)
}

func sqliteNullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(sqliteTime)
}

func (s *sqliteStore) SaveBatch(ctx context.Context, topic string, rows []Record, offsets map[int32]int64) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("save batch: begin: %w", err)
	}
	defer tx.Rollback()
	// ON CONFLICT DO NOTHING rather than INSERT OR IGNORE: OR IGNORE would
	// also silently drop rows that break a NOT NULL or CHECK constraint,
	// while their offsets advanced; such a batch must fail instead.
	ins, err := tx.PrepareContext(ctx, `INSERT INTO scored_transactions
		(transaction_id, card_id, event_time, decision, kafka_partition, kafka_offset, scored_at, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (transaction_id) DO NOTHING`)
	if err != nil {
		return 0, fmt.Errorf("save batch: %w", err)
	}
	defer ins.Close()
	stored := 0
	var conflicts []Conflict
	for _, r := range s.policy().live(rows, s.clock()) {
		value, err := encodeRecord(r)
		if err != nil {
			return 0, err
		}
		rec, err := compressRecord(value)
		if err != nil {
			return 0, err
		}
		t := r.Scored.Transaction
		res, err := ins.ExecContext(ctx, t.TransactionID, t.CardID, t.EventTime.UTC().Format(sqliteTime),
			r.Scored.Decision, r.Partition, r.Offset, sqliteNullTime(r.Scored.ScoredAt), rec)
		if err != nil {
			return 0, fmt.Errorf("save batch: insert %s: %w", t.TransactionID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("save batch: insert %s: %w", t.TransactionID, err)
		}
		if n == 1 {
			stored++
			continue
		}
		// Already stored: a redelivery if the record is the same.
		var held []byte
		var c Conflict
		if err := tx.QueryRowContext(ctx, `SELECT record, kafka_partition, kafka_offset FROM scored_transactions WHERE transaction_id = ?`,
			t.TransactionID).Scan(&held, &c.StoredPartition, &c.StoredOffset); err != nil {
			return 0, fmt.Errorf("save batch: read stored %s: %w", t.TransactionID, err)
		}
		heldValue, err := expandRecord(held)
		if err != nil {
			return 0, fmt.Errorf("save batch: read stored %s: %w", t.TransactionID, err)
		}
		if !sameRecord(heldValue, value) {
			c.Row = r
			conflicts = append(conflicts, c)
		}
	}
	if len(conflicts) > 0 {
		return 0, &ConflictError{Conflicts: conflicts} // rolled back
	}
	for p, next := range offsets {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sink_offsets (topic, partition, next_offset) VALUES (?, ?, ?)
			ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at
			WHERE excluded.next_offset > sink_offsets.next_offset`, topic, p, next); err != nil {
			return 0, fmt.Errorf("save batch: offset of %s/%d: %w", topic, p, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("save batch: commit: %w", err)
	}
	return stored, nil
}

func (s *sqliteStore) Offsets(ctx context.Context, topic string) (map[int32]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT partition, next_offset FROM sink_offsets WHERE topic = ?`, topic)
	if err != nil {
		return nil, fmt.Errorf("read offsets: %w", err)
	}
	defer rows.Close()
	return scanOffsets(rows)
}

func (s *sqliteStore) Transaction(ctx context.Context, id string) (event.Scored, error) {
	var rec []byte
	var scoredAt sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT record, scored_at FROM scored_transactions WHERE transaction_id = ?`, id).
		Scan(&rec, &scoredAt)
	if errors.Is(err, sql.ErrNoRows) {
		return event.Scored{}, fmt.Errorf("transaction %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return event.Scored{}, fmt.Errorf("read transaction %s: %w", id, err)
	}
	var at time.Time
	if scoredAt.Valid {
		if at, err = time.Parse(time.RFC3339Nano, scoredAt.String); err != nil {
			return event.Scored{}, fmt.Errorf("read transaction %s: scored_at: %w", id, err)
		}
	}
	return decodeStored(rec, at)
}

func (s *sqliteStore) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM scored_transactions`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count transactions: %w", err)
	}
	return n, nil
}

func sqlitePH(int) string { return "?" }

func sqliteTS(t time.Time) any { return t.UTC().Format(sqliteTime) }

func parseSQLiteTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

// sqliteStoredCols are the columns scanSQLiteStored reads, from
// scored_transactions s LEFT JOIN labels l.
const sqliteStoredCols = `s.record, s.scored_at, s.kafka_partition, s.kafka_offset, s.event_time,
	l.disposition, l.note, l.analyst, l.created_at, l.updated_at`

func scanSQLiteStored(rows *sql.Rows) ([]Stored, error) {
	defer rows.Close()
	return scanStored(rows, scanSQLiteRow)
}

// scanSQLiteRow reads one row of sqliteStoredCols; times are stored as text.
func scanSQLiteRow(row rowScanner) (Stored, error) {
	var (
		rec                                 []byte
		eventTime                           string
		scoredAt, disp, note, analyst, c, u sql.NullString
		st                                  Stored
	)
	if err := row.Scan(&rec, &scoredAt, &st.Partition, &st.Offset, &eventTime, &disp, &note, &analyst, &c, &u); err != nil {
		return Stored{}, fmt.Errorf("scan transaction: %w", err)
	}
	var at time.Time
	var err error
	if scoredAt.Valid {
		if at, err = parseSQLiteTime(scoredAt.String); err != nil {
			return Stored{}, err
		}
	}
	if st.Scored, err = decodeStored(rec, at); err != nil {
		return Stored{}, err
	}
	if st.eventTime, err = parseSQLiteTime(eventTime); err != nil {
		return Stored{}, err
	}
	if disp.Valid {
		l := &Label{TransactionID: st.Scored.Transaction.TransactionID, Disposition: disp.String, Note: note.String, Analyst: analyst.String}
		if l.CreatedAt, err = parseSQLiteTime(c.String); err != nil {
			return Stored{}, err
		}
		if l.UpdatedAt, err = parseSQLiteTime(u.String); err != nil {
			return Stored{}, err
		}
		st.Label = l
	}
	return st, nil
}

func (s *sqliteStore) Transactions(ctx context.Context, q Query) ([]Stored, error) {
	where, args := q.where(sqlitePH, sqliteTS)
	if len(q.Decisions) > 0 && !slices.Contains(q.Decisions, event.DecisionApprove) {
		// Implies the partial index scored_transactions_alerts' condition
		// in the form SQLite's planner recognises.
		where = strings.Replace(where, "WHERE ", "WHERE s.decision <> 'approve' AND ", 1)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+sqliteStoredCols+`
		FROM scored_transactions s LEFT JOIN labels l ON l.transaction_id = s.transaction_id
		`+where+` ORDER BY s.event_time DESC, s.transaction_id DESC LIMIT ?`, append(args, q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("query transactions: %w", err)
	}
	return scanSQLiteStored(rows)
}

func (s *sqliteStore) Range(ctx context.Context, from, to map[int32]int64, limit int) ([]Stored, error) {
	where, args := rangeWhere(from, to, sqlitePH)
	if where == "" {
		return nil, nil
	}
	where = strings.ReplaceAll(strings.ReplaceAll(where, "kafka_partition", "s.kafka_partition"), "kafka_offset", "s.kafka_offset")
	rows, err := s.r.QueryContext(ctx, `SELECT `+sqliteStoredCols+`
		FROM scored_transactions s LEFT JOIN labels l ON l.transaction_id = s.transaction_id
		`+where+` ORDER BY s.kafka_partition, s.kafka_offset LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("query range: %w", err)
	}
	return scanSQLiteStored(rows)
}

func (s *sqliteStore) SetLabel(ctx context.Context, l Label) (Label, error) {
	now := time.Now().UTC().Format(sqliteTime)
	var c, u string
	// The WHERE EXISTS makes a label of an unknown transaction insert
	// nothing (SQLite does not enforce the foreign key by default).
	err := s.w.QueryRowContext(ctx, `INSERT INTO labels (transaction_id, disposition, note, analyst, created_at, updated_at)
		SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM scored_transactions WHERE transaction_id = ?)
		ON CONFLICT (transaction_id) DO UPDATE SET disposition = excluded.disposition, note = excluded.note,
			analyst = excluded.analyst, updated_at = excluded.updated_at
		RETURNING created_at, updated_at`,
		l.TransactionID, l.Disposition, l.Note, l.Analyst, now, now, l.TransactionID).Scan(&c, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return Label{}, fmt.Errorf("label %s: %w", l.TransactionID, ErrNotFound)
	}
	if err != nil {
		return Label{}, fmt.Errorf("label %s: %w", l.TransactionID, err)
	}
	if l.CreatedAt, err = parseSQLiteTime(c); err != nil {
		return Label{}, err
	}
	if l.UpdatedAt, err = parseSQLiteTime(u); err != nil {
		return Label{}, err
	}
	return l, nil
}

func (s *sqliteStore) Label(ctx context.Context, id string) (Label, error) {
	l := Label{TransactionID: id}
	var c, u string
	err := s.r.QueryRowContext(ctx, `SELECT disposition, note, analyst, created_at, updated_at FROM labels WHERE transaction_id = ?`, id).
		Scan(&l.Disposition, &l.Note, &l.Analyst, &c, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return Label{}, fmt.Errorf("label %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Label{}, fmt.Errorf("read label %s: %w", id, err)
	}
	if l.CreatedAt, err = parseSQLiteTime(c); err != nil {
		return Label{}, err
	}
	if l.UpdatedAt, err = parseSQLiteTime(u); err != nil {
		return Label{}, err
	}
	return l, nil
}

func (s *sqliteStore) Labeled(ctx context.Context, afterID string, limit int) ([]Stored, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+sqliteStoredCols+`
		FROM labels l JOIN scored_transactions s ON s.transaction_id = l.transaction_id
		WHERE l.transaction_id > ? ORDER BY l.transaction_id LIMIT ?`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("query labeled: %w", err)
	}
	return scanSQLiteStored(rows)
}

func (s *sqliteStore) CreateSession(ctx context.Context, ss Session) error {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO dashboard_sessions (session_key, created_at, idle_until, expires_at)
		VALUES (?, ?, ?, ?)`, ss.Key, sqliteTS(ss.CreatedAt), sqliteTS(ss.IdleUntil), sqliteTS(ss.ExpiresAt)); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

func (s *sqliteStore) Session(ctx context.Context, key []byte) (Session, error) {
	ss := Session{Key: key}
	var c, idle, exp string
	err := s.r.QueryRowContext(ctx, `SELECT created_at, idle_until, expires_at FROM dashboard_sessions WHERE session_key = ?`, key).
		Scan(&c, &idle, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	for _, f := range []struct {
		dst *time.Time
		src string
	}{{&ss.CreatedAt, c}, {&ss.IdleUntil, idle}, {&ss.ExpiresAt, exp}} {
		if *f.dst, err = parseSQLiteTime(f.src); err != nil {
			return Session{}, fmt.Errorf("read session: %w", err)
		}
	}
	return ss, nil
}

func (s *sqliteStore) TouchSession(ctx context.Context, key []byte, idleUntil time.Time) error {
	// min() of two fixed-width UTC texts is the earlier time.
	if _, err := s.w.ExecContext(ctx, `UPDATE dashboard_sessions SET idle_until = min(?1, expires_at)
		WHERE session_key = ?2 AND idle_until < min(?1, expires_at)`, sqliteTS(idleUntil), key); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

func (s *sqliteStore) DeleteSession(ctx context.Context, key []byte) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM dashboard_sessions WHERE session_key = ?`, key); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func (s *sqliteStore) DeleteEndedSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM dashboard_sessions WHERE idle_until <= ?1 OR expires_at <= ?1`, sqliteTS(now))
	if err != nil {
		return 0, fmt.Errorf("delete ended sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete ended sessions: %w", err)
	}
	return int(n), nil
}

func (s *sqliteStore) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

func (s *sqliteStore) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}
