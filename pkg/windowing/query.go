package windowing

import (
	"math/bits"
	"time"
)

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
	next := t                      // the part (next, t] is in acc
	nextPos := searchFrom(rs, t+1) // records before nextPos have time ≤ next
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
			pos := searchFrom(rs[:nextPos], lo+1)
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
	dims := s.dims
	p, mi, ma := len(rs), len(mins), len(maxs)
	var o [MaxDistinctDims]int // per dimension, the edge in its orderT
	for k := range dims {
		o[k] = len(dims[k].orderT)
	}
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
		var hi *hints // the hints to use and update, if any
		switch {
		case i >= len(s.hint):
			// Search back from the previous horizon's edges.
			p = edgeFrom(rs[:p], lo, p)
			if p == len(rs) {
				*g = Agg{}
				continue
			}
			mi = edgeFrom(mins[:mi], lo, mi)
			ma = edgeFrom(maxs[:ma], lo, ma)
		case len(rs) > 0 && lo < rs[0].t:
			// Everything retained: the longest horizon, usually.
			p, mi, ma = 0, 0, 0
		default:
			// Search around the last query's edges of this horizon.
			// The common cases are checked inline: the edge is where it
			// was, or (records) one further.
			hi = &s.hint[i]
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
				mi = edgeFrom(mins[:mi], lo, min(max(x, 0), mi))
			}
			if x := int(hi.max) - s.maxs.head; x >= 0 && x < ma && maxs[x].t > lo && (x == 0 || maxs[x-1].t <= lo) {
				ma = x
			} else {
				ma = edgeFrom(maxs[:ma], lo, min(max(x, 0), ma))
			}
			hi.min, hi.max = int32(mi+s.mins.head), int32(ma+s.maxs.head)
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
		g.Distinct, g.Saturated = [MaxDistinctDims]int{}, [MaxDistinctDims]bool{}
		for k := range dims {
			dm := &dims[k]
			ord := dm.orderT
			switch {
			case p == 0:
				o[k] = 0 // every last-use time is at or after the first record
			case hi == nil:
				o[k] = edgeFrom(ord[:o[k]], lo, o[k])
			default:
				if x := int(hi.ord[k]); x < o[k] && ord[x] > lo && (x == 0 || ord[x-1] <= lo) {
					o[k] = x
				} else {
					o[k] = edgeFrom(ord[:o[k]], lo, min(x, o[k]))
				}
				hi.ord[k] = uint8(o[k])
			}
			g.Distinct[k] = len(ord) - o[k]
			g.Saturated[k] = dm.lastOver > lo
		}
	}
	return nil
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
		j := searchFrom(bs, a)
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
	for j := searchFrom(rs, lo); j < len(rs) && rs[j].t <= hi; j++ {
		acc.addRec(&rs[j])
	}
}

// accum sums records and buckets for the bucket path. Dimensions a
// Lookback does not have are all zero, so it works on all of them
// (unrolled: this is the query's inner loop).
type accum struct {
	count, sum, min, max int64
	flagged              [MaxFlags]int64
	mask                 [MaxDistinctDims]uint64
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
	a.flagged[0] += int64(b.flagged[0])
	a.flagged[1] += int64(b.flagged[1])
	a.flagged[2] += int64(b.flagged[2])
	a.flagged[3] += int64(b.flagged[3])
	a.mask[0] |= b.mask[0]
	a.mask[1] |= b.mask[1]
	a.mask[2] |= b.mask[2]
	a.mask[3] |= b.mask[3]
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
	a.mask[2] |= slotBit(r.slot[2])
	a.mask[3] |= slotBit(r.slot[3])
	a.over |= b2u(r.slot[0] == overSlot) | b2u(r.slot[1] == overSlot)<<1 |
		b2u(r.slot[2] == overSlot)<<2 | b2u(r.slot[3] == overSlot)<<3
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
	for d := range g.Distinct {
		g.Distinct[d] = bits.OnesCount64(a.mask[d])
		g.Saturated[d] = a.over>>d&1 != 0
	}
}
