package scorer

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/pkg/watermark"
	"github.com/fraudstream/fraudstream/services/scorer/entity"
)

// The scorer's half of the entity stage (docs/design/entities.md):
//
//   - after scoring a record, its visit events (merchant, device, IP) and,
//     for a decline, a flag event per merchant the card visited in its
//     memory, go to entity-events in the batch's transaction; at every
//     batch end a progress event per entity-events partition promises that
//     this partition writes no event at or before watermark − lateness;
//   - before scoring, the record is joined with the entity-features table
//     as of its state time minus the join lag, once the table is complete
//     through that time (waiting for it at most the configured wait).
//
// The card's merchant memory is kept beside its card state under its own
// changelog keys, so it outlives the card's 24-hour look-back.

const (
	// memKeyPrefix + card_id is a card's merchant memory in scorer-state
	// (NUL-prefixed like metaKey: no card id starts with NUL).
	memKeyPrefix = "\x00mem/"
	// maxMemMerchants bounds the merchants a card remembers; a new one
	// beyond them replaces the one visited least recently.
	maxMemMerchants = 16
	// flagEvery: a card declined again within this time sends no new
	// flag events (the aggregator keeps one flag per card anyway).
	flagEvery = time.Hour
)

// entityParams are the entity stage's settings; nil when it is off.
type entityParams struct {
	table *entity.Table
	// lag: a record at state time ts is joined with the table as of
	// ts − lag; more than lateness + out-of-orderness (Config.Validate).
	lag time.Duration
	// wait bounds how long a record waits for the table to be complete
	// through its join time; then it is scored with entity_stale.
	wait time.Duration
	// memory is how long a card remembers a merchant; at most the
	// aggregator's compromise window.
	memory time.Duration
	// sources and partitions: the partition counts of raw-transactions
	// and entity-events, set when a session starts (0 in Offline).
	sources, partitions int32
}

// cardMemory is a card's recent merchants, most recent last.
type cardMemory struct {
	Merchants []memVisit `json:"m"`
	LastFlag  int64      `json:"f,omitempty"`
	dirty     bool
}

type memVisit struct {
	Merchant string `json:"id"`
	At       int64  `json:"at"`
}

func (m *cardMemory) last() int64 {
	if n := len(m.Merchants); n > 0 {
		return max(m.Merchants[n-1].At, m.LastFlag)
	}
	return m.LastFlag
}

// recentMerchants calls f for each merchant the card visited in
// (ts − memory, ∞): the narrow view of a card's merchant memory the join
// and the flags use.
func (m *cardMemory) recentMerchants(ts int64, memory time.Duration, f func(merchant string, at int64)) {
	for _, v := range m.Merchants {
		if v.At > ts-memory.Milliseconds() {
			f(v.Merchant, v.At)
		}
	}
}

// visit records a visit to merchant at ts.
func (m *cardMemory) visit(merchant string, ts int64) {
	for i, v := range m.Merchants {
		if v.Merchant == merchant {
			copy(m.Merchants[i:], m.Merchants[i+1:])
			m.Merchants[len(m.Merchants)-1] = memVisit{merchant, max(v.At, ts)}
			return
		}
	}
	if len(m.Merchants) >= maxMemMerchants {
		copy(m.Merchants, m.Merchants[1:])
		m.Merchants = m.Merchants[:len(m.Merchants)-1]
	}
	// Keep the order by time: a backdated visit goes before later ones.
	i := len(m.Merchants)
	for i > 0 && m.Merchants[i-1].At > ts {
		i--
	}
	m.Merchants = append(m.Merchants, memVisit{})
	copy(m.Merchants[i+1:], m.Merchants[i:])
	m.Merchants[i] = memVisit{merchant, ts}
}

// joinEntities sets the entity features of a record at state time ts. It
// waits for the table (online only; Offline drives it synchronously).
func (t *task) joinEntities(f *event.Features, tx *event.Transaction, ts int64, c *batchCounts) {
	ep := t.params.entities
	at := ts - ep.lag.Milliseconds()
	// A record whose join time depends on this batch's own uncommitted
	// events cannot be served before the batch commits: after one timeout
	// the rest of the batch does not wait again (flush resets it).
	wait := ep.wait
	if t.waitedOut {
		wait = 0
	}
	if !ep.table.Wait(context.Background(), at, wait) {
		t.waitedOut = true
		f.EntityStale = true
		c.entityStale++
		return
	}
	if tx.DeviceID != "" {
		if e, ok := ep.table.Lookup(event.EntityDevice+tx.DeviceID, at); ok {
			f.DeviceCards24h = e.Cards24h
		}
	}
	if tx.IP != "" {
		if e, ok := ep.table.Lookup(event.EntityIP+tx.IP, at); ok {
			f.IPCards24h = e.Cards24h
		}
	}
	if m := t.mem[tx.CardID]; m != nil {
		m.recentMerchants(ts, ep.memory, func(merchant string, _ int64) {
			if f.VisitedCompromisedMerchant {
				return
			}
			if e, ok := ep.table.Lookup(event.EntityMerchant+merchant, at); ok && e.Compromised {
				f.VisitedCompromisedMerchant = true
			}
		})
	}
}

