package windowing_test

import (
	"fmt"
	"time"

	"github.com/fraudstream/fraudstream/pkg/windowing"
)

// count is an Aggregator that counts records.
type count struct{}

func (count) Add(n int, _ string) int { return n + 1 }
func (count) Merge(a, b int) int      { return a + b }
func (count) Result(n int) int        { return n }

var _ windowing.Aggregator[string, int, int] = count{}

func ExampleNewTumbling() {
	a, _ := windowing.NewTumbling(time.Minute)
	fmt.Println(a.Window(90_000))
	// Output: {60000 120000}
}

func ExampleTumbling_AppendWindows() {
	a, _ := windowing.NewTumbling(time.Minute)
	fmt.Println(a.AppendWindows(nil, -1))
	// Output: [{-60000 0}]
}

func ExampleNewSliding() {
	a, _ := windowing.NewSliding(time.Minute, 20*time.Second)
	fmt.Println(a.AppendWindows(nil, 65_000))
	// Output: [{20000 80000} {40000 100000} {60000 120000}]
}

func ExampleWindow_Contains() {
	w := windowing.Window{Start: 0, End: 60_000}
	fmt.Println(w.Contains(0), w.Contains(59_999), w.Contains(60_000), w.MaxTime())
	// Output: true true false 59999
}

// One-minute transaction counts per card, fired by the watermark, with a
// late record re-firing its window as an Update.
func ExampleNewWindows() {
	a, _ := windowing.NewTumbling(time.Minute)
	w := windowing.NewWindows[string](a, windowing.Aggregator[string, int, int](count{}),
		windowing.WithAllowedLateness(30*time.Second))
	_ = w.Add("card-1", 10_000, "tx1")
	_ = w.Add("card-1", 50_000, "tx2")
	_ = w.Add("card-1", 70_000, "tx3")
	var out []windowing.Fired[string, int]
	out = w.Advance(59_999, out[:0]) // the watermark passes the first minute
	fmt.Println(out)
	_ = w.Add("card-1", 40_000, "tx0") // late, within the allowed lateness
	out = w.Advance(60_000, out[:0])
	fmt.Println(out)
	fmt.Println(w.Add("card-1", 20_000, "too late") == nil, w.Add("card-1", 30_001, "late") == nil)
	out = w.Advance(90_000, out[:0]) // 59 999 + 30 s: the first minute is evicted
	fmt.Println(out, w.Len())
	// Output:
	// [{card-1 {0 60000} 2 final}]
	// [{card-1 {0 60000} 3 update}]
	// false true
	// [{card-1 {0 60000} 4 update}] 1
}

func ExampleWindows_Advance() {
	a, _ := windowing.NewSliding(2*time.Minute, time.Minute)
	w := windowing.NewWindows[int](a, windowing.Aggregator[string, int, int](count{}))
	_ = w.Add(7, 61_000, "tx")
	for _, f := range w.Advance(200_000, nil) {
		fmt.Println(f.Key, f.Window, f.Value, f.Kind)
	}
	fmt.Println(w.Len(), w.Watermark())
	// Output:
	// 7 {0 120000} 1 final
	// 7 {60000 180000} 1 final
	// 0 200000
}

// Sessions close after a gap of silence; a late record can merge two.
func ExampleNewSessions() {
	s, _ := windowing.NewSessions[string](10*time.Minute, windowing.Aggregator[string, int, int](count{}),
		windowing.WithAllowedLateness(time.Hour))
	minute := int64(60_000)
	_ = s.Add("card-1", 0*minute, "a")
	_ = s.Add("card-1", 5*minute, "b")
	_ = s.Add("card-1", 20*minute, "c")
	for _, f := range s.Advance(40*minute, nil) {
		fmt.Println(f.Window.Start/minute, f.Window.End/minute, f.Value, f.Kind)
	}
	_ = s.Add("card-1", 12*minute, "late bridge") // joins [0,15) and [20,30)
	for _, f := range s.Advance(40*minute, nil) {
		fmt.Println(f.Window.Start/minute, f.Window.End/minute, f.Value, f.Kind)
	}
	// Output:
	// 0 15 2 final
	// 20 30 1 final
	// 0 30 4 update
}

func ExampleSessions_Advance() {
	s, _ := windowing.NewSessions[int](time.Second, windowing.Aggregator[string, int, int](count{}))
	_ = s.Add(1, 0, "x")
	fmt.Println(len(s.Advance(998, nil)), len(s.Advance(999, nil)), s.Len(), s.Watermark())
	// Output: 0 1 0 999
}

// Velocity features of one card at the time of a new transaction.
func ExampleSeries_Query() {
	const merchant, country = 0, 1
	lb, _ := windowing.NewLookback(windowing.WithDistinctDims(2))
	s := lb.NewSeries()
	minute := int64(60_000)
	for i, m := range []string{"shop-a", "shop-b", "shop-a", "shop-c"} {
		_ = s.Add(windowing.Record{Time: int64(i) * 20 * minute, Value: 1_000 * int64(i+1),
			Distinct: [windowing.MaxDistinctDims]uint64{merchant: windowing.Hash(m), country: windowing.Hash("FR")}})
	}
	_ = s.Add(windowing.Record{Time: 100 * minute, Value: 99}) // arrived early, event time later
	horizons := []time.Duration{time.Minute, 30 * time.Minute, time.Hour, 24 * time.Hour}
	out := make([]windowing.Agg, len(horizons))
	_ = s.Query(60*minute, horizons, out) // (t−d, t] at t = 60 min
	for i, a := range out {
		fmt.Println(horizons[i], a.Count, a.Sum, a.Min, a.Max, a.Distinct[merchant])
	}
	// Output:
	// 1m0s 1 4000 4000 4000 1
	// 30m0s 2 7000 3000 4000 2
	// 1h0m0s 3 9000 2000 4000 3
	// 24h0m0s 4 10000 1000 4000 3
}

