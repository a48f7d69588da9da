package windowing

import (
	"bytes"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/watermark"
)

// FuzzSessions decodes records (key, time delta, value) and watermark
// moves from the input and checks the session merger against the oracle.
func FuzzSessions(f *testing.F) {
	f.Add(uint8(5), uint8(3), []byte{0, 1, 10, 1, 5, 20, 0, 200, 3, 2, 1, 1})
	f.Add(uint8(1), uint8(0), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(20), uint8(50), []byte{1, 3, 9, 2, 250, 9, 0, 3, 9, 1, 1, 1, 2, 2, 2})
	f.Fuzz(func(t *testing.T, gap, lateness uint8, data []byte) {
		var recs []orec
		var wms []int64
		var adv []bool
		gen := watermark.NewGenerator(time.Duration(data2(data)) * time.Millisecond)
		base := int64(0)
		for len(data) >= 3 {
			base += int64(int8(data[1])) // negative steps: out of order
			r := orec{key: int(data[0] % 3), t: base, v: int64(data[2])}
			recs = append(recs, r)
			wms = append(wms, gen.Observe(r.t))
			adv = append(adv, data[0]&0x80 != 0)
			data = data[3:]
		}
		runSessions(t, recs, wms, int64(gap)+1, int64(lateness), func(i int) bool { return adv[i] })
	})
}

func data2(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	return int64(b[len(b)-1] % 16)
}

// FuzzLookback decodes a record stream with evictions and queries, checks
// every query against the oracle, and round-trips the encoded state.
func FuzzLookback(f *testing.F) {
	f.Add([]byte{1, 10, 3, 7, 2, 5, 8, 1, 3, 200, 1, 9, 0, 1, 1, 1})
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{3, 1, 4, 1, 5, 9, 2, 6}, 8))
	lb, _ := NewLookback(WithLevels(2*time.Millisecond, 8*time.Millisecond, 32*time.Millisecond),
		WithRetention(64*time.Millisecond), WithLookbackLateness(8*time.Millisecond))
	hs := []time.Duration{time.Millisecond, 3 * time.Millisecond, 9 * time.Millisecond, 33 * time.Millisecond, 64 * time.Millisecond}
	sc := lookbackScenario{values: 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := lb.NewSeries()
		o := &lookbackOracle{flags: MaxFlags, lateness: 8, retention: 64, cutoff: MinTime - 1}
		out := make([]Agg, len(hs))
		base := int64(0)
		for len(data) >= 4 {
			op, dt, v, x := data[0], int64(int8(data[1])), int64(data[2]), data[3]
			data = data[4:]
			base += dt
			switch op % 4 {
			case 0:
				if es, eo := s.Evict(base-int64(x)), o.evict(base-int64(x)); es != eo {
					t.Fatalf("Evict: empty %v, oracle %v", es, eo)
				}
			case 1:
				check(t, s, o, base+int64(int8(x)), hs, out, sc)
			default:
				r := Record{Time: base, Value: v - 100, Flags: x, Distinct: [MaxDistinctDims]uint64{uint64(x % 16), uint64(x >> 4)}}
				if es, eo := s.Add(r), o.add(r); es != eo {
					t.Fatalf("Add: %v, oracle %v", es, eo)
				}
			}
		}
		b, _ := s.MarshalBinary()
		s2 := lb.NewSeries()
		if err := s2.UnmarshalBinary(b); err != nil {
			t.Fatalf("decode own encoding: %v", err)
		}
		check(t, s2, o, base, hs, out, sc)
	})
}

// FuzzLookbackDecode feeds arbitrary bytes to UnmarshalBinary: it must not
// panic, and whatever it accepts must encode back to the same bytes and
// answer queries.
func FuzzLookbackDecode(f *testing.F) {
	lb, _ := NewLookback()
	s := lb.NewSeries()
	for i := range 20 {
		_ = s.Add(Record{Time: 1_700_000_000_000 + int64(i)*7_000, Value: int64(i), Flags: 1, Distinct: [MaxDistinctDims]uint64{Hash("m"), uint64(i%3 + 1)}})
	}
	seed, _ := s.MarshalBinary()
	f.Add(seed)
	f.Add([]byte{1})
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := lb.NewSeries()
		if err := s.UnmarshalBinary(data); err != nil {
			return
		}
		again, _ := s.MarshalBinary()
		s2 := lb.NewSeries()
		if err := s2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		again2, _ := s2.MarshalBinary()
		if !bytes.Equal(again, again2) {
			t.Fatal("encoding is not stable")
		}
		if s.Len() == 0 {
			return
		}
		var out [1]Agg
		last := s.recs[len(s.recs)-1].t
		h := time.Duration(1<<63 - 1)
		if err := s.Query(last, []time.Duration{h}, out[:]); err != nil {
			t.Fatal(err)
		}
		var want int64
		for _, r := range s.recs[s.head:] {
			if uint64(last-r.t) < uint64(millis(h)) {
				want++
			}
		}
		if out[0].Count != want {
			t.Fatalf("query over everything counts %d, want %d", out[0].Count, want)
		}
	})
}
