package scorer

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/model"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

// Labeled is one training record: a transaction and whether it was fraud.
// Pattern optionally names the kind of fraud (or "normal"). Its JSON form,
// one per line, is the input of `fraudstream train`.
type Labeled struct {
	Transaction event.Transaction `json:"transaction"`
	Fraud       bool              `json:"fraud"`
	Pattern     string            `json:"pattern,omitempty"`
}

// Examples scores labeled transactions offline (see Offline), in the order
// given as the records of one partition, and returns the model's view of
// each: the rules.Env of its features, and its label. Duplicates of an
// earlier transaction_id are skipped, as the scorer drops them; a
// transaction the scorer would dead-letter is an error naming it.
func Examples(cfg Config, deps Deps, ls []Labeled) ([]model.Example, error) {
	o, err := NewOffline(cfg, deps)
	if err != nil {
		return nil, err
	}
	out := make([]model.Example, 0, len(ls))
	for i := range ls {
		s, ok, err := o.Score(ls[i].Transaction)
		if err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", i+1, ls[i].Transaction.TransactionID, err)
		}
		if !ok {
			continue
		}
		out = append(out, model.Example{Env: rules.NewEnv(&s.Transaction, &s.Features), Label: ls[i].Fraud})
	}
	return out, nil
}

// Train fits a logistic-regression model on labeled transactions with the
// scorer's own feature code (Examples), over the features and transforms
// of template (their weights are ignored; see model.Fit).
func Train(cfg Config, deps Deps, ls []Labeled, template []model.Feature, opts ...model.FitOption) (*model.Model, error) {
	ex, err := Examples(cfg, deps, ls)
	if err != nil {
		return nil, err
	}
	return model.Fit(ex, template, opts...)
}

//go:embed training_features.json
var trainingFeaturesJSON string

// TrainingFeatures is the default feature list of Train: every feature
// that simulated or recorded transactions carry, with transforms for
// skewed counts and amounts (Fit standardizes each one). Profile features
// are left out: a model can only learn them from training data that has
// profiles; pass a template with them when it has.
func TrainingFeatures() []model.Feature {
	m, err := model.Load(strings.NewReader(trainingFeaturesJSON))
	if err != nil {
		panic("scorer: built-in training features: " + err.Error())
	}
	return m.Features()
}

// Thresholds are the review and decline thresholds that flag given shares
// of a population's transactions: what a team with a review budget sets
// SCORER_REVIEW_THRESHOLD and SCORER_DECLINE_THRESHOLD to.
type Thresholds struct {
	ReviewRate, DeclineRate float64 // the target shares, in (0, 1)
	Review, Decline         float64 // the scores that reach them
	// Reviewed and Declined are the shares the thresholds actually flag
	// (ties at a threshold can add a few).
	Reviewed, Declined float64
	// ConfigReviewed and ConfigDeclined are the shares the thresholds of
	// the Config given flag, for comparison.
	ConfigReviewed, ConfigDeclined float64
}

// ThresholdsForRates scores labeled transactions with the rules and model
// of deps (Offline, in the order given) and returns the thresholds at
// which reviewRate and declineRate of them score at or above. Both rates
// must be in (0, 1), declineRate at most reviewRate.
func ThresholdsForRates(cfg Config, deps Deps, ls []Labeled, reviewRate, declineRate float64) (Thresholds, error) {
	if !(reviewRate > 0 && reviewRate < 1) || !(declineRate > 0 && declineRate <= reviewRate) {
		return Thresholds{}, fmt.Errorf("alert rates %v and %v: want 0 < decline ≤ review < 1", reviewRate, declineRate)
	}
	o, err := NewOffline(cfg, deps)
	if err != nil {
		return Thresholds{}, err
	}
	scores := make([]float64, 0, len(ls))
	for i := range ls {
		s, ok, err := o.Score(ls[i].Transaction)
		if err != nil {
			return Thresholds{}, fmt.Errorf("record %d (%s): %w", i+1, ls[i].Transaction.TransactionID, err)
		}
		if ok {
			scores = append(scores, s.Score)
		}
	}
	if len(scores) == 0 {
		return Thresholds{}, fmt.Errorf("no transaction to set thresholds on")
	}
	slices.Sort(scores)
	th := Thresholds{ReviewRate: reviewRate, DeclineRate: declineRate}
	th.Review, th.Reviewed = scoreAtRate(scores, reviewRate)
	th.Decline, th.Declined = scoreAtRate(scores, declineRate)
	cfg = cfg.withDefaults()
	th.ConfigReviewed = shareAtOrAbove(scores, cfg.ReviewThreshold)
	th.ConfigDeclined = shareAtOrAbove(scores, cfg.DeclineThreshold)
	return th, nil
}

// scoreAtRate returns, for ascending scores, the score s of the
// transaction at the top rate share (at least one transaction), and the
// share of scores ≥ s.
func scoreAtRate(asc []float64, rate float64) (s, share float64) {
	k := max(int(rate*float64(len(asc))), 1)
	s = asc[len(asc)-k]
	i, _ := slices.BinarySearch(asc, s) // the first score equal to s
	return s, float64(len(asc)-i) / float64(len(asc))
}

// shareAtOrAbove is the share of ascending scores at or above s.
func shareAtOrAbove(asc []float64, s float64) float64 {
	i, _ := slices.BinarySearch(asc, s)
	return float64(len(asc)-i) / float64(len(asc))
}
