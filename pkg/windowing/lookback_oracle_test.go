package windowing

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/watermark"
)

// lookbackOracle keeps every accepted record in a list and answers queries
// by scanning all of them. It counts the flags below flags, and expects
// distinct values only in the dimensions below the Lookback's.
type lookbackOracle struct {
	flags               int
	lateness, retention int64
	cutoff              int64
	recs                []Record
}

func (o *lookbackOracle) add(r Record) error {
	if r.Time <= o.cutoff {
		return ErrTooLate
	}
	o.recs = append(o.recs, r)
	return nil
}

func (o *lookbackOracle) evict(wm int64) bool {
	if wm != watermark.None {
		o.cutoff = max(o.cutoff, wm-o.lateness-o.retention)
	}
	o.recs = slices.DeleteFunc(o.recs, func(r Record) bool { return r.Time <= o.cutoff })
	return len(o.recs) == 0
}

func (o *lookbackOracle) query(t int64, h time.Duration) (g Agg) {
	lo := t - int64(h/time.Millisecond)
	var seen [MaxDistinctDims]map[uint64]bool
	for d := range seen {
		seen[d] = map[uint64]bool{}
	}
	for _, r := range o.recs {
		if r.Time <= lo || r.Time > t || r.Time <= o.cutoff {
			continue
		}
		if g.Count == 0 {
			g.Min, g.Max = r.Value, r.Value
		}
		g.Count++
		g.Sum += r.Value
		g.Min, g.Max = min(g.Min, r.Value), max(g.Max, r.Value)
		for f := range o.flags {
			g.Flagged[f] += int64(r.Flags >> f & 1)
		}
		for d, v := range r.Distinct {
			if v != 0 {
				seen[d][v] = true
			}
		}
	}
	for d := range seen {
		g.Distinct[d] = len(seen[d])
	}
	return g
}

type lookbackScenario struct {
	name     string
	levels   []time.Duration
	ret      time.Duration
	late     time.Duration
	delay    time.Duration // watermark max delay
	step     int64         // mean gap between events, ms
	disorder int64         // how far back an out-of-order event may be, ms
	horizons []time.Duration
	values   int // distinct values per dimension
	dims     int // WithDistinctDims
	flags    int // WithFlags
}

func (sc lookbackScenario) options() []LookbackOption {
	opts := []LookbackOption{WithRetention(sc.ret), WithLookbackLateness(sc.late), WithDistinctDims(sc.dims), WithFlags(sc.flags)}
	if sc.levels != nil {
		opts = append(opts, WithLevels(sc.levels...))
	}
	return opts
}

var lookbackScenarios = []lookbackScenario{
	{name: "milliseconds", levels: []time.Duration{3 * time.Millisecond, 12 * time.Millisecond, 60 * time.Millisecond},
		ret: 200 * time.Millisecond, late: 20 * time.Millisecond, delay: 10 * time.Millisecond, step: 2, disorder: 40,
		horizons: []time.Duration{time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 13 * time.Millisecond, 60 * time.Millisecond, 61 * time.Millisecond, 200 * time.Millisecond, time.Second}, values: 30, dims: MaxDistinctDims, flags: MaxFlags},
	{name: "one-level", levels: []time.Duration{7 * time.Millisecond},
		ret: 100 * time.Millisecond, late: 0, delay: 5 * time.Millisecond, step: 3, disorder: 15,
		horizons: []time.Duration{time.Millisecond, 7 * time.Millisecond, 8 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}, values: 8, dims: 1, flags: 2},
	{name: "scorer", levels: nil, ret: 24 * time.Hour, late: time.Minute, delay: 10 * time.Second, step: 90_000, disorder: 120_000,
		horizons: []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 24 * time.Hour}, values: 20, dims: 2, flags: 1},
	{name: "no-dimensions", levels: []time.Duration{4 * time.Millisecond, 16 * time.Millisecond},
		ret: 100 * time.Millisecond, late: 5 * time.Millisecond, delay: 5 * time.Millisecond, step: 2, disorder: 20,
		horizons: []time.Duration{3 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond}, values: 10, dims: 0, flags: 0},
	{name: "saturating", levels: []time.Duration{5 * time.Millisecond, 25 * time.Millisecond},
		ret: 300 * time.Millisecond, late: 10 * time.Millisecond, delay: 5 * time.Millisecond, step: 1, disorder: 20,
		horizons: []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond}, values: 500, dims: 3, flags: 4},
}

// TestLookbackOracle runs thousands of random out-of-order streams, with
// duplicates, late and too-late records, through a Series and the oracle
// and requires identical answers to every query, including after an
// encode/decode round trip of the state.
func TestLookbackOracle(t *testing.T) {
	runs := 1000
	if testing.Short() {
		runs = 100
	}
	for _, sc := range lookbackScenarios {
		t.Run(sc.name, func(t *testing.T) {
			lb, err := NewLookback(sc.options()...)
			if err != nil {
				t.Fatal(err)
			}
			for run := range runs {
				runLookbackStream(t, lb, sc, uint64(run))
			}
		})
	}
}

