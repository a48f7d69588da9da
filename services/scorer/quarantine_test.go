package scorer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestScorerQuarantinesAPartitionItCannotRestore: a scorer scores every
// partition and stops; then one partition's changelog gets an entry that
// does not decode, and more input arrives everywhere. The restarted scorer
// sets that partition aside alone (metric, /readyz detail) and goes on
// scoring and committing the others; the quarantined partition's
// committed offset stays at what the first scorer processed.
func TestScorerQuarantinesAPartitionItCannotRestore(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	adm := kadm.NewClient(prod)
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	batch := func(prefix string, n int) []*kgo.Record {
		var rs []*kgo.Record
		for i := range n {
			rs = append(rs, rec(t, tx(fmt.Sprintf("%s-%03d", prefix, i), fmt.Sprintf("card-%d", i%40), base.Add(time.Duration(i)*time.Second))))
		}
		return rs
	}

	cfg := testConfig(brokers, "scorer-quarantine")
	first := batch("a", 200)
	produce(t, prod, first)
	r := start(t, cfg)
	waitCaughtUp(t, adm, cfg.GroupID)
	r.stop(t)
	before, err := adm.FetchOffsets(context.Background(), cfg.GroupID)
	if err != nil {
		t.Fatal(err)
	}
	const bad = int32(1)
	badAt, ok := before.Lookup(event.TopicRaw, bad)
	if !ok || badAt.At <= 0 {
		t.Fatalf("partition %d not committed by the first scorer: %+v", bad, badAt)
	}

	// A changelog entry of an unknown format version on partition 1.
	if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: event.TopicState, Partition: bad,
		Key: []byte("card-corrupt"), Value: []byte{0x7f, 1, 2, 3}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	second := batch("b", 200)
	produce(t, prod, second)
	onBad := 0
	for _, r := range second {
		if r.Partition == bad {
			onBad++
		}
	}
	if onBad == 0 || onBad == len(second) {
		t.Fatalf("%d of %d records on partition %d: the test needs some on it and some elsewhere", onBad, len(second), bad)
	}

	r = start(t, cfg)
	url := "http://" + r.svc.Addr()
	eventually(t, "the other partitions caught up", func() error {
		ends, err := adm.ListEndOffsets(context.Background(), event.TopicRaw)
		if err != nil {
			return err
		}
		committed, err := adm.FetchOffsets(context.Background(), cfg.GroupID)
		if err != nil {
			return err
		}
		var behind []string
		ends.Each(func(o kadm.ListedOffset) {
			if c, _ := committed.Lookup(o.Topic, o.Partition); o.Partition != bad && c.At < o.Offset {
				behind = append(behind, fmt.Sprintf("%d at %d of %d", o.Partition, c.At, o.Offset))
			}
		})
		if len(behind) > 0 {
			return fmt.Errorf("behind: %v", behind)
		}
		return nil
	})
	eventually(t, "quarantine reported", func() error {
		_, metrics := get(t, url+"/metrics")
		if !strings.Contains(metrics, "fraudstream_scorer_quarantined_partitions 1\n") {
			return fmt.Errorf("gauge not 1")
		}
		return nil
	})
	code, body := get(t, url+"/readyz")
	if code != 200 || !strings.Contains(body, "quarantined partitions: 1 (") || !strings.Contains(body, "card-corrupt") {
		t.Errorf("/readyz = %d %s, want 200 naming partition 1 and the bad key", code, body)
	}
	// Give the scorer time to do something wrong with partition 1.
	time.Sleep(2 * time.Second)
	r.stop(t)

	after, err := adm.FetchOffsets(context.Background(), cfg.GroupID)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := after.Lookup(event.TopicRaw, bad); got.At != badAt.At {
		t.Errorf("quarantined partition %d committed at %d, want it left at %d", bad, got.At, badAt.At)
	}
	want := map[string]*kgo.Record{}
	for _, r := range append(first, second...) {
		if r.Partition != bad || r.Offset < badAt.At {
			x, _ := event.DecodeTransaction(r.Value)
			want[x.TransactionID] = r
		}
	}
	got := checkExactlyOnce(t, readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted()), want)
	if len(got) != len(want) {
		t.Errorf("%d scored, want %d", len(got), len(want))
	}
}
