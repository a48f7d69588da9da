// Package model is the scorer's statistical half: a logistic regression
// over the same values the rules see (rules.Env), giving a fraud
// probability and the features that pushed it up.
//
// A model is a JSON file:
//
//	{
//	  "version": "default-v1",
//	  "intercept": -5.5,
//	  "reason_threshold": 0.5,
//	  "features": [
//	    {"name": "amount_zscore", "transforms": [{"op": "clip", "min": -3, "max": 10}], "weight": 0.3},
//	    {"name": "amount_minor", "transforms": [{"op": "log1p"}, {"op": "standardize", "mean": 8.3, "std": 1.2}], "weight": 0.4},
//	    {"name": "new_country", "weight": 1.0}
//	  ]
//	}
//
// Each feature reads one numeric variable of rules.Env by name (booleans
// read as 0 or 1), passes it through its transforms in order, and adds
// weight·x to the log-odds:
//
//	p = 1 / (1 + exp(−(intercept + Σ weight·x)))
//
// Transforms: "log1p" is the sign-preserving log, sign(x)·ln(1+|x|), so
// that skewed counts and amounts, and negative z-scores, all stay finite;
// "clip" bounds x to [min, max]; "standardize" maps x to (x − mean)/std.
//
// Reason codes explain a score: the features whose contribution weight·x
// exceeds the reason threshold, largest first, at most three, each as
// MODEL_<FEATURE> (MODEL_AMOUNT_ZSCORE). A contribution is measured from
// x = 0, which for a standardized feature is its mean: "higher than usual
// for the population" is what an analyst wants to read.
//
// Fit trains a model by L2-regularized maximum likelihood on examples the
// caller builds with rules.NewEnv from the scorer's own feature code, so
// a trained model sees exactly the values it will see online.
package model

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

// Transform operations.
const (
	OpLog1p       = "log1p"
	OpClip        = "clip"
	OpStandardize = "standardize"
)

// MaxReasons is the most reasons Score reports.
const MaxReasons = 3

// DefaultReasonThreshold is the contribution (in log-odds) above which a
// feature becomes a reason when the model file does not say.
const DefaultReasonThreshold = 0.5

// Transform is one step of a feature's pipeline. Min and Max belong to
// clip, Mean and Std to standardize.
type Transform struct {
	Op   string   `json:"op"`
	Min  *float64 `json:"min,omitempty"`
	Max  *float64 `json:"max,omitempty"`
	Mean *float64 `json:"mean,omitempty"`
	Std  *float64 `json:"std,omitempty"`
}

// Log1p, Clip and Standardize build transforms.
func Log1p() Transform              { return Transform{Op: OpLog1p} }
func Clip(lo, hi float64) Transform { return Transform{Op: OpClip, Min: &lo, Max: &hi} }
func Standardize(mean, std float64) Transform {
	return Transform{Op: OpStandardize, Mean: &mean, Std: &std}
}

// Feature is one input of the model: a variable of rules.Env, its
// transforms and its weight.
type Feature struct {
	Name       string      `json:"name"`
	Transforms []Transform `json:"transforms,omitempty"`
	Weight     float64     `json:"weight"`
}

// file is the JSON form of a model.
type file struct {
	Version         string    `json:"version"`
	Intercept       float64   `json:"intercept"`
	ReasonThreshold *float64  `json:"reason_threshold,omitempty"`
	Features        []Feature `json:"features"`
}

// Model is a loaded logistic regression. It is immutable and safe for
// concurrent use.
type Model struct {
	version   string
	intercept float64
	threshold float64
	features  []feature
}

// feature is a Feature resolved for scoring: its accessor, its transforms
// as plain values and its precomputed reason code.
type feature struct {
	spec   Feature
	get    func(*rules.Env) float64
	steps  []step
	weight float64
	code   string // MODEL_<NAME>
}

type step struct {
	op   uint8
	a, b float64 // clip: min, max; standardize: mean, 1/std
}

const (
	stepLog1p uint8 = iota
	stepClip
	stepStandardize
)

