package windowing

import (
	"math/rand/v2"
	"testing"
	"time"
)

var scorerHorizons = []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 24 * time.Hour}

// scorerShape is the look-back's shape in the scorer: two distinct
// dimensions (merchant, country) and one flag (small amount).
var scorerShape = []LookbackOption{WithDistinctDims(2), WithFlags(1)}

// benchLookback feeds one key's events gap ms apart on average (with
// out-of-order jitter), and per op adds the record and queries four
// horizons at its event time; the watermark evicts every 64 events. The
// state is warmed up over more than the retention first, so the timed loop
// is steady state.
func benchLookback(b *testing.B, gap int64) {
	lb, err := NewLookback(append(scorerShape, WithLookbackLateness(time.Minute))...)
	if err != nil {
		b.Fatal(err)
	}
	s := lb.NewSeries()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 1 << 12
	var recs [n]Record
	var out [4]Agg
	now := int64(1_700_000_000_000)
	step := func(i int) {
		r := recs[i&(n-1)]
		r.Time += now
		_ = s.Query(r.Time, scorerHorizons, out[:])
		_ = s.Add(r)
		if i&63 == 0 {
			s.Evict(now - 10_000)
		}
		now += gap
	}
	for i := range recs {
		recs[i] = Record{
			Time:     -rng.Int64N(5_000), // up to 5 s out of order
			Value:    rng.Int64N(50_000),
			Flags:    uint8(rng.IntN(2)),
			Distinct: [MaxDistinctDims]uint64{uint64(rng.IntN(40) + 1), uint64(rng.IntN(5) + 1)},
		}
	}
	warm := int(30*time.Hour/time.Millisecond) / int(gap)
	for i := range warm {
		step(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		step(i)
	}
	b.ReportMetric(float64(s.Len()), "records/key")
}

// A typical card: a transaction every 20 minutes on average.
func BenchmarkLookbackUpdateQuery4Typical(b *testing.B) { benchLookback(b, 20*60_000) }

// A busy card: one every 2 minutes (720 retained records per day).
func BenchmarkLookbackUpdateQuery4Busy(b *testing.B) { benchLookback(b, 2*60_000) }

// A card under a card-testing attack: one every 5 seconds, for 24 hours.
func BenchmarkLookbackUpdateQuery4Attack(b *testing.B) { benchLookback(b, 5_000) }

// BenchmarkLookbackManyKeys spreads events over 100 000 keys (cards), so the
// per-key state is cold in the CPU cache, as in the scorer.
func BenchmarkLookbackManyKeys(b *testing.B) {
	lb, _ := NewLookback(append(scorerShape, WithLookbackLateness(time.Minute))...)
	const keys = 100_000
	series := make([]*Series, keys)
	for i := range series {
		series[i] = lb.NewSeries()
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var out [4]Agg
	now := int64(1_700_000_000_000)
	const n = 1 << 14
	var ks [n]int32
	var recs [n]Record
	for i := range recs {
		ks[i] = int32(rng.IntN(keys))
		recs[i] = Record{Time: -rng.Int64N(5_000), Value: rng.Int64N(50_000), Distinct: [MaxDistinctDims]uint64{uint64(rng.IntN(40) + 1), 1}}
	}
	// Each key sees an event every keys*gap ms: 100 000 × 10 ms ≈ 17 minutes.
	step := func(i int) {
		s := series[ks[i&(n-1)]]
		r := recs[i&(n-1)]
		r.Time += now
		_ = s.Query(r.Time, scorerHorizons, out[:])
		_ = s.Add(r)
		s.Evict(now - 10_000)
		now += 10
	}
	for i := range 30 * 3600 * 100 / 10 { // ~3 h warm-up per key cadence; keys fill
		step(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		step(i)
	}
}

// BenchmarkLookbackMarshal encodes a busy card's state (the changelog write).
func BenchmarkLookbackMarshal(b *testing.B) {
	lb, _ := NewLookback(scorerShape...)
	s := lb.NewSeries()
	for i := range 720 {
		s.Add(Record{Time: int64(i) * 120_000, Value: int64(i), Distinct: [MaxDistinctDims]uint64{uint64(i%40 + 1), 1}})
	}
	buf := make([]byte, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.AppendBinary(buf[:0])
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}
