package scorer

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestTaskStateStaysBounded feeds one task four days of event time (3,300
// cards, one transaction every 3.45 s, as the soak of `make bench` does per
// partition) and checks that what it keeps stops growing once the 24 h
// look-back is full: the cards, the de-duplication ids and each card's
// records are evicted by the watermark at batch ends.
func TestTaskStateStaysBounded(t *testing.T) {
	p, err := newTaskParams(DefaultConfig(), Deps{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	tk, c := newTask(0, p), newBatchCounts()
	rng := rand.New(rand.NewPCG(1, 2))
	step := 3450 * time.Millisecond
	perDay := int(24 * time.Hour / step)
	type size struct{ cards, ids, records int }
	measure := func() size {
		var s size
		s.cards = len(tk.cards)
		s.ids = len(tk.seen)
		for _, cs := range tk.cards {
			s.records += cs.series.Len()
		}
		return s
	}
	var sizes []size
	for i := range 4 * perDay {
		x := testTx(fmt.Sprintf("r%d", i), fmt.Sprintf("c%d", rng.IntN(3300)), time.Unix(0, t0).Add(time.Duration(i)*step).UTC())
		lat, lon := 48+rng.Float64(), 11+rng.Float64()
		x.Lat, x.Lon = &lat, &lon
		tk.process(txRecord(t, 0, int64(i), x), &c)
		if i%50 == 49 { // a batch end
			tk.flush()
			tk.stats.take()
		}
		if i%perDay == perDay-1 {
			sizes = append(sizes, measure())
			t.Logf("day %d: %+v", len(sizes), sizes[len(sizes)-1])
		}
	}
	// Day 1 fills the look-back; from day 2 on the state holds the last
	// 24 h (plus the allowed lateness) and must not keep growing.
	for d := 2; d < len(sizes); d++ {
		prev, cur := sizes[1], sizes[d]
		if cur.ids > prev.ids*11/10 || cur.records > prev.records*11/10 || cur.cards > 3300 {
			t.Errorf("day %d: %+v, grew from day 2's %+v", d+1, cur, prev)
		}
	}
	if sizes[1].ids > perDay*3/2 {
		t.Errorf("day 2 keeps %d ids for %d transactions a day", sizes[1].ids, perDay)
	}
}
