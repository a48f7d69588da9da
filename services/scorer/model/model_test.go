package model

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, json string
		pointer    string // of the first field error; "" for a decode error
		detail     string
	}{
		{"unknown feature", `{"version":"v","intercept":0,"features":[{"name":"count_1m","weight":1},{"name":"amount_z","weight":1}]}`,
			"/features/1/name", `unknown feature "amount_z"; known features are account_age_days, amount_minor`},
		{"string variable is no feature", `{"version":"v","intercept":0,"features":[{"name":"channel","weight":1}]}`,
			"/features/0/name", `unknown feature "channel"`},
		{"missing version", `{"intercept":0,"features":[{"name":"count_1m","weight":1}]}`, "/version", "is required"},
		{"no features", `{"version":"v","intercept":0,"features":[]}`, "/features", "at least one"},
		{"unknown transform", `{"version":"v","intercept":0,"features":[{"name":"count_1m","transforms":[{"op":"sqrt"}],"weight":1}]}`,
			"/features/0/transforms/0/op", `unknown transform "sqrt"`},
		{"clip without max", `{"version":"v","intercept":0,"features":[{"name":"count_1m","transforms":[{"op":"clip","min":0}],"weight":1}]}`,
			"/features/0/transforms/0/max", "finite max"},
		{"clip inverted", `{"version":"v","intercept":0,"features":[{"name":"count_1m","transforms":[{"op":"clip","min":5,"max":1}],"weight":1}]}`,
			"/features/0/transforms/0/min", "above max"},
		{"zero std", `{"version":"v","intercept":0,"features":[{"name":"count_1m","transforms":[{"op":"log1p"},{"op":"standardize","mean":1,"std":0}],"weight":1}]}`,
			"/features/0/transforms/1/std", "std > 0"},
		{"log1p with a parameter", `{"version":"v","intercept":0,"features":[{"name":"count_1m","transforms":[{"op":"log1p","min":1}],"weight":1}]}`,
			"/features/0/transforms/0", "no parameters"},
		{"negative threshold", `{"version":"v","intercept":0,"reason_threshold":-1,"features":[{"name":"count_1m","weight":1}]}`,
			"/reason_threshold", "≥ 0"},
		{"unknown field", `{"version":"v","intercept":0,"bias":1,"features":[{"name":"count_1m","weight":1}]}`, "/bias", "unknown field"},
		{"key in another case", `{"version":"v","Intercept":3,"intercept":0,"features":[{"name":"count_1m","weight":1}]}`, "/Intercept", `did you mean "intercept"`},
		{"duplicate key", `{"version":"v","intercept":0,"features":[{"name":"count_1m","weight":1,"weight":2}]}`, "/features/0/weight", "duplicate key"},
		{"trailing data", `{"version":"v","intercept":0,"features":[{"name":"count_1m","weight":1}]} {}`, "", "after the JSON object"},
		{"not JSON", `{"version":`, "", "decode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tc.json))
			if err == nil {
				t.Fatal("loaded")
			}
			var ve *event.ValidationError
			if tc.pointer == "" {
				if errors.As(err, &ve) || !strings.Contains(err.Error(), tc.detail) {
					t.Fatalf("error %v, want a decode error containing %q", err, tc.detail)
				}
				return
			}
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T), want an *event.ValidationError", err, err)
			}
			if fe := ve.Errors[0]; fe.Pointer != tc.pointer || !strings.Contains(fe.Detail, tc.detail) {
				t.Fatalf("first error %+v, want %s: …%s…", fe, tc.pointer, tc.detail)
			}
		})
	}
}

