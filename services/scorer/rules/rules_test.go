package rules

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/fraudstream/fraudstream/pkg/event"
)

func rule(id, expression string, weight float64, mode string) event.Rule {
	return event.Rule{ID: id, Expression: expression, Weight: weight, ReasonCode: strings.ToUpper(id), Mode: mode}
}

func ruleSet(rules ...event.Rule) event.RuleSet {
	return event.RuleSet{Schema: event.SchemaRules, Version: 7, Rules: rules}
}

// TestVariablesMatchEnv keeps the hand-written accessor table in step with
// Env's expr tags, and NewEnv with event.Features.
func TestVariablesMatchEnv(t *testing.T) {
	typ := reflect.TypeFor[Env]()
	if typ.NumField() != len(variables) {
		t.Fatalf("Env has %d fields, the variable table %d", typ.NumField(), len(variables))
	}
	var env Env
	ev := reflect.ValueOf(&env).Elem()
	for i := range typ.NumField() {
		f := typ.Field(i)
		v, ok := lookupVariable(f.Tag.Get("expr"))
		if !ok {
			t.Fatalf("Env.%s: tag %q not in the variable table", f.Name, f.Tag.Get("expr"))
		}
		// Set the field to a distinctive value and read it back through
		// the table.
		switch v.kind {
		case kindInt:
			ev.Field(i).SetInt(int64(1000 + i))
			if got := v.i(&env); got != 1000+i {
				t.Errorf("%s: accessor reads %d, want %d", v.name, got, 1000+i)
			}
		case kindFloat:
			ev.Field(i).SetFloat(float64(i) + 0.5)
			if got := v.f(&env); got != float64(i)+0.5 {
				t.Errorf("%s: accessor reads %v", v.name, got)
			}
		case kindBool:
			ev.Field(i).SetBool(true)
			if !v.b(&env) {
				t.Errorf("%s: accessor reads false", v.name)
			}
		case kindString:
			ev.Field(i).SetString(f.Name)
			if got := v.s(&env); got != f.Name {
				t.Errorf("%s: accessor reads %q", v.name, got)
			}
		}
		if kindOf(f.Type) != v.kind {
			t.Errorf("%s: Go type %v, table kind %d", v.name, f.Type, v.kind)
		}
	}
	// Every feature of event.Features is a variable under its JSON name.
	ft := reflect.TypeFor[event.Features]()
	for i := range ft.NumField() {
		name, _, _ := strings.Cut(ft.Field(i).Tag.Get("json"), ",")
		if _, ok := lookupVariable(name); !ok {
			t.Errorf("feature %s is not a rule variable", name)
		}
	}
}

