package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// issueReduce is the rule of issue 16 that took the scorers down: a string
// that doubles with every element (2^40 bytes).
const issueReduce = `len(reduce(1..40, #acc + #acc, "x")) > 5`

func fieldErrors(t *testing.T, err error) []event.FieldError {
	t.Helper()
	var ve *event.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *event.ValidationError, got %v", err)
	}
	return ve.Errors
}

// TestCostRefused: expressions whose cost per transaction has no bound, or
// one above the limits, are refused at compile time, naming the rule.
func TestCostRefused(t *testing.T) {
	tests := []struct{ name, expression, want string }{
		{"issue reduce", issueReduce, "accumulator grows"},
		{"issue reduce 1..25", `len(reduce(1..25, #acc + #acc, "x")) > 5`, "accumulator grows"},
		{"reduce growing list", `len(reduce(1..30, #acc + #acc, [1])) > 5`, "accumulator grows"},
		{"range over a feature", `any(1..count_24h, {# == 3})`, "constant integer bounds"},
		{"range over a feature in", `3 in 0..sum_24h`, "constant integer bounds"},
		{"huge range", `any(1..100000000, {# == 3})`, "more than 16384 bytes"},
		{"nested closures", `any(1..1000, {any(1..1000, {# == count_1m})})`, "no bound within"},
		{"repeat with a feature", `len(repeat("x", count_24h)) > 1`, "constant count"},
		{"repeat too large", `len(repeat("x", 1000000)) > 1`, "more than"},
		{"let doubling", `let a = channel + channel; let b = a + a; let c = b + b; let d = c + c; let e = d + d;
			let f = e + e; let g = f + f; let h = g + g; let i = h + h; let j = i + i; let k = j + j; len(k) > 1`, "no bound within"},
		{"string of a range", `len(string(1..5000)) > 1`, "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(ruleSet(rule("ok", "count_1m >= 5", 0.5, "active"), rule("costly", tc.expression, 0.1, "shadow")))
			fe := fieldErrors(t, err)
			if len(fe) != 1 || fe[0].Pointer != "/rules/1/expression" ||
				!strings.Contains(fe[0].Detail, `rule "costly"`) || !strings.Contains(fe[0].Detail, tc.want) {
				t.Fatalf("errors %+v, want one on /rules/1/expression naming the rule and %q", fe, tc.want)
			}
		})
	}
}

