package loadgen

import (
	"testing"
	"time"
)

func TestEventClock(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	real := newEventClock(Config{Duration: time.Minute, TimeScale: 1}, start)
	if w := start.Add(7 * time.Second); !real.at(w).Equal(w) {
		t.Errorf("time scale 1: %v for %v", real.at(w), w)
	}
	for name, cfg := range map[string]Config{
		"duration":       {Duration: 10 * time.Second, TimeScale: 100},
		"count and rate": {Count: 1000, Rate: 100, TimeScale: 100},
		"the earlier":    {Duration: time.Hour, Count: 1000, Rate: 100, TimeScale: 100},
	} {
		c := newEventClock(cfg, start)
		for _, x := range []struct {
			wall, want time.Duration // after start
		}{
			{0, -990 * time.Second},              // 1000 s of event time end when 10 s of sending do
			{time.Second, -890 * time.Second},    // 100× as fast
			{10 * time.Second, 10 * time.Second}, // reaches the wall clock at the planned end
			{20 * time.Second, 20 * time.Second}, // and never passes it
			{9500 * time.Millisecond, -40 * time.Second},
		} {
			if got := c.at(start.Add(x.wall)); !got.Equal(start.Add(x.want)) {
				t.Errorf("%s: at start+%v: %v, want start%+v", name, x.wall, got.Sub(start), x.want)
			}
		}
	}
}

func TestTimeScaleValidate(t *testing.T) {
	base := Config{Mode: ModeHTTP, IngestURL: "http://127.0.0.1:8081", Count: 10, TimeScale: 50}
	if err := base.Validate(); err == nil {
		t.Error("time scale with a count but no rate accepted: the end of sending is unknown")
	}
	ok := base
	ok.Rate = 10
	if err := ok.Validate(); err != nil {
		t.Errorf("count with rate: %v", err)
	}
	slow := ok
	slow.TimeScale = 0.5
	if slow.Validate() == nil {
		t.Error("time scale below 1 accepted")
	}
}
