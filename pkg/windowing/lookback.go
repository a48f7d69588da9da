package windowing

import (
	"errors"
	"fmt"
	"math/bits"
	"time"
)

// The accumulator code below is unrolled for these values; the
// compile-time checks break the build if they change.
var (
	_ = [1]struct{}{}[NumFlags-4]
	_ = [1]struct{}{}[DistinctDims-2]
)

const (
	// DistinctDims is the number of independent distinct-count dimensions a
	// record carries (the scorer uses merchant and country).
	DistinctDims = 2
	// NumFlags is the number of flag bits counted per record (the scorer
	// uses one for "small amount").
	NumFlags = 4
	// DistinctCap is how many different values per dimension one key can
	// hold at once. Beyond it, new values are not tracked: queries that
	// cover them report Saturated and a Distinct that is a lower bound.
	DistinctCap = 64

	// MinTime and MaxTime bound the event times a Series accepts (about
	// ±146 million years in milliseconds), so bucket arithmetic cannot overflow.
	MinTime int64 = -1 << 62
	MaxTime int64 = 1 << 62
)

var (
	// ErrTooLate is returned by Series.Add for a record at or below the
	// eviction cutoff: state it would belong to may already be gone.
	ErrTooLate = errors.New("windowing: record too late")
	// ErrTimeRange is returned for an event time outside [MinTime, MaxTime].
	ErrTimeRange = errors.New("windowing: event time out of range")
	// ErrHorizons is returned by Query for horizons that are not positive and
	// ascending, or an out slice shorter than the horizons.
	ErrHorizons = errors.New("windowing: horizons must be positive and ascending, out as long as horizons")
	// ErrConfig is returned by constructors for invalid options.
	ErrConfig = errors.New("windowing: invalid configuration")
	// ErrFormat is returned by UnmarshalBinary for bytes it cannot decode.
	ErrFormat = errors.New("windowing: bad encoding")
)

// Record is one event of a key as the look-back sees it.
type Record struct {
	Time  int64 // event time, Unix milliseconds
	Value int64 // summed; min and max are kept (e.g. amount in minor units)
	// Flags bit i (i < NumFlags) counts the record in Agg.Flagged[i]; higher
	// bits are ignored.
	Flags uint8
	// Distinct holds one value per dimension to count distinct values of,
	// typically a hash (see Hash). 0 means "no value" and is not counted.
	Distinct [DistinctDims]uint64
}

// Agg is the aggregate of a key's records over one horizon (t−d, t].
type Agg struct {
	Count    int64
	Sum      int64
	Min, Max int64 // 0 when Count is 0
	Flagged  [NumFlags]int64
	// Distinct is the number of different non-zero values per dimension.
	Distinct [DistinctDims]int
	// Saturated says that records in the horizon carried values the key
	// could not track (more than DistinctCap live at once); Distinct is then
	// a lower bound.
	Saturated [DistinctDims]bool
}

// LookbackOption configures a Lookback.
type LookbackOption func(*Lookback)

// WithRetention sets the longest horizon that queries need. Records older
// than watermark − allowed lateness − retention are evicted.
//
// Default: 24h.
func WithRetention(d time.Duration) LookbackOption {
	return func(l *Lookback) { l.retention = millis(d) }
}

// WithLookbackLateness sets the allowed lateness of the stream, so that a
// late record's queries still see everything they need.
//
// Default: 0.
func WithLookbackLateness(d time.Duration) LookbackOption {
	return func(l *Lookback) { l.lateness = millis(d) }
}

// WithLevels sets the bucket widths, finest first; each must be a multiple
// of the one before. A query at a time before the newest record walks the
// coarsest buckets that fit inside its horizon, finer ones near the edges,
// and single records in the finest edge buckets, so results are exact at
// millisecond resolution. (Queries at or after the newest record do not use
// buckets.)
//
// Default: 1m, 10m, 1h.
func WithLevels(widths ...time.Duration) LookbackOption {
	return func(l *Lookback) {
		l.widths = l.widths[:0]
		for _, w := range widths {
			l.widths = append(l.widths, millis(w))
		}
	}
}

// Lookback is the configuration shared by the per-key Series of one
// look-back aggregate. It is immutable and safe for concurrent use.
type Lookback struct {
	retention int64
	lateness  int64
	widths    []int64
}