func TestNewEnv(t *testing.T) {
	tx := event.Transaction{AmountMinor: 1234, Currency: "EUR", Channel: event.ChannelEcommerce,
		MerchantCategory: "5816", MerchantCountry: "FR",
		EventTime: time.Date(2026, 3, 1, 23, 30, 0, 0, time.FixedZone("X", 2*3600))}
	f := event.Features{Count1m: 3, SmallCount10m: 4, KmhFromPrev: 1500.5, NewCountry: true, RiskTier: 2}
	env := NewEnv(&tx, &f)
	want := Env{Count1m: 3, SmallCount10m: 4, KmhFromPrev: 1500.5, NewCountry: true, RiskTier: 2,
		AmountMinor: 1234, Currency: "EUR", Channel: "ecommerce", MerchantCategory: "5816",
		MerchantCountry: "FR", HourOfDay: 21, AmountUSD: 13.41, Ecommerce: true, HighRiskMCC: true}
	if env != want {
		t.Fatalf("NewEnv = %+v\nwant %+v", env, want)
	}
	get, ok := Numeric("new_country")
	if !ok || get(&env) != 1 {
		t.Fatal("Numeric(new_country) does not read 1")
	}
	if _, ok := Numeric("channel"); ok {
		t.Fatal("channel is not numeric")
	}
	if _, ok := Numeric("nope"); ok {
		t.Fatal("unknown name accepted")
	}
	if n := NumericNames(); slices.Contains(n, "channel") || !slices.Contains(n, "amount_zscore") {
		t.Fatalf("NumericNames = %v", n)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		rs   event.RuleSet
		want []event.FieldError // Detail is matched as a substring
	}{
		{
			name: "unknown identifier",
			rs:   ruleSet(rule("a", "count_1m > 3", 0.5, "active"), rule("b", "cnt_1m > 3", 0.5, "active")),
			want: []event.FieldError{{Pointer: "/rules/1/expression", Detail: "unknown name cnt_1m (line 1, column 1)"}},
		},
		{
			name: "non-bool result",
			rs:   ruleSet(rule("a", "amount_minor * 2", 0.5, "active")),
			want: []event.FieldError{{Pointer: "/rules/0/expression", Detail: "expected bool, but got int"}},
		},
		{
			name: "syntax error",
			rs:   ruleSet(rule("a", "count_1m >", 0.5, "active")),
			want: []event.FieldError{{Pointer: "/rules/0/expression", Detail: "unexpected token EOF"}},
		},
		{
			name: "type mismatch",
			rs:   ruleSet(rule("a", `channel > 5`, 0.5, "active")),
			want: []event.FieldError{{Pointer: "/rules/0/expression", Detail: "invalid operation: > (mismatched types string and int)"}},
		},
		{
			name: "position on a later line",
			rs:   ruleSet(rule("a", "count_1m > 3 &&\n  new_countri", 0.5, "active")),
			want: []event.FieldError{{Pointer: "/rules/0/expression", Detail: "unknown name new_countri (line 2, column 3)"}},
		},
		{
			name: "clock is not available",
			rs:   ruleSet(rule("a", "now().Hour() > 3", 0.5, "active")),
			want: []event.FieldError{{Pointer: "/rules/0/expression", Detail: "now"}},
		},
		{
			name: "duplicate ids and bad weight from Validate, with a compile error",
			rs: ruleSet(rule("a", "count_1m > 3", 0.5, "active"), rule("a", "count_1m > 4", 1.5, "active"),
				rule("c", "bogus", 0.1, "active")),
			want: []event.FieldError{
				{Pointer: "/rules/1/id", Detail: "duplicates the id of rule 0"},
				{Pointer: "/rules/1/weight", Detail: "between 0 and 1"},
				{Pointer: "/rules/2/expression", Detail: "unknown name bogus"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, check := range []func(event.RuleSet) error{Check, func(rs event.RuleSet) error { _, err := Compile(rs); return err }} {
				err := check(tc.rs)
				var ve *event.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("error %v (%T), want *event.ValidationError", err, err)
				}
				if len(ve.Errors) != len(tc.want) {
					t.Fatalf("errors %+v, want %+v", ve.Errors, tc.want)
				}
				for i, w := range tc.want {
					g := ve.Errors[i]
					if g.Pointer != w.Pointer || !strings.Contains(g.Detail, w.Detail) || strings.Contains(g.Detail, "\n") {
						t.Errorf("error %d = %+v, want %+v", i, g, w)
					}
				}
			}
		})
	}
}

func TestDefaultCompiles(t *testing.T) {
	rs, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if rs.Version != 3 {
		t.Fatalf("default version %d, want 3", rs.Version)
	}
	if err := Check(rs); err != nil {
		t.Fatal(err)
	}
	s, err := CompileDefault()
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() != 3 || s.Len() != len(rs.Rules) {
		t.Fatalf("version %d len %d", s.Version(), s.Len())
	}
	shadows := 0
	for i, r := range s.rules {
		if r.fast == nil {
			t.Errorf("default rule %s does not run on the fast path", rs.Rules[i].ID)
		}
		if r.reason.Shadow {
			shadows++
		}
	}
	if shadows == 0 {
		t.Error("the default set has no shadow rule")
	}
}

// typical is a card's ordinary purchase: nothing should fire.
func typical() Env {
	return Env{Count1m: 0, Count10m: 1, Count1h: 2, Count24h: 5, Sum1h: 8000, Sum24h: 20000,
		DistinctMerchants1h: 2, DistinctCountries24h: 1, SmallCount10m: 0, SecsSincePrev: 1800,
		KmFromPrev: 3.2, KmhFromPrev: 6.4, AmountZScore: 0.4, AccountAgeDays: 900, RiskTier: 1,
		AmountMinor: 4500, AmountUSD: 45, Currency: "USD", Channel: "card_present", MerchantCategory: "5411",
		MerchantCountry: "US", HourOfDay: 14}
}

// online makes e an e-commerce purchase of usd dollars at a merchant of
// category mcc.
func online(e *Env, usd float64, mcc string) {
	e.Channel, e.Ecommerce, e.AmountUSD, e.AmountMinor, e.MerchantCategory = "ecommerce", true, usd, int(usd*100), mcc
	e.HighRiskMCC = slices.Contains(HighRiskMCCs, mcc)
}

