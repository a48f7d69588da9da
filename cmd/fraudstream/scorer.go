package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/fraudstream/fraudstream/services/scorer"
)

// scorerFlags registers the scorer's flags and returns its Config after parse.
func scorerFlags(f *flags) func() scorer.Config {
	d := scorer.DefaultConfig()
	host, _ := os.Hostname()
	addr := f.String("addr", "SCORER_ADDR", d.Addr, "listen address of /healthz, /readyz and /metrics")
	kafka := f.kafka()
	httpLimits := f.httpLimits("SCORER", d.HTTP)
	group := f.String("group-id", "SCORER_GROUP_ID", d.GroupID, "consumer group shared by all scorer instances")
	txid := f.String("transactional-id", "SCORER_TRANSACTIONAL_ID", "fraudstream-scorer-"+host,
		"transactional id, unique per running instance and stable across its restarts")
	commit := f.Duration("commit-interval", "SCORER_COMMIT_INTERVAL", d.CommitInterval, "longest time one Kafka transaction collects records")
	batch := f.Int("max-batch-records", "SCORER_MAX_BATCH_RECORDS", d.MaxBatchRecords, "most input records in one Kafka transaction")
	txTimeout := f.Duration("transaction-timeout", "SCORER_TRANSACTION_TIMEOUT", d.TransactionTimeout, "broker-side timeout of an open transaction")
	review := f.Float("review-threshold", "SCORER_REVIEW_THRESHOLD", d.ReviewThreshold, "score from which a transaction is sent to review")
	decline := f.Float("decline-threshold", "SCORER_DECLINE_THRESHOLD", d.DeclineThreshold, "score from which a transaction is declined")
	modelFile := f.String("model-file", "SCORER_MODEL_FILE", "", "logistic-regression model JSON, e.g. from fraudstream train (default: the built-in model)")
	outOfOrder := f.Duration("max-out-of-order", "SCORER_MAX_OUT_OF_ORDER", d.MaxOutOfOrder, "event-time disorder a partition may have: watermark = max event time − this")
	lateness := f.Duration("allowed-lateness", "SCORER_ALLOWED_LATENESS", d.AllowedLateness, "how far behind the watermark an event time may be before the record is flagged late (it then counts at the oldest open time)")
	statsIdle := f.Duration("stats-idle-timeout", "SCORER_STATS_IDLE_TIMEOUT", d.StatsIdleTimeout, "how long a partition may go without records before its open fraud-stats windows are fired anyway (not final)")
	session := f.Duration("session-timeout", "SCORER_SESSION_TIMEOUT", d.SessionTimeout, "how long the group waits for a silent (crashed) member")
	rebalance := f.Duration("rebalance-timeout", "SCORER_REBALANCE_TIMEOUT", d.RebalanceTimeout, "how long a rebalance waits for members to rejoin")
	redisURL := f.String("redis-url", "REDIS_URL", "", "Redis holding the card profiles ingest writes (rediss:// for TLS); empty: score without profiles")
	redisTimeout := f.Duration("redis-timeout", "SCORER_REDIS_TIMEOUT", d.RedisTimeout, "longest wait for the profile lookup of one poll; past it records are scored without profiles")
	cacheTTL := f.Duration("profile-cache-ttl", "SCORER_PROFILE_CACHE_TTL", d.ProfileCacheTTL, "how long a looked-up card profile is used before it is looked up again")
	cacheSize := f.Int("profile-cache-size", "SCORER_PROFILE_CACHE_SIZE", d.ProfileCacheSize, "most card profiles cached (at least twice --max-batch-records)")
	ruleBudget := f.Duration("rule-budget", "SCORER_RULE_BUDGET", d.RuleRunBudget, "run-time guard: a rule timed above this per transaction 3 times in a row is disabled in this instance")
	entities := f.Bool("entities", "SCORER_ENTITIES", false, "run the entity stage: write entity-events, aggregate them (a second Kafka session), join entity-features (docs/design/entities.md)")
	entityLag := f.Duration("entity-lag", "SCORER_ENTITY_LAG", d.Entities.Lag, "a transaction is joined with the entity table as of its time minus this (more than allowed lateness + max out-of-order)")
	entityWait := f.Duration("entity-wait", "SCORER_ENTITY_WAIT", d.Entities.Wait, "longest wait for the entity table to be complete through a transaction's join time; then it is scored with entity_stale")
	entityMemory := f.Duration("entity-memory", "SCORER_ENTITY_MEMORY", d.Entities.Memory, "how long a card remembers its merchants, and the window of a merchant's flagged visitors")
	for field, flag := range map[string]string{"Addr": "addr", "GroupID": "group-id", "TransactionalID": "transactional-id",
		"CommitInterval": "commit-interval", "MaxBatchRecords": "max-batch-records", "TransactionTimeout": "transaction-timeout",
		"ReviewThreshold": "review-threshold", "DeclineThreshold": "decline-threshold", "ModelFile": "model-file",
		"MaxOutOfOrder": "max-out-of-order", "AllowedLateness": "allowed-lateness", "StatsIdleTimeout": "stats-idle-timeout",
		"SessionTimeout": "session-timeout", "RebalanceTimeout": "rebalance-timeout", "RedisURL": "redis-url",
		"RedisTimeout": "redis-timeout", "ProfileCacheTTL": "profile-cache-ttl", "ProfileCacheSize": "profile-cache-size",
		"RuleRunBudget": "rule-budget", "Entities.Enabled": "entities", "Entities.Lag": "entity-lag",
		"Entities.Wait": "entity-wait", "Entities.Memory": "entity-memory"} {
		f.field(field, flag) // the scorer's errors name these fields (configfield.Error)
	}
	return func() scorer.Config {
		return scorer.Config{Addr: *addr, Kafka: kafka(), HTTP: httpLimits(), GroupID: *group, TransactionalID: *txid,
			CommitInterval: *commit, MaxBatchRecords: *batch, TransactionTimeout: *txTimeout,
			ReviewThreshold: *review, DeclineThreshold: *decline, ModelFile: *modelFile,
			MaxOutOfOrder: *outOfOrder, AllowedLateness: *lateness, StatsIdleTimeout: *statsIdle,
			SessionTimeout: *session, RebalanceTimeout: *rebalance,
			RedisURL: *redisURL, RedisTimeout: *redisTimeout, ProfileCacheTTL: *cacheTTL, ProfileCacheSize: *cacheSize,
			RuleRunBudget: *ruleBudget,
			Entities:      scorer.EntityConfig{Enabled: *entities, Lag: *entityLag, Wait: *entityWait, Memory: *entityMemory}}
	}
}

func runScorer(ctx context.Context, args []string, env func(string) string, _, stderr io.Writer) error {
	return runService(ctx, "scorer", args, env, stderr, scorerFlags, func(c scorer.Config, log *slog.Logger) (service, error) {
		return scorer.New(c, scorer.Deps{Log: log})
	})
}
