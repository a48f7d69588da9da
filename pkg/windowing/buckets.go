package windowing

// A level summarizes the records in buckets of one width, aligned to
// multiples of it: b[i] covers [idx[i]·width, (idx[i]+1)·width). Only
// buckets with records exist; from head on, idx ascends. Queries at a time
// before the newest record merge whole buckets of the coarsest level that
// fits and finer ones at the edges (Series.addRange).
type level struct {
	width int64
	idx   []int64
	b     []bucket
	head  int
}

type bucket struct {
	count    int64
	sum      int64
	min, max int64
	flagged  [MaxFlags]int32
	mask     [MaxDistinctDims]uint64 // bit i-1: dictionary slot i is used
	over     uint8                   // bit d: dimension d has an untracked value
}

// setBuckets builds (on) or drops (off) the buckets.
func (s *Series) setBuckets(on bool) {
	for li := range s.levels {
		s.levels[li].clear()
	}
	s.bucketed, s.fastRun = on, 0
	if !on {
		return
	}
	if s.levels == nil {
		// Most keys never need buckets: their memory is taken on demand.
		s.levels = make([]level, len(s.lb.widths))
		for i, w := range s.lb.widths {
			s.levels[i].width = w
		}
	}
	rs, ts := s.recs[s.head:], s.times[s.head:]
	for li := range s.levels {
		lv := &s.levels[li]
		for i := range rs {
			lv.add(ts[i], &rs[i])
		}
	}
}

// add counts the record x at time t in its bucket.
func (lv *level) add(t int64, x *rec) {
	if n := len(lv.b); n > lv.head {
		// Nearly always the newest bucket or the next one: no division.
		if off := t - lv.idx[n-1]*lv.width; off >= 0 {
			if off < lv.width {
				lv.b[n-1].addRec(x)
			} else {
				lv.idx = append(lv.idx, floorDiv(t, lv.width))
				lv.b = append(lv.b, bucket{min: x.v, max: x.v})
				lv.b[n].addRec(x)
			}
			return
		}
	}
	idx := floorDiv(t, lv.width)
	i := len(lv.idx)
	for i > lv.head && lv.idx[i-1] > idx {
		i--
	}
	if i == lv.head || lv.idx[i-1] != idx {
		lv.idx = insertAt(lv.idx, i, idx)
		lv.b = insertAt(lv.b, i, bucket{min: x.v, max: x.v})
	} else {
		i--
	}
	lv.b[i].addRec(x)
}

// evict drops the buckets whose last millisecond is at or below the cutoff c.
func (lv *level) evict(c int64) {
	j := lv.head
	for j < len(lv.idx) && (lv.idx[j]+1)*lv.width-1 <= c {
		j++
	}
	lv.idx, _ = compact(lv.idx, j)
	lv.b, lv.head = compact(lv.b, j)
}

func (lv *level) clear() {
	lv.idx, lv.b, lv.head = lv.idx[:0], lv.b[:0], 0
}

func (b *bucket) addRec(x *rec) {
	b.count++
	b.sum += x.v
	b.min = min(b.min, x.v)
	b.max = max(b.max, x.v)
	for f := range MaxFlags {
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
