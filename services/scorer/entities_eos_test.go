package scorer_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer"
)

// entityConfig is a scorer with the entity stage on, with event-time
// settings short enough that a test stream of a minute of event time
// exercises the join: devices are shared by several cards, so they
// become notable in the table.
func entityConfig(brokers []string, txnID string) scorer.Config {
	cfg := testConfig(brokers, txnID)
	cfg.MaxOutOfOrder = 200 * time.Millisecond
	cfg.AllowedLateness = 300 * time.Millisecond
	cfg.MaxBatchRecords = 100
	cfg.Entities = scorer.EntityConfig{Enabled: true, Lag: 4 * time.Second, Wait: 3 * time.Second}
	return cfg
}

// entityStream is n transactions 10 ms of event time apart on 120 cards,
// each card paying online from one of 30 devices (so about four cards per
// device) at one of 40 merchants.
func entityStream(t *testing.T, n int) *stream {
	rng := rand.New(rand.NewPCG(22, uint64(n)))
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	s := &stream{ids: map[string]bool{}}
	for i := range n {
		card := rng.IntN(120)
		x := tx(fmt.Sprintf("e-%05d", i), fmt.Sprintf("card-%d", card), base.Add(time.Duration(i)*10*time.Millisecond))
		x.AmountMinor = 100 + rng.Int64N(10000)
		x.MerchantID = fmt.Sprintf("merchant-%d", rng.IntN(40))
		x.DeviceID = fmt.Sprintf("device-%d", card%30)
		s.records = append(s.records, rec(t, x))
		s.ids[x.TransactionID] = true
	}
	return s
}

// TestEntityStageExactlyOnce runs the scorer with the entity stage (the
// aggregator session and the table follower), stops it mid-stream and
// starts a successor, then checks: every transaction scored exactly once;
// few scored stale (at a cold start the table has no marker yet, so the
// first batch times out: docs/design/entities.md); the device feature
// came from the table; and every value scored with a complete table
// byte-identical to a crash-free replay of its partition joined with the
// committed entity-features topic.
func TestEntityStageExactlyOnce(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	s := entityStream(t, 2500)
	cfg := entityConfig(brokers, "scorer-entities")

	// Event time runs at the pace of the wall clock, as in production: the
	// join lag (4 s) must cover how far partitions drift apart in event
	// time while they are processed.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < len(s.records); i += 50 {
			if err := prod.ProduceSync(context.Background(), s.records[i:min(i+50, len(s.records))]...).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	first := start(t, cfg)
	waitScored(t, brokers, 1000)
	first.stop(t)
	second := start(t, cfg)
	wg.Wait()
	waitCaughtUp(t, kadm.NewClient(prod), cfg.GroupID)
	second.stop(t)

	in := readTopic(t, brokers, event.TopicRaw, kgo.ReadCommitted())
	first1 := map[string]*kgo.Record{}
	byPartition := map[int32][]*kgo.Record{}
	for _, r := range in {
		byPartition[r.Partition] = append(byPartition[r.Partition], r)
		x, _ := event.DecodeTransaction(r.Value)
		first1[x.TransactionID] = r
	}
	scored := readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted())
	got := checkExactlyOnce(t, scored, first1)
	stale, shared := 0, 0
	for _, sc := range got {
		if sc.Features.EntityStale {
			stale++
		}
		if sc.Features.DeviceCards24h >= 3 {
			shared++
		}
	}
	if stale > len(got)/10 {
		t.Errorf("%d of %d records scored with entity_stale: the table did not keep up", stale, len(got))
	}
	if shared < len(got)/4 {
		t.Errorf("only %d of %d records saw their device in the table (device_cards_24h ≥ 3)", shared, len(got))
	}

	table := readTopic(t, brokers, event.TopicEntityFeatures, kgo.ReadCommitted())
	slices.SortFunc(table, func(a, b *kgo.Record) int { return int(a.Offset - b.Offset) })
	want := map[string][]byte{}
	for _, rs := range byPartition {
		slices.SortFunc(rs, func(a, b *kgo.Record) int { return int(a.Offset - b.Offset) })
		vals, err := scorer.ReplayEntities(cfg, rs, table)
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
		if x.Features.EntityStale {
			continue // degraded: scored without the table, which a replay has
		}
		if w := want[x.Transaction.TransactionID]; !bytes.Equal(r.Value, w) {
			if differ++; differ <= 3 {
				t.Errorf("%s differs from the replay:\n got %s\nwant %s", x.Transaction.TransactionID, r.Value, w)
			}
		}
	}
	if differ > 0 {
		t.Errorf("%d of %d scored records differ from the replay joined with entity-features", differ, len(scored))
	}
	t.Logf("%d scored, %d stale, %d with a notable device, %d entity-features records", len(scored), stale, shared, len(table))
}
