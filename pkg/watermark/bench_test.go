package watermark

import (
	"testing"
	"time"
)

// BenchmarkWatermarkGeneratorObserve is one partition's watermark per event.
func BenchmarkWatermarkGeneratorObserve(b *testing.B) {
	g := NewGenerator(5 * time.Second)
	var ts [1024]int64
	for i := range ts {
		ts[i] = int64(i*10) - int64(i%7)*30 // out of order
	}
	b.ReportAllocs()
	var sink int64
	for i := 0; b.Loop(); i++ {
		sink += g.Observe(ts[i&1023] + int64(i))
	}
	_ = sink
}

// BenchmarkWatermarkCombinerObserve feeds 12 partitions round-robin with
// out-of-order event times and an idle timeout, the scorer's combined case.
func BenchmarkWatermarkCombinerObserve(b *testing.B) {
	const parts = 12
	c := NewCombiner(WithMaxDelay(5*time.Second), WithIdleTimeout(30*time.Second))
	for p := range parts {
		c.Add(p, 0)
	}
	var ts [1024]int64
	for i := range ts {
		ts[i] = int64(i*10) - int64(i%7)*30
	}
	b.ReportAllocs()
	var sink int64
	for i := 0; b.Loop(); i++ {
		sink += c.Observe(i%parts, ts[i&1023]+int64(i), int64(i>>4))
	}
	_ = sink
}

// BenchmarkWatermarkClassify is the per-record lateness decision.
func BenchmarkWatermarkClassify(b *testing.B) {
	b.ReportAllocs()
	var n int
	for i := 0; b.Loop(); i++ {
		n += int(Classify(int64(i&1023), 512, 100*time.Millisecond))
	}
	_ = n
}
