package windowing

import (
	"time"

	"github.com/fraudstream/fraudstream/pkg/watermark"
)

// Aggregator is the aggregate a window computes: how to add a record to an
// accumulator, how to merge two accumulators (session windows merge), and
// the result. The zero Acc is the empty accumulator. Implementations are
// usually empty structs, so calls do not allocate.
type Aggregator[In, Acc, Out any] interface {
	Add(acc Acc, in In) Acc
	Merge(a, b Acc) Acc
	Result(acc Acc) Out
}

// Kind tells a window's first result from a later correction.
type Kind uint8

const (
	// Final is the first result of a window, emitted when the watermark
	// passes its end. With zero allowed lateness it is the only one.
	Final Kind = iota
	// Update replaces an earlier result of the same window (late records
	// arrived within the allowed lateness). For session windows, an Update
	// replaces every earlier result of the key whose window it contains.
	Update
)

func (k Kind) String() string {
	if k == Final {
		return "final"
	}
	return "update"
}

// Fired is one emitted window result.
type Fired[K comparable, Out any] struct {
	Key    K
	Window Window
	Value  Out
	Kind   Kind
}

// WindowOption configures Windows and Sessions.
type WindowOption func(*windowConfig)

type windowConfig struct{ lateness int64 }

// WithAllowedLateness keeps windows for d after the watermark passed their
// end: records within it update the window and re-fire it (Update); after
// it the window is evicted and its records are too late.
//
// Default: 0 (a window fires once and is evicted at once).
func WithAllowedLateness(d time.Duration) WindowOption {
	return func(c *windowConfig) { c.lateness = max(millis(d), 0) }
}

// core holds what tumbling, sliding and session windows share: window
// slots, the timer queue and the list of windows to re-fire. Memory is
// reused through free lists, so the steady state does not allocate.
type core[K comparable, In, Acc, Out any] struct {
	agg      Aggregator[In, Acc, Out]
	lateness int64
	wm       int64
	slots    []slot[K, Acc]
	free     []int32
	timers   timerHeap
	dirty    []ref
	seq      uint64
	live     int
}

type slot[K comparable, Acc any] struct {
	key     K
	w       Window
	acc     Acc
	gen     uint32 // bumped whenever timers or dirty entries for the slot become stale
	used    bool
	fired   bool // the watermark passed End−1 and the current result was emitted
	emitted bool // some result for (part of) this window was emitted
	dirty   bool // fired, then changed by a late record
	next    int32
}

type ref struct {
	slot int32
	gen  uint32
}

func newCore[K comparable, In, Acc, Out any](agg Aggregator[In, Acc, Out], opts []WindowOption) core[K, In, Acc, Out] {
	var cfg windowConfig
	for _, o := range opts {
		o(&cfg)
	}
	return core[K, In, Acc, Out]{agg: agg, lateness: cfg.lateness, wm: watermark.None}
}

func (c *core[K, In, Acc, Out]) tooLate(t int64) bool {
	return watermark.Classify(t, c.wm, time.Duration(c.lateness)*time.Millisecond) == watermark.TooLate
}

func (c *core[K, In, Acc, Out]) alloc(key K, w Window) int32 {
	var i int32
	if n := len(c.free); n > 0 {
		i = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		c.slots = append(c.slots, slot[K, Acc]{})
		i = int32(len(c.slots) - 1)
	}
	s := &c.slots[i]
	gen := s.gen + 1
	*s = slot[K, Acc]{key: key, w: w, gen: gen, used: true, next: -1}
	c.live++
	c.schedule(i, w.MaxTime(), false)
	return i
}

func (c *core[K, In, Acc, Out]) release(i int32) {
	s := &c.slots[i]
	var zero slot[K, Acc]
	gen := s.gen + 1
	*s = zero
	s.gen = gen
	c.free = append(c.free, i)
	c.live--
}

func (c *core[K, In, Acc, Out]) schedule(i int32, at int64, cleanup bool) {
	c.seq++
	c.timers.push(timer{at: at, seq: c.seq, slot: i, gen: c.slots[i].gen, cleanup: cleanup})
}

