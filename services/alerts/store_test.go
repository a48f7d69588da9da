package alerts

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/testenv"
)

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as the alerts process it kills.
	if os.Getenv(killChildEnv) != "" {
		os.Exit(runKillChild())
	}
	testenv.Main(m)
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// backends opens a fresh store of each kind.
var backends = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "alerts.db") }},
	{"postgres", func(t *testing.T) string { return testenv.Postgres(t) }},
}

func openTestStore(t *testing.T, url string) Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := OpenStore(ctx, url, 4, discardLog())
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// scored returns a valid scored record for transaction id.
func scored(id string, decision string) event.Scored {
	lat, lon := 52.52, 13.405
	return event.Scored{
		Schema: event.SchemaScored,
		Transaction: event.Transaction{
			TransactionID:    id,
			CardID:           "card-1",
			AmountMinor:      12345,
			Currency:         "EUR",
			MerchantID:       "m-1",
			MerchantCategory: "5411",
			MerchantCountry:  "DE",
			Channel:          event.ChannelCardPresent,
			Lat:              &lat,
			Lon:              &lon,
			EventTime:        time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC),
			IngestTime:       time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC),
		},
		Features:       event.Features{Count1m: 2, AmountZScore: 1.5},
		Score:          0.42,
		Decision:       decision,
		Reasons:        []event.Reason{{Code: "HIGH_AMOUNT", Source: event.SourceRule, Weight: 0.3}},
		RuleSetVersion: 3,
		ModelVersion:   "lr-1",
		ScoredAt:       time.Date(2026, 3, 1, 12, 0, 1, 500_000_000, time.UTC),
	}
}

// checkConflicts checks that err is a *ConflictError listing exactly want,
// each naming the record stored at (storedP, storedO).
func checkConflicts(t *testing.T, err error, want []Record, storedP int32, storedO int64) {
	t.Helper()
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("SaveBatch error %v, want a *ConflictError", err)
	}
	if len(ce.Conflicts) != len(want) {
		t.Fatalf("conflicts %v, want %d", ce.Conflicts, len(want))
	}
	for i, c := range ce.Conflicts {
		if c.Row.Partition != want[i].Partition || c.Row.Offset != want[i].Offset ||
			c.StoredPartition != storedP || c.StoredOffset != storedO {
			t.Errorf("conflict %d: row %d/%d stored %d/%d; want row %d/%d stored %d/%d", i,
				c.Row.Partition, c.Row.Offset, c.StoredPartition, c.StoredOffset, want[i].Partition, want[i].Offset, storedP, storedO)
		}
		if !strings.Contains(c.Error(), "reused with different content") {
			t.Errorf("conflict error %q does not say why", c.Error())
		}
	}
}

// checkUnchanged checks that a refused batch left count rows and offs.
func checkUnchanged(t *testing.T, s Store, count int64, offs map[int32]int64) {
	t.Helper()
	ctx := context.Background()
	if n, _ := s.Count(ctx); n != count {
		t.Fatalf("Count = %d after a refused batch, want %d", n, count)
	}
	if got, _ := s.Offsets(ctx, event.TopicScored); fmt.Sprint(got) != fmt.Sprint(offs) {
		t.Fatalf("Offsets = %v after a refused batch, want %v", got, offs)
	}
}

func rec(id string, p int32, off int64) Record {
	return Record{Scored: scored(id, event.DecisionReview), Partition: p, Offset: off}
}

