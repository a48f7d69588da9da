package windowing

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/watermark"
)

// sumCount is the test aggregate: count and sum of int64 values.
type sumCount struct{}

type sc struct{ N, Sum int64 }

func (sumCount) Add(a sc, v int64) sc { return sc{a.N + 1, a.Sum + v} }
func (sumCount) Merge(a, b sc) sc     { return sc{a.N + b.N, a.Sum + b.Sum} }
func (sumCount) Result(a sc) sc       { return a }

type orec struct {
	key  int
	t, v int64
}

type emitted struct {
	Fired[int, sc]
	wm int64 // watermark when emitted
}

// checkEmissions verifies the rules every emission must follow, and
// returns the last result per (key, window).
func checkEmissions(t *testing.T, em []emitted) map[windowKey[int]]emitted {
	t.Helper()
	last := map[windowKey[int]]emitted{}
	for _, e := range em {
		if e.Window.MaxTime() > e.wm {
			t.Fatalf("%v fired before the watermark passed its end (wm %d)", e.Window, e.wm)
		}
		k := windowKey[int]{e.Key, e.Window.Start}
		prev, seen := last[k]
		if seen && prev.Window != e.Window {
			seen = false // a different session with the same start
		}
		if seen != (e.Kind == Update) {
			t.Fatalf("%v: kind %v after an earlier result", e.Window, e.Kind)
		}
		last[k] = e
	}
	return last
}

// streamFor makes a random out-of-order stream with duplicates, late and
// too-late records over a few keys, and a watermark from a Generator.
func streamFor(rng *rand.Rand, n int, delay int64) (recs []orec, wms []int64) {
	gen := watermark.NewGenerator(time.Duration(delay) * time.Millisecond)
	base := rng.Int64N(1000) - 500
	for i := range n {
		base += rng.Int64N(6)
		r := orec{key: rng.IntN(3), t: base, v: rng.Int64N(100)}
		switch k := rng.IntN(10); {
		case k == 0 && i > 0:
			r = recs[len(recs)-1]
		case k < 3:
			r.t -= rng.Int64N(40)
		case k == 3:
			r.t -= 100 + rng.Int64N(100)
		}
		recs = append(recs, r)
		wms = append(wms, gen.Observe(r.t))
	}
	return recs, wms
}

// TestWindowsOracle drives tumbling and sliding windows with thousands of
// random streams and compares the last result of every window with a
// brute-force aggregate of the records accepted into it.
func TestWindowsOracle(t *testing.T) {
	runs := 2000
	if testing.Short() {
		runs = 200
	}
	for run := range runs {
		rng := rand.New(rand.NewPCG(uint64(run), 5))
		lateness := []int64{0, 7, 30}[rng.IntN(3)]
		var a Assigner
		if rng.IntN(2) == 0 {
			a, _ = NewTumbling(time.Duration(1+rng.IntN(20)) * time.Millisecond)
		} else {
			size := 2 + rng.IntN(20)
			a, _ = NewSliding(time.Duration(size)*time.Millisecond, time.Duration(1+rng.IntN(size))*time.Millisecond)
		}
		w := NewWindows[int](a, Aggregator[int64, sc, sc](sumCount{}), WithAllowedLateness(time.Duration(lateness)*time.Millisecond))
		recs, wms := streamFor(rng, 100+rng.IntN(200), rng.Int64N(20))
		var em []emitted
		var dst []Fired[int, sc]
		var accepted []orec
		for i, r := range recs {
			tooLate := watermark.Classify(r.t, w.Watermark(), time.Duration(lateness)*time.Millisecond) == watermark.TooLate
			err := w.Add(r.key, r.t, r.v)
			if tooLate != (err == ErrTooLate) {
				t.Fatalf("run %d: Add(%d) at wm %d: err %v, too late %v", run, r.t, w.Watermark(), err, tooLate)
			}
			if err == nil {
				accepted = append(accepted, r)
			}
			if rng.IntN(3) == 0 || i == len(recs)-1 {
				dst = w.Advance(wms[i], dst[:0])
				for _, f := range dst {
					em = append(em, emitted{f, w.Watermark()})
				}
			}
		}
		dst = w.Advance(maxTime, dst[:0])
		for _, f := range dst {
			em = append(em, emitted{f, maxTime})
		}
		if w.Len() != 0 {
			t.Fatalf("run %d: %d windows left after the end", run, w.Len())
		}
		last := checkEmissions(t, em)
		want := map[windowKey[int]]sc{}
		for _, r := range accepted {
			for _, win := range a.AppendWindows(nil, r.t) {
				k := windowKey[int]{r.key, win.Start}
				want[k] = sumCount{}.Add(want[k], r.v)
			}
		}
		if len(last) != len(want) {
			t.Fatalf("run %d: %d windows emitted, oracle %d", run, len(last), len(want))
		}
		for k, v := range want {
			if last[k].Value != v {
				t.Fatalf("run %d: window %+v last result %+v, oracle %+v", run, k, last[k].Value, v)
			}
		}
	}
}

