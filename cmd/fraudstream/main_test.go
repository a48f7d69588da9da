package main

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/services/ingest"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestBadSettingIsNamed(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"scorer"}, map[string]string{"SCORER_REVIEW_THRESHOLD": "2"}, "SCORER_REVIEW_THRESHOLD (--review-threshold): 2 must be in (0, 1]"},
		{[]string{"scorer"}, map[string]string{"SCORER_REVIEW_THRESHOLD": "0.9", "SCORER_DECLINE_THRESHOLD": "0.6"},
			"SCORER_DECLINE_THRESHOLD (--decline-threshold): 0.6 is below SCORER_REVIEW_THRESHOLD (--review-threshold) (0.9)"},
		{[]string{"scorer"}, map[string]string{"SCORER_COMMIT_INTERVAL": "soon"}, "SCORER_COMMIT_INTERVAL"},
		{[]string{"ingest"}, map[string]string{"INGEST_MAX_SKEW": "xyz"}, "INGEST_MAX_SKEW"},
		{[]string{"ingest"}, nil, "INGEST_API_KEYS"},
		{[]string{"alerts"}, nil, "DATABASE_URL"},
		{[]string{"alerts", "--database-url", "mysql://x"}, nil, "DATABASE_URL (--database-url): unsupported scheme \"mysql\""},
		{[]string{"alerts"}, map[string]string{"DATABASE_URL": "sqlite:/tmp/x.db", "ALERTS_RETAIN_LABELED": "30d"},
			"ALERTS_RETAIN_LABELED (--retain-labeled): labeled transactions are kept longest: 720h0m0s is shorter than ALERTS_RETAIN_APPROVED (--retain-approved)"},
		{[]string{"alerts"}, map[string]string{"DATABASE_URL": "sqlite:/tmp/x.db", "ALERTS_SESSION_TIMEOUT": "100ms"}, "ALERTS_SESSION_TIMEOUT"},
		{[]string{"alerts"}, map[string]string{"DATABASE_URL": "sqlite:/tmp/x.db", "ALERTS_REBALANCE_TIMEOUT": "later"}, "ALERTS_REBALANCE_TIMEOUT"},
		{[]string{"alerts"}, map[string]string{"DATABASE_URL": "sqlite:/tmp/x.db", "ALERTS_RULE_BUDGET": "0s"}, "ALERTS_RULE_BUDGET"},
		{[]string{"scorer"}, map[string]string{"SCORER_RULE_BUDGET": "1h"}, "SCORER_RULE_BUDGET"},
		{[]string{"broker", "--partitions", "0"}, nil, "--partitions"},
		{[]string{"scorer"}, map[string]string{"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"},
		{[]string{"scorer"}, map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{[]string{"scorer"}, map[string]string{"SCORER_MODEL_FILE": "/no/such/model.json"}, "SCORER_MODEL_FILE"},
		{[]string{"train"}, nil, "TRAIN_INPUT"},
		{[]string{"train", "--input", "/no/such/file"}, nil, "TRAIN_INPUT"},
		{[]string{"ingest"}, map[string]string{"INGEST_API_KEYS": "a:" + strings.Repeat("0", 64), "INGEST_BODY_TIMEOUT": "0s"}, "INGEST_BODY_TIMEOUT"},
		{[]string{"ingest"}, map[string]string{"INGEST_API_KEYS": "a:" + strings.Repeat("0", 64), "INGEST_MAX_CONNS": "0"}, "INGEST_MAX_CONNS"},
		{[]string{"scorer"}, map[string]string{"SCORER_READ_HEADER_TIMEOUT": "-1s"}, "SCORER_READ_HEADER_TIMEOUT"},
		{[]string{"alerts"}, map[string]string{"DATABASE_URL": "sqlite:/tmp/x.db", "ALERTS_IDLE_TIMEOUT": "never"}, "ALERTS_IDLE_TIMEOUT"},
		{[]string{"alerts"}, map[string]string{"DATABASE_URL": "sqlite:/tmp/x.db", "ALERTS_MAX_CONNS": "100"}, "ALERTS_MAX_CONNS"},
		{[]string{"quality", "--populations", "suburbia"}, nil, "QUALITY_POPULATIONS"},
		{[]string{"quality"}, map[string]string{"QUALITY_SCALE": "-1"}, "QUALITY_SCALE"},
		{[]string{"quality", "--review-threshold", "0.9", "--decline-threshold", "0.8"}, nil, "QUALITY_REVIEW_THRESHOLD"},
		{[]string{"quality", "--seed", "0"}, nil, "QUALITY_SEED"},
		{[]string{"ingest"}, map[string]string{"INGEST_API_KEYS": "a:" + strings.Repeat("0", 64), "INGEST_MAX_BATCH_BODY_BYTES": "100"},
			"INGEST_MAX_BATCH_BODY_BYTES (--max-batch-body-bytes): must be at least INGEST_MAX_BODY_BYTES (--max-body-bytes)"},
		{[]string{"ingest"}, map[string]string{"INGEST_API_KEYS": "a:abcd"}, "INGEST_API_KEYS (--api-keys): entry 1"},
		{[]string{"ingest", "--redis-url", "http://x"}, map[string]string{"INGEST_API_KEYS": "a:" + strings.Repeat("0", 64)}, "REDIS_URL (--redis-url): must be"},
		{[]string{"train", "--simulate", "10", "--review-rate", "1.5"}, nil, "TRAIN_REVIEW_RATE"},
		{[]string{"train", "--simulate", "10", "--review-rate", "0.01", "--decline-rate", "0.02"}, nil, "TRAIN_DECLINE_RATE"},
		{[]string{"nope"}, nil, `unknown command "nope"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := dispatch(context.Background(), tc.args, envOf(tc.env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestIngestFieldsHaveSettings: every field ingest's errors can name
// (ingest.ConfigError) is mapped to its flag, so no start-up message names
// a Go field instead of the setting.
func TestIngestFieldsHaveSettings(t *testing.T) {
	f := newFlags("ingest", io.Discard)
	ingestFlags(f)
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for sf := range typ.Fields() {
			name := prefix + sf.Name
			switch {
			case sf.Type == reflect.TypeFor[kafkaopt.Config]():
				// kafkaopt names its own settings, as for every service.
			case sf.Type == reflect.TypeFor[httpserver.Limits](), sf.Type == reflect.TypeFor[ingest.DecisionConfig]():
				walk(name+".", sf.Type)
			default:
				flag, ok := f.fields[name]
				if !ok || f.env[flag] == "" {
					t.Errorf("ingest.Config.%s: no flag with an environment variable (%q)", name, flag)
				}
			}
		}
	}
	walk("", reflect.TypeFor[ingest.Config]())
}

func TestFlagBeatsEnvironmentBeatsDefault(t *testing.T) {
	parse := func(args []string, env map[string]string) string {
		f := newFlags("test", io.Discard)
		addr := f.String("addr", "TEST_ADDR", "default:1", "")
		if err := f.parse(args, envOf(env)); err != nil {
			t.Fatal(err)
		}
		return *addr
	}
	if got := parse(nil, nil); got != "default:1" {
		t.Errorf("default: got %s", got)
	}
	if got := parse(nil, map[string]string{"TEST_ADDR": "env:2"}); got != "env:2" {
		t.Errorf("env: got %s", got)
	}
	if got := parse([]string{"--addr", "flag:3"}, map[string]string{"TEST_ADDR": "env:2"}); got != "flag:3" {
		t.Errorf("flag: got %s", got)
	}
}

func TestListFlag(t *testing.T) {
	f := newFlags("test", io.Discard)
	l := f.List("brokers", "B", "a:1", "")
	if err := f.parse(nil, envOf(map[string]string{"B": " x:1, ,y:2 "})); err != nil {
		t.Fatal(err)
	}
	if strings.Join(*l, "|") != "x:1|y:2" {
		t.Fatalf("got %q", *l)
	}
}

// TestDevNamesTheSetting: a bad setting of a service started by
// fraudstream dev is named by its variable and flag, as in the service's
// own command.
func TestDevNamesTheSetting(t *testing.T) {
	args := []string{"dev", "--database-url", "mysql://x", "--data-dir", t.TempDir(), "--broker-listen", "127.0.0.1:0",
		"--ingest-addr", "127.0.0.1:0", "--scorer-addr", "127.0.0.1:0", "--alerts-addr", "127.0.0.1:0", "--rate", "0"}
	err := dispatch(context.Background(), args, envOf(nil), io.Discard, io.Discard)
	if want := `DATABASE_URL (--database-url): unsupported scheme "mysql"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want it to contain %q", err, want)
	}
}
