package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// sink copies scored-transactions into the Store exactly once.
//
// The consumer group only assigns partitions: nothing is ever committed to
// Kafka. The next offset of each partition is written by Store.SaveBatch in
// the same database transaction as the rows before it, and on assignment
// the sink starts each partition where the database says. Whatever dies
// when, the database holds every record before its stored offset exactly
// once and nothing after it.
//
// BlockRebalanceOnPoll keeps a rebalance from running between a poll and
// the save of what it returned, so a batch never holds records of a
// partition this member no longer owns when it commits.
//
// A record it cannot store (undecodable, invalid, or reusing a stored
// transaction_id with different content) goes to scored-transactions.dlq,
// acknowledged by the broker before the database transaction that moves
// the offset past it commits: never lost, at worst written twice, which
// its source headers make recognisable (docs/design/dead-letters.md).
type sink struct {
	cl      *kgo.Client
	store   Store
	log     *slog.Logger
	m       *metrics
	batch   int
	flush   time.Duration
	topic   string
	backoff func(failures int) time.Duration

	ready     chan struct{} // closed once the first assignment is positioned
	readyOnce sync.Once
	hurry     atomic.Bool // a rebalance is waiting on us: save what we have now

	mu    sync.Mutex
	owned map[int32]bool // partitions of topic assigned to this member
}

func newSink(store Store, log *slog.Logger, m *metrics, batch int, flush time.Duration) *sink {
	return &sink{
		store: store, log: log, m: m, batch: batch, flush: flush, topic: event.TopicScored,
		ready: make(chan struct{}),
		owned: map[int32]bool{},
		backoff: func(n int) time.Duration {
			return min(100*time.Millisecond<<min(n, 8), 10*time.Second)
		},
	}
}

// opts are the sink's client options on top of the connection options.
func (s *sink) opts(group string, session, rebalance time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.SessionTimeout(session),
		kgo.HeartbeatInterval(min(3*time.Second, session/3)),
		kgo.RebalanceTimeout(rebalance),
		kgo.ConsumeTopics(s.topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(), // the database holds the offsets
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Dead letters keep the partition number of their record.
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.AdjustFetchOffsetsFn(s.seekToStored),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.revoked),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { s.hurry.Store(true) }),
	}
}

func (s *sink) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// assigned records new partitions. Their positions are set by seekToStored,
// which franz-go calls after this, once the group's (here always empty)
// committed offsets are fetched: a SetOffsets from this callback would be
// ignored for partitions whose offsets are not fetched yet.
func (s *sink) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	for _, p := range assigned[s.topic] {
		s.owned[p] = true
	}
	s.mu.Unlock()
	s.log.Info("sink partitions assigned", "topic", s.topic, "partitions", assigned[s.topic])
	if len(assigned[s.topic]) == 0 {
		s.markReady() // nothing to position: a member without partitions is ready as is
	}
}

// seekToStored replaces the positions of newly assigned partitions with the
// database's next offsets; a partition never saved starts at the beginning.
func (s *sink) seekToStored(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	stored, err := s.store.Offsets(ctx, s.topic)
	if err != nil {
		// Returning the error makes franz-go leave this group session and
		// rejoin, which retries.
		s.log.Error("sink: read stored offsets", "err", err)
		return nil, fmt.Errorf("read stored offsets: %w", err)
	}
	for p := range offsets[s.topic] {
		if next, ok := stored[p]; ok {
			offsets[s.topic][p] = kgo.NewOffset().At(next)
		} else {
			offsets[s.topic][p] = kgo.NewOffset().AtStart()
		}
	}
	s.log.Info("sink positioned from the database", "topic", s.topic, "stored", stored)
	s.markReady()
	return offsets, nil
}

// revoked forgets partitions. The batch in flight cannot hold their records
// (BlockRebalanceOnPoll), and saveBatch still filters by ownership in case
// a partition was lost to a session timeout while the batch was written.
func (s *sink) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	for _, p := range revoked[s.topic] {
		delete(s.owned, p)
		s.m.lag.DeleteLabelValues(partitionLabel(p))
	}
	s.mu.Unlock()
	if len(revoked[s.topic]) > 0 {
		s.log.Info("sink partitions revoked", "topic", s.topic, "partitions", revoked[s.topic])
	}
}

