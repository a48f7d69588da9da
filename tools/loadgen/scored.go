package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// topicFollower reads scored-transactions directly with a read_committed
// consumer, from the end offsets listed before the run sends anything: the
// pipeline's end-to-end latency without alerts' fan-out, for rates the
// live stream cannot carry.
type topicFollower struct {
	cl *kgo.Client
}

func newTopicFollower(ctx context.Context, cfg Config) (*topicFollower, error) {
	opts, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, event.TopicScored)
	admin.Close()
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", event.TopicScored, err)
	}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { start[o.Partition] = kgo.NewOffset().At(o.Offset) })
	cl, err := kgo.NewClient(append(opts,
		kgo.ClientID("fraudstream-loadgen-e2e"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(50*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{event.TopicScored: start}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return &topicFollower{cl: cl}, nil
}

// run hands every scored record to t until ctx is done, with scored_at
// taken from its header as alerts does.
func (f *topicFollower) run(ctx context.Context, t *tracker) {
	defer f.cl.Close()
	for {
		fs := f.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		at := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			var rec scoredRecord
			if err := event.Unmarshal(r.Value, &rec, event.IgnoreUnknown); err != nil {
				return
			}
			for _, h := range r.Headers {
				if h.Key == event.HeaderScoredAt {
					if ts, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
						rec.ScoredAt = &ts
					}
				}
			}
			t.record(rec, at, true)
		})
	}
}
