package windowing

// Hash returns a non-zero 64-bit FNV-1a hash of s, for Record.Distinct.
// It is written out rather than taken from hash/fnv so that it does not
// allocate; its values are stored in encoded series, so it never changes.
func Hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}

// idxHash is the home position of a dictionary value in a slotIndex
// (Fibonacci hashing: the top 7 bits of v times 2⁶⁴/φ).
func idxHash(v uint64) uint { return uint(v * 0x9e3779b97f4a7c15 >> 57) }