// batch is what one database transaction writes.
type batch struct {
	rows  []Record
	dead  []*kgo.Record   // dead letters of undecodable or invalid records
	next  map[int32]int64 // next offset to consume per partition
	first map[int32]int64 // where to rewind to if the save fails
	n     int             // records consumed, including undecodable ones
}

func (b *batch) add(r *kgo.Record) {
	if _, ok := b.first[r.Partition]; !ok {
		b.first[r.Partition] = r.Offset
	}
	b.next[r.Partition] = r.Offset + 1
	b.n++
}

// run polls, saves and repeats until ctx is done, then leaves the group.
func (s *sink) run(ctx context.Context) error {
	defer s.cl.Close()
	failures := 0
	for {
		b, err := s.collect(ctx)
		if err != nil || ctx.Err() != nil {
			// Whatever was collected is not saved; it is read again from
			// the stored offsets by whoever owns the partitions next.
			s.cl.AllowRebalance()
			return err
		}
		if b.n > 0 {
			if err := s.save(ctx, b); err != nil {
				failures++
				s.m.saveErrors.Inc()
				wait := s.backoff(failures)
				s.log.Error("sink: save batch failed; rewinding to the stored offsets", "err", err, "records", b.n, "retry_in", wait)
				s.rewind(b)
				s.cl.AllowRebalance()
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
				continue
			}
			failures = 0
		}
		s.cl.AllowRebalance()
	}
}

// collect polls until the batch is full, FlushInterval has passed since its
// first record, or a rebalance is waiting.
func (s *sink) collect(ctx context.Context) (*batch, error) {
	b := &batch{next: map[int32]int64{}, first: map[int32]int64{}}
	var deadline time.Time
	for b.n < s.batch {
		if b.n == 0 {
			// Nothing polled is held yet: let a waiting rebalance run. A
			// poll that returned only errors or empty partitions still
			// counts as an outstanding poll, and without this the loop
			// would poll again and again with the rebalance blocked, so
			// the group stalls until this member is kicked out of it.
			s.cl.AllowRebalance()
		}
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			pctx, cancel = context.WithDeadline(ctx, deadline)
		}
		fetches := s.cl.PollRecords(pctx, s.batch-b.n)
		cancel()
		if fetches.IsClientClosed() {
			return nil, errors.New("sink: kafka client closed")
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			// franz-go retries retriable errors itself; these are worth seeing.
			s.log.Warn("sink: fetch", "topic", topic, "partition", p, "err", err)
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				s.decode(b, r)
			}
			if len(p.Records) > 0 {
				end := p.HighWatermark
				if p.LastStableOffset >= 0 {
					end = p.LastStableOffset // read_committed: what we can read
				}
				s.m.lag.WithLabelValues(partitionLabel(p.Partition)).Set(float64(max(end-b.next[p.Partition], 0)))
			}
		})
		if ctx.Err() != nil {
			return b, nil
		}
		if b.n > 0 && deadline.IsZero() {
			deadline = time.Now().Add(s.flush)
		}
		if b.n > 0 && (s.hurry.Swap(false) || !time.Now().Before(deadline)) {
			break
		}
	}
	return b, nil
}

// decode adds r to b. A record that is not a valid scored record cannot be
// stored; it becomes a dead letter, written before its offset is saved (the
// scorer dead-letters invalid input, so this means a bug, a foreign
// producer, or a newer scorer's format this release cannot read). Unknown
// fields are no reason: DecodeScored ignores them and the record column
// keeps the value as produced, with them.
func (s *sink) decode(b *batch, r *kgo.Record) {
	b.add(r)
	sc, err := event.DecodeScored(r.Value)
	if err != nil {
		s.log.Warn("sink: dead-lettering an invalid record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"dlq", event.TopicScoredDLQ, "err", err)
		b.dead = append(b.dead, deadLetter(r, err))
		return
	}
	for _, h := range r.Headers {
		if h.Key == event.HeaderScoredAt {
			if t, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
				sc.ScoredAt = t
			}
		}
	}
	b.rows = append(b.rows, Record{Scored: sc, Value: r.Value, Partition: r.Partition, Offset: r.Offset, Source: r})
}

