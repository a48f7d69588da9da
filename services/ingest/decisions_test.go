package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// fakeScorer stands in for the scorer: it reads raw-transactions and
// writes one committed scored record per input to the same partition of
// scored-transactions, in its own Kafka transaction. Before each, it writes
// the opposite decision in a transaction it aborts, so a reader that is
// not read_committed would answer it. gate, while held, stops it.
type fakeScorer struct {
	gate sync.RWMutex
}

// fakeDecision is the committed decision of a transaction: decline above
// 5000 minor units.
func fakeDecision(tx event.Transaction) string {
	if tx.AmountMinor > 5000 {
		return event.DecisionDecline
	}
	return event.DecisionApprove
}

func newDecisionCluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, event.TopicRaw, event.TopicScored))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func startFakeScorer(t *testing.T, c *kfake.Cluster) *fakeScorer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.TransactionalID("fake-scorer"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeTopics(event.TopicRaw),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	f := &fakeScorer{}
	emit := func(r *kgo.Record, decision string, commit kgo.TransactionEndTry) error {
		tx, err := event.DecodeTransaction(r.Value)
		if err != nil {
			return err
		}
		s := event.Scored{Transaction: tx, Score: 0.25, Decision: decision, RuleSetVersion: 7, ModelVersion: "fake-1",
			Reasons:   []event.Reason{{Code: "fake", Source: event.SourceRule, Weight: 0.25}},
			Partition: r.Partition, Offset: r.Offset}
		v, err := s.Encode()
		if err != nil {
			return err
		}
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		out := &kgo.Record{Topic: event.TopicScored, Partition: r.Partition, Key: r.Key, Value: v,
			Headers: []kgo.RecordHeader{{Key: event.HeaderScoredAt, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))}}}
		if err := cl.ProduceSync(ctx, out).FirstErr(); err != nil {
			return err
		}
		return cl.EndTransaction(ctx, commit)
	}
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			f.gate.RLock()
			fs.EachRecord(func(r *kgo.Record) {
				if ctx.Err() != nil {
					return
				}
				tx, err := event.DecodeTransaction(r.Value)
				if err != nil {
					t.Errorf("fake scorer: %v", err)
					return
				}
				wrong := event.DecisionDecline
				if fakeDecision(tx) == wrong {
					wrong = event.DecisionApprove
				}
				if err := emit(r, wrong, kgo.TryAbort); err != nil && ctx.Err() == nil {
					t.Errorf("fake scorer: aborted write: %v", err)
				}
				if err := emit(r, fakeDecision(tx), kgo.TryCommit); err != nil && ctx.Err() == nil {
					t.Errorf("fake scorer: %v", err)
				}
			})
			f.gate.RUnlock()
		}
	}()
	return f
}

func postDecision(t testing.TB, url string, body []byte, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(t, req)
}

func getDecision(t testing.TB, url string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	return do(t, req)
}

func do(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func decodeDecision(t testing.TB, r response) Decision {
	t.Helper()
	var d Decision
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("decision %s: %v", r.body, err)
	}
	return d
}

func decisionConfig(t testing.TB, c *kfake.Cluster) Config {
	cfg := testConfig(t, c)
	cfg.Decisions.Budget = 5 * time.Second // the tests that want pending ask for it
	return cfg
}

