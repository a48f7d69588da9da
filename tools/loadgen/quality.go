package loadgen

import (
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// Outcome is one scored transaction with its ground truth.
type Outcome struct {
	Pattern  traffic.Pattern
	Episode  string   // the fraud episode, if any (see traffic.Labeled)
	Decision string   // approve, review or decline
	Reasons  []string // reason codes of the scored record
}

// Flagged reports whether the pipeline flagged the transaction: a review or
// a decline.
func (o Outcome) Flagged() bool {
	return o.Decision == event.DecisionReview || o.Decision == event.DecisionDecline
}

// Quality is detection quality against the labels. A flagged fraudulent
// transaction is a true positive, a flagged legitimate one a false
// positive. Ratios with a zero denominator are null.
type Quality struct {
	Scored            int      `json:"scored"`
	Fraud             int      `json:"fraud"`
	Flagged           int      `json:"flagged"`
	TruePositives     int      `json:"true_positives"`
	FalsePositives    int      `json:"false_positives"`
	FalseNegatives    int      `json:"false_negatives"`
	TrueNegatives     int      `json:"true_negatives"`
	Precision         *float64 `json:"precision"`
	Recall            *float64 `json:"recall"`
	F1                *float64 `json:"f1"`
	FalsePositiveRate *float64 `json:"false_positive_rate"`
	// Decisions counts scored transactions per decision.
	Decisions map[string]int `json:"decisions"`
	// Scenarios has the recall of each fraud scenario, per transaction and
	// per episode (an episode counts as detected when any of its
	// fraudulent transactions was flagged).
	Scenarios map[traffic.Pattern]*ScenarioQuality `json:"scenarios"`
	// Reasons has the precision of flags per reason code: of the flagged
	// transactions carrying the code, the share that was fraud.
	Reasons map[string]*ReasonQuality `json:"reasons"`
}

// ScenarioQuality is how well one fraud scenario was caught.
type ScenarioQuality struct {
	Transactions     int      `json:"transactions"`
	Flagged          int      `json:"flagged"`
	Recall           *float64 `json:"recall"`
	Episodes         int      `json:"episodes"`
	EpisodesDetected int      `json:"episodes_detected"`
	EpisodeRecall    *float64 `json:"episode_recall"`
}

// ReasonQuality is the precision of one reason code among flags.
type ReasonQuality struct {
	Flagged   int      `json:"flagged"`
	Fraud     int      `json:"fraud"`
	Precision *float64 `json:"precision"`
}

// qualityCounter accumulates outcomes as they arrive, so a long run keeps
// counters, not transactions.
type qualityCounter struct {
	q        Quality
	episodes map[string]bool // fraud episode → detected
}

func newQualityCounter() *qualityCounter {
	return &qualityCounter{
		q: Quality{Decisions: map[string]int{}, Scenarios: map[traffic.Pattern]*ScenarioQuality{},
			Reasons: map[string]*ReasonQuality{}},
		episodes: map[string]bool{},
	}
}

func (c *qualityCounter) add(o Outcome) {
	q := &c.q
	q.Scored++
	q.Decisions[o.Decision]++
	fraud, flagged := o.Pattern != traffic.Normal, o.Flagged()
	switch {
	case fraud && flagged:
		q.TruePositives++
	case fraud:
		q.FalseNegatives++
	case flagged:
		q.FalsePositives++
	default:
		q.TrueNegatives++
	}
	if flagged {
		q.Flagged++
		for _, code := range o.Reasons {
			r := q.Reasons[code]
			if r == nil {
				r = &ReasonQuality{}
				q.Reasons[code] = r
			}
			r.Flagged++
			if fraud {
				r.Fraud++
			}
		}
	}
	if !fraud {
		return
	}
	q.Fraud++
	s := q.Scenarios[o.Pattern]
	if s == nil {
		s = &ScenarioQuality{}
		q.Scenarios[o.Pattern] = s
	}
	s.Transactions++
	if flagged {
		s.Flagged++
	}
	if o.Episode != "" {
		detected, seen := c.episodes[o.Episode]
		if !seen {
			s.Episodes++
		}
		if flagged && !detected {
			s.EpisodesDetected++
		}
		c.episodes[o.Episode] = detected || flagged
	}
}

// result returns the counts with their ratios.
func (c *qualityCounter) result() Quality {
	q := c.q
	q.Precision = ratio(q.TruePositives, q.Flagged)
	q.Recall = ratio(q.TruePositives, q.Fraud)
	q.FalsePositiveRate = ratio(q.FalsePositives, q.FalsePositives+q.TrueNegatives)
	if q.Precision != nil && q.Recall != nil && *q.Precision+*q.Recall > 0 {
		f1 := 2 * *q.Precision * *q.Recall / (*q.Precision + *q.Recall)
		q.F1 = &f1
	}
	q.Decisions = make(map[string]int, len(c.q.Decisions))
	for k, v := range c.q.Decisions {
		q.Decisions[k] = v
	}
	q.Scenarios = make(map[traffic.Pattern]*ScenarioQuality, len(c.q.Scenarios))
	for p, v := range c.q.Scenarios {
		s := *v
		s.Recall = ratio(s.Flagged, s.Transactions)
		s.EpisodeRecall = ratio(s.EpisodesDetected, s.Episodes)
		q.Scenarios[p] = &s
	}
	q.Reasons = make(map[string]*ReasonQuality, len(c.q.Reasons))
	for code, v := range c.q.Reasons {
		r := *v
		r.Precision = ratio(r.Fraud, r.Flagged)
		q.Reasons[code] = &r
	}
	return q
}

// ComputeQuality is the detection quality of a set of outcomes.
func ComputeQuality(outcomes []Outcome) Quality {
	c := newQualityCounter()
	for _, o := range outcomes {
		c.add(o)
	}
	return c.result()
}

func ratio(a, b int) *float64 {
	if b == 0 {
		return nil
	}
	r := float64(a) / float64(b)
	return &r
}
