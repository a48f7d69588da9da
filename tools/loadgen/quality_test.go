package loadgen

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/tools/traffic"
)

func near(t *testing.T, name string, got *float64, want float64) {
	t.Helper()
	if got == nil || math.Abs(*got-want) > 1e-9 {
		t.Errorf("%s = %v, want %v", name, deref(got), want)
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

func TestComputeQuality(t *testing.T) {
	o := func(p traffic.Pattern, episode, decision string, reasons ...string) Outcome {
		return Outcome{Pattern: p, Episode: episode, Decision: decision, Reasons: reasons}
	}
	outcomes := []Outcome{
		// card testing: two episodes, 3 of 5 flagged, the second episode missed entirely
		o(traffic.CardTesting, "ct-1", "approve"),
		o(traffic.CardTesting, "ct-1", "review", "VELOCITY_1M"),
		o(traffic.CardTesting, "ct-1", "decline", "VELOCITY_1M", "SMALL_COUNT"),
		o(traffic.CardTesting, "ct-1", "decline", "VELOCITY_1M"),
		o(traffic.CardTesting, "ct-2", "approve"),
		// amount spike: 1 of 2 flagged
		o(traffic.AmountSpike, "as-1", "decline", "AMOUNT"),
		o(traffic.AmountSpike, "as-2", "approve"),
		// legitimate: 2 false positives among 5; the first is the legitimate step of an episode
		o(traffic.Normal, "it-1", "review", "VELOCITY_1M"),
		o(traffic.Normal, "", "decline", "AMOUNT"),
		o(traffic.Normal, "", "approve"),
		o(traffic.Normal, "", "approve"),
		o(traffic.Normal, "", "approve"),
	}
	q := ComputeQuality(outcomes)
	if q.Scored != 12 || q.Fraud != 7 || q.Flagged != 6 || q.TruePositives != 4 || q.FalsePositives != 2 ||
		q.FalseNegatives != 3 || q.TrueNegatives != 3 {
		t.Fatalf("counts %+v", q)
	}
	near(t, "precision", q.Precision, 4.0/6)
	near(t, "recall", q.Recall, 4.0/7)
	near(t, "F1", q.F1, 2*(4.0/6)*(4.0/7)/(4.0/6+4.0/7))
	near(t, "false-positive rate", q.FalsePositiveRate, 2.0/5)

	ct := q.Scenarios[traffic.CardTesting]
	if ct.Transactions != 5 || ct.Flagged != 3 || ct.Episodes != 2 || ct.EpisodesDetected != 1 {
		t.Errorf("card testing %+v", ct)
	}
	near(t, "card testing recall", ct.Recall, 0.6)
	near(t, "card testing episode recall", ct.EpisodeRecall, 0.5)
	as := q.Scenarios[traffic.AmountSpike]
	near(t, "amount spike recall", as.Recall, 0.5)
	if _, ok := q.Scenarios[traffic.ImpossibleTravel]; ok {
		t.Error("a scenario that did not occur has a row")
	}

	v := q.Reasons["VELOCITY_1M"]
	if v.Flagged != 4 || v.Fraud != 3 {
		t.Errorf("VELOCITY_1M %+v", v)
	}
	near(t, "VELOCITY_1M precision", v.Precision, 0.75)
	near(t, "AMOUNT precision", q.Reasons["AMOUNT"].Precision, 0.5)
	near(t, "SMALL_COUNT precision", q.Reasons["SMALL_COUNT"].Precision, 1)
	if q.Decisions["approve"] != 6 || q.Decisions["review"] != 2 || q.Decisions["decline"] != 4 {
		t.Errorf("decisions %v", q.Decisions)
	}

	// Undefined ratios are null, not NaN (which JSON cannot carry).
	empty := ComputeQuality([]Outcome{o(traffic.Normal, "", "approve")})
	if empty.Precision != nil || empty.Recall != nil || empty.F1 != nil {
		t.Errorf("ratios without denominators: %+v", empty)
	}
	if _, err := json.Marshal(empty); err != nil {
		t.Error(err)
	}
}

func TestHistogramSummary(t *testing.T) {
	h := newHistogram()
	// 1..1000 ms, one each: the p-th percentile is p·10 ms.
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	s := h.summary()
	for name, c := range map[string]struct{ got, want float64 }{
		"p50": {s.P50, 500}, "p90": {s.P90, 900}, "p99": {s.P99, 990}, "p99.9": {s.P999, 999},
		"max": {s.Max, 1000}, "mean": {s.Mean, 500.5},
	} {
		// Three significant digits: within 0.1%.
		if math.Abs(c.got-c.want) > c.want/1000 {
			t.Errorf("%s = %v ms, want %v ms", name, c.got, c.want)
		}
	}
	if s.Count != 1000 {
		t.Errorf("count %d", s.Count)
	}
	if (newHistogram().summary() != Latency{}) {
		t.Error("an empty histogram has a summary")
	}
	// Non-positive durations (a clock step) count as the smallest value.
	h = newHistogram()
	h.record(-time.Second)
	if s := h.summary(); s.Count != 1 || s.Max > 0.002 {
		t.Errorf("negative duration: %+v", s)
	}
}

func TestReportText(t *testing.T) {
	q := ComputeQuality([]Outcome{{Pattern: traffic.CardTesting, Episode: "ct-1", Decision: "decline", Reasons: []string{"VELOCITY_1M"}},
		{Pattern: traffic.Normal, Decision: "approve"}})
	h := newHistogram()
	h.record(3 * time.Millisecond)
	rep := &Report{Mode: ModeHTTP, Target: "http://127.0.0.1:8081", Seed: 1, SendSeconds: 2, Transactions: 2, Accepted: 2,
		Throughput: 1, Requests: h.summary(), Errors: Errors{"http 503": 3},
		Generated: Gen{ByPattern: map[traffic.Pattern]int{traffic.Normal: 1, traffic.CardTesting: 1}, Episodes: map[traffic.Pattern]int{traffic.CardTesting: 1}},
		E2E:       &E2E{Source: "stream", Scored: 2, Client: h.summary()}, Quality: &q}
	var b strings.Builder
	rep.WriteText(&b)
	for _, want := range []string{"2 accepted", "http 503: 3", "card_testing 1 (1 episodes)", "send → stream (client)     p50 3.00ms",
		"precision 1.000, recall 1.000", "VELOCITY_1M"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
}
