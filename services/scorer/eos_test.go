package scorer_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer"
)

// stream is a test input: transactions slightly out of order, some ids
// delivered twice far apart (so the second copy lands in a later batch,
// often after a restart or rebalance), and some poison records.
type stream struct {
	records []*kgo.Record
	ids     map[string]bool // distinct valid transaction ids
	poison  int
}

func newStream(t *testing.T, n int) *stream {
	rng := rand.New(rand.NewPCG(42, uint64(n)))
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	s := &stream{ids: map[string]bool{}}
	var valid []*kgo.Record
	for i := range n {
		switch {
		case i%997 == 500:
			s.records = append(s.records, &kgo.Record{Topic: event.TopicRaw, Key: []byte("card-poison"),
				Value: fmt.Appendf(nil, `{"transaction_id": "poison-%d", `, i)})
			s.poison++
			continue
		case i > 2000 && i%50 == 0:
			old := valid[len(valid)-1000-rng.IntN(1000)]
			s.records = append(s.records, &kgo.Record{Topic: event.TopicRaw, Key: old.Key, Value: old.Value})
			continue
		}
		et := base.Add(time.Duration(i)*100*time.Millisecond - time.Duration(rng.IntN(3000))*time.Millisecond)
		x := tx(fmt.Sprintf("s-%05d", i), fmt.Sprintf("card-%d", rng.IntN(150)), et)
		x.AmountMinor = 100 + rng.Int64N(10000)
		s.records = append(s.records, rec(t, x))
		valid = append(valid, s.records[len(s.records)-1])
		s.ids[x.TransactionID] = true
	}
	return s
}

// produceSlowly writes the stream in chunks with pauses, so scorers are
// still working when the test restarts or adds one.
func (s *stream) produceSlowly(t *testing.T, cl *kgo.Client) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < len(s.records); i += 250 {
			if err := cl.ProduceSync(context.Background(), s.records[i:min(i+250, len(s.records))]...).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			time.Sleep(15 * time.Millisecond)
		}
	}()
	return &wg
}

// waitScored blocks until at least n scored records are committed.
func waitScored(t *testing.T, brokers []string, n int) {
	t.Helper()
	watch := newClient(t, brokers, kgo.ConsumeTopics(event.TopicScored), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer watch.Close()
	for seen := 0; seen < n; {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		fs := watch.PollFetches(ctx)
		cancel()
		if fs.Empty() {
			t.Fatalf("only %d scored records committed, waiting for %d", seen, n)
		}
		seen += fs.NumRecords()
	}
}

// checkStream checks the committed output against the input: every
// transaction exactly once (checkExactlyOnce, with a duplicate's first
// copy as the one scored), every value byte-identical to a crash-free
// replay of each partition through one task, and every poison record
// dead-lettered exactly once.
func checkStream(t *testing.T, brokers []string, cfg scorer.Config, s *stream) {
	t.Helper()
	in := readTopic(t, brokers, event.TopicRaw, kgo.ReadCommitted())
	first := map[string]*kgo.Record{}
	byPartition := map[int32][]*kgo.Record{}
	for _, r := range in {
		byPartition[r.Partition] = append(byPartition[r.Partition], r)
		if x, err := event.DecodeTransaction(r.Value); err == nil {
			if _, ok := first[x.TransactionID]; !ok {
				first[x.TransactionID] = r
			}
		}
	}
	if len(first) != len(s.ids) {
		t.Fatalf("input holds %d distinct ids, the stream %d", len(first), len(s.ids))
	}
	scored := readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted())
	checkExactlyOnce(t, scored, first)

	want := map[string][]byte{}
	for _, rs := range byPartition {
		slices.SortFunc(rs, func(a, b *kgo.Record) int { return int(a.Offset - b.Offset) })
		vals, err := scorer.Replay(cfg, rs)
		if err != nil {
			t.Fatal(err)
		}
		for id, v := range vals {
			want[id] = v
		}
	}
	differ := 0
	for _, r := range scored {
		x, _ := event.DecodeScored(r.Value)
		if w := want[x.Transaction.TransactionID]; !bytes.Equal(r.Value, w) {
			if differ++; differ <= 3 {
				t.Errorf("%s differs from the crash-free replay:\n got %s\nwant %s", x.Transaction.TransactionID, r.Value, w)
			}
		}
	}
	if differ > 0 {
		t.Errorf("%d of %d scored records differ from the crash-free replay", differ, len(scored))
	}
	stats := readTopic(t, brokers, event.TopicStats, kgo.ReadCommitted())
	finals := scorer.CheckStats(t, stats, scored)
	t.Logf("%d committed fraud-stats records, %d final windows match the scored records", len(stats), finals)

	dlq := readTopic(t, brokers, event.TopicDLQ, kgo.ReadCommitted())
	poison := map[string]int{}
	for _, r := range dlq {
		poison[string(r.Value)]++
	}
	if len(dlq) != s.poison || len(poison) != s.poison {
		t.Errorf("DLQ holds %d records (%d distinct), want each of %d poison records once", len(dlq), len(poison), s.poison)
	}
	t.Logf("%d input records, %d scored, %d dead-lettered, all identical to the replay", len(in), len(scored), len(dlq))
}

