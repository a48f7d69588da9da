package watermark

import (
	"math/rand/v2"
	"testing"
	"time"
)

// oracle is the brute-force definition of the combined watermark: it keeps
// every observation and recomputes everything from scratch at every step.
type oracle struct {
	delay, idle int64
	inputs      map[int]*oracleInput
	current     int64
	now         int64
}

type oracleInput struct {
	events []int64
	last   int64
}

func newOracle(delay, idle int64) *oracle {
	return &oracle{delay: delay, idle: idle, inputs: map[int]*oracleInput{}, current: None, now: None}
}

func (o *oracle) tick(now int64) {
	o.now = max(o.now, now)
}

func (o *oracle) add(in int, now int64) {
	o.tick(now)
	if in < 0 {
		return
	}
	if _, ok := o.inputs[in]; !ok {
		o.inputs[in] = &oracleInput{last: o.now}
	}
	o.eval()
}

func (o *oracle) remove(in int, now int64) {
	o.tick(now)
	delete(o.inputs, in)
	o.eval()
}

// observe applies the event and its activity, then evaluates once: the
// observed input is never idle at the moment its data arrives.
func (o *oracle) observe(in int, t, now int64) {
	o.tick(now)
	if in < 0 {
		return
	}
	p, ok := o.inputs[in]
	if !ok {
		p = &oracleInput{}
		o.inputs[in] = p
	}
	p.events = append(p.events, t)
	p.last = o.now
	o.eval()
}

func (o *oracle) inputWM(p *oracleInput) int64 {
	if len(p.events) == 0 {
		return None
	}
	m := p.events[0]
	for _, e := range p.events {
		m = max(m, e)
	}
	return Sub(m, o.delay)
}

func (o *oracle) isIdle(p *oracleInput) bool {
	// Written as big-integer arithmetic would read it: now − last > idle.
	return o.idle > 0 && o.now > p.last && uint64(o.now)-uint64(p.last) > uint64(o.idle)
}

func (o *oracle) eval() {
	first := true
	var m int64
	for _, p := range o.inputs {
		if o.isIdle(p) {
			continue
		}
		if w := o.inputWM(p); first || w < m {
			m = w
		}
		first = false
	}
	if !first && m > o.current {
		o.current = m
	}
}

// TestCombinerOracle drives the combiner and the oracle with thousands of
// random out-of-order streams over several inputs, some of which go idle and
// rejoin, and requires the same watermark after every step.
var debugRun = -1

func TestCombinerOracle(t *testing.T) {
	runs := 3000
	if testing.Short() {
		runs = 300
	}
	for run := range runs {
		rng := rand.New(rand.NewPCG(uint64(run), 7))
		delay := rng.Int64N(50)
		idle := []int64{0, 10, 100}[rng.IntN(3)]
		c := NewCombiner(WithMaxDelay(time.Duration(delay)*time.Millisecond), WithIdleTimeout(time.Duration(idle)*time.Millisecond))
		o := newOracle(delay, idle)
		ninputs := 1 + rng.IntN(5)
		now := int64(1000)
		base := make([]int64, ninputs)
		for step := range 200 {
			now += rng.Int64N(20) - 2 // occasionally steps back
			in := rng.IntN(ninputs)
			// Some inputs are quiet for long stretches.
			if in > 0 && (step/50+in)%3 == 0 && rng.IntN(10) > 0 {
				c.Tick(now)
				o.tick(now)
				o.eval()
			} else {
				switch r := rng.IntN(100); {
				case r < 2:
					c.Remove(in, now)
					o.remove(in, now)
				case r < 4:
					c.Add(in, now)
					o.add(in, now)
				default:
					base[in] += rng.Int64N(10)
					ts := base[in] - rng.Int64N(80) // out of order, duplicates, late
					c.Observe(in, ts, now)
					o.observe(in, ts, now)
				}
			}
			if debugRun == run {
				t.Logf("step %d now %d in %d: c=%d o=%d inputs=%v", step, now, in, c.Current(), o.current, c.inputs)
			}
			if got, want := c.Current(), o.current; got != want {
				t.Fatalf("run %d step %d: combined watermark %d, oracle %d", run, step, got, want)
			}
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		t, wm int64
		late  time.Duration
		want  Lateness
	}{
		{t: 101, wm: 100, late: 0, want: OnTime},
		{t: 100, wm: 100, late: 0, want: TooLate},
		{t: 100, wm: 100, late: time.Millisecond, want: Late},
		{t: 91, wm: 100, late: 10 * time.Millisecond, want: Late},
		{t: 90, wm: 100, late: 10 * time.Millisecond, want: TooLate},
		{t: -1 << 63, wm: None, late: time.Hour, want: TooLate},
		{t: -1<<63 + 1, wm: None, late: time.Hour, want: OnTime},
		{t: 5, wm: 10, late: -time.Second, want: TooLate},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			if got := Classify(tt.t, tt.wm, tt.late); got != tt.want {
				t.Errorf("Classify(%d, %d, %v) = %v, want %v", tt.t, tt.wm, tt.late, got, tt.want)
			}
		})
	}
}

func TestGenerator(t *testing.T) {
	g := NewGenerator(5 * time.Millisecond)
	if g.Current() != None || g.MaxSeen() != None {
		t.Fatal("new generator has a watermark")
	}
	for _, tc := range []struct{ t, want int64 }{{10, 5}, {8, 5}, {20, 15}, {-3, 15}} {
		if got := g.Observe(tc.t); got != tc.want {
			t.Fatalf("Observe(%d) = %d, want %d", tc.t, got, tc.want)
		}
	}
	g.Restore(None)
	if g.Current() != None {
		t.Fatal("Restore(None) kept a watermark")
	}
}

func TestCombinerIdleRejoin(t *testing.T) {
	c := NewCombiner(WithIdleTimeout(100 * time.Millisecond))
	c.Add(1, 0)
	c.Observe(0, 1000, 0)
	c.Observe(1, 500, 0)
	if got := c.Current(); got != 500 {
		t.Fatalf("watermark %d, want 500", got)
	}
	// Input 1 goes quiet; after the timeout it no longer holds input 0 back.
	c.Observe(0, 2000, 50)
	if got := c.Current(); got != 500 {
		t.Fatalf("watermark %d before timeout, want 500", got)
	}
	if got := c.Observe(0, 2100, 101); got != 2100 {
		t.Fatalf("watermark %d after timeout, want 2100", got)
	}
	if _, idle, _ := c.Input(1); !idle {
		t.Fatal("input 1 not idle")
	}
	// It rejoins with old data: the watermark does not go back, and now it
	// holds the other input again.
	c.Observe(1, 600, 150)
	if got := c.Observe(0, 3000, 150); got != 2100 {
		t.Fatalf("watermark %d after rejoin, want 2100", got)
	}
	if _, _, err := c.Input(7); err != ErrUnknownInput {
		t.Fatalf("Input(7) err = %v", err)
	}
}
