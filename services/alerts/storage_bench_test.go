package alerts

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestStorageMeasure measures the store at size (docs/design/storage.md):
// bytes per stored transaction including indexes, sink rows/s on an empty
// and on the full table, and p50/p99 of each API query. It loads the real
// scored records of STORAGE_RECORDS (NDJSON, written by
// tools/storagebench: DUMP=… DUMP_N=… go test -run TestWrite
// ./tools/storagebench/) into each backend of STORAGE_BACKENDS
// (default "sqlite,postgres").
//
//	STORAGE_RECORDS=/tmp/recs.ndjson go test -count=1 -timeout 2h -run TestStorageMeasure -v ./services/alerts/
func TestStorageMeasure(t *testing.T) {
	path := os.Getenv("STORAGE_RECORDS")
	if path == "" {
		t.Skip("STORAGE_RECORDS not set: a measurement, not a test")
	}
	backendsWanted := "sqlite,postgres"
	if v := os.Getenv("STORAGE_BACKENDS"); v != "" {
		backendsWanted = v
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var values [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	rawBytes := 0
	for sc.Scan() {
		values = append(values, append([]byte(nil), sc.Bytes()...))
		rawBytes += len(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	n := len(values)
	t.Logf("records: %d, JSON %d B on average", n, rawBytes/n)
	const batch = 1000
	rows := func(i int) []Record {
		out := make([]Record, 0, batch)
		for j := i; j < i+batch && j < n; j++ {
			s, err := event.DecodeScored(values[j])
			if err != nil {
				t.Fatal(err)
			}
			s.ScoredAt = s.Transaction.EventTime.Add(3 * time.Millisecond)
			out = append(out, Record{Scored: s, Value: values[j], Partition: int32(j % 12), Offset: int64(j / 12)})
		}
		return out
	}
	for _, b := range backends {
		if !strings.Contains(backendsWanted, b.name) {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			s := openTestStore(t, url)
			s.SetRetention(DefaultRetentionPolicy())
			ctx := context.Background()
			st := func(sc event.Scored) (Label, error) {
				return s.SetLabel(ctx, Label{TransactionID: sc.Transaction.TransactionID, Disposition: DispositionConfirmedFraud})
			}
			// Sink rate: the first and the last tenth of the load.
			tenth := max(n/10/batch*batch, batch)
			var firstDur, lastDur time.Duration
			start := time.Now()
			for i := 0; i < n; i += batch {
				rs := rows(i)
				t0 := time.Now()
				if _, err := s.SaveBatch(ctx, event.TopicScored, rs, map[int32]int64{0: int64(i + batch)}); err != nil {
					t.Fatal(err)
				}
				d := time.Since(t0)
				if i < tenth {
					firstDur += d
				}
				if i >= n-tenth {
					lastDur += d
				}
			}
			t.Logf("loaded %d rows in %v", n, time.Since(start).Round(time.Second))
			emptyRate, fullRate := float64(tenth)/firstDur.Seconds(), float64(tenth)/lastDur.Seconds()
			t.Logf("sink rows/s: first %d rows %.0f, last %d rows %.0f, ratio %.2f", tenth, emptyRate, tenth, fullRate, fullRate/emptyRate)

			// Empty against full, interleaved so that the machine's load
			// weighs on both alike: the same 50 batches of new records
			// (the last ones with new ids) into a fresh store and into
			// the full one.
			empty := openTestStore(t, b.url(t))
			empty.SetRetention(DefaultRetentionPolicy())
			var emptyDur, fullDur time.Duration
			fresh := 0
			for k := range 50 {
				rs := rows(n - 50*batch + k*batch)
				for i := range rs {
					v := strings.Replace(string(rs[i].Value), `"transaction_id":"`, `"transaction_id":"new-`, 1)
					rs[i].Value = []byte(v)
					rs[i].Scored.Transaction.TransactionID = "new-" + rs[i].Scored.Transaction.TransactionID
					rs[i].Offset += int64(n)
				}
				for _, target := range []struct {
					s Store
					d *time.Duration
				}{{empty, &emptyDur}, {s, &fullDur}} {
					t0 := time.Now()
					stored, err := target.s.SaveBatch(ctx, event.TopicScored, rs, map[int32]int64{0: int64(n + k*batch + batch)})
					if err != nil {
						t.Fatal(err)
					}
					*target.d += time.Since(t0)
					fresh += stored
				}
			}
			if fresh != 2*50*batch {
				t.Fatalf("interleaved batches stored %d rows, want %d", fresh, 2*50*batch)
			}
			t.Logf("sink rows/s interleaved, 50 batches of %d: empty table %.0f, %d-row table %.0f, ratio %.2f",
				batch, float64(50*batch)/emptyDur.Seconds(), n, float64(50*batch)/fullDur.Seconds(), emptyDur.Seconds()/fullDur.Seconds())

			// Analysts label 1,000 alerts (moved to the labeled partition).
			labeled := 0
			for i := 0; i < n && labeled < 1000; i++ {
				if !strings.Contains(string(values[i][:min(len(values[i]), 4000)]), `"decision":"approve"`) {
					s, _ := event.DecodeScored(values[i])
					if _, err := st(s); err != nil {
						t.Fatal(err)
					}
					labeled++
				}
			}
			count, err := s.Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			switch st := s.(type) {
			case *pgStore:
				if _, err := st.pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
					t.Fatal(err)
				}
				var heap, idx, ids, idsIdx int64
				if err := st.pool.QueryRow(ctx, `SELECT
					coalesce(sum(pg_table_size(c.oid)) FILTER (WHERE c.relkind = 'r' AND c.relname LIKE 'scored_transactions%'), 0),
					coalesce(sum(pg_indexes_size(c.oid)) FILTER (WHERE c.relkind = 'r' AND c.relname LIKE 'scored_transactions%'), 0),
					coalesce(sum(pg_table_size(c.oid)) FILTER (WHERE c.relname = 'transaction_ids'), 0),
					coalesce(sum(pg_indexes_size(c.oid)) FILTER (WHERE c.relname = 'transaction_ids'), 0)
					FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = 'public'`).Scan(&heap, &idx, &ids, &idsIdx); err != nil {
					t.Fatal(err)
				}
				var rec float64
				if err := st.pool.QueryRow(ctx, `SELECT avg(length(record)) FROM scored_transactions`).Scan(&rec); err != nil {
					t.Fatal(err)
				}
				t.Logf("PostgreSQL bytes per row (%d rows): scored_transactions heap %.0f + indexes %.0f; transaction_ids heap %.0f + index %.0f; total %.0f (record column %.0f B on average)",
					count, float64(heap)/float64(count), float64(idx)/float64(count), float64(ids)/float64(count), float64(idsIdx)/float64(count),
					float64(heap+idx+ids+idsIdx)/float64(count), rec)
			case *sqliteStore:
				if _, err := st.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
					t.Fatal(err)
				}
				if _, err := st.w.ExecContext(ctx, `ANALYZE`); err != nil {
					t.Fatal(err)
				}
				var pages, size int64
				st.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages)
				st.w.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size)
				var rec float64
				st.w.QueryRowContext(ctx, `SELECT avg(length(record)) FROM scored_transactions`).Scan(&rec)
				file := strings.TrimPrefix(url, "sqlite:")
				fi, _ := os.Stat(file)
				t.Logf("SQLite bytes per row (%d rows): file %.0f (%d pages of %d B; file %d B) (record column %.0f B on average)",
					count, float64(pages*size)/float64(count), pages, size, fi.Size(), rec)
				if rs, err := st.w.QueryContext(ctx, `SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC`); err == nil {
					var parts []string
					for rs.Next() {
						var name string
						var sz int64
						rs.Scan(&name, &sz)
						parts = append(parts, fmt.Sprintf("%s %.0f", name, float64(sz)/float64(count)))
					}
					rs.Close()
					t.Logf("SQLite bytes per row by table/index: %s", strings.Join(parts, ", "))
				}
			}

			// The API's queries, each 200 times with varying arguments.
			var cards, ids []string
			var times []time.Time
			for i := 0; i < n; i += n / 200 {
				s, _ := event.DecodeScored(values[i])
				cards = append(cards, s.Transaction.CardID)
				ids = append(ids, s.Transaction.TransactionID)
				times = append(times, s.Transaction.EventTime)
			}
			alerts := []string{event.DecisionReview, event.DecisionDecline}
			queries := []struct {
				name string
				run  func(i int) error
			}{
				{"GET /api/v1/transactions/{id}", func(i int) error { _, err := s.Transaction(ctx, ids[i]); return err }},
				{"GET /api/v1/alerts (queue, first page)", func(i int) error {
					_, err := s.Transactions(ctx, Query{Decisions: alerts, Limit: DefaultPageSize})
					return err
				}},
				{"GET /api/v1/alerts?cursor (queue, a page further)", func(i int) error {
					_, err := s.Transactions(ctx, Query{Decisions: alerts, After: &Cursor{EventTime: times[i], TransactionID: ids[i]}, Limit: DefaultPageSize})
					return err
				}},
				{"GET /api/v1/alerts?card_id", func(i int) error {
					_, err := s.Transactions(ctx, Query{Decisions: alerts, CardID: cards[i], Limit: DefaultPageSize})
					return err
				}},
				{"GET /api/v1/cards/{card}/transactions", func(i int) error {
					_, err := s.Transactions(ctx, Query{CardID: cards[i], Limit: DefaultPageSize})
					return err
				}},
				{"GET /api/v1/transactions?from&to (1 hour)", func(i int) error {
					_, err := s.Transactions(ctx, Query{From: times[i].Add(-time.Hour), To: times[i], Limit: DefaultPageSize})
					return err
				}},
				{"GET /api/v1/alerts?from&to (1 hour)", func(i int) error {
					_, err := s.Transactions(ctx, Query{Decisions: alerts, From: times[i].Add(-time.Hour), To: times[i], Limit: DefaultPageSize})
					return err
				}},
				{"stream resume (Range, 100 per partition)", func(i int) error {
					from, to := map[int32]int64{}, map[int32]int64{}
					for p := range int32(12) {
						o := int64(i) * int64(n/12) / 200
						from[p], to[p] = o, o+100
					}
					_, err := s.Range(ctx, from, to, 1200)
					return err
				}},
				{"GET /api/v1/labels (training export)", func(i int) error { _, err := s.Labeled(ctx, "", 500); return err }},
			}
			for _, q := range queries {
				var ds []time.Duration
				for i := range cards {
					t0 := time.Now()
					if err := q.run(i); err != nil {
						t.Fatalf("%s: %v", q.name, err)
					}
					ds = append(ds, time.Since(t0))
				}
				sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
				t.Logf("%-50s p50 %8s  p99 %8s", q.name, ds[len(ds)/2].Round(10*time.Microsecond), ds[len(ds)*99/100].Round(10*time.Microsecond))
			}
		})
	}
}
