package watermark_test

import (
	"fmt"
	"time"

	"github.com/fraudstream/fraudstream/pkg/watermark"
)

// A partition's watermark trails its largest event time by the allowed
// disorder, and never goes back.
func ExampleGenerator() {
	g := watermark.NewGenerator(5 * time.Second)
	for _, t := range []int64{60_000, 58_000, 70_000, 61_000} {
		fmt.Println(t, "→", g.Observe(t))
	}
	fmt.Println("max seen:", g.MaxSeen())
	// Output:
	// 60000 → 55000
	// 58000 → 55000
	// 70000 → 65000
	// 61000 → 65000
	// max seen: 70000
}

// Two partitions: the combined watermark is the slower one, until the slow
// one has been idle for longer than the timeout.
func ExampleCombiner() {
	c := watermark.NewCombiner(watermark.WithIdleTimeout(30 * time.Second))
	now := int64(0) // processing time, injected by the caller
	c.Add(0, now)
	c.Add(1, now)
	fmt.Println(c.Observe(0, 100_000, now) == watermark.None) // partition 1 has no data yet
	fmt.Println(c.Observe(1, 40_000, now))
	fmt.Println(c.Observe(0, 160_000, now+10_000)) // partition 1 still holds it back
	now += 35_000                                  // partition 1 has been quiet for 35 s
	fmt.Println(c.Tick(now))
	wm, idle, _ := c.Input(1)
	fmt.Println(wm, idle)
	// Output:
	// true
	// 40000
	// 40000
	// 160000
	// 40000 true
}

func ExampleNewCombiner() {
	c := watermark.NewCombiner(watermark.WithMaxDelay(2*time.Second), watermark.WithIdleTimeout(time.Minute))
	fmt.Println(c.Observe(3, 10_000, 0))
	fmt.Println(c.Current())
	// Output:
	// 8000
	// 8000
}

func ExampleCombiner_Remove() {
	c := watermark.NewCombiner()
	c.Observe(0, 5_000, 0)
	c.Observe(1, 9_000, 0)
	fmt.Println(c.Current())
	c.Remove(0, 0) // partition 0 revoked
	fmt.Println(c.Observe(1, 9_500, 0))
	// Output:
	// 5000
	// 9500
}

func ExampleCombiner_Restore() {
	c := watermark.NewCombiner()
	c.Restore(0, 42_000, 40_000, 0) // from a checkpoint
	fmt.Println(c.Current())
	// Output: 42000
}

func ExampleClassify() {
	wm := int64(100_000)
	for _, t := range []int64{100_001, 100_000, 70_001, 70_000} {
		fmt.Println(t, watermark.Classify(t, wm, 30*time.Second))
	}
	// Output:
	// 100001 on_time
	// 100000 late
	// 70001 late
	// 70000 too_late
}

func ExampleSub() {
	fmt.Println(watermark.Sub(watermark.None, 60_000) == watermark.None)
	fmt.Println(watermark.Sub(100_000, 60_000))
	// Output:
	// true
	// 40000
}

func ExampleMillis() {
	fmt.Println(watermark.Millis(90 * time.Second))
	// Output: 90000
}
