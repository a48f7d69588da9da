package scorer_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer"
)

// TestScorerRefusesBadTopicLayout starts a scorer on topics it cannot
// work with: Run must end with an error naming each problem instead of
// aborting transaction after transaction.
func TestScorerRefusesBadTopicLayout(t *testing.T) {
	brokers, stop := emptyCluster(t)
	defer stop()
	adm := kadm.NewClient(newClient(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, topic := range event.Topics {
		n := int32(partitions)
		switch topic {
		case event.TopicState:
			n = 2 // and not compacted
		case event.TopicRules:
			n = 1
		}
		if _, err := adm.CreateTopic(ctx, n, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}

	svc, err := scorer.New(testConfig(brokers, "scorer-layout"), scorer.PredictableDeps(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Run(ctx)
	if ctx.Err() != nil {
		t.Fatal("Run did not return on a bad topic layout")
	}
	for _, want := range []string{
		"scorer-state has 2 partitions, raw-transactions has 4",
		"scorer-state has cleanup.policy=delete",
		"fraud-rules has cleanup.policy=delete",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run: %v, want an error saying %q", err, want)
		}
	}
}

// TestScorerWaitsForTopics starts a scorer before its topics exist, as
// when it starts beside a topic-creating job: it must wait and retry, then
// score once they are there.
func TestScorerWaitsForTopics(t *testing.T) {
	brokers, stop := emptyCluster(t)
	defer stop()
	cfg := testConfig(brokers, "scorer-wait")
	r := start(t, cfg)
	eventually(t, "/readyz naming the missing topics", func() error {
		code, body := get(t, "http://"+r.svc.Addr()+"/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "topics missing") {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	select {
	case err := <-r.done:
		t.Fatalf("Run returned before the topics existed: %v", err)
	default:
	}

	cl := newClient(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := kafkaopt.EnsureTopics(ctx, cl, partitions, 1); err != nil {
		t.Fatal(err)
	}
	in := rec(t, tx("w-1", "card-w", time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)))
	produce(t, cl, []*kgo.Record{in})
	waitCaughtUp(t, kadm.NewClient(cl), cfg.GroupID)
	scored := readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted())
	if len(scored) != 1 {
		t.Fatalf("%d scored records, want 1", len(scored))
	}
}