// save writes b's dead letters, then its rows and offsets. Every dead
// letter is acknowledged before the offsets past its record commit; a
// conflict found by SaveBatch rolls the batch back, is dead-lettered, and
// the batch is saved again without it.
func (s *sink) save(ctx context.Context, b *batch) error {
	s.mu.Lock()
	rows := b.rows[:0:0]
	for _, r := range b.rows {
		if s.owned[r.Partition] {
			rows = append(rows, r)
		}
	}
	var dead []*kgo.Record
	for _, r := range b.dead {
		if s.owned[r.Partition] {
			dead = append(dead, r)
		}
	}
	next := make(map[int32]int64, len(b.next))
	for p, o := range b.next {
		if s.owned[p] {
			next[p] = o
		}
	}
	s.mu.Unlock()
	if len(next) == 0 {
		return nil
	}
	start := time.Now()
	if err := s.produceDead(ctx, dead, "invalid"); err != nil {
		return err
	}
	for {
		stored, err := s.store.SaveBatch(ctx, s.topic, rows, next)
		var ce *ConflictError
		if errors.As(err, &ce) {
			rows, dead = withoutConflicts(rows, ce.Conflicts)
			for _, c := range ce.Conflicts {
				s.log.Warn("sink: dead-lettering a conflicting record", "partition", c.Row.Partition, "offset", c.Row.Offset,
					"dlq", event.TopicScoredDLQ, "err", c)
			}
			if err := s.produceDead(ctx, dead, "conflict"); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		s.m.batchSeconds.Observe(time.Since(start).Seconds())
		s.m.batches.Inc()
		s.m.rowsStored.Add(float64(stored))
		s.m.duplicates.Add(float64(len(rows) - stored))
		return nil
	}
}

// withoutConflicts returns rows without the conflicting ones, and the
// dead letters of those.
func withoutConflicts(rows []Record, conflicts []Conflict) ([]Record, []*kgo.Record) {
	type pos struct {
		p int32
		o int64
	}
	bad := make(map[pos]bool, len(conflicts))
	dead := make([]*kgo.Record, 0, len(conflicts))
	for _, c := range conflicts {
		bad[pos{c.Row.Partition, c.Row.Offset}] = true
		src := c.Row.Source
		if src == nil { // a row not read by the sink: rebuild what it can
			v, _ := encodeRecord(c.Row)
			src = &kgo.Record{Topic: event.TopicScored, Partition: c.Row.Partition, Offset: c.Row.Offset,
				Key: []byte(c.Row.Scored.Transaction.CardID), Value: v}
		}
		dead = append(dead, deadLetter(src, c))
	}
	kept := rows[:0:0]
	for _, r := range rows {
		if !bad[pos{r.Partition, r.Offset}] {
			kept = append(kept, r)
		}
	}
	return kept, dead
}

// produceDead writes dead letters and waits for the broker's
// acknowledgement of each; reason labels the metric.
func (s *sink) produceDead(ctx context.Context, dead []*kgo.Record, reason string) error {
	if len(dead) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, deadLetterTimeout)
	defer cancel()
	if err := s.cl.ProduceSync(ctx, dead...).FirstErr(); err != nil {
		return fmt.Errorf("write dead letters to %s: %w", event.TopicScoredDLQ, err)
	}
	s.m.deadLetters.WithLabelValues(reason).Add(float64(len(dead)))
	return nil
}

// deadLetterTimeout bounds the wait for dead letters' acknowledgement; the
// batch is then retried like any failed save.
const deadLetterTimeout = 30 * time.Second

// deadLetter wraps a record the sink cannot store for scored-transactions.dlq:
// same partition number, key, value and headers, plus the reason and where
// it was read from (duplicates of a dead letter share those).
func deadLetter(r *kgo.Record, err error) *kgo.Record {
	headers := append(slices.Clone(r.Headers),
		kgo.RecordHeader{Key: event.HeaderError, Value: []byte(err.Error())},
		kgo.RecordHeader{Key: event.HeaderSourceTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: event.HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: event.HeaderSourceOffset, Value: strconv.AppendInt(nil, r.Offset, 10)})
	return &kgo.Record{Topic: event.TopicScoredDLQ, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: headers}
}

// rewind moves the partitions of a failed batch back to its first record,
// which is where the database's offsets stand: everything before it was
// saved by earlier batches.
func (s *sink) rewind(b *batch) {
	set := map[string]map[int32]kgo.EpochOffset{s.topic: {}}
	for p, off := range b.first {
		set[s.topic][p] = kgo.EpochOffset{Epoch: -1, Offset: off}
	}
	s.cl.SetOffsets(set)
}
