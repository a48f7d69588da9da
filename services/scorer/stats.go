package scorer

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/pkg/watermark"
	"github.com/fraudstream/fraudstream/pkg/windowing"
)

// Stats windows: every task keeps 1-minute event-time tumbling windows over
// the records it scores (pkg/windowing, one key per partition) and writes
// them to fraud-stats partition p, keyed by event.Stats.Key, in the same
// Kafka transaction as the scored records of the batch.
//
// What a window counts:
//   - Count, Approved/Review/Declined, AmountMinor and the latency summary
//     cover the records of the window that updated state: on time or late
//     (within the allowed lateness). Late counts the late ones among them.
//   - TooLate counts records whose event time was too late (they count in
//     their card's state at the oldest open time instead, eventtime.go).
//     Such a record is attributed to the window its event time belongs to if that
//     window is still open (the watermark has not passed its end by the
//     allowed lateness yet), else to the window holding the watermark at
//     its arrival (the oldest window still being filled). It is counted in
//     TooLate only, never in Count, decisions or amounts: those stay the
//     exact event-time aggregates of the records admitted to the window.
//
// Firing: the windows advance with the partition watermark, after each
// record that raises it. A window fires (revision 1) once the watermark
// passes its end; records added to it later (late records, too-late
// attributions) re-fire it with the next revision at the next watermark
// advance; when the watermark passes its end by the allowed lateness it
// fires a last time with Final true and is dropped. A window that would
// fire and be dropped in one advance fires only as Final. Revisions
// increase by one per emission, so a reader keeps the highest one.
//
// Determinism: firing depends only on the partition's record order, never
// on batch boundaries (the windows advance per record, not per batch), and
// the open windows are in the scorer-state changelog, so a replay after a
// crash emits the same records with the same revisions. Except the latency
// fields: they measure ingest_time → scoring wall-clock time, which a
// replay measures again; and idle firing (idle.go): a partition without
// records for the idle timeout reports its open windows, which adds
// revisions at moments of processing time. Everything else in a stats
// record is a deterministic function of the partition's records, and
// scored records never depend on either.
//
// Durability: each open window is a changelog entry under the reserved key
// statsKeyPrefix + its start (a NUL-prefixed key, like metaKey), written at
// the end of every batch that changed it and tombstoned when it is dropped.
const (
	statsWindowSize   = time.Minute
	statsStateVersion = 1
	statsKeyPrefix    = "\x00stats/"
)

// Latency histogram: log-linear buckets in milliseconds, exact below
// latExact, then latSub buckets per power of two (at most 1/latSub, ~6%,
// relative error), values capped at 2^latMaxExp ms (~2 years).
const (
	latExact   = 32
	latSubBits = 4
	latSub     = 1 << latSubBits
	latMaxExp  = 36
	latBuckets = latExact + (latMaxExp-5)*latSub
)

// Decisions as indexes of statsAcc.decisions.
const (
	decApprove = iota
	decReview
	decDecline
)

func decisionIndex(d string) int {
	switch d {
	case event.DecisionDecline:
		return decDecline
	case event.DecisionReview:
		return decReview
	}
	return decApprove
}

// statsIn is what one record (or a restore) adds to a window.
type statsIn struct {
	start   int64     // the window's start, Unix ms
	restore *statsAcc // a whole restored window instead of a record
	mark    bool      // no contribution: re-mark a restored window as changed
	tooLate bool      // only count TooLate
	late    bool
	dec     int
	amount  int64
	latency int64 // ms; negative when the record has no ingest_time
}

// statsAcc is one window's accumulator. It is a pointer so pkg/windowing
// and the task share it, and the task can keep revisions in it.
type statsAcc struct {
	start    int64
	revision int32
	pending  bool // changed since it was last emitted

	decisions [3]int64
	late      int64
	tooLate   int64
	amount    int64

	latN   int64
	latMax int64
	lat    [latBuckets]uint32
}

// statsAgg is the windowing.Aggregator of the stats windows. It registers
// every new accumulator with its statsWindows, which must see them all to
// drop them and to write them to the changelog.
type statsAgg struct{ s *statsWindows }

