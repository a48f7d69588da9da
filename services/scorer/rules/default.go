package rules

import (
	_ "embed"
	"fmt"

	"github.com/fraudstream/fraudstream/pkg/event"
)

//go:embed default_rules.json
var defaultJSON []byte

// DefaultJSON returns the encoded default rule set, version 3: what the
// scorer applies until fraud-rules holds a newer version, and what a
// fresh deployment can publish as its first version.
func DefaultJSON() []byte { return append([]byte(nil), defaultJSON...) }

// Default returns the default rule set: card testing, 1-minute velocity,
// impossible travel, amount spike against the card's baseline, a new
// country with a high amount and a home-country mismatch, all active, plus
// one shadow rule that tries to catch card testing earlier. Thresholds on
// amount_minor assume a currency with two decimals (200.00 is 20000).
func Default() (event.RuleSet, error) {
	rs, err := event.DecodeRuleSet(defaultJSON)
	if err != nil {
		return event.RuleSet{}, fmt.Errorf("default rule set: %w", err)
	}
	return rs, nil
}

// CompileDefault compiles Default.
func CompileDefault(opts ...Option) (*Set, error) {
	rs, err := Default()
	if err != nil {
		return nil, err
	}
	return Compile(rs, opts...)
}

// DefaultRuleSet is Default for callers that cannot handle an error: the
// embedded set is checked by this package's tests.
func DefaultRuleSet() *event.RuleSet {
	rs, err := Default()
	if err != nil {
		panic(err)
	}
	return &rs
}
