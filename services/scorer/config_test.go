package scorer

import (
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Kafka: kafkaopt.Config{Brokers: []string{"127.0.0.1:9092"}}, TransactionalID: "fraudstream-scorer-a"}
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name   string
		edit   func(*Config)
		envVar string
	}{
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "KAFKA_BROKERS"},
		{"no transactional id", func(c *Config) { c.TransactionalID = "" }, "SCORER_TRANSACTIONAL_ID"},
		{"negative interval", func(c *Config) { c.CommitInterval = -time.Second }, "SCORER_COMMIT_INTERVAL"},
		{"negative batch", func(c *Config) { c.MaxBatchRecords = -1 }, "SCORER_MAX_BATCH_RECORDS"},
		{"short txn timeout", func(c *Config) { c.TransactionTimeout = time.Millisecond }, "SCORER_TRANSACTION_TIMEOUT"},
		{"timeout below interval", func(c *Config) { c.CommitInterval = 3 * time.Second; c.TransactionTimeout = 2 * time.Second }, "SCORER_TRANSACTION_TIMEOUT"},
		{"review above 1", func(c *Config) { c.ReviewThreshold = 1.5 }, "SCORER_REVIEW_THRESHOLD"},
		{"decline negative", func(c *Config) { c.DeclineThreshold = -0.1 }, "SCORER_DECLINE_THRESHOLD"},
		{"decline below review", func(c *Config) { c.ReviewThreshold = 0.9; c.DeclineThreshold = 0.6 }, "SCORER_DECLINE_THRESHOLD"},
		{"negative out of order", func(c *Config) { c.MaxOutOfOrder = -time.Second }, "SCORER_MAX_OUT_OF_ORDER"},
		{"absurd lateness", func(c *Config) { c.AllowedLateness = 30 * 24 * time.Hour }, "SCORER_ALLOWED_LATENESS"},
		{"tiny stats idle timeout", func(c *Config) { c.StatsIdleTimeout = time.Millisecond }, "SCORER_STATS_IDLE_TIMEOUT"},
		{"short session", func(c *Config) { c.SessionTimeout = time.Millisecond }, "SCORER_SESSION_TIMEOUT"},
		{"short rebalance", func(c *Config) { c.RebalanceTimeout = time.Millisecond }, "SCORER_REBALANCE_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.envVar+":") {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.envVar)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.Addr != "127.0.0.1:8082" || c.GroupID != "fraudstream-scorer" || c.CommitInterval != 50*time.Millisecond ||
		c.MaxBatchRecords != 2000 || c.ReviewThreshold != 0.5 || c.DeclineThreshold != 0.8 ||
		c.TransactionTimeout != 10*time.Second || c.MaxOutOfOrder != 5*time.Second || c.AllowedLateness != time.Minute ||
		c.SessionTimeout != 45*time.Second || c.RebalanceTimeout != time.Minute {
		t.Fatalf("DefaultConfig() = %+v", c)
	}
}