// TestDecisionIsTheCommittedRecord: concurrent decision requests each get
// the decision of the committed scored record at their own partition and
// offset, never the aborted one written before it.
func TestDecisionIsTheCommittedRecord(t *testing.T) {
	c := newDecisionCluster(t)
	startFakeScorer(t, c)
	_, base := startService(t, decisionConfig(t, c))

	const n, workers = 120, 8
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				amount := 1000 + 100*i // half above 5000: declined
				body := txWith(map[string]any{"transaction_id": fmt.Sprintf("dec-%03d", i),
					"card_id": fmt.Sprintf("card-%d", i%7), "amount_minor": amount})
				r := postDecision(t, base+"/v1/decisions", body, nil)
				if r.status != http.StatusOK {
					errs <- fmt.Sprintf("dec-%03d: %d %s", i, r.status, r.body)
					continue
				}
				d := decodeDecision(t, r)
				want := event.DecisionApprove
				if amount > 5000 {
					want = event.DecisionDecline
				}
				rec := fetchRecord(t, c, d.Partition, d.Offset)
				tx, err := event.DecodeTransaction(rec.Value)
				switch {
				case err != nil:
					errs <- fmt.Sprintf("dec-%03d: stored record: %v", i, err)
				case d.TransactionID != tx.TransactionID || tx.TransactionID != fmt.Sprintf("dec-%03d", i):
					errs <- fmt.Sprintf("dec-%03d: answered %s, stored %s at %d/%d", i, d.TransactionID, tx.TransactionID, d.Partition, d.Offset)
				case d.Decision != want:
					errs <- fmt.Sprintf("dec-%03d: decision %s, committed %s", i, d.Decision, want)
				case d.Score == nil || *d.Score != 0.25 || d.RuleSetVersion == nil || *d.RuleSetVersion != 7 ||
					d.ModelVersion != "fake-1" || len(d.Reasons) != 1 || d.ScoredAt == nil:
					errs <- fmt.Sprintf("dec-%03d: incomplete decision %s", i, r.body)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestDecisionBudgetExpiry: a budget that runs out is a 202 pending with a
// Location; the decision is readable there once scored, and a retry with
// the same Idempotency-Key then gets it too.
func TestDecisionBudgetExpiry(t *testing.T) {
	c := newDecisionCluster(t)
	f := startFakeScorer(t, c)
	_, base := startService(t, decisionConfig(t, c))

	f.gate.Lock() // the scorer is stuck
	body := txWith(map[string]any{"transaction_id": "slow-1", "amount_minor": 9000})
	hdr := map[string]string{"Idempotency-Key": "k-slow-1"}
	for _, tc := range []struct {
		name, query string
		hdr         map[string]string
		applied     string
	}{
		{"query", "?budget_ms=30", hdr, ""},
		{"prefer", "", map[string]string{"Idempotency-Key": "k-slow-1", "Prefer": "respond-async, wait=0"}, "wait=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := postDecision(t, base+"/v1/decisions"+tc.query, body, tc.hdr)
			if r.status != http.StatusAccepted {
				t.Fatalf("status %d, want 202: %s", r.status, r.body)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("pending answer took %s", el)
			}
			d := decodeDecision(t, r)
			if d.Decision != DecisionPending || d.TransactionID != "slow-1" || d.Score != nil {
				t.Errorf("pending answer %s", r.body)
			}
			if loc, want := r.header.Get("Location"), decisionPath(d.Partition, d.Offset); loc != want {
				t.Errorf("Location %q, want %q", loc, want)
			}
			if got := r.header.Get("Preference-Applied"); got != tc.applied {
				t.Errorf("Preference-Applied %q, want %q", got, tc.applied)
			}
		})
	}
	r := postDecision(t, base+"/v1/decisions?budget_ms=0", body, hdr)
	loc := r.header.Get("Location")
	if g := getDecision(t, base+loc); g.status != http.StatusAccepted || decodeDecision(t, g).Decision != DecisionPending {
		t.Fatalf("GET %s before scoring: %d %s", loc, g.status, g.body)
	}
	f.gate.Unlock()
	var got response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = getDecision(t, base+loc); got.status != http.StatusAccepted {
			break
		}
	}
	if got.status != http.StatusOK || decodeDecision(t, got).Decision != event.DecisionDecline {
		t.Fatalf("GET %s after scoring: %d %s", loc, got.status, got.body)
	}
	retry := postDecision(t, base+"/v1/decisions", body, hdr)
	if retry.status != http.StatusOK || !bytes.Equal(retry.body, got.body) {
		t.Fatalf("retry: %d %s, want the decision %s", retry.status, retry.body, got.body)
	}
	if retry.header.Get(ReplayedHeader) != "true" {
		t.Errorf("retry not marked replayed")
	}
}

// TestDecisionRefusals: what POST /v1/transactions refuses, POST
// /v1/decisions refuses the same way; a bad budget is a 400 problem; an
// unknown decision is a 404 problem.
func TestDecisionRefusals(t *testing.T) {
	c := newDecisionCluster(t)
	startFakeScorer(t, c)
	_, base := startService(t, decisionConfig(t, c))
	for _, tc := range []struct {
		name   string
		path   string
		body   []byte
		status int
		typ    string
	}{
		{"invalid field", "/v1/decisions", txWith(map[string]any{"amount_minor": -1}), 422, "validation"},
		{"malformed", "/v1/decisions", []byte("{"), 400, "malformed-json"},
		{"bad budget", "/v1/decisions?budget_ms=soon", txWith(nil), 400, "invalid-parameter"},
		{"negative budget", "/v1/decisions?budget_ms=-5", txWith(nil), 400, "invalid-parameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := postDecision(t, base+tc.path, tc.body, nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if p := decodeProblem(t, r); !strings.HasSuffix(p.Type, "/"+tc.typ) {
				t.Errorf("type %s, want %s", p.Type, tc.typ)
			}
		})
	}
	r := post(t, base+"/v1/decisions", "application/json", "", txWith(nil))
	if r.status != http.StatusUnauthorized {
		t.Errorf("without a key: %d", r.status)
	}
	if g := getDecision(t, base+"/v1/decisions/x/1"); g.status != http.StatusNotFound {
		t.Errorf("GET a malformed location: %d %s", g.status, g.body)
	}
}

