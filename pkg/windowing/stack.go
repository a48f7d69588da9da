package windowing

// stack is a monotonic stack of suffix minima (see Series.mins): entry i
// is a record's time t[i] and (possibly inverted) value v[i]; from head
// on, both strictly increase.
type stack struct {
	t, v []int64
	head int
}

// pushBack adds a record later than (or as late as) every other.
func (st *stack) pushBack(t, v int64) {
	n := len(st.v)
	for n > st.head && st.v[n-1] >= v {
		n--
	}
	st.t, st.v = append(st.t[:n], t), append(st.v[:n], v)
}

// insert adds a record that goes after the records with time ≤ t.
func (st *stack) insert(t, v int64) {
	k := len(st.t)
	for k > st.head && st.t[k-1] > t {
		k--
	}
	// Entries before k with a value ≥ v stop being suffix minima; x is one
	// if it is below the minimum after it.
	j := k
	for j > st.head && st.v[j-1] >= v {
		j--
	}
	in := k == len(st.v) || v < st.v[k]
	switch {
	case in && j == k:
		st.t, st.v = insertAt(st.t, k, t), insertAt(st.v, k, v)
	case in:
		st.t[j], st.v[j] = t, v
		st.t, st.v = append(st.t[:j+1], st.t[k:]...), append(st.v[:j+1], st.v[k:]...)
	default:
		st.t, st.v = append(st.t[:j], st.t[k:]...), append(st.v[:j], st.v[k:]...)
	}
}

// evict drops the entries at or below the cutoff c.
func (st *stack) evict(c int64) {
	i := st.head
	for i < len(st.t) && st.t[i] <= c {
		i++
	}
	st.t, _ = compact(st.t, i)
	st.v, st.head = compact(st.v, i)
}

func (st *stack) clear() {
	st.t, st.v, st.head = st.t[:0], st.v[:0], 0
}