func runLookbackStream(t *testing.T, lb *Lookback, sc lookbackScenario, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	s := lb.NewSeries()
	o := &lookbackOracle{flags: sc.flags, lateness: millis(sc.late), retention: millis(sc.ret), cutoff: MinTime - 1}
	gen := watermark.NewGenerator(sc.delay)
	base := rng.Int64N(1_000_000) - 500_000
	out := make([]Agg, len(sc.horizons))
	var last Record
	n := 50 + rng.IntN(250)
	for i := range n {
		base += rng.Int64N(2*sc.step + 1)
		r := Record{Time: base, Value: rng.Int64N(2000) - 100, Flags: uint8(rng.IntN(256))}
		switch k := rng.IntN(20); {
		case k == 0 && i > 0:
			r = last // duplicate
		case k < 4:
			r.Time -= rng.Int64N(sc.disorder + 1) // out of order, maybe late
		case k == 4:
			r.Time -= millis(sc.ret) + rng.Int64N(sc.disorder+1) // very likely too late
		}
		for d := range sc.dims {
			if rng.IntN(5) > 0 {
				r.Distinct[d] = uint64(rng.IntN(sc.values)) + 1
			}
		}
		if rng.IntN(30) == 0 {
			r.Time = base + 10*sc.step // from the future
		}
		last = r
		// Query at the record's own time first (features before the update).
		hs := randomHorizons(rng, sc.horizons)
		check(t, s, o, r.Time, hs, out, sc)
		wm := gen.Observe(r.Time)
		if watermark.Classify(r.Time, wm, sc.late) != watermark.TooLate || rng.IntN(4) == 0 {
			errS, errO := s.Add(r), o.add(r)
			if errS != errO {
				t.Fatalf("seed %d: Add(%+v) = %v, oracle %v", seed, r, errS, errO)
			}
		}
		if rng.IntN(3) == 0 {
			if es, eo := s.Evict(wm), o.evict(wm); es != eo || s.Len() != len(o.recs) {
				t.Fatalf("seed %d: Evict empty %v oracle %v, len %d oracle %d", seed, es, eo, s.Len(), len(o.recs))
			}
		}
		if rng.IntN(40) == 0 {
			b, err := s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			s2 := lb.NewSeries()
			if err := s2.UnmarshalBinary(b); err != nil {
				t.Fatalf("seed %d: decode: %v", seed, err)
			}
			b2, _ := s2.MarshalBinary()
			if string(b) != string(b2) {
				t.Fatalf("seed %d: re-encoding differs", seed)
			}
			s = s2
		}
		check(t, s, o, base-rng.Int64N(sc.disorder+1), hs, out, sc)
	}
}

func randomHorizons(rng *rand.Rand, all []time.Duration) []time.Duration {
	var hs []time.Duration
	for _, h := range all {
		if rng.IntN(2) == 0 {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		hs = all[len(all)-1:]
	}
	return hs
}

func check(t *testing.T, s *Series, o *lookbackOracle, at int64, hs []time.Duration, out []Agg, sc lookbackScenario) {
	t.Helper()
	if err := s.Query(at, hs, out); err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		want, got := o.query(at, h), out[i]
		for d := range MaxDistinctDims {
			if got.Saturated[d] {
				// Beyond the dictionary: a lower bound, flagged.
				if got.Distinct[d] > want.Distinct[d] || sc.values <= DistinctCap {
					t.Fatalf("query(%d, %v) dim %d: saturated with %d distinct, oracle %d", at, h, d, got.Distinct[d], want.Distinct[d])
				}
				got.Distinct[d], got.Saturated[d] = want.Distinct[d], false
			}
		}
		if got != want {
			t.Fatalf("query(%d, %v) at cutoff %d:\n got  %+v\n want %+v", at, h, o.cutoff, got, want)
		}
	}
}

// TestLookbackOracleBucketToggle reruns the oracle streams with buckets
// dropped after a single in-order query, so that every switch between the
// in-order path (no buckets) and the out-of-order path (buckets rebuilt
// from the records) is exercised.
func TestLookbackOracleBucketToggle(t *testing.T) {
	defer func(v int) { bucketIdle = v }(bucketIdle)
	bucketIdle = 1
	runs := 300
	if testing.Short() {
		runs = 50
	}
	for _, sc := range lookbackScenarios {
		t.Run(sc.name, func(t *testing.T) {
			lb, err := NewLookback(sc.options()...)
			if err != nil {
				t.Fatal(err)
			}
			for run := range runs {
				runLookbackStream(t, lb, sc, uint64(run)+1<<32)
			}
		})
	}
}

// TestLookbackManyRecords checks flag counts and the other aggregates over
// more records than the packed prefix sums count exactly (the queries then
// take the bucket path), in order and out of order.
func TestLookbackManyRecords(t *testing.T) {
	lb, err := NewLookback(WithRetention(10*time.Second), WithLevels(100*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s := lb.NewSeries()
	o := &lookbackOracle{flags: MaxFlags, lateness: 0, retention: 10_000, cutoff: MinTime - 1}
	const n = maxLaneRange + 5000
	for i := range n {
		r := Record{Time: int64(i / 4), Value: int64(i%1000) - 10, Flags: 0xf, Distinct: [MaxDistinctDims]uint64{uint64(i%50 + 1), uint64(i%3 + 1)}}
		if i%997 == 0 {
			r.Time -= 300 // out of order
		}
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
		_ = o.add(r)
	}
	hs := []time.Duration{time.Second, time.Minute, time.Hour}
	out := make([]Agg, len(hs))
	sc := lookbackScenario{values: 50}
	for _, at := range []int64{n / 4, n/4 - 1, n / 8, n / 4 * 2} {
		check(t, s, o, at, hs, out, sc)
	}
	// Evicting down to fewer records brings the in-order path back.
	s.Evict(n/4 - 5_000)
	o.evict(n/4 - 5_000)
	if s.Len() > maxLaneRange || s.Len() != len(o.recs) {
		t.Fatalf("Len %d, oracle %d", s.Len(), len(o.recs))
	}
	for _, at := range []int64{n / 4, n/4 - 1, n / 8} {
		check(t, s, o, at, hs, out, sc)
	}
}