// TestCostAccepted: the shapes analysts write keep compiling, the built-in
// set among them (TestDefaultCompiles).
func TestCostAccepted(t *testing.T) {
	for _, e := range []string{
		`count_1m >= 5 && !new_merchant`,
		`merchant_category in ["4829", "5045", "5732", "5815", "5816", "5817", "5818", "5944", "6051", "7995"]`,
		`hour_of_day in 0..5`,
		`abs(amount_zscore) > 3 && upper(channel) == "ECOMMERCE"`,
		`channel matches "^e" || merchant_country startsWith "N"`,
		`any(["NG", "RU", "BR"], {# == merchant_country})`,
		`reduce(1..30, #acc + #, 0) > count_1m`,
		`let big = amount_usd > 500; big && new_country`,
		`len(repeat(channel, 4)) > 10`,
		`$env.count_1m > 1`,
		`count_10m > 0 && amount_minor % count_10m == 0`,
	} {
		t.Run(e, func(t *testing.T) {
			if _, err := Compile(ruleSet(rule("r", e, 0.5, "active"))); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCostLimits: the node count and the set's total are limits of their own.
func TestCostLimits(t *testing.T) {
	t.Run("nodes", func(t *testing.T) {
		e := "count_1m > 0" + strings.Repeat(" && count_1m > 0", 100)
		fe := fieldErrors(t, func() error { _, err := Compile(ruleSet(rule("long", e, 0.5, "active"))); return err }())
		if len(fe) != 1 || fe[0].Pointer != "/rules/0/expression" {
			t.Fatalf("errors %+v", fe)
		}
	})
	t.Run("set", func(t *testing.T) {
		var rs []event.Rule
		for i := range 20 {
			rs = append(rs, rule(fmt.Sprintf("r%d", i), `any(1..1000, {# == count_1m})`, 0.1, "shadow"))
		}
		fe := fieldErrors(t, func() error { _, err := Compile(ruleSet(rs...)); return err }())
		if len(fe) != 1 || fe[0].Pointer != "/rules" || !strings.Contains(fe[0].Detail, "together") {
			t.Fatalf("errors %+v", fe)
		}
	})
}

// TestCheckMeasures: Check evaluates rules on sample transactions and
// refuses one over the measured budget, naming it; fast-path rules are not
// measured.
func TestCheckMeasures(t *testing.T) {
	rs := ruleSet(
		rule("fast", "count_1m >= 5", 0.5, "active"),
		rule("vm", `abs(amount_zscore) > 3 && count_24h % 7 == 1`, 0.1, "shadow"),
	)
	if err := Check(rs); err != nil {
		t.Fatalf("default budget: %v", err)
	}
	err := Checker(Limits{EvalBudget: time.Nanosecond})(rs)
	fe := fieldErrors(t, err)
	if len(fe) != 1 || fe[0].Pointer != "/rules/1/expression" || !strings.Contains(fe[0].Detail, `rule "vm"`) ||
		!strings.Contains(fe[0].Detail, "above the budget of 1ns") {
		t.Fatalf("errors %+v", fe)
	}
	fe = fieldErrors(t, Checker(Limits{EvalAllocBudget: 1})(rs))
	if len(fe) != 1 || !strings.Contains(fe[0].Detail, "allocates") {
		t.Fatalf("errors %+v", fe)
	}
	// The issue's rule never reaches the measurement.
	start := time.Now()
	fe = fieldErrors(t, Check(ruleSet(rule("x", issueReduce, 0.1, "shadow"))))
	if len(fe) != 1 || time.Since(start) > time.Second {
		t.Fatalf("errors %+v after %v", fe, time.Since(start))
	}
}

// TestRunTimeGuardTime: a rule on the VM whose timed evaluations exceed the
// run-time budget is disabled, once, with its reason; the other rules go
// on matching.
func TestRunTimeGuardTime(t *testing.T) {
	var hooked []string
	s, err := Compile(ruleSet(
		rule("fast", "count_1m >= 1", 0.1, "active"),
		rule("slow", "abs(amount_zscore) > 3", 0.5, "active"),
	), WithRunBudget(time.Nanosecond), WithDisableHook(func(id, reason string) { hooked = append(hooked, id+": "+reason) }))
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Count1m: 1, AmountZScore: 5}
	for i := range sampleEvery + overrunsToOff - 1 {
		if got := codes(s.Evaluate(&env, nil)); !slices.Equal(got, []string{"FAST", "SLOW"}) {
			t.Fatalf("evaluation %d: reasons %v", i, got)
		}
	}
	if len(hooked) != 1 || !strings.HasPrefix(hooked[0], "slow: ") || !strings.Contains(hooked[0], "run-time budget of 1ns") {
		t.Fatalf("hook %q", hooked)
	}
	if got := codes(s.Evaluate(&env, nil)); !slices.Equal(got, []string{"FAST"}) {
		t.Fatalf("after disabling: reasons %v", got)
	}
	if d := s.Disabled(); len(d) != 1 || d[0].ID != "slow" {
		t.Fatalf("Disabled = %+v", d)
	}
	// Without a run budget nothing is timed or disabled.
	s2, _ := Compile(ruleSet(rule("slow", "abs(amount_zscore) > 3", 0.5, "active")))
	for range 1000 {
		s2.Evaluate(&env, nil)
	}
	if d := s2.Disabled(); len(d) != 0 {
		t.Fatalf("Disabled = %+v", d)
	}
}

// TestRunTimeGuardMemory: a rule that exhausts the VM's deterministic
// memory budget is disabled at its first such evaluation. An accepted rule
// cannot reach it (the static bound keeps it far below), so the test
// shrinks the budget after Compile, as if the static model had a hole.
func TestRunTimeGuardMemory(t *testing.T) {
	var hooked []string
	s, err := Compile(ruleSet(
		rule("wide", `any(1..500, {# == count_1m})`, 0.5, "active"),
		rule("fast", "count_1m >= 1", 0.1, "active"),
	), WithDisableHook(func(id, reason string) { hooked = append(hooked, id+": "+reason) }))
	if err != nil {
		t.Fatal(err)
	}
	s.limits.MaxSteps, s.limits.MaxValueSize = 10, 10 // VM budget 40 < 500
	env := Env{Count1m: 3}
	if got := codes(s.Evaluate(&env, nil)); !slices.Equal(got, []string{"FAST"}) {
		t.Fatalf("reasons %v", got)
	}
	if len(hooked) != 1 || !strings.Contains(hooked[0], "memory budget") || s.RuntimeErrors() != 1 {
		t.Fatalf("hook %q, errors %d", hooked, s.RuntimeErrors())
	}
	s.Evaluate(&env, nil)
	if s.RuntimeErrors() != 1 || len(hooked) != 1 {
		t.Fatalf("a disabled rule ran again: errors %d, hook %q", s.RuntimeErrors(), hooked)
	}
}

func BenchmarkCheckDefault(b *testing.B) {
	rs, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := Check(rs); err != nil {
			b.Fatal(err)
		}
	}
}
