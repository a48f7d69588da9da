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

// Validate checks the structure of a rule set: unique valid ids, weights in
// [0, 1], known modes, non-empty expressions, upper-case reason codes.
func (rs *RuleSet) Validate() error {
	ve := &ValidationError{}
	checkSchema(ve, rs.Schema, SchemaRules)
	if rs.Version < 0 {
		ve.add("/version", "must not be negative")
	}
	seen := make(map[string]int, len(rs.Rules))
	for i, r := range rs.Rules {
		p := fmt.Sprintf("/rules/%d", i)
		checkID(ve, p+"/id", r.ID, true)
		if j, dup := seen[r.ID]; dup && r.ID != "" {
			ve.add(p+"/id", "duplicates the id of rule %d", j)
		}
		seen[r.ID] = i
		if r.Expression == "" {
			ve.add(p+"/expression", "is required")
		} else if len(r.Expression) > 4096 {
			ve.add(p+"/expression", "must be at most 4096 characters")
		}
		if !(r.Weight >= 0 && r.Weight <= 1) || math.IsNaN(r.Weight) {
			ve.add(p+"/weight", "must be between 0 and 1")
		}
		if !reasonCodeRE.MatchString(r.ReasonCode) {
			ve.add(p+"/reason_code", "must be upper-case letters, digits and _ starting with a letter, got %q", r.ReasonCode)
		}
		switch r.Mode {
		case ModeActive, ModeShadow:
		default:
			ve.add(p+"/mode", "must be active or shadow, got %q", r.Mode)
		}
	}
	return ve.err()
}
