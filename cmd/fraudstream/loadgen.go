package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fraudstream/fraudstream/tools/loadgen"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

const loadgenHelp = `usage: fraudstream loadgen [flags]

Sends simulated card transactions with labeled fraud scenarios (%s)
to ingest (--mode http: one per POST; batch: NDJSON batches) or straight to the
raw-transactions topic (--mode kafka), at --rate per second or, with --rate 0, as
fast as --workers concurrent requests go. It stops after --count transactions or
--duration, whichever comes first, then waits up to --drain for the scored records.

With --alerts-url it follows alerts' live stream (subscribed before the first
transaction; --alerts-token if alerts wants one) and reports end-to-end latency
(send to scored record on the stream, and ingest_time to scored_at) and detection
quality: a review or decline is a flag; recall per scenario, precision overall and
per reason code. Records the stream lost are read from alerts' API after --drain.
With --e2e-from topic it reads scored-transactions from Kafka instead.

A progress line goes to stderr every --progress, the report to stdout, and with
--report-json FILE the report as JSON.

flags:
`

func runLoadgen(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	f := newFlags("loadgen", stderr)
	mode := f.String("mode", "LOADGEN_MODE", "http", "how to send: http (POST /v1/transactions), batch (POST /v1/transactions/batch, NDJSON), decisions (POST /v1/decisions and /v1/transactions alternately: decision latency beside its floor) or kafka (produce to the topic)")
	url := f.String("url", "INGEST_URL", "http://127.0.0.1:8081", "ingest base URL")
	key := f.String("api-key", "INGEST_API_KEY", "dev-secret-key", "ingest API key")
	kafka := f.kafka()
	topic := f.String("topic", "LOADGEN_TOPIC", "raw-transactions", "topic of --mode kafka")
	rate := f.Float("rate", "LOADGEN_RATE", 100, "transactions per second; 0: as fast as the workers go")
	count := f.Int("count", "LOADGEN_COUNT", 1000, "distinct transactions to send, retries not counted (0: no limit, set --duration)")
	duration := f.Duration("duration", "LOADGEN_DURATION", 0, "how long to send (0: until --count)")
	workers := f.Int("workers", "LOADGEN_WORKERS", 8, "concurrent requests")
	batchSize := f.Int("batch-size", "LOADGEN_BATCH_SIZE", 100, "transactions per request of --mode batch")
	timeout := f.Duration("request-timeout", "LOADGEN_REQUEST_TIMEOUT", 10*time.Second, "bound on one request")
	budget := f.Duration("decision-budget", "LOADGEN_DECISION_BUDGET", 0, "budget_ms sent with each request of --mode decisions (0: ingest's INGEST_DECISION_BUDGET)")

	seed := f.Int("seed", "LOADGEN_SEED", 1, "simulator seed; the same seed sends the same stream")
	idPrefix := f.String("id-prefix", "LOADGEN_ID_PREFIX", "", "transaction id prefix, unique per run (default load-SEED-UNIXTIME)")
	cards := f.Int("cards", "LOADGEN_CARDS", 2000, "simulated cards")
	cardPrefix := f.String("card-prefix", "LOADGEN_CARD_PREFIX", "", "card id prefix (default card-sSEED-: cards of one seed are the same cardholders in every run, and never share an id with another seed's)")
	merchants := f.Int("merchants", "LOADGEN_MERCHANTS", 5000, "simulated merchants over all cities and categories")
	fraud := f.Float("fraud-rate", "LOADGEN_FRAUD_RATE", 0.01, "probability that a transaction starts a fraud episode, shared equally by the scenarios")
	scenarios := f.String("scenarios", "LOADGEN_SCENARIOS", "", "per-scenario episode rates instead of --fraud-rate, e.g. card_testing=0.004,amount_spike=0.002 (others off)")
	episodeScale := f.Float("episode-scale", "LOADGEN_EPISODE_SCALE", 1, "multiplies the time between the steps of a fraud episode; below 1 short runs see whole episodes")
	timeScale := f.Float("time-scale", "LOADGEN_TIME_SCALE", 1, "event time runs this many times faster than the wall clock, ending at now (needs --duration, or --count with --rate): hours of realistic per-card traffic in minutes, for detection figures")
	retryRate := f.Float("retry-rate", "LOADGEN_RETRY_RATE", 0.01, "share of transactions the client sends again (same transaction_id and body)")
	retryAfter := f.Duration("retry-after", "LOADGEN_RETRY_AFTER", 2*time.Second, "largest delay before a retry")
	delayMedian := f.Duration("delay-median", "LOADGEN_DELAY_MEDIAN", 100*time.Millisecond, "median delay from event time to sending (exponential body)")
	delayTail := f.Float("delay-tail", "LOADGEN_DELAY_TAIL", 0.03, "share of transactions delayed 1s to --delay-tail-max")
	delayTailMax := f.Duration("delay-tail-max", "LOADGEN_DELAY_TAIL_MAX", 10*time.Second, "largest tail delay")
	delayLate := f.Float("delay-late", "LOADGEN_DELAY_LATE", 0.002, "share of transactions delayed 1m to --delay-late-max")
	delayLateMax := f.Duration("delay-late-max", "LOADGEN_DELAY_LATE_MAX", 3*time.Minute, "largest late delay")

	alertsURL := f.String("alerts-url", "ALERTS_URL", "http://127.0.0.1:8080", "alerts base URL whose /api/v1/stream is followed for end-to-end latency and quality; empty: do not measure")
	alertsToken := f.String("alerts-token", "ALERTS_TOKEN", "", "bearer token of the alerts stream, when alerts requires one")
	e2eFrom := f.String("e2e-from", "LOADGEN_E2E_FROM", "stream", "where scored records are followed: stream (alerts' /api/v1/stream) or topic (scored-transactions via --kafka-brokers, without alerts' fan-out, for rates the stream cannot carry)")
	drain := f.Duration("drain", "LOADGEN_DRAIN", 30*time.Second, "how long to wait for scored records after sending")
	progress := f.Duration("progress", "LOADGEN_PROGRESS", 5*time.Second, "interval of progress lines on stderr; 0: none")
	reportJSON := f.String("report-json", "LOADGEN_REPORT_JSON", "", "also write the report as JSON to this file")
	f.fs.Usage = func() {
		names := make([]string, len(traffic.Scenarios))
		for i, p := range traffic.Scenarios {
			names[i] = string(p)
		}
		fmt.Fprintf(f.fs.Output(), loadgenHelp, strings.Join(names, ", "))
		f.fs.PrintDefaults()
	}
	log, err := f.parseLogged(args, env, stderr)
	if err != nil {
		return err
	}

	rates, err := parseScenarios(*scenarios)
	if err != nil {
		return fmt.Errorf("LOADGEN_SCENARIOS: %w", err)
	}
	prefix := *idPrefix
	if prefix == "" {
		prefix = fmt.Sprintf("load-%d-%d", *seed, time.Now().Unix())
	}
	cfg := loadgen.Config{
		Mode: loadgen.Mode(*mode), IngestURL: strings.TrimRight(*url, "/"), APIKey: *key,
		Kafka: kafka(), Topic: *topic,
		Rate: *rate, Workers: *workers, BatchSize: *batchSize, Count: *count, Duration: *duration,
		RequestTimeout: *timeout, DecisionBudget: *budget, Drain: *drain, TimeScale: *timeScale, Progress: *progress, AlertsToken: *alertsToken,
		Traffic: traffic.Config{
			Seed: uint64(*seed), Cards: *cards, CardPrefix: *cardPrefix, Merchants: *merchants, FraudRate: *fraud, Scenarios: rates,
			EpisodeScale: *episodeScale, RetryRate: *retryRate, RetryAfter: *retryAfter, IDPrefix: prefix,
			Delay: traffic.Delay{Median: *delayMedian, TailFraction: *delayTail, TailMax: *delayTailMax,
				LateFraction: *delayLate, LateMax: *delayLateMax},
		},
	}
	if *progress == 0 {
		cfg.Progress = -1
	}
	if *alertsURL != "" {
		cfg.AlertsURL = strings.TrimRight(*alertsURL, "/")
	}
	switch *e2eFrom {
	case "stream":
	case "topic":
		cfg.FromTopic = true
	default:
		return fmt.Errorf("LOADGEN_E2E_FROM: %q is not stream or topic", *e2eFrom)
	}
	if *workers <= 0 {
		return fmt.Errorf("LOADGEN_WORKERS: must be positive, got %d", *workers)
	}
	if *reportJSON != "" {
		// Fail before the run, not after it.
		fh, err := os.OpenFile(*reportJSON, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("LOADGEN_REPORT_JSON: %w", err)
		}
		fh.Close()
	}

	rep, err := loadgen.Run(ctx, cfg, loadgen.Deps{Log: log, Progress: stderr})
	if rep == nil {
		return err
	}
	rep.WriteText(stdout)
	if *reportJSON != "" {
		b, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(*reportJSON, append(b, '\n'), 0o644)
		}
		if jerr != nil {
			return fmt.Errorf("write report: %w", jerr)
		}
	}
	return err
}

// parseScenarios reads "name=rate,name=rate"; empty gives nil (use the
// fraud rate).
func parseScenarios(s string) (map[traffic.Pattern]float64, error) {
	items := splitList(s)
	if len(items) == 0 {
		return nil, nil
	}
	rates := map[traffic.Pattern]float64{}
	for _, item := range items {
		name, v, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not scenario=rate", item)
		}
		r, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: rate is not a number", item)
		}
		rates[traffic.Pattern(strings.TrimSpace(name))] = r
	}
	return rates, nil
}
