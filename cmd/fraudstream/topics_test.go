package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
)

func TestTopicsCommand(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		args = append([]string{"topics", "--kafka-brokers", c.ListenAddrs()[0], "--log-level", "error"}, args...)
		err := dispatch(context.Background(), args, envOf(nil), &out, io.Discard)
		return out.String(), err
	}

	if _, err := run("--check-only"); !errors.Is(err, kafkaopt.ErrTopicsMissing) {
		t.Fatalf("--check-only on an empty cluster: %v, want the missing topics", err)
	}
	for i := range 2 { // the second run finds them all and changes nothing
		out, err := run("--partitions", "6", "--replication-factor", "1")
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out)
		}
		for _, want := range []string{
			`raw-transactions\s+6\s+1\s+delete`,
			`scorer-state\s+6\s+1\s+compact`,
			`fraud-rules\s+1\s+1\s+compact`,
			`topics ok`,
		} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("run %d: output has no line matching %q:\n%s", i, want, out)
			}
		}
	}

	// A co-partitioned topic that grew on its own is reported, not fixed.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreatePartitions(context.Background(), 2, event.TopicScored); err != nil {
		t.Fatal(err)
	}
	out, err := run("--partitions", "6", "--replication-factor", "1")
	var le *kafkaopt.LayoutError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "scored-transactions has 8 partitions, raw-transactions has 6") {
		t.Fatalf("after adding partitions: %v, want a layout error naming scored-transactions", err)
	}
	if !regexp.MustCompile(`scored-transactions\s+8\s`).MatchString(out) {
		t.Errorf("the listing should still be written:\n%s", out)
	}
}

func TestTopicsBadSetting(t *testing.T) {
	for _, args := range [][]string{{"--partitions", "0"}, {"--replication-factor", "0"}} {
		err := dispatch(context.Background(), append([]string{"topics"}, args...), envOf(nil), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: got %v, want an error naming %s", args, err, args[0])
		}
	}
}
