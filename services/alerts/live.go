package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// live feeds the SSE hub from its own read_committed consumer of every
// partition, without a group: every replica sees every record as it is
// committed, and the database sink is never slowed by browsers.
//
// It starts at each partition's last stable offset, listed explicitly
// rather than "at the end", so the hub knows the exact position of the
// stream from the first moment: that position is what a reconnecting
// client's backfill is measured against. (Partitions added to the topic
// later are followed only after a restart.)
type live struct {
	opts []kgo.Opt   // the consumer's options, without the partitions
	adm  *kgo.Client // lists the start offsets; also serves /readyz
	cl   *kgo.Client // created by run
	hub  *hub
	log  *slog.Logger
	m    *metrics

	ready chan struct{} // closed once consuming from known positions
}

func newLive(h *hub, log *slog.Logger, m *metrics) *live {
	return &live{hub: h, log: log, m: m, ready: make(chan struct{})}
}

func (l *live) consumerOpts() []kgo.Opt {
	return []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted())}
}

// start lists the partitions' last stable offsets, retrying until the topic
// exists or ctx is done.
func (l *live) start(ctx context.Context) ([]int64, error) {
	adm := kadm.NewClient(l.adm)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		offs, err := adm.ListCommittedOffsets(ctx, event.TopicScored)
		if err == nil {
			err = offs.Error()
		}
		if err == nil && len(offs[event.TopicScored]) > 0 {
			ps := offs[event.TopicScored]
			pos := make([]int64, 0, len(ps))
			keys := make([]int32, 0, len(ps))
			for p := range ps {
				keys = append(keys, p)
			}
			sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
			for _, p := range keys {
				for int32(len(pos)) < p {
					pos = append(pos, 0)
				}
				pos = append(pos, ps[p].Offset)
			}
			return pos, nil
		}
		if err == nil {
			err = fmt.Errorf("topic %s has no partitions yet", event.TopicScored)
		}
		l.log.Warn("live stream: list start offsets; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (l *live) run(ctx context.Context) error {
	defer l.adm.Close()
	pos, err := l.start(ctx)
	if err != nil {
		return nil // cancelled before the topic appeared
	}
	parts := map[int32]kgo.Offset{}
	for p, o := range pos {
		parts[int32(p)] = kgo.NewOffset().At(o)
	}
	opts := append(append([]kgo.Opt{}, l.opts...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{event.TopicScored: parts}))
	if l.cl, err = kgo.NewClient(opts...); err != nil {
		return fmt.Errorf("live stream: kafka client: %w", err)
	}
	defer l.cl.Close()
	l.hub.start(pos)
	close(l.ready)
	l.log.Info("live stream started", "position", formatPosition(pos))
	return follow(ctx, l.cl, l.log, "live stream", func(r *kgo.Record) {
		data, err := recordView(r)
		if err != nil {
			l.log.Debug("live stream: skipping record", "partition", r.Partition, "offset", r.Offset, "err", err)
		} else {
			l.m.liveRecords.Inc()
		}
		l.hub.publish(r.Partition, r.Offset, data) // nil data still moves the position
	})
}

// scoredView is the JSON of a scored transaction in the API and the stream:
// the scored record plus the time it was scored, which travels in a header.
type scoredView struct {
	event.Scored
	ScoredAt *time.Time `json:"scored_at,omitempty"`
}

func viewOf(s event.Scored) scoredView {
	return scoredView{Scored: s, ScoredAt: nullTime(s.ScoredAt)}
}

// recordView renders a scored-transactions record once as the JSON every
// stream client receives.
func recordView(r *kgo.Record) ([]byte, error) {
	s, err := event.DecodeScored(r.Value)
	if err != nil {
		return nil, err
	}
	for _, h := range r.Headers {
		if h.Key == event.HeaderScoredAt {
			if t, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
				s.ScoredAt = t
			}
		}
	}
	data, err := json.Marshal(viewOf(s))
	if err != nil {
		return nil, fmt.Errorf("encode view: %w", err)
	}
	return data, nil
}
