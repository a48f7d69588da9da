package quality

import (
	"math"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/tools/traffic"
)

func approx(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.IsNaN(want) != math.IsNaN(got) || !math.IsNaN(want) && math.Abs(got-want) > 1e-12 {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// scored builds outcomes from scores and labels: fraud ones are card testing.
func scored(pairs ...any) []Outcome {
	var out []Outcome
	for i := 0; i < len(pairs); i += 2 {
		o := Outcome{Score: pairs[i].(float64), Pattern: traffic.Normal}
		if pairs[i+1].(bool) {
			o.Pattern = traffic.CardTesting
		}
		out = append(out, o)
	}
	return out
}

func TestAveragePrecision(t *testing.T) {
	for _, tc := range []struct {
		name string
		os   []Outcome
		want float64
	}{
		// Steps: 1/3·1 + 0 + 1/3·2/3 + 0 + 1/3·3/5 = 34/45.
		{"distinct scores", scored(0.9, true, 0.8, false, 0.7, true, 0.6, false, 0.5, true), 34.0 / 45},
		// The tie at 0.9 is one step: 1/2·1/2 + 1/2·2/3 = 7/12, whichever comes first.
		{"tie, fraud first", scored(0.9, true, 0.9, false, 0.1, true), 7.0 / 12},
		{"tie, legit first", scored(0.9, false, 0.9, true, 0.1, true), 7.0 / 12},
		{"perfect ranking", scored(0.9, true, 0.8, true, 0.1, false), 1},
		{"no fraud", scored(0.9, false, 0.1, false), math.NaN()},
		{"empty", nil, math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) { approx(t, "average precision", AveragePrecision(tc.os), tc.want) })
	}
}

func TestThresholdForRate(t *testing.T) {
	var ten []Outcome
	for i := 1; i <= 10; i++ {
		ten = append(ten, Outcome{Score: float64(i) / 10})
	}
	ties := scored(0.9, false, 0.9, true, 0.9, false, 0.1, false)
	for _, tc := range []struct {
		name      string
		os        []Outcome
		rate      float64
		want      float64
		alertRate float64
	}{
		{"top two of ten", ten, 0.2, 0.9, 0.2},
		{"at least one", ten, 0.05, 1.0, 0.1},
		{"rounds up", ten, 0.25, 0.8, 0.3},
		{"ties flag more", ties, 0.25, 0.9, 0.75},
		{"empty", nil, 0.01, math.NaN(), math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			thr := ThresholdForRate(tc.os, tc.rate)
			approx(t, "threshold", thr, tc.want)
			approx(t, "alert rate", AtThreshold(tc.os, thr).AlertRate, tc.alertRate)
		})
	}
}

