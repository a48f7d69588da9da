package windowing

// rec is a stored record; slot[d] is 0 for none, 1+i for dictionary slot i,
// overSlot for a value the dictionary had no room for. cv and cf are the
// sum of the values and the packed flag counts (see flagLanes) of all the
// records before this one since the series was last emptied, modulo 2⁶⁴:
// prefix sums, so that the sum over a suffix is one subtraction.
type rec struct {
	t, v  int64
	cv    int64
	cf    uint64
	slot  [MaxDistinctDims]uint8
	flags uint8
}

// flagLanes spreads the low MaxFlags bits of f into 16-bit lanes, so that
// adding the results counts each flag in its own lane. Lane differences
// are exact for ranges of fewer than 1<<16 records.
func flagLanes(f uint8) uint64 {
	return uint64(f&1) | uint64(f>>1&1)<<16 | uint64(f>>2&1)<<32 | uint64(f>>3&1)<<48
}

// The flag lanes, the accumulators (query.go) and the buckets are unrolled
// for these values; the compile-time checks break the build if they change.
var (
	_ = [1]struct{}{}[MaxFlags-4]
	_ = [1]struct{}{}[MaxDistinctDims-4]
)

// maxLaneRange is the longest record range whose flag counts the packed
// prefix sums give exactly; queries over more records take the bucket path.
const maxLaneRange = 1<<16 - 1

// Series is the look-back state of one key: its retained records in event
// time order, and per level the buckets that summarize them. Memory is
// bounded by the records within retention + lateness of the watermark.
// A Series is not safe for concurrent use.
type Series struct {
	lb     *Lookback
	recs   []rec
	head   int
	levels []level // nil until the first query that needs buckets
	cutoff int64   // records at or below are evicted or refused

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
	// dims is the distinct-count state of each dimension (distinct.go).
	dims []dim
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
	ord           [MaxDistinctDims]uint8
}

// Len returns the number of retained records.
func (s *Series) Len() int { return len(s.recs) - s.head }

// Add inserts a record. It returns ErrTooLate if the record is at or below
// the eviction cutoff, ErrTimeRange for absurd times, and ErrDimension for
// a distinct value in a dimension the Lookback does not have. Adding the
// same record twice counts it twice: de-duplicate before.
func (s *Series) Add(r Record) error {
	if r.Time < MinTime || r.Time > MaxTime {
		return ErrTimeRange
	}
	if r.Time <= s.cutoff {
		return ErrTooLate
	}
	for _, v := range r.Distinct[len(s.dims):] {
		if v != 0 {
			return ErrDimension
		}
	}
	x := rec{t: r.Time, v: r.Value, flags: r.Flags & s.lb.flagMask}
	for d := range s.dims {
		if v := r.Distinct[d]; v != 0 {
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
	for d := range s.dims {
		switch sl := x.slot[d]; sl {
		case 0:
		case overSlot:
			s.dims[d].lastOver = max(s.dims[d].lastOver, x.t)
		default:
			s.dims[d].touch(sl, x.t, s.cutoff)
		}
	}
	if s.bucketed {
		for li := range s.levels {
			s.levels[li].add(&x)
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
		if s.bucketed {
			for li := range s.levels {
				s.levels[li].evict(c)
			}
		}
		s.mins.evict(c)
		s.maxs.evict(c)
		for d := range s.dims {
			s.dims[d].evict(c)
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
	for d := range s.dims {
		s.dims[d].clear()
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
