package windowing

// The sorted structures of a Series keep their keys in an []int64 of their
// own beside the data (records' times, stack entries' times, bucket
// indexes, last-use times), so that this one search serves them all. (A
// generic search over the structs, with the key read through a function
// or a type switch, cost 12–20 % of a query at the time of writing: every
// probe became an indirect call or a type test.)

// edgeFrom returns the first position of the ascending ts whose key is
// greater than lo; g (0 ≤ g ≤ len(ts)) is a guess of the answer. It
// gallops outwards from g, then bisects: O(log distance), so a good guess
// (the previous query's edge) makes it nearly O(1).
func edgeFrom(ts []int64, lo int64, g int) int {
	var a, b int // bracketed below: the answer is in [a, b]
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

// searchFrom returns the first position of the ascending ts whose key is
// at or after t (> MinTime), searching back from the end, where queries
// look.
func searchFrom(ts []int64, t int64) int { return edgeFrom(ts, t-1, len(ts)) }

// insertAt inserts x at position i of s.
func insertAt[T any](s []T, i int, x T) []T {
	s = append(s, x)
	copy(s[i+1:], s[i:])
	s[i] = x
	return s
}
