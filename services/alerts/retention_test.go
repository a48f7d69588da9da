package alerts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/fraudstream/fraudstream/pkg/event"
)

func TestRetentionPolicyValidate(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name string
		p    RetentionPolicy
		err  string
	}{
		{"defaults", DefaultRetentionPolicy(), ""},
		{"keep everything", RetentionPolicy{}, ""},
		{"labeled forever", RetentionPolicy{Approved: day, Alerts: 30 * day}, ""},
		{"labeled equal", RetentionPolicy{Approved: 30 * day, Alerts: 30 * day, Labeled: 30 * day}, ""},
		{"negative", RetentionPolicy{Approved: -day}, "alerts: Config.Retention.Approved: must be 0 (keep forever) or at least 24h0m0s"},
		{"under a day", RetentionPolicy{Alerts: time.Hour}, "alerts: Config.Retention.Alerts: must be 0"},
		{"labeled shorter than alerts", RetentionPolicy{Approved: day, Alerts: 90 * day, Labeled: 30 * day}, "alerts: Config.Retention.Labeled: labeled transactions are kept longest"},
		{"labeled bounded, approved forever", RetentionPolicy{Alerts: day, Labeled: 30 * day}, "alerts: Config.Retention.Labeled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Validate() = %v, want %q", err, tt.err)
			}
		})
	}
}

// retentionRow is a stored transaction of a retention test.
type retentionRow struct {
	id       string
	decision string
	age      time.Duration // event time before now
	label    bool
}

func retentionRecord(r retentionRow, now time.Time, p int32, off int64) Record {
	sc := scored(r.id, r.decision)
	sc.Transaction.EventTime = now.Add(-r.age)
	sc.Transaction.CardID = "card-" + r.decision
	v, _ := sc.Encode()
	return Record{Scored: sc, Value: v, Partition: p, Offset: off}
}