// touched records that slot i changed; a fired window must re-fire.
func (c *core[K, In, Acc, Out]) touched(i int32) {
	s := &c.slots[i]
	if s.fired && !s.dirty {
		s.dirty = true
		c.dirty = append(c.dirty, ref{slot: i, gen: s.gen})
	}
}

// advance moves the watermark and appends what fires. onEvict unlinks a
// slot from the front end's index before it is released.
func (c *core[K, In, Acc, Out]) advance(wm int64, dst []Fired[K, Out], onEvict func(int32)) []Fired[K, Out] {
	if wm > c.wm {
		c.wm = wm
	}
	for _, r := range c.dirty {
		s := &c.slots[r.slot]
		if s.gen != r.gen || !s.dirty {
			continue
		}
		s.dirty = false
		dst = append(dst, Fired[K, Out]{Key: s.key, Window: s.w, Value: c.agg.Result(s.acc), Kind: Update})
	}
	c.dirty = c.dirty[:0]
	for len(c.timers) > 0 && c.timers[0].at <= c.wm {
		tm := c.timers.pop()
		s := &c.slots[tm.slot]
		if s.gen != tm.gen || !s.used {
			continue // the window was merged away or evicted
		}
		if !tm.cleanup {
			kind := Final
			if s.emitted {
				kind = Update
			}
			s.fired, s.emitted, s.dirty = true, true, false
			dst = append(dst, Fired[K, Out]{Key: s.key, Window: s.w, Value: c.agg.Result(s.acc), Kind: kind})
			if c.lateness == 0 || s.w.MaxTime() > maxTime-c.lateness {
				tm.cleanup = true // evict now
			} else {
				c.schedule(tm.slot, s.w.MaxTime()+c.lateness, true)
				continue
			}
		}
		onEvict(tm.slot)
		c.release(tm.slot)
	}
	return dst
}

const maxTime = int64(^uint64(0) >> 1)

// Windows is keyed window state for fixed windows (tumbling or sliding):
// per key and window an accumulator, fired when the watermark passes the
// window end, re-fired for late records within the allowed lateness, then
// evicted. It is a synchronous data structure driven by the caller and not
// safe for concurrent use.
type Windows[K comparable, In, Acc, Out any] struct {
	core[K, In, Acc, Out]
	assigner Assigner
	index    map[windowKey[K]]int32
	scratch  []Window
}

type windowKey[K comparable] struct {
	key   K
	start int64
}

// NewWindows returns empty keyed state for the assigner's windows.
func NewWindows[K comparable, In, Acc, Out any](a Assigner, agg Aggregator[In, Acc, Out], opts ...WindowOption) *Windows[K, In, Acc, Out] {
	return &Windows[K, In, Acc, Out]{core: newCore[K](agg, opts), assigner: a, index: map[windowKey[K]]int32{}}
}

// Add adds a record with event time t to every window of key containing t.
// It returns ErrTooLate (and changes nothing) if t ≤ watermark − allowed
// lateness.
func (w *Windows[K, In, Acc, Out]) Add(key K, t int64, in In) error {
	if w.tooLate(t) {
		return ErrTooLate
	}
	w.scratch = w.assigner.AppendWindows(w.scratch[:0], t)
	for _, win := range w.scratch {
		i, ok := w.index[windowKey[K]{key, win.Start}]
		if !ok {
			i = w.alloc(key, win)
			w.index[windowKey[K]{key, win.Start}] = i
		}
		s := &w.slots[i]
		s.acc = w.agg.Add(s.acc, in)
		w.touched(i)
	}
	return nil
}

// Advance moves the watermark to wm (it never goes back) and appends to dst
// the results that fire: first Updates of fired windows that received late
// records, then windows whose end the watermark passed, in order of end.
// Windows past end + allowed lateness are evicted.
func (w *Windows[K, In, Acc, Out]) Advance(wm int64, dst []Fired[K, Out]) []Fired[K, Out] {
	return w.advance(wm, dst, w.unlink)
}

func (w *Windows[K, In, Acc, Out]) unlink(i int32) {
	s := &w.slots[i]
	delete(w.index, windowKey[K]{s.key, s.w.Start})
}

// Watermark returns the watermark of the last Advance, or watermark.None.
func (w *Windows[K, In, Acc, Out]) Watermark() int64 { return w.wm }

