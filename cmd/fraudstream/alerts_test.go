package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/alerts"
)

// TestRulesAPIRefusesCostlyRules: alerts as main wires it (the scorer's
// checker) answers PUT /api/v1/rules with a 422 problem naming the rule
// for the unbounded rule of issue 16 and for an oversized description,
// and publishes nothing; an ordinary set is published.
func TestRulesAPIRefusesCostlyRules(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, event.TopicScored, event.TopicStats),
		kfake.SeedTopics(1, event.TopicRules))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := alerts.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.DatabaseURL = "sqlite:" + filepath.Join(t.TempDir(), "alerts.db")
	log := slog.New(slog.DiscardHandler)
	svc, err := alerts.New(cfg, alertsDeps(cfg, log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	put := func(rs event.RuleSet) (int, map[string]any) {
		t.Helper()
		body, _ := json.Marshal(rs)
		req, _ := http.NewRequest(http.MethodPut, "http://"+svc.Addr()+"/api/v1/rules", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode == 422 && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("422 with Content-Type %q", resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, out
	}
	version := func() float64 {
		t.Helper()
		resp, err := http.Get("http://" + svc.Addr() + "/api/v1/rules")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rs event.RuleSet
		if err := json.NewDecoder(resp.Body).Decode(&rs); err != nil {
			t.Fatal(err)
		}
		return float64(rs.Version)
	}
	before := version() // the default set, once alerts has published it
	velocity := event.Rule{ID: "velocity", Expression: "count_1m >= 5", Weight: 0.5, ReasonCode: "VELOCITY_1M", Mode: event.ModeActive}
	tests := []struct {
		name    string
		rule    event.Rule
		pointer string
		want    string
	}{
		{"issue reduce", event.Rule{ID: "doubling", Expression: `len(reduce(1..40, #acc + #acc, "x")) > 5`, Weight: 0.1,
			ReasonCode: "DOUBLING", Mode: event.ModeShadow}, "/rules/1/expression", `rule "doubling" is refused`},
		{"long description", event.Rule{ID: "wordy", Expression: "new_country", Weight: 0.1, ReasonCode: "WORDY",
			Description: strings.Repeat("x", 5000), Mode: event.ModeShadow}, "/rules/1/description", `rule "wordy"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, pr := put(event.RuleSet{Rules: []event.Rule{velocity, tc.rule}})
			errs, _ := pr["errors"].([]any)
			if code != 422 || len(errs) != 1 {
				t.Fatalf("PUT = %d %v, want 422 with one error", code, pr)
			}
			fe, _ := errs[0].(map[string]any)
			if fe["pointer"] != tc.pointer || !strings.Contains(fe["detail"].(string), tc.want) {
				t.Fatalf("error %v, want %s naming %s", fe, tc.pointer, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("refusing took %v", d)
			}
		})
	}
	code, out := put(event.RuleSet{Rules: []event.Rule{velocity}})
	if code != 200 || out["version"] != before+1 {
		t.Fatalf("PUT of an ordinary set = %d %v, want 200 and version %v (the refused ones published nothing)", code, out, before+1)
	}
}

func TestParseDays(t *testing.T) {
	day := 24 * time.Hour
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"0", 0, false}, {"7d", 7 * day, false}, {"2w", 14 * day, false}, {"2y", 730 * day, false},
		{"36h", 36 * time.Hour, false}, {"90d", 90 * day, false},
		{"1.5d", 0, true}, {"-1d", 0, true}, {"d", 0, true}, {"7days", 0, true}, {"", 0, true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseDays(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("parseDays(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}
