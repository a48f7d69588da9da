package scorer_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer"
)

var update = flag.Bool("update", false, "rewrite the expectations of testdata/golden with the current results")

// goldenLine is one line of a golden stream: a transaction, as it arrives,
// and what the scorer must make of it with the default rules and model.
type goldenLine struct {
	Transaction json.RawMessage `json:"transaction"`
	Want        goldenWant      `json:"want"`
}

type goldenWant struct {
	// Dropped: the transaction_id was scored before; nothing is output.
	Dropped  bool     `json:"dropped,omitempty"`
	Decision string   `json:"decision,omitempty"`
	Rules    []string `json:"rules"`          // active rules that matched, in rule order
	Late     bool     `json:"late,omitempty"` // too late for state
	Count1m  int64    `json:"count_1m"`
	Count10m int64    `json:"count_10m"`
}

// TestGoldenStreams scores the scenario streams of testdata/golden (a
// card-testing burst, impossible travel, an amount spike, an account
// takeover, a benign heavy spender, out-of-order arrivals with a retry and
// a late record) each in a fresh scorer with the default rules and model,
// and checks every decision, matching rule and key feature. Run with
// -update to rewrite the expectations, then review the diff.
func TestGoldenStreams(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.ndjson")
	if err != nil || len(files) < 6 {
		t.Fatalf("golden streams: %v %v", files, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".ndjson"), func(t *testing.T) {
			lines := readGolden(t, file)
			o, err := scorer.NewOffline(scorer.DefaultConfig(), scorer.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range lines {
				tx, err := event.DecodeTransaction(lines[i].Transaction)
				if err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				s, ok, err := o.Score(tx)
				if err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				got := goldenWant{Dropped: !ok, Rules: []string{}}
				if ok {
					got.Decision, got.Late = s.Decision, s.Late
					got.Count1m, got.Count10m = s.Features.Count1m, s.Features.Count10m
					for _, r := range s.Reasons {
						if r.Source == event.SourceRule && !r.Shadow {
							got.Rules = append(got.Rules, r.Code)
						}
					}
				}
				if *update {
					lines[i].Want = got
					continue
				}
				w := lines[i].Want
				if w.Rules == nil {
					w.Rules = []string{}
				}
				if got.Dropped != w.Dropped || got.Decision != w.Decision || !slices.Equal(got.Rules, w.Rules) ||
					got.Late != w.Late || got.Count1m != w.Count1m || got.Count10m != w.Count10m {
					t.Errorf("line %d (%s): got %+v, want %+v", i+1, tx.TransactionID, got, w)
				}
			}
			if *update {
				writeGolden(t, file, lines)
			}
		})
	}
}

func readGolden(t *testing.T, file string) []goldenLine {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines []goldenLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		var l goldenLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s:%d: %v", file, n, err)
		}
		lines = append(lines, l)
	}
	return lines
}

func writeGolden(t *testing.T, file string, lines []goldenLine) {
	t.Helper()
	var buf bytes.Buffer
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
