package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/fraudstream/fraudstream/tools/devstack"
)

func runDev(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	f := newFlags("dev", stderr)
	dataDir := f.String("data-dir", "FRAUDSTREAM_DATA_DIR", ".data", "broker log, SQLite database and the in-process Redis snapshot; a second run resumes them")
	kafka := f.kafka()
	listen := f.String("broker-listen", "BROKER_LISTEN", "127.0.0.1:9092", "embedded broker address (unused with KAFKA_BROKERS)")
	partitions := f.Int("partitions", "BROKER_PARTITIONS", 6, "partitions of the embedded broker's topics")
	db := f.String("database-url", "DATABASE_URL", "", "database of alerts (default: SQLite in the data dir)")
	redisURL := f.String("redis-url", "REDIS_URL", "", "Redis of ingest (default: an in-process Redis-protocol server, snapshotted to the data dir every second and at a clean stop)")
	ingestAddr := f.String("ingest-addr", "INGEST_ADDR", "127.0.0.1:8081", "ingest listen address")
	scorerAddr := f.String("scorer-addr", "SCORER_ADDR", "127.0.0.1:8082", "scorer listen address")
	alertsAddr := f.String("alerts-addr", "ALERTS_ADDR", "127.0.0.1:8080", "dashboard listen address")
	apiKey := f.String("api-key", "FRAUDSTREAM_DEV_API_KEY", devstack.DevAPIKey, "ingest API key")
	rate := f.Float("rate", "FRAUDSTREAM_DEV_RATE", 20, "simulated transactions per second (0: none)")
	f.field("DatabaseURL", "database-url") // alerts' errors name the field (configfield.Error)
	f.field("RedisURL", "redis-url")
	log, err := f.parseLogged(args, env, stderr)
	if err != nil {
		return err
	}
	// Only an explicit KAFKA_BROKERS replaces the embedded broker.
	kc := kafka()
	if env("KAFKA_BROKERS") == "" && !flagGiven(f, "kafka-brokers") {
		kc.Brokers = nil
	}
	stack, err := devstack.Start(ctx, devstack.Config{DataDir: *dataDir, Kafka: kc, BrokerListen: *listen,
		Partitions: *partitions, DatabaseURL: *db, RedisURL: *redisURL, IngestAddr: *ingestAddr, ScorerAddr: *scorerAddr,
		AlertsAddr: *alertsAddr, APIKey: *apiKey, Rate: *rate}, log)
	if err != nil {
		return f.named(err)
	}
	fmt.Fprintf(stdout, `
fraudstream dev is running (Ctrl-C stops it; data in %s)
  dashboard  %s
  ingest     %s   (API key: %s)
  scorer     %s/metrics
  kafka      %s
  redis      %s
  traffic    %g simulated transactions per second

`, *dataDir, stack.AlertsURL(), stack.IngestURL(), stack.APIKey(), stack.ScorerURL(),
		strings.Join(stack.Brokers(), ","), redactURL(stack.RedisURL()), *rate)
	return stack.Run(ctx)
}

// redactURL hides a password in a URL before it is printed.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
