package windowing

import (
	"math/rand/v2"
	"testing"
	"time"
)

type statsAgg struct{}

type stats struct{ N, Sum, Max int64 }

func (statsAgg) Add(a stats, v int64) stats { return stats{a.N + 1, a.Sum + v, max(a.Max, v)} }
func (statsAgg) Merge(a, b stats) stats     { return stats{a.N + b.N, a.Sum + b.Sum, max(a.Max, b.Max)} }
func (statsAgg) Result(a stats) stats       { return a }

// benchStream is a steady stream over 1000 keys, one event per ms of event
// time with up to 2 s of disorder; the watermark trails by 3 s and is
// advanced every 16 events, as a poll loop would.
type benchStream struct {
	keys [1 << 12]int32
	jit  [1 << 12]int64
}

func newBenchStream() *benchStream {
	rng := rand.New(rand.NewPCG(9, 9))
	s := &benchStream{}
	for i := range s.keys {
		s.keys[i] = int32(rng.IntN(1000))
		s.jit[i] = rng.Int64N(2000)
	}
	return s
}

// BenchmarkTumblingUpdate adds a record to per-key one-minute windows
// (fraud-stats) and advances the watermark, firing and evicting windows.
func BenchmarkTumblingUpdate(b *testing.B) {
	a, _ := NewTumbling(time.Minute)
	w := NewWindows[int32](a, Aggregator[int64, stats, stats](statsAgg{}), WithAllowedLateness(time.Minute))
	st := newBenchStream()
	var dst []Fired[int32, stats]
	now := int64(1_700_000_000_000)
	step := func(i int) {
		j := i & (len(st.keys) - 1)
		_ = w.Add(st.keys[j], now-st.jit[j], int64(j))
		if i&15 == 0 {
			dst = w.Advance(now-3_000, dst[:0])
		}
		now++
	}
	for i := range 600_000 { // ten minutes of event time: windows fired and recycled
		step(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		step(i)
	}
	b.ReportMetric(float64(w.Len()), "windows")
}

// BenchmarkSlidingUpdate is the same with 5-minute windows every minute
// (five windows per record).
func BenchmarkSlidingUpdate(b *testing.B) {
	a, _ := NewSliding(5*time.Minute, time.Minute)
	w := NewWindows[int32](a, Aggregator[int64, stats, stats](statsAgg{}))
	st := newBenchStream()
	var dst []Fired[int32, stats]
	now := int64(1_700_000_000_000)
	step := func(i int) {
		j := i & (len(st.keys) - 1)
		_ = w.Add(st.keys[j], now-st.jit[j], int64(j))
		if i&15 == 0 {
			dst = w.Advance(now-3_000, dst[:0])
		}
		now++
	}
	for i := range 900_000 {
		step(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		step(i)
	}
}

// BenchmarkSessionUpdate adds records to per-key sessions with a 30 s gap
// (each key sees a record about every second, with bursts and pauses), so
// sessions grow, merge, fire and are evicted.
func BenchmarkSessionUpdate(b *testing.B) {
	s, _ := NewSessions[int32](30*time.Second, Aggregator[int64, stats, stats](statsAgg{}), WithAllowedLateness(time.Minute))
	st := newBenchStream()
	var dst []Fired[int32, stats]
	now := int64(1_700_000_000_000)
	step := func(i int) {
		j := i & (len(st.keys) - 1)
		// Every 100 s of event time, keys pause for 40 s: sessions close.
		t := now - st.jit[j]
		if now%100_000 < 40_000 {
			t -= 40_000
		}
		_ = s.Add(st.keys[j], t, int64(j))
		if i&15 == 0 {
			dst = s.Advance(now-3_000, dst[:0])
		}
		now++
	}
	for i := range 600_000 {
		step(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		step(i)
	}
	b.ReportMetric(float64(s.Len()), "sessions")
}