// NewLookback validates the options and returns the shared configuration.
func NewLookback(opts ...LookbackOption) (*Lookback, error) {
	l := &Lookback{retention: millis(24 * time.Hour), widths: []int64{60_000, 600_000, 3_600_000}}
	for _, o := range opts {
		o(l)
	}
	if l.retention <= 0 || l.lateness < 0 || l.retention > 1<<50 || l.lateness > 1<<50 || len(l.widths) == 0 || len(l.widths) > 8 {
		return nil, fmt.Errorf("%w: retention %dms, lateness %dms, %d levels", ErrConfig, l.retention, l.lateness, len(l.widths))
	}
	for i, w := range l.widths {
		if w <= 0 || w > 1<<40 || i > 0 && w%l.widths[i-1] != 0 {
			return nil, fmt.Errorf("%w: level widths %v ms must be positive multiples of each other", ErrConfig, l.widths)
		}
	}
	return l, nil
}

// NewSeries returns the empty state of one key.
func (l *Lookback) NewSeries() *Series {
	s := &Series{lb: l, cutoff: MinTime - 1, levels: make([]level, len(l.widths))}
	s.lastOver = [DistinctDims]int64{MinTime - 1, MinTime - 1}
	for i, w := range l.widths {
		s.levels[i].width = w
	}
	return s
}

func millis(d time.Duration) int64 { return int64(d / time.Millisecond) }

// rec is a stored record; slot[d] is 0 for none, 1+i for dictionary slot i,
// overSlot for a value the dictionary had no room for. cv and cf are the
// sum of the values and the packed flag counts (see flagLanes) of all the
// records before this one since the series was last emptied, modulo 2⁶⁴:
// prefix sums, so that the sum over a suffix is one subtraction.
type rec struct {
	t, v  int64
	cv    int64
	cf    uint64
	slot  [DistinctDims]uint8
	flags uint8
}

// flagLanes spreads the low NumFlags bits of f into 16-bit lanes, so that
// adding the results counts each flag in its own lane. Lane differences
// are exact for ranges of fewer than 1<<16 records.
func flagLanes(f uint8) uint64 {
	return uint64(f&1) | uint64(f>>1&1)<<16 | uint64(f>>2&1)<<32 | uint64(f>>3&1)<<48
}

// maxLaneRange is the longest record range whose flag counts the packed
// prefix sums give exactly; queries over more records take the bucket path.
const maxLaneRange = 1<<16 - 1

// tv is an entry of a monotonic stack: the time and (possibly inverted)
// value of a record.
type tv struct{ t, v int64 }

const overSlot = 0xff

type bucket struct {
	idx      int64
	count    int64
	sum      int64
	min, max int64
	flagged  [NumFlags]int32
	mask     [DistinctDims]uint64
	over     uint8 // bit d: dimension d has an untracked value
}

type level struct {
	width int64
	b     []bucket
	head  int
}

// Series is the look-back state of one key: its retained records in event
// time order, and per level the buckets that summarize them. Memory is
// bounded by the records within retention + lateness of the watermark.
// A Series is not safe for concurrent use.
type Series struct {
	lb     *Lookback
	recs   []rec
	head   int
	levels []level
	dict   [DistinctDims][]uint64 // slot → value; 0 marks a free slot
	cutoff int64                  // records at or below are evicted or refused

	// Suffix structures: exact aggregates of "every retained record with
	// time > lo", which is what a query at t ≥ the newest record needs (the
	// in-order fast path). All are maintained by Add and Evict.
	totV int64  // Σ v of all records since emptied (see rec.cv)
	totF uint64 // Σ flagLanes likewise
	// mins holds the records whose value is below that of every later
	// record (values strictly increase along it); the minimum of the
	// records after lo is the value of its first entry with t > lo. maxs is
	// the same over inverted values (^v), for the maximum.
	mins, maxs stack
	// lastT[d][i] is the latest time a record used slot i+1 of dimension d
	// (≤ cutoff when no retained record does), and orderT[d] the sorted
	// multiset of those times above the cutoff: the number of distinct
	// values after lo is the number of its entries > lo.
	lastT  [DistinctDims][]int64
	orderT [DistinctDims][]int64
	// idx[d] is an open-addressing index of dict[d] (entries are 1-based
	// slots, 0 is empty), allocated once the dictionary has idxMin values.
	idx      [DistinctDims]*slotIndex
	lastOver [DistinctDims]int64 // latest time of an untracked value
	// The positions of the last query's edges of horizon i (< 4) in the
	// records, the stacks and the distinct lists: the next query's edges
	// are usually at or next to them.
	hint [4]hints

	// The buckets are only needed by queries at a time before the newest
	// record (the slow path). They are built on the first such query, kept
	// up to date while such queries keep coming, and dropped after
	// max(Len, bucketIdle) in-order queries without one, so the rebuild is
	// amortized O(1) per query.
	bucketed bool
	fastRun  int // in-order queries since the last slow one
}

