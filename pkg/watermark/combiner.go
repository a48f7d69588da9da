package watermark

import (
	"errors"
	"time"
)

// ErrUnknownInput is returned for an input that was never added or was removed.
var ErrUnknownInput = errors.New("watermark: unknown input")

// Option configures a Combiner.
type Option func(*config)

type config struct {
	delay int64
	idle  int64
}

// WithMaxDelay sets the bounded out-of-orderness of every input: an input's
// watermark is its largest event time minus d.
//
// Default: 0 (inputs are assumed ordered by event time).
func WithMaxDelay(d time.Duration) Option { return func(c *config) { c.delay = max(Millis(d), 0) } }

// WithIdleTimeout sets how long an input may go without data before it stops
// holding the combined watermark back. An idle input rejoins as soon as it
// has data again. Processing time is whatever the caller passes as now.
//
// Default: 0, meaning inputs never become idle.
func WithIdleTimeout(d time.Duration) Option { return func(c *config) { c.idle = max(Millis(d), 0) } }

type input struct {
	gen    Generator
	last   int64 // processing time of the last activity, ms
	active bool  // registered (not removed)
}

// Combiner merges the watermarks of many inputs (the partitions a task
// reads) into one: the minimum over the inputs that are not idle. The
// combined watermark never moves backwards, even when an idle input rejoins
// with older data.
//
// Inputs are small non-negative integers (partition numbers). The Combiner
// reads no clock: every call that can change idleness takes the processing
// time now, in Unix milliseconds, from the caller (an injected clock); a now
// smaller than one seen before counts as the largest seen. It is not safe
// for concurrent use.
type Combiner struct {
	cfg      config
	inputs   []input
	current  int64
	min      int64 // min watermark over non-idle inputs at the last recompute
	deadline int64 // earliest processing time at which a non-idle input turns idle
	idleMask []bool
	now      int64 // largest processing time seen; time never runs backwards here
}

// NewCombiner returns a combiner with no inputs; its watermark is None.
func NewCombiner(opts ...Option) *Combiner {
	c := &Combiner{current: None, min: None, deadline: None, now: None}
	for _, o := range opts {
		o(&c.cfg)
	}
	return c
}

// Add registers an input at processing time now. A registered input with no
// data holds the combined watermark at its current value until it has data
// or turns idle. Adding a present input is a no-op.
func (c *Combiner) Add(in int, now int64) {
	now = c.clock(now)
	if in < 0 {
		c.Tick(now)
		return
	}
	for len(c.inputs) <= in {
		c.inputs = append(c.inputs, input{})
		c.idleMask = append(c.idleMask, false)
	}
	if c.inputs[in].active {
		c.Tick(now)
		return
	}
	c.inputs[in] = input{gen: Generator{delay: c.cfg.delay}, last: now, active: true}
	c.recompute(now)
}

// Remove forgets an input (a revoked partition); it no longer holds the
// others back.
func (c *Combiner) Remove(in int, now int64) {
	now = c.clock(now)
	if in < 0 || in >= len(c.inputs) || !c.inputs[in].active {
		c.Tick(now)
		return
	}
	c.inputs[in] = input{}
	c.recompute(now)
}

// Observe records an event with event time t on input in at processing time
// now and returns the combined watermark. An unknown input is added first.
func (c *Combiner) Observe(in int, t, now int64) int64 {
	now = c.clock(now)
	if in < 0 || in >= len(c.inputs) || !c.inputs[in].active {
		c.Add(in, now)
		if in < 0 {
			return c.current
		}
	}
	p := &c.inputs[in]
	old := p.gen.Current()
	wm := p.gen.Observe(t)
	p.last = now
	// Recompute only when the minimum may have changed: the input was idle
	// (it rejoins), it held the minimum and advanced, or some input's idle
	// deadline passed. Otherwise the minimum and the watermark are unchanged.
	if c.idleMask[in] || (wm != old && old <= c.min) || (c.cfg.idle > 0 && now > c.deadline) {
		c.recompute(now)
	}
	return c.current
}

// Tick re-evaluates idleness at processing time now without new data (call
// it from the poll loop when a poll returns nothing) and returns the
// combined watermark.
func (c *Combiner) Tick(now int64) int64 {
	now = c.clock(now)
	if c.cfg.idle > 0 && now > c.deadline {
		c.recompute(now)
	}
	return c.current
}

// Current returns the combined watermark, or None.
func (c *Combiner) Current() int64 { return c.current }

// Input returns the watermark of one input and whether it was idle at the
// last evaluation.
func (c *Combiner) Input(in int) (wm int64, idle bool, err error) {
	if in < 0 || in >= len(c.inputs) || !c.inputs[in].active {
		return None, false, ErrUnknownInput
	}
	return c.inputs[in].gen.Current(), c.idleMask[in], nil
}

// Restore sets an input's largest event time seen (from a checkpoint) and the
// combined watermark floor; the combined watermark never goes below floor.
func (c *Combiner) Restore(in int, maxSeen, floor, now int64) {
	now = c.clock(now)
	c.Add(in, now)
	if in >= 0 {
		c.inputs[in].gen.Restore(maxSeen)
	}
	c.current = max(c.current, floor)
	c.recompute(now)
}

// clock makes processing time monotone: a now smaller than one already seen
// (a clock step backwards) is read as the largest seen.
func (c *Combiner) clock(now int64) int64 {
	if now > c.now {
		c.now = now
	}
	return c.now
}

func (c *Combiner) recompute(now int64) {
	minWM, any := int64(0), false
	deadline := int64(0)
	for i := range c.inputs {
		p := &c.inputs[i]
		if !p.active {
			c.idleMask[i] = false
			continue
		}
		idle := c.cfg.idle > 0 && now > addSat(p.last, c.cfg.idle)
		c.idleMask[i] = idle
		if idle {
			continue
		}
		wm := p.gen.Current()
		if !any || wm < minWM {
			minWM = wm
		}
		if d := addSat(p.last, c.cfg.idle); !any || d < deadline {
			deadline = d
		}
		any = true
	}
	if !any {
		// Everything idle or nothing registered: hold the watermark; an
		// input that rejoins triggers a recompute.
		c.min, c.deadline = c.current, maxInt
		return
	}
	c.min, c.deadline = minWM, deadline
	if minWM > c.current {
		c.current = minWM
	}
}

const maxInt = int64(^uint64(0) >> 1)

// addSat returns a+b for b ≥ 0, saturating at the largest int64.
func addSat(a, b int64) int64 {
	if a > maxInt-b {
		return maxInt
	}
	return a + b
}
