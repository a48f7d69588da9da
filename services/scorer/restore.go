package scorer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/pkg/watermark"
)

// restoreStall bounds how long a restore may go without reading anything
// before it gives up (and the session is restarted).
const restoreStall = 30 * time.Second

// restoreStats describes one restore, for logs and metrics.
type restoreStats struct {
	records int // changelog records read
	cards   int // cards held after the restore
	elapsed time.Duration
}

// restore replaces t's state with the one in its scorer-state partition:
// every committed entry up to the partition's last stable offset, read
// with read_committed. Only the owner of input partition p writes to
// scorer-state p, and the new owner of p starts only after the previous
// owner's transaction is over (the session reads stable offsets), so that
// state matches the committed input offset the session will resume at.
func (s *Service) restore(ctx context.Context, t *task) error {
	begin := time.Now()
	fresh := newTask(t.partition, t.params)
	st, err := s.readChangelog(ctx, fresh)
	if err != nil {
		return fmt.Errorf("restore scorer-state partition %d: %w", t.partition, err)
	}
	*t = *fresh
	t.restored = true
	st.elapsed = time.Since(begin)
	st.cards = len(t.cards)
	s.m.restored(st)
	maxSeen := "none" // no event time seen yet
	if ms := t.gen.MaxSeen(); ms != watermark.None {
		maxSeen = time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
	}
	s.log.Info("state restored", "partition", t.partition, "records", st.records, "cards", st.cards,
		"ids", len(t.seen), "max_event_time", maxSeen, "duration", st.elapsed)
	return nil
}

func (s *Service) readChangelog(ctx context.Context, t *task) (restoreStats, error) {
	var st restoreStats
	p := t.partition
	opts := append([]kgo.Opt(nil), s.kafkaOpts...)
	cl, err := kgo.NewClient(append(opts,
		kgo.ClientID("fraudstream-scorer-restore"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{event.TopicState: {p: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Commit and abort markers are delivered too, so the read can
		// tell it has reached the end even when the last offsets before
		// it are markers rather than records.
		kgo.KeepControlRecords(),
		kgo.WithLogger(kafkaopt.Logger(s.log)),
	)...)
	if err != nil {
		return st, err
	}
	defer cl.Close()

	// The end is the last stable offset: past it lie only open
	// transactions, which are not ours to see (and, if their producer is
	// dead, will be aborted).
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, event.TopicState)
	if err != nil {
		return st, fmt.Errorf("list end offsets: %w", err)
	}
	end, ok := ends.Lookup(event.TopicState, p)
	if !ok {
		return st, fmt.Errorf("no end offset for partition %d", p)
	}
	if end.Err != nil {
		return st, fmt.Errorf("end offset: %w", end.Err)
	}
	if end.Offset <= 0 {
		t.rebuildIndexes()
		return st, nil
	}

	// Keep only each key's latest value, then decode once: a busy card
	// has many entries, and only the last one counts.
	latest := make(map[string][]byte)
	next := int64(0) // the offset after the last one read
	for next < end.Offset {
		pctx, cancel := context.WithTimeout(ctx, restoreStall)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		var fetchErr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				fetchErr = errors.Join(fetchErr, err)
			}
		})
		if fetchErr != nil {
			return st, fetchErr
		}
		if fs.Empty() {
			return st, fmt.Errorf("no progress for %s at offset %d of %d", restoreStall, next, end.Offset)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end.Offset {
				return
			}
			next = max(next, r.Offset+1)
			if r.Attrs.IsControl() {
				return
			}
			st.records++
			latest[string(r.Key)] = r.Value
		})
	}
	t.cards = make(map[string]*cardState, len(latest))
	for k, v := range latest {
		if err := t.load(k, v); err != nil {
			return st, err
		}
	}
	t.rebuildIndexes()
	return st, nil
}
