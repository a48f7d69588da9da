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
		name string
		edit func(*Config)
		want string // the error's prefix: the field (cmd/fraudstream names its setting)
	}{
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "KAFKA_BROKERS"},
		{"no transactional id", func(c *Config) { c.TransactionalID = "" }, "scorer: Config.TransactionalID"},
		{"negative interval", func(c *Config) { c.CommitInterval = -time.Second }, "scorer: Config.CommitInterval"},
		{"negative batch", func(c *Config) { c.MaxBatchRecords = -1 }, "scorer: Config.MaxBatchRecords"},
		{"short txn timeout", func(c *Config) { c.TransactionTimeout = time.Millisecond }, "scorer: Config.TransactionTimeout"},
		{"timeout below interval", func(c *Config) { c.CommitInterval = 3 * time.Second; c.TransactionTimeout = 2 * time.Second }, "scorer: Config.TransactionTimeout"},
		{"review above 1", func(c *Config) { c.ReviewThreshold = 1.5 }, "scorer: Config.ReviewThreshold"},
		{"decline negative", func(c *Config) { c.DeclineThreshold = -0.1 }, "scorer: Config.DeclineThreshold"},
		{"decline below review", func(c *Config) { c.ReviewThreshold = 0.9; c.DeclineThreshold = 0.6 }, "scorer: Config.DeclineThreshold"},
		{"negative out of order", func(c *Config) { c.MaxOutOfOrder = -time.Second }, "scorer: Config.MaxOutOfOrder"},
		{"absurd lateness", func(c *Config) { c.AllowedLateness = 30 * 24 * time.Hour }, "scorer: Config.AllowedLateness"},
		{"tiny stats idle timeout", func(c *Config) { c.StatsIdleTimeout = time.Millisecond }, "scorer: Config.StatsIdleTimeout"},
		{"short session", func(c *Config) { c.SessionTimeout = time.Millisecond }, "scorer: Config.SessionTimeout"},
		{"short rebalance", func(c *Config) { c.RebalanceTimeout = time.Millisecond }, "scorer: Config.RebalanceTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want+":") {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.want)
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
