package event

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func validScored(t *testing.T) Scored {
	t.Helper()
	tx, err := DecodeTransaction([]byte(validJSON))
	if err != nil {
		t.Fatal(err)
	}
	return Scored{
		Transaction: tx,
		Features:    Features{Count1m: 3},
		Score:       0.42,
		Decision:    DecisionApprove,
		Reasons:     []Reason{{Code: "VELOCITY_1M", Source: SourceRule, Weight: 0.3}},
		Partition:   2,
		Offset:      17,
		ScoredAt:    now,
	}
}

func TestScoredRoundTrip(t *testing.T) {
	s := validScored(t)
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "scored_at") {
		t.Fatalf("wall-clock scoring time leaked into the value: %s", b)
	}
	back, err := DecodeScored(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if back.Score != 0.42 || back.Reasons[0].Code != "VELOCITY_1M" || back.Offset != 17 {
		t.Fatalf("round trip lost data: %+v", back)
	}
	b2, _ := back.Encode()
	if string(b) != string(b2) {
		t.Fatalf("encoding not stable:\n%s\n%s", b, b2)
	}
}

func TestScoredValidation(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Scored)
		pointer string
	}{
		{"score above one", func(s *Scored) { s.Score = 1.5 }, "/score"},
		{"decision", func(s *Scored) { s.Decision = "maybe" }, "/decision"},
		{"nested transaction", func(s *Scored) { s.Transaction.Currency = "EURO" }, "/transaction/currency"},
		{"negative offset", func(s *Scored) { s.Offset = -1 }, "/offset"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validScored(t)
			tc.mutate(&s)
			assertPointer(t, s.Validate(), tc.pointer)
		})
	}
}

func TestStats(t *testing.T) {
	s := Stats{Partition: 3, WindowStart: now, WindowEnd: now.Add(time.Minute), Count: 3, Approved: 2, Declined: 1}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeStats(b); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got := string(s.Key()); got != "3/"+strconv.FormatInt(now.UnixMilli(), 10) {
		t.Fatalf("key = %q", got)
	}
	s.Count = 4
	assertPointer(t, s.Validate(), "/count")
	s.Count, s.WindowEnd = 3, now
	assertPointer(t, s.Validate(), "/window_end")
}

func TestRuleSet(t *testing.T) {
	rs := RuleSet{Version: 3, Rules: []Rule{
		{ID: "velocity_1m", Expression: "count_1m >= 5", Weight: 0.6, ReasonCode: "VELOCITY_1M", Mode: ModeActive},
		{ID: "spike", Expression: "amount_zscore > 4", Weight: 0.4, ReasonCode: "AMOUNT_SPIKE", Mode: ModeShadow},
	}}
	b, err := rs.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRuleSet(b); err != nil {
		t.Fatalf("decode: %v", err)
	}
	tests := []struct {
		name    string
		mutate  func(*RuleSet)
		pointer string
	}{
		{"duplicate id", func(rs *RuleSet) { rs.Rules[1].ID = "velocity_1m" }, "/rules/1/id"},
		{"weight", func(rs *RuleSet) { rs.Rules[0].Weight = 2 }, "/rules/0/weight"},
		{"mode", func(rs *RuleSet) { rs.Rules[1].Mode = "on" }, "/rules/1/mode"},
		{"empty expression", func(rs *RuleSet) { rs.Rules[0].Expression = "" }, "/rules/0/expression"},
		{"reason code", func(rs *RuleSet) { rs.Rules[0].ReasonCode = "lower" }, "/rules/0/reason_code"},
		{"long reason code", func(rs *RuleSet) { rs.Rules[0].ReasonCode = "A" + strings.Repeat("B", MaxReasonCodeLen) }, "/rules/0/reason_code"},
		{"long description", func(rs *RuleSet) { rs.Rules[1].Description = strings.Repeat("d", MaxRuleDescriptionLen+1) }, "/rules/1/description"},
		{"long expression", func(rs *RuleSet) {
			rs.Rules[0].Expression = "count_1m >= 5" + strings.Repeat(" ", MaxRuleExpressionLen)
		}, "/rules/0/expression"},
		{"too many rules", func(rs *RuleSet) {
			for i := range MaxRules {
				rs.Rules = append(rs.Rules, Rule{ID: fmt.Sprintf("r%d", i), Expression: "new_country", ReasonCode: "R", Mode: ModeShadow})
			}
		}, "/rules"},
		{"set too large", func(rs *RuleSet) {
			for i := range MaxRuleSetTextBytes / MaxRuleExpressionLen {
				rs.Rules = append(rs.Rules, Rule{ID: fmt.Sprintf("r%d", i), Expression: "new_country" + strings.Repeat(" ", MaxRuleExpressionLen-11),
					ReasonCode: "R", Mode: ModeShadow})
			}
		}, "/rules"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := rs
			c.Rules = append([]Rule(nil), rs.Rules...)
			tc.mutate(&c)
			assertPointer(t, c.Validate(), tc.pointer)
		})
	}
}

func assertPointer(t *testing.T, err error, pointer string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	for _, fe := range ve.Errors {
		if fe.Pointer == pointer {
			return
		}
	}
	t.Fatalf("want an error at %s, got %v", pointer, ve.Errors)
}
