package scorer

import (
	"container/heap"
	"errors"
	"fmt"
	"github.com/fraudstream/fraudstream/internal/platform/configfield"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/pkg/watermark"
	"github.com/fraudstream/fraudstream/pkg/windowing"
	"github.com/fraudstream/fraudstream/services/scorer/model"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

// expiryBucket is the granularity of the eviction index: cards are looked
// at for expiry a bucket at a time once the whole bucket has expired.
const expiryBucket = time.Minute

// taskParams are the settings shared by all tasks of a service.
type taskParams struct {
	review, decline float64
	rules           *ruleBook     // the rule set in force, hot-reloaded (rulebook.go)
	model           *model.Model  // the model, loaded at start
	maxDelay        time.Duration // watermark.Generator's bounded out-of-orderness
	lateness        time.Duration // allowed lateness, watermark.Classify
	lookback        *windowing.Lookback
	// profiles looks card profiles up; nil without Redis (profile.go).
	profiles *profiles
	// entities is the entity stage (entities.go); nil when it is off.
	entities *entityParams
	// now stamps HeaderScoredAt. It never reaches a record value or a
	// feature: those depend only on the partition's records.
	now func() time.Time
}

func newTaskParams(cfg Config, deps Deps, now func() time.Time) (*taskParams, error) {
	lb, err := newLookback(cfg.AllowedLateness)
	if err != nil {
		return nil, fmt.Errorf("scorer look-back: %w", err)
	}
	m, err := loadModel(cfg, deps)
	if err != nil {
		return nil, err
	}
	set, err := initialRules(deps)
	if err != nil {
		return nil, err
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &taskParams{
		review:   cfg.ReviewThreshold,
		decline:  cfg.DeclineThreshold,
		rules:    newRuleBook(set, log, nil),
		model:    m,
		maxDelay: cfg.MaxOutOfOrder,
		lateness: cfg.AllowedLateness,
		lookback: lb,
		now:      now,
	}, nil
}

// loadModel returns Deps.Model, else the model in Config.ModelFile, else
// the built-in default.
func loadModel(cfg Config, deps Deps) (*model.Model, error) {
	switch {
	case deps.Model != nil:
		return deps.Model, nil
	case cfg.ModelFile == "":
		return model.Default()
	}
	f, err := os.Open(cfg.ModelFile)
	if err != nil {
		return nil, &configfield.Error{Service: "scorer", Field: "ModelFile", Err: err}
	}
	defer f.Close()
	m, err := model.Load(f)
	if err != nil {
		return nil, &configfield.Error{Service: "scorer", Field: "ModelFile", Err: fmt.Errorf("%s: %w", cfg.ModelFile, err)}
	}
	return m, nil
}

// initialRules compiles Deps.Rules, else the built-in default set.
func initialRules(deps Deps, opts ...rules.Option) (*rules.Set, error) {
	if deps.Rules == nil {
		return rules.CompileDefault(opts...)
	}
	set, err := rules.Compile(*deps.Rules, opts...)
	if err != nil {
		return nil, fmt.Errorf("scorer initial rule set: %w", err)
	}
	return set, nil
}

// floor is the event time at or before which state no longer counts when
// the watermark is wm: wm − allowed lateness − retention. It is the cutoff
// windowing.Series.Evict(wm) evicts to, so state is looked up only above
// it, and whether an expired entry was already evicted never changes a
// result.
func (p *taskParams) floor(wm int64) int64 {
	return watermark.Sub(wm, watermark.Millis(p.lateness)+watermark.Millis(retention))
}

// memFloor is floor for the long memory (memory.go): wm − allowed lateness
// − memoryRetention.
func (p *taskParams) memFloor(wm int64) int64 {
	return watermark.Sub(wm, watermark.Millis(p.lateness)+watermark.Millis(memoryRetention))
}

// batchCounts tallies what one batch did; the service adds it to the
// metrics only when the batch's transaction commits, so the metrics count
// records that made it into the output exactly once.
type batchCounts struct {
	records    int
	decisions  map[string]int
	dlq        int
	duplicates int
	// Records dead-lettered because their transaction_id was seen with
	// other contents (also counted in dlq).
	idConflicts int
	late        int
	tooLate     int
	changelog   int
	stats       int // fraud-stats records
	// Records scored without a profile, and of those the ones whose
	// profile Redis could not deliver (profile.go).
	profileMissing     int
	profileUnavailable int
	// Records scored with entity_stale, and entity-events records
	// written (entities.go).
	entityStale  int
	entityEvents int
}

func newBatchCounts() batchCounts {
	return batchCounts{decisions: make(map[string]int, 3)}
}

// merge adds o's counts to c.
func (c *batchCounts) merge(o *batchCounts) {
	c.records += o.records
	for d, n := range o.decisions {
		c.decisions[d] += n
	}
	c.dlq += o.dlq
	c.duplicates += o.duplicates
	c.idConflicts += o.idConflicts
	c.late += o.late
	c.tooLate += o.tooLate
	c.changelog += o.changelog
	c.stats += o.stats
	c.profileMissing += o.profileMissing
	c.profileUnavailable += o.profileUnavailable
	c.entityStale += o.entityStale
	c.entityEvents += o.entityEvents
}

// task processes one input partition. It owns that partition's state: the
// per-card states, the transaction_id de-duplication index and the
// partition's watermark generator. The service calls process for each
// record in partition order and flush at the end of each batch, from one
// goroutine.
//
// Determinism: every output value is a function of the partition's record
// order and the state restored from the changelog, never of batch
// boundaries. Eviction runs at batch ends (flush) and when a card is
// touched; both evict only state at or below the floor of the current
// watermark, and every lookup ignores state at or below the floor of the
// watermark before the record, which is never lower. So whether an expired
// entry is still in memory is invisible.
type task struct {
	partition int32
	params    *taskParams

	gen    watermark.Generator
	cards  map[string]*cardState
	seen   map[string]seenAt // transaction_id → de-duplication time and fingerprint
	expiry expiry            // card → bucket of its last time

	dirty     []string // cards to write to the changelog at flush, each once
	metaDirty bool

	stats *statsWindows // fraud-stats windows (stats.go)

	// The entity stage (entities.go): merchant memories, their changelog
	// and eviction, the events queued for entity-events, and the last
	// progress sent.
	mem          map[string]*cardMemory
	memDirty     []string
	memExpiry    expiry
	entEvents    []event.EntityEvent
	progressSent int64
	waitedOut    bool // a join timed out in this batch (entities.go); reset by flush

	restored bool // state read from the changelog; set by the service
	// lastActive is when the batch loop last handed the task records
	// (processing time, for idle firing only: idle.go).
	lastActive time.Time

	scorer scorer // rules and model, with their scratch space

	// Scratch space, so processing does not allocate per record.
	hbuf []time.Duration
	one  outcome        // process's outcome
	out  [1]*kgo.Record // process's result
	aggs []windowing.Agg
}

func newTask(partition int32, params *taskParams) *task {
	return &task{
		partition: partition,
		params:    params,
		gen:       watermark.NewGenerator(params.maxDelay),
		cards:     make(map[string]*cardState),
		seen:      make(map[string]seenAt),
		mem:       make(map[string]*cardMemory),
		stats:     newStatsWindows(partition, params),
		hbuf:      make([]time.Duration, 0, len(horizons)),
		aggs:      make([]windowing.Agg, len(horizons)),
	}
}

// process handles one input record and returns the records to produce in
// the open transaction: a scored record, a dead letter, or nothing for a
// redelivery; the slice is valid until the next call. Everything but the
// HeaderScoredAt header is a function of the records processed so far, so
// a replay produces byte-identical values.
//
// process is decode, score and record; the service's batches run the
// three on different goroutines (loop.go).
func (t *task) process(r *kgo.Record, c *batchCounts) []*kgo.Record {
	t.one.decode(r)
	t.score(&t.one, c)
	out := t.one.record(c)
	if out == nil {
		return nil
	}
	t.out[0] = out
	return t.out[:]
}

// outcome is one input record on its way through process: decoded, then
// scored and not yet encoded, dead-lettered, or dropped as a redelivery.
type outcome struct {
	in      *kgo.Record
	err     error          // from decoding or validation
	scored  event.Scored   // scored.Transaction is set by decode
	fp      uint64         // the transaction's event.Fingerprint, set by decode
	canon   []byte         // scratch space for the canonical encoding
	has     bool           // scored is complete
	dead    *kgo.Record    // the dead letter, if any
	reasons []event.Reason // owns scored.Reasons: the scorer reuses its own
}

// decode is the first, stateless step of process: the record's
// transaction, decoded and validated, or the reason it has none. It
// reuses o's memory.
func (o *outcome) decode(r *kgo.Record) {
	o.in, o.has, o.dead = r, false, nil
	o.scored.Transaction, o.err = event.DecodeTransactionRecord(r.Value)
	if o.err == nil {
		// A zero now skips the future-skew check: ingest checked it
		// against the arrival time, and a replay must not re-judge it.
		o.err = o.scored.Transaction.Validate(time.Time{}, 0)
	}
	if o.err == nil {
		var err error
		o.canon, err = o.scored.Transaction.AppendCanonical(o.canon[:0])
		if err != nil {
			o.err = fmt.Errorf("canonical encoding: %w", err) // unreachable for a valid transaction
			return
		}
		o.fp = event.Fingerprint(o.canon)
	}
}

// errIDReused is the dead-letter reason of a record whose transaction_id
// the partition has seen with other contents.
var errIDReused = errors.New("transaction_id reused with different content")

// score is the stateful step of process, on a decoded outcome: update the
// card's state, compute the features and score, or dead-letter the record
// if it did not decode.
func (t *task) score(o *outcome, c *batchCounts) {
	c.records++
	r, tx := o.in, &o.scored.Transaction
	if o.err != nil {
		c.dlq++
		o.dead = deadLetter(r, o.err)
		return
	}
	et := tx.EventTime.UnixMilli()
	wm := t.gen.Current()
	floor := t.params.floor(wm)
	memFloor := t.params.memFloor(wm)

	// A transaction_id within the horizon is taken: the same contents
	// again are a redelivery (dropped, counted), other contents a
	// different transaction reusing the id, which is dead-lettered, never
	// dropped. An unknown fingerprint (0: restored from a version 2
	// changelog) is taken for a redelivery, as before.
	if prev, ok := t.seen[tx.TransactionID]; ok && prev.at > floor {
		if prev.fp == 0 || prev.fp == o.fp {
			c.duplicates++
			return
		}
		c.dlq++
		c.idConflicts++
		o.dead = deadLetter(r, fmt.Errorf("%w (transaction_id %q, first seen with fingerprint %016x, this record %016x)",
			errIDReused, tx.TransactionID, prev.fp, o.fp))
		return
	}
	// lateness classifies the client's event time (the record's late flag
	// and the stats windows); state and features use ts, the time the
	// server trusts (eventtime.go).
	lateness := watermark.Classify(et, wm, t.params.lateness)
	ts := t.params.stateTime(et, tx.IngestTime, wm)
	cs := t.touch(tx.CardID, wm, floor, memFloor)

	// Features as of ts, over the card's earlier records only.
	var feats event.Features
	if hs, ok := queryHorizons(ts, floor, t.hbuf); ok {
		if err := cs.series.Query(ts, hs, t.aggs); err != nil {
			c.dlq++ // unreachable: the horizons are positive and ascending
			o.dead = deadLetter(r, fmt.Errorf("look-back query: %w", err))
			return
		}
		velocityFeatures(&feats, t.aggs)
	}
	prevFeatures(&feats, cs, tx, ts)
	placeIdx, here := -1, inPerson(tx)
	if here {
		placeIdx, feats.ArrivalKmh = arrival(cs, *tx.Lat, *tx.Lon, ts)
		feats.ImpossibleArrival = feats.ArrivalKmh > impossibleKmh
	}
	cents := usCents(tx)
	keys := keysOf(tx)
	memoryFeatures(&feats, &cs.mem, &keys, ts, memFloor, cents)
	feats.AmountZScore = amountZScore(cs, cents)
	feats.AmountRatio = amountRatio(cs, cents)
	if info, pst := t.params.profiles.lookup(tx.CardID); pst == profileFound {
		profileFeatures(&feats, &info, tx, ts)
	} else {
		feats.ProfileMissing = true
		c.profileMissing++
		if pst == profileUnavailable {
			c.profileUnavailable++
		}
	}
	if t.params.entities != nil {
		t.joinEntities(&feats, tx, ts, c)
	}

	// Update state: ts is never too late (eventtime.go), so every record
	// counts for its card.
	if err := cs.series.Add(lookbackRecord(tx, cents, ts)); err != nil {
		c.dlq++ // unreachable: ts is above the floor
		o.dead = deadLetter(r, fmt.Errorf("look-back add: %w", err))
		return
	}
	if !cs.hasPrev || ts >= cs.prevT {
		cs.hasPrev, cs.prevT = true, ts
		cs.prevHasLoc = tx.Lat != nil && tx.Lon != nil
		if cs.prevHasLoc {
			cs.prevLat, cs.prevLon = *tx.Lat, *tx.Lon
		}
	}
	if here {
		cs.visit(placeIdx, *tx.Lat, *tx.Lon, ts, feats.ArrivalKmh)
	}
	cs.observe(cents)
	cs.mem.remember(&keys, ts, memFloor, cents)
	at := max(ts, wm)
	last := cs.last
	cs.addID(tx.TransactionID, at, o.fp)
	t.seen[tx.TransactionID] = seenAt{at, o.fp}
	t.expiry.moved(last, cs.last, tx.CardID)
	t.markDirty(tx.CardID, cs)
	wmAfter := t.gen.Observe(ts)
	t.metaDirty = true

	set := t.params.rules.current()
	sc, reasons := t.scorer.score(tx, &feats, set, t.params.model)
	o.reasons = append(o.reasons[:0], reasons...)
	decision := decide(sc, t.params.review, t.params.decline)
	if t.params.entities != nil {
		t.entityEvents(tx, ts, decision)
	}
	tx.Schema = event.SchemaTransaction
	o.has = true
	o.scored.Features = feats
	o.scored.Score = sc
	o.scored.Decision = decision
	o.scored.Reasons = o.reasons
	o.scored.RuleSetVersion = set.Version()
	o.scored.ModelVersion = t.params.model.Version()
	o.scored.Late = lateness == watermark.TooLate
	o.scored.Watermark = time.UnixMilli(wmAfter).UTC()
	o.scored.Partition = r.Partition
	o.scored.Offset = r.Offset
	o.scored.ScoredAt = t.params.now().UTC()
	switch lateness {
	case watermark.Late:
		c.late++
	case watermark.TooLate:
		c.tooLate++
	}
	latency := int64(-1)
	if !tx.IngestTime.IsZero() {
		latency = max(o.scored.ScoredAt.Sub(tx.IngestTime).Milliseconds(), 0)
	}
	t.stats.add(et, wm, lateness, decision, tx.AmountMinor, latency)
	if wmAfter > wm {
		t.stats.advance(wmAfter)
	}
}

// record is the stateless half of process: the record to produce for the
// outcome, nil for a duplicate. It only reads o, so it may run on another
// goroutine than score, as long as the two do not share o.
func (o *outcome) record(c *batchCounts) *kgo.Record {
	if o.dead != nil {
		return o.dead
	}
	if !o.has {
		return nil
	}
	s, r := &o.scored, o.in
	// One allocation holds the output record and its header, one the
	// value, the key (unless the input's key is the card id already, as
	// ingest writes it) and the header's value.
	buf := make([]byte, 0, s.SizeHint()+len(s.Transaction.CardID)+len(time.RFC3339Nano))
	buf, err := s.AppendEncode(buf)
	if err != nil {
		// Only a non-finite number fails to encode: a scorer bug. Dead
		// letter the input rather than stall the partition on it. (The
		// fraud-stats windows have counted it as scored already.)
		c.dlq++
		return deadLetter(r, fmt.Errorf("encode scored record: %w", err))
	}
	c.decisions[s.Decision]++

	value := buf[:len(buf):len(buf)]
	key := r.Key
	if string(key) != s.Transaction.CardID {
		buf = append(buf, s.Transaction.CardID...)
		key = buf[len(value):len(buf):len(buf)]
	}
	n := len(buf)
	buf = s.ScoredAt.AppendFormat(buf, time.RFC3339Nano)
	out := new(outRecord)
	out.hdr[0] = kgo.RecordHeader{Key: event.HeaderScoredAt, Value: buf[n:]}
	out.rec = kgo.Record{
		Topic:     event.TopicScored,
		Partition: r.Partition, // co-partitioned: scored partition p holds input partition p
		Key:       key,
		Value:     value,
		Headers:   out.hdr[:],
	}
	return &out.rec
}

// outRecord is a scored record with its one header.
type outRecord struct {
	rec kgo.Record
	hdr [1]kgo.RecordHeader
}

// markDirty puts card on the list of cards for the next changelog, once:
// a flag on its state rather than a set, as every record marks its card.
// A deleted card's state is no longer in t.cards, so its flag is never
// cleared; flush writes its tombstone.
func (t *task) markDirty(card string, cs *cardState) {
	if !cs.dirty {
		cs.dirty = true
		t.dirty = append(t.dirty, card)
	}
}

// touch returns the card's state, evicted to floor (its long memory to
// memFloor), creating it if needed. A card whose everything has expired
// starts afresh, exactly as if flush had already deleted it; a card whose
// look-back state has expired keeps its long memory.
func (t *task) touch(card string, wm, floor, memFloor int64) *cardState {
	cs, ok := t.cards[card]
	if !ok {
		cs = newCardState(t.params.lookback)
		t.cards[card] = cs
	} else if cs.expiresAt() <= floor {
		t.forgetIDs(cs, floor)
		cs.reset()
	} else if cs.last <= floor {
		t.forgetIDs(cs, floor)
		cs.resetShort()
	}
	cs.series.Evict(wm)
	cs.prunePlaces(memFloor)
	cs.mem.prune(memFloor)
	t.forgetIDs(cs, floor)
	return cs
}

// forgetIDs drops the card's ids at or below floor from it and from the
// de-duplication index (unless the index entry is newer: the same id
// may have come back, on any card, after it expired).
func (t *task) forgetIDs(cs *cardState, floor int64) {
	cs.pruneIDs(floor, func(x seenID) {
		if s, ok := t.seen[x.id]; ok && s.at <= floor {
			delete(t.seen, x.id)
		}
	})
}

// changelogSlack is what a card's changelog value is assumed to grow by
// since its last one: a few look-back records and ids.
const changelogSlack = 128

// flush evicts the cards whose state has wholly expired and returns the
// changelog records of the batch: the state of every card changed since
// the last flush (a tombstone for a deleted card), the partition
// metadata and the stats windows changed (stats.go), all on scorer-state
// partition p. The batch's fraud-stats records come from t.stats.take.
func (t *task) flush() []*kgo.Record {
	t.waitedOut = false
	wm := t.gen.Current()
	floor := t.params.floor(wm)
	t.expiry.expire(floor, func(card string) {
		cs, ok := t.cards[card]
		if !ok || cs.last > floor {
			return // gone already, or it holds newer state
		}
		t.forgetIDs(cs, floor)
		if cs.expiresAt() > floor {
			// Its look-back state has expired, its long memory lives on:
			// drop the former (as touch would) and file the card again
			// for when the latter expires, which is in a later bucket.
			if cs.hasPrev || cs.series.Len() > 0 {
				cs.resetShort()
				t.markDirty(card, cs)
			}
			t.expiry.add(cs.expiresAt(), card)
			return
		}
		delete(t.cards, card)
		t.markDirty(card, cs)
	})
	if len(t.dirty) == 0 && !t.metaDirty && len(t.stats.dirty) == 0 {
		return t.flushEntities(nil)
	}
	keys := t.dirty
	slices.Sort(keys) // a deterministic changelog is easier to inspect
	// The batch's entries share one record array, one key buffer and one
	// value buffer, each sized from the cards' previous entries: a batch
	// touches thousands of cards, and allocating (and growing) a value per
	// card was most of the changelog's cost.
	size, ksize := 0, 0
	for _, k := range keys {
		ksize += len(k)
		if cs, ok := t.cards[k]; ok {
			size += cs.encSize + changelogSlack
		}
	}
	kbuf, vbuf := make([]byte, 0, ksize), make([]byte, 0, size)
	recs := make([]kgo.Record, len(keys))
	out := make([]*kgo.Record, 0, len(keys)+1)
	for i, k := range keys {
		r := &recs[i]
		kbuf = append(kbuf, k...)
		*r = kgo.Record{Topic: event.TopicState, Partition: t.partition, Key: kbuf[len(kbuf)-len(k):]}
		if cs, ok := t.cards[k]; ok {
			cs.dirty = false
			// Encoding cannot fail: the series encoder never errors. A
			// value outgrowing the buffer moves the rest to a new one;
			// the values before keep the old one.
			start := len(vbuf)
			vbuf, _ = cs.appendBinary(vbuf)
			r.Value = vbuf[start:len(vbuf):len(vbuf)]
			cs.encSize = len(r.Value)
		}
		out = append(out, r)
	}
	t.dirty = t.dirty[:0]
	if t.metaDirty {
		out = append(out, &kgo.Record{Topic: event.TopicState, Partition: t.partition,
			Key: []byte(metaKey), Value: appendMeta(nil, t.gen.MaxSeen())})
		t.metaDirty = false
	}
	return t.flushEntities(t.stats.changelog(out))
}

// load installs one changelog entry during a restore: a card's state, a
// tombstone, or the partition metadata. Later entries of a key replace
// earlier ones.
func (t *task) load(key string, value []byte) error {
	if key == metaKey {
		maxSeen, err := decodeMeta(value)
		if err != nil {
			return err
		}
		t.gen.Restore(maxSeen)
		return nil
	}
	if isStatsKey(key) {
		return t.stats.load(key, value)
	}
	if isMemKey(key) {
		return t.loadMem(key, value)
	}
	if value == nil {
		delete(t.cards, key)
		return nil
	}
	cs, err := decodeCardState(t.params.lookback, value)
	if err != nil {
		return fmt.Errorf("card %q: %w", key, err)
	}
	t.cards[key] = cs
	return nil
}

// rebuildIndexes derives the de-duplication and eviction indexes from the
// loaded cards, at the end of a restore. An id held by two cards (it came
// back after expiring) keeps its newest time, as it had before the crash.
func (t *task) rebuildIndexes() {
	n := 0
	for _, cs := range t.cards {
		n += len(cs.ids)
	}
	t.seen = make(map[string]seenAt, n) // sized once: growing it is most of a big restore
	t.expiry = expiry{}
	for card, cs := range t.cards {
		for _, x := range cs.ids {
			if s, ok := t.seen[x.id]; !ok || x.at > s.at {
				t.seen[x.id] = seenAt{x.at, x.fp}
			}
		}
		t.expiry.add(cs.last, card)
	}
	t.stats.rebuild(t.gen.Current())
	t.memExpiry = expiry{}
	for card, m := range t.mem {
		t.memExpiry.add(m.last(), card)
	}
}

// deadLetter wraps an input record that cannot be scored for the DLQ
// topic: same key, value and headers, plus the reason, on the input's
// partition number.
func deadLetter(r *kgo.Record, err error) *kgo.Record {
	headers := append(slices.Clone(r.Headers), kgo.RecordHeader{Key: event.HeaderError, Value: []byte(err.Error())})
	return &kgo.Record{
		Topic:     event.TopicDLQ,
		Partition: r.Partition,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   headers,
	}
}

// expiry remembers which keys got state in which event-time bucket, so
// eviction visits only the keys that may hold expired state instead of
// scanning every card of the partition.
type expiry struct {
	buckets map[int64][]string
	order   bucketHeap // bucket numbers present in buckets, oldest first
}

func (e *expiry) add(t int64, key string) {
	b := windowing.BucketIndex(t, expiryBucket.Milliseconds())
	keys, ok := e.buckets[b]
	if !ok {
		if e.buckets == nil {
			e.buckets = make(map[int64][]string)
		}
		heap.Push(&e.order, b)
	}
	if n := len(keys); n > 0 && keys[n-1] == key {
		return // a burst of one card lands in one bucket once
	}
	e.buckets[b] = append(keys, key)
}

// moved tells e that key's latest time went from from to to: the key is
// filed under to's bucket unless it is there already. Filing each key
// under the bucket of its latest time is enough for eviction, and a card
// paying every few seconds is filed once a bucket, not once a record.
func (e *expiry) moved(from, to int64, key string) {
	w := expiryBucket.Milliseconds()
	if to > from && windowing.BucketIndex(to, w) != windowing.BucketIndex(from, w) {
		e.add(to, key)
	}
}

// expire calls evict for each key of every bucket lying wholly at or
// before cutoff, and forgets those buckets. evict must check the key's
// state itself: a key can also hold newer state from a later bucket.
func (e *expiry) expire(cutoff int64, evict func(key string)) {
	w := expiryBucket.Milliseconds()
	for len(e.order) > 0 {
		b := e.order[0]
		if (b+1)*w-1 > cutoff {
			return
		}
		heap.Pop(&e.order)
		for _, k := range e.buckets[b] {
			evict(k)
		}
		delete(e.buckets, b)
	}
}

type bucketHeap []int64

func (h bucketHeap) Len() int           { return len(h) }
func (h bucketHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h bucketHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *bucketHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *bucketHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