// bucketIdle is the least number of in-order queries after which unused
// buckets are dropped (a variable for tests).
var bucketIdle = 256

type hints struct {
	rec, min, max int32
	ord           [DistinctDims]uint8
}

// slotIndex maps dictionary values to slots by open addressing.
type slotIndex [idxSize]uint8

const (
	idxSize = 2 * DistinctCap
	idxMin  = 16
)

func idxHash(v uint64) uint { return uint(v * 0x9e3779b97f4a7c15 >> 57) }

// stack is a monotonic stack of suffix minima (see Series.mins).
type stack struct {
	e    []tv
	head int
}

// Len returns the number of retained records.
func (s *Series) Len() int { return len(s.recs) - s.head }

// Add inserts a record. It returns ErrTooLate if the record is at or below
// the eviction cutoff, and ErrTimeRange for absurd times. Adding the same
// record twice counts it twice: de-duplicate before.
func (s *Series) Add(r Record) error {
	if r.Time < MinTime || r.Time > MaxTime {
		return ErrTimeRange
	}
	if r.Time <= s.cutoff {
		return ErrTooLate
	}
	x := rec{t: r.Time, v: r.Value, flags: r.Flags & (1<<NumFlags - 1)}
	for d, v := range r.Distinct {
		if v != 0 {
			x.slot[d] = s.slotFor(d, v)
		}
	}
	s.insert(x)
	return nil
}

// insert adds a record whose slots are assigned to every structure.
func (s *Series) insert(x rec) {
	fl := flagLanes(x.flags)
	n := len(s.recs)
	if n == s.head || s.recs[n-1].t <= x.t {
		// In order: an append (the common case).
		x.cv, x.cf = s.totV, s.totF
		s.recs = append(s.recs, x)
		s.mins.pushBack(x.t, x.v)
		s.maxs.pushBack(x.t, ^x.v)
	} else {
		// Insert after equal times, and add x to the prefix sums after it.
		i := n
		for i > s.head && s.recs[i-1].t > x.t {
			i--
		}
		x.cv, x.cf = s.recs[i].cv, s.recs[i].cf
		s.recs = append(s.recs, rec{})
		copy(s.recs[i+1:], s.recs[i:])
		s.recs[i] = x
		for j := i + 1; j < len(s.recs); j++ {
			s.recs[j].cv += x.v
			s.recs[j].cf += fl
		}
		s.mins.insert(x.t, x.v)
		s.maxs.insert(x.t, ^x.v)
	}
	s.totV += x.v
	s.totF += fl
	for d, sl := range x.slot {
		switch sl {
		case 0:
		case overSlot:
			s.lastOver[d] = max(s.lastOver[d], x.t)
		default:
			s.touch(d, sl, x.t)
		}
	}
	if s.bucketed {
		for li := range s.levels {
			s.levels[li].add(&x)
		}
	}
}

// setBuckets builds (on) or drops (off) the buckets.
func (s *Series) setBuckets(on bool) {
	for li := range s.levels {
		s.levels[li].b, s.levels[li].head = s.levels[li].b[:0], 0
	}
	s.bucketed, s.fastRun = on, 0
	if !on {
		return
	}
	rs := s.recs[s.head:]
	for li := range s.levels {
		lv := &s.levels[li]
		for i := range rs {
			lv.add(&rs[i])
		}
	}
}

// pushBack adds a record later than (or as late as) every other.
func (st *stack) pushBack(t, v int64) {
	e := st.e
	for len(e) > st.head && e[len(e)-1].v >= v {
		e = e[:len(e)-1]
	}
	st.e = append(e, tv{t, v})
}

// insert adds a record that goes after the records with time ≤ t.
func (st *stack) insert(t, v int64) {
	k := len(st.e)
	for k > st.head && st.e[k-1].t > t {
		k--
	}
	// Entries before k with a value ≥ v stop being suffix minima; x is one
	// if it is below the minimum after it.
	j := k
	for j > st.head && st.e[j-1].v >= v {
		j--
	}
	in := k == len(st.e) || v < st.e[k].v
	switch {
	case in && j == k:
		st.e = append(st.e, tv{})
		copy(st.e[k+1:], st.e[k:])
		st.e[k] = tv{t, v}
	case in:
		st.e[j] = tv{t, v}
		st.e = append(st.e[:j+1], st.e[k:]...)
	default:
		st.e = append(st.e[:j], st.e[k:]...)
	}
}

