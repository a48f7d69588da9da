package traffic

import "time"

// Simulate returns the first n transactions of a generator with cfg, in
// arrival order, on a simulated clock starting at start: arrivals are
// evenly spaced so that each card makes perCardPerHour transactions an
// hour on average (1 is a heavy card user; loadgen's wall-clock rates are
// usually far above that). It is how offline training and the detection
// quality tests get labeled traffic without waiting for it.
func Simulate(cfg Config, n int, perCardPerHour float64, start time.Time) []Labeled {
	g := New(cfg)
	rate := float64(len(g.CardIDs())) * perCardPerHour / 3600 // per second
	step := time.Duration(float64(time.Second) / rate)
	now := start
	out := make([]Labeled, 0, n)
	for len(out) < n {
		now = now.Add(step)
		out = append(out, g.Next(now)) // retries and episode steps come out of Next when due
	}
	return out
}
