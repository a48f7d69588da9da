package scorer_test

import (
	"context"
	"fmt"
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