// evict drops the entries at or below the cutoff c.
func (st *stack) evict(c int64) {
	i := st.head
	for i < len(st.e) && st.e[i].t <= c {
		i++
	}
	st.e, st.head = compact(st.e, i)
}

// touch records that slot sl of dimension d is used at time t > cutoff.
func (s *Series) touch(d int, sl uint8, t int64) {
	lt := &s.lastT[d][sl-1]
	ts := s.orderT[d]
	n := len(ts)
	if old := *lt; old > s.cutoff {
		if old >= t {
			return
		}
		// Replace one entry old by t.
		if ts[n-1] == old {
			ts[n-1] = t // old was the latest, so t is too
			*lt = t
			return
		}
		// Branch-free lower bound of old in ts[:n-1].
		a, k := 0, n-1
		for k > 1 {
			half := k >> 1
			if ts[a+half-1] < old {
				a += half
			}
			k -= half
		}
		if ts[a] < old {
			a++
		}
		if t >= ts[n-1] {
			copy(ts[a:], ts[a+1:])
			ts[n-1] = t
			*lt = t
			return
		}
		copy(ts[a:], ts[a+1:])
		ts = ts[:n-1]
		n--
	}
	*lt = t
	if n == 0 || t >= ts[n-1] {
		s.orderT[d] = append(ts, t)
		return
	}
	i := n
	for i > 0 && ts[i-1] > t {
		i--
	}
	ts = append(ts, t)
	if i < n {
		copy(ts[i+1:], ts[i:])
		ts[i] = t
	}
	s.orderT[d] = ts
}

// slotFor returns the dictionary slot (1-based) of value v in dimension d,
// assigning one if needed.
func (s *Series) slotFor(d int, v uint64) uint8 {
	dict := s.dict[d]
	if tab := s.idx[d]; tab != nil {
		for h := idxHash(v); tab[h] != 0; h = (h + 1) % idxSize {
			if e := tab[h]; dict[e-1] == v {
				return e
			}
		}
	} else {
		for i, x := range dict {
			if x == v {
				return uint8(i + 1)
			}
		}
	}
	free := -1
	for i, x := range dict {
		if x == 0 {
			free = i
			break
		}
	}
	if free < 0 && len(dict) < DistinctCap {
		s.dict[d] = append(dict, v)
		s.lastT[d] = append(s.lastT[d], MinTime-1)
		if s.idx[d] != nil {
			s.idx[d].put(v, uint8(len(dict)+1))
		} else if len(dict)+1 >= idxMin {
			s.reindex(d)
		}
		return uint8(len(dict) + 1)
	}
	if free < 0 && len(dict) < DistinctCap {
		s.dict[d] = append(dict, v)
		return uint8(len(dict) + 1)
	}
	if free < 0 {
		// Full: free the slots no retained record uses any more.
		var live uint64
		for _, r := range s.recs[s.head:] {
			if sl := r.slot[d]; sl != 0 && sl != overSlot {
				live |= 1 << (sl - 1)
			}
		}
		for i := range dict {
			if live&(1<<i) == 0 {
				dict[i] = 0
				if free < 0 {
					free = i
				}
			}
		}
		if free < 0 {
			return overSlot
		}
		s.reindex(d)
	}
	dict[free] = v
	if s.idx[d] != nil {
		s.idx[d].put(v, uint8(free+1))
	}
	return uint8(free + 1)
}

func (tab *slotIndex) put(v uint64, sl uint8) {
	h := idxHash(v)
	for tab[h] != 0 {
		h = (h + 1) % idxSize
	}
	tab[h] = sl
}

// reindex rebuilds the index of dict[d], allocating it if the dictionary
// has grown enough.
func (s *Series) reindex(d int) {
	if s.idx[d] == nil {
		if len(s.dict[d]) < idxMin {
			return
		}
		s.idx[d] = new(slotIndex)
	}
	tab := s.idx[d]
	*tab = slotIndex{}
	for i, v := range s.dict[d] {
		if v != 0 {
			tab.put(v, uint8(i+1))
		}
	}
}

