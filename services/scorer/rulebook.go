package scorer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

// Hot-reloaded rules: every scorer instance reads the compacted fraud-rules
// topic from its start (read_committed, no consumer group, so every
// instance sees every version) and keeps the newest valid rule set,
// compiled, behind an atomic pointer that the tasks load per record. A
// record naming an older or equal version is ignored; one that does not
// decode or compile is refused, logged with every problem and counted,
// and the rule set in force stays; that includes a set over the rules
// package's static cost limits, produced to the topic without the API
// (docs/design/rule-cost.md). Until fraud-rules holds a set, the
// built-in default (rules.Default, version 1) or the one given in
// Deps.Rules applies.
//
// Before it scores anything, the scorer reads fraud-rules up to the end
// offsets it found at start, so a restarted instance never scores with an
// older set than the one already published.
//
// Determinism caveat: like profiles, a rule set is read at processing
// time. Every scored record names the rule-set version it was scored with,
// and a replay after a crash uses the set in force at the replay; with no
// publication in between, output stays byte-identical.

// rulesRetryDelay spaces out retries of the fraud-rules reader.
const rulesRetryDelay = time.Second

type ruleBook struct {
	cur  atomic.Pointer[rules.Set]
	log  *slog.Logger
	m    *metrics
	opts []rules.Option

	synced chan struct{} // closed once fraud-rules was read to its end at start
}

func newRuleBook(initial *rules.Set, log *slog.Logger, m *metrics, opts ...rules.Option) *ruleBook {
	b := &ruleBook{log: log, m: m, opts: opts, synced: make(chan struct{})}
	b.cur.Store(initial)
	if m != nil {
		m.ruleSetVersion.Set(float64(initial.Version()))
	}
	return b
}

// current is the rule set in force.
func (b *ruleBook) current() *rules.Set { return b.cur.Load() }

// apply takes one fraud-rules record. It returns an error (already logged
// and counted) for a record that is not a usable rule set.
func (b *ruleBook) apply(r *kgo.Record) error {
	if string(r.Key) != event.RuleSetKey || r.Value == nil {
		return nil // not a rule set, or a tombstone: nothing to apply
	}
	err := b.applyValue(r.Value)
	if err != nil {
		b.log.Error("fraud-rules: rule set refused; the one in force stays",
			"partition", r.Partition, "offset", r.Offset, "in_force", b.current().Version(), "err", err)
		if b.m != nil {
			b.m.rulesRejected.Inc()
		}
	}
	return err
}

func (b *ruleBook) applyValue(v []byte) error {
	rs, err := event.DecodeRuleSetRecord(v)
	if err != nil {
		return err
	}
	cur := b.current()
	if rs.Version <= cur.Version() {
		return nil // an old version, seen again from the start of the topic
	}
	set, err := rules.Compile(rs, b.opts...)
	if err != nil {
		return fmt.Errorf("version %d: %w", rs.Version, err)
	}
	b.cur.Store(set)
	if b.m != nil {
		b.m.ruleSetVersion.Set(float64(set.Version()))
	}
	b.log.Info("fraud-rules: rule set applied", "version", set.Version(), "rules", set.Len(),
		"updated_by", rs.UpdatedBy, "previous", cur.Version())
	return nil
}

// follow reads fraud-rules until ctx is done, closing b.synced once it
// has read up to the end offsets it found at start. Errors are retried.
func (b *ruleBook) follow(ctx context.Context, opts []kgo.Opt) {
	for ctx.Err() == nil {
		err := b.followOnce(ctx, opts)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("fraud-rules reader failed; retrying", "err", err, "retry_in", rulesRetryDelay)
		select {
		case <-ctx.Done():
		case <-time.After(rulesRetryDelay):
		}
	}
}

func (b *ruleBook) followOnce(ctx context.Context, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...),
		kgo.ClientID("fraudstream-scorer-rules"),
		kgo.ConsumeTopics(event.TopicRules),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()

	// Where "the end" is at start; once the reader is past it, the
	// scorer may score.
	var ends map[int32]int64
	select {
	case <-b.synced:
	default:
		listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, event.TopicRules)
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			err = nil // no topic yet: nothing was published
		}
		if err != nil {
			return fmt.Errorf("list end offsets: %w", err)
		}
		ends = map[int32]int64{}
		var lerr error
		listed.Each(func(o kadm.ListedOffset) {
			if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				return // no topic yet: nothing was published
			}
			if o.Err != nil {
				lerr = fmt.Errorf("partition %d: %w", o.Partition, o.Err)
			}
			if o.Offset > 0 {
				ends[o.Partition] = o.Offset
			}
		})
		if lerr != nil {
			return lerr
		}
		b.caughtUp(ends)
	}
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if ends != nil {
			// Still catching up: an empty poll means nothing is left
			// (the last offsets may be transaction markers, which no
			// record reaches).
			pctx, cancel = context.WithTimeout(ctx, time.Second)
		}
		fetches := cl.PollFetches(pctx)
		timedOut := pctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("client closed")
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				b.log.Warn("fraud-rules: fetch", "partition", p, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			_ = b.apply(r) // logged and counted; the set in force stays
			if end, ok := ends[r.Partition]; ok && r.Offset+1 >= end {
				delete(ends, r.Partition)
			}
		})
		if ends != nil {
			if timedOut && fetches.NumRecords() == 0 {
				clear(ends)
			}
			b.caughtUp(ends)
			if len(ends) == 0 {
				ends = nil
			}
		}
	}
}

// caughtUp closes synced when no partition is left to read up to.
func (b *ruleBook) caughtUp(ends map[int32]int64) {
	if len(ends) > 0 {
		return
	}
	select {
	case <-b.synced:
	default:
		close(b.synced)
		b.log.Info("fraud-rules read; scoring with rule set", "version", b.current().Version())
	}
}

// ruleDisabled is the hook of the run-time guard: a rule over its budget
// is switched off in this instance until the next rule set version, and
// the partition keeps flowing without it (docs/design/rule-cost.md).
func ruleDisabled(log *slog.Logger, m *metrics) func(ruleID, reason string) {
	return func(ruleID, reason string) {
		log.Error("rule disabled in this scorer: over its budget; it counts as not matched until a new rule set version is applied",
			"rule", ruleID, "reason", reason)
		if m != nil {
			m.rulesDisabled.WithLabelValues(ruleID).Inc()
		}
	}
}
