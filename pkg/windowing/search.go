package windowing

import "unsafe"

// keyed is an element of the sequences the look-back searches, each in
// ascending order of its key, an int64 that is its first field: records
// and stack entries by time, buckets by index, and last-use times, which
// are their own key.
type keyed interface{ rec | tv | bucket | int64 }

// The key is the first field of each keyed type; the build breaks if not.
var (
	_ = [1]struct{}{}[unsafe.Offsetof(rec{}.t)]
	_ = [1]struct{}{}[unsafe.Offsetof(tv{}.t)]
	_ = [1]struct{}{}[unsafe.Offsetof(bucket{}.idx)]
)

// key returns the key of e: the int64 it starts with. Read this way, each
// instantiation of edgeFrom is the plain loop over its slice the old
// copies were; a key read through a function value or a type switch cost
// 12–20 % of an add+query (an indirect call or a type test per probe), and
// keeping the keys in []int64 slices of their own instead took two cache
// misses where one did for keys that are cold (BenchmarkLookbackManyKeys).
func key[E keyed](e *E) int64 { return *(*int64)(unsafe.Pointer(e)) }

// edgeFrom returns the first position of e whose key is greater than lo;
// g (0 ≤ g ≤ len(e)) is a guess of the answer. It gallops outwards from g,
// then bisects: O(log distance), so a good guess (the previous query's
// edge) makes it nearly O(1). It is the one search of the look-back.
func edgeFrom[E keyed](e []E, lo int64, g int) int {
	var a, b int // bracketed below: the answer is in [a, b]
	if g < len(e) && key(&e[g]) <= lo {
		a = g + 1
		for step := 1; ; step <<= 1 {
			if j := a + step - 1; j >= len(e) || key(&e[j]) > lo {
				b = min(j, len(e))
				break
			}
			a += step
		}
	} else if g > 0 && key(&e[g-1]) > lo {
		b = g - 1
		for step := 1; ; step <<= 1 {
			if j := b - step; j < 0 || key(&e[j]) <= lo {
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
		if key(&e[m]) <= lo {
			a = m + 1
		} else {
			b = m
		}
	}
	return a
}

// searchFrom returns the first position of e whose key is at or after k
// (> MinTime), searching back from the end, where queries look.
func searchFrom[E keyed](e []E, k int64) int { return edgeFrom(e, k-1, len(e)) }