func (lv *level) add(x *rec) {
	if n := len(lv.b); n > lv.head {
		// Nearly always the newest bucket or the next one: no division.
		last := &lv.b[n-1]
		if off := x.t - last.idx*lv.width; off >= 0 {
			if off < lv.width {
				last.addRec(x)
			} else {
				lv.b = append(lv.b, bucket{idx: floorDiv(x.t, lv.width), min: x.v, max: x.v})
				lv.b[n].addRec(x)
			}
			return
		}
	}
	idx := floorDiv(x.t, lv.width)
	i := len(lv.b)
	for i > lv.head && lv.b[i-1].idx > idx {
		i--
	}
	if i == lv.head || lv.b[i-1].idx != idx {
		lv.b = append(lv.b, bucket{})
		copy(lv.b[i+1:], lv.b[i:])
		lv.b[i] = bucket{idx: idx, min: x.v, max: x.v}
	} else {
		i--
	}
	lv.b[i].addRec(x)
}

func (b *bucket) addRec(x *rec) {
	b.count++
	b.sum += x.v
	b.min = min(b.min, x.v)
	b.max = max(b.max, x.v)
	for f := range NumFlags {
		b.flagged[f] += int32(x.flags >> f & 1)
	}
	for d, sl := range x.slot {
		switch sl {
		case 0:
		case overSlot:
			b.over |= 1 << d
		default:
			b.mask[d] |= 1 << (sl - 1)
		}
	}
}

// Evict drops what no query can need once the watermark is wm: records at
// or below wm − allowed lateness − retention. It reports whether the key has
// no records left, so that its state can be deleted (tombstoned).
func (s *Series) Evict(wm int64) (empty bool) {
	c := wm - s.lb.lateness - s.lb.retention
	if wm < MinTime+s.lb.lateness+s.lb.retention {
		c = MinTime - 1
	}
	c = min(c, MaxTime)
	if c > s.cutoff {
		s.cutoff = c
		i := s.head
		for i < len(s.recs) && s.recs[i].t <= c {
			i++
		}
		s.recs, s.head = compact(s.recs, i)
		for li := range s.levels {
			lv := &s.levels[li]
			if !s.bucketed {
				break
			}
			j := lv.head
			// A bucket goes when its last millisecond is at or below the cutoff.
			for j < len(lv.b) && (lv.b[j].idx+1)*lv.width-1 <= c {
				j++
			}
			lv.b, lv.head = compact(lv.b, j)
		}
		s.mins.evict(c)
		s.maxs.evict(c)
		for d := range s.orderT {
			ts := s.orderT[d]
			k := 0
			for k < len(ts) && ts[k] <= c {
				k++
			}
			if k > 0 {
				s.orderT[d] = ts[:copy(ts, ts[k:])]
			}
		}
	}
	if s.Len() == 0 {
		s.clear()
		return true
	}
	return false
}

// compact drops s[:head] lazily: it moves the live part down only when the
// dead prefix is at least half the slice, so eviction is amortized O(1) and
// the backing array is reused (no allocation in steady state). A backing
// array more than four times what is live after a burst is given back:
// without that, and with a larger dead prefix allowed, a card's slices
// ratcheted up to the biggest they had ever been and the scorer's heap kept
// growing for days of event time while its state did not.
func compact[T any](s []T, head int) ([]T, int) {
	if head == len(s) {
		if cap(s) > shrinkMin {
			return nil, 0
		}
		return s[:0], 0
	}
	if head >= 8 && head*2 >= len(s) {
		live := s[head:]
		if cap(s) > shrinkMin && 4*len(live) < cap(s) {
			return append(make([]T, 0, 2*len(live)), live...), 0
		}
		n := copy(s, live)
		return s[:n], 0
	}
	return s, head
}

// shrinkMin is the capacity below which compact never reallocates.
const shrinkMin = 64

func (s *Series) clear() {
	s.recs, s.head = s.recs[:0], 0
	for li := range s.levels {
		s.levels[li].b, s.levels[li].head = s.levels[li].b[:0], 0
	}
	for d := range s.dict {
		s.dict[d] = s.dict[d][:0]
		s.orderT[d], s.lastT[d] = s.orderT[d][:0], s.lastT[d][:0]
		if s.idx[d] != nil {
			*s.idx[d] = slotIndex{}
		}
		s.lastOver[d] = MinTime - 1
	}
	s.mins.e, s.mins.head = s.mins.e[:0], 0
	s.maxs.e, s.maxs.head = s.maxs.e[:0], 0
	s.totV, s.totF = 0, 0
	s.bucketed, s.fastRun = false, 0
}

// Reset empties the series for reuse with another key (keeps its memory).
func (s *Series) Reset() {
	s.clear()
	s.cutoff = MinTime - 1
}

