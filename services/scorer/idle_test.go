package scorer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestScorerFiresIdlePartitionsWindows: one card pays every 3 s for 87 s
// of event time, then its partition goes quiet. The watermark (82 s) has
// fired the first minute's window only; after the idle timeout the second
// window, with its 10 records, is fired too (not final), in a committed
// transaction.
func TestScorerFiresIdlePartitionsWindows(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC) // minute-aligned
	var rs []*kgo.Record
	for i := range 30 {
		rs = append(rs, rec(t, tx(fmt.Sprintf("idle-%02d", i), "card-idle", base.Add(time.Duration(i)*3*time.Second))))
	}
	produce(t, prod, rs)
	p := rs[0].Partition

	cfg := testConfig(brokers, "scorer-idle")
	cfg.StatsIdleTimeout = 300 * time.Millisecond
	r := start(t, cfg)
	waitCaughtUp(t, kadm.NewClient(prod), cfg.GroupID)

	last := base.Add(time.Minute)
	var got []event.Stats
	eventually(t, "the idle partition's last window fired", func() error {
		got = got[:0]
		for _, sr := range readTopic(t, brokers, event.TopicStats, kgo.ReadCommitted()) {
			st, err := event.DecodeStats(sr.Value)
			if err != nil {
				t.Fatal(err)
			}
			if st.Partition == p && st.WindowStart.Equal(last) {
				got = append(got, st)
			}
		}
		if len(got) == 0 {
			return fmt.Errorf("no stats record of window %s on partition %d", last, p)
		}
		return nil
	})
	r.stop(t)
	if len(got) != 1 {
		t.Fatalf("window %s fired %d times while idle, want once: %+v", last, len(got), got)
	}
	st := got[0]
	if st.Count != 10 || st.Final || st.Revision != 1 || !st.Watermark.Equal(base.Add(82*time.Second)) {
		t.Errorf("idle firing = %+v, want 10 records, revision 1, not final, at watermark +82s", st)
	}
}
