package alerts

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL advisory locks of retention (one key space: the same key at
// session and transaction level would conflict with itself).
const (
	// retentionPassLockID is held for a whole pass at session level: one
	// replica works, the others skip the pass.
	retentionPassLockID = 0x66726175645f7231 // "fraud_r1"
	// retentionLockID is taken exclusively per delete batch at transaction
	// level, against SetLabel's shared one.
	retentionLockID = 0x66726175645f7232 // "fraud_r2"
)

// retentionBatch is how many ids one short delete transaction removes.
const retentionBatch = 5000

// pgLockTimeout bounds how long a DDL statement of a pass waits for a
// lock; while it waits, the sink's inserts would queue behind it. Past it
// the step fails and the next pass retries.
const pgLockTimeout = "500ms"

// pgDaysAhead is how many days after today have their partitions created
// ahead, so that midnight never finds the sink without a partition.
const pgDaysAhead = 2

// pgRanged are the day-partitioned classes: their parent table and the
// policy field that retains them.
var pgRanged = []struct {
	class, table string
	keep         func(RetentionPolicy) time.Duration
}{
	{"approved", "scored_transactions_approve", func(p RetentionPolicy) time.Duration { return p.Approved }},
	{"alerts", "scored_transactions_alert", func(p RetentionPolicy) time.Duration { return p.Alerts }},
}

const pgDayFormat = "20060102"

func pgDayTable(parent string, day time.Time) string { return parent + "_p" + day.Format(pgDayFormat) }

func (s *pgStore) Maintain(ctx context.Context, p RetentionPolicy, now time.Time) (MaintainResult, error) {
	var res MaintainResult
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("retention: %w", err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, retentionPassLockID).Scan(&got); err != nil {
		return res, fmt.Errorf("retention: lock: %w", err)
	}
	if !got {
		res.Skipped = true
		return res, nil
	}
	defer func() {
		// A session lock outlives a cancelled ctx: release it on a fresh one.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, retentionPassLockID); err != nil {
			conn.Conn().Close(uctx) // closing the session releases the lock
		}
	}()
	var errs []error
	n, err := s.createDays(ctx, now)
	res.PartitionsCreated += n
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range pgRanged {
		h := horizon(r.keep(p), now)
		if h.IsZero() {
			continue
		}
		days, err := s.dayPartitions(ctx, r.table)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, day := range days {
			// A day is dropped once all of it is past the horizon: the sink
			// no longer stores rows of it (RetentionPolicy.live).
			if day.AddDate(0, 0, 1).After(h) {
				break
			}
			n, err := s.dropDay(ctx, r.table, day)
			if err != nil {
				errs = append(errs, err)
				break
			}
			res.deleted(r.class, n)
			res.PartitionsDropped++
		}
		// Late or early rows in the default partition expire row by row.
		n, err := s.deleteBatches(ctx, r.table+"_default", h)
		res.deleted(r.class, n)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if h := horizon(p.Labeled, now); !h.IsZero() {
		n, err := s.deleteBatches(ctx, "scored_transactions_labeled", h)
		res.deleted("labeled", n)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

// createDays creates the day partitions from yesterday to pgDaysAhead
// days after today that do not exist yet. openPostgres calls it before the
// sink starts, so that rows of today never wait in a default partition: an
// INSERT routed to the default while ATTACH changes its constraint fails
// (and the sink retries the batch).
func (s *pgStore) createDays(ctx context.Context, now time.Time) (int, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	var errs []error
	n := 0
	for _, r := range pgRanged {
		for d := -1; d <= pgDaysAhead; d++ {
			created, err := s.createDay(ctx, r.table, today.AddDate(0, 0, d))
			if err != nil {
				errs = append(errs, err)
			}
			if created {
				n++
			}
		}
	}
	return n, errors.Join(errs...)
}

// createDay creates the partition of parent for day unless it exists. It
// is created detached, filled with the rows of that day the default
// partition caught, and attached, in one short transaction: a plain
// CREATE … PARTITION OF would fail if the default held such rows.
func (s *pgStore) createDay(ctx context.Context, parent string, day time.Time) (bool, error) {
	name := pgDayTable(parent, day)
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
		return false, fmt.Errorf("retention: create %s: %w", name, err)
	}
	if exists {
		return false, nil
	}
	lo, hi := day, day.AddDate(0, 0, 1)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		id := pgx.Identifier{name}.Sanitize()
		def := pgx.Identifier{parent + "_default"}.Sanitize()
		for _, q := range []string{
			`SET LOCAL lock_timeout = '` + pgLockTimeout + `'`,
			// ATTACH takes this lock anyway; taken first, no row can
			// reach the default between the move and the ATTACH.
			`LOCK TABLE ` + def + ` IN ACCESS EXCLUSIVE MODE`,
			`CREATE TABLE ` + id + ` (LIKE ` + pgx.Identifier{parent}.Sanitize() + ` INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `WITH m AS (DELETE FROM `+def+` WHERE event_time >= $1 AND event_time < $2 RETURNING *)
			INSERT INTO `+id+` SELECT * FROM m`, lo, hi); err != nil {
			return err
		}
		// The CHECK lets ATTACH skip scanning the new table; ATTACH still
		// checks that the default holds no row of the day.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s CHECK (event_time >= '%s' AND event_time < '%s')`,
			id, pgx.Identifier{name + "_range"}.Sanitize(), lo.Format(time.RFC3339), hi.Format(time.RFC3339))); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')`,
			pgx.Identifier{parent}.Sanitize(), id, lo.Format(time.RFC3339), hi.Format(time.RFC3339)))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("retention: create %s: %w", name, err)
	}
	return true, nil
}

