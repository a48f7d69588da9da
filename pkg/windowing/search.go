package windowing

// edgeFrom returns the first position of e whose time (as at gives it) is
// after lo, e being sorted by time; g (0 ≤ g ≤ len(e)) is a guess of the
// answer. It gallops outwards from g, then bisects: O(log distance), so a
// good guess (the previous query's edge) makes it nearly O(1).
//
// It is the one search of the look-back: over records, stack entries,
// last-use times and buckets (whose "time" is their index).
func edgeFrom[E any](e []E, at func(*E) int64, lo int64, g int) int {
	var a, b int // bracketed below: the answer is in [a, b]
	if g < len(e) && at(&e[g]) <= lo {
		a = g + 1
		for step := 1; ; step <<= 1 {
			if j := a + step - 1; j >= len(e) || at(&e[j]) > lo {
				b = min(j, len(e))
				break
			}
			a += step
		}
	} else if g > 0 && at(&e[g-1]) > lo {
		b = g - 1
		for step := 1; ; step <<= 1 {
			if j := b - step; j < 0 || at(&e[j]) <= lo {
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
		if at(&e[m]) <= lo {
			a = m + 1
		} else {
			b = m
		}
	}
	return a
}

// searchFrom returns the first position of e whose time is at or after t,
// searching back from the end (where queries look).
func searchFrom[E any](e []E, at func(*E) int64, t int64) int {
	return edgeFrom(e, at, t-1, len(e))
}

func recTime(r *rec) int64     { return r.t }
func stampTime(t *int64) int64 { return *t }
