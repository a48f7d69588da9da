package kafkaopt

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// testCluster starts an empty kfake broker and a client of it.
func testCluster(t *testing.T) (*kgo.Client, *kadm.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

func TestCheckTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("ensured", func(t *testing.T) {
		cl, _ := testCluster(t)
		if err := EnsureTopics(ctx, cl, 4, 1); err != nil {
			t.Fatal(err)
		}
		if err := CheckTopics(ctx, cl); err != nil {
			t.Fatalf("topics made by EnsureTopics: %v", err)
		}
	})

	t.Run("missing", func(t *testing.T) {
		cl, adm := testCluster(t)
		if _, err := adm.CreateTopic(ctx, 4, 1, nil, event.TopicRaw); err != nil {
			t.Fatal(err)
		}
		err := CheckTopics(ctx, cl)
		if !errors.Is(err, ErrTopicsMissing) || !strings.Contains(err.Error(), event.TopicState) || strings.Contains(err.Error(), event.TopicRaw+",") {
			t.Fatalf("got %v, want ErrTopicsMissing naming the other topics", err)
		}
	})

	t.Run("bad layout", func(t *testing.T) {
		cl, adm := testCluster(t)
		compact := "compact"
		for _, topic := range event.Topics {
			n, configs := int32(6), map[string]*string{}
			switch topic {
			case event.TopicScored:
				n = 3
			case event.TopicRules:
				n = 1
				configs["cleanup.policy"] = &compact
			case event.TopicEntityState:
				configs["cleanup.policy"] = &compact
			case event.TopicEntityFeatures:
				configs["cleanup.policy"] = &compact // but 6 partitions, not 1
			}
			// scorer-state is left with the default policy, delete.
			if _, err := adm.CreateTopic(ctx, n, 1, configs, topic); err != nil {
				t.Fatal(err)
			}
		}
		err := CheckTopics(ctx, cl)
		var le *LayoutError
		if !errors.As(err, &le) {
			t.Fatalf("got %v, want a *LayoutError", err)
		}
		want := []string{
			"entity-features has 6 partitions: it must have 1",
			"scored-transactions has 3 partitions, raw-transactions has 6",
			"scorer-state has cleanup.policy=delete: it must be compact",
		}
		if len(le.Problems) != len(want) {
			t.Fatalf("problems %q, want %d", le.Problems, len(want))
		}
		for i, w := range want {
			if !strings.Contains(le.Problems[i], w) {
				t.Errorf("problem %d = %q, want it to say %q", i, le.Problems[i], w)
			}
		}
	})
}