// dayPartitions returns the days of parent's day partitions, oldest first.
func (s *pgStore) dayPartitions(ctx context.Context, parent string) ([]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass`, parent)
	if err != nil {
		return nil, fmt.Errorf("retention: list partitions of %s: %w", parent, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("retention: list partitions of %s: %w", parent, err)
	}
	var days []time.Time
	for _, n := range names {
		d, ok := strings.CutPrefix(n, parent+"_p")
		if !ok {
			continue // the default partition
		}
		t, err := time.Parse(pgDayFormat, d)
		if err != nil {
			continue // not ours
		}
		days = append(days, t)
	}
	sort.Slice(days, func(i, j int) bool { return days[i].Before(days[j]) })
	return days, nil
}

// dropDay deletes the ids of the day's rows from transaction_ids, in
// batches, then drops the partition. Its rows are unlabeled (a label moves
// a row to the labeled partition), and the exclusive advisory lock per
// batch keeps SetLabel from moving one out between the batch's read and
// its delete.
func (s *pgStore) dropDay(ctx context.Context, parent string, day time.Time) (int, error) {
	name := pgDayTable(parent, day)
	id := pgx.Identifier{name}.Sanitize()
	total := 0
	var afterT time.Time
	afterID := ""
	for {
		var n int
		var lastT *time.Time
		var lastID *string
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, retentionLockID); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `WITH b AS (
					SELECT event_time, transaction_id FROM `+id+`
					WHERE (event_time, transaction_id) > ($1, $2)
					ORDER BY event_time, transaction_id LIMIT $3),
				d AS (DELETE FROM transaction_ids t USING b
					WHERE t.transaction_id = b.transaction_id AND t.event_time = b.event_time RETURNING 1)
				SELECT (SELECT count(*) FROM d), (SELECT max(event_time) FROM b),
					(SELECT transaction_id FROM b ORDER BY event_time DESC, transaction_id DESC LIMIT 1)`,
				afterT, afterID, retentionBatch).Scan(&n, &lastT, &lastID)
		})
		if err != nil {
			return total, fmt.Errorf("retention: delete ids of %s: %w", name, err)
		}
		if lastT == nil {
			break
		}
		total += n
		afterT, afterID = *lastT, *lastID
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+pgLockTimeout+`'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DROP TABLE `+id)
		return err
	})
	if err != nil {
		return total, fmt.Errorf("retention: drop %s: %w", name, err)
	}
	return total, nil
}

// deleteBatches deletes the rows of table with event_time before h, and
// their ids, a batch per short transaction. For the labeled partition the
// ids' deletion cascades to their labels.
func (s *pgStore) deleteBatches(ctx context.Context, table string, h time.Time) (int, error) {
	id := pgx.Identifier{table}.Sanitize()
	total := 0
	for {
		var n int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, retentionLockID); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `WITH r AS (
					DELETE FROM `+id+` WHERE ctid = ANY (ARRAY(
						SELECT ctid FROM `+id+` WHERE event_time < $1 LIMIT $2))
					RETURNING transaction_id, event_time),
				d AS (DELETE FROM transaction_ids t USING r
					WHERE t.transaction_id = r.transaction_id AND t.event_time = r.event_time RETURNING 1)
				SELECT count(*) FROM d`, h, retentionBatch).Scan(&n)
		})
		if err != nil {
			return total, fmt.Errorf("retention: delete from %s: %w", table, err)
		}
		total += n
		if n < retentionBatch {
			return total, nil
		}
	}
}