type accum struct {
	count, sum, min, max int64
	flagged              [NumFlags]int64
	mask                 [DistinctDims]uint64
	over                 uint8
}

func (a *accum) addBucket(b *bucket) {
	if a.count == 0 {
		a.min, a.max = b.min, b.max
	} else {
		a.min, a.max = min(a.min, b.min), max(a.max, b.max)
	}
	a.count += b.count
	a.sum += b.sum
	// Unrolled: this is the query's inner loop.
	a.flagged[0] += int64(b.flagged[0])
	a.flagged[1] += int64(b.flagged[1])
	a.flagged[2] += int64(b.flagged[2])
	a.flagged[3] += int64(b.flagged[3])
	a.mask[0] |= b.mask[0]
	a.mask[1] |= b.mask[1]
	a.over |= b.over
}

func (a *accum) addRec(r *rec) {
	if a.count == 0 {
		a.min, a.max = r.v, r.v
	} else {
		a.min, a.max = min(a.min, r.v), max(a.max, r.v)
	}
	a.count++
	a.sum += r.v
	a.flagged[0] += int64(r.flags & 1)
	a.flagged[1] += int64(r.flags >> 1 & 1)
	a.flagged[2] += int64(r.flags >> 2 & 1)
	a.flagged[3] += int64(r.flags >> 3 & 1)
	a.mask[0] |= slotBit(r.slot[0])
	a.mask[1] |= slotBit(r.slot[1])
	if r.slot[0] == overSlot {
		a.over |= 1
	}
	if r.slot[1] == overSlot {
		a.over |= 2
	}
}

