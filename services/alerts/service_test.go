package alerts

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

const testPartitions = 3

func newCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, event.TopicScored, event.TopicStats, event.TopicScoredDLQ),
		kfake.SeedTopics(1, event.TopicRules))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func testConfig(brokers []string, dbURL string) Config {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = brokers
	cfg.DatabaseURL = dbURL
	cfg.BatchSize = 50
	cfg.FlushInterval = 20 * time.Millisecond
	// The test records' event times are fixed days in the past: keep them.
	cfg.Retention = RetentionPolicy{}
	return cfg
}

// running is a Service whose Run is in progress.
type running struct {
	*Service
	stop func() // cancels Run and waits for it
}

// start builds a Service (letting the test adjust it before Run), runs it
// and waits until it is Ready.
func start(t *testing.T, cfg Config, adjust func(*Service)) *running {
	t.Helper()
	s, err := New(cfg, Deps{Log: discardLog()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if adjust != nil {
		adjust(s)
	}
	return run(t, s)
}

// run runs s until the test ends and waits until it is Ready.
func run(t *testing.T, s *Service) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	var stopped atomic.Bool
	stop := func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of cancel")
		}
	}
	t.Cleanup(stop)
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("service not ready within 20s")
	}
	return &running{Service: s, stop: stop}
}

// producer writes scored records transactionally, as the scorer does.
type producer struct {
	t  *testing.T
	cl *kgo.Client
}

func newProducer(t *testing.T, brokers []string) *producer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(fmt.Sprintf("test-%s-%d", t.Name(), time.Now().UnixNano())),
		kgo.DefaultProduceTopic(event.TopicScored), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &producer{t: t, cl: cl}
}

func scoredRecord(id string, partition int32) *kgo.Record {
	s := scored(id, []string{event.DecisionApprove, event.DecisionReview, event.DecisionDecline}[len(id)%3])
	v, _ := s.Encode()
	return &kgo.Record{
		Key: []byte(s.Transaction.CardID), Value: v, Partition: partition,
		Headers: []kgo.RecordHeader{{Key: event.HeaderScoredAt, Value: []byte(s.ScoredAt.Format(time.RFC3339Nano))}},
	}
}

// txn produces recs in one transaction and commits it (or aborts it).
func (p *producer) txn(commit bool, recs ...*kgo.Record) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.cl.BeginTransaction(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		p.t.Fatal(err)
	}
}

// batchOf returns n records with ids prefix-0… spread over the partitions.
func batchOf(prefix string, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = scoredRecord(fmt.Sprintf("%s-%d", prefix, i), int32(i%testPartitions))
	}
	return recs
}

