package scorer

import (
	_ "embed"
	"fmt"
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