func ExampleNewLookback() {
	lb, err := windowing.NewLookback(
		windowing.WithRetention(24*time.Hour),
		windowing.WithLookbackLateness(time.Minute),
		windowing.WithLevels(time.Minute, 10*time.Minute, time.Hour),
	)
	fmt.Println(err, lb.NewSeries().Len())
	_, err = windowing.NewLookback(windowing.WithLevels(time.Minute, 90*time.Second))
	fmt.Println(err != nil)
	// Output:
	// <nil> 0
	// true
}

func ExampleSeries_Add() {
	lb, _ := windowing.NewLookback(windowing.WithRetention(time.Hour))
	s := lb.NewSeries()
	fmt.Println(s.Add(windowing.Record{Time: 10_000_000, Value: 5, Flags: 1}))
	s.Evict(10_000_000 + 3_600_000) // cutoff is now 10 000 000
	fmt.Println(s.Add(windowing.Record{Time: 10_000_000}))
	// Output:
	// <nil>
	// windowing: record too late
}

func ExampleSeries_Evict() {
	lb, _ := windowing.NewLookback(windowing.WithRetention(time.Hour))
	s := lb.NewSeries()
	_ = s.Add(windowing.Record{Time: 0})
	_ = s.Add(windowing.Record{Time: 1_000})
	fmt.Println(s.Evict(3_600_000), s.Len()) // drops the record at 0
	fmt.Println(s.Evict(3_601_000), s.Len()) // nothing left: delete the key
	// Output:
	// false 1
	// true 0
}

func ExampleSeries_MarshalBinary() {
	lb, _ := windowing.NewLookback()
	s := lb.NewSeries()
	_ = s.Add(windowing.Record{Time: 1_700_000_000_000, Value: 1250, Distinct: [windowing.MaxDistinctDims]uint64{windowing.Hash("m1")}})
	b, _ := s.MarshalBinary()
	restored := lb.NewSeries()
	fmt.Println(restored.UnmarshalBinary(b), restored.Len(), b[0])
	// Output: <nil> 1 1
}

func ExampleSeries_AppendBinary() {
	lb, _ := windowing.NewLookback(windowing.WithDistinctDims(2))
	s := lb.NewSeries()
	buf, _ := s.AppendBinary(make([]byte, 0, 64)) // reuse a buffer per batch
	// The version, the cutoff, two empty dictionaries and no records.
	fmt.Println(len(buf))
	// Output: 14
}

// A look-back over what the caller needs: here one distinct dimension
// (devices) and one flag (declined). Fewer dimensions cost less memory
// and work per record; a value in a dimension the look-back does not have
// is refused rather than ignored.
func ExampleWithDistinctDims() {
	const declined = 1 << 0
	lb, _ := windowing.NewLookback(windowing.WithDistinctDims(1), windowing.WithFlags(1))
	s := lb.NewSeries()
	for i, dev := range []string{"phone", "laptop", "phone"} {
		_ = s.Add(windowing.Record{Time: int64(i) * 1_000, Value: 1, Flags: declined,
			Distinct: [windowing.MaxDistinctDims]uint64{windowing.Hash(dev)}})
	}
	err := s.Add(windowing.Record{Time: 5_000, Distinct: [windowing.MaxDistinctDims]uint64{1, 2}})
	out := make([]windowing.Agg, 1)
	_ = s.Query(10_000, []time.Duration{time.Minute}, out)
	fmt.Println(out[0].Count, out[0].Distinct[0], out[0].Flagged[0], err)
	_, err = windowing.NewLookback(windowing.WithDistinctDims(windowing.MaxDistinctDims + 1))
	fmt.Println(err != nil)
	// Output:
	// 3 2 3 windowing: distinct value in a dimension the look-back does not have
	// true
}

func ExampleSeries_Reset() {
	lb, _ := windowing.NewLookback()
	s := lb.NewSeries()
	_ = s.Add(windowing.Record{Time: 5})
	s.Reset()
	fmt.Println(s.Len())
	// Output: 0
}

func ExampleHash() {
	a, b := windowing.Hash("merchant-42"), windowing.Hash("merchant-43")
	fmt.Println(a != 0, a == windowing.Hash("merchant-42"), a != b)
	// Output: true true true
}

// BucketIndex puts a time before the epoch in the bucket before 0, not in
// bucket 0 with the first minute after it.
func ExampleBucketIndex() {
	const minute = 60_000
	fmt.Println(windowing.BucketIndex(59_999, minute), windowing.BucketIndex(60_000, minute), windowing.BucketIndex(-1, minute))
	// Output: 0 1 -1
}