func waitCount(t *testing.T, s Store, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var n int64
	for time.Now().Before(deadline) {
		var err error
		if n, err = s.Count(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n != want {
		t.Fatalf("stored %d rows, want %d", n, want)
	}
}

func sqliteURL(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "alerts.db") }

func TestSinkStoresCommittedRecordsExactlyOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			brokers := newCluster(t)
			cfg := testConfig(brokers, b.url(t))
			p := newProducer(t, brokers)
			// Some records exist before the sink starts, some arrive later.
			p.txn(true, batchOf("a", 120)...)
			svc := start(t, cfg, nil)
			p.txn(false, batchOf("aborted", 30)...) // never visible to read_committed
			p.txn(true, batchOf("b", 180)...)
			garbage := &kgo.Record{Value: []byte(`{"not":"scored"}`), Partition: 1}
			p.txn(true, garbage, scoredRecord("after-garbage", 1))
			waitCount(t, svc.Store(), 301)

			ctx := context.Background()
			for _, id := range []string{"a-0", "a-119", "b-179", "after-garbage"} {
				got, err := svc.Store().Transaction(ctx, id)
				if err != nil {
					t.Fatalf("Transaction(%s): %v", id, err)
				}
				if got.ScoredAt.IsZero() {
					t.Errorf("%s: ScoredAt not taken from the %s header", id, event.HeaderScoredAt)
				}
			}
			if _, err := svc.Store().Transaction(ctx, "aborted-0"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("aborted record stored: %v", err)
			}
			if n := testutil.ToFloat64(svc.sink.m.deadLetters.WithLabelValues("invalid")); n != 1 {
				t.Errorf("invalid dead letters = %v, want 1", n)
			}

			// Restart: the new instance resumes at the stored offsets, so it
			// re-reads nothing (a re-read would count as a duplicate).
			svc.stop()
			p.txn(true, batchOf("c", 90)...)
			svc2 := start(t, cfg, nil)
			waitCount(t, svc2.Store(), 391)
			time.Sleep(100 * time.Millisecond) // let any stray re-read show up
			if n := testutil.ToFloat64(svc2.sink.m.duplicates); n != 0 {
				t.Fatalf("restarted sink re-read %v already stored records", n)
			}
			if n := testutil.ToFloat64(svc2.sink.m.rowsStored); n != 90 {
				t.Fatalf("restarted sink stored %v rows, want 90", n)
			}
			offs, err := svc2.Store().Offsets(ctx, event.TopicScored)
			if err != nil || len(offs) != testPartitions {
				t.Fatalf("Offsets = %v, %v", offs, err)
			}
			waitCount(t, svc2.Store(), 391)
		})
	}
}

// readDLQ reads scored-transactions.dlq until it holds n records (or 10 s).
func readDLQ(t *testing.T, brokers []string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(event.TopicScoredDLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for deadline := time.Now().Add(10 * time.Second); len(out) < n && time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
		cancel()
	}
	return out
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// checkDeadLetter checks that d is the dead letter of src (read from
// scored-transactions at partition p, offset off) with an error header
// containing reason.
func checkDeadLetter(t *testing.T, d, src *kgo.Record, off int64, reason string) {
	t.Helper()
	if d.Partition != src.Partition || string(d.Key) != string(src.Key) || string(d.Value) != string(src.Value) {
		t.Errorf("dead letter %d/%q = %s, want partition %d, key %q, value %s", d.Partition, d.Key, d.Value, src.Partition, src.Key, src.Value)
	}
	if e := headerOf(d, event.HeaderError); !strings.Contains(e, reason) {
		t.Errorf("%s header %q, want it to mention %q", event.HeaderError, e, reason)
	}
	if got := headerOf(d, event.HeaderSourceTopic) + "/" + headerOf(d, event.HeaderSourcePartition) + "/" + headerOf(d, event.HeaderSourceOffset); got != fmt.Sprintf("%s/%d/%d", event.TopicScored, src.Partition, off) {
		t.Errorf("source headers %s, want %s/%d/%d", got, event.TopicScored, src.Partition, off)
	}
	for _, h := range src.Headers {
		if headerOf(d, h.Key) != string(h.Value) {
			t.Errorf("header %s of the record not kept", h.Key)
		}
	}
}

// offsetOf returns the offset at which the record with value v was stored
// in scored-transactions partition p.
func offsetOf(t *testing.T, brokers []string, p int32, v []byte) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		event.TopicScored: {p: kgo.NewOffset().AtStart()}}), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, r := range fs.Records() {
			if string(r.Value) == string(v) {
				return r.Offset
			}
		}
	}
	t.Fatalf("%s not found in partition %d", v, p)
	return 0
}