func codes(rs []event.Reason) []string {
	var out []string
	for _, r := range rs {
		c := r.Code
		if r.Shadow {
			c += "(shadow)"
		}
		out = append(out, c)
	}
	return out
}

func TestEvaluateDefault(t *testing.T) {
	s, err := CompileDefault()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*Env)
		want []string
	}{
		{"typical purchase", func(*Env) {}, nil},
		{"card testing", func(e *Env) {
			online(e, 1.2, "5816")
			e.SmallCount10m, e.Count10m = 6, 6
		}, []string{"CARD_TESTING"}},
		{"card testing, first charge abroad", func(e *Env) {
			online(e, 1.2, "5816")
			e.NewCountry = true
		}, []string{"CARD_TESTING_FIRST"}},
		{"small charges in person are not card testing", func(e *Env) {
			e.AmountUSD, e.SmallCount10m = 3, 6
		}, nil},
		{"velocity", func(e *Env) { e.Count1m = 5 }, []string{"VELOCITY_1M"}},
		{"velocity below the limit", func(e *Env) { e.Count1m = 4 }, nil},
		{"impossible travel", func(e *Env) {
			e.KmFromPrev, e.KmhFromPrev, e.ArrivalKmh, e.ImpossibleArrival, e.NewCountry = 2500, 30000, 30000, true, true
		}, []string{"IMPOSSIBLE_TRAVEL"}},
		{"impossible travel, a later purchase there", func(e *Env) {
			e.KmFromPrev, e.KmhFromPrev, e.ArrivalKmh, e.ImpossibleArrival = 3, 60, 30000, true
		}, []string{"IMPOSSIBLE_TRAVEL"}},
		{"back home from far away is not impossible travel", func(e *Env) { e.KmFromPrev, e.KmhFromPrev = 2500, 30000 }, nil},
		{"far but slow", func(e *Env) { e.KmFromPrev, e.KmhFromPrev, e.ArrivalKmh, e.NewCountry = 2500, 800, 800, true }, nil},
		{"amount spike", func(e *Env) { e.AmountRatio, e.AmountUSD, e.HighRiskMCC = 30, 1500, true }, []string{"AMOUNT_SPIKE"}},
		{"high ratio on a small amount", func(e *Env) { e.AmountRatio, e.AmountUSD, e.HighRiskMCC = 30, 90, true }, nil},
		{"high z-score alone is no spike", func(e *Env) { e.AmountZScore, e.AmountRatio, e.AmountUSD, e.HighRiskMCC = 25, 8, 1500, true }, nil},
		{"new country, high amount online", func(e *Env) {
			online(e, 600, "5311")
			e.NewCountry = true
		}, []string{"NEW_COUNTRY_HIGH_AMOUNT"}},
		{"new country in person is judged by the journey, not the country", func(e *Env) {
			e.NewCountry, e.AmountUSD, e.ArrivalKmh = true, 600, 650
		}, nil},
		{"card testing at one merchant after another", func(e *Env) {
			online(e, 1.5, "5999")
			e.SmallCount10m, e.Count10m, e.DistinctMerchants10m, e.DeviceKnown = 3, 3, 3, true
		}, []string{"CARD_TESTING"}},
		{"card testing at one new merchant from an unknown device", func(e *Env) {
			online(e, 1.5, "5816")
			e.SmallCount10m, e.Count10m, e.DistinctMerchants10m, e.RepeatMerchant10m = 3, 3, 1, true
		}, []string{"CARD_TESTING"}},
		{"in-app purchases at the card's app store, from its phone, are not card testing", func(e *Env) {
			online(e, 0.99, "5816")
			e.SmallCount10m, e.Count10m, e.DistinctMerchants10m, e.RepeatMerchant10m, e.DeviceKnown, e.MerchantDays = 4, 4, 1, true, true, 30
		}, nil},
		{"new device and new network", func(e *Env) {
			online(e, 40, "5311")
			e.NewDevice, e.NewIP = true, true
		}, []string{"NEW_DEVICE_NEW_NETWORK"}},
		{"a new phone on the home network", func(e *Env) {
			online(e, 40, "5311")
			e.NewDevice = true
		}, nil},
		{"a big purchase in a category the card buys in", func(e *Env) {
			e.AmountRatio, e.AmountRatioMCC, e.AmountUSD, e.HighRiskMCC = 30, 6, 1500, true
		}, nil},
		{"a spike in a category the card buys in", func(e *Env) {
			e.AmountRatio, e.AmountRatioMCC, e.AmountUSD, e.HighRiskMCC = 60, 15, 3000, true
		}, []string{"AMOUNT_SPIKE"}},
		{"first transaction of a card is no new country", func(e *Env) {
			e.NewCountry, e.AmountUSD, e.Count24h = true, 600, 0
		}, nil},
		{"new country, online at a high-risk merchant", func(e *Env) {
			online(e, 80, "5732")
			e.NewCountry = true
		}, []string{"NEW_COUNTRY_HIGH_RISK_ONLINE"}},
		{"account takeover", func(e *Env) {
			online(e, 300, "5944")
			e.DistinctCountries24h, e.SecsSincePrev = 2, 45
		}, []string{"ACCOUNT_TAKEOVER"}},
		{"home country mismatch", func(e *Env) { e.HomeCountryMismatch, e.AmountUSD = true, 150 }, []string{"HOME_COUNTRY_MISMATCH"}},
		{"mismatch without a profile", func(e *Env) {
			e.HomeCountryMismatch, e.ProfileMissing, e.AmountUSD = true, true, 150
		}, nil},
		{"travel follow-up: the shadow rule only", func(e *Env) {
			e.DistinctCountries24h, e.Count10m = 2, 1
		}, []string{"TRAVEL_FOLLOWUP(shadow)"}},
		{"several at once, in rule order", func(e *Env) {
			e.NewCountry, e.HomeCountryMismatch, e.AmountUSD, e.AmountRatio, e.Count1m, e.HighRiskMCC, e.ImpossibleArrival = true, true, 800, 40, 6, true, true
		}, []string{"VELOCITY_1M", "IMPOSSIBLE_TRAVEL", "AMOUNT_SPIKE", "HOME_COUNTRY_MISMATCH"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := typical()
			tc.edit(&env)
			got := codes(s.Evaluate(&env, nil))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("reasons %v, want %v", got, tc.want)
			}
			// The VM agrees with the fast path on every default rule.
			for i := range s.rules {
				m := new(vm.VM)
				if fast, slow := s.rules[i].fast(&env), s.run(m, &s.rules[i], &env); fast != slow {
					t.Errorf("rule %s: fast %v, VM %v", s.rules[i].id, fast, slow)
				}
			}
		})
	}
}

