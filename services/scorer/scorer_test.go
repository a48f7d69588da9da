package scorer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer"
)

const partitions = 4

func newCluster(t *testing.T) []string {
	t.Helper()
	brokers, stop := pipelineCluster(t)
	t.Cleanup(stop)
	return brokers
}

// pipelineCluster starts an in-process kfake broker with the pipeline's
// topics laid out as in production (kafkaopt.EnsureTopics): the scorer
// checks that layout before it starts a session.
func pipelineCluster(tb testing.TB) (brokers []string, stop func()) {
	tb.Helper()
	brokers, stop = emptyCluster(tb)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		stop()
		tb.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := kafkaopt.EnsureTopics(ctx, cl, partitions, 1); err != nil {
		stop()
		tb.Fatal(err)
	}
	return brokers, stop
}

// emptyCluster starts an in-process kfake broker without topics.
func emptyCluster(tb testing.TB) (brokers []string, stop func()) {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		tb.Fatal(err)
	}
	return c.ListenAddrs(), c.Close
}

func newClient(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func testConfig(brokers []string, txnID string) scorer.Config {
	return scorer.Config{
		Addr:            "127.0.0.1:0",
		Kafka:           kafkaopt.Config{Brokers: brokers},
		TransactionalID: txnID,
		GroupID:         "group-" + txnID,
	}
}

// running is a service started by start; stop cancels it and checks that
// Run returned nil (a clean shutdown).
type running struct {
	svc    *scorer.Service
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg scorer.Config) *running {
	t.Helper()
	svc, err := scorer.New(cfg, scorer.PredictableDeps(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{svc: svc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- svc.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("Run did not return 20s after cancel")
	}
}

func tx(id, card string, et time.Time) event.Transaction {
	return event.Transaction{
		TransactionID: id, CardID: card, AmountMinor: 990, Currency: "USD",
		MerchantID: "merchant-7", MerchantCategory: "5999", MerchantCountry: "US",
		Channel: event.ChannelEcommerce, EventTime: et,
	}
}

func rec(t *testing.T, x event.Transaction) *kgo.Record {
	t.Helper()
	v, err := x.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: event.TopicRaw, Key: []byte(x.CardID), Value: v}
}

// produce writes rs to raw-transactions (key-hash partitioned, as ingest
// does) and returns them with their partitions and offsets filled in.
func produce(t *testing.T, cl *kgo.Client, rs []*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// waitCaughtUp waits until the group has committed the end of every
// raw-transactions partition: everything produced so far is processed.
func waitCaughtUp(t *testing.T, adm *kadm.Client, group string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ends, err := adm.ListEndOffsets(ctx, event.TopicRaw)
		if err != nil {
			t.Fatal(err)
		}
		committed, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			caughtUp := true
			ends.Each(func(o kadm.ListedOffset) {
				c, ok := committed.Lookup(o.Topic, o.Partition)
				if o.Offset > 0 && (!ok || c.At < o.Offset) {
					caughtUp = false
				}
			})
			if caughtUp {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s did not catch up: end offsets %v, committed %v (err %v)", group, ends.Offsets(), committed.Offsets(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readTopic reads every record of topic visible at the given isolation
// level, stopping after a second without new records.
func readTopic(t *testing.T, brokers []string, topic string, level kgo.IsolationLevel) []*kgo.Record {
	t.Helper()
	cl := newClient(t, brokers, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(level),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	// The first fetch waits for metadata and the group-less assignment,
	// which can take seconds on a loaded machine (or under -race), so it
	// gets longer before an empty poll counts as the end of the topic.
	wait := 10 * time.Second
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				t.Fatalf("read %s: %v", topic, fe.Err)
			}
		}
		if fs.Empty() {
			return out
		}
		out = append(out, fs.Records()...)
		wait = 2 * time.Second
	}
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkExactlyOnce decodes the committed scored records and checks that
// every id in want appears exactly once, on its input partition, at its
// input offset, in input order per partition. It returns them by id.
func checkExactlyOnce(t *testing.T, scored []*kgo.Record, want map[string]*kgo.Record) map[string]event.Scored {
	t.Helper()
	byID := make(map[string]event.Scored, len(scored))
	lastOffset := map[int32]int64{}
	for _, r := range scored {
		s, err := event.DecodeScored(r.Value)
		if err != nil {
			t.Fatalf("scored record at %d/%d: %v", r.Partition, r.Offset, err)
		}
		id := s.Transaction.TransactionID
		if _, dup := byID[id]; dup {
			t.Errorf("transaction %s scored twice", id)
		}
		byID[id] = s
		in, ok := want[id]
		if !ok {
			t.Errorf("scored unknown transaction %s", id)
			continue
		}
		if r.Partition != in.Partition || s.Partition != in.Partition || s.Offset != in.Offset {
			t.Errorf("%s: scored on partition %d as %d/%d, input was %d/%d", id, r.Partition, s.Partition, s.Offset, in.Partition, in.Offset)
		}
		if last, ok := lastOffset[r.Partition]; ok && s.Offset <= last {
			t.Errorf("partition %d: input offset %d scored after %d", r.Partition, s.Offset, last)
		}
		lastOffset[r.Partition] = s.Offset
		if string(r.Key) != s.Transaction.CardID {
			t.Errorf("%s: key %q, want card %q", id, r.Key, s.Transaction.CardID)
		}
		at, ok := header(r, event.HeaderScoredAt)
		if _, err := time.Parse(time.RFC3339Nano, at); !ok || err != nil {
			t.Errorf("%s: scored-at header %q", id, at)
		}
	}
	for id := range want {
		if _, ok := byID[id]; !ok {
			t.Errorf("transaction %s never scored", id)
		}
	}
	return byID
}

func TestScorerEndToEnd(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	adm := kadm.NewClient(prod)
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)

	// 30 quiet cards, two minutes between payments: never VELOCITY_1M.
	var first []*kgo.Record
	for i := range 10 {
		for c := range 30 {
			first = append(first, rec(t, tx(fmt.Sprintf("q-%d-%d", c, i), fmt.Sprintf("card-%d", c), base.Add(time.Duration(i)*2*time.Minute))))
		}
	}
	// One card bursting 8 payments in 35 s after the quiet ones (earlier
	// event times would be too late behind the partition's watermark),
	// slightly out of order: the
	// 6th, 7th and 8th in processing order each have ≥ 5 earlier ones
	// within the minute before them.
	for i, sec := range []int{0, 5, 10, 15, 20, 25, 35, 30} {
		first = append(first, rec(t, tx(fmt.Sprintf("burst-%d", i), "card-burst", base.Add(20*time.Minute+time.Duration(sec)*time.Second))))
	}
	poison := &kgo.Record{Topic: event.TopicRaw, Key: []byte("card-poison"), Value: []byte(`{"transaction_id": "p-1", "amount_minor": `)}
	invalid := rec(t, tx("inv-1", "card-3", base))
	invalid.Value = []byte(strings.Replace(string(invalid.Value), `"amount_minor":990`, `"amount_minor":0`, 1))
	first = append(first, poison, invalid)
	produce(t, prod, first)

	want := map[string]*kgo.Record{}
	for _, r := range first {
		if r != poison && r != invalid {
			x, _ := event.DecodeTransaction(r.Value)
			want[x.TransactionID] = r
		}
	}

	cfg := testConfig(brokers, "scorer-e2e")
	svc := start(t, cfg)

	eventually(t, "/readyz", func() error {
		if code, body := get(t, "http://"+svc.svc.Addr()+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if code, _ := get(t, "http://"+svc.svc.Addr()+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}

	// Redeliveries of 20 already-produced transactions, while running.
	var dups []*kgo.Record
	for i := range 20 {
		r := first[i*13]
		dups = append(dups, &kgo.Record{Topic: event.TopicRaw, Key: r.Key, Value: r.Value})
	}
	// And another transaction reusing the id of one, on the same card.
	reused := &kgo.Record{Topic: event.TopicRaw, Key: first[0].Key,
		Value: []byte(strings.Replace(string(first[0].Value), `"amount_minor":990`, `"amount_minor":991`, 1))}
	if string(reused.Value) == string(first[0].Value) {
		t.Fatalf("reused record not changed: %s", reused.Value)
	}
	dups = append(dups, reused)
	waitCaughtUp(t, adm, cfg.GroupID)
	produce(t, prod, dups)
	waitCaughtUp(t, adm, cfg.GroupID)

	eventually(t, "metrics", func() error {
		_, body := get(t, "http://"+svc.svc.Addr()+"/metrics")
		for _, line := range []string{
			`fraudstream_scorer_records_scored_total{decision="approve"} 305`,
			`fraudstream_scorer_records_scored_total{decision="decline"} 3`,
			`fraudstream_scorer_dlq_records_total 3`,
			`fraudstream_scorer_transaction_id_reused_total 1`,
			`fraudstream_scorer_too_late_records_total 0`,
			`fraudstream_scorer_duplicates_dropped_total 20`,
			`fraudstream_scorer_transactions_total{outcome="committed"}`,
			`fraudstream_scorer_batch_records_count`,
			`fraudstream_scorer_kafka_`,
		} {
			if !strings.Contains(body, line) {
				var ours []string
				for _, l := range strings.Split(body, "\n") {
					if strings.HasPrefix(l, "fraudstream_scorer_") && !strings.HasPrefix(l, "fraudstream_scorer_kafka") {
						ours = append(ours, l)
					}
				}
				return fmt.Errorf("no %q in /metrics:\n%s", line, strings.Join(ours, "\n"))
			}
		}
		return nil
	})
	svc.stop(t)

	scored := readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted())
	byID := checkExactlyOnce(t, scored, want)
	var velocity []string
	for id, s := range byID {
		for _, r := range s.Reasons {
			if r.Code == scorer.ReasonVelocity1m {
				velocity = append(velocity, id)
				if s.Decision != event.DecisionDecline {
					t.Errorf("%s: VELOCITY_1M but decision %s", id, s.Decision)
				}
			}
		}
	}
	if len(velocity) != 3 || byID["burst-5"].Features.Count1m != 5 || byID["burst-6"].Features.Count1m != 6 || byID["burst-7"].Features.Count1m != 6 {
		t.Errorf("VELOCITY_1M on %v; burst counts 5,6,7 = %d,%d,%d; want it on burst-5..7 with 5,6,6", velocity,
			byID["burst-5"].Features.Count1m, byID["burst-6"].Features.Count1m, byID["burst-7"].Features.Count1m)
	}

	dlq := readTopic(t, brokers, event.TopicDLQ, kgo.ReadCommitted())
	if len(dlq) != 3 {
		t.Fatalf("DLQ holds %d records, want 3", len(dlq))
	}
	byKey := map[string]*kgo.Record{}
	for _, d := range dlq {
		byKey[string(d.Key)] = d
	}
	if e, _ := header(byKey[string(reused.Key)], event.HeaderError); !strings.HasPrefix(e, "transaction_id reused with different content") {
		t.Errorf("reused transaction_id dead-lettered with %q", e)
	}
	for i, in := range []*kgo.Record{poison, invalid, reused} {
		d := byKey[string(in.Key)]
		if d == nil {
			t.Fatalf("DLQ record %d (%q) missing", i, in.Key)
		}
		if string(d.Key) != string(in.Key) || string(d.Value) != string(in.Value) || d.Partition != in.Partition {
			t.Errorf("DLQ record %d: %d/%q/%q, want %d/%q/%q", i, d.Partition, d.Key, d.Value, in.Partition, in.Key, in.Value)
		}
		if e, ok := header(d, event.HeaderError); !ok || e == "" {
			t.Errorf("DLQ record %d has no %s header", i, event.HeaderError)
		} else {
			t.Logf("DLQ %s: %s", d.Key, e)
		}
	}
}

// TestScorerRestartExactlyOnce stops a scorer mid-stream (its open
// transaction aborted) and lets a second one with the same group and
// transactional ID finish. Every transaction must appear exactly once in
// the committed output. TestScorerRestoreAfterCrash adds duplicates
// straddling the restart and checks the values against a replay.
func TestScorerRestartExactlyOnce(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	adm := kadm.NewClient(prod)
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)

	const total = 20000
	var all []*kgo.Record
	for i := range total {
		all = append(all, rec(t, tx(fmt.Sprintf("r-%05d", i), fmt.Sprintf("card-%d", i%200), base.Add(time.Duration(i)*100*time.Millisecond))))
	}

	// Produce in the background, in chunks, so the stream is still
	// flowing when the first scorer is stopped.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i += 200 {
			if err := prod.ProduceSync(context.Background(), all[i:i+200]...).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	cfg := testConfig(brokers, "scorer-restart")
	cfg.MaxBatchRecords = 300
	first := start(t, cfg)

	// Stop the first scorer once a fair part of the output is committed.
	watch := newClient(t, brokers, kgo.ConsumeTopics(event.TopicScored), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := 0
	for seen < total/4 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		fs := watch.PollFetches(ctx)
		cancel()
		if fs.Empty() {
			t.Fatalf("no scored output after %d records", seen)
		}
		seen += fs.NumRecords()
	}
	first.stop(t)
	t.Logf("first scorer stopped after >= %d committed records", seen)

	second := start(t, cfg)
	wg.Wait()
	waitCaughtUp(t, adm, cfg.GroupID)
	second.stop(t)

	want := make(map[string]*kgo.Record, total)
	for _, r := range all {
		x, _ := event.DecodeTransaction(r.Value)
		want[x.TransactionID] = r
	}
	committed := readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted())
	checkExactlyOnce(t, committed, want)
	uncommitted := readTopic(t, brokers, event.TopicScored, kgo.ReadUncommitted())
	t.Logf("scored-transactions: %d committed records, %d including aborted ones", len(committed), len(uncommitted))
}

// TestScorerAbortRewinds aborts the first batches after their records
// reached the broker. The aborted output must stay invisible to
// read_committed readers, the input must be re-consumed, and the task
// state must rewind with it: kept state would drop the re-consumed
// records as duplicates of themselves and inflate count_1m.
func TestScorerAbortRewinds(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	adm := kadm.NewClient(prod)
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)

	var in []*kgo.Record
	for i := range 2000 {
		in = append(in, rec(t, tx(fmt.Sprintf("a-%04d", i), fmt.Sprintf("card-%d", i%100), base.Add(time.Duration(i)*time.Second))))
	}
	for i := range 7 { // count_1m 0..6: VELOCITY_1M on the last two
		in = append(in, rec(t, tx(fmt.Sprintf("burst-%d", i), "card-burst", base.Add(time.Hour+time.Duration(i)*time.Second))))
	}
	produce(t, prod, in)

	cfg := testConfig(brokers, "scorer-abort")
	cfg.MaxBatchRecords = 100
	var mu sync.Mutex
	aborts := 0
	svc, err := scorer.New(cfg, scorer.PredictableDeps(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	scorer.SetAbortHook(svc, func() bool {
		mu.Lock()
		defer mu.Unlock()
		aborts++
		return aborts <= 5
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	waitCaughtUp(t, adm, cfg.GroupID)
	_, metrics := get(t, "http://"+svc.Addr()+"/metrics")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(metrics, `fraudstream_scorer_transactions_total{outcome="aborted"} 5`) {
		t.Errorf("metrics do not count 5 aborted transactions")
	}

	want := map[string]*kgo.Record{}
	for _, r := range in {
		x, _ := event.DecodeTransaction(r.Value)
		want[x.TransactionID] = r
	}
	committed := readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted())
	byID := checkExactlyOnce(t, committed, want)
	uncommitted := readTopic(t, brokers, event.TopicScored, kgo.ReadUncommitted())
	if len(uncommitted) <= len(committed) {
		t.Errorf("read_uncommitted sees %d records, read_committed %d: the aborts never reached the broker", len(uncommitted), len(committed))
	}
	t.Logf("%d committed, %d including aborted", len(committed), len(uncommitted))

	// Stats are in the same transactions: the aborted batches' firings are
	// invisible, the committed ones have each revision once and match.
	stats := readTopic(t, brokers, event.TopicStats, kgo.ReadCommitted())
	allStats := readTopic(t, brokers, event.TopicStats, kgo.ReadUncommitted())
	if len(allStats) <= len(stats) {
		t.Errorf("read_uncommitted sees %d stats records, read_committed %d: the aborted batches fired no windows", len(allStats), len(stats))
	}
	finals := scorer.CheckStats(t, stats, committed)
	t.Logf("fraud-stats: %d committed records (%d final windows match), %d including aborted", len(stats), finals, len(allStats))
	for i := range 7 {
		s := byID[fmt.Sprintf("burst-%d", i)]
		if s.Features.Count1m != int64(i) || (len(s.Reasons) > 0) != (i >= 5) {
			t.Errorf("burst-%d: count_1m %d reasons %+v, want %d", i, s.Features.Count1m, s.Reasons, i)
		}
	}
	for id, s := range byID {
		if strings.HasPrefix(id, "a-") && s.Features.Count1m != 0 {
			t.Errorf("%s: count_1m %d, want 0 (a card pays every 100 s)", id, s.Features.Count1m)
		}
	}
}

// BenchmarkScorerPipeline measures records per second through one scorer
// against in-process kfake: the input is produced first, then the clock
// runs from Run until the group has committed the end of the input.
// Run with -benchtime=1x; kfake, the producer and the scorer share the CPUs.
func BenchmarkScorerPipeline(b *testing.B) {
	const n = 200_000
	for range b.N {
		b.StopTimer()
		brokers, stopCluster := pipelineCluster(b)
		prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			b.Fatal(err)
		}
		base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
		rs := make([]*kgo.Record, 0, 10_000)
		for i := range n {
			x := tx(fmt.Sprintf("p-%07d", i), fmt.Sprintf("card-%d", i%5000), base.Add(time.Duration(i)*time.Millisecond))
			v, _ := x.Encode()
			rs = append(rs, &kgo.Record{Topic: event.TopicRaw, Key: []byte(x.CardID), Value: v})
			if len(rs) == cap(rs) {
				if err := prod.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
					b.Fatal(err)
				}
				rs = rs[:0]
			}
		}
		cfg := testConfig(brokers, "scorer-bench")
		svc, err := scorer.New(cfg, scorer.PredictableDeps(nil))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		begin := time.Now()
		go func() { done <- svc.Run(ctx) }()
		adm := kadm.NewClient(prod)
		for {
			ends, err1 := adm.ListEndOffsets(context.Background(), event.TopicRaw)
			committed, err2 := adm.FetchOffsets(context.Background(), cfg.GroupID)
			if err1 == nil && err2 == nil {
				var left int64
				ends.Each(func(o kadm.ListedOffset) {
					c, _ := committed.Lookup(o.Topic, o.Partition)
					left += o.Offset - max(c.At, 0)
				})
				if left == 0 {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(begin)
		b.StopTimer()
		b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		prod.Close()
		stopCluster()
	}
}
