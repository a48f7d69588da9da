package quality

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// WriteText writes the evaluation as plain-text tables: one line per
// population and model, then per-pattern recall, false alerts on
// look-alikes, and detection at thresholds chosen on the training
// populations by alert rate.
func (e Evaluation) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	fmt.Fprintf(w, "Detection quality (seed %d, scale %g; flagged = review or decline at the configured thresholds)\n\n", e.Config.Seed, e.Config.Scale)
	row("population", "model", "tx", "fraud", "prevalence", "PR-AUC", "precision", "recall", "alert rate", "recall@0.5%", "prec@0.5%", "recall@1%", "prec@1%")
	for _, r := range e.Results {
		q := r.Report
		row(r.Population, r.Model, fmt.Sprint(q.Transactions), fmt.Sprint(q.Fraud), pct(q.Prevalence), f3(q.PRAUC),
			f3(q.Decisions.Precision), f3(q.Decisions.Recall), pct(q.Decisions.AlertRate),
			f3(q.Rates[0].Recall), f3(q.Rates[0].Precision), f3(q.Rates[1].Recall), f3(q.Rates[1].Precision))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nPer pattern (episode caught = any of its fraud transactions flagged; first flag = rank of the first flagged one)\n\n")
	row("population", "model", "pattern", "tx", "tx recall", "episodes", "episode recall", "caught at 1st", "mean 1st flag")
	for _, r := range e.Results {
		for _, p := range r.Report.Decisions.Patterns {
			row(r.Population, r.Model, p.Name, fmt.Sprint(p.Transactions), f3(p.Recall), fmt.Sprint(p.Episodes), f3(p.EpisodeRecall),
				f3(p.CaughtFirst), f2(p.MeanFirstFlag))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nFalse alerts on legitimate look-alikes (flagged / transactions)\n\n")
	row("population", "model", "look-alike", "tx", "flagged", "rate")
	for _, r := range e.Results {
		for _, l := range r.Report.Decisions.LookAlikes {
			row(r.Population, r.Model, l.Tag, fmt.Sprint(l.Transactions), fmt.Sprint(l.Flagged), pct(l.Rate))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nThreshold chosen on the training populations for an alert rate, applied to the held-out one\n\n")
	row("population", "model", "target rate", "threshold", "alert rate", "precision", "recall")
	for _, r := range e.Results {
		for _, t := range r.Transferred {
			row(r.Population, r.Model, pct(t.Rate), fmt.Sprintf("%.4f", t.Threshold), pct(t.AlertRate), f3(t.Precision), f3(t.Recall))
		}
	}
	return tw.Flush()
}

func f3(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.3f", x)
}

func f2(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.2f", x)
}

func pct(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.2f %%", 100*x)
}
