package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestBadSettingIsNamed(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"scorer"}, map[string]string{"SCORER_REVIEW_THRESHOLD": "2"}, "SCORER_REVIEW_THRESHOLD"},
		{[]string{"scorer"}, map[string]string{"SCORER_COMMIT_INTERVAL": "soon"}, "SCORER_COMMIT_INTERVAL"},
		{[]string{"ingest"}, map[string]string{"INGEST_MAX_SKEW": "xyz"}, "INGEST_MAX_SKEW"},
		{[]string{"ingest"}, nil, "INGEST_API_KEYS"},
		{[]string{"alerts"}, nil, "DATABASE_URL"},
		{[]string{"alerts", "--database-url", "mysql://x"}, nil, "DATABASE_URL"},
		{[]string{"alerts"}, map[string]string{"DATABASE_URL": "sqlite:/tmp/x.db", "ALERTS_SESSION_TIMEOUT": "100ms"}, "ALERTS_SESSION_TIMEOUT"},
		{[]string{"alerts"}, map[string]string{"DATABASE_URL": "sqlite:/tmp/x.db", "ALERTS_REBALANCE_TIMEOUT": "later"}, "ALERTS_REBALANCE_TIMEOUT"},
		{[]string{"broker", "--partitions", "0"}, nil, "--partitions"},
		{[]string{"scorer"}, map[string]string{"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"},
		{[]string{"scorer"}, map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{[]string{"scorer"}, map[string]string{"SCORER_MODEL_FILE": "/no/such/model.json"}, "SCORER_MODEL_FILE"},
		{[]string{"train"}, nil, "TRAIN_INPUT"},
		{[]string{"train", "--input", "/no/such/file"}, nil, "TRAIN_INPUT"},
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