// Load reads and validates a model. Problems come back as an
// *event.ValidationError with a JSON pointer each, such as
// "/features/3/name: unknown feature \"amount_z\"".
func Load(r io.Reader) (*Model, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("model: read: %w", err)
	}
	// Exact-case keys; unknown and duplicate keys are refused.
	var f file
	if err := event.Unmarshal(b, &f, event.RejectUnknown); err != nil {
		return nil, fmt.Errorf("model: decode: %w", err)
	}
	return build(f)
}

func build(f file) (*Model, error) {
	ve := &event.ValidationError{}
	add := func(pointer, format string, args ...any) {
		ve.Errors = append(ve.Errors, event.FieldError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(f.Version) == "" {
		add("/version", "is required")
	}
	if !finite(f.Intercept) {
		add("/intercept", "must be a finite number")
	}
	m := &Model{version: f.Version, intercept: f.Intercept, threshold: DefaultReasonThreshold}
	if f.ReasonThreshold != nil {
		m.threshold = *f.ReasonThreshold
		if !finite(m.threshold) || m.threshold < 0 {
			add("/reason_threshold", "must be a finite number ≥ 0")
		}
	}
	if len(f.Features) == 0 {
		add("/features", "must list at least one feature")
	}
	for i, fs := range f.Features {
		p := fmt.Sprintf("/features/%d", i)
		get, ok := rules.Numeric(fs.Name)
		if !ok {
			add(p+"/name", "unknown feature %q; known features are %s", fs.Name, strings.Join(rules.NumericNames(), ", "))
		}
		if !finite(fs.Weight) {
			add(p+"/weight", "must be a finite number")
		}
		ft := feature{spec: cloneFeature(fs), get: get, weight: fs.Weight, code: "MODEL_" + strings.ToUpper(fs.Name)}
		for j, t := range fs.Transforms {
			tp := fmt.Sprintf("%s/transforms/%d", p, j)
			s, detail, field := compileStep(t)
			if detail != "" {
				add(tp+field, "%s", detail)
				continue
			}
			ft.steps = append(ft.steps, s)
		}
		m.features = append(m.features, ft)
	}
	if len(ve.Errors) > 0 {
		return nil, fmt.Errorf("model: %w", ve)
	}
	return m, nil
}

// compileStep checks t and turns it into a step; on a problem it returns
// the problem and the pointer suffix of the offending field.
func compileStep(t Transform) (s step, detail, field string) {
	has := func(p *float64) bool { return p != nil }
	switch t.Op {
	case OpLog1p:
		if has(t.Min) || has(t.Max) || has(t.Mean) || has(t.Std) {
			return s, "log1p takes no parameters", ""
		}
		return step{op: stepLog1p}, "", ""
	case OpClip:
		if has(t.Mean) || has(t.Std) {
			return s, "clip takes only min and max", ""
		}
		if !has(t.Min) || !finite(*t.Min) {
			return s, "clip needs a finite min", "/min"
		}
		if !has(t.Max) || !finite(*t.Max) {
			return s, "clip needs a finite max", "/max"
		}
		if *t.Min > *t.Max {
			return s, fmt.Sprintf("clip min %v is above max %v", *t.Min, *t.Max), "/min"
		}
		return step{op: stepClip, a: *t.Min, b: *t.Max}, "", ""
	case OpStandardize:
		if has(t.Min) || has(t.Max) {
			return s, "standardize takes only mean and std", ""
		}
		if !has(t.Mean) || !finite(*t.Mean) {
			return s, "standardize needs a finite mean", "/mean"
		}
		if !has(t.Std) || !finite(*t.Std) || *t.Std <= 0 {
			return s, "standardize needs a finite std > 0", "/std"
		}
		return step{op: stepStandardize, a: *t.Mean, b: 1 / *t.Std}, "", ""
	}
	return s, fmt.Sprintf("unknown transform %q; known are log1p, clip, standardize", t.Op), "/op"
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Save writes m as JSON in the format Load reads.
func (m *Model) Save(w io.Writer) error {
	b, err := json.MarshalIndent(m.file(), "", "  ")
	if err != nil {
		return fmt.Errorf("model: encode: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func (m *Model) file() file {
	f := file{Version: m.version, Intercept: m.intercept, Features: m.Features()}
	th := m.threshold
	f.ReasonThreshold = &th
	return f
}

// Version names the model; the scorer writes it into every scored record.
func (m *Model) Version() string { return m.version }

// Intercept is the log-odds of a transaction whose features are all 0.
func (m *Model) Intercept() float64 { return m.intercept }

// ReasonThreshold is the contribution above which a feature is a reason.
func (m *Model) ReasonThreshold() float64 { return m.threshold }

// Features returns a copy of the model's features.
func (m *Model) Features() []Feature {
	out := make([]Feature, len(m.features))
	for i := range m.features {
		out[i] = cloneFeature(m.features[i].spec)
	}
	return out
}

func cloneFeature(f Feature) Feature {
	ts := make([]Transform, len(f.Transforms))
	for i, t := range f.Transforms {
		ts[i] = Transform{Op: t.Op, Min: clonePtr(t.Min), Max: clonePtr(t.Max), Mean: clonePtr(t.Mean), Std: clonePtr(t.Std)}
	}
	if len(ts) == 0 {
		ts = nil
	}
	f.Transforms = ts
	return f
}

func clonePtr(p *float64) *float64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// value is feature f of env after its transforms. A NaN (which no
// feature should produce) reads as 0, the neutral value, and infinities
// are bounded so that one wild input cannot turn the sum into NaN.
func (f *feature) value(env *rules.Env) float64 {
	return transform(f.get(env), f.steps)
}

func transform(x float64, steps []step) float64 {
	for _, s := range steps {
		switch s.op {
		case stepLog1p:
			x = log1p(x)
		case stepClip:
			x = min(max(x, s.a), s.b)
		case stepStandardize:
			x = (x - s.a) * s.b
		}
	}
	switch {
	case math.IsNaN(x):
		return 0
	case x > maxValue:
		return maxValue
	case x < -maxValue:
		return -maxValue
	}
	return x
}

// log1p is the sign-preserving log, sign(x)·ln(1+|x|). Away from 0 it
// uses math.Log, which is several times faster than math.Log1p on amd64
// and exact to within an ulp or two there; near 0, where 1+x would lose
// digits, math.Log1p.
func log1p(x float64) float64 {
	a := math.Abs(x)
	var y float64
	if a < 1e-3 {
		y = math.Log1p(a)
	} else {
		y = math.Log(1 + a)
	}
	if x < 0 {
		return -y
	}
	return y
}

// maxValue bounds a transformed feature value; far beyond any sensible
// input, small enough that weight·x stays finite.
const maxValue = 1e9

// Score returns the fraud probability of env and appends to dst the
// reasons for it, largest contribution first (see the package comment).
// With spare capacity in dst it does not allocate.
func (m *Model) Score(env *rules.Env, dst []event.Reason) (float64, []event.Reason) {
	z := m.intercept
	var top [MaxReasons]struct {
		i int
		c float64
	}
	n := 0
	for i := range m.features {
		f := &m.features[i]
		c := f.weight * f.value(env)
		z += c
		if !(c > m.threshold) {
			continue
		}
		// Insert into the top list, ordered by contribution descending;
		// a tie keeps feature order, so the output is deterministic.
		k := n
		if n < MaxReasons {
			n++
		} else if c <= top[MaxReasons-1].c {
			continue
		} else {
			k = MaxReasons - 1
		}
		for k > 0 && top[k-1].c < c {
			top[k] = top[k-1]
			k--
		}
		top[k].i, top[k].c = i, c
	}
	for _, t := range top[:n] {
		f := &m.features[t.i]
		dst = append(dst, event.Reason{Code: f.code, Source: event.SourceModel, Weight: t.c, Detail: f.spec.Name})
	}
	return sigmoid(z), dst
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

//go:embed default_model.json
var defaultJSON []byte

// DefaultJSON returns the encoded default model.
func DefaultJSON() []byte { return append([]byte(nil), defaultJSON...) }

// Default returns the default model, "default-v4": fitted with
//
//	fraudstream train --simulate 100000 --seed 1 --version default-v4
//
// on the traffic simulator's labeled scenarios, over the built-in training
// features (no profile features: the simulator has no profiles). Replace
// it with a model trained on your own labeled traffic (SCORER_MODEL_FILE).
func Default() (*Model, error) {
	return Load(strings.NewReader(string(defaultJSON)))
}