func TestTransforms(t *testing.T) {
	tests := []struct {
		name string
		ts   []Transform
		in   float64
		want float64
	}{
		{"none", nil, 3.5, 3.5},
		{"log1p", []Transform{Log1p()}, math.E - 1, 1},
		{"log1p keeps the sign", []Transform{Log1p()}, -(math.E - 1), -1},
		{"clip low", []Transform{Clip(0, 10)}, -4, 0},
		{"clip high", []Transform{Clip(0, 10)}, 40, 10},
		{"clip inside", []Transform{Clip(0, 10)}, 4, 4},
		{"standardize", []Transform{Standardize(10, 4)}, 18, 2},
		{"pipeline in order", []Transform{Log1p(), Standardize(1, 0.5), Clip(-1, 1.5)}, math.E*math.E - 1, 1.5},
		{"infinity is bounded", nil, math.Inf(1), maxValue},
		{"NaN reads as 0", nil, math.NaN(), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := build(file{Version: "t", Features: []Feature{{Name: "amount_zscore", Transforms: tc.ts, Weight: 1}}})
			if err != nil {
				t.Fatal(err)
			}
			env := rules.Env{AmountZScore: tc.in}
			if got := m.features[0].value(&env); math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("value %v, want %v", got, tc.want)
			}
		})
	}
	// Booleans read as 0 and 1.
	m, err := build(file{Version: "t", Intercept: -1, Features: []Feature{{Name: "new_country", Weight: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := m.Score(&rules.Env{}, nil); math.Abs(p-sigmoid(-1)) > 1e-15 {
		t.Fatalf("p(false) = %v", p)
	}
	if p, _ := m.Score(&rules.Env{NewCountry: true}, nil); math.Abs(p-sigmoid(1)) > 1e-15 {
		t.Fatalf("p(true) = %v", p)
	}
}

func TestReasons(t *testing.T) {
	m, err := build(file{Version: "t", Intercept: -2, Features: []Feature{
		{Name: "count_1m", Weight: 0.5},       // 0.5·count_1m
		{Name: "new_country", Weight: 1.0},    // 1 when new
		{Name: "amount_zscore", Weight: 0.25}, // 0.25·z
		{Name: "risk_tier", Weight: 1.0},      // tier
		{Name: "account_age_days", Weight: -1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  rules.Env
		want []string
	}{
		{"nothing above the threshold", rules.Env{Count1m: 1, AmountZScore: 2, AccountAgeDays: 100}, nil},
		{"largest first", rules.Env{Count1m: 4, NewCountry: true, AmountZScore: 12}, []string{"MODEL_AMOUNT_ZSCORE", "MODEL_COUNT_1M", "MODEL_NEW_COUNTRY"}},
		{"top three only, ties in feature order", rules.Env{Count1m: 2, NewCountry: true, AmountZScore: 4, RiskTier: 3},
			[]string{"MODEL_RISK_TIER", "MODEL_COUNT_1M", "MODEL_NEW_COUNTRY"}},
		{"negative contributions are no reasons", rules.Env{AccountAgeDays: 5, NewCountry: true}, []string{"MODEL_NEW_COUNTRY"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, rs := m.Score(&tc.env, nil)
			var got []string
			for _, r := range rs {
				if r.Source != event.SourceModel || r.Shadow || r.Detail == "" {
					t.Errorf("reason %+v", r)
				}
				got = append(got, r.Code)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("reasons %v, want %v", got, tc.want)
			}
			z := -2 + 0.5*float64(tc.env.Count1m) + 0.25*tc.env.AmountZScore + float64(tc.env.RiskTier) - tc.env.AccountAgeDays
			if tc.env.NewCountry {
				z++
			}
			if math.Abs(p-1/(1+math.Exp(-z))) > 1e-12 {
				t.Fatalf("p = %v, want sigmoid(%v)", p, z)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != "default-v4" {
		t.Fatalf("version %q", m.Version())
	}
	normal := rules.Env{Count10m: 1, Count24h: 4, DistinctCountries24h: 1, SecsSincePrev: 1800, KmFromPrev: 3,
		KmhFromPrev: 6, AmountZScore: 0.3, AmountRatio: 1.2, AccountAgeDays: 900, RiskTier: 1, AmountMinor: 4500, AmountUSD: 45, Channel: "card_present"}
	testing := normal
	testing.Count1m, testing.Count10m, testing.SmallCount10m, testing.AmountMinor, testing.AmountZScore = 8, 10, 9, 120, -1
	testing.HomeCountryMismatch, testing.Channel, testing.Ecommerce, testing.HighRiskMCC, testing.AmountUSD = true, "ecommerce", true, true, 1.2
	travel := normal
	travel.KmFromPrev, travel.KmhFromPrev, travel.ArrivalKmh, travel.NewCountry, travel.HomeCountryMismatch = 2500, 30000, 30000, true, true
	spike := normal
	spike.AmountZScore, spike.AmountRatio, spike.AmountMinor, spike.AmountUSD, spike.HighRiskMCC = 30, 40, 180000, 1800, true
	pn, rn := m.Score(&normal, nil)
	if pn > 0.03 || len(rn) != 0 {
		t.Errorf("ordinary purchase: p = %.4f, reasons %v", pn, rn)
	}
	for name, env := range map[string]rules.Env{"card testing": testing, "impossible travel": travel, "amount spike": spike} {
		p, rs := m.Score(&env, nil)
		if p < 10*pn || len(rs) == 0 {
			t.Errorf("%s: p = %.4f (ordinary %.4f), reasons %v", name, p, pn, rs)
		}
		t.Logf("%s: p = %.3f, reasons %+v", name, p, rs)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	var b1, b2 bytes.Buffer
	if err := m.Save(&b1); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(bytes.NewReader(b1.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Save(&b2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Fatalf("save, load, save differs:\n%s\n%s", b1.Bytes(), b2.Bytes())
	}
	env := rules.Env{Count1m: 3, AmountZScore: 7, AmountMinor: 50000, NewCountry: true, KmhFromPrev: 400}
	p1, r1 := m.Score(&env, nil)
	p2, r2 := m2.Score(&env, nil)
	if p1 != p2 || !slices.Equal(r1, r2) {
		t.Fatalf("scores differ: %v %v / %v %v", p1, r1, p2, r2)
	}
	// Features returns copies: changing them leaves the model alone.
	fs := m.Features()
	*fs[1].Transforms[1].Mean = 99
	if p3, _ := m.Score(&env, nil); p3 != p1 {
		t.Fatal("Features exposed the model's own transforms")
	}
}

// synthetic draws n examples from a known model in raw feature space:
// z = b + Σ w·x over count_1m, amount_zscore and new_country, plus
// risk_tier, which has no effect.
func synthetic(seed uint64, n int) []Example {
	rng := rand.New(rand.NewPCG(seed, 99))
	out := make([]Example, n)
	for i := range out {
		env := rules.Env{
			Count1m:      rng.IntN(8),
			AmountZScore: rng.NormFloat64() * 2,
			NewCountry:   rng.IntN(4) == 0,
			RiskTier:     rng.IntN(4),
		}
		z := trueB + trueW[0]*float64(env.Count1m) + trueW[1]*env.AmountZScore
		if env.NewCountry {
			z += trueW[2]
		}
		out[i] = Example{Env: env, Label: rng.Float64() < sigmoid(z)}
	}
	return out
}

var (
	trueB = -3.0
	trueW = []float64{0.6, 0.8, 1.5, 0} // count_1m, amount_zscore, new_country, risk_tier
)

var fitFeatures = []Feature{{Name: "count_1m"}, {Name: "amount_zscore"}, {Name: "new_country"}, {Name: "risk_tier"}}

func TestFitRecoversWeights(t *testing.T) {
	train := synthetic(1, 20000)
	m, err := Fit(train, fitFeatures, WithVersion("synthetic-1"), WithL2(1e-4))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != "synthetic-1" {
		t.Fatalf("version %q", m.Version())
	}
	// A fitted weight w' applies to (x − mean)/std, so the raw-space
	// weight is w'/std and the raw intercept b' − Σ w'·mean/std.
	b := m.Intercept()
	for j, f := range m.Features() {
		std := f.Transforms[len(f.Transforms)-1]
		w := f.Weight / *std.Std
		b -= w * *std.Mean
		if math.Abs(w-trueW[j]) > 0.12 {
			t.Errorf("%s: weight %.3f, want %.3f", f.Name, w, trueW[j])
		}
	}
	if math.Abs(b-trueB) > 0.25 {
		t.Errorf("intercept %.3f, want %.3f", b, trueB)
	}
	// Held-out ranking quality close to the true model's.
	test := synthetic(2, 10000)
	auc := func(score func(*rules.Env) float64) float64 {
		type sl struct {
			s float64
			y bool
		}
		v := make([]sl, len(test))
		for i := range test {
			v[i] = sl{score(&test[i].Env), test[i].Label}
		}
		sort.SliceStable(v, func(i, j int) bool { return v[i].s < v[j].s })
		var rankSum, pos float64
		for i, x := range v {
			if x.y {
				rankSum += float64(i + 1)
				pos++
			}
		}
		neg := float64(len(v)) - pos
		return (rankSum - pos*(pos+1)/2) / (pos * neg)
	}
	got := auc(func(e *rules.Env) float64 { p, _ := m.Score(e, nil); return p })
	best := auc(func(e *rules.Env) float64 {
		z := trueW[0]*float64(e.Count1m) + trueW[1]*e.AmountZScore
		if e.NewCountry {
			z += trueW[2]
		}
		return z
	})
	if got < 0.85 || got < best-0.01 {
		t.Fatalf("AUC %.4f, the true model %.4f", got, best)
	}
	t.Logf("AUC %.4f (true model %.4f)", got, best)
}

func TestFitKeepsTransforms(t *testing.T) {
	// A given transform pipeline is kept and a trailing standardize is
	// recomputed from the data.
	fs := []Feature{{Name: "count_1m", Transforms: []Transform{Log1p(), Standardize(100, 100)}}, {Name: "amount_zscore", Transforms: []Transform{Clip(-5, 5)}}}
	m, err := Fit(synthetic(3, 5000), fs)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Features()
	if ops := []string{got[0].Transforms[0].Op, got[0].Transforms[1].Op}; len(got[0].Transforms) != 2 || !slices.Equal(ops, []string{OpLog1p, OpStandardize}) {
		t.Fatalf("count_1m transforms %+v", got[0].Transforms)
	}
	if *got[0].Transforms[1].Mean > 3 {
		t.Fatalf("standardize mean %v not recomputed", *got[0].Transforms[1].Mean)
	}
	if len(got[1].Transforms) != 2 || got[1].Transforms[0].Op != OpClip || got[1].Transforms[1].Op != OpStandardize {
		t.Fatalf("amount_zscore transforms %+v", got[1].Transforms)
	}
}

func TestFitDeterministic(t *testing.T) {
	ex := synthetic(4, 5000)
	var b1, b2 bytes.Buffer
	for _, b := range []*bytes.Buffer{&b1, &b2} {
		m, err := Fit(ex, fitFeatures, WithPositiveWeight(3))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Save(b); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Fatal("two fits on the same data differ")
	}
}

func TestFitErrors(t *testing.T) {
	ex := synthetic(5, 100)
	allGood := make([]Example, 10)
	tests := []struct {
		name string
		ex   []Example
		fs   []Feature
		opts []FitOption
		want string
	}{
		{"no examples", nil, fitFeatures, nil, "both fraudulent and legitimate"},
		{"one class", allGood, fitFeatures, nil, "0 fraudulent"},
		{"unknown feature", ex, []Feature{{Name: "velocity"}}, nil, `/features/0/name: unknown feature "velocity"`},
		{"negative L2", ex, fitFeatures, []FitOption{WithL2(-1)}, "L2"},
		{"zero iterations", ex, fitFeatures, []FitOption{WithMaxIterations(0)}, "iterations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fit(tc.ex, tc.fs, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want …%s…", err, tc.want)
			}
		})
	}
}

func TestLog1pMatchesMath(t *testing.T) {
	for _, x := range []float64{0, 1e-12, 1e-5, 9.99e-4, 1e-3, 0.5, 1, 7, 1234.5, 1e9, 1e300} {
		for _, s := range []float64{1, -1} {
			want := s * math.Log1p(x)
			if got := log1p(s * x); math.Abs(got-want) > 1e-15*math.Max(1, math.Abs(want)) {
				t.Errorf("log1p(%v) = %v, want %v", s*x, got, want)
			}
		}
	}
}
