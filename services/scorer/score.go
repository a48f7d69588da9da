package scorer

import (
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/model"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

// scorer is the scoring half of a task: the rules in force and the model
// over one transaction's features. It keeps its scratch space, so scoring
// does not allocate.
type scorer struct {
	env     rules.Env
	reasons []event.Reason
}

// score evaluates set and m on the transaction and its features and
// returns the score, the reasons (the matching rules in rule order, shadow
// ones included, then the model's largest contributions) and the
// probability of the model. The reasons slice is reused by the next call.
//
//	score = 1 − (1 − p_model) · ∏ (1 − w)   over the matching active rules
func (s *scorer) score(tx *event.Transaction, f *event.Features, set *rules.Set, m *model.Model) (float64, []event.Reason) {
	s.env.Fill(tx, f)
	reasons := set.Evaluate(&s.env, s.reasons[:0])
	p, reasons := m.Score(&s.env, reasons)
	s.reasons = reasons
	return rules.Combine(p, reasons), reasons
}

// decide maps a score to a decision; thresholds are inclusive.
func decide(score, review, decline float64) string {
	switch {
	case score >= decline:
		return event.DecisionDecline
	case score >= review:
		return event.DecisionReview
	}
	return event.DecisionApprove
}
