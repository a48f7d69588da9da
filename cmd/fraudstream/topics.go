package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// runTopics creates the pipeline's topics on a Kafka cluster, leaving the
// ones that exist alone, then checks the layout the scorer relies on and
// lists the topics. With --check-only it creates nothing.
func runTopics(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	f := newFlags("topics", stderr)
	kafka := f.kafka()
	partitions := f.Int("partitions", "TOPICS_PARTITIONS", 12,
		"partitions of raw-transactions and its co-partitioned topics (fraud-rules has 1); the most scorer instances that share the work")
	replication := f.Int("replication-factor", "TOPICS_REPLICATION_FACTOR", 3, "replicas of each partition, at most the number of brokers")
	checkOnly := f.Bool("check-only", "TOPICS_CHECK_ONLY", false, "create nothing, only check and list the topics")
	log, err := f.parseLogged(args, env, stderr)
	if err != nil {
		return err
	}
	if *partitions < 1 || *partitions > 10000 {
		return fmt.Errorf("--partitions: %d is not between 1 and 10000", *partitions)
	}
	if *replication < 1 || *replication > 32767 {
		return fmt.Errorf("--replication-factor: %d is not between 1 and 32767", *replication)
	}
	cfg := kafka()
	if err := cfg.Validate(); err != nil {
		return err
	}
	opts, err := cfg.Opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.WithLogger(kafkaopt.Logger(log)))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	if !*checkOnly {
		if err := kafkaopt.EnsureTopics(ctx, cl, int32(*partitions), int16(*replication)); err != nil {
			return err
		}
	}
	layout, err := kafkaopt.DescribeTopics(ctx, cl)
	if err != nil {
		return err
	}
	checked := layout.Check()
	if errors.Is(checked, kafkaopt.ErrTopicsMissing) {
		return checked
	}
	if err := listTopics(layout, stdout); err != nil {
		return errors.Join(checked, err)
	}
	if checked != nil {
		return checked
	}
	fmt.Fprintln(stdout, "topics ok: co-partitioned with raw-transactions, scorer-state and fraud-rules compacted")
	return nil
}

// listTopics writes a line per pipeline topic: partitions, replication
// factor and cleanup policy.
func listTopics(layout kafkaopt.Layout, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tCLEANUP.POLICY")
	for _, topic := range event.Topics {
		tl := layout[topic]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", topic, tl.Partitions, tl.Replicas, tl.CleanupPolicy)
	}
	return tw.Flush()
}
