package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/fraudstream/fraudstream/services/ingest"
)

// ingestFlags registers ingest's flags and returns its Config after parse.
func ingestFlags(f *flags) func() ingest.Config {
	d := ingest.DefaultConfig()
	addr := f.String("addr", "INGEST_ADDR", d.Addr, "HTTP listen address")
	kafka := f.kafka()
	httpLimits := f.httpLimits("INGEST", d.HTTP)
	skew := f.Duration("max-skew", "INGEST_MAX_SKEW", d.MaxSkew, "how far in the future an event_time may be")
	body := f.Int("max-body-bytes", "INGEST_MAX_BODY_BYTES", int(d.MaxBodyBytes), "largest body of POST /v1/transactions")
	batchBody := f.Int("max-batch-body-bytes", "INGEST_MAX_BATCH_BODY_BYTES", int(d.MaxBatchBodyBytes), "largest body of POST /v1/transactions/batch")
	batchItems := f.Int("max-batch-items", "INGEST_MAX_BATCH_ITEMS", d.MaxBatchItems, "most transactions in one batch")
	produce := f.Duration("produce-timeout", "INGEST_PRODUCE_TIMEOUT", d.ProduceTimeout, "longest wait for the broker's acknowledgement before 503")
	buffered := f.Int("max-buffered-records", "INGEST_MAX_BUFFERED_RECORDS", d.MaxBufferedRecords, "records awaiting acknowledgement before new requests get 503")
	keys := f.List("api-keys", "INGEST_API_KEYS", "", `accepted API keys, comma-separated "id:sha256hex[;rate=N][;burst=N][;scopes=transactions:write+profiles:read+profiles:write]" entries`)
	anon := f.Bool("allow-anonymous", "INGEST_ALLOW_ANONYMOUS", false, "accept requests without an API key")
	redisURL := f.String("redis-url", "REDIS_URL", "redis://127.0.0.1:6379/0", "Redis for idempotency, rate limits and card profiles (rediss:// for TLS)")
	redisTimeout := f.Duration("redis-timeout", "INGEST_REDIS_TIMEOUT", d.RedisTimeout, "longest wait for one Redis round trip")
	failOpen := f.Bool("redis-fail-open", "INGEST_REDIS_FAIL_OPEN", false, "when Redis fails, accept transactions without idempotency and rate limits instead of answering 503")
	idemTTL := f.Duration("idempotency-ttl", "INGEST_IDEMPOTENCY_TTL", d.IdempotencyTTL, "how long a first answer is replayed to retries")
	txidTTL := f.Duration("transaction-id-ttl", "INGEST_TRANSACTION_ID_TTL", d.TransactionIDTTL, "how long a transaction_id stays bound to the contents first accepted with it (another transaction reusing it gets 409); at least --idempotency-ttl")
	rate := f.Int("rate-limit", "INGEST_RATE_LIMIT", d.RateLimit, `transactions per second per API key (per key: ";rate=N" in INGEST_API_KEYS)`)
	burst := f.Int("rate-burst", "INGEST_RATE_BURST", d.RateBurst, `burst per API key (per key: ";burst=N" in INGEST_API_KEYS)`)
	decBudget := f.Duration("decision-budget", "INGEST_DECISION_BUDGET", d.Decisions.Budget, `how long POST /v1/decisions waits for the decision before answering 202 pending (per request: "Prefer: wait=N" or "?budget_ms=N")`)
	decMax := f.Duration("decision-max-budget", "INGEST_DECISION_MAX_BUDGET", d.Decisions.MaxBudget, "the largest budget a decision request may ask for")
	decRetention := f.Duration("decision-retention", "INGEST_DECISION_RETENTION", d.Decisions.Retention, "how long recent decisions stay readable at GET /v1/decisions/{partition}/{offset}")
	decCache := f.Int("decision-cache-size", "INGEST_DECISION_CACHE_SIZE", d.Decisions.CacheSize, "most recent decisions held (about 470 bytes of heap each: 100000 ≈ 47 MB)")
	for field, flag := range map[string]string{"Addr": "addr", "MaxSkew": "max-skew", "MaxBodyBytes": "max-body-bytes",
		"MaxBatchBodyBytes": "max-batch-body-bytes", "MaxBatchItems": "max-batch-items", "ProduceTimeout": "produce-timeout",
		"MaxBufferedRecords": "max-buffered-records", "APIKeys": "api-keys", "AllowAnonymous": "allow-anonymous",
		"RedisURL": "redis-url", "RedisTimeout": "redis-timeout", "RedisFailOpen": "redis-fail-open",
		"IdempotencyTTL": "idempotency-ttl", "TransactionIDTTL": "transaction-id-ttl", "RateLimit": "rate-limit", "RateBurst": "rate-burst",
		"Decisions.Budget": "decision-budget", "Decisions.MaxBudget": "decision-max-budget",
		"Decisions.Retention": "decision-retention", "Decisions.CacheSize": "decision-cache-size"} {
		f.field(field, flag) // ingest's errors name these fields (ingest.ConfigError)
	}
	return func() ingest.Config {
		return ingest.Config{Addr: *addr, Kafka: kafka(), HTTP: httpLimits(), MaxSkew: *skew, MaxBodyBytes: int64(*body),
			MaxBatchBodyBytes: int64(*batchBody), MaxBatchItems: *batchItems, ProduceTimeout: *produce,
			MaxBufferedRecords: *buffered, APIKeys: *keys, AllowAnonymous: *anon,
			RedisURL: *redisURL, RedisTimeout: *redisTimeout, RedisFailOpen: *failOpen,
			IdempotencyTTL: *idemTTL, TransactionIDTTL: *txidTTL, RateLimit: *rate, RateBurst: *burst,
			Decisions: ingest.DecisionConfig{Budget: *decBudget, MaxBudget: *decMax, Retention: *decRetention, CacheSize: *decCache}}
	}
}

func runIngest(ctx context.Context, args []string, env func(string) string, _, stderr io.Writer) error {
	return runService(ctx, "ingest", args, env, stderr, ingestFlags, func(c ingest.Config, log *slog.Logger) (service, error) {
		return ingest.New(c, ingest.Deps{Log: log})
	})
}