// sessionsOracle sessionizes the accepted records of each key from scratch.
func sessionsOracle(accepted []orec, gap int64) map[int][]struct {
	w Window
	v sc
} {
	out := map[int][]struct {
		w Window
		v sc
	}{}
	byKey := map[int][]orec{}
	for _, r := range accepted {
		byKey[r.key] = append(byKey[r.key], r)
	}
	for k, rs := range byKey {
		slices.SortStableFunc(rs, func(a, b orec) int { return int(a.t - b.t) })
		var cur struct {
			w Window
			v sc
		}
		for i, r := range rs {
			if i > 0 && r.t < cur.w.End {
				cur.w.End = max(cur.w.End, r.t+gap)
				cur.v = sumCount{}.Add(cur.v, r.v)
				continue
			}
			if i > 0 {
				out[k] = append(out[k], cur)
			}
			cur.w = Window{r.t, r.t + gap}
			cur.v = sumCount{}.Add(sc{}, r.v)
		}
		out[k] = append(out[k], cur)
	}
	return out
}

// runSessions feeds a stream to Sessions and compares with the oracle;
// shared by the oracle test and the fuzz test.
func runSessions(t *testing.T, recs []orec, wms []int64, gap, lateness int64, advanceEvery func(int) bool) {
	t.Helper()
	s, err := NewSessions[int](time.Duration(gap)*time.Millisecond, Aggregator[int64, sc, sc](sumCount{}), WithAllowedLateness(time.Duration(lateness)*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var em []emitted
	var dst []Fired[int, sc]
	var accepted []orec
	for i, r := range recs {
		tooLate := watermark.Classify(r.t, s.Watermark(), time.Duration(lateness)*time.Millisecond) == watermark.TooLate
		err := s.Add(r.key, r.t, r.v)
		if tooLate != (err == ErrTooLate) {
			t.Fatalf("Add(%d) at wm %d: err %v, too late %v", r.t, s.Watermark(), err, tooLate)
		}
		if err == nil {
			accepted = append(accepted, r)
		}
		if advanceEvery(i) {
			dst = s.Advance(wms[i], dst[:0])
			for _, f := range dst {
				em = append(em, emitted{f, s.Watermark()})
			}
		}
	}
	dst = s.Advance(maxTime, dst[:0])
	for _, f := range dst {
		em = append(em, emitted{f, maxTime})
	}
	if s.Len() != 0 || len(s.heads) != 0 {
		t.Fatalf("%d sessions, %d keys left after the end", s.Len(), len(s.heads))
	}
	// A later emission supersedes earlier ones of the key it contains.
	type res struct {
		w Window
		v sc
	}
	final := map[int][]res{}
	for _, e := range em {
		if e.Window.MaxTime() > e.wm {
			t.Fatalf("%v fired before the watermark passed its end (wm %d)", e.Window, e.wm)
		}
		kept := final[e.Key][:0]
		superseded := false
		for _, r := range final[e.Key] {
			if e.Window.Start <= r.w.Start && r.w.End <= e.Window.End {
				superseded = true
				continue
			}
			kept = append(kept, r)
		}
		if superseded != (e.Kind == Update) {
			t.Fatalf("session %v kind %v, superseded earlier result: %v", e.Window, e.Kind, superseded)
		}
		final[e.Key] = append(kept, res{e.Window, e.Value})
	}
	want := sessionsOracle(accepted, gap)
	for k, ws := range want {
		got := final[k]
		slices.SortFunc(got, func(a, b res) int { return int(a.w.Start - b.w.Start) })
		if len(got) != len(ws) {
			t.Fatalf("key %d: %d sessions %v, oracle %d %v", k, len(got), got, len(ws), ws)
		}
		for i := range ws {
			if got[i].w != ws[i].w || got[i].v != ws[i].v {
				t.Fatalf("key %d session %d: %+v, oracle %+v", k, i, got[i], ws[i])
			}
		}
	}
	for k := range final {
		if _, ok := want[k]; !ok {
			t.Fatalf("key %d emitted but has no accepted records", k)
		}
	}
}

func TestSessionsOracle(t *testing.T) {
	runs := 2000
	if testing.Short() {
		runs = 200
	}
	for run := range runs {
		rng := rand.New(rand.NewPCG(uint64(run), 11))
		gap := 1 + rng.Int64N(15)
		lateness := []int64{0, 5, 40}[rng.IntN(3)]
		recs, wms := streamFor(rng, 100+rng.IntN(200), rng.Int64N(20))
		runSessions(t, recs, wms, gap, lateness, func(int) bool { return rng.IntN(3) == 0 })
	}
}