// TestSinkDeadLetters: what the sink cannot store goes to
// scored-transactions.dlq with its key, value, headers, the reason and
// its source position, and the partition moves on; a redelivery of a
// stored record stays silent.
func TestSinkDeadLetters(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			brokers := newCluster(t)
			cfg := testConfig(brokers, b.url(t))
			p := newProducer(t, brokers)
			svc := start(t, cfg, nil)

			invalid := &kgo.Record{Key: []byte("k"), Value: []byte(`{"schema":"fraudstream.scored.v1","score":7}`), Partition: 2,
				Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t-1")}}}
			dupKey := scoredRecord("dup-key", 2)
			dupKey.Value = append(dupKey.Value[:len(dupKey.Value)-1], `,"decision":"decline"}`...)
			first := scoredRecord("reused", 1)
			p.txn(true, invalid, dupKey, first)
			waitCount(t, svc.Store(), 1)

			// transaction_id "reused" again with other content, then the
			// same record as the first again (a redelivery).
			sc := scored("reused", event.DecisionDecline)
			v, _ := sc.Encode()
			conflicting := &kgo.Record{Key: []byte(sc.Transaction.CardID), Value: v, Partition: 1}
			again := &kgo.Record{Key: first.Key, Value: first.Value, Partition: 1, Headers: first.Headers}
			p.txn(true, conflicting, again, scoredRecord("after", 1))
			waitCount(t, svc.Store(), 2)

			dead := readDLQ(t, brokers, 3)
			if len(dead) != 3 {
				t.Fatalf("dead letters: %d, want 3", len(dead))
			}
			byValue := map[string]*kgo.Record{}
			for _, d := range dead {
				byValue[string(d.Value)] = d
			}
			for _, c := range []struct {
				src    *kgo.Record
				reason string
			}{
				{invalid, "/decision"},
				{dupKey, "/decision: duplicate key"},
				{conflicting, "transaction_id reused reused with different content"},
			} {
				d := byValue[string(c.src.Value)]
				if d == nil {
					t.Errorf("no dead letter of %s", c.src.Value)
					continue
				}
				checkDeadLetter(t, d, c.src, offsetOf(t, brokers, c.src.Partition, c.src.Value), c.reason)
			}
			m := svc.sink.m.deadLetters
			if inv, con := testutil.ToFloat64(m.WithLabelValues("invalid")), testutil.ToFloat64(m.WithLabelValues("conflict")); inv != 2 || con != 1 {
				t.Errorf("dead letters: invalid %v, conflict %v; want 2 and 1", inv, con)
			}
			if n := testutil.ToFloat64(svc.sink.m.duplicates); n != 1 {
				t.Errorf("duplicates = %v, want 1 (the redelivery)", n)
			}
			// The first record of "reused" (scoredRecord: approve) stays.
			if got, err := svc.Store().Transaction(context.Background(), "reused"); err != nil || got.Decision != event.DecisionApprove {
				t.Fatalf("reused: decision %q, %v; want the first record's approve", got.Decision, err)
			}
		})
	}
}

// TestSinkStoresNewerRecords: a scored record with a field this release
// does not know (written by a newer scorer) is stored, and the record
// column keeps the field.
func TestSinkStoresNewerRecords(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			brokers := newCluster(t)
			svc := start(t, testConfig(brokers, b.url(t)), nil)
			newer := scoredRecord("newer", 1)
			newer.Value = append(newer.Value[:len(newer.Value)-1], `,"explanation":{"top":["amount"]}}`...)
			newProducer(t, brokers).txn(true, newer, scoredRecord("older", 1))
			waitCount(t, svc.Store(), 2)
			if _, err := svc.Store().Transaction(context.Background(), "newer"); err != nil {
				t.Fatalf("record with an unknown field not stored: %v", err)
			}
			if rec := storedRecord(t, svc.Store(), "newer"); !strings.Contains(strings.ReplaceAll(rec, " ", ""), `"explanation":{"top":["amount"]}`) {
				t.Errorf("stored record lost the unknown field: %s", rec)
			}
			if n := testutil.ToFloat64(svc.sink.m.deadLetters.WithLabelValues("invalid")); n != 0 {
				t.Errorf("invalid dead letters = %v, want 0", n)
			}
		})
	}
}