func (a statsAgg) Add(acc *statsAcc, in statsIn) *statsAcc {
	if in.restore != nil {
		a.s.register(in.restore)
		return in.restore
	}
	if acc == nil {
		acc = &statsAcc{start: in.start}
		a.s.register(acc)
	}
	if in.mark {
		return acc // restore already knows it is pending
	}
	acc.pending = true
	a.s.dirty[acc.start] = struct{}{}
	if in.tooLate {
		acc.tooLate++
		return acc
	}
	acc.decisions[in.dec]++
	acc.amount += in.amount
	if in.late {
		acc.late++
	}
	if in.latency >= 0 {
		acc.latN++
		acc.latMax = max(acc.latMax, in.latency)
		acc.lat[latBucket(in.latency)]++
	}
	return acc
}

// Merge is never called for tumbling windows; it is here for the interface.
func (statsAgg) Merge(a, b *statsAcc) *statsAcc {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	for i := range a.decisions {
		a.decisions[i] += b.decisions[i]
	}
	a.late += b.late
	a.tooLate += b.tooLate
	a.amount += b.amount
	a.latN += b.latN
	a.latMax = max(a.latMax, b.latMax)
	for i := range a.lat {
		a.lat[i] += b.lat[i]
	}
	return a
}

func (statsAgg) Result(acc *statsAcc) *statsAcc { return acc }

func latBucket(ms int64) int {
	if ms < latExact {
		return int(max(ms, 0))
	}
	e := bits.Len64(uint64(ms)) - 1 // ≥ 5
	if e >= latMaxExp {
		return latBuckets - 1
	}
	sub := int(ms>>(e-latSubBits)) & (latSub - 1)
	return latExact + (e-5)*latSub + sub
}

// latBucketMid is a representative value of bucket i: the value itself
// below latExact, the middle of the bucket above.
func latBucketMid(i int) float64 {
	if i < latExact {
		return float64(i)
	}
	e := (i-latExact)/latSub + 5
	sub := (i - latExact) % latSub
	lo := float64(int64(1)<<e) + float64(sub)*float64(int64(1)<<(e-latSubBits))
	return lo + float64(int64(1)<<(e-latSubBits))/2
}

// quantile returns the q-quantile of the latencies, at most latMax.
func (acc *statsAcc) quantile(q float64) float64 {
	if acc.latN == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(acc.latN)))
	rank = min(max(rank, 1), acc.latN)
	var n int64
	for i, c := range acc.lat {
		n += int64(c)
		if n >= rank {
			return min(latBucketMid(i), float64(acc.latMax))
		}
	}
	return float64(acc.latMax)
}

func (acc *statsAcc) window() windowing.Window {
	return windowing.Window{Start: acc.start, End: acc.start + statsWindowSize.Milliseconds()}
}

// statsWindows is a task's stats windows and the fraud-stats records and
// changelog entries they produced since the last batch end.
type statsWindows struct {
	partition int32
	lateness  int64 // ms
	assigner  windowing.Tumbling
	win       *windowing.Windows[struct{}, statsIn, *statsAcc, *statsAcc]

	open   map[int64]*statsAcc // by start: every window pkg/windowing holds
	starts []int64             // the keys of open, ascending

	fired    []windowing.Fired[struct{}, *statsAcc]
	out      []*kgo.Record      // fraud-stats records of the open batch
	dirty    map[int64]struct{} // windows to write to the changelog
	restored []*statsAcc        // loaded from the changelog, see rebuild
	scratch  []windowing.Window
}

func newStatsWindows(partition int32, p *taskParams) *statsWindows {
	tumbling, _ := windowing.NewTumbling(statsWindowSize) // cannot fail: the size is positive
	s := &statsWindows{
		partition: partition,
		lateness:  p.lateness.Milliseconds(),
		assigner:  tumbling,
		open:      make(map[int64]*statsAcc),
		dirty:     make(map[int64]struct{}),
	}
	s.win = windowing.NewWindows[struct{}](s.assigner, windowing.Aggregator[statsIn, *statsAcc, *statsAcc](statsAgg{s}),
		windowing.WithAllowedLateness(p.lateness))
	return s
}

func (s *statsWindows) register(acc *statsAcc) {
	if _, ok := s.open[acc.start]; ok {
		return
	}
	s.open[acc.start] = acc
	i, _ := slices.BinarySearch(s.starts, acc.start)
	s.starts = slices.Insert(s.starts, i, acc.start)
	s.dirty[acc.start] = struct{}{}
}

func (s *statsWindows) startOf(t int64) int64 {
	s.scratch = s.assigner.AppendWindows(s.scratch[:0], t)
	return s.scratch[0].Start
}

