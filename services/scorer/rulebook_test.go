package scorer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

func publishRules(t *testing.T, cl *kgo.Client, value []byte) {
	t.Helper()
	r := &kgo.Record{Topic: event.TopicRules, Key: []byte(event.RuleSetKey), Value: value}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatalf("publish rules: %v", err)
	}
}

func encodeRules(t *testing.T, rs event.RuleSet) []byte {
	t.Helper()
	rs.Schema = event.SchemaRules
	v, err := rs.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestScorerHotReloadsRules publishes rule sets while transactions flow:
// a newer valid set applies without a restart and is named in the scored
// records; an invalid one and an older one are refused, and the set in
// force stays. A scorer started later begins with the newest set.
func TestScorerHotReloadsRules(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	cfg := testConfig(brokers, "scorer-rules")
	svc := start(t, cfg)

	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	seq := 0
	// send produces one transaction of a new card and waits for its
	// scored record.
	send := func() event.Scored {
		t.Helper()
		seq++
		id := fmt.Sprintf("hr-%d", seq)
		produce(t, prod, []*kgo.Record{rec(t, tx(id, fmt.Sprintf("card-hr-%d", seq), base.Add(time.Duration(seq)*time.Second)))})
		var got event.Scored
		eventually(t, "scored "+id, func() error {
			for _, r := range readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted()) {
				s, err := event.DecodeScored(r.Value)
				if err == nil && s.Transaction.TransactionID == id {
					got = s
					return nil
				}
			}
			return fmt.Errorf("no scored record for %s", id)
		})
		return got
	}
	if s := send(); s.RuleSetVersion != 1 || len(s.Reasons) != 0 {
		t.Fatalf("before any publication: version %d reasons %+v, want version 1 and none", s.RuleSetVersion, s.Reasons)
	}

	// Version 2: every e-commerce transaction is suspicious.
	v2 := event.RuleSet{Version: 2, UpdatedBy: "analyst", Rules: []event.Rule{{
		ID: "ecom", Expression: `channel == "ecommerce"`, Weight: 0.6, ReasonCode: "ECOM", Mode: event.ModeActive}}}
	publishRules(t, prod, encodeRules(t, v2))
	eventually(t, "rule set 2 applied", func() error {
		if s := send(); s.RuleSetVersion != 2 || len(s.Reasons) != 1 || s.Reasons[0].Code != "ECOM" || s.Decision != event.DecisionReview {
			return fmt.Errorf("version %d, reasons %+v, decision %s", s.RuleSetVersion, s.Reasons, s.Decision)
		}
		return nil
	})

	// Version 3 does not compile (unknown variable); version 1 is older.
	bad := string(encodeRules(t, event.RuleSet{Version: 3, Rules: []event.Rule{{
		ID: "bad", Expression: "no_such_feature > 1", Weight: 0.5, ReasonCode: "BAD", Mode: event.ModeActive}}}))
	publishRules(t, prod, []byte(bad))
	publishRules(t, prod, []byte(`{"schema":"fraudstream.rules.v1","version":`)) // undecodable
	old := v2
	old.Version = 1
	publishRules(t, prod, encodeRules(t, old))
	eventually(t, "both bad sets refused", func() error {
		_, body := get(t, "http://"+svc.svc.Addr()+"/metrics")
		if !strings.Contains(body, "fraudstream_scorer_rule_sets_rejected_total 2") {
			return fmt.Errorf("rejected counter not 2")
		}
		if !strings.Contains(body, "fraudstream_scorer_rule_set_version 2") {
			return fmt.Errorf("rule set version gauge not 2")
		}
		return nil
	})
	if s := send(); s.RuleSetVersion != 2 || len(s.Reasons) != 1 {
		t.Fatalf("after the refused sets: version %d reasons %+v, want version 2 still", s.RuleSetVersion, s.Reasons)
	}
	svc.stop(t)

	// A new instance reads fraud-rules before scoring: version 2 from its
	// first record.
	start(t, cfg)
	if s := send(); s.RuleSetVersion != 2 {
		t.Fatalf("restarted scorer: first record scored with version %d, want 2", s.RuleSetVersion)
	}
}