// entityEvents queues the visit and flag events of a scored record at
// state time ts and updates the card's merchant memory.
func (t *task) entityEvents(tx *event.Transaction, ts int64, decision string) {
	ep := t.params.entities
	tm := time.UnixMilli(ts).UTC()
	cents := usCents(tx)
	add := func(kind, key string) {
		t.entEvents = append(t.entEvents, event.EntityEvent{Kind: kind, Entity: key, CardID: tx.CardID, AmountCents: cents, Time: tm})
	}
	add(event.EntityVisit, event.EntityMerchant+tx.MerchantID)
	if tx.DeviceID != "" {
		add(event.EntityVisit, event.EntityDevice+tx.DeviceID)
	}
	if tx.IP != "" {
		add(event.EntityVisit, event.EntityIP+tx.IP)
	}
	m := t.mem[tx.CardID]
	if m == nil {
		m = &cardMemory{}
		t.mem[tx.CardID] = m
	}
	last := m.last()
	if decision == event.DecisionDecline && (m.LastFlag == 0 || ts-m.LastFlag >= flagEvery.Milliseconds()) {
		m.recentMerchants(ts, ep.memory, func(merchant string, _ int64) {
			if merchant != tx.MerchantID {
				add(event.EntityFlag, event.EntityMerchant+merchant)
			}
		})
		m.LastFlag = ts
	}
	m.visit(tx.MerchantID, ts)
	t.memExpiry.moved(last, m.last(), tx.CardID)
	if !m.dirty {
		m.dirty = true
		t.memDirty = append(t.memDirty, tx.CardID)
	}
}

// progressThrough is the time through which the partition has written
// every entity event: a later record's state time is above
// watermark − lateness (eventtime.go). ok is false before any record.
func (t *task) progressThrough() (int64, bool) {
	wm := t.gen.Current()
	if wm == watermark.None {
		return 0, false
	}
	return watermark.Sub(wm, watermark.Millis(t.params.lateness)), true
}

// memFloor is the time at or before which merchant memory no longer
// counts when the watermark is wm (lookups use ts − memory, which is
// above it).
func (t *task) memFloor(wm int64) int64 {
	return watermark.Sub(wm, watermark.Millis(t.params.lateness)+watermark.Millis(t.params.entities.memory))
}

// flushEntities evicts expired merchant memories and appends the
// changelog entries of the changed ones to out.
func (t *task) flushEntities(out []*kgo.Record) []*kgo.Record {
	if t.params.entities == nil {
		return out
	}
	wm := t.gen.Current()
	if wm != watermark.None {
		floor := t.memFloor(wm)
		t.memExpiry.expire(floor, func(card string) {
			m, ok := t.mem[card]
			if !ok || m.last() > floor {
				return
			}
			delete(t.mem, card)
			if !m.dirty {
				m.dirty = true
				t.memDirty = append(t.memDirty, card)
			}
		})
	}
	for _, card := range t.memDirty {
		r := &kgo.Record{Topic: event.TopicState, Partition: t.partition, Key: []byte(memKeyPrefix + card)}
		if m, ok := t.mem[card]; ok {
			m.dirty = false
			r.Value, _ = json.Marshal(m) // cannot fail: strings and integers
		}
		out = append(out, r)
	}
	t.memDirty = t.memDirty[:0]
	return out
}

// takeEntityRecords returns the batch's entity-events records: the queued
// visit and flag events, each on its entity's partition, then this
// partition's progress on every partition.
func (t *task) takeEntityRecords() ([]*kgo.Record, error) {
	ep := t.params.entities
	if ep == nil || ep.partitions <= 0 {
		t.entEvents = t.entEvents[:0]
		return nil, nil
	}
	out := make([]*kgo.Record, 0, len(t.entEvents)+int(ep.partitions))
	for _, ev := range t.entEvents {
		v, err := ev.Encode()
		if err != nil {
			return nil, fmt.Errorf("encode entity event: %w", err)
		}
		out = append(out, &kgo.Record{Topic: event.TopicEntityEvents, Partition: entityPartition(ev.Entity, ep.partitions),
			Key: []byte(ev.Entity), Value: v})
	}
	t.entEvents = t.entEvents[:0]
	if through, ok := t.progressThrough(); ok && through > t.progressSent {
		v, err := event.EntityEvent{Kind: event.EntityProgress, Source: t.partition, Sources: ep.sources,
			Time: time.UnixMilli(through).UTC()}.Encode()
		if err != nil {
			return nil, fmt.Errorf("encode progress: %w", err)
		}
		key := []byte(event.ProgressKey(t.partition))
		for q := range ep.partitions {
			out = append(out, &kgo.Record{Topic: event.TopicEntityEvents, Partition: q, Key: key, Value: v})
		}
		t.progressSent = through
	}
	return out, nil
}

// entityPartition is the entity-events partition of an entity key:
// FNV-1a, so every scorer sends an entity's events to one partition.
func entityPartition(key string, n int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int32(h.Sum32() % uint32(n))
}

func isMemKey(key string) bool { return strings.HasPrefix(key, memKeyPrefix) }

// loadMem installs a card's merchant memory from the changelog.
func (t *task) loadMem(key string, value []byte) error {
	card := key[len(memKeyPrefix):]
	if value == nil {
		delete(t.mem, card)
		return nil
	}
	var m cardMemory
	if err := json.Unmarshal(value, &m); err != nil {
		return fmt.Errorf("merchant memory of card %q: %w", card, err)
	}
	t.mem[card] = &m
	return nil
}
