package windowing

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestLookbackShapeConfig: the distinct dimensions and flag count are
// validated at construction.
func TestLookbackShapeConfig(t *testing.T) {
	for _, tc := range []struct {
		name        string
		dims, flags int
		ok          bool
	}{
		{"none", 0, 0, true},
		{"scorer", 2, 1, true},
		{"max", MaxDistinctDims, MaxFlags, true},
		{"too many dims", MaxDistinctDims + 1, 1, false},
		{"negative dims", -1, 1, false},
		{"too many flags", 1, MaxFlags + 1, false},
		{"negative flags", 1, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLookback(WithDistinctDims(tc.dims), WithFlags(tc.flags))
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrConfig) {
				t.Fatalf("NewLookback(%d dims, %d flags) = %v", tc.dims, tc.flags, err)
			}
		})
	}
}

// TestLookbackShape: a Lookback counts its own dimensions and flags only;
// a distinct value beyond its dimensions is refused without touching the
// state, flag bits beyond its count are not counted (nor encoded), and
// the encoding carries one dictionary and one slot byte per dimension.
func TestLookbackShape(t *testing.T) {
	for dims := range MaxDistinctDims + 1 {
		for _, flags := range []int{0, 1, MaxFlags} {
			lb, err := NewLookback(WithDistinctDims(dims), WithFlags(flags))
			if err != nil {
				t.Fatal(err)
			}
			s := lb.NewSeries()
			var all [MaxDistinctDims]uint64
			for d := range dims {
				all[d] = uint64(10 + d)
			}
			if err := s.Add(Record{Time: 1_000, Value: 5, Flags: 0xff, Distinct: all}); err != nil {
				t.Fatalf("%d dims: Add: %v", dims, err)
			}
			before, _ := s.MarshalBinary()
			if dims < MaxDistinctDims {
				bad := all
				bad[dims] = 7
				if err := s.Add(Record{Time: 2_000, Distinct: bad}); !errors.Is(err, ErrDimension) {
					t.Fatalf("%d dims: value in dimension %d: %v, want ErrDimension", dims, dims, err)
				}
				if after, _ := s.MarshalBinary(); !bytes.Equal(before, after) || s.Len() != 1 {
					t.Fatalf("%d dims: a refused record changed the state", dims)
				}
			}
			// The version, the cutoff (10 bytes), per dimension a dictionary
			// of one value (1+8), the count and the record (time delta from
			// the cutoff 9, value 1, flags 1, one slot per dimension).
			if want := 1 + 10 + 9*dims + 1 + 11 + dims; len(before) != want {
				t.Fatalf("%d dims: encoding %d bytes, want %d", dims, len(before), want)
			}
			out := make([]Agg, 2)
			for _, q := range []int64{1_000, 999} { // in order, then the bucket path
				if err := s.Query(q+1, []time.Duration{time.Millisecond, time.Second}, out); err != nil {
					t.Fatal(err)
				}
			}
			s2 := lb.NewSeries()
			if err := s2.UnmarshalBinary(before); err != nil {
				t.Fatalf("%d dims: decode: %v", dims, err)
			}
			for _, q := range []int64{1_000, 998} {
				if err := s2.Query(q, []time.Duration{time.Second}, out); err != nil {
					t.Fatal(err)
				}
				var want Agg
				if q == 1_000 {
					want = Agg{Count: 1, Sum: 5, Min: 5, Max: 5}
					for f := range flags {
						want.Flagged[f] = 1
					}
					for d := range dims {
						want.Distinct[d] = 1
					}
				}
				if out[0] != want {
					t.Fatalf("%d dims, %d flags: Query(%d) = %+v, want %+v", dims, flags, q, out[0], want)
				}
			}
		}
	}
}