func TestReasonFields(t *testing.T) {
	s, err := Compile(ruleSet(
		event.Rule{ID: "v", Expression: "count_1m > 1", Weight: 0.3, ReasonCode: "V", Description: "many", Mode: "active"},
		event.Rule{ID: "w", Expression: "count_1m > 1", Weight: 0.2, ReasonCode: "W", Mode: "shadow"},
	))
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Count1m: 2}
	got := s.Evaluate(&env, make([]event.Reason, 0, 4))
	want := []event.Reason{
		{Code: "V", Source: event.SourceRule, Weight: 0.3, Detail: "many"},
		{Code: "W", Source: event.SourceRule, Weight: 0.2, Detail: "w", Shadow: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("reasons %+v, want %+v", got, want)
	}
}

func TestCombine(t *testing.T) {
	rule := func(w float64, shadow bool) event.Reason {
		return event.Reason{Code: "R", Source: event.SourceRule, Weight: w, Shadow: shadow}
	}
	model := event.Reason{Code: "MODEL_X", Source: event.SourceModel, Weight: 3}
	tests := []struct {
		name    string
		p       float64
		reasons []event.Reason
		want    float64
	}{
		{"model only", 0.2, nil, 0.2},
		{"one rule", 0, []event.Reason{rule(0.5, false)}, 0.5},
		{"model and two rules", 0.2, []event.Reason{rule(0.5, false), rule(0.5, false)}, 1 - 0.8*0.5*0.5},
		{"shadow rules do not count", 0.2, []event.Reason{rule(0.5, false), rule(0.9, true)}, 1 - 0.8*0.5},
		{"model reasons do not count twice", 0.2, []event.Reason{model}, 0.2},
		{"a weight of 1 decides", 0.1, []event.Reason{rule(1, false)}, 1},
		{"NaN model", math.NaN(), []event.Reason{rule(0.5, false)}, 0.5},
		{"out-of-range values are clamped", 1.5, []event.Reason{rule(-2, false)}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Combine(tc.p, tc.reasons); math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("Combine = %v, want %v", got, tc.want)
			}
		})
	}
	// With the default set, a shadow match never moves the score.
	s, _ := CompileDefault()
	env := typical()
	env.DistinctCountries24h, env.Count10m = 2, 1
	rs := s.Evaluate(&env, nil)
	if len(rs) != 1 || !rs[0].Shadow {
		t.Fatalf("want only the shadow rule, got %v", codes(rs))
	}
	if got, want := Combine(0.1, rs), Combine(0.1, nil); got != want {
		t.Fatalf("shadow rule moved the score to %v", got)
	}
}