// Len returns the number of windows held.
func (w *Windows[K, In, Acc, Out]) Len() int { return w.live }

// Sessions is keyed state for session windows: a key's session grows while
// its records are less than gap apart and closes after gap of event-time
// silence; a record that bridges two sessions merges them (accumulators
// merged with Aggregator.Merge). A session [first, last+gap) fires when the
// watermark reaches its last instant. Not safe for concurrent use.
type Sessions[K comparable, In, Acc, Out any] struct {
	core[K, In, Acc, Out]
	gap   int64
	heads map[K]int32 // first session of the key, sessions linked in Start order
}

// NewSessions returns empty session state; gap must be at least 1ms.
func NewSessions[K comparable, In, Acc, Out any](gap time.Duration, agg Aggregator[In, Acc, Out], opts ...WindowOption) (*Sessions[K, In, Acc, Out], error) {
	g := millis(gap)
	if g <= 0 {
		return nil, ErrConfig
	}
	return &Sessions[K, In, Acc, Out]{core: newCore[K](agg, opts), gap: g, heads: map[K]int32{}}, nil
}

// Add adds a record to key's session containing t, creating or merging
// sessions as needed. It returns ErrTooLate if t ≤ watermark − allowed
// lateness.
func (s *Sessions[K, In, Acc, Out]) Add(key K, t int64, in In) error {
	if s.tooLate(t) || t > maxTime-s.gap {
		return ErrTooLate
	}
	win := Window{Start: t, End: t + s.gap}
	head, ok := s.heads[key]
	if !ok {
		head = -1
	}
	// Walk the key's sessions in Start order; absorb every one that overlaps.
	var into int32 = -1
	prev := int32(-1)
	merged := false
	for i := head; i >= 0; {
		sl := &s.slots[i]
		next := sl.next
		if sl.w.Start >= win.End {
			break
		}
		switch {
		case sl.w.End <= win.Start: // entirely before
			prev = i
		case into < 0:
			into = i
		default:
			// Overlapping sessions are consecutive: i follows into.
			d := &s.slots[into]
			d.acc = s.agg.Merge(d.acc, sl.acc)
			d.emitted = d.emitted || sl.emitted
			d.w.End = max(d.w.End, sl.w.End)
			d.next = next
			s.release(i)
			merged = true
		}
		i = next
	}
	if into < 0 {
		n := s.alloc(key, win)
		if prev < 0 {
			s.slots[n].next = head
			s.heads[key] = n
		} else {
			s.slots[n].next = s.slots[prev].next
			s.slots[prev].next = n
		}
		into = n
	}
	d := &s.slots[into]
	d.acc = s.agg.Add(d.acc, in)
	nw := Window{Start: min(d.w.Start, win.Start), End: max(d.w.End, win.End)}
	if merged || nw != d.w {
		// The session changed shape: earlier timers are stale, and it fires
		// (again) when the watermark reaches its new end.
		d.w = nw
		d.gen++
		d.fired, d.dirty = false, false
		s.schedule(into, nw.MaxTime(), false)
	} else {
		s.touched(into)
	}
	return nil
}

// Advance moves the watermark to wm (it never goes back) and appends to dst
// what fires, as Windows.Advance does.
func (s *Sessions[K, In, Acc, Out]) Advance(wm int64, dst []Fired[K, Out]) []Fired[K, Out] {
	return s.advance(wm, dst, s.unlink)
}

func (s *Sessions[K, In, Acc, Out]) unlink(i int32) {
	key := s.slots[i].key
	head := s.heads[key]
	if head == i {
		if n := s.slots[i].next; n >= 0 {
			s.heads[key] = n
		} else {
			delete(s.heads, key)
		}
		return
	}
	for j := head; j >= 0; j = s.slots[j].next {
		if s.slots[j].next == i {
			s.slots[j].next = s.slots[i].next
			return
		}
	}
}

// Watermark returns the watermark of the last Advance, or watermark.None.
func (s *Sessions[K, In, Acc, Out]) Watermark() int64 { return s.wm }

// Len returns the number of sessions held.
func (s *Sessions[K, In, Acc, Out]) Len() int { return s.live }
