package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fraudstream/fraudstream/services/scorer/model"
)

// TestTrain fits a model on simulated traffic and on an NDJSON file, and
// refuses a file with an invalid transaction, naming its line.
func TestTrain(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "model.json")
	var report strings.Builder
	err := dispatch(context.Background(), []string{"train", "--simulate", "20000", "--seed", "3", "--version", "t1", "--out", out, "--review-rate", "0.05"},
		envOf(nil), io.Discard, &report)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report.String(), "SCORER_REVIEW_THRESHOLD=") || !strings.Contains(report.String(), "(target 0.0500)") ||
		!strings.Contains(report.String(), "(target 0.0125)") {
		t.Errorf("no thresholds for the alert rates (decline a quarter of review) in %q", report.String())
	}
	m, err := loadModelFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != "t1" || len(m.Features()) == 0 {
		t.Fatalf("model %s with %d features", m.Version(), len(m.Features()))
	}
	var small bool
	for _, f := range m.Features() {
		if f.Name == "small_count_10m" && f.Weight > 0 {
			small = true
		}
	}
	if !small {
		t.Errorf("small charges in a row (card testing) did not raise the fraud probability: %+v", m.Features())
	}

	in := filepath.Join(dir, "labeled.ndjson")
	lines := []string{
		`{"transaction":{"transaction_id":"a","card_id":"c1","amount_minor":1200,"currency":"EUR","merchant_id":"m","merchant_category":"5411","merchant_country":"DE","channel":"card_present","event_time":"2026-03-01T10:00:00Z"},"fraud":false}`,
		`{"transaction":{"transaction_id":"b","card_id":"c1","amount_minor":90,"currency":"USD","merchant_id":"x","merchant_category":"5816","merchant_country":"US","channel":"ecommerce","event_time":"2026-03-01T10:00:05Z"},"fraud":true}`,
		`{"transaction":{"transaction_id":"c","card_id":"c2","amount_minor":3300,"currency":"EUR","merchant_id":"m","merchant_category":"5812","merchant_country":"DE","channel":"card_present","event_time":"2026-03-01T10:01:00Z"},"fraud":false}`,
		`{"transaction":{"transaction_id":"d","card_id":"c2","amount_minor":95,"currency":"USD","merchant_id":"x","merchant_category":"5816","merchant_country":"US","channel":"ecommerce","event_time":"2026-03-01T10:01:04Z"},"fraud":true}`,
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	if err := dispatch(context.Background(), []string{"train", "--input", in, "--version", "t2"}, envOf(nil), &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if m, err := model.Load(strings.NewReader(stdout.String())); err != nil || m.Version() != "t2" {
		t.Fatalf("model on stdout: %v", err)
	}

	bad := strings.Replace(lines[1], `"currency":"USD"`, `"currency":"DOLLARS"`, 1)
	if err := os.WriteFile(in, []byte(lines[0]+"\n"+bad+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = dispatch(context.Background(), []string{"train", "--input", in}, envOf(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "/currency") {
		t.Fatalf("bad line: err = %v, want one naming line 2 and /currency", err)
	}
}
