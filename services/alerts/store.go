package alerts

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// ErrNotFound reports a transaction that is not (yet) stored.
var ErrNotFound = errors.New("not found")

// Record is one scored-transactions record as the sink stores it.
type Record struct {
	// Scored is the decoded value, with ScoredAt from the record header.
	Scored event.Scored
	// Value is the record value as consumed, stored verbatim as the
	// "record" column; when nil, Scored is encoded instead.
	Value []byte
	// Partition and Offset locate the record in the scored-transactions
	// topic (not the raw-transactions position, which Scored carries).
	Partition int32
	Offset    int64
	// Source is the consumed record, for a dead letter should the row be
	// refused; nil for rows not read from Kafka.
	Source *kgo.Record
}

// Store is the alerts database. PostgreSQL and SQLite implement it, and one
// conformance suite (store_test.go) runs against both.
//
// The sink's exactly-once guarantee rests on SaveBatch: rows and the
// consumer positions they were read up to commit in one transaction, so
// after any crash the database holds exactly the rows before its stored
// positions.
type Store interface {
	// SaveBatch stores rows and sets, for topic, the next offset to consume
	// of each partition in offsets, in one database transaction. A row whose
	// transaction_id is already stored (or held by an earlier row of rows)
	// with the same record is a redelivery and skipped; a stored offset only
	// ever moves forward, so a zombie writer cannot rewind it. It returns how
	// many rows were new.
	//
	// A row whose transaction_id is stored with a different record is a
	// conflict: then SaveBatch stores nothing and returns a *ConflictError
	// listing every conflicting row of the batch. The caller dead-letters
	// them and saves the batch again without them (docs/design/dead-letters.md).
	SaveBatch(ctx context.Context, topic string, rows []Record, offsets map[int32]int64) (stored int, err error)

	// Offsets returns the next offset to consume per partition of topic;
	// partitions never saved are absent.
	Offsets(ctx context.Context, topic string) (map[int32]int64, error)

	// Transaction returns the stored scored record with this id, or
	// ErrNotFound.
	Transaction(ctx context.Context, id string) (event.Scored, error)

	// Count returns how many scored transactions are stored.
	Count(ctx context.Context) (int64, error)

	// Transactions returns up to q.Limit stored transactions matching q,
	// newest event time first, ties broken by transaction_id descending:
	// a total order, so cursor pages never skip or repeat a row.
	Transactions(ctx context.Context, q Query) ([]Stored, error)

	// Range returns the stored records of scored-transactions positions
	// [from[p], to[p]) for each partition p in to (from[p] absent means 0),
	// in partition then offset order, at most limit of them. It backfills
	// a live-stream client that reconnects.
	Range(ctx context.Context, from, to map[int32]int64, limit int) ([]Stored, error)

	// SetLabel stores an analyst's disposition of a stored transaction,
	// replacing an earlier one (CreatedAt is kept), and returns it as
	// stored. It returns ErrNotFound if the transaction is not stored.
	SetLabel(ctx context.Context, l Label) (Label, error)

	// Label returns the disposition of a transaction, or ErrNotFound.
	Label(ctx context.Context, transactionID string) (Label, error)

	// Labeled returns labelled transactions with their scored records, the
	// training set, in transaction_id order after afterID, at most limit.
	Labeled(ctx context.Context, afterID string, limit int) ([]Stored, error)

	// CreateSession stores a new dashboard login session.
	CreateSession(ctx context.Context, s Session) error

	// Session returns the session stored under key, ended or not, or
	// ErrNotFound.
	Session(ctx context.Context, key []byte) (Session, error)

	// TouchSession moves the session's IdleUntil forward to idleUntil,
	// never back and never past its ExpiresAt. A missing session is no
	// error: there is nothing to extend.
	TouchSession(ctx context.Context, key []byte, idleUntil time.Time) error

	// DeleteSession removes the session stored under key (a logout); a
	// missing one is no error.
	DeleteSession(ctx context.Context, key []byte) error

	// DeleteEndedSessions removes the sessions whose IdleUntil or
	// ExpiresAt is not after now, and returns how many.
	DeleteEndedSessions(ctx context.Context, now time.Time) (int, error)

	// SetRetention sets the policy SaveBatch applies to arriving rows: a
	// row already expired when it arrives is not stored (see
	// RetentionPolicy.live). The zero policy keeps everything.
	SetRetention(p RetentionPolicy)

	// Maintain runs one retention pass at now: it creates the partitions
	// of the coming days and removes what p says has expired, in small
	// batches that never block SaveBatch for long. Labeled transactions
	// are removed only by p.Labeled. One replica at a time does the work;
	// the others return with Skipped set.
	Maintain(ctx context.Context, p RetentionPolicy, now time.Time) (MaintainResult, error)

	// Ping checks that the database answers.
	Ping(ctx context.Context) error

	// Close releases the connections.
	Close() error
}

