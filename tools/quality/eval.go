package quality

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/fraudstream/fraudstream/services/scorer"
	"github.com/fraudstream/fraudstream/services/scorer/model"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// HeldOut are the populations Eval rotates over by default: three presets
// that differ in habits, prevalence and fraud mix.
var HeldOut = []string{"urban-commuters", "travellers-and-gamers", "low-prevalence-retail"}

// Start is when the event time of every evaluated population begins.
var Start = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// Config is an evaluation.
type Config struct {
	// Populations are the preset names to evaluate; nil means HeldOut.
	// With two or more, each is also the test set of a model trained on
	// all the others.
	Populations []string
	// Reference are presets evaluated with the built-in model only, not
	// used for training (e.g. "default").
	Reference []string
	// Seed generates every population; default 1.
	Seed uint64
	// Scale multiplies the presets' card counts; default 1.
	Scale float64
	// Scorer holds the thresholds and event-time settings of the offline
	// scorer; zero fields take their defaults.
	Scorer scorer.Config
}

// Validate reports the first setting Eval cannot use, named by the
// environment variable of fraudstream quality.
func (c Config) Validate() error {
	for _, names := range [][]string{c.Populations, c.Reference} {
		for _, n := range names {
			if _, err := traffic.PresetByName(n); err != nil {
				return fmt.Errorf("QUALITY_POPULATIONS/QUALITY_REFERENCE: %w", err)
			}
		}
	}
	if c.Populations != nil && len(c.Populations) == 0 && len(c.Reference) == 0 {
		return errors.New("QUALITY_POPULATIONS: no population to evaluate")
	}
	if c.Scale != 0 && (!(c.Scale > 0) || c.Scale > 100) {
		return fmt.Errorf("QUALITY_SCALE: %v, want more than 0 and at most 100", c.Scale)
	}
	r, d := c.Scorer.ReviewThreshold, c.Scorer.DeclineThreshold
	if r == 0 {
		r = scorer.DefaultReviewThreshold
	}
	if d == 0 {
		d = scorer.DefaultDeclineThreshold
	}
	if !(r > 0 && r <= d && d <= 1) {
		return fmt.Errorf("QUALITY_REVIEW_THRESHOLD %v and QUALITY_DECLINE_THRESHOLD %v: want 0 < review ≤ decline ≤ 1", r, d)
	}
	return nil
}

// Result is one model tested on one population.
type Result struct {
	Population string
	Model      string // "built-in" or "trained on A+B"
	Summary    traffic.Summary
	Report     Report
	// Transferred holds, per alert rate of AlertRates, detection at the
	// threshold that flags that rate of the training populations: the
	// honest way to pick a threshold by alert rate. Nil for the built-in
	// model.
	Transferred []RateQuality
}

// Evaluation is every result of an evaluation.
type Evaluation struct {
	Config  Config
	Results []Result
}

// Result returns the result of model on population.
func (e Evaluation) Result(population, model string) (Result, bool) {
	for _, r := range e.Results {
		if r.Population == population && r.Model == model {
			return r, true
		}
	}
	return Result{}, false
}

// BuiltIn names the default rules and model in results.
const BuiltIn = "built-in"

// TrainedOn names the model trained on the given populations.
func TrainedOn(populations []string) string { return "trained on " + strings.Join(populations, "+") }

