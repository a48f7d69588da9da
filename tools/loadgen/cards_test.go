package loadgen

import (
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/services/scorer"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// TestRunsOfTwoSeedsKeepCardholdersApart scores, with the scorer's own
// offline code and default rules, the traffic of a run with seed 7
// followed by a run with seed 1, as two loadgen runs against one pipeline
// would send it, and checks the impossible-travel flags of the second run.
// A seed decides each card's home city; when both runs named their cards
// alike (the default before card ids carried the seed), every card seemed
// to jump between two cities and IMPOSSIBLE_TRAVEL flagged ordinary
// purchases (precision ≈ 0.02 instead of ≈ 1).
func TestRunsOfTwoSeedsKeepCardholdersApart(t *testing.T) {
	if testing.Short() {
		t.Skip("scores 40,000 transactions")
	}
	run := func(seed uint64, shared bool) traffic.Config {
		c := Config{Traffic: traffic.Config{Seed: seed, IDPrefix: "r" + CardPrefix(seed)[len("card-"):]}}
		if shared {
			c.Traffic.CardPrefix = "card-"
		}
		c.defaults()
		return c.Traffic
	}
	if a, b := run(7, false).CardPrefix, run(1, false).CardPrefix; a == b {
		t.Fatalf("seeds 7 and 1 share the card prefix %q", a)
	}
	precision := func(shared bool) (float64, int) {
		start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		first := traffic.Simulate(run(7, shared), 20_000, 1, start)
		second := traffic.Simulate(run(1, shared), 20_000, 1, first[len(first)-1].Tx.EventTime.Add(time.Minute))
		o, err := scorer.NewOffline(scorer.DefaultConfig(), scorer.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		c := newQualityCounter()
		for i, l := range append(first, second...) {
			s, ok, err := o.Score(l.Tx)
			if err != nil {
				t.Fatal(err)
			}
			if !ok || i < len(first) {
				continue
			}
			out := Outcome{Pattern: l.Pattern, Episode: l.Episode, Decision: s.Decision}
			for _, r := range s.Reasons {
				if !r.Shadow {
					out.Reasons = append(out.Reasons, r.Code)
				}
			}
			c.add(out)
		}
		r := c.result().Reasons["IMPOSSIBLE_TRAVEL"]
		if r == nil || r.Precision == nil {
			t.Fatalf("shared=%v: no IMPOSSIBLE_TRAVEL flags", shared)
		}
		return *r.Precision, r.Flagged
	}
	p, n := precision(false)
	t.Logf("card ids per seed: IMPOSSIBLE_TRAVEL precision %.3f of %d flags", p, n)
	if p < 0.9 {
		t.Errorf("IMPOSSIBLE_TRAVEL precision %.3f (%d flags) with card ids per seed; want ≥ 0.9", p, n)
	}
	// The failure this guards against, shown: one card id, two cardholders.
	p, n = precision(true)
	t.Logf("card ids shared by both seeds: IMPOSSIBLE_TRAVEL precision %.3f of %d flags", p, n)
	if p > 0.5 {
		t.Errorf("shared card ids gave IMPOSSIBLE_TRAVEL precision %.3f; the test no longer shows the collision", p)
	}
}
