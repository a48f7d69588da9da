package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

// Example is one labeled transaction for Fit: the environment the scorer
// built for it (rules.NewEnv over the scorer's own features) and whether
// it was fraud.
type Example struct {
	Env   rules.Env
	Label bool
}

// FitOption configures Fit.
type FitOption func(*fitConfig)

type fitConfig struct {
	l2        float64
	maxIter   int
	version   string
	threshold float64
	posWeight float64
}

// WithL2 sets the strength λ of the L2 penalty (λ/2)·‖w‖² added to the mean
// log-loss; the intercept is not penalized. Weights are fitted on
// standardized features, so one λ suits them all. Default 1e-3.
func WithL2(lambda float64) FitOption { return func(c *fitConfig) { c.l2 = lambda } }

// WithMaxIterations bounds the Newton iterations. Default 50; a
// well-posed problem converges in about 10.
func WithMaxIterations(n int) FitOption { return func(c *fitConfig) { c.maxIter = n } }

// WithVersion names the fitted model. Default "fitted".
func WithVersion(v string) FitOption { return func(c *fitConfig) { c.version = v } }

// WithReasonThreshold sets the fitted model's reason threshold. Default
// DefaultReasonThreshold.
func WithReasonThreshold(t float64) FitOption { return func(c *fitConfig) { c.threshold = t } }

// WithPositiveWeight weighs each fraudulent example w times a legitimate
// one, to counter the rarity of fraud. It shifts probabilities up, so
// review and decline thresholds must be chosen on the weighted model.
// Default 1.
func WithPositiveWeight(w float64) FitOption { return func(c *fitConfig) { c.posWeight = w } }

// ErrNoData reports examples that cannot fit a model: none, or all with
// the same label.
var ErrNoData = errors.New("model: need both fraudulent and legitimate examples")

// Fit trains a logistic regression on examples over features. Each
// feature's transforms are applied as given, except that a final
// standardize is (re)computed from the data: features are centered and
// scaled to unit variance, which conditions the problem and makes the
// L2 penalty fair across features. Input weights are ignored.
//
// The optimizer is Newton's method with a backtracking line search on the
// penalized mean log-loss: the model has few features, so the exact
// Hessian is cheap, and it converges in a handful of passes over the data.
// Fit is deterministic: the same examples in the same order give the same
// model, bit for bit.
func Fit(examples []Example, features []Feature, opts ...FitOption) (*Model, error) {
	cfg := fitConfig{l2: 1e-3, maxIter: 50, version: "fitted", threshold: DefaultReasonThreshold, posWeight: 1}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case !(cfg.l2 >= 0) || math.IsInf(cfg.l2, 0):
		return nil, fmt.Errorf("model: L2 strength %v must be finite and ≥ 0", cfg.l2)
	case cfg.maxIter < 1:
		return nil, fmt.Errorf("model: max iterations %d must be ≥ 1", cfg.maxIter)
	case !(cfg.posWeight > 0) || math.IsInf(cfg.posWeight, 0):
		return nil, fmt.Errorf("model: positive weight %v must be finite and > 0", cfg.posWeight)
	}

	// Resolve the features without their final standardize, through the
	// same validation as Load.
	pre := make([]Feature, len(features))
	for j, f := range features {
		f = cloneFeature(f)
		if n := len(f.Transforms); n > 0 && f.Transforms[n-1].Op == OpStandardize {
			f.Transforms = f.Transforms[:n-1]
		}
		f.Weight = 0
		pre[j] = f
	}
	base, err := build(file{Version: cfg.version, Features: pre, ReasonThreshold: &cfg.threshold})
	if err != nil {
		return nil, err
	}
	var pos int
	for i := range examples {
		if examples[i].Label {
			pos++
		}
	}
	if pos == 0 || pos == len(examples) {
		return nil, fmt.Errorf("%w (got %d examples, %d fraudulent)", ErrNoData, len(examples), pos)
	}

	// The design matrix, standardized per column.
	n, d := len(examples), len(pre)
	x := make([]float64, n*d)
	for i := range examples {
		for j := range base.features {
			x[i*d+j] = base.features[j].value(&examples[i].Env)
		}
	}
	mean, std := make([]float64, d), make([]float64, d)
	for j := range d {
		var s float64
		for i := range n {
			s += x[i*d+j]
		}
		mean[j] = s / float64(n)
		var v float64
		for i := range n {
			dv := x[i*d+j] - mean[j]
			v += dv * dv
		}
		std[j] = math.Sqrt(v / float64(n))
		if !(std[j] > 1e-12) {
			std[j] = 1 // a constant column: its weight stays at 0 under L2
		}
		for i := range n {
			x[i*d+j] = (x[i*d+j] - mean[j]) / std[j]
		}
	}
	y := make([]float64, n)
	sw := make([]float64, n)
	var total float64
	for i := range examples {
		sw[i] = 1
		if examples[i].Label {
			y[i], sw[i] = 1, cfg.posWeight
		}
		total += sw[i]
	}

	theta := newton(x, y, sw, total, n, d, cfg)

	out := file{Version: cfg.version, Intercept: theta[0], ReasonThreshold: &cfg.threshold, Features: pre}
	for j := range pre {
		out.Features[j].Transforms = append(out.Features[j].Transforms, Standardize(mean[j], std[j]))
		out.Features[j].Weight = theta[j+1]
	}
	return build(out)
}