// storedRecord reads the record column of a stored transaction and
// expands it to the record value it holds.
func storedRecord(t *testing.T, s Store, id string) string {
	t.Helper()
	var rec []byte
	var err error
	switch st := s.(type) {
	case *sqliteStore:
		err = st.r.QueryRow(`SELECT record FROM scored_transactions WHERE transaction_id = ?`, id).Scan(&rec)
	case *pgStore:
		err = st.pool.QueryRow(context.Background(), `SELECT record FROM scored_transactions WHERE transaction_id = $1`, id).Scan(&rec)
	default:
		t.Fatalf("unknown store %T", s)
	}
	if err != nil {
		t.Fatalf("read record %s: %v", id, err)
	}
	value, err := expandRecord(rec)
	if err != nil {
		t.Fatalf("expand record %s: %v", id, err)
	}
	return string(value)
}

// flakyStore fails the first SaveBatch calls, as a database outage would.
type flakyStore struct {
	Store
	failures atomic.Int32
}

func (f *flakyStore) SaveBatch(ctx context.Context, topic string, rows []Record, offsets map[int32]int64) (int, error) {
	if f.failures.Add(-1) >= 0 {
		return 0, errors.New("injected outage")
	}
	return f.Store.SaveBatch(ctx, topic, rows, offsets)
}

func TestSinkRewindsAfterFailedSave(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	p := newProducer(t, brokers)
	p.txn(true, batchOf("x", 200)...)
	svc := start(t, cfg, func(s *Service) {
		f := &flakyStore{Store: s.store}
		f.failures.Store(3)
		s.sink.store = f
		s.sink.backoff = func(int) time.Duration { return 10 * time.Millisecond }
	})
	waitCount(t, svc.Store(), 200)
	if n := testutil.ToFloat64(svc.sink.m.saveErrors); n != 3 {
		t.Fatalf("save errors = %v, want 3", n)
	}
	// Rewinding re-reads exactly the failed batches, which were not stored.
	if n := testutil.ToFloat64(svc.sink.m.duplicates); n != 0 {
		t.Fatalf("duplicates = %v, want 0", n)
	}
	if n := testutil.ToFloat64(svc.sink.m.rowsStored); n != 200 {
		t.Fatalf("rows stored = %v, want 200", n)
	}
}

func TestHTTP(t *testing.T) {
	brokers := newCluster(t)
	svc := start(t, testConfig(brokers, sqliteURL(t)), nil)
	base := "http://" + svc.Addr()
	p := newProducer(t, brokers)

	t.Run("NotFoundIsProblem", func(t *testing.T) {
		resp, err := http.Get(base + "/api/v1/transactions/missing-1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var pr problem
		if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" || pr.Status != 404 || pr.Title != "Not Found" {
			t.Fatalf("got %d %s %+v", resp.StatusCode, resp.Header.Get("Content-Type"), pr)
		}
	})
	t.Run("BadIDIsProblem", func(t *testing.T) {
		resp, err := http.Get(base + "/api/v1/transactions/bad%20id")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
	t.Run("StreamAndGet", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/stream", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type = %q", ct)
		}
		r := bufio.NewReader(resp.Body)
		// Wait for the hub registration (the first comment) before producing.
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		rec := scoredRecord("live-1", 2)
		p.txn(true, rec)

		ev := readEvent(t, r)
		if ev["event"] != "scored" || ev["id"] != "0,0,1" {
			t.Fatalf("event = %v", ev)
		}
		var got scoredView
		if err := json.Unmarshal([]byte(ev["data"]), &got); err != nil {
			t.Fatal(err)
		}
		if got.Transaction.TransactionID != "live-1" || got.ScoredAt == nil {
			t.Fatalf("data = %s", ev["data"])
		}

		// The same record becomes readable from the database.
		waitCount(t, svc.Store(), 1)
		resp2, err := http.Get(base + "/api/v1/transactions/live-1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp2.Body.Close()
		body, _ := io.ReadAll(resp2.Body)
		if resp2.StatusCode != 200 || !strings.Contains(string(body), `"transaction_id":"live-1"`) || !strings.Contains(string(body), `"scored_at"`) {
			t.Fatalf("GET = %d %s", resp2.StatusCode, body)
		}
	})
	t.Run("Ops", func(t *testing.T) {
		for path, want := range map[string]string{
			"/healthz": `"ok"`,
			"/readyz":  `"ready"`,
			"/metrics": "fraudstream_alerts_sink_rows_stored_total",
			"/":        "<html",
		} {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
				t.Errorf("%s = %d, body lacks %q", path, resp.StatusCode, want)
			}
			if path == "/metrics" {
				for _, kp := range []string{"fraudstream_alerts_sink_kafka_", "fraudstream_alerts_live_kafka_"} {
					if !strings.Contains(string(body), kp) {
						t.Errorf("/metrics lacks kprom series %s*", kp)
					}
				}
			}
		}
	})
}

