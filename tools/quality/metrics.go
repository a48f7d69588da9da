// Package quality measures fraud detection on labeled populations: how
// well scores rank fraud (PR-AUC), what a threshold catches (precision and
// recall of transactions, recall of episodes per pattern, false alerts on
// legitimate look-alikes), and what a fixed alert budget catches (recall at
// 0.5 % and 1 % of traffic flagged). Eval runs the scorer offline on
// populations of tools/traffic, training on some and testing on others.
//
// Definitions (docs/detection-quality.md has them with the baseline figures):
//
//   - A transaction is flagged at an operating point when the scorer's
//     decision is review or decline (the configured thresholds), or, at a
//     score threshold, when its score is at or above it.
//   - PR-AUC is average precision: over the distinct scores s from high to
//     low, the sum of (recall(s) − recall(previous s)) · precision(s),
//     where a threshold flags every score ≥ s (tied scores are one step).
//   - The threshold for an alert rate r over n transactions is the k-th
//     highest score, k = ⌈r·n⌉; ties at it make the realized rate higher.
//   - An episode is the fraudulent transactions sharing an episode id; it
//     is caught when any of them is flagged. Its first-flag position is the
//     1-based rank, by event time, of its first flagged fraud transaction
//     (1 means the very first fraudulent transaction was stopped).
//   - A look-alike's false-alert rate is the share of legitimate
//     transactions with that tag that were flagged.
package quality

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// Outcome is one scored transaction with its ground truth.
type Outcome struct {
	Score     float64
	Decision  string // approve, review or decline
	Pattern   traffic.Pattern
	Variant   string
	Episode   string
	LookAlike string
	EventTime time.Time
}

// Fraud reports whether the transaction was fraudulent.
func (o Outcome) Fraud() bool { return o.Pattern != traffic.Normal && o.Pattern != "" }

// Flagged reports whether the scorer's decision flagged the transaction.
func (o Outcome) Flagged() bool {
	return o.Decision == event.DecisionReview || o.Decision == event.DecisionDecline
}

// Counts is a confusion matrix with its ratios; a ratio with a zero
// denominator is NaN.
type Counts struct {
	Transactions, Fraud, Flagged int
	TruePositives                int
	FalsePositives               int
	Precision, Recall            float64
	AlertRate                    float64 // flagged / transactions
	FalsePositiveRate            float64 // false positives / legitimate
}

func (c *Counts) finish() {
	c.Precision = ratio(c.TruePositives, c.Flagged)
	c.Recall = ratio(c.TruePositives, c.Fraud)
	c.AlertRate = ratio(c.Flagged, c.Transactions)
	c.FalsePositiveRate = ratio(c.FalsePositives, c.Transactions-c.Fraud)
}

// PatternQuality is how well one fraud pattern (or one variant of it,
// Name "pattern/variant") was caught.
type PatternQuality struct {
	Name          string
	Transactions  int
	Flagged       int
	Recall        float64 // of transactions
	Episodes      int
	Caught        int
	EpisodeRecall float64
	// CaughtFirst is the share of episodes caught at their first fraud
	// transaction; MeanFirstFlag the mean first-flag position of caught
	// episodes.
	CaughtFirst   float64
	MeanFirstFlag float64
}

// LookAlikeRate is the false-alert rate on one kind of legitimate
// look-alike.
type LookAlikeRate struct {
	Tag          string
	Transactions int
	Flagged      int
	Rate         float64
}

// Operating is detection at one operating point.
type Operating struct {
	Name      string
	Threshold float64 // NaN when flags are the scorer's decisions
	Counts
	Patterns   []PatternQuality // patterns in traffic.Scenarios order, then their variants
	LookAlikes []LookAlikeRate  // in traffic.LookAlikes order, those present
}

// Pattern returns the quality of the named pattern or variant, if present.
func (op Operating) Pattern(name string) (PatternQuality, bool) {
	for _, p := range op.Patterns {
		if p.Name == name {
			return p, true
		}
	}
	return PatternQuality{}, false
}

// LookAlike returns the false-alert rate of the tag, if present.
func (op Operating) LookAlike(tag string) (LookAlikeRate, bool) {
	for _, l := range op.LookAlikes {
		if l.Tag == tag {
			return l, true
		}
	}
	return LookAlikeRate{}, false
}

// AtDecisions is detection with the scorer's own decisions as flags.
func AtDecisions(os []Outcome) Operating {
	op := evaluate(os, Outcome.Flagged)
	op.Name, op.Threshold = "decisions", math.NaN()
	return op
}

// AtThreshold is detection with every score ≥ threshold flagged.
func AtThreshold(os []Outcome, threshold float64) Operating {
	return evaluate(os, func(o Outcome) bool { return o.Score >= threshold })
}