var restoreRecordsRE = regexp.MustCompile(`(?m)^fraudstream_scorer_restore_records_total (\S+)$`)

// restoredRecords reads a running scorer's restore_records_total.
func restoredRecords(t *testing.T, svc *scorer.Service) float64 {
	t.Helper()
	_, body := get(t, "http://"+svc.Addr()+"/metrics")
	m := restoreRecordsRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no restore_records_total in /metrics")
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestScorerRestoreAfterCrash stops a scorer mid-stream with its
// transaction open (aborted) and starts its successor, which must restore
// the non-empty changelog: card histories (its features continue exactly),
// the watermark and the de-duplication set (copies of ids the first one
// scored are dropped).
func TestScorerRestoreAfterCrash(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	s := newStream(t, 12000)
	cfg := testConfig(brokers, "scorer-crash")
	cfg.MaxBatchRecords = 300

	wg := s.produceSlowly(t, prod)
	first := start(t, cfg)
	waitScored(t, brokers, 4000)
	first.stop(t)

	second := start(t, cfg)
	wg.Wait()
	waitCaughtUp(t, kadm.NewClient(prod), cfg.GroupID)
	if n := restoredRecords(t, second.svc); n == 0 {
		t.Errorf("the second scorer restored no changelog records")
	} else {
		t.Logf("second scorer restored %v changelog records", n)
	}
	second.stop(t)
	checkStream(t, brokers, cfg, s)
}

// TestScorerRebalanceMovesPartitions runs two instances in one group: the
// second joins mid-stream and takes partitions over from the first, then
// the first leaves and the second takes the rest. Each move restores the
// partition's state from the changelog on its new owner.
func TestScorerRebalanceMovesPartitions(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	s := newStream(t, 16000)
	cfgA := testConfig(brokers, "scorer-rebalance-a")
	cfgA.MaxBatchRecords = 300
	cfgB := cfgA
	cfgB.TransactionalID = "scorer-rebalance-b"
	cfgB.Addr = "127.0.0.1:0"

	wg := s.produceSlowly(t, prod)
	a := start(t, cfgA)
	waitScored(t, brokers, 3000)
	b := start(t, cfgB)
	waitScored(t, brokers, 8000)
	if n := restoredRecords(t, b.svc); n == 0 {
		t.Errorf("the joining instance restored no changelog records")
	}
	a.stop(t)
	wg.Wait()
	waitCaughtUp(t, kadm.NewClient(prod), cfgA.GroupID)
	t.Logf("instance b restored %v changelog records", restoredRecords(t, b.svc))
	b.stop(t)
	checkStream(t, brokers, cfgA, s)
}
