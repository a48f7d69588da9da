package rules_test

import (
	"fmt"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

func Example() {
	set, err := rules.Compile(event.RuleSet{Version: 3, Rules: []event.Rule{
		{ID: "travel", Expression: "kmh_from_prev > 900 && km_from_prev > 500", Weight: 0.85,
			ReasonCode: "IMPOSSIBLE_TRAVEL", Mode: event.ModeActive},
		{ID: "night", Expression: `hour_of_day < 5 && channel == "ecommerce"`, Weight: 0.3,
			ReasonCode: "NIGHT_ECOMMERCE", Mode: event.ModeShadow},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	tx := event.Transaction{AmountMinor: 12000, Channel: event.ChannelEcommerce,
		EventTime: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	f := event.Features{KmFromPrev: 2400, KmhFromPrev: 14400}

	var env rules.Env // one per partition, refilled per transaction
	env.Fill(&tx, &f)
	reasons := set.Evaluate(&env, nil)
	for _, r := range reasons {
		fmt.Println(r.Code, r.Weight, r.Shadow)
	}
	fmt.Printf("score %.3f\n", rules.Combine(0.1, reasons))
	// Output:
	// IMPOSSIBLE_TRAVEL 0.85 false
	// NIGHT_ECOMMERCE 0.3 true
	// score 0.865
}

func ExampleCheck() {
	rs := event.RuleSet{Rules: []event.Rule{
		{ID: "v", Expression: "count_1m >= 5 && amount > 100", Weight: 0.5, ReasonCode: "V", Mode: event.ModeActive},
	}}
	fmt.Println(rules.Check(rs))
	// Output:
	// invalid record: /rules/0/expression: unknown name amount (line 1, column 18)
}
