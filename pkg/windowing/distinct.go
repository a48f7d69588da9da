package windowing

// dim is the distinct-count state of one dimension of a Series: a small
// dictionary of the values its retained records carry (records store a
// one-byte slot instead of the value), and for the in-order query path the
// time each slot was last used.
type dim struct {
	dict []uint64 // slot → value; 0 marks a free slot
	// lastT[i] is the latest time a record used slot i+1 (≤ cutoff when no
	// retained record does), and orderT the sorted multiset of those times
	// above the cutoff: the number of distinct values after lo is the
	// number of its entries > lo.
	lastT  []int64
	orderT []int64
	// idx is an open-addressing index of dict (entries are 1-based slots,
	// 0 is empty), allocated once the dictionary has idxMin values.
	idx      *slotIndex
	lastOver int64 // latest time of an untracked value
}

const overSlot = 0xff

// slotIndex maps dictionary values to slots by open addressing.
type slotIndex [idxSize]uint8

const (
	idxSize = 2 * DistinctCap
	idxMin  = 16
)

// slotFor returns the dictionary slot (1-based) of value v in dimension d,
// assigning one if needed.
func (s *Series) slotFor(d int, v uint64) uint8 {
	dm := &s.dims[d]
	dict := dm.dict
	if tab := dm.idx; tab != nil {
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
		dm.dict = append(dict, v)
		dm.lastT = append(dm.lastT, MinTime-1)
		if dm.idx != nil {
			dm.idx.put(v, uint8(len(dict)+1))
		} else if len(dict)+1 >= idxMin {
			dm.reindex()
		}
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
		dm.reindex()
	}
	dict[free] = v
	if dm.idx != nil {
		dm.idx.put(v, uint8(free+1))
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

// reindex rebuilds the index of the dictionary, allocating it if the
// dictionary has grown enough.
func (dm *dim) reindex() {
	if dm.idx == nil {
		if len(dm.dict) < idxMin {
			return
		}
		dm.idx = new(slotIndex)
	}
	tab := dm.idx
	*tab = slotIndex{}
	for i, v := range dm.dict {
		if v != 0 {
			tab.put(v, uint8(i+1))
		}
	}
}

// touch records that slot sl is used at time t > cutoff.
func (dm *dim) touch(sl uint8, t, cutoff int64) {
	lt := &dm.lastT[sl-1]
	ts := dm.orderT
	n := len(ts)
	if old := *lt; old > cutoff {
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
		dm.orderT = append(ts, t)
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
	dm.orderT = ts
}

// evict drops the last-use times at or below the new cutoff c.
func (dm *dim) evict(c int64) {
	ts := dm.orderT
	k := 0
	for k < len(ts) && ts[k] <= c {
		k++
	}
	if k > 0 {
		dm.orderT = ts[:copy(ts, ts[k:])]
	}
}

func (dm *dim) clear() {
	dm.dict = dm.dict[:0]
	dm.orderT, dm.lastT = dm.orderT[:0], dm.lastT[:0]
	if dm.idx != nil {
		*dm.idx = slotIndex{}
	}
	dm.lastOver = MinTime - 1
}