func TestRuntimeErrorIsolation(t *testing.T) {
	var hooked []string
	s, err := Compile(ruleSet(
		rule("before", "count_1m >= 1", 0.1, "active"),
		rule("modulo", "amount_minor % count_10m == 0", 0.9, "active"), // count_10m may be 0
		rule("after", "amount_minor > 100", 0.2, "active"),
	), WithRuntimeErrorHook(func(id string, err error) { hooked = append(hooked, id+": "+err.Error()) }))
	if err != nil {
		t.Fatal(err)
	}
	if s.rules[1].fast != nil {
		t.Fatal("% should run on the VM")
	}
	env := Env{Count1m: 1, Count10m: 0, AmountMinor: 500}
	got := codes(s.Evaluate(&env, nil))
	if !slices.Equal(got, []string{"BEFORE", "AFTER"}) {
		t.Fatalf("reasons %v", got)
	}
	if s.RuntimeErrors() != 1 || len(hooked) != 1 || !strings.HasPrefix(hooked[0], "modulo: ") || !strings.Contains(hooked[0], "divide by zero") {
		t.Fatalf("errors %d, hook %q", s.RuntimeErrors(), hooked)
	}
	// The same rule works once the divisor is not zero.
	env.Count10m = 5
	if got := codes(s.Evaluate(&env, nil)); !slices.Equal(got, []string{"BEFORE", "MODULO", "AFTER"}) {
		t.Fatalf("reasons %v", got)
	}
	if s.RuntimeErrors() != 1 {
		t.Fatalf("errors %d", s.RuntimeErrors())
	}
}

// TestLoweringMatchesVM runs expressions through both the fast path and
// expr's VM on random environments and requires the same answers.
func TestLoweringMatchesVM(t *testing.T) {
	exprs := []string{
		`count_1m >= 5`,
		`count_1m > 2.5`,
		`count_1m == 3.0`,
		`count_1m != 3`,
		`amount_zscore >= 2 && amount_minor >= 20000`,
		`kmh_from_prev > 900 && km_from_prev > 500 || new_country`,
		`!(new_country and not new_merchant)`,
		`-amount_zscore < -1`,
		`+count_10m > 2`,
		`amount_minor / count_10m > 1000`,
		`sum_1h - amount_minor * 2 < 0`,
		`sum_1h + count_1h * 1.5 > 10000`,
		`amount_zscore * 2 - 1 > secs_since_prev / 100`,
		`count_1h ** 2 > 10`,
		`count_1h ^ 0.5 >= 1`,
		`channel == "ecommerce"`,
		`channel != "atm" && merchant_country < "M"`,
		`channel >= "card" && currency <= "USD"`,
		`merchant_category in ["5816", "5999"]`,
		`merchant_category not in ["5816", "5999"]`,
		`hour_of_day in [0, 1, 2, 3]`,
		`channel contains "com"`,
		`merchant_country startsWith "D" || currency endsWith "D"`,
		`new_country == new_merchant`,
		`new_country ? amount_minor > 5000 : amount_minor > 50000`,
		`amount_minor == amount_zscore`,
		`risk_tier >= 2 and account_age_days < 30`,
		`(count_1m + 1) * 3 == count_10m`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"ecommerce", "atm", "card_present", "5816", "5999", "5411", "DE", "US", "USD", "EUR", ""}
	for _, src := range exprs {
		prog, err := expr.Compile(src, exprOptions()...)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		fast, ok := lowerBool(prog.Node())
		if !ok {
			t.Errorf("%s: not lowered", src)
			continue
		}
		m := new(vm.VM)
		for range 300 {
			env := Env{
				Count1m: rng.IntN(6), Count10m: rng.IntN(4), Count1h: rng.IntN(30), SmallCount10m: rng.IntN(5),
				Sum1h: rng.IntN(100000), AmountMinor: rng.IntN(100000), AmountZScore: rng.NormFloat64() * 3,
				KmFromPrev: rng.Float64() * 3000, KmhFromPrev: rng.Float64() * 5000, SecsSincePrev: rng.Float64() * 1e4,
				NewCountry: rng.IntN(2) == 0, NewMerchant: rng.IntN(2) == 0, RiskTier: rng.IntN(4),
				AccountAgeDays: rng.Float64() * 100, HourOfDay: rng.IntN(24),
				Channel: strs[rng.IntN(len(strs))], Currency: strs[rng.IntN(len(strs))],
				MerchantCategory: strs[rng.IntN(len(strs))], MerchantCountry: strs[rng.IntN(len(strs))],
			}
			if rng.IntN(10) == 0 {
				env.AmountZScore = float64(env.AmountMinor) // exercise int == float
			}
			out, err := m.Run(prog, &env)
			if err != nil {
				t.Fatalf("%s: VM: %v", src, err)
			}
			if got := fast(&env); got != out.(bool) {
				t.Fatalf("%s on %+v: fast %v, VM %v", src, env, got, out)
			}
		}
	}
	// Outside the subset: left to the VM.
	for _, src := range []string{`amount_minor % 7 == 0`, `abs(amount_zscore) > 3`, `len(channel) > 3`, `channel matches "^e"`} {
		prog, err := expr.Compile(src, exprOptions()...)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if _, ok := lowerBool(prog.Node()); ok {
			t.Errorf("%s: lowered, want the VM", src)
		}
	}
}

