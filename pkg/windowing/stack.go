package windowing

// stack is a monotonic stack of suffix minima (see Series.mins): values
// strictly increase along e[head:], times too.
type stack struct {
	e    []tv
	head int
}

// tv is an entry of a monotonic stack: the time and (possibly inverted)
// value of a record.
type tv struct{ t, v int64 }

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