// readEvent reads one SSE event, skipping comments.
func readEvent(t *testing.T, r *bufio.Reader) map[string]string {
	t.Helper()
	ev := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v (so far %v)", err, ev)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && ev["data"] != "":
			return ev
		case line == "" && len(ev) > 0:
			ev = map[string]string{} // an id alone: the resume point
		case line == "", strings.HasPrefix(line, ":"):
		default:
			k, v, _ := strings.Cut(line, ": ")
			ev[k] = v
		}
	}
}

func TestSinkReplicasShareTheWorkAcrossRebalances(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			brokers := newCluster(t)
			cfg := testConfig(brokers, b.url(t))
			p := newProducer(t, brokers)
			one := start(t, cfg, nil)
			p.txn(true, batchOf("r1", 150)...)
			two := start(t, cfg, nil) // joins: partitions move between members
			for i := range 5 {
				p.txn(true, batchOf(fmt.Sprintf("r2-%d", i), 30)...)
				time.Sleep(20 * time.Millisecond)
			}
			one.stop() // leaves: its partitions move to two
			p.txn(true, batchOf("r3", 150)...)
			waitCount(t, two.Store(), 450)
			dups := testutil.ToFloat64(one.sink.m.duplicates) + testutil.ToFloat64(two.sink.m.duplicates)
			if dups != 0 {
				t.Errorf("%v records were read twice across rebalances", dups)
			}
		})
	}
}

// offsetsOutage fails the first Offsets calls, as a database outage during
// a rebalance would.
type offsetsOutage struct {
	Store
	failures atomic.Int32
}

func (f *offsetsOutage) Offsets(ctx context.Context, topic string) (map[int32]int64, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, errors.New("injected outage")
	}
	return f.Store.Offsets(ctx, topic)
}

// A failed positioning makes franz-go hand the poll an error and rejoin the
// group. The sink then holds no records, and must let that rebalance run
// (AllowRebalance) before polling again, or BlockRebalanceOnPoll stalls it
// for good. Member a's positioning fails when member b leaves and hands its
// partitions back.
func TestSinkRejoinsAfterFailedPositioning(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	cfg.SessionTimeout = 6 * time.Second // the broker's group.min.session.timeout.ms
	cfg.RebalanceTimeout = 3 * time.Second
	p := newProducer(t, brokers)
	p.txn(true, batchOf("r", 90)...)
	f := &offsetsOutage{}
	a := start(t, cfg, func(s *Service) {
		f.Store = s.store
		s.sink.store = f
	})
	waitCount(t, a.Store(), 90)
	b := start(t, cfg, nil)
	p.txn(true, batchOf("s", 30)...)
	waitCount(t, a.Store(), 120)
	f.failures.Store(2)
	b.stop()
	p.txn(true, batchOf("u", 30)...)
	waitCount(t, a.Store(), 150)
	if n := f.failures.Load(); n >= 0 {
		t.Fatalf("the injected outage was not hit (%d failures left)", n+1)
	}
}
