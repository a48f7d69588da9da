package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer"
	"github.com/fraudstream/fraudstream/services/scorer/model"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

const trainHelp = `usage: fraudstream train [flags]

Fits the scorer's logistic-regression model on labeled transactions and writes
it as JSON, ready for SCORER_MODEL_FILE. The features of each transaction are
computed by the scorer's own code (the transactions are scored in process, in
the order given, as one partition), so the model sees exactly the values it
will see online.

Input: --input FILE (or - for stdin), one labeled transaction per line:
  {"transaction": {...the body of POST /v1/transactions...}, "fraud": true}
or --simulate N: N transactions of the traffic simulator (--seed), arriving so
that each card makes --per-card-per-hour transactions an hour.

flags:
`

func runTrain(_ context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	f := newFlags("train", stderr)
	f.fs.Usage = func() {
		fmt.Fprint(stderr, trainHelp)
		f.fs.PrintDefaults()
	}
	input := f.String("input", "TRAIN_INPUT", "", "labeled transactions, NDJSON (- for stdin)")
	simulate := f.Int("simulate", "TRAIN_SIMULATE", 0, "train on this many simulated transactions instead of --input")
	seed := f.Int("seed", "TRAIN_SEED", 1, "simulator seed of --simulate")
	perCard := f.Float("per-card-per-hour", "TRAIN_PER_CARD_PER_HOUR", 1, "simulated transactions per card per hour")
	template := f.String("template", "TRAIN_TEMPLATE", "", "model JSON whose features and transforms to fit (default: the built-in training features)")
	out := f.String("out", "TRAIN_OUT", "", "where to write the model (default stdout)")
	version := f.String("version", "TRAIN_VERSION", "", "the model's version (default trained-YYYYMMDD)")
	l2 := f.Float("l2", "TRAIN_L2", 1e-3, "strength of the L2 penalty")
	reasonAt := f.Float("reason-threshold", "TRAIN_REASON_THRESHOLD", 1.5, "contribution to the log-odds from which a feature is named as a reason")
	reviewRate := f.Float("review-rate", "TRAIN_REVIEW_RATE", 0, "if set, report the SCORER_REVIEW_THRESHOLD that flags this share of the training transactions (rules and the new model)")
	declineRate := f.Float("decline-rate", "TRAIN_DECLINE_RATE", 0, "with --review-rate: the share to decline (default a quarter of --review-rate)")
	if err := f.parse(args, env); err != nil {
		return err
	}
	switch {
	case (*input == "") == (*simulate == 0):
		return errors.New("TRAIN_INPUT: give exactly one of --input and --simulate")
	case *simulate < 0:
		return fmt.Errorf("TRAIN_SIMULATE: %d is negative", *simulate)
	case !(*perCard > 0):
		return fmt.Errorf("TRAIN_PER_CARD_PER_HOUR: %v must be positive", *perCard)
	case *l2 < 0:
		return fmt.Errorf("TRAIN_L2: %v is negative", *l2)
	case *reviewRate < 0 || *reviewRate >= 1:
		return fmt.Errorf("TRAIN_REVIEW_RATE: %v is not in [0, 1)", *reviewRate)
	case *declineRate < 0 || *declineRate > *reviewRate:
		return fmt.Errorf("TRAIN_DECLINE_RATE: %v is not in [0, TRAIN_REVIEW_RATE]", *declineRate)
	}
	if *declineRate == 0 {
		*declineRate = *reviewRate / 4
	}
	features := scorer.TrainingFeatures()
	if *template != "" {
		m, err := loadModelFile(*template)
		if err != nil {
			return fmt.Errorf("TRAIN_TEMPLATE: %w", err)
		}
		features = m.Features()
	}
	if *version == "" {
		*version = "trained-" + time.Now().UTC().Format("20060102")
	}

	var ls []scorer.Labeled
	if *simulate > 0 {
		for _, l := range traffic.Simulate(traffic.Config{Seed: uint64(*seed)}, *simulate, *perCard, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
			ls = append(ls, scorer.Labeled{Transaction: l.Tx, Fraud: l.Fraud(), Pattern: string(l.Pattern)})
		}
	} else {
		var err error
		if ls, err = readLabeled(*input); err != nil {
			return fmt.Errorf("TRAIN_INPUT: %w", err)
		}
	}
	fraud := 0
	for _, l := range ls {
		if l.Fraud {
			fraud++
		}
	}
	fmt.Fprintf(stderr, "train: %d transactions, %d fraudulent\n", len(ls), fraud)
	m, err := scorer.Train(scorer.DefaultConfig(), scorer.Deps{}, ls, features, model.WithVersion(*version), model.WithL2(*l2), model.WithReasonThreshold(*reasonAt))
	if err != nil {
		return err
	}
	w := stdout
	if *out != "" {
		file, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("TRAIN_OUT: %w", err)
		}
		defer file.Close()
		w = file
	}
	if err := m.Save(w); err != nil {
		return err
	}
	if *out != "" {
		fmt.Fprintf(stderr, "train: model %s written to %s\n", m.Version(), *out)
	}
	if *reviewRate > 0 {
		th, err := scorer.ThresholdsForRates(scorer.DefaultConfig(), scorer.Deps{Model: m}, ls, *reviewRate, *declineRate)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "train: with the default rules, SCORER_REVIEW_THRESHOLD=%.4f flags %.4f of these transactions (target %.4f), SCORER_DECLINE_THRESHOLD=%.4f declines %.4f (target %.4f)\n",
			th.Review, th.Reviewed, th.ReviewRate, th.Decline, th.Declined, th.DeclineRate)
		d := scorer.DefaultConfig()
		fmt.Fprintf(stderr, "train: the default thresholds %.2f and %.2f flag %.4f and decline %.4f\n", d.ReviewThreshold, d.DeclineThreshold, th.ConfigReviewed, th.ConfigDeclined)
	}
	return nil
}

func loadModelFile(path string) (*model.Model, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return model.Load(file)
}

// readLabeled reads NDJSON labeled transactions; each must be a valid
// transaction, so a bad line is named rather than trained on.
func readLabeled(path string) ([]scorer.Labeled, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		r = file
	}
	var out []scorer.Labeled
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var raw struct {
			Transaction json.RawMessage `json:"transaction"`
			Fraud       *bool           `json:"fraud"`
			Pattern     string          `json:"pattern"`
		}
		if err := event.Unmarshal(b, &raw, event.IgnoreUnknown); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if raw.Fraud == nil || raw.Transaction == nil {
			return nil, fmt.Errorf("line %d: want {\"transaction\": {...}, \"fraud\": true|false}", line)
		}
		tx, err := event.DecodeTransaction(raw.Transaction)
		if err == nil {
			err = tx.Validate(time.Time{}, 0)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: transaction: %w", line, err)
		}
		out = append(out, scorer.Labeled{Transaction: tx, Fraud: *raw.Fraud, Pattern: raw.Pattern})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no labeled transactions")
	}
	return out, nil
}
