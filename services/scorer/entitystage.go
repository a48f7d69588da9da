package scorer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/entity"
)

// The entity stage's Kafka side (docs/design/entities.md), run by a scorer
// with SCORER_ENTITIES=true:
//
//   - the aggregator: a second GroupTransactSession, group <group>-entities,
//     over entity-events. Each partition's entity.Aggregator is restored
//     from entity-state partition p; each batch writes the entries and
//     completeness markers to entity-features and the changed state to
//     entity-state, atomically with its input offsets;
//   - the table follower: every scorer reads entity-features from its
//     start (read_committed) into its entity.Table.

// entityStage is the aggregator session's per-partition state.
type entityStage struct {
	s   *Service
	cfg entity.Config

	mu   sync.Mutex
	aggs map[int32]*entity.Aggregator // nil value: assigned, not restored
}

func (s *Service) entityStageOpts(es *entityStage) []kgo.Opt {
	opts := append([]kgo.Opt(nil), s.kafkaOpts...)
	return append(opts,
		kgo.ClientID("fraudstream-scorer-entities"),
		kgo.TransactionalID(s.cfg.TransactionalID+"-entities"),
		kgo.TransactionTimeout(s.cfg.TransactionTimeout),
		kgo.ConsumerGroup(s.cfg.GroupID+"-entities"),
		kgo.ConsumeTopics(event.TopicEntityEvents),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(s.cfg.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, s.cfg.SessionTimeout/3)),
		kgo.RebalanceTimeout(s.cfg.RebalanceTimeout),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			es.mu.Lock()
			defer es.mu.Unlock()
			for _, p := range m[event.TopicEntityEvents] {
				es.aggs[p] = nil
			}
		}),
		kgo.OnPartitionsRevoked(es.drop),
		kgo.OnPartitionsLost(es.drop),
		kgo.WithLogger(kafkaopt.Logger(s.log)),
	)
}

func (es *entityStage) drop(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	es.mu.Lock()
	defer es.mu.Unlock()
	for _, p := range m[event.TopicEntityEvents] {
		delete(es.aggs, p)
	}
}

// reset forgets every aggregator after an abort: each is restored from
// entity-state, which holds exactly the committed state, before its next
// record.
func (es *entityStage) reset() {
	es.mu.Lock()
	defer es.mu.Unlock()
	for p := range es.aggs {
		es.aggs[p] = nil
	}
}

// runEntityStage runs aggregator sessions until ctx ends.
func (s *Service) runEntityStage(ctx context.Context) error {
	es := &entityStage{s: s, cfg: s.cfg.Entities.aggregator(), aggs: make(map[int32]*entity.Aggregator)}
	for {
		err := es.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Error("entity aggregator session failed; starting a new one", "err", err, "retry_in", sessionRetryDelay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sessionRetryDelay):
		}
	}
}

func (es *entityStage) session(ctx context.Context) error {
	s := es.s
	sess, err := kgo.NewGroupTransactSession(s.entityStageOpts(es)...)
	if err != nil {
		return fmt.Errorf("create entity session: %w", err)
	}
	defer sess.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := sess.PollRecords(pctx, s.cfg.MaxBatchRecords)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("poll: Kafka client closed")
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		var perr error
		var pmu sync.Mutex
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				pmu.Lock()
				perr = cmpErr(perr, err)
				pmu.Unlock()
			}
		}
		var batchErr error
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if batchErr != nil || len(p.Records) == 0 {
				return
			}
			var out []*kgo.Record
			out, batchErr = es.process(ctx, p.Partition, p.Records)
			for _, r := range out {
				sess.Produce(ctx, r, promise)
			}
		})
		try := kgo.TryCommit
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.TransactionTimeout)
		if err := sess.Client().Flush(ectx); err != nil || batchErr != nil {
			try = kgo.TryAbort
		}
		pmu.Lock()
		if perr != nil {
			try = kgo.TryAbort
		}
		pmu.Unlock()
		committed, err := sess.End(ectx, try)
		cancel()
		if err != nil || !committed {
			es.reset()
			if err != nil {
				return fmt.Errorf("end transaction: %w", errors.Join(err, batchErr))
			}
			if batchErr != nil {
				return batchErr
			}
		}
	}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// process applies one partition's records to its aggregator (restoring it
