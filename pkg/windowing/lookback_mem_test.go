package windowing

import (
	"runtime"
	"testing"
	"time"
)

// BenchmarkLookbackMemoryPerKey reports the heap held per card's series for
// two shapes of activity: a typical card (10 transactions spread over 24 h)
// and a card-testing burst (1,000 transactions in 10 minutes). It keeps many
// series alive and divides the heap growth by their number.
func BenchmarkLookbackMemoryPerKey(b *testing.B) {
	shapes := []struct {
		name  string
		keys  int
		n     int
		every time.Duration
	}{
		{"Typical10PerDay", 20_000, 10, 24 * time.Hour / 10},
		{"CardTesting1000In10m", 200, 1000, 600 * time.Millisecond},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			for range b.N {
				lb, err := NewLookback(scorerShape...)
				if err != nil {
					b.Fatal(err)
				}
				series := make([]*Series, sh.keys)
				horizons := []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 24 * time.Hour}
				out := make([]Agg, len(horizons))
				before := heapInUse()
				start := int64(1_800_000_000_000)
				for k := range series {
					s := lb.NewSeries()
					for i := 0; i < sh.n; i++ {
						t := start + int64(i)*sh.every.Milliseconds()
						if err := s.Add(Record{Time: t, Value: int64(100 + i%900), Flags: 1,
							Distinct: [MaxDistinctDims]uint64{uint64(1 + i%40), uint64(1 + i%3)}}); err != nil {
							b.Fatal(err)
						}
						if err := s.Query(t, horizons, out); err != nil {
							b.Fatal(err)
						}
					}
					series[k] = s
				}
				after := heapInUse()
				b.ReportMetric(float64(after-before)/float64(sh.keys), "bytes/key")
				runtime.KeepAlive(series)
			}
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
