package windowing

// A level summarizes the records in buckets of one width, aligned to
// multiples of it (bucket idx covers [idx·width, (idx+1)·width)). Queries
// at a time before the newest record merge whole buckets of the coarsest
// level that fits and finer ones at the edges (Series.addRange).
type level struct {
	width int64
	b     []bucket // by idx, from head
	head  int
}

type bucket struct {
	idx      int64
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
		s.levels[li].b, s.levels[li].head = s.levels[li].b[:0], 0
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
	rs := s.recs[s.head:]
	for li := range s.levels {
		lv := &s.levels[li]
		for i := range rs {
			lv.add(&rs[i])
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

// evict drops the buckets whose last millisecond is at or below the cutoff c.
func (lv *level) evict(c int64) {
	j := lv.head
	for j < len(lv.b) && (lv.b[j].idx+1)*lv.width-1 <= c {
		j++
	}
	lv.b, lv.head = compact(lv.b, j)
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

// BucketIndex is the index of the bucket of the given width (> 0) that
// holds time t: floor(t / width), so times before 0 fall in negative
// buckets rather than sharing bucket 0 with the first width after it.
func BucketIndex(t, width int64) int64 { return floorDiv(t, width) }

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