// first if needed) and returns what to produce: dead letters, entries and
// markers to entity-features, and the changelog to entity-state p.
func (es *entityStage) process(ctx context.Context, p int32, recs []*kgo.Record) ([]*kgo.Record, error) {
	es.mu.Lock()
	agg, assigned := es.aggs[p]
	es.mu.Unlock()
	if agg == nil {
		var err error
		if agg, err = es.restore(ctx, p); err != nil {
			return nil, fmt.Errorf("restore entity-state partition %d: %w", p, err)
		}
		es.mu.Lock()
		if assigned {
			es.aggs[p] = agg
		}
		es.mu.Unlock()
	}
	var out []*kgo.Record
	for _, r := range recs {
		ev, err := event.DecodeEntityEvent(r.Value)
		if err != nil {
			out = append(out, &kgo.Record{Topic: event.TopicEntityEventsDLQ, Partition: p, Key: r.Key, Value: r.Value,
				Headers: append(slices.Clone(r.Headers), kgo.RecordHeader{Key: event.HeaderError, Value: []byte(err.Error())})})
			continue
		}
		entries, advanced := agg.Add(ev)
		if advanced {
			entries = append(entries, event.EntityEntry{Kind: event.EntryComplete, AsOf: time.UnixMilli(agg.Complete()).UTC(),
				Partition: p, Partitions: es.s.params.entities.partitions})
		}
		for _, e := range entries {
			v, err := e.Encode()
			if err != nil {
				return nil, fmt.Errorf("encode entity entry: %w", err)
			}
			key := e.Entity
			if e.Kind == event.EntryComplete {
				key = event.CompleteKey(p)
			}
			out = append(out, &kgo.Record{Topic: event.TopicEntityFeatures, Partition: 0, Key: []byte(key), Value: v})
		}
	}
	keys, values, err := agg.TakeChanges()
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		out = append(out, &kgo.Record{Topic: event.TopicEntityState, Partition: p, Key: []byte(k), Value: values[i]})
	}
	return out, nil
}

// restore reads entity-state partition p up to its last stable offset.
func (es *entityStage) restore(ctx context.Context, p int32) (*entity.Aggregator, error) {
	latest, err := readCompacted(ctx, es.s, event.TopicEntityState, p)
	if err != nil {
		return nil, err
	}
	agg := entity.NewAggregator(es.cfg)
	for k, v := range latest {
		if err := agg.Load(k, v); err != nil {
			return nil, err
		}
	}
	return agg, nil
}

// readCompacted returns each key's latest committed value in a partition,
// read up to its last stable offset.
func readCompacted(ctx context.Context, s *Service, topic string, p int32) (map[string][]byte, error) {
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), s.kafkaOpts...),
		kgo.ClientID("fraudstream-scorer-restore"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.WithLogger(kafkaopt.Logger(s.log)),
	)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	end, ok := ends.Lookup(topic, p)
	if !ok || end.Err != nil {
		return nil, fmt.Errorf("end offset of partition %d: %v", p, end.Err)
	}
	latest := make(map[string][]byte)
	for next := int64(0); next < end.Offset; {
		pctx, cancel := context.WithTimeout(ctx, restoreStall)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if fs.Empty() {
			return nil, fmt.Errorf("no progress for %s at offset %d of %d", restoreStall, next, end.Offset)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end.Offset {
				return
			}
			next = max(next, r.Offset+1)
			if !r.Attrs.IsControl() {
				latest[string(r.Key)] = r.Value
			}
		})
	}
	return latest, nil
}

// followEntityTable reads entity-features into the table until ctx ends,
// from its start, read_committed. A record that does not decode is
// logged and counted: it is the aggregator's output, so it is a bug, and
// skipping it only delays completeness (its partition's marker still
// comes).
func (s *Service) followEntityTable(ctx context.Context) {
	tab := s.params.entities.table
	next := int64(0) // the offset after the last record applied
	for ctx.Err() == nil {
		cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), s.kafkaOpts...),
			kgo.ClientID("fraudstream-scorer-entity-table"),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{event.TopicEntityFeatures: {0: kgo.NewOffset().At(next)}}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		)...)
		if err == nil {
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				if fs.IsClientClosed() {
					break
				}
				fs.EachRecord(func(r *kgo.Record) {
					next = r.Offset + 1
					e, err := event.DecodeEntityEntry(r.Value)
					if err != nil {
						s.log.Error("entity-features: record does not decode", "offset", r.Offset, "err", err)
						s.m.entityBad.Inc()
						return
					}
					tab.Apply(e)
				})
			}
			cl.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(rulesRetryDelay):
		}
	}
}