func storedIDs(t *testing.T, s Store) []string {
	t.Helper()
	var ids []string
	q := Query{Limit: MaxPageSize}
	for {
		page, err := s.Transactions(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range page {
			ids = append(ids, st.Scored.Transaction.TransactionID)
		}
		if len(page) < q.Limit {
			break
		}
		c := page[len(page)-1].Cursor()
		q.After = &c
	}
	sort.Strings(ids)
	return ids
}

// TestRetention: a pass deletes exactly what the policy says, keeps
// labeled transactions until their own retention, never fails on a label,
// and a replay of every offset afterwards brings nothing back and stores
// nothing twice. The sink writes new rows all along.
func TestRetention(t *testing.T) {
	day := 24 * time.Hour
	policy := RetentionPolicy{Approved: 7 * day, Alerts: 30 * day, Labeled: 365 * day}
	now := time.Now().UTC()
	rows := []retentionRow{
		{"approve-new", event.DecisionApprove, 2 * day, false},
		{"approve-edge-kept", event.DecisionApprove, 5 * day, false},
		{"approve-old", event.DecisionApprove, 10 * day, false},
		{"approve-old-labeled", event.DecisionApprove, 10 * day, true},
		{"review-mid", event.DecisionReview, 10 * day, false},
		{"decline-mid", event.DecisionDecline, 20 * day, false},
		{"review-old", event.DecisionReview, 40 * day, false},
		{"decline-old-labeled", event.DecisionDecline, 40 * day, true},
		{"review-ancient-labeled", event.DecisionReview, 400 * day, true},
		{"approve-ancient", event.DecisionApprove, 400 * day, false},
	}
	want := []string{"approve-edge-kept", "approve-new", "approve-old-labeled", "decline-mid", "decline-old-labeled", "review-mid"}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := openTestStore(t, b.url(t))
			ctx := context.Background()
			var recs []Record
			for i, r := range rows {
				recs = append(recs, retentionRecord(r, now, 0, int64(i)))
			}
			// Stored before the policy applies (as by an older release).
			if _, err := s.SaveBatch(ctx, event.TopicScored, recs, map[int32]int64{0: int64(len(recs))}); err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if r.label {
					if _, err := s.SetLabel(ctx, Label{TransactionID: r.id, Disposition: DispositionConfirmedFraud, Note: r.id}); err != nil {
						t.Fatal(err)
					}
				}
			}
			s.SetRetention(policy)

			// The sink keeps writing current rows on partition 1 while
			// retention runs.
			var wg sync.WaitGroup
			stop := make(chan struct{})
			var written []string
			var sinkErr error
			started := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					var batch []Record
					for j := range 20 {
						id := fmt.Sprintf("live-%d-%d", i, j)
						batch = append(batch, retentionRecord(retentionRow{id, event.DecisionApprove, time.Duration(j) * time.Minute, false}, now, 1, int64(i*20+j)))
						written = append(written, id)
					}
					if _, err := s.SaveBatch(ctx, event.TopicScored, batch, map[int32]int64{1: int64(i*20 + 20)}); err != nil {
						sinkErr = err
						close(started)
						return
					}
					if i == 0 {
						close(started)
					}
				}
			}()
			<-started
			var res MaintainResult
			var err error
			for range 2 { // a second pass finds nothing more
				if res, err = s.Maintain(ctx, policy, now); err != nil {
					t.Fatalf("Maintain: %v", err)
				}
			}
			if len(res.Deleted) != 0 {
				t.Errorf("a second pass deleted %v, want nothing", res.Deleted)
			}
			close(stop)
			wg.Wait()
			if sinkErr != nil {
				t.Fatalf("SaveBatch during retention: %v", sinkErr)
			}
			if len(written) == 0 {
				t.Fatal("the sink wrote nothing during retention")
			}

			got := slices.DeleteFunc(storedIDs(t, s), func(id string) bool { return strings.HasPrefix(id, "live-") })
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after retention stored %v, want %v", got, want)
			}
			for _, id := range []string{"approve-old-labeled", "decline-old-labeled"} {
				if l, err := s.Label(ctx, id); err != nil || l.Note != id {
					t.Errorf("label of %s after retention = %+v, %v", id, l, err)
				}
			}
			if _, err := s.Label(ctx, "review-ancient-labeled"); !errors.Is(err, ErrNotFound) {
				t.Errorf("label of an expired labeled transaction: %v, want ErrNotFound", err)
			}
			if _, err := s.Transaction(ctx, "approve-old"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Transaction(approve-old) after retention: %v, want ErrNotFound", err)
			}
			labeled, err := s.Labeled(ctx, "", 10)
			if err != nil || len(labeled) != 2 {
				t.Errorf("Labeled after retention: %d rows, %v; want 2", len(labeled), err)
			}

			// Replay every offset from 0: nothing expired comes back, no
			// row is stored twice, no conflict.
			if _, err := s.SaveBatch(ctx, event.TopicScored, recs, map[int32]int64{0: int64(len(recs))}); err != nil {
				t.Fatalf("replay: %v", err)
			}
			all := storedIDs(t, s)
			if len(all) != len(want)+len(written) {
				t.Fatalf("after the replay %d rows, want %d", len(all), len(want)+len(written))
			}
			for i := 1; i < len(all); i++ {
				if all[i] == all[i-1] {
					t.Fatalf("%s stored twice", all[i])
				}
			}
			got = slices.DeleteFunc(all, func(id string) bool { return strings.HasPrefix(id, "live-") })
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after the replay stored %v, want %v", got, want)
			}
			if n, err := s.Count(ctx); err != nil || n != int64(len(want)+len(written)) {
				t.Fatalf("Count = %d, %v; want %d", n, err, len(want)+len(written))
			}
			// A reused id of a kept row on another day is still a conflict.
			reuse := retentionRecord(retentionRow{"decline-mid", event.DecisionDecline, 3 * day, false}, now, 2, 0)
			_, err = s.SaveBatch(ctx, event.TopicScored, []Record{reuse}, nil)
			var ce *ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("reused id on another day: %v, want a *ConflictError", err)
			}
		})
	}
}

