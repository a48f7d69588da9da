package devbroker

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

func TestBrokerSeedsTopicsAndPersists(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	cfg := Config{Listen: "127.0.0.1:0", DataDir: dir, Partitions: 3}

	b, err := Start(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range event.Topics {
		want := 3
		if event.Broadcast(topic) {
			want = 1
		}
		if got := len(details[topic].Partitions); got != want {
			t.Errorf("%s has %d partitions, want %d", topic, got, want)
		}
	}
	configs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, event.TopicState, event.TopicRules)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range configs {
		policy := ""
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				policy = *c.Value
			}
		}
		if policy != "compact" {
			t.Errorf("%s cleanup.policy = %q, want compact", rc.Name, policy)
		}
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: event.TopicRaw, Key: []byte("card"), Value: []byte("v1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	b.Close()

	// A second start on the same data dir keeps the record and the topics.
	cfg.Listen = "127.0.0.1:0"
	b2, err := Start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer b2.Close()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(b2.Addr()), kgo.ConsumeTopics(event.TopicRaw),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	fetches := cl2.PollFetches(ctx)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fetches.Records()
	if len(recs) != 1 || string(recs[0].Value) != "v1" {
		t.Fatalf("after restart got %d records, want the one written before", len(recs))
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Listen: "nope", Partitions: 1}, "--listen"},
		{Config{Listen: "127.0.0.1:x", Partitions: 1}, "--listen"},
		{Config{Listen: "0.0.0.0:9092", Partitions: 1}, "--advertise"},
		{Config{Listen: "127.0.0.1:9092", Partitions: 0}, "--partitions"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{Listen: "0.0.0.0:9092", Advertise: "broker:9092", Partitions: 12}).Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}
