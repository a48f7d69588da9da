package scorer

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/pkg/watermark"
	"github.com/fraudstream/fraudstream/services/scorer/entity"
)

// Offline scores transactions in this process, without Kafka, with the
// service's own code: the same task, features, rules and model, as if the
// transactions were the records of one partition in the order given. It is
// what `fraudstream train` builds its training examples with, and what the
// golden and detection-quality tests score with, so that offline and
// online scores cannot drift apart. Profiles are not looked up (every
// record is profile_missing) unless the online scorer has no Redis either.
//
// An Offline is not safe for concurrent use.
type Offline struct {
	t      *task
	agg    *entity.Aggregator // the entity stage, in process (entities.go)
	counts batchCounts
	offset int64
	since  int // records since the last flush
}

// offlineFlushEvery is how many records Offline scores between the batch
// ends at which the task evicts expired state, as the service does at
// every commit.
const offlineFlushEvery = 2000

// NewOffline returns an Offline with cfg's settings (thresholds, event-time
// settings, model file) and deps' rules and model.
func NewOffline(cfg Config, deps Deps) (*Offline, error) {
	cfg = cfg.withDefaults()
	// Scoring time only stamps a header; a fixed one keeps Offline
	// deterministic.
	p, err := newTaskParams(cfg, deps, func() time.Time { return time.Unix(0, 0).UTC() })
	if err != nil {
		return nil, err
	}
	// The entity stage runs in process: every record's entity events go
	// straight to one aggregator, with this partition's progress after
	// them, and its entries straight to the table, so a record's join
	// sees what the online stage would once complete (with no wait).
	p.entities = &entityParams{table: entity.NewTable(cfg.Entities.Memory), lag: cfg.Entities.Lag, memory: cfg.Entities.Memory}
	return &Offline{t: newTask(0, p), counts: newBatchCounts(), agg: entity.NewAggregator(cfg.Entities.aggregator())}, nil
}

// feedEntities hands the task's queued entity events to the aggregator,
// then the partition's progress as of after next (nil: after the last
// record), and the aggregator's entries to the table. With one partition,
// the promise can include the next record: once it is observed, the
// watermark is wm' = max(wm, ts − max delay), and it and every later
// record count above wm' − lateness (eventtime.go), so its own join, at
// ts − lag < wm' − lateness, finds the table complete.
func (o *Offline) feedEntities(next *event.Transaction) {
	evs := o.t.entEvents
	o.t.entEvents = evs[:0]
	through, ok := o.t.progressThrough()
	if next != nil {
		p := o.t.params
		wm := o.t.gen.Current()
		ts := p.stateTime(next.EventTime.UnixMilli(), next.IngestTime, wm)
		wm = max(wm, watermark.Sub(ts, watermark.Millis(p.maxDelay)))
		through, ok = watermark.Sub(wm, watermark.Millis(p.lateness)), true
	}
	if ok && through > o.t.progressSent {
		o.t.progressSent = through
		evs = append(evs, event.EntityEvent{Kind: event.EntityProgress, Sources: 1, Time: time.UnixMilli(through)})
	}
	tab := o.t.params.entities.table
	for _, ev := range evs {
		out, advanced := o.agg.Add(ev)
		for _, e := range out {
			tab.Apply(e)
		}
		if advanced {
			tab.Apply(event.EntityEntry{Kind: event.EntryComplete, AsOf: time.UnixMilli(o.agg.Complete()), Partitions: 1})
		}
	}
}

// Score scores tx as the next record of the partition. ok is false when tx
// is a redelivery of an earlier transaction (same transaction_id and
// contents: the service drops it); an error means the record would have
// gone to the dead-letter topic, as one reusing a transaction_id with
// different contents does.
func (o *Offline) Score(tx event.Transaction) (s event.Scored, ok bool, err error) {
	tx.Schema = event.SchemaTransaction
	v, err := tx.Encode()
	if err != nil {
		return event.Scored{}, false, err
	}
	r := &kgo.Record{Topic: event.TopicRaw, Key: []byte(tx.CardID), Value: v, Offset: o.offset}
	o.offset++
	o.feedEntities(&tx)
	out := o.t.process(r, &o.counts)
	if o.since++; o.since >= offlineFlushEvery {
		o.since = 0
		o.t.flush()
		o.t.stats.take()
		o.agg.TakeChanges() // keeps its dirty sets from growing; nothing reads them
	}
	for _, rec := range out {
		switch rec.Topic {
		case event.TopicScored:
			s, err := event.DecodeScored(rec.Value)
			return s, err == nil, err
		case event.TopicDLQ:
			return event.Scored{}, false, fmt.Errorf("dead-lettered: %s", headerValue(rec, event.HeaderError))
		}
	}
	return event.Scored{}, false, nil
}

func headerValue(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