// Conflict is a row SaveBatch refused: its transaction_id is stored from
// another scored-transactions record with different content.
type Conflict struct {
	Row Record
	// StoredPartition and StoredOffset locate the record stored under the
	// same transaction_id.
	StoredPartition int32
	StoredOffset    int64
}

func (c Conflict) Error() string {
	return fmt.Sprintf("transaction_id %s reused with different content: already stored from %s partition %d offset %d",
		c.Row.Scored.Transaction.TransactionID, event.TopicScored, c.StoredPartition, c.StoredOffset)
}

// ConflictError is SaveBatch's error when rows reuse a stored
// transaction_id with different content; nothing of the batch is saved.
type ConflictError struct {
	Conflicts []Conflict
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("save batch: %d rows reuse a stored transaction_id with different content, first: %v",
		len(e.Conflicts), e.Conflicts[0].Error())
}

// Dispositions an analyst can give an alert.
const (
	DispositionConfirmedFraud = "confirmed_fraud"
	DispositionFalsePositive  = "false_positive"
)

// MaxPageSize bounds Query.Limit.
const MaxPageSize = 500

// Label is an analyst's disposition of one transaction.
type Label struct {
	TransactionID string    `json:"transaction_id"`
	Disposition   string    `json:"disposition"`
	Note          string    `json:"note,omitempty"`
	Analyst       string    `json:"analyst,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Session is a dashboard login, stored so that every replica accepts it
// and a logout on one ends it on all (see auth.go). Key is a keyed hash of
// the random id the cookie holds; the id itself is never stored.
type Session struct {
	Key       []byte // 32 bytes
	CreatedAt time.Time
	IdleUntil time.Time // the session ends then unless it is used before
	ExpiresAt time.Time // the session ends then in any case
}

// Query selects stored transactions for the alert queue and card history.
type Query struct {
	Decisions []string  // any of these decisions; empty means every decision
	CardID    string    // one card; empty means every card
	From, To  time.Time // event_time in [From, To); a zero bound is open
	After     *Cursor   // continue after this row, the last of the previous page
	Limit     int       // 1 to MaxPageSize
}

// Cursor is a position in the (event_time, transaction_id) descending order.
type Cursor struct {
	EventTime     time.Time
	TransactionID string
}

// Stored is a stored scored transaction, where it was read from and, if an
// analyst gave one, its label.
type Stored struct {
	Scored    event.Scored
	Partition int32
	Offset    int64
	Label     *Label

	// eventTime is the event_time column as stored (PostgreSQL keeps
	// microseconds), which is what cursors must compare against.
	eventTime time.Time
}

// Cursor is the position just after s in Transactions' order.
func (s Stored) Cursor() Cursor {
	return Cursor{EventTime: s.eventTime, TransactionID: s.Scored.Transaction.TransactionID}
}

// where builds the WHERE clause of q with placeholders from ph (called
// with the 1-based argument number) and times converted by ts.
func (q Query) where(ph func(n int) string, ts func(time.Time) any) (string, []any) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return ph(len(args))
	}
	if len(q.Decisions) > 0 {
		ps := make([]string, len(q.Decisions))
		for i, d := range q.Decisions {
			ps[i] = arg(d)
		}
		conds = append(conds, "s.decision IN ("+strings.Join(ps, ", ")+")")
	}
	if q.CardID != "" {
		conds = append(conds, "s.card_id = "+arg(q.CardID))
	}
	if !q.From.IsZero() {
		conds = append(conds, "s.event_time >= "+arg(ts(q.From)))
	}
	if !q.To.IsZero() {
		conds = append(conds, "s.event_time < "+arg(ts(q.To)))
	}
	if q.After != nil {
		conds = append(conds, "(s.event_time, s.transaction_id) < ("+arg(ts(q.After.EventTime))+", "+arg(q.After.TransactionID)+")")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return "WHERE " + strings.Join(conds, " AND "), args
}

// rangeWhere builds the WHERE clause of Store.Range.
func rangeWhere(from, to map[int32]int64, ph func(n int) string) (string, []any) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return ph(len(args))
	}
	parts := make([]int32, 0, len(to))
	for p := range to {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		if from[p] >= to[p] {
			continue
		}
		conds = append(conds, fmt.Sprintf("(kafka_partition = %s AND kafka_offset >= %s AND kafka_offset < %s)",
			arg(p), arg(from[p]), arg(to[p])))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return "WHERE " + strings.Join(conds, " OR "), args
}

// OpenStore opens the database named by a DATABASE_URL (see
// Config.DatabaseURL) and applies its pending migrations.
func OpenStore(ctx context.Context, databaseURL string, maxConns int, log *slog.Logger) (Store, error) {
	db, err := parseDatabaseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	switch db.driver {
	case "postgres":
		return openPostgres(ctx, db.dsn, maxConns, log)
	default:
		return openSQLite(ctx, db.dsn, log)
	}
}

//go:embed migrations
var migrationFS embed.FS

// migrate applies the pending migrations/<dialect>/NNNN_name.sql files with
// goose (github.com/pressly/goose/v3), which records them in
// goose_db_version. locker, when not nil, serializes replicas starting at
// once. Migrations before goose used a table schema_migrations; 0001 is
// written with IF NOT EXISTS so those databases adopt goose as they are.
func migrate(ctx context.Context, db *sql.DB, dialect goose.Dialect, dir string, locker lock.SessionLocker, log *slog.Logger) error {
	fsys, err := fs.Sub(migrationFS, path.Join("migrations", dir))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithSlog(log.With("db", dir))}
	if locker != nil {
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", dir, err)
	}
	for _, r := range res {
		log.Info("applied migration", "db", dir, "migration", r.Source.Path, "took", r.Duration)
	}
	return nil
}

// encodeRecord returns the JSON stored in the record column.
func encodeRecord(r Record) ([]byte, error) {
	if r.Value != nil {
		return r.Value, nil
	}
	b, err := r.Scored.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode scored record %s: %w", r.Scored.Transaction.TransactionID, err)
	}
	return b, nil
}

// decodeRecord reads a stored record leniently: it was validated on the way
// in, and a newer writer's extra fields must not make old rows unreadable.
func decodeRecord(b []byte, scoredAt time.Time) (event.Scored, error) {
	var s event.Scored
	if err := event.Unmarshal(b, &s, event.IgnoreUnknown); err != nil {
		return event.Scored{}, fmt.Errorf("decode stored record: %w", err)
	}
	s.ScoredAt = scoredAt
	return s, nil
}

// rowScanner is what pgx.Rows and *sql.Rows have in common for reading a result,
// so both stores share the loops below; each closes its own rows, since
// their Close methods differ.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanOffsets reads (partition, next_offset) rows.
func scanOffsets(rs rowScanner) (map[int32]int64, error) {
	out := map[int32]int64{}
	for rs.Next() {
		var p int32
		var o int64
		if err := rs.Scan(&p, &o); err != nil {
			return nil, fmt.Errorf("read offsets: %w", err)
		}
		out[p] = o
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read offsets: %w", err)
	}
	return out, nil
}

// scanStored reads every row with scanRow, which knows how its database
// returns the stored columns.
func scanStored(rs rowScanner, scanRow func(rowScanner) (Stored, error)) ([]Stored, error) {
	var out []Stored
	for rs.Next() {
		st, err := scanRow(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read transactions: %w", err)
	}
	return out, nil
}

// nullTime is nil for the zero time, so unknown times are SQL NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// decodeStored reads a record column: the stored form (codec.go) expanded
// to the record value as consumed, then decoded.
func decodeStored(stored []byte, scoredAt time.Time) (event.Scored, error) {
	b, err := expandRecord(stored)
	if err != nil {
		return event.Scored{}, err
	}
	return decodeRecord(b, scoredAt)
}