// TestDecisionIndex drives the index directly: a waiter is woken by its
// record, a waiter on an offset passed without a record gets its
// transaction's decision (the dropped repeat of a retried transaction) or
// nothing, and entries leave by count and by age.
func TestDecisionIndex(t *testing.T) {
	at := time.Unix(1000, 0)
	entry := func(p int32, o int64, id string, age time.Duration) *decided {
		return &decided{key: decisionKey{p, o}, txID: id, fp: uint64(len(id)), body: []byte(id), at: at.Add(age)}
	}
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 20*time.Millisecond)
	}

	t.Run("woken", func(t *testing.T) {
		x := newDecisionIndex(10, time.Hour)
		got := make(chan *decided, 1)
		go func() {
			d, _ := x.wait(context.Background(), decisionKey{1, 5}, "a", 1)
			got <- d
		}()
		for { // until registered
			x.mu.Lock()
			n := len(x.waiters[1][5])
			x.mu.Unlock()
			if n == 1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		x.add(entry(1, 4, "other", 0))
		x.add(entry(1, 5, "a", 0))
		if d := <-got; d == nil || d.txID != "a" {
			t.Fatalf("woken with %v", d)
		}
	})
	t.Run("passed repeat answers its first copy", func(t *testing.T) {
		x := newDecisionIndex(10, time.Hour)
		x.add(entry(2, 3, "dup", 0))
		res := make(chan *decided, 1)
		go func() { d, _ := x.wait(context.Background(), decisionKey{2, 8}, "dup", 3); res <- d }()
		time.Sleep(10 * time.Millisecond)
		x.add(entry(2, 9, "next", 0)) // offset 8 was dropped by the scorer
		if d := <-res; d == nil || d.key.o != 3 {
			t.Fatalf("repeat answered %v, want the decision at offset 3", d)
		}
		ctx, cancel := short()
		defer cancel()
		if d, st := x.wait(ctx, decisionKey{2, 7}, "never", 5); d != nil || st != stateGone {
			t.Fatalf("passed unknown offset: %v %v, want gone", d, st)
		}
	})
	t.Run("passed reuse of an id never answers the other transaction", func(t *testing.T) {
		// The same transaction_id with other contents (fingerprint 99):
		// the scorer dead-letters it, and its waiter must not get the
		// decision of the transaction that had the id first.
		x := newDecisionIndex(10, time.Hour)
		x.add(entry(2, 3, "dup", 0))
		res := make(chan *decided, 1)
		go func() { d, _ := x.wait(context.Background(), decisionKey{2, 8}, "dup", 99); res <- d }()
		time.Sleep(10 * time.Millisecond)
		x.add(entry(2, 9, "next", 0))
		if d := <-res; d != nil {
			t.Fatalf("a reused id answered with %s at offset %d, another transaction's decision", d.txID, d.key.o)
		}
		if d, st := x.lookup(decisionKey{2, 8}, "dup", 99); d != nil || st != stateGone {
			t.Fatalf("lookup of the reuse: %v %v, want gone", d, st)
		}
	})
	t.Run("budget", func(t *testing.T) {
		x := newDecisionIndex(10, time.Hour)
		ctx, cancel := short()
		defer cancel()
		if d, st := x.wait(ctx, decisionKey{0, 1}, "a", 1); d != nil || st != stateWaiting {
			t.Fatalf("%v %v, want waiting", d, st)
		}
		if len(x.waiters[0]) != 0 {
			t.Fatalf("waiter left behind: %v", x.waiters[0])
		}
	})
	t.Run("evicted by count", func(t *testing.T) {
		x := newDecisionIndex(2, time.Hour)
		for o := range int64(3) {
			x.add(entry(0, o, fmt.Sprint("t", o), 0))
		}
		if _, st := x.lookup(decisionKey{0, 0}, "", 0); st != stateGone {
			t.Errorf("oldest still held: %v", st)
		}
		if d, st := x.lookup(decisionKey{0, 2}, "", 0); st != stateDecided || d.txID != "t2" {
			t.Errorf("newest: %v %v", d, st)
		}
		if _, ok := x.byTx["t0"]; ok {
			t.Errorf("evicted entry still indexed by transaction_id")
		}
	})
	t.Run("evicted by age", func(t *testing.T) {
		x := newDecisionIndex(10, time.Minute)
		x.add(entry(0, 0, "old", 0))
		x.add(entry(0, 1, "new", 2*time.Minute))
		if _, st := x.lookup(decisionKey{0, 0}, "", 0); st != stateGone {
			t.Errorf("expired entry still held: %v", st)
		}
		if _, st := x.lookup(decisionKey{0, 5}, "", 0); st != stateWaiting {
			t.Errorf("an offset not yet read: %v, want waiting", st)
		}
	})
}

