package main

import (
	"context"
	"fmt"
	"io"

	"github.com/fraudstream/fraudstream/services/scorer"
	"github.com/fraudstream/fraudstream/tools/quality"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

const qualityHelp = `usage: fraudstream quality [flags]

Measures detection on simulated populations (tools/traffic presets), scored in
process with the scorer's own code: each population with the built-in rules
and model, then each held out from a model trained on the others. Prints
PR-AUC, precision and recall at the thresholds, recall at 0.5 %% and 1 %%
alert rates, recall per pattern and episode, false alerts on legitimate
look-alikes, and thresholds chosen by alert rate on the training populations.
docs/detection-quality.md defines every figure and records the baseline.

populations: %s

flags:
`

func runQuality(_ context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	f := newFlags("quality", stderr)
	f.fs.Usage = func() {
		fmt.Fprintf(stderr, qualityHelp, traffic.PresetNames())
		f.fs.PrintDefaults()
	}
	pops := f.List("populations", "QUALITY_POPULATIONS", "urban-commuters,travellers-and-gamers,low-prevalence-retail", "populations to evaluate and rotate as held-out test sets")
	ref := f.List("reference", "QUALITY_REFERENCE", "default", "populations scored with the built-in model only")
	seed := f.Int("seed", "QUALITY_SEED", 1, "seed of every population")
	scale := f.Float("scale", "QUALITY_SCALE", 1, "multiplies the presets' card counts")
	review := f.Float("review-threshold", "QUALITY_REVIEW_THRESHOLD", scorer.DefaultReviewThreshold, "score from which a transaction is reviewed")
	decline := f.Float("decline-threshold", "QUALITY_DECLINE_THRESHOLD", scorer.DefaultDeclineThreshold, "score from which a transaction is declined")
	if err := f.parse(args, env); err != nil {
		return err
	}
	if *seed < 1 {
		return fmt.Errorf("QUALITY_SEED: %d, want at least 1", *seed)
	}
	cfg := quality.Config{Populations: *pops, Reference: *ref, Seed: uint64(*seed), Scale: *scale}
	if cfg.Populations == nil {
		cfg.Populations = []string{}
	}
	cfg.Scorer.ReviewThreshold, cfg.Scorer.DeclineThreshold = *review, *decline
	if err := cfg.Validate(); err != nil {
		return err
	}
	ev, err := quality.Eval(cfg)
	if err != nil {
		return err
	}
	return ev.WriteText(stdout)
}