// Eval generates the populations and scores each offline with the
// scorer's default rules and built-in model, then, for each population,
// trains a model (scorer.Train's features and fit) on all the other
// populations and scores it with that model and the default rules.
func Eval(cfg Config) (Evaluation, error) {
	if err := cfg.Validate(); err != nil {
		return Evaluation{}, err
	}
	if cfg.Populations == nil {
		cfg.Populations = HeldOut
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Scale == 0 {
		cfg.Scale = 1
	}
	ev := Evaluation{Config: cfg}
	type pop struct {
		name string
		ls   []traffic.Labeled
		ex   []model.Example
	}
	gen := func(name string) (pop, error) {
		p, err := traffic.PresetByName(name)
		if err != nil {
			return pop{}, err
		}
		p.Cards = max(1, int(math.Round(float64(p.Cards)*cfg.Scale)))
		ls, err := traffic.Generate(p, cfg.Seed, Start)
		return pop{name: name, ls: ls}, err
	}
	var pops []pop
	for _, name := range cfg.Populations {
		p, err := gen(name)
		if err != nil {
			return ev, err
		}
		pops = append(pops, p)
	}
	for _, name := range cfg.Reference {
		p, err := gen(name)
		if err != nil {
			return ev, err
		}
		os, err := Score(cfg.Scorer, scorer.Deps{}, p.ls)
		if err != nil {
			return ev, fmt.Errorf("%s: %w", name, err)
		}
		ev.Results = append(ev.Results, Result{Population: name, Model: BuiltIn, Summary: traffic.Summarize(p.ls), Report: NewReport(os)})
	}
	for i := range pops {
		p := &pops[i]
		os, err := Score(cfg.Scorer, scorer.Deps{}, p.ls)
		if err != nil {
			return ev, fmt.Errorf("%s: %w", p.name, err)
		}
		ev.Results = append(ev.Results, Result{Population: p.name, Model: BuiltIn, Summary: traffic.Summarize(p.ls), Report: NewReport(os)})
		if len(pops) > 1 {
			if p.ex, err = scorer.Examples(cfg.Scorer, scorer.Deps{}, labeled(p.ls)); err != nil {
				return ev, fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	if len(pops) < 2 {
		return ev, nil
	}
	for i := range pops {
		var train []string
		var ex []model.Example
		for j := range pops {
			if j != i {
				train = append(train, pops[j].name)
				ex = append(ex, pops[j].ex...)
			}
		}
		name := TrainedOn(train)
		m, err := model.Fit(ex, scorer.TrainingFeatures(), model.WithVersion(strings.ReplaceAll(name, " ", "-")))
		if err != nil {
			return ev, fmt.Errorf("%s: %w", name, err)
		}
		deps := scorer.Deps{Model: m}
		// The threshold for an alert rate is chosen on the training
		// populations, then applied to the held-out one.
		var trainOut []Outcome
		for j := range pops {
			if j != i {
				os, err := Score(cfg.Scorer, deps, pops[j].ls)
				if err != nil {
					return ev, fmt.Errorf("%s on %s: %w", name, pops[j].name, err)
				}
				trainOut = append(trainOut, os...)
			}
		}
		os, err := Score(cfg.Scorer, deps, pops[i].ls)
		if err != nil {
			return ev, fmt.Errorf("%s on %s: %w", name, pops[i].name, err)
		}
		r := Result{Population: pops[i].name, Model: name, Summary: traffic.Summarize(pops[i].ls), Report: NewReport(os)}
		for _, rate := range AlertRates {
			thr := ThresholdForRate(trainOut, rate)
			r.Transferred = append(r.Transferred, RateQuality{Rate: rate, Threshold: thr, Counts: AtThreshold(os, thr).Counts})
		}
		ev.Results = append(ev.Results, r)
	}
	return ev, nil
}

// Score scores ls offline (scorer.Offline, in the order given, as one
// partition) and returns the outcomes; retries the scorer drops as
// duplicates are left out. A transaction the scorer would dead-letter is
// an error.
func Score(cfg scorer.Config, deps scorer.Deps, ls []traffic.Labeled) ([]Outcome, error) {
	o, err := scorer.NewOffline(cfg, deps)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, 0, len(ls))
	for _, l := range ls {
		s, ok, err := o.Score(l.Tx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Tx.TransactionID, err)
		}
		if !ok {
			continue
		}
		out = append(out, Outcome{Score: s.Score, Decision: s.Decision, Pattern: l.Pattern, Variant: l.Variant,
			Episode: l.Episode, LookAlike: l.LookAlike, EventTime: l.Tx.EventTime})
	}
	if len(out) == 0 {
		return nil, errors.New("nothing scored")
	}
	return out, nil
}

func labeled(ls []traffic.Labeled) []scorer.Labeled {
	out := make([]scorer.Labeled, len(ls))
	for i, l := range ls {
		out[i] = scorer.Labeled{Transaction: l.Tx, Fraud: l.Fraud(), Pattern: string(l.Pattern)}
	}
	return out
}