// add adds one scored record with event time et, classified as lateness
// against watermark wm (the watermark before the record; the windows are
// at wm too).
func (s *statsWindows) add(et, wm int64, lateness watermark.Lateness, decision string, amount, latencyMs int64) {
	in := statsIn{late: lateness == watermark.Late, dec: decisionIndex(decision), amount: amount, latency: latencyMs}
	if lateness != watermark.TooLate {
		in.start = s.startOf(et)
		_ = s.win.Add(struct{}{}, et, in) // cannot fail: et is not too late at wm
		return
	}
	// Too late: its own window if still open (then its last instant is
	// not too late either), else the window holding the watermark.
	in = statsIn{tooLate: true}
	in.start = s.startOf(et)
	if s.win.Add(struct{}{}, in.start+statsWindowSize.Milliseconds()-1, in) == nil {
		return
	}
	in.start = s.startOf(wm)
	_ = s.win.Add(struct{}{}, wm, in) // wm > wm − lateness: never too late
}

// advance moves the windows to the watermark wm and queues what fires.
func (s *statsWindows) advance(wm int64) {
	s.fired = s.win.Advance(wm, s.fired[:0])
	for _, f := range s.fired {
		if !s.expired(f.Value, wm) {
			s.emit(f.Value, false, wm)
		}
	}
	for len(s.starts) > 0 {
		acc := s.open[s.starts[0]]
		if !s.expired(acc, wm) {
			break
		}
		s.emit(acc, true, wm)
		delete(s.open, acc.start)
		s.starts = s.starts[1:]
		s.dirty[acc.start] = struct{}{}
	}
	clear(s.fired) // do not keep dropped windows alive
}

// expired reports whether pkg/windowing drops acc's window at wm: the
// watermark passed its end by the allowed lateness.
func (s *statsWindows) expired(acc *statsAcc, wm int64) bool {
	return acc.window().MaxTime() <= watermark.Sub(wm, s.lateness)
}

func (s *statsWindows) emit(acc *statsAcc, final bool, wm int64) {
	acc.revision++
	acc.pending = false
	s.dirty[acc.start] = struct{}{}
	w := acc.window()
	st := event.Stats{
		Partition:   s.partition,
		WindowStart: time.UnixMilli(w.Start).UTC(),
		WindowEnd:   time.UnixMilli(w.End).UTC(),
		Revision:    acc.revision,
		Final:       final,
		Watermark:   time.UnixMilli(wm).UTC(),
		Count:       acc.decisions[decApprove] + acc.decisions[decReview] + acc.decisions[decDecline],
		Approved:    acc.decisions[decApprove],
		Review:      acc.decisions[decReview],
		Declined:    acc.decisions[decDecline],
		Late:        acc.late,
		TooLate:     acc.tooLate,
		AmountMinor: acc.amount,
	}
	if acc.latN > 0 {
		st.LatencyP50Ms = acc.quantile(0.50)
		st.LatencyP99Ms = acc.quantile(0.99)
		st.LatencyMaxMs = float64(acc.latMax)
	}
	// Encoding cannot fail: every number is finite.
	value, _ := st.Encode()
	s.out = append(s.out, &kgo.Record{Topic: event.TopicStats, Partition: s.partition, Key: st.Key(), Value: value})
}

// hasPending reports whether an open window holds records not yet reported.
func (s *statsWindows) hasPending() bool {
	for _, acc := range s.open {
		if acc.pending {
			return true
		}
	}
	return false
}

// fireIdle emits every open window holding records not yet reported, not
// final, at watermark wm, keeping it open (idle.go).
func (s *statsWindows) fireIdle(wm int64) {
	for _, st := range s.starts {
		if acc := s.open[st]; acc.pending {
			s.emit(acc, false, wm)
		}
	}
}

// take returns the fraud-stats records queued since the last call.
func (s *statsWindows) take() []*kgo.Record {
	out := s.out
	s.out = nil
	return out
}

// changelog appends the changelog entries of the windows changed since the
// last call, in start order: the window, or a tombstone for a dropped one.
func (s *statsWindows) changelog(out []*kgo.Record) []*kgo.Record {
	if len(s.dirty) == 0 {
		return out
	}
	starts := make([]int64, 0, len(s.dirty))
	for st := range s.dirty {
		starts = append(starts, st)
	}
	slices.Sort(starts)
	for _, st := range starts {
		r := &kgo.Record{Topic: event.TopicState, Partition: s.partition, Key: []byte(statsKey(st))}
		if acc, ok := s.open[st]; ok {
			r.Value = acc.appendBinary(nil)
		}
		out = append(out, r)
	}
	clear(s.dirty)
	return out
}