// TestPartitionRollover: at midnight under load the sink's rows land in
// the new day's partition, created ahead, never in the default one; rows
// of a day not created yet wait in the default partition and move to
// their partition when it is created.
func TestPartitionRollover(t *testing.T) {
	for _, b := range backends {
		if b.name != "postgres" {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			s := openTestStore(t, b.url(t)).(*pgStore)
			ctx := context.Background()
			midnight := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
			policy := DefaultRetentionPolicy()
			s.SetRetention(policy)
			if _, err := s.Maintain(ctx, policy, midnight.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			// Four writers, each writing rows from a second before to a
			// second after midnight.
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 50 {
						var batch []Record
						for j := range 20 {
							n := i*20 + j
							r := retentionRecord(retentionRow{fmt.Sprintf("mid-%d-%d", w, n), []string{event.DecisionApprove, event.DecisionReview}[n%2], 0, false},
								midnight.Add(-time.Second+time.Duration(n)*2*time.Millisecond), int32(w), int64(n))
							batch = append(batch, r)
						}
						if _, err := s.SaveBatch(ctx, event.TopicScored, batch, map[int32]int64{int32(w): int64(i*20 + 20)}); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			// Meanwhile a pass at midnight creates the days after.
			if _, err := s.Maintain(ctx, policy, midnight); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			count := func(table string) int {
				var n int
				if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			before, after := 0, 0
			for _, parent := range []string{"scored_transactions_approve", "scored_transactions_alert"} {
				if n := count(parent + "_default"); n != 0 {
					t.Errorf("%s_default holds %d rows, want 0", parent, n)
				}
				before += count(pgDayTable(parent, midnight.AddDate(0, 0, -1)))
				after += count(pgDayTable(parent, midnight))
			}
			if before != 4*500 || after != 4*500 {
				t.Errorf("rows before midnight %d, after %d; want 2000 and 2000", before, after)
			}

			// A day beyond those created ahead: default partition, then
			// moved into its partition when the pass creates it.
			far := midnight.AddDate(0, 0, 10).Add(time.Hour)
			if _, err := s.SaveBatch(ctx, event.TopicScored, []Record{retentionRecord(retentionRow{"far", event.DecisionReview, 0, false}, far, 9, 0)}, nil); err != nil {
				t.Fatal(err)
			}
			if n := count("scored_transactions_alert_default"); n != 1 {
				t.Fatalf("default partition holds %d rows, want the early one", n)
			}
			if _, err := s.Maintain(ctx, policy, far); err != nil {
				t.Fatal(err)
			}
			if n := count("scored_transactions_alert_default"); n != 0 {
				t.Fatalf("default partition holds %d rows after its day was created, want 0", n)
			}
			if n := count(pgDayTable("scored_transactions_alert", far.Truncate(24*time.Hour))); n != 1 {
				t.Fatalf("day partition holds %d rows, want 1", n)
			}
			if _, err := s.Transaction(ctx, "far"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMigrate0004MovesRows: a database at migration 0003 with rows and a
// label keeps them, readable, after 0004 moves them into the compact
// layout; the label survives and new rows are stored next to them.
func TestMigrate0004MovesRows(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			db, err := parseDatabaseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			driver := map[string]string{"postgres": "pgx", "sqlite": "sqlite"}[db.driver]
			raw, err := sqlOpen(driver, db.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			ctx := context.Background()
			dialect := map[string]goose.Dialect{"postgres": goose.DialectPostgres, "sqlite": goose.DialectSQLite3}[db.driver]
			if err := migrateTo(ctx, raw, dialect, db.driver, 3); err != nil {
				t.Fatal(err)
			}
			old := []struct{ id, decision, rec string }{
				{"old-1", "approve", `{"schema":"fraudstream.scored.v1","transaction":{"transaction_id":"old-1","card_id":"c1"},"decision":"approve","score":0.1,"features":{"count_1m":1,"new_future_feature":2.5}}`},
				{"old-2", "review", `{"schema":"fraudstream.scored.v1","transaction":{"transaction_id":"old-2","card_id":"c1"},"decision":"review","score":0.7}`},
			}
			ph := func(n int) string {
				if db.driver == "postgres" {
					return fmt.Sprintf("$%d", n)
				}
				return "?"
			}
			for i, o := range old {
				if _, err := raw.ExecContext(ctx, `INSERT INTO scored_transactions (transaction_id, card_id, event_time, amount_minor, currency, merchant_country,
					score, decision, kafka_partition, kafka_offset, record) VALUES (`+ph(1)+`, 'c1', '2026-03-01T12:00:00.000000000Z', 1, 'EUR', 'DE', 0.5, `+ph(2)+`, 0, `+ph(3)+`, `+ph(4)+`)`,
					o.id, o.decision, i, o.rec); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := raw.ExecContext(ctx, `INSERT INTO labels (transaction_id, disposition, note, analyst, created_at, updated_at)
				VALUES ('old-2', 'confirmed_fraud', 'n', 'a', '2026-03-02T00:00:00.000000000Z', '2026-03-02T00:00:00.000000000Z')`); err != nil {
				t.Fatal(err)
			}
			s := openTestStore(t, url)
			for _, o := range old {
				got, err := s.Transaction(ctx, o.id)
				if err != nil || got.Decision != o.decision {
					t.Fatalf("%s after 0004: %+v, %v", o.id, got.Decision, err)
				}
			}
			l, err := s.Label(ctx, "old-2")
			if err != nil || l.Disposition != DispositionConfirmedFraud {
				t.Fatalf("label after 0004: %+v, %v", l, err)
			}
			if ls, err := s.Labeled(ctx, "", 10); err != nil || len(ls) != 1 || ls[0].Scored.Transaction.TransactionID != "old-2" {
				t.Fatalf("Labeled after 0004: %v, %v", ls, err)
			}
			if page, err := s.Transactions(ctx, Query{CardID: "c1", Limit: 10}); err != nil || len(page) != 2 {
				t.Fatalf("card history after 0004: %d rows, %v", len(page), err)
			}
			// The unknown feature is still in the stored record.
			if rec := storedRecord(t, s, "old-1"); !strings.Contains(strings.ReplaceAll(rec, " ", ""), `"new_future_feature":2.5`) {
				t.Fatalf("stored record lost the unknown field: %s", rec)
			}
			// The moved record is a redelivery of its own content, not a
			// conflict, and a new row is stored beside the moved ones.
			var sc event.Scored
			if err := event.Unmarshal([]byte(old[1].rec), &sc, event.IgnoreUnknown); err != nil {
				t.Fatal(err)
			}
			sc.Transaction.EventTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			if _, err := s.SaveBatch(ctx, event.TopicScored, []Record{{Scored: sc, Value: []byte(old[1].rec), Partition: 0, Offset: 1}, rec("new-1", 0, 2)}, map[int32]int64{0: 3}); err != nil {
				t.Fatalf("SaveBatch after 0004: %v", err)
			}
			if n, _ := s.Count(ctx); n != 3 {
				t.Fatalf("Count = %d, want 3", n)
			}
		})
	}
}

func sqlOpen(driver, dsn string) (*sql.DB, error) { return sql.Open(driver, dsn) }

// migrateTo applies the migrations of dir up to version, for tests of a
// later migration on a database with rows.
func migrateTo(ctx context.Context, db *sql.DB, dialect goose.Dialect, dir string, version int64) error {
	fsys, err := fs.Sub(migrationFS, path.Join("migrations", dir))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(dialect, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		return fmt.Errorf("migrate %s to %d: %w", dir, version, err)
	}
	return nil
}
