package scorer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestAdaptiveCommitAtLowLoad: with nothing else arriving, a record's
// scored record is committed as soon as it is processed, not when
// CommitInterval (here 3 s) runs out (docs/design/decisions.md#adaptive-commit).
func TestAdaptiveCommitAtLowLoad(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	cfg := testConfig(brokers, "scorer-adaptive")
	cfg.CommitInterval, cfg.TransactionTimeout = 3*time.Second, 20*time.Second
	svc := start(t, cfg)
	defer svc.stop(t)
	reader := newClient(t, brokers, kgo.ConsumeTopics(event.TopicScored),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond))

	// visible waits until the committed scored record of id is read.
	visible := func(id string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		for {
			fs := reader.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s not committed within %s", id, within)
			}
			found := false
			fs.EachRecord(func(r *kgo.Record) {
				s, err := event.DecodeScored(r.Value)
				found = found || err == nil && s.Transaction.TransactionID == id
			})
			if found {
				return time.Since(start)
			}
		}
	}
	base := time.Now().UTC().Add(-time.Minute)
	produce(t, prod, []*kgo.Record{rec(t, tx("warm-up", "card-a", base))})
	visible("warm-up", 60*time.Second) // the group formed, the partition restored

	var worst time.Duration
	for i := range 5 {
		id := fmt.Sprintf("lone-%d", i)
		produce(t, prod, []*kgo.Record{rec(t, tx(id, "card-a", base.Add(time.Duration(i+1)*time.Second)))})
		took := visible(id, 10*time.Second)
		worst = max(worst, took)
		time.Sleep(200 * time.Millisecond) // nothing else arrives meanwhile
	}
	// The timer alone would hold each record for the whole 3 s interval;
	// 1 s leaves room for a loaded machine.
	if worst > time.Second {
		t.Errorf("a lone record took %s to be committed, want far below the 3s commit interval", worst)
	}
	t.Logf("lone records committed and read within %s at worst", worst)
}