func TestAtDecisions(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ato := func(episode, variant, decision string, sec int) Outcome {
		return Outcome{Pattern: traffic.AccountTakeover, Variant: variant, Episode: episode, Decision: decision, EventTime: at(sec)}
	}
	legit := func(tag, decision string) Outcome {
		return Outcome{Pattern: traffic.Normal, LookAlike: tag, Decision: decision}
	}
	os := []Outcome{
		// Episode a arrives out of order: by event time approve, review, approve: first flag at 2.
		ato("a", traffic.VariantBurst, "approve", 3),
		ato("a", traffic.VariantBurst, "approve", 1),
		ato("a", traffic.VariantBurst, "review", 2),
		// Episode b is stopped at once.
		ato("b", traffic.VariantBurst, "decline", 5),
		// Episode c is missed.
		ato("c", traffic.VariantSlowEscalation, "approve", 1),
		ato("c", traffic.VariantSlowEscalation, "approve", 2),
		legit(traffic.LookAlikeTravelArrival, "review"),
		legit(traffic.LookAlikeTravelArrival, "approve"),
		legit(traffic.LookAlikeTravelArrival, "approve"),
		legit(traffic.LookAlikeBigPurchase, "decline"),
		legit("", "approve"),
	}
	op := AtDecisions(os)
	if op.Transactions != 11 || op.Fraud != 6 || op.Flagged != 4 || op.TruePositives != 2 || op.FalsePositives != 2 {
		t.Fatalf("counts %+v", op.Counts)
	}
	approx(t, "precision", op.Precision, 0.5)
	approx(t, "recall", op.Recall, 1.0/3)
	approx(t, "alert rate", op.AlertRate, 4.0/11)
	approx(t, "false-positive rate", op.FalsePositiveRate, 2.0/5)

	want := []struct {
		name                                   string
		tx, flagged, episodes, caught          int
		recall, epRecall, caughtFirst, meanPos float64
	}{
		{"account_takeover", 6, 2, 3, 2, 1.0 / 3, 2.0 / 3, 1.0 / 3, 1.5},
		{"account_takeover/burst", 4, 2, 2, 2, 0.5, 1, 0.5, 1.5},
		{"account_takeover/slow_escalation", 2, 0, 1, 0, 0, 0, 0, math.NaN()},
	}
	if len(op.Patterns) != len(want) {
		t.Fatalf("patterns %+v, want %d", op.Patterns, len(want))
	}
	for i, w := range want {
		t.Run(w.name, func(t *testing.T) {
			p := op.Patterns[i]
			if p.Name != w.name || p.Transactions != w.tx || p.Flagged != w.flagged || p.Episodes != w.episodes || p.Caught != w.caught {
				t.Fatalf("got %+v, want %+v", p, w)
			}
			approx(t, "recall", p.Recall, w.recall)
			approx(t, "episode recall", p.EpisodeRecall, w.epRecall)
			approx(t, "caught first", p.CaughtFirst, w.caughtFirst)
			approx(t, "mean first flag", p.MeanFirstFlag, w.meanPos)
		})
	}
	if l, ok := op.LookAlike(traffic.LookAlikeTravelArrival); !ok || l.Transactions != 3 || l.Flagged != 1 {
		t.Errorf("travel arrivals %+v", l)
	}
	if l, ok := op.LookAlike(traffic.LookAlikeBigPurchase); !ok || l.Rate != 1 {
		t.Errorf("big purchases %+v", l)
	}
	if len(op.LookAlikes) != 2 || op.LookAlikes[0].Tag != traffic.LookAlikeTravelArrival {
		t.Errorf("look-alikes %+v, want travel arrivals then big purchases", op.LookAlikes)
	}
}

func TestNewReport(t *testing.T) {
	// 1,000 transactions scored by rank, 20 of them fraud: the top 5 and
	// every 50th from rank 100. At 0.5 % (5 flagged) the top 5 are all
	// fraud; at 1 % (10 flagged) still 5 of the 20.
	var os []Outcome
	fraud := 0
	for i := range 1000 {
		o := Outcome{Score: 1 - float64(i)/1000, Pattern: traffic.Normal, Decision: "approve"}
		if i < 5 || i >= 100 && i%50 == 0 && fraud < 20 {
			o.Pattern, o.Episode = traffic.AmountSpike, "e"+string(rune('a'+fraud))
			fraud++
		}
		if i < 8 {
			o.Decision = "review"
		}
		os = append(os, o)
	}
	r := NewReport(os)
	if r.Transactions != 1000 || r.Fraud != 20 || len(r.Rates) != 2 {
		t.Fatalf("report %+v", r)
	}
	approx(t, "prevalence", r.Prevalence, 0.02)
	approx(t, "precision at decisions", r.Decisions.Precision, 5.0/8)
	approx(t, "recall at 0.5 %", r.Rates[0].Recall, 5.0/20)
	approx(t, "precision at 0.5 %", r.Rates[0].Precision, 1)
	approx(t, "threshold at 0.5 %", r.Rates[0].Threshold, 1-4.0/1000)
	approx(t, "recall at 1 %", r.Rates[1].Recall, 5.0/20)
	approx(t, "precision at 1 %", r.Rates[1].Precision, 0.5)
	// Average precision: 5 steps at precision 1, then fraud k (k = 6..20) at rank 100+50(k−6)+1.
	want := 5.0 / 20
	for k := 6; k <= 20; k++ {
		want += 1.0 / 20 * float64(k) / float64(100+50*(k-6)+1)
	}
	approx(t, "PR-AUC", r.PRAUC, want)
}