// TestScorerRefusesCostlyRuleSet: rule sets produced straight to
// fraud-rules, past the API's checks, are held to the same limits: the
// unbounded rule of issue 16 and an oversized description are refused,
// counted, and the set in force stays.
func TestScorerRefusesCostlyRuleSet(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	svc := start(t, testConfig(brokers, "scorer-rulecost"))
	ecom := event.Rule{ID: "ecom", Expression: `channel == "ecommerce"`, Weight: 0.6, ReasonCode: "ECOM", Mode: event.ModeActive}
	publishRules(t, prod, encodeRules(t, event.RuleSet{Version: 2, Rules: []event.Rule{ecom}}))
	metricsHas := func(want ...string) func() error {
		return func() error {
			_, body := get(t, "http://"+svc.svc.Addr()+"/metrics")
			for _, w := range want {
				if !strings.Contains(body, w) {
					return fmt.Errorf("metrics lack %q", w)
				}
			}
			return nil
		}
	}
	eventually(t, "rule set 2 applied", metricsHas("fraudstream_scorer_rule_set_version 2"))

	costly := event.Rule{ID: "costly", Expression: `len(reduce(1..40, #acc + #acc, "x")) > 5`, Weight: 0.1,
		ReasonCode: "COSTLY", Mode: event.ModeShadow}
	publishRules(t, prod, encodeRules(t, event.RuleSet{Version: 3, Rules: []event.Rule{ecom, costly}}))
	wordy := ecom
	wordy.Description = strings.Repeat("very long description ", 12_000) // 251 KB, as in the issue
	// Encoded by hand: Encode does not validate, the scorer must.
	publishRules(t, prod, encodeRules(t, event.RuleSet{Version: 4, Rules: []event.Rule{wordy}}))
	eventually(t, "both sets refused", metricsHas("fraudstream_scorer_rule_sets_rejected_total 2", "fraudstream_scorer_rule_set_version 2"))

	// Still scoring, with version 2.
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	produce(t, prod, []*kgo.Record{rec(t, tx("rc-1", "card-rc", base))})
	eventually(t, "scored with version 2", func() error {
		for _, r := range readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted()) {
			s, err := event.DecodeScored(r.Value)
			if err == nil && s.Transaction.TransactionID == "rc-1" {
				if s.RuleSetVersion != 2 {
					t.Fatalf("scored with version %d, want 2", s.RuleSetVersion)
				}
				return nil
			}
		}
		return errors.New("rc-1 not scored")
	})
}

// TestScorerDisablesRuleOverBudget: a rule over the run-time budget is
// disabled in the scorer, named in a metric, and the partition keeps
// flowing: every transaction is scored, the other rules still match.
func TestScorerDisablesRuleOverBudget(t *testing.T) {
	brokers := newCluster(t)
	prod := newClient(t, brokers)
	cfg := testConfig(brokers, "scorer-ruleguard")
	cfg.RuleRunBudget = time.Nanosecond // every timed VM evaluation is over it
	svc := start(t, cfg)
	publishRules(t, prod, encodeRules(t, event.RuleSet{Version: 2, Rules: []event.Rule{
		{ID: "fast", Expression: `amount_minor > 0`, Weight: 0.1, ReasonCode: "FAST", Mode: event.ModeActive},
		{ID: "vm_rule", Expression: `abs(amount_zscore) >= 0`, Weight: 0.1, ReasonCode: "VM_RULE", Mode: event.ModeShadow},
	}}))
	eventually(t, "rule set 2 applied", func() error {
		if _, body := get(t, "http://"+svc.svc.Addr()+"/metrics"); !strings.Contains(body, "fraudstream_scorer_rule_set_version 2") {
			return errors.New("not yet")
		}
		return nil
	})
	const n = 200
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, rec(t, tx(fmt.Sprintf("rg-%03d", i), "card-rg", base.Add(time.Duration(i)*time.Second))))
	}
	produce(t, prod, recs)
	var scored []event.Scored
	eventually(t, "all scored", func() error {
		scored = scored[:0]
		for _, r := range readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted()) {
			if s, err := event.DecodeScored(r.Value); err == nil && strings.HasPrefix(s.Transaction.TransactionID, "rg-") {
				scored = append(scored, s)
			}
		}
		if len(scored) != n {
			return fmt.Errorf("%d of %d scored", len(scored), n)
		}
		return nil
	})
	with := 0
	for i, s := range scored {
		codes := make([]string, 0, len(s.Reasons))
		for _, r := range s.Reasons {
			codes = append(codes, r.Code)
		}
		if s.RuleSetVersion != 2 || !slices.Contains(codes, "FAST") {
			t.Fatalf("record %d: version %d reasons %v", i, s.RuleSetVersion, codes)
		}
		if slices.Contains(codes, "VM_RULE") {
			if with != i {
				t.Fatalf("record %d matched VM_RULE after it was disabled", i)
			}
			with++
		}
	}
	// Disabled at the 3rd consecutive timed overrun: the 64th, 65th and
	// 66th evaluations; the 66th still counts.
	if with != 66 {
		t.Fatalf("VM_RULE matched %d records, want the first 66", with)
	}
	_, body := get(t, "http://"+svc.svc.Addr()+"/metrics")
	if !strings.Contains(body, `fraudstream_scorer_rules_disabled_total{rule="vm_rule"} 1`) {
		t.Fatal("no rules_disabled_total metric for vm_rule")
	}
}