func evaluate(os []Outcome, flagged func(Outcome) bool) Operating {
	var op Operating
	type ep struct {
		pattern, variant string
		times            []time.Time
		flags            []bool
	}
	episodes := map[string]*ep{}
	var order []string
	pats := map[string]*PatternQuality{}
	looks := map[string]*LookAlikeRate{}
	pq := func(name string) *PatternQuality {
		if pats[name] == nil {
			pats[name] = &PatternQuality{Name: name}
		}
		return pats[name]
	}
	for _, o := range os {
		f := flagged(o)
		op.Transactions++
		if f {
			op.Flagged++
		}
		if !o.Fraud() {
			if f {
				op.FalsePositives++
			}
			if o.LookAlike != "" {
				l := looks[o.LookAlike]
				if l == nil {
					l = &LookAlikeRate{Tag: o.LookAlike}
					looks[o.LookAlike] = l
				}
				l.Transactions++
				if f {
					l.Flagged++
				}
			}
			continue
		}
		op.Fraud++
		if f {
			op.TruePositives++
		}
		names := []string{string(o.Pattern)}
		if o.Variant != "" {
			names = append(names, string(o.Pattern)+"/"+o.Variant)
		}
		for _, n := range names {
			p := pq(n)
			p.Transactions++
			if f {
				p.Flagged++
			}
		}
		key := o.Episode
		if key == "" { // a fraud transaction without an episode is an episode of its own
			key = "\x00" + strconv.Itoa(len(order))
		}
		e := episodes[key]
		if e == nil {
			e = &ep{pattern: string(o.Pattern), variant: o.Variant}
			episodes[key] = e
			order = append(order, key)
		}
		e.times = append(e.times, o.EventTime)
		e.flags = append(e.flags, f)
	}
	op.finish()
	firstSum := map[string]int{}
	for _, key := range order {
		e := episodes[key]
		idx := make([]int, len(e.times))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return e.times[a].Compare(e.times[b]) })
		first := 0
		for rank, i := range idx {
			if e.flags[i] {
				first = rank + 1
				break
			}
		}
		names := []string{e.pattern}
		if e.variant != "" {
			names = append(names, e.pattern+"/"+e.variant)
		}
		for _, n := range names {
			p := pq(n)
			p.Episodes++
			if first > 0 {
				p.Caught++
				firstSum[n] += first
				if first == 1 {
					p.CaughtFirst++ // a count until finished below
				}
			}
		}
	}
	for _, p := range pats {
		p.Recall = ratio(p.Flagged, p.Transactions)
		p.EpisodeRecall = ratio(p.Caught, p.Episodes)
		p.MeanFirstFlag = ratio(firstSum[p.Name], p.Caught)
		p.CaughtFirst /= float64(p.Episodes)
		op.Patterns = append(op.Patterns, *p)
	}
	// Patterns in Scenarios order, each followed by its variants by name.
	rank := func(name string) int {
		base, _, _ := strings.Cut(name, "/")
		if i := slices.Index(traffic.Scenarios, traffic.Pattern(base)); i >= 0 {
			return i
		}
		return len(traffic.Scenarios)
	}
	slices.SortFunc(op.Patterns, func(a, b PatternQuality) int {
		return cmp.Or(cmp.Compare(rank(a.Name), rank(b.Name)),
			cmp.Compare(strings.Count(a.Name, "/"), strings.Count(b.Name, "/")), cmp.Compare(a.Name, b.Name))
	})
	for _, tag := range traffic.LookAlikes {
		if l := looks[tag]; l != nil {
			l.Rate = ratio(l.Flagged, l.Transactions)
			op.LookAlikes = append(op.LookAlikes, *l)
			delete(looks, tag)
		}
	}
	var rest []string
	for tag := range looks {
		rest = append(rest, tag)
	}
	slices.Sort(rest)
	for _, tag := range rest {
		l := looks[tag]
		l.Rate = ratio(l.Flagged, l.Transactions)
		op.LookAlikes = append(op.LookAlikes, *l)
	}
	return op
}

// AveragePrecision is the area under the precision-recall curve as
// average precision (see the package comment); NaN without fraud.
func AveragePrecision(os []Outcome) float64 {
	idx := byScore(os)
	fraud := 0
	for _, o := range os {
		if o.Fraud() {
			fraud++
		}
	}
	if fraud == 0 {
		return math.NaN()
	}
	ap, tp, n, prevRecall := 0.0, 0, 0, 0.0
	for k := 0; k < len(idx); {
		s := os[idx[k]].Score
		for ; k < len(idx) && os[idx[k]].Score == s; k++ {
			n++
			if os[idx[k]].Fraud() {
				tp++
			}
		}
		recall := float64(tp) / float64(fraud)
		ap += (recall - prevRecall) * float64(tp) / float64(n)
		prevRecall = recall
	}
	return ap
}

// ThresholdForRate is the score threshold that flags a share rate of os:
// the k-th highest score, k = ⌈rate·len(os)⌉ (at least 1). NaN when os is
// empty.
func ThresholdForRate(os []Outcome, rate float64) float64 {
	if len(os) == 0 {
		return math.NaN()
	}
	idx := byScore(os)
	k := min(max(int(math.Ceil(rate*float64(len(os))-1e-9)), 1), len(os))
	return os[idx[k-1]].Score
}

// byScore returns the indexes of os by descending score, ties in input
// order.
func byScore(os []Outcome) []int {
	idx := make([]int, len(os))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(os[b].Score, os[a].Score) })
	return idx
}

// RateQuality is detection when the top rate of traffic by score is
// flagged.
type RateQuality struct {
	Rate      float64
	Threshold float64
	Counts
}

// Report is the detection quality of one population under one model.
type Report struct {
	Transactions, Fraud int
	Prevalence          float64
	PRAUC               float64
	Decisions           Operating     // at the scorer's configured thresholds
	Rates               []RateQuality // at fixed alert rates (chosen on this population)
}

// AlertRates are the alert budgets reported by NewReport.
var AlertRates = []float64{0.005, 0.01}

// NewReport measures os.
func NewReport(os []Outcome) Report {
	r := Report{PRAUC: AveragePrecision(os), Decisions: AtDecisions(os)}
	r.Transactions, r.Fraud = r.Decisions.Transactions, r.Decisions.Fraud
	r.Prevalence = ratio(r.Fraud, r.Transactions)
	for _, rate := range AlertRates {
		thr := ThresholdForRate(os, rate)
		r.Rates = append(r.Rates, RateQuality{Rate: rate, Threshold: thr, Counts: AtThreshold(os, thr).Counts})
	}
	return r
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}
