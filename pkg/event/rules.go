package event

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"time"
)

// Rule modes: an active rule moves the score, a shadow rule is evaluated and
// reported but does not.
const (
	ModeActive = "active"
	ModeShadow = "shadow"
)

// RuleSetKey is the record key under which rule sets are published to the
// compacted fraud-rules topic; compaction keeps only the newest version.
const RuleSetKey = "rules"

// Rule is one expression over the features. Weight w in [0, 1] combines with
// the model probability as score = 1 − (1 − p)·∏(1 − w) over matching
// active rules.
type Rule struct {
	ID          string  `json:"id"`
	Expression  string  `json:"expression"`
	Weight      float64 `json:"weight"`
	ReasonCode  string  `json:"reason_code"`
	Description string  `json:"description,omitempty"`
	Mode        string  `json:"mode"`
}

// RuleSet is a versioned list of rules: the value of a fraud-rules record.
type RuleSet struct {
	Schema    string    `json:"schema"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	Rules     []Rule    `json:"rules"`
}

// Encode returns the JSON form of rs with its schema set.
func (rs RuleSet) Encode() ([]byte, error) {
	rs.Schema = SchemaRules
	if rs.Rules == nil {
		rs.Rules = []Rule{}
	}
	return json.Marshal(rs)
}

// DecodeRuleSet decodes and validates a rule set given by a client (the
// body of PUT /api/v1/rules): unknown fields, keys in another case and
// duplicate keys are refused. Whether each expression compiles against
// the features is the scorer's check, not this package's.
func DecodeRuleSet(b []byte) (RuleSet, error) {
	return decodeRuleSet(b, RejectUnknown)
}

// DecodeRuleSetRecord decodes and validates a fraud-rules record value:
// as DecodeRuleSet, except that unknown fields are ignored, so that rule
// sets published by a newer release still load (IgnoreUnknown).
func DecodeRuleSetRecord(b []byte) (RuleSet, error) {
	return decodeRuleSet(b, IgnoreUnknown)
}

func decodeRuleSet(b []byte, unknown Unknown) (RuleSet, error) {
	var rs RuleSet
	if err := Unmarshal(b, &rs, unknown); err != nil {
		return RuleSet{}, err
	}
	return rs, rs.Validate()
}

var reasonCodeRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// Size limits of a rule set. A matching rule's reason code and description
// are copied into every scored record it matches, so they bound the size
// of scored-transactions records as much as the rule set's own; the cost
// of evaluating expressions is bounded by the scorer's rules package (see
// docs/design/rule-cost.md).
const (
	MaxRules                 = 100       // rules in one set
	MaxRuleExpressionLen     = 2048      // bytes of one expression
	MaxRuleDescriptionLen    = 200       // bytes of one description
	MaxReasonCodeLen         = 64        // bytes of a reason code (reasonCodeRE)
	MaxRuleSetTextBytes      = 128 << 10 // ids, expressions, codes and descriptions of a whole set
	maxRuleSetUpdatedByBytes = 256
)

// Validate checks the structure of a rule set: unique valid ids, weights in
// [0, 1], known modes, non-empty expressions, upper-case reason codes, and
// the size limits above.
func (rs *RuleSet) Validate() error {
	ve := &ValidationError{}
	checkSchema(ve, rs.Schema, SchemaRules)
	if rs.Version < 0 {
		ve.add("/version", "must not be negative")
	}
	if len(rs.Rules) > MaxRules {
		ve.add("/rules", "must hold at most %d rules, got %d", MaxRules, len(rs.Rules))
	}
	if len(rs.UpdatedBy) > maxRuleSetUpdatedByBytes {
		ve.add("/updated_by", "must be at most %d bytes, got %d", maxRuleSetUpdatedByBytes, len(rs.UpdatedBy))
	}
	total := 0
	seen := make(map[string]int, len(rs.Rules))
	for i, r := range rs.Rules {
		p := fmt.Sprintf("/rules/%d", i)
		total += len(r.ID) + len(r.Expression) + len(r.ReasonCode) + len(r.Description)
		checkID(ve, p+"/id", r.ID, true)
		if j, dup := seen[r.ID]; dup && r.ID != "" {
			ve.add(p+"/id", "duplicates the id of rule %d", j)
		}
		seen[r.ID] = i
		if r.Expression == "" {
			ve.add(p+"/expression", "is required")
		} else if len(r.Expression) > MaxRuleExpressionLen {
			ve.add(p+"/expression", "rule %q: must be at most %d bytes, got %d", r.ID, MaxRuleExpressionLen, len(r.Expression))
		}
		if len(r.Description) > MaxRuleDescriptionLen {
			ve.add(p+"/description", "rule %q: must be at most %d bytes, got %d (it is copied into every scored record the rule matches)",
				r.ID, MaxRuleDescriptionLen, len(r.Description))
		}
		if !(r.Weight >= 0 && r.Weight <= 1) || math.IsNaN(r.Weight) {
			ve.add(p+"/weight", "must be between 0 and 1")
		}
		switch {
		case len(r.ReasonCode) > MaxReasonCodeLen:
			ve.add(p+"/reason_code", "rule %q: must be at most %d bytes, got %d", r.ID, MaxReasonCodeLen, len(r.ReasonCode))
		case !reasonCodeRE.MatchString(r.ReasonCode):
			ve.add(p+"/reason_code", "must be upper-case letters, digits and _ starting with a letter, got %q", r.ReasonCode)
		}
		switch r.Mode {
		case ModeActive, ModeShadow:
		default:
			ve.add(p+"/mode", "must be active or shadow, got %q", r.Mode)
		}
	}
	if total > MaxRuleSetTextBytes {
		ve.add("/rules", "ids, expressions, reason codes and descriptions must total at most %d bytes, got %d", MaxRuleSetTextBytes, total)
	}
	return ve.err()
}