// newton minimizes the penalized weighted mean log-loss over θ = (b, w).
func newton(x, y, sw []float64, total float64, n, d int, cfg fitConfig) []float64 {
	p := d + 1
	theta := make([]float64, p)
	var pw float64
	for i := range n {
		pw += sw[i] * y[i]
	}
	theta[0] = math.Log(pw / (total - pw)) // the base rate: a good start
	grad := make([]float64, p)
	hess := make([]float64, p*p)
	step := make([]float64, p)
	cand := make([]float64, p)
	row := make([]float64, p)
	loss := objective(x, y, sw, total, theta, n, d, cfg.l2)
	for range cfg.maxIter {
		clear(grad)
		clear(hess)
		for i := range n {
			row[0] = 1
			copy(row[1:], x[i*d:(i+1)*d])
			z := dot(row, theta)
			pi := sigmoid(z)
			g := sw[i] * (pi - y[i])
			h := sw[i] * pi * (1 - pi)
			for a := range p {
				grad[a] += g * row[a]
				ha := h * row[a]
				for b := 0; b <= a; b++ {
					hess[a*p+b] += ha * row[b]
				}
			}
		}
		for a := range p {
			grad[a] /= total
			for b := 0; b <= a; b++ {
				hess[a*p+b] /= total
				hess[b*p+a] = hess[a*p+b]
			}
			if a > 0 {
				grad[a] += cfg.l2 * theta[a]
				hess[a*p+a] += cfg.l2
			}
			hess[a*p+a] += 1e-10 // keeps the system positive definite when λ = 0
		}
		if !cholSolve(hess, grad, step, p) {
			break
		}
		// Backtracking: halve the step until the objective does not rise.
		t := 1.0
		improved := false
		for range 40 {
			for a := range p {
				cand[a] = theta[a] - t*step[a]
			}
			if l := objective(x, y, sw, total, cand, n, d, cfg.l2); l <= loss {
				improved = loss-l > 1e-15*math.Max(1, loss)
				copy(theta, cand)
				loss = l
				break
			}
			t /= 2
		}
		if !improved {
			break
		}
	}
	return theta
}

func objective(x, y, sw []float64, total float64, theta []float64, n, d int, l2 float64) float64 {
	var s float64
	for i := range n {
		z := theta[0] + dot(x[i*d:(i+1)*d], theta[1:])
		// log(1 + e^z) − y·z, computed without overflow.
		sp := math.Log1p(math.Exp(-math.Abs(z))) + math.Max(z, 0)
		s += sw[i] * (sp - y[i]*z)
	}
	var r float64
	for _, w := range theta[1:] {
		r += w * w
	}
	return s/total + l2/2*r
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// cholSolve solves A·x = b for a symmetric positive definite A (row-major
// p×p) by Cholesky decomposition. It reports false if A is not positive
// definite.
func cholSolve(a, b, x []float64, p int) bool {
	l := make([]float64, p*p)
	for i := range p {
		for j := 0; j <= i; j++ {
			s := a[i*p+j]
			for k := range j {
				s -= l[i*p+k] * l[j*p+k]
			}
			if i == j {
				if !(s > 0) {
					return false
				}
				l[i*p+i] = math.Sqrt(s)
			} else {
				l[i*p+j] = s / l[j*p+j]
			}
		}
	}
	// Forward: L·z = b; back: Lᵀ·x = z.
	for i := range p {
		s := b[i]
		for k := range i {
			s -= l[i*p+k] * x[k]
		}
		x[i] = s / l[i*p+i]
	}
	for i := p - 1; i >= 0; i-- {
		s := x[i]
		for k := i + 1; k < p; k++ {
			s -= l[k*p+i] * x[k]
		}
		x[i] = s / l[i*p+i]
	}
	return true
}