// slotBit is the mask bit of a record's slot: none for 0 and overSlot
// (shifting by 255 or by -1 as uint gives 0 in Go).
func slotBit(sl uint8) uint64 {
	return 1 << (sl - 1) & -uint64(b2u(sl != overSlot))
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (a *accum) writeTo(g *Agg) {
	g.Count, g.Sum, g.Flagged = a.count, a.sum, a.flagged
	g.Min, g.Max = a.min, a.max // both 0 while count is 0
	g.Distinct[0] = bits.OnesCount64(a.mask[0])
	g.Distinct[1] = bits.OnesCount64(a.mask[1])
	g.Saturated[0] = a.over&1 != 0
	g.Saturated[1] = a.over&2 != 0
}

// Query writes into out[i] the aggregate of the retained records with event
// time in (t − horizons[i], t], for every horizon at once. Records with an
// event time after t are never counted, whenever they arrived. Horizons must
// be positive and ascending; out must be at least as long. Query does not
// allocate.
//
// Horizons longer than the retention (or queries at times the eviction has
// passed) see only what is retained.
func (s *Series) Query(t int64, horizons []time.Duration, out []Agg) error {
	if len(out) < len(horizons) {
		return ErrHorizons
	}
	t = min(max(t, MinTime-1), MaxTime)
	if t <= s.cutoff {
		clear(out[:len(horizons)])
		return checkHorizons(horizons)
	}
	span := uint64(t) - uint64(s.cutoff) // > 0, cannot overflow
	if n := len(s.recs) - s.head; (n == 0 || s.recs[len(s.recs)-1].t <= t) && n <= maxLaneRange {
		if s.bucketed {
			if s.fastRun++; s.fastRun >= max(n, bucketIdle) {
				s.setBuckets(false)
			}
		}
		return s.queryInOrder(t, span, horizons, out)
	}
	if !s.bucketed {
		s.setBuckets(true)
	}
	s.fastRun = 0
	var acc accum
	var prev int64
	rs := s.recs[s.head:]
	next := t                     // the part (next, t] is in acc
	nextPos := searchRec(rs, t+1) // records before nextPos have time ≤ next
	for i, h := range horizons {
		d := millis(h)
		if d <= 0 || d < prev {
			return ErrHorizons
		}
		prev = d
		lo := s.cutoff // exclusive lower edge, clamped to what is retained
		if uint64(d) < span {
			lo = t - d
		}
		if lo < next {
			pos := searchRec(rs[:nextPos], lo+1)
			if nextPos-pos <= scanLimit {
				// Few records: reading them beats merging buckets.
				for j := pos; j < nextPos; j++ {
					acc.addRec(&rs[j])
				}
			} else {
				s.addRange(&acc, lo+1, next, len(s.levels)-1)
			}
			next, nextPos = lo, pos
		}
		acc.writeTo(&out[i])
	}
	return nil
}

// queryInOrder answers a query at a time t no earlier than every retained
// record: the records in (t − d, t] are then those after t − d, a suffix,
// which the prefix sums, the monotonic stacks and the distinct lists give
// directly. Horizons ascend, so every edge is at or before the previous one.
func (s *Series) queryInOrder(t int64, span uint64, horizons []time.Duration, out []Agg) error {
	rs := s.recs[s.head:]
	mins, maxs := s.mins.e[s.mins.head:], s.maxs.e[s.maxs.head:]
	ord0, ord1 := s.orderT[0], s.orderT[1]
	p, mi, ma, o0, o1 := len(rs), len(mins), len(maxs), len(ord0), len(ord1)
	var prev int64
	for i, h := range horizons {
		d := millis(h)
		if d <= 0 || d < prev {
			return ErrHorizons
		}
		prev = d
		lo := s.cutoff
		if uint64(d) < span {
			lo = t - d
		}
		g := &out[i]
		if i >= len(s.hint) {
			// Search back from the previous horizon's edges.
			p = edgeFrom(rs[:p], lo, p)
			if p == len(rs) {
				*g = Agg{}
				continue
			}
			mi = edgeFromTV(mins[:mi], lo, mi)
			ma = edgeFromTV(maxs[:ma], lo, ma)
			o0 = edgeFromT(ord0[:o0], lo, o0)
			o1 = edgeFromT(ord1[:o1], lo, o1)
		} else if len(rs) > 0 && lo < rs[0].t {
			// Everything retained: the longest horizon, usually.
			p, mi, ma, o0, o1 = 0, 0, 0, 0, 0
		} else {
			// Search around the last query's edges of this horizon.
			// The common cases are checked inline: the edge is where it
			// was, or (records) one further.
			hi := &s.hint[i]
			if x := int(hi.rec) - s.head; x >= 0 && x < p && rs[x].t <= lo && (x+1 == p || rs[x+1].t > lo) {
				p = x + 1
			} else {
				p = edgeFrom(rs[:p], lo, min(max(x, 0), p))
			}
			hi.rec = int32(p + s.head)
			if p == len(rs) {
				*g = Agg{}
				continue
			}
			if x := int(hi.min) - s.mins.head; x >= 0 && x < mi && mins[x].t > lo && (x == 0 || mins[x-1].t <= lo) {
				mi = x
			} else {
				mi = edgeFromTV(mins[:mi], lo, min(max(x, 0), mi))
			}
			if x := int(hi.max) - s.maxs.head; x >= 0 && x < ma && maxs[x].t > lo && (x == 0 || maxs[x-1].t <= lo) {
				ma = x
			} else {
				ma = edgeFromTV(maxs[:ma], lo, min(max(x, 0), ma))
			}
			if x := int(hi.ord[0]); x < o0 && ord0[x] > lo && (x == 0 || ord0[x-1] <= lo) {
				o0 = x
			} else {
				o0 = edgeFromT(ord0[:o0], lo, min(x, o0))
			}
			if x := int(hi.ord[1]); x < o1 && ord1[x] > lo && (x == 0 || ord1[x-1] <= lo) {
				o1 = x
			} else {
				o1 = edgeFromT(ord1[:o1], lo, min(x, o1))
			}
			hi.min, hi.max = int32(mi+s.mins.head), int32(ma+s.maxs.head)
			hi.ord = [DistinctDims]uint8{uint8(o0), uint8(o1)}
		}
		r := &rs[p]
		f := s.totF - r.cf
		g.Count = int64(len(rs) - p)
		g.Sum = s.totV - r.cv
		g.Min = mins[mi].v
		g.Max = ^maxs[ma].v
		g.Flagged[0] = int64(f & 0xffff)
		g.Flagged[1] = int64(f >> 16 & 0xffff)
		g.Flagged[2] = int64(f >> 32 & 0xffff)
		g.Flagged[3] = int64(f >> 48)
		g.Distinct[0] = len(ord0) - o0
		g.Distinct[1] = len(ord1) - o1
		g.Saturated[0] = s.lastOver[0] > lo
		g.Saturated[1] = s.lastOver[1] > lo
	}
	return nil
}

// edgeFrom returns the first position of rs with time > lo, searching
// outwards from the guess g (0 ≤ g ≤ len(rs)): galloping, then bisecting.
func edgeFrom(rs []rec, lo int64, g int) int {
	var a, b int // bracketed below: the answer is in [a, b]
	if g < len(rs) && rs[g].t <= lo {
		a = g + 1
		for step := 1; ; step <<= 1 {
			if j := a + step - 1; j >= len(rs) || rs[j].t > lo {
				b = min(j, len(rs))
				break
			}
			a += step
		}
	} else if g > 0 && rs[g-1].t > lo {
		b = g - 1
		for step := 1; ; step <<= 1 {
			if j := b - step; j < 0 || rs[j].t <= lo {
				a = max(j+1, 0)
				break
			}
			b -= step
		}
	} else {
		return g
	}
	for a < b {
		m := int(uint(a+b) >> 1)
		if rs[m].t <= lo {
			a = m + 1
		} else {
			b = m
		}
	}
	return a
}

// edgeFromTV is edgeFrom over stack entries.
func edgeFromTV(e []tv, lo int64, g int) int {
	var a, b int
	if g < len(e) && e[g].t <= lo {
		a = g + 1
		for step := 1; ; step <<= 1 {
			if j := a + step - 1; j >= len(e) || e[j].t > lo {
				b = min(j, len(e))
				break
			}
			a += step
		}
	} else if g > 0 && e[g-1].t > lo {
		b = g - 1
		for step := 1; ; step <<= 1 {
			if j := b - step; j < 0 || e[j].t <= lo {
				a = max(j+1, 0)
				break
			}
			b -= step
		}
	} else {
		return g
	}
	for a < b {
		m := int(uint(a+b) >> 1)
		if e[m].t <= lo {
			a = m + 1
		} else {
			b = m
		}
	}
	return a
}

// edgeFromT is edgeFrom over sorted times.
func edgeFromT(ts []int64, lo int64, g int) int {
	var a, b int
	if g < len(ts) && ts[g] <= lo {
		a = g + 1
		for step := 1; ; step <<= 1 {
			if j := a + step - 1; j >= len(ts) || ts[j] > lo {
				b = min(j, len(ts))
				break
			}
			a += step
		}
	} else if g > 0 && ts[g-1] > lo {
		b = g - 1
		for step := 1; ; step <<= 1 {
			if j := b - step; j < 0 || ts[j] <= lo {
				a = max(j+1, 0)
				break
			}
			b -= step
		}
	} else {
		return g
	}
	for a < b {
		m := int(uint(a+b) >> 1)
		if ts[m] <= lo {
			a = m + 1
		} else {
			b = m
		}
	}
	return a
}

// scanLimit is the number of records up to which a query reads records
// rather than buckets (a record costs about a third of a bucket).
const scanLimit = 24

func checkHorizons(hs []time.Duration) error {
	var prev time.Duration
	for _, h := range hs {
		if millis(h) <= 0 || h < prev {
			return ErrHorizons
		}
		prev = h
	}
	return nil
}

// addRange adds the records with lo ≤ time ≤ hi, using the full buckets of
// level li and finer levels for the remainders at both ends.
func (s *Series) addRange(acc *accum, lo, hi int64, li int) {
	for ; li >= 0; li-- {
		lv := &s.levels[li]
		a, b := ceilDiv(lo, lv.width), floorDiv(hi+1, lv.width)-1
		if a > b {
			continue // no full bucket of this level fits
		}
		// Full buckets a..b.
		bs := lv.b[lv.head:]
		j := searchBucket(bs, a)
		for ; j < len(bs) && bs[j].idx <= b; j++ {
			acc.addBucket(&bs[j])
		}
		if lo < a*lv.width {
			s.addRange(acc, lo, a*lv.width-1, li-1)
		}
		if end := (b + 1) * lv.width; end <= hi {
			s.addRange(acc, end, hi, li-1)
		}
		return
	}
	rs := s.recs[s.head:]
	for j := searchRec(rs, lo); j < len(rs) && rs[j].t <= hi; j++ {
		acc.addRec(&rs[j])
	}
}

// searchBucket returns the first position with idx ≥ a. Queries look near the
// end, so it gallops back from there before bisecting.
func searchBucket(bs []bucket, a int64) int {
	hi := len(bs)
	step := 1
	lo := hi - step
	for lo > 0 && bs[lo].idx >= a {
		hi = lo
		step *= 2
		lo = hi - step
	}
	lo = max(lo, 0)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bs[m].idx < a {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func searchRec(rs []rec, t int64) int {
	hi := len(rs)
	step := 1
	lo := hi - step
	for lo > 0 && rs[lo].t >= t {
		hi = lo
		step *= 2
		lo = hi - step
	}
	lo = max(lo, 0)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rs[m].t < t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a > 0 {
		q++
	}
	return q
}

// Hash returns a non-zero 64-bit FNV-1a hash of s, for Record.Distinct.
func Hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}