func TestVMFallbackEvaluates(t *testing.T) {
	s, err := Compile(ruleSet(rule("abs", "abs(amount_zscore) > 3", 0.5, "active"), rule("re", `channel matches "^e"`, 0.5, "shadow")))
	if err != nil {
		t.Fatal(err)
	}
	env := Env{AmountZScore: -4, Channel: "ecommerce"}
	if got := codes(s.Evaluate(&env, nil)); !slices.Equal(got, []string{"ABS", "RE(shadow)"}) {
		t.Fatalf("reasons %v", got)
	}
}

// TestDeterminism: the same env gives the same reasons, in the same order,
// however often and from however many goroutines it is evaluated.
func TestDeterminism(t *testing.T) {
	s, err := Compile(func() event.RuleSet {
		rs, _ := Default()
		rs.Rules = append(rs.Rules, rule("vm_rule", "abs(amount_zscore) > 3", 0.5, "active"))
		return rs
	}())
	if err != nil {
		t.Fatal(err)
	}
	env := typical()
	env.NewCountry, env.HomeCountryMismatch, env.AmountMinor, env.AmountZScore, env.Count1m = true, true, 80000, 9, 6
	want := s.Evaluate(&env, nil)
	done := make(chan []event.Reason)
	for range 4 {
		go func() {
			var got []event.Reason
			for range 1000 {
				got = s.Evaluate(&env, got[:0])
				if !slices.Equal(got, want) {
					break
				}
			}
			done <- slices.Clone(got)
		}()
	}
	for range 4 {
		if got := <-done; !slices.Equal(got, want) {
			t.Fatalf("reasons %v, want %v", codes(got), codes(want))
		}
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	s, _ := CompileDefault()
	env := typical()
	env.Count1m, env.NewCountry, env.AmountMinor = 7, true, 90000
	dst := make([]event.Reason, 0, 16)
	if n := testing.AllocsPerRun(100, func() { dst = s.Evaluate(&env, dst[:0]) }); n != 0 {
		t.Fatalf("%v allocations per Evaluate", n)
	}
}

func BenchmarkEvaluateDefault(b *testing.B) {
	s, err := CompileDefault()
	if err != nil {
		b.Fatal(err)
	}
	env := typical()
	env.Count1m, env.NewCountry, env.AmountMinor = 7, true, 90000 // two rules match
	dst := make([]event.Reason, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		dst = s.Evaluate(&env, dst[:0])
	}
}

// BenchmarkEvaluateDefaultVM is the same rules on expr's VM only, the
// baseline the lowering is measured against.
func BenchmarkEvaluateDefaultVM(b *testing.B) {
	s, err := CompileDefault()
	if err != nil {
		b.Fatal(err)
	}
	for i := range s.rules {
		s.rules[i].fast = nil
	}
	env := typical()
	env.Count1m, env.NewCountry, env.AmountMinor = 7, true, 90000
	dst := make([]event.Reason, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		dst = s.Evaluate(&env, dst[:0])
	}
}
