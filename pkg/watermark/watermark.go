package watermark

import (
	"math"
	"time"
)

// None is the watermark before any event has been seen: every event is on
// time with respect to it. It is the smallest int64, so comparisons need no
// special case.
const None int64 = math.MinInt64

// Millis converts a length to whole milliseconds, truncating toward zero.
// Lengths (delays, timeouts, lateness, window sizes) are time.Duration in
// this library; instants are int64 Unix milliseconds.
func Millis(d time.Duration) int64 { return int64(d / time.Millisecond) }

// Sub returns t−d, saturating at None instead of wrapping around, so that
// "watermark minus lateness" is safe when the watermark is None.
func Sub(t, d int64) int64 {
	if d <= 0 {
		if d == 0 || t <= math.MaxInt64+d {
			return t - d
		}
		return math.MaxInt64
	}
	if t < None+d {
		return None
	}
	return t - d
}

// Generator is the bounded out-of-orderness watermark of one input (one
// Kafka partition): the watermark is the largest event time seen minus the
// maximum delay the input is allowed to have. An event with event time t is
// expected to arrive before the input has seen an event later than
// t+maxDelay.
//
// The zero value is a generator with zero delay. A Generator is not safe for
// concurrent use; the goroutine that reads the input owns it.
type Generator struct {
	delay   int64
	maxSeen int64
	seen    bool
}

// NewGenerator returns a generator that tolerates maxDelay of disorder.
// Negative delays are treated as zero.
func NewGenerator(maxDelay time.Duration) Generator {
	return Generator{delay: max(Millis(maxDelay), 0)}
}

// Observe records an event time and returns the watermark after it.
func (g *Generator) Observe(t int64) int64 {
	if !g.seen || t > g.maxSeen {
		g.maxSeen, g.seen = t, true
	}
	return Sub(g.maxSeen, g.delay)
}

// Current returns the watermark: max event time seen − max delay, or None.
func (g *Generator) Current() int64 {
	if !g.seen {
		return None
	}
	return Sub(g.maxSeen, g.delay)
}

// MaxSeen returns the largest event time observed, or None.
func (g *Generator) MaxSeen() int64 {
	if !g.seen {
		return None
	}
	return g.maxSeen
}

// Restore sets the largest event time seen, for example from a checkpoint.
// None resets the generator.
func (g *Generator) Restore(maxSeen int64) {
	g.maxSeen, g.seen = maxSeen, maxSeen != None
}

// Lateness says how an event relates to the watermark.
type Lateness uint8

const (
	// OnTime: t > watermark. The event updates state; its windows have not fired.
	OnTime Lateness = iota
	// Late: watermark − allowed lateness < t ≤ watermark. The event still
	// updates state and re-fires the windows that already fired.
	Late
	// TooLate: t ≤ watermark − allowed lateness. The state that would need
	// the event may already be gone; callers must not add it to state.
	TooLate
)

func (l Lateness) String() string {
	switch l {
	case OnTime:
		return "on_time"
	case Late:
		return "late"
	case TooLate:
		return "too_late"
	}
	return "invalid"
}

// Classify tells whether an event with event time t is on time, late or too
// late against watermark wm with the given allowed lateness (negative is zero).
func Classify(t, wm int64, allowedLateness time.Duration) Lateness {
	if t > wm {
		return OnTime
	}
	if t > Sub(wm, max(Millis(allowedLateness), 0)) {
		return Late
	}
	return TooLate
}