func statsKey(start int64) string { return statsKeyPrefix + strconv.FormatInt(start, 10) }

func isStatsKey(key string) bool { return strings.HasPrefix(key, statsKeyPrefix) }

// load keeps a changelog entry of an open window for rebuild.
func (s *statsWindows) load(key string, value []byte) error {
	if value == nil {
		return nil // a dropped window
	}
	acc, err := decodeStatsAcc(value)
	if err != nil {
		return fmt.Errorf("stats window %q: %w", key[len(statsKeyPrefix):], err)
	}
	s.restored = append(s.restored, acc)
	return nil
}

// rebuild installs the loaded windows into pkg/windowing at watermark wm,
// reproducing the state at the last commit: every window whose end the
// watermark passed is fired, and one changed since its last emission
// (a late record, or a window created behind the watermark) will fire at
// the next advance.
func (s *statsWindows) rebuild(wm int64) {
	slices.SortFunc(s.restored, func(a, b *statsAcc) int { return int(min(max(a.start-b.start, -1), 1)) })
	for _, acc := range s.restored {
		_ = s.win.Add(struct{}{}, acc.start, statsIn{start: acc.start, restore: acc})
	}
	s.fired = s.win.Advance(wm, s.fired[:0]) // fired before the crash
	clear(s.fired)
	for _, acc := range s.restored {
		if acc.pending && acc.window().MaxTime() <= wm && !s.expired(acc, wm) {
			_ = s.win.Add(struct{}{}, acc.window().MaxTime(), statsIn{start: acc.start, mark: true})
		}
	}
	s.restored = nil
	clear(s.dirty) // the changelog already holds exactly these
}

// appendBinary appends the changelog value of a window.
//
// Format (version 1): the version byte; start as a zig-zag varint; the
// revision as a uvarint; a flags byte (bit 0: pending); the approve, review
// and decline counts, late, too-late, amount, latency count and latency
// maximum as zig-zag varints; the number of non-empty latency buckets as a
// uvarint and per bucket its index delta to the previous one and its count
// as uvarints.
func (acc *statsAcc) appendBinary(b []byte) []byte {
	b = append(b, statsStateVersion)
	b = binary.AppendVarint(b, acc.start)
	b = binary.AppendUvarint(b, uint64(acc.revision))
	var flags byte
	if acc.pending {
		flags |= 1
	}
	b = append(b, flags)
	for _, v := range [...]int64{acc.decisions[0], acc.decisions[1], acc.decisions[2], acc.late, acc.tooLate,
		acc.amount, acc.latN, acc.latMax} {
		b = binary.AppendVarint(b, v)
	}
	n := 0
	for _, c := range acc.lat {
		if c != 0 {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	prev := 0
	for i, c := range acc.lat {
		if c != 0 {
			b = binary.AppendUvarint(b, uint64(i-prev))
			b = binary.AppendUvarint(b, uint64(c))
			prev = i
		}
	}
	return b
}

func decodeStatsAcc(data []byte) (*statsAcc, error) {
	d := decoder{p: data}
	if v := d.byte(); v != statsStateVersion {
		return nil, fmt.Errorf("%w: stats window version %d, want %d", errStateFormat, v, statsStateVersion)
	}
	acc := &statsAcc{start: d.varint()}
	rev := d.uvarint()
	if rev > math.MaxInt32 && d.err == nil {
		d.err = fmt.Errorf("%w: stats window revision %d", errStateFormat, rev)
	}
	acc.revision = int32(rev)
	flags := d.byte()
	if flags&^1 != 0 && d.err == nil {
		d.err = fmt.Errorf("%w: stats window flags %#x", errStateFormat, flags)
	}
	acc.pending = flags&1 != 0
	for _, p := range [...]*int64{&acc.decisions[0], &acc.decisions[1], &acc.decisions[2], &acc.late, &acc.tooLate,
		&acc.amount, &acc.latN, &acc.latMax} {
		*p = d.varint()
	}
	n := d.uvarint()
	i := 0
	for k := uint64(0); k < n && d.err == nil; k++ {
		i += int(min(d.uvarint(), latBuckets))
		c := d.uvarint()
		if i >= latBuckets || c > math.MaxUint32 {
			d.err = fmt.Errorf("%w: stats latency bucket %d count %d", errStateFormat, i, c)
			break
		}
		acc.lat[i] = uint32(c)
	}
	if d.err == nil && len(d.p) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes in a stats window", errStateFormat, len(d.p))
	}
	if d.err != nil {
		return nil, d.err
	}
	return acc, nil
}
