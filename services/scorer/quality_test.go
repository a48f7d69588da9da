package scorer_test

import (
	"slices"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/services/scorer"
	"github.com/fraudstream/fraudstream/tools/loadgen"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

func simulate(seed uint64, n int, perCardPerHour float64) []traffic.Labeled {
	return traffic.Simulate(traffic.Config{Seed: seed}, n, perCardPerHour, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
}

// evaluate scores ls offline with the default rules and model and returns
// the detection quality.
func evaluate(t testing.TB, ls []traffic.Labeled, deps scorer.Deps) loadgen.Quality {
	t.Helper()
	o, err := scorer.NewOffline(scorer.DefaultConfig(), deps)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := make([]loadgen.Outcome, 0, len(ls))
	for _, l := range ls {
		s, ok, err := o.Score(l.Tx)
		if err != nil {
			t.Fatalf("%s: %v", l.Tx.TransactionID, err)
		}
		if !ok {
			continue
		}
		var codes []string
		for _, r := range s.Reasons {
			if !r.Shadow {
				codes = append(codes, r.Code)
			}
		}
		outcomes = append(outcomes, loadgen.Outcome{Pattern: l.Pattern, Episode: l.Episode, Decision: s.Decision, Reasons: codes})
	}
	return loadgen.ComputeQuality(outcomes)
}

// TestDetectionQuality scores simulated labeled traffic (the generator's
// default settings, a seed the default model was not trained on, each card
// paying about once an hour) with the default rules and model, and checks
// precision and per-scenario recall. The floors sit just below what the
// default rule set (version 3) and model (default-v4) reach today
// (precision 0.915, recall 0.988; per scenario 0.994, 0.988, 1.000, 0.790,
// 0.999 in the order below): a change that makes detection worse fails
// here.
//
// Amount spike fell from 0.930 with rules version 1: this simulator's
// spike is 20–60 times the card's habit over all categories, at an
// electronics or jewelry merchant, which for a card that buys electronics
// is often 2–9 times its usual amount there, the shape of a genuine big
// purchase (docs/detection.md). The amount_spike rule now spares a
// purchase under 10 times the card's usual amount in a category it buys
// in, and the look-alike streams hold it to that.
func TestDetectionQuality(t *testing.T) {
	q := evaluate(t, simulate(2, 100_000, 1), scorer.Deps{})
	t.Logf("overall: precision %.3f recall %.3f false-positive rate %.4f (%d scored, %d fraud, %d flagged)",
		*q.Precision, *q.Recall, *q.FalsePositiveRate, q.Scored, q.Fraud, q.Flagged)
	floors := map[traffic.Pattern]float64{
		traffic.CardTesting:         0.99,
		traffic.AccountTakeover:     0.97,
		traffic.CompromisedMerchant: 0.97,
		traffic.AmountSpike:         0.77, // a spike overlaps legitimate jewelry and electronics purchases
		traffic.ImpossibleTravel:    0.99,
	}
	for _, p := range traffic.Scenarios {
		s := q.Scenarios[p]
		if s == nil || s.Recall == nil {
			t.Errorf("%s: no transactions", p)
			continue
		}
		t.Logf("%-21s recall %.3f (%d of %d), episodes %.3f (%d of %d)", p, *s.Recall, s.Flagged, s.Transactions,
			*s.EpisodeRecall, s.EpisodesDetected, s.Episodes)
		if *s.Recall < floors[p] {
			t.Errorf("%s: recall %.3f, below %.2f", p, *s.Recall, floors[p])
		}
	}
	codes := make([]string, 0, len(q.Reasons))
	for code := range q.Reasons {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	for _, code := range codes {
		r := q.Reasons[code]
		t.Logf("reason %-28s precision %.3f (%d of %d flagged)", code, *r.Precision, r.Fraud, r.Flagged)
	}
	if *q.Precision < 0.90 || *q.Recall < 0.98 {
		t.Errorf("overall precision %.3f, recall %.3f: want at least 0.90 and 0.98", *q.Precision, *q.Recall)
	}
}
