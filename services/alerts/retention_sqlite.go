package alerts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// sqliteRetentionBatch is how many rows one delete transaction removes:
// the sink shares the single writer connection, so each batch is short.
const sqliteRetentionBatch = 1000

// sqliteVacuumPages is how many free pages one incremental_vacuum step
// gives back to the file system (4 MiB with 4 KiB pages).
const sqliteVacuumPages = 1024

// useIncrementalVacuum makes the file give freed pages back on PRAGMA
// incremental_vacuum. A new database takes the setting as it is created;
// an existing one needs one full VACUUM to switch, which rewrites the file
// (logged: it takes a while on a large file).
func (s *sqliteStore) useIncrementalVacuum(ctx context.Context) error {
	var mode int
	if err := s.w.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil {
		return fmt.Errorf("SQLite auto_vacuum: %w", err)
	}
	if mode == 2 {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA auto_vacuum = INCREMENTAL`); err != nil {
		return fmt.Errorf("SQLite auto_vacuum: %w", err)
	}
	var pages int
	if err := s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		return fmt.Errorf("SQLite page_count: %w", err)
	}
	if pages == 0 {
		return nil // empty file: the setting applies as it is created
	}
	s.log.Info("switching the SQLite file to incremental vacuum: rewriting it once", "pages", pages)
	if _, err := s.w.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("SQLite VACUUM to enable incremental vacuum: %w", err)
	}
	return nil
}

func (s *sqliteStore) Maintain(ctx context.Context, p RetentionPolicy, now time.Time) (MaintainResult, error) {
	var res MaintainResult
	var errs []error
	// Unlabeled rows of each kind, oldest first through the time index
	// (the partial alerts index for alerts), from where the last batch
	// ended: the older entries are kept rows (alerts, when approvals are
	// deleted; labeled ones), which each batch would otherwise scan again.
	for _, k := range []struct {
		class, cond string
		keep        time.Duration
	}{
		{"approved", "s.decision = 'approve'", p.Approved},
		{"alerts", "s.decision <> 'approve'", p.Alerts},
	} {
		h := horizon(k.keep, now)
		if h.IsZero() {
			continue
		}
		n, err := s.deleteFrom(ctx, k.class, k.cond, h.UTC().Format(sqliteTime))
		res.deleted(k.class, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("retention: %s: %w", k.class, err))
		}
	}
	if h := horizon(p.Labeled, now); !h.IsZero() {
		// A temporary table holds the batch's ids, so that the label and
		// the row go in the same transaction.
		n, err := s.deleteBatches(ctx, h, `CREATE TEMP TABLE IF NOT EXISTS expired_labeled (transaction_id TEXT PRIMARY KEY)`,
			`INSERT INTO expired_labeled SELECT l.transaction_id FROM labels l
				JOIN scored_transactions s ON s.transaction_id = l.transaction_id
				WHERE s.event_time < ? LIMIT ?`,
			`DELETE FROM labels WHERE transaction_id IN (SELECT transaction_id FROM expired_labeled)`,
			`DELETE FROM scored_transactions WHERE transaction_id IN (SELECT transaction_id FROM expired_labeled)`,
			`DELETE FROM expired_labeled`)
		res.deleted("labeled", n)
		if err != nil {
			errs = append(errs, fmt.Errorf("retention: labeled: %w", err))
		}
	}
	if len(res.Deleted) > 0 {
		if err := s.vacuum(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

// deleteFrom deletes the unlabeled rows matching cond with event_time
// before h, a batch per write transaction, in event time order from the
// class's cursor (s.cursors, in memory: after a restart the first pass
// starts from the oldest row again).
func (s *sqliteStore) deleteFrom(ctx context.Context, class, cond, h string) (int, error) {
	total := 0
	for {
		s.cursorsMu.Lock()
		from := s.cursors[class]
		s.cursorsMu.Unlock()
		var last string
		n := 0
		err := func() error {
			tx, err := s.w.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			rows, err := tx.QueryContext(ctx, `DELETE FROM scored_transactions WHERE rowid IN (
				SELECT s.rowid FROM scored_transactions s WHERE `+cond+` AND s.event_time >= ? AND s.event_time < ?
				  AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.transaction_id = s.transaction_id)
				ORDER BY s.event_time LIMIT ?) RETURNING event_time`, from, h, sqliteRetentionBatch)
			if err != nil {
				return err
			}
			for rows.Next() {
				var t string
				if err := rows.Scan(&t); err != nil {
					rows.Close()
					return err
				}
				n++
				last = max(last, t)
			}
			if err := rows.Close(); err != nil {
				return err
			}
			return tx.Commit()
		}()
		if err != nil {
			return total, err
		}
		total += n
		if n > 0 {
			s.cursorsMu.Lock()
			if s.cursors == nil {
				s.cursors = map[string]string{}
			}
			s.cursors[class] = last
			s.cursorsMu.Unlock()
		}
		if n < sqliteRetentionBatch {
			return total, nil
		}
	}
}

// deleteBatches runs, until a batch removes fewer rows than the batch
// size, one write transaction per batch: setup (if not empty), then the
// statement batch with the horizon and the batch size as its placeholders
// (its rows affected is the batch's count), then the statements of after.
func (s *sqliteStore) deleteBatches(ctx context.Context, h time.Time, setup, batch string, after ...string) (int, error) {
	total := 0
	for {
		var n int64
		err := func() error {
			tx, err := s.w.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if setup != "" {
				if _, err := tx.ExecContext(ctx, setup); err != nil {
					return err
				}
			}
			res, err := tx.ExecContext(ctx, batch, h.UTC().Format(sqliteTime), sqliteRetentionBatch)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil {
				return err
			}
			for _, q := range after {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return tx.Commit()
		}()
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < sqliteRetentionBatch {
			return total, nil
		}
	}
}

// vacuum gives free pages back to the file system, a bounded step at a time.
func (s *sqliteStore) vacuum(ctx context.Context) error {
	for {
		var free int
		if err := s.w.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil {
			return fmt.Errorf("retention: freelist_count: %w", err)
		}
		if free == 0 {
			return nil
		}
		rows, err := s.w.QueryContext(ctx, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, sqliteVacuumPages))
		if err != nil {
			return fmt.Errorf("retention: incremental_vacuum: %w", err)
		}
		for rows.Next() {
		}
		err = rows.Close()
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("retention: incremental_vacuum: %w", err)
		}
		if free <= sqliteVacuumPages {
			return nil
		}
	}
}
