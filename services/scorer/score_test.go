package scorer

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/model"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

func mustModel(t *testing.T, js string) *model.Model {
	t.Helper()
	m, err := model.Load(strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustRules(t *testing.T, rs ...event.Rule) *rules.Set {
	t.Helper()
	set, err := rules.Compile(event.RuleSet{Schema: event.SchemaRules, Version: 7, Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestScoreCombinesRulesAndModel: active rules and the model combine as
// independent evidence; shadow rules are reported but do not count; the
// reasons are the rules in rule order, then the model's.
func TestScoreCombinesRulesAndModel(t *testing.T) {
	set := mustRules(t,
		event.Rule{ID: "a", Expression: "count_1m >= 5", Weight: 0.5, ReasonCode: "A", Mode: event.ModeActive},
		event.Rule{ID: "s", Expression: "count_1m >= 1", Weight: 0.9, ReasonCode: "S", Mode: event.ModeShadow},
		event.Rule{ID: "b", Expression: "new_country", Weight: 0.5, ReasonCode: "B", Mode: event.ModeActive},
	)
	// p = sigmoid(-2 + 1·count_1m): count_1m = 6 gives sigmoid(4).
	m := mustModel(t, `{"version":"t","intercept":-2,"reason_threshold":0.5,"features":[{"name":"count_1m","weight":1}]}`)
	tx := testTx("x", "c", testTime())
	var s scorer
	tests := []struct {
		name  string
		f     event.Features
		want  float64
		codes []string
	}{
		{"nothing", event.Features{}, sigmoid(-2), nil},
		{"shadow only", event.Features{Count1m: 1}, sigmoid(-1), []string{"S", "MODEL_COUNT_1M"}},
		{"all", event.Features{Count1m: 6, NewCountry: true}, 1 - (1-sigmoid(4))*0.5*0.5, []string{"A", "S", "B", "MODEL_COUNT_1M"}},
	}
	for _, tt := range tests {
		got, reasons := s.score(&tx, &tt.f, set, m)
		if math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%s: score = %v, want %v", tt.name, got, tt.want)
		}
		var codes []string
		for _, r := range reasons {
			codes = append(codes, r.Code)
			if (r.Code == "S") != r.Shadow {
				t.Errorf("%s: reason %+v: shadow flag wrong", tt.name, r)
			}
		}
		if strings.Join(codes, ",") != strings.Join(tt.codes, ",") {
			t.Errorf("%s: reasons %v, want %v", tt.name, codes, tt.codes)
		}
	}
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

func TestDecide(t *testing.T) {
	tests := []struct {
		score float64
		want  string
	}{
		{0, event.DecisionApprove},
		{0.49, event.DecisionApprove},
		{0.5, event.DecisionReview},
		{0.79, event.DecisionReview},
		{0.8, event.DecisionDecline},
		{1, event.DecisionDecline},
	}
	for _, tt := range tests {
		if got := decide(tt.score, 0.5, 0.8); got != tt.want {
			t.Errorf("decide(%v) = %s, want %s", tt.score, got, tt.want)
		}
	}
}

// TestModelFileErrorsNameTheSetting: a missing or bad model file stops
// start-up with an error naming Config.ModelFile (cmd/fraudstream turns it
// into SCORER_MODEL_FILE).
func TestModelFileErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version":"x","intercept":0,"features":[{"name":"no_such_feature","weight":1}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{filepath.Join(dir, "missing.json"), bad} {
		cfg := DefaultConfig()
		cfg.ModelFile = file
		_, err := newTaskParams(cfg, Deps{}, testTime)
		if err == nil || !strings.HasPrefix(err.Error(), "scorer: Config.ModelFile:") {
			t.Errorf("model file %s: err = %v, want one naming Config.ModelFile", file, err)
		}
	}
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, model.DefaultJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ModelFile = good
	p, err := newTaskParams(cfg, Deps{}, testTime)
	if err != nil || p.model.Version() != "default-v4" {
		t.Fatalf("good model file: %v", err)
	}
}

func testTime() time.Time { return time.Unix(0, t0).UTC() }