func TestDecisionBudgetFromRequest(t *testing.T) {
	s := &Service{cfg: Config{Decisions: DecisionConfig{Budget: 250 * time.Millisecond, MaxBudget: 2 * time.Second}}}
	for _, tc := range []struct {
		name, query, prefer string
		want                time.Duration
		applied             string
		bad                 bool
	}{
		{"default", "", "", 250 * time.Millisecond, "", false},
		{"query", "?budget_ms=40", "", 40 * time.Millisecond, "", false},
		{"query wins", "?budget_ms=40", "wait=1", 40 * time.Millisecond, "", false},
		{"query capped", "?budget_ms=99999", "", 2 * time.Second, "", false},
		{"query bad", "?budget_ms=1s", "", 0, "", true},
		{"prefer", "", "respond-async, wait=1", time.Second, "wait=1", false},
		{"prefer fraction", "", "wait=0.05", 50 * time.Millisecond, "wait=0.05", false},
		{"prefer capped", "", "wait=60", 2 * time.Second, "wait=2", false},
		{"prefer malformed ignored", "", "wait=soon", 250 * time.Millisecond, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, "/v1/decisions"+tc.query, nil)
			if tc.prefer != "" {
				r.Header.Set("Prefer", tc.prefer)
			}
			got, applied, e := s.decisionBudget(r)
			if (e != nil) != tc.bad {
				t.Fatalf("error %v, want bad=%v", e, tc.bad)
			}
			if !tc.bad && (got != tc.want || applied != tc.applied) {
				t.Errorf("budget %s %q, want %s %q", got, applied, tc.want, tc.applied)
			}
		})
	}
}

// BenchmarkDecisionFeedRecord is what every ingest replica spends per
// scored record on the decisions feed: decode, build the answer, index it.
//
//	go test -run '^$' -bench DecisionFeedRecord ./services/ingest/
func BenchmarkDecisionFeedRecord(b *testing.B) {
	tx, err := event.DecodeTransaction(txWith(map[string]any{"ingest_time": "2026-03-01T12:00:00.001Z"}))
	if err != nil {
		b.Fatal(err)
	}
	s := event.Scored{Transaction: tx, Score: 0.42, Decision: event.DecisionReview, RuleSetVersion: 3, ModelVersion: "logreg-1",
		Reasons:   []event.Reason{{Code: "velocity_10m", Source: event.SourceRule, Weight: 0.3, Detail: "count_10m > 5"}},
		Partition: 2, Offset: 1}
	v, err := s.Encode()
	if err != nil {
		b.Fatal(err)
	}
	r := &kgo.Record{Value: v, Partition: 2,
		Headers: []kgo.RecordHeader{{Key: event.HeaderScoredAt, Value: []byte("2026-03-01T12:00:00.004123Z")}}}
	x := newDecisionIndex(DefaultDecisionCacheSize, DefaultDecisionRetention)
	now := time.Now()
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for i := range b.N {
		d, err := decodeDecided(r, now)
		if err != nil {
			b.Fatal(err)
		}
		d.key.o = int64(i)
		x.add(d)
	}
}

// TestDecisionFingerprint: the fingerprint a request computes from its body
// is the one the feed computes from the scored record of what ingest
// stored, so a dropped repeat finds its first copy; another body with the
// same transaction_id does not.
func TestDecisionFingerprint(t *testing.T) {
	s := &Service{cfg: DefaultConfig(), now: func() time.Time { return testNow }}
	body := txWith(map[string]any{"amount_minor": 4321})
	tx, e := decodeTransaction(bodyString(body), testNow, s.cfg.MaxSkew)
	if e != nil {
		t.Fatal(e)
	}
	canonical, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	raw, e := s.record(tx, canonical, testNow.Add(time.Second))
	if e != nil {
		t.Fatal(e)
	}
	stored, err := event.DecodeTransaction(raw.Value)
	if err != nil {
		t.Fatal(err)
	}
	v, err := event.Scored{Transaction: stored, Decision: event.DecisionApprove, Partition: 1, Offset: 2}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeDecided(&kgo.Record{Value: v}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.requestFingerprint(body); got == 0 || got != d.fp {
		t.Errorf("request fingerprint %x, scored record's %x", got, d.fp)
	}
	if other := s.requestFingerprint(txWith(map[string]any{"amount_minor": 4322})); other == d.fp {
		t.Errorf("other contents under the same transaction_id share the fingerprint %x", other)
	}
}