// TestStoreConformance is the one suite every Store implementation passes.
func TestStoreConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("Empty", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				offs, err := s.Offsets(ctx, event.TopicScored)
				if err != nil || len(offs) != 0 {
					t.Fatalf("Offsets = %v, %v; want empty", offs, err)
				}
				if _, err := s.Transaction(ctx, "nope"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Transaction(missing) err = %v, want ErrNotFound", err)
				}
				if n, err := s.Count(ctx); err != nil || n != 0 {
					t.Fatalf("Count = %d, %v", n, err)
				}
				if err := s.Ping(ctx); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("SaveAndRead", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				want := scored("tx-1", event.DecisionDecline)
				n, err := s.SaveBatch(ctx, event.TopicScored, []Record{{Scored: want, Partition: 3, Offset: 7}}, map[int32]int64{3: 8})
				if err != nil || n != 1 {
					t.Fatalf("SaveBatch = %d, %v", n, err)
				}
				got, err := s.Transaction(ctx, "tx-1")
				if err != nil {
					t.Fatal(err)
				}
				// PostgreSQL keeps microseconds; the record keeps the rest exactly.
				if d := got.ScoredAt.Sub(want.ScoredAt); d < -time.Microsecond || d > time.Microsecond {
					t.Errorf("ScoredAt = %v, want %v", got.ScoredAt, want.ScoredAt)
				}
				got.ScoredAt = want.ScoredAt
				a, _ := got.Encode()
				w, _ := want.Encode()
				if string(a) != string(w) {
					t.Errorf("round trip:\n got %s\nwant %s", a, w)
				}
				offs, err := s.Offsets(ctx, event.TopicScored)
				if err != nil || len(offs) != 1 || offs[3] != 8 {
					t.Fatalf("Offsets = %v, %v; want {3:8}", offs, err)
				}
			})
			t.Run("VerbatimValue", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				r := rec("tx-v", 0, 0)
				r.Value, _ = r.Scored.Encode()
				if _, err := s.SaveBatch(ctx, event.TopicScored, []Record{r}, map[int32]int64{0: 1}); err != nil {
					t.Fatal(err)
				}
				got, err := s.Transaction(ctx, "tx-v")
				if err != nil || got.Transaction.TransactionID != "tx-v" || got.Score != r.Scored.Score {
					t.Fatalf("Transaction = %+v, %v", got, err)
				}
			})
			t.Run("ResaveIsNoop", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				rows := []Record{rec("a", 0, 0), rec("b", 0, 1), rec("c", 1, 0)}
				offs := map[int32]int64{0: 2, 1: 1}
				if n, err := s.SaveBatch(ctx, event.TopicScored, rows, offs); err != nil || n != 3 {
					t.Fatalf("first SaveBatch = %d, %v", n, err)
				}
				// A crash after the commit but before the sink learned of it
				// replays the same batch: nothing changes.
				if n, err := s.SaveBatch(ctx, event.TopicScored, rows, offs); err != nil || n != 0 {
					t.Fatalf("second SaveBatch = %d, %v; want 0 new rows", n, err)
				}
				if n, _ := s.Count(ctx); n != 3 {
					t.Fatalf("Count = %d, want 3", n)
				}
				got, _ := s.Offsets(ctx, event.TopicScored)
				if fmt.Sprint(got) != fmt.Sprint(offs) {
					t.Fatalf("Offsets = %v, want %v", got, offs)
				}
			})
			t.Run("DuplicateInOneBatch", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				// The same record twice (at two offsets) is stored once,
				// silently.
				if n, err := s.SaveBatch(ctx, event.TopicScored, []Record{rec("dup", 0, 0), rec("dup", 0, 1)}, map[int32]int64{0: 2}); err != nil || n != 1 {
					t.Fatalf("SaveBatch = %d, %v; want 1", n, err)
				}
				// One id with two contents in one batch: the second is a
				// conflict and nothing is saved.
				first := rec("dup2", 0, 2)
				second := rec("dup2", 0, 3)
				second.Scored.Score = 0.99
				_, err := s.SaveBatch(ctx, event.TopicScored, []Record{first, second, rec("other", 0, 4)}, map[int32]int64{0: 5})
				checkConflicts(t, err, []Record{second}, 0, 2)
				checkUnchanged(t, s, 1, map[int32]int64{0: 2})
				// Without it, the rest is saved and the first one stays.
				if n, err := s.SaveBatch(ctx, event.TopicScored, []Record{first, rec("other", 0, 4)}, map[int32]int64{0: 5}); err != nil || n != 2 {
					t.Fatalf("SaveBatch = %d, %v; want 2", n, err)
				}
				got, _ := s.Transaction(ctx, "dup2")
				if got.Score != first.Scored.Score {
					t.Fatalf("stored score %v, want the first occurrence's %v", got.Score, first.Scored.Score)
				}
			})
			t.Run("ConflictWithStored", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				if _, err := s.SaveBatch(ctx, event.TopicScored, []Record{rec("a", 1, 0), rec("b", 1, 1)}, map[int32]int64{1: 2}); err != nil {
					t.Fatal(err)
				}
				// transaction_id "a" again, another transaction: refused,
				// with everything else of the batch, and named.
				other := rec("a", 1, 5)
				other.Scored.Transaction.AmountMinor = 99
				_, err := s.SaveBatch(ctx, event.TopicScored, []Record{rec("c", 1, 4), other}, map[int32]int64{1: 6})
				checkConflicts(t, err, []Record{other}, 1, 0)
				checkUnchanged(t, s, 2, map[int32]int64{1: 2})
				// "b" again with the same content (a redelivery, even at
				// another offset) is no conflict: skipped silently.
				if n, err := s.SaveBatch(ctx, event.TopicScored, []Record{rec("b", 1, 6), rec("c", 1, 7)}, map[int32]int64{1: 8}); err != nil || n != 1 {
					t.Fatalf("SaveBatch of a redelivery = %d, %v; want 1 new row, no error", n, err)
				}
				got, _ := s.Transaction(ctx, "a")
				if got.Transaction.AmountMinor != 12345 {
					t.Fatalf("stored amount %d, want the first record's", got.Transaction.AmountMinor)
				}
			})
			t.Run("OffsetsOnlyMoveForward", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				if _, err := s.SaveBatch(ctx, event.TopicScored, nil, map[int32]int64{0: 10, 1: 5}); err != nil {
					t.Fatal(err)
				}
				// A zombie member's late batch must not rewind partition 0.
				if _, err := s.SaveBatch(ctx, event.TopicScored, nil, map[int32]int64{0: 4, 1: 6}); err != nil {
					t.Fatal(err)
				}
				got, _ := s.Offsets(ctx, event.TopicScored)
				if got[0] != 10 || got[1] != 6 {
					t.Fatalf("Offsets = %v, want {0:10 1:6}", got)
				}
				other, _ := s.Offsets(ctx, "other-topic")
				if len(other) != 0 {
					t.Fatalf("offsets leak across topics: %v", other)
				}
			})
			t.Run("Atomic", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				bad := rec("bad", 0, 1)
				bad.Scored.Decision = "maybe" // violates the decision CHECK constraint
				_, err := s.SaveBatch(ctx, event.TopicScored, []Record{rec("good", 0, 0), bad}, map[int32]int64{0: 2})
				if err == nil {
					t.Fatal("SaveBatch with an invalid row succeeded")
				}
				if n, _ := s.Count(ctx); n != 0 {
					t.Fatalf("Count = %d after a failed batch, want 0", n)
				}
				if got, _ := s.Offsets(ctx, event.TopicScored); len(got) != 0 {
					t.Fatalf("offsets advanced by a failed batch: %v", got)
				}
			})
			t.Run("CancelledContext", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if _, err := s.SaveBatch(ctx, event.TopicScored, []Record{rec("x", 0, 0)}, map[int32]int64{0: 1}); err == nil {
					t.Fatal("SaveBatch with a cancelled context succeeded")
				}
				if n, _ := s.Count(context.Background()); n != 0 {
					t.Fatalf("Count = %d, want 0", n)
				}
			})
			t.Run("ConcurrentWriters", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				var wg sync.WaitGroup
				errs := make(chan error, 8)
				for w := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range 10 {
							rows := []Record{rec(fmt.Sprintf("w%d-%d", w, i), int32(w), int64(i))}
							if _, err := s.SaveBatch(ctx, event.TopicScored, rows, map[int32]int64{int32(w): int64(i + 1)}); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				if n, _ := s.Count(ctx); n != 80 {
					t.Fatalf("Count = %d, want 80", n)
				}
			})
			t.Run("QueryAndPaginate", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
				var rows []Record
				// 30 transactions on 2 cards, several sharing an event time
				// (to the nanosecond) so the transaction_id tie-break matters.
				for i := range 30 {
					r := rec(fmt.Sprintf("q-%02d", i), int32(i%3), int64(i/3))
					r.Scored.Transaction.CardID = []string{"card-a", "card-b"}[i%2]
					r.Scored.Transaction.EventTime = base.Add(time.Duration(i/4)*time.Second + 123456789)
					r.Scored.Decision = []string{event.DecisionApprove, event.DecisionReview, event.DecisionDecline}[i%3]
					rows = append(rows, r)
				}
				if _, err := s.SaveBatch(ctx, event.TopicScored, rows, map[int32]int64{0: 10, 1: 10, 2: 10}); err != nil {
					t.Fatal(err)
				}
				ids := func(st []Stored) []string {
					var out []string
					for _, x := range st {
						out = append(out, x.Scored.Transaction.TransactionID)
					}
					return out
				}
				// want lists the ids matching keep in the API's order.
				want := func(keep func(Record) bool) []string {
					var out []string
					for i := len(rows) - 1; i >= 0; i-- { // ids ascend with event time
						if keep(rows[i]) {
							out = append(out, rows[i].Scored.Transaction.TransactionID)
						}
					}
					return out
				}
				tests := []struct {
					name string
					q    Query
					keep func(Record) bool
				}{
					{"all", Query{}, func(Record) bool { return true }},
					{"alerts", Query{Decisions: []string{event.DecisionReview, event.DecisionDecline}},
						func(r Record) bool { return r.Scored.Decision != event.DecisionApprove }},
					{"card", Query{CardID: "card-b"}, func(r Record) bool { return r.Scored.Transaction.CardID == "card-b" }},
					{"time range", Query{From: base.Add(2 * time.Second), To: base.Add(5 * time.Second)},
						func(r Record) bool {
							et := r.Scored.Transaction.EventTime
							return !et.Before(base.Add(2*time.Second)) && et.Before(base.Add(5*time.Second))
						}},
					{"decline on card-a", Query{Decisions: []string{event.DecisionDecline}, CardID: "card-a"},
						func(r Record) bool {
							return r.Scored.Decision == event.DecisionDecline && r.Scored.Transaction.CardID == "card-a"
						}},
				}
				for _, tt := range tests {
					for _, pageSize := range []int{1, 4, 7, 100} {
						q := tt.q
						q.Limit = pageSize
						var got []string
						for page := 0; ; page++ {
							st, err := s.Transactions(ctx, q)
							if err != nil {
								t.Fatalf("%s: %v", tt.name, err)
							}
							got = append(got, ids(st)...)
							if len(st) < pageSize || page > 40 {
								break
							}
							c := st[len(st)-1].Cursor()
							q.After = &c
						}
						if w := want(tt.keep); fmt.Sprint(got) != fmt.Sprint(w) {
							t.Errorf("%s, pages of %d:\n got %v\nwant %v", tt.name, pageSize, got, w)
						}
					}
				}
				st, _ := s.Transactions(ctx, Query{CardID: "card-a", Limit: 1})
				if len(st) != 1 || st[0].Partition != rows[28].Partition || st[0].Offset != rows[28].Offset || st[0].Label != nil {
					t.Fatalf("newest of card-a = %+v, want q-28 at %d/%d without label", st, rows[28].Partition, rows[28].Offset)
				}
			})
			t.Run("Range", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				var rows []Record
				for p := range int32(3) {
					for o := range int64(5) {
						rows = append(rows, rec(fmt.Sprintf("r-%d-%d", p, o), p, o))
					}
				}
				if _, err := s.SaveBatch(ctx, event.TopicScored, rows, map[int32]int64{0: 5, 1: 5, 2: 5}); err != nil {
					t.Fatal(err)
				}
				got, err := s.Range(ctx, map[int32]int64{0: 3, 1: 5, 2: 0}, map[int32]int64{0: 5, 1: 5, 2: 2}, 100)
				if err != nil {
					t.Fatal(err)
				}
				var pos []string
				for _, x := range got {
					pos = append(pos, fmt.Sprintf("%d-%d", x.Partition, x.Offset))
				}
				if fmt.Sprint(pos) != "[0-3 0-4 2-0 2-1]" {
					t.Fatalf("Range = %v", pos)
				}
				if got, _ := s.Range(ctx, map[int32]int64{0: 0}, map[int32]int64{0: 5}, 2); len(got) != 2 {
					t.Fatalf("limit not applied: %d rows", len(got))
				}
				if got, err := s.Range(ctx, nil, map[int32]int64{}, 10); err != nil || len(got) != 0 {
					t.Fatalf("empty range = %v, %v", got, err)
				}
			})
			t.Run("Labels", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				if _, err := s.SaveBatch(ctx, event.TopicScored, []Record{rec("l-1", 0, 0), rec("l-2", 0, 1), rec("l-3", 0, 2)}, map[int32]int64{0: 3}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.SetLabel(ctx, Label{TransactionID: "nope", Disposition: DispositionConfirmedFraud}); !errors.Is(err, ErrNotFound) {
					t.Fatalf("label of an unknown transaction: err = %v, want ErrNotFound", err)
				}
				if _, err := s.Label(ctx, "l-1"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Label before any: %v", err)
				}
				first, err := s.SetLabel(ctx, Label{TransactionID: "l-2", Disposition: DispositionConfirmedFraud, Note: "card reported stolen", Analyst: "ana"})
				if err != nil || first.CreatedAt.IsZero() || !first.UpdatedAt.Equal(first.CreatedAt) {
					t.Fatalf("SetLabel = %+v, %v", first, err)
				}
				time.Sleep(2 * time.Millisecond)
				second, err := s.SetLabel(ctx, Label{TransactionID: "l-2", Disposition: DispositionFalsePositive, Analyst: "bob"})
				if err != nil || !second.CreatedAt.Equal(first.CreatedAt) || !second.UpdatedAt.After(first.UpdatedAt) {
					t.Fatalf("relabel = %+v, %v (first %+v)", second, err, first)
				}
				got, err := s.Label(ctx, "l-2")
				if err != nil || got.Disposition != DispositionFalsePositive || got.Note != "" || got.Analyst != "bob" {
					t.Fatalf("Label = %+v, %v", got, err)
				}
				if _, err := s.SetLabel(ctx, Label{TransactionID: "l-1", Disposition: "maybe"}); err == nil {
					t.Fatal("a disposition outside the CHECK constraint was stored")
				}
				if _, err := s.SetLabel(ctx, Label{TransactionID: "l-3", Disposition: DispositionConfirmedFraud}); err != nil {
					t.Fatal(err)
				}
				// The training set: labelled rows with their records, paged by id.
				var seen []string
				after := ""
				for {
					page, err := s.Labeled(ctx, after, 1)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) == 0 {
						break
					}
					x := page[0]
					if x.Label == nil || x.Scored.Features.AmountZScore != 1.5 {
						t.Fatalf("Labeled row lacks label or features: %+v", x)
					}
					seen = append(seen, x.Scored.Transaction.TransactionID+"="+x.Label.Disposition)
					after = x.Scored.Transaction.TransactionID
				}
				if fmt.Sprint(seen) != "[l-2=false_positive l-3=confirmed_fraud]" {
					t.Fatalf("Labeled = %v", seen)
				}
				st, _ := s.Transactions(ctx, Query{Limit: 10})
				labelled := 0
				for _, x := range st {
					if x.Label != nil {
						labelled++
					}
				}
				if labelled != 2 {
					t.Fatalf("Transactions shows %d labels, want 2", labelled)
				}
			})
			t.Run("Sessions", func(t *testing.T) {
				s := openTestStore(t, b.url(t))
				ctx := context.Background()
				t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
				key := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
				want := Session{Key: key(1), CreatedAt: t0, IdleUntil: t0.Add(30 * time.Minute), ExpiresAt: t0.Add(12 * time.Hour)}
				if err := s.CreateSession(ctx, want); err != nil {
					t.Fatal(err)
				}
				if err := s.CreateSession(ctx, want); err == nil {
					t.Fatal("a second session under the same key was stored")
				}
				if err := s.CreateSession(ctx, Session{Key: []byte("short"), CreatedAt: t0, IdleUntil: t0, ExpiresAt: t0}); err == nil {
					t.Fatal("a session key of 5 bytes was stored")
				}
				read := func(k []byte) Session {
					t.Helper()
					got, err := s.Session(ctx, k)
					if err != nil {
						t.Fatalf("Session: %v", err)
					}
					return got
				}
				if got := read(key(1)); !bytes.Equal(got.Key, want.Key) || !got.CreatedAt.Equal(want.CreatedAt) ||
					!got.IdleUntil.Equal(want.IdleUntil) || !got.ExpiresAt.Equal(want.ExpiresAt) {
					t.Fatalf("Session = %+v, want %+v", got, want)
				}
				if _, err := s.Session(ctx, key(2)); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Session(missing) err = %v, want ErrNotFound", err)
				}
				tests := []struct {
					name  string
					touch time.Time
					want  time.Time
				}{
					{"forward", t0.Add(time.Hour), t0.Add(time.Hour)},
					{"never back", t0.Add(10 * time.Minute), t0.Add(time.Hour)},
					{"never past the absolute expiry", t0.Add(13 * time.Hour), t0.Add(12 * time.Hour)},
				}
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						if err := s.TouchSession(ctx, key(1), tt.touch); err != nil {
							t.Fatal(err)
						}
						if got := read(key(1)).IdleUntil; !got.Equal(tt.want) {
							t.Fatalf("IdleUntil = %s, want %s", got, tt.want)
						}
					})
				}
				if err := s.TouchSession(ctx, key(2), t0); err != nil {
					t.Fatalf("TouchSession(missing) = %v, want nil", err)
				}

				// Ended by idleness, ended by age, alive: only the first two go.
				idle := Session{Key: key(3), CreatedAt: t0, IdleUntil: t0.Add(time.Minute), ExpiresAt: t0.Add(time.Hour)}
				old := Session{Key: key(4), CreatedAt: t0, IdleUntil: t0.Add(2 * time.Minute), ExpiresAt: t0.Add(2 * time.Minute)}
				for _, ss := range []Session{idle, old} {
					if err := s.CreateSession(ctx, ss); err != nil {
						t.Fatal(err)
					}
				}
				if n, err := s.DeleteEndedSessions(ctx, t0.Add(2*time.Minute)); err != nil || n != 2 {
					t.Fatalf("DeleteEndedSessions = %d, %v; want 2", n, err)
				}
				for _, k := range [][]byte{key(3), key(4)} {
					if _, err := s.Session(ctx, k); !errors.Is(err, ErrNotFound) {
						t.Fatalf("ended session %x still stored: %v", k[:1], err)
					}
				}
				read(key(1))

				if err := s.DeleteSession(ctx, key(1)); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Session(ctx, key(1)); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Session after delete err = %v, want ErrNotFound", err)
				}
				if err := s.DeleteSession(ctx, key(1)); err != nil {
					t.Fatalf("DeleteSession(missing) = %v, want nil", err)
				}
			})
			t.Run("AdoptsPreGooseSchema", func(t *testing.T) {
				// A database made by the hand-written migrator that
				// preceded goose: its schema, its schema_migrations, a row.
				url := b.url(t)
				db, err := parseDatabaseURL(url)
				if err != nil {
					t.Fatal(err)
				}
				driver := map[string]string{"postgres": "pgx", "sqlite": "sqlite"}[db.driver]
				raw, err := sql.Open(driver, db.dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer raw.Close()
				init, _ := fs.ReadFile(migrationFS, "migrations/"+db.driver+"/0001_init.sql")
				ctx := context.Background()
				for _, stmt := range []string{string(init),
					`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL)`,
					`INSERT INTO schema_migrations VALUES (1, '0001_init.sql')`,
					`INSERT INTO scored_transactions (transaction_id, card_id, event_time, amount_minor, currency, merchant_country,
						score, decision, kafka_partition, kafka_offset, record)
						VALUES ('legacy-1', 'c', '2026-03-01T12:00:00.000000000Z', 1, 'EUR', 'DE', 0.5, 'review', 0, 0,
						'{"schema":"fraudstream.scored.v1","transaction":{"transaction_id":"legacy-1"},"decision":"review","score":0.5}')`,
				} {
					if _, err := raw.ExecContext(ctx, stmt); err != nil {
						t.Fatalf("legacy schema: %v", err)
					}
				}
				s := openTestStore(t, url)
				if _, err := s.Transaction(ctx, "legacy-1"); err != nil {
					t.Fatalf("legacy row after migrating: %v", err)
				}
				if _, err := s.SetLabel(ctx, Label{TransactionID: "legacy-1", Disposition: DispositionFalsePositive}); err != nil {
					t.Fatalf("0002 not applied: %v", err)
				}
			})
			t.Run("ReopenKeepsDataAndSchema", func(t *testing.T) {
				url := b.url(t)
				s := openTestStore(t, url)
				ctx := context.Background()
				if _, err := s.SaveBatch(ctx, event.TopicScored, []Record{rec("keep", 0, 0)}, map[int32]int64{0: 1}); err != nil {
					t.Fatal(err)
				}
				s.Close()
				s2 := openTestStore(t, url) // migrations run again: must be a no-op
				if _, err := s2.Transaction(ctx, "keep"); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func TestParseDatabaseURL(t *testing.T) {
	tests := []struct {
		in, driver, dsn, err string
	}{
		{in: "postgres://u@localhost/db", driver: "postgres", dsn: "postgres://u@localhost/db"},
		{in: "postgresql://u@localhost:5433/db?sslmode=disable", driver: "postgres", dsn: "postgresql://u@localhost:5433/db?sslmode=disable"},
		{in: "sqlite:.data/alerts.db", driver: "sqlite", dsn: ".data/alerts.db"},
		{in: "sqlite:///var/lib/a.db", driver: "sqlite", dsn: "/var/lib/a.db"},
		{in: "file:/tmp/a.db", driver: "sqlite", dsn: "/tmp/a.db"},
		{in: "alerts.db", driver: "sqlite", dsn: "alerts.db"},
		{in: "", err: "required: postgres://"},
		{in: "mysql://x", err: `unsupported scheme "mysql"`},
		{in: "sqlite::memory:", err: "in-memory SQLite is not supported"},
		{in: "sqlite:a.db?mode=ro", err: "want sqlite:PATH with a plain file path"},
		{in: "postgres://u@host:notaport/db", err: "not a valid PostgreSQL URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseDatabaseURL(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got.driver != tt.driver || got.dsn != tt.dsn {
				t.Fatalf("= %+v, %v; want %s %s", got, err, tt.driver, tt.dsn)
			}
		})
	}
}
