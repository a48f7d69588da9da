package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/internal/platform/redisopt"
)

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Kafka = kafkaopt.Config{Brokers: []string{"127.0.0.1:9092"}}
		c.APIKeys = []string{HashKey("client-a", "k1")}
		c.RedisURL = "redis://127.0.0.1:6379/0"
		return c
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("defaults with a broker and a key: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // the error starts with this: the field it names
	}{
		{"no addr", func(c *Config) { c.Addr = "" }, "ingest: Config.Addr:"},
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "KAFKA_BROKERS:"},
		{"zero body timeout", func(c *Config) { c.HTTP.BodyTimeout = 0 }, "ingest: Config.HTTP.BodyTimeout: must be a positive"},
		{"zero skew", func(c *Config) { c.MaxSkew = 0 }, "ingest: Config.MaxSkew: must be positive"},
		{"negative body", func(c *Config) { c.MaxBodyBytes = -1 }, "ingest: Config.MaxBodyBytes:"},
		{"body above record limit", func(c *Config) { c.MaxBodyBytes = 1 << 20 }, "ingest: Config.MaxBodyBytes:"},
		{"batch body below body", func(c *Config) { c.MaxBatchBodyBytes = 100 }, "ingest: Config.MaxBatchBodyBytes:"},
		{"zero batch items", func(c *Config) { c.MaxBatchItems = 0 }, "ingest: Config.MaxBatchItems:"},
		{"zero produce timeout", func(c *Config) { c.ProduceTimeout = 0 }, "ingest: Config.ProduceTimeout:"},
		{"zero decision budget", func(c *Config) { c.Decisions.Budget = 0 }, "ingest: Config.Decisions.Budget: must be positive"},
		{"max budget below budget", func(c *Config) { c.Decisions.MaxBudget = time.Millisecond }, "ingest: Config.Decisions.MaxBudget:"},
		{"zero decision retention", func(c *Config) { c.Decisions.Retention = 0 }, "ingest: Config.Decisions.Retention:"},
		{"zero decision cache", func(c *Config) { c.Decisions.CacheSize = 0 }, "ingest: Config.Decisions.CacheSize:"},
		{"zero buffer", func(c *Config) { c.MaxBufferedRecords = 0 }, "ingest: Config.MaxBufferedRecords:"},
		{"buffer below batch", func(c *Config) { c.MaxBufferedRecords = c.MaxBatchItems - 1 }, "ingest: Config.MaxBufferedRecords:"},
		{"no keys, not anonymous", func(c *Config) { c.APIKeys = nil }, "ingest: Config.APIKeys:"},
		{"key without colon", func(c *Config) { c.APIKeys = []string{"clear-text-key"} }, "ingest: Config.APIKeys:"},
		{"key hash short", func(c *Config) { c.APIKeys = []string{"a:abcd"} }, "ingest: Config.APIKeys:"},
		{"key hash not hex", func(c *Config) { c.APIKeys = []string{"a:" + strings.Repeat("z", 64)} }, "ingest: Config.APIKeys:"},
		{"key id empty", func(c *Config) { c.APIKeys = []string{HashKey("", "k")} }, "ingest: Config.APIKeys:"},
		{"key id bad", func(c *Config) { c.APIKeys = []string{HashKey("a b", "k")} }, "ingest: Config.APIKeys:"},
		{"key id twice", func(c *Config) { c.APIKeys = []string{HashKey("a", "k1"), HashKey("a", "k2")} }, "ingest: Config.APIKeys:"},
		{"key option without =", func(c *Config) { c.APIKeys = []string{HashKey("a", "k") + ";rate"} }, "ingest: Config.APIKeys: entry 1 (id \"a\"): option"},
		{"key rate zero", func(c *Config) { c.APIKeys = []string{HashKey("a", "k") + ";rate=0"} }, "ingest: Config.APIKeys: entry 1 (id \"a\"): rate="},
		{"key burst not a number", func(c *Config) { c.APIKeys = []string{HashKey("a", "k") + ";burst=lots"} }, "ingest: Config.APIKeys: entry 1 (id \"a\"): burst="},
		{"key unknown scope", func(c *Config) { c.APIKeys = []string{HashKey("a", "k") + ";scopes=admin"} }, "ingest: Config.APIKeys: entry 1 (id \"a\"): unknown scope"},
		{"key unknown option", func(c *Config) { c.APIKeys = []string{HashKey("a", "k") + ";ttl=5"} }, "ingest: Config.APIKeys: entry 1 (id \"a\"): unknown option"},
		{"no redis", func(c *Config) { c.RedisURL = "" }, "ingest: Config.RedisURL: required"},
		{"redis wrong scheme", func(c *Config) { c.RedisURL = "http://127.0.0.1:6379" }, "ingest: Config.RedisURL: must be a redis://"},
		{"redis bad db", func(c *Config) { c.RedisURL = "redis://:hunter2@127.0.0.1:6379/x" }, "ingest: Config.RedisURL:"},
		{"zero redis timeout", func(c *Config) { c.RedisTimeout = 0 }, "ingest: Config.RedisTimeout:"},
		{"short idempotency ttl", func(c *Config) { c.IdempotencyTTL = time.Millisecond }, "ingest: Config.IdempotencyTTL:"},
		{"transaction id ttl below idempotency ttl", func(c *Config) { c.TransactionIDTTL = c.IdempotencyTTL - time.Second }, "ingest: Config.TransactionIDTTL: must be at least Config.IdempotencyTTL"},
		{"zero rate", func(c *Config) { c.RateLimit = 0 }, "ingest: Config.RateLimit:"},
		{"negative burst", func(c *Config) { c.RateBurst = -1 }, "ingest: Config.RateBurst:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.change(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q…", err, tt.want)
			}
			var ce *ConfigError
			if strings.HasPrefix(tt.want, "ingest: Config.") &&
				(!errors.As(err, &ce) || !strings.HasPrefix(tt.want, "ingest: Config."+ce.ConfigField()+":")) {
				t.Errorf("ConfigError %+v does not name the field of %q", ce, tt.want)
			}
			if strings.Contains(err.Error(), strings.Repeat("z", 64)) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error echoes the key entry: %v", err)
			}
		})
	}

	t.Run("anonymous without keys", func(t *testing.T) {
		c := base()
		c.APIKeys, c.AllowAnonymous = nil, true
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ids may contain colons", func(t *testing.T) {
		keys, err := parseKeys([]string{" " + HashKey("team:a", "k") + " "}, 10, 20)
		if err != nil || len(keys) != 1 || keys[0].id != "team:a" || keys[0].rate != 10 || keys[0].burst != 20 || keys[0].scopes != scopeAll {
			t.Fatalf("%+v %v", keys, err)
		}
	})
	t.Run("key options", func(t *testing.T) {
		keys, err := parseKeys([]string{HashKey("a", "k") + ";rate=5;burst=7;scopes=profiles:read+transactions:write"}, 10, 20)
		if err != nil || len(keys) != 1 || keys[0].rate != 5 || keys[0].burst != 7 ||
			keys[0].scopes != scopeProfilesRead|scopeTransactionsWrite {
			t.Fatalf("%+v %v", keys, err)
		}
	})
	t.Run("rediss is accepted", func(t *testing.T) {
		c := base()
		c.RedisURL = "rediss://user:pw@redis.example:6380/2"
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		o, _ := redisopt.Options(c.RedisURL, redisPolicy(time.Second))
		if o.TLSConfig == nil || o.DB != 2 {
			t.Errorf("rediss options: TLS %v DB %d", o.TLSConfig, o.DB)
		}
	})
}

func TestHashKey(t *testing.T) {
	// printf %s dev-secret-key | sha256sum
	const want = "dev:0537dfd229ccd644e29c82f0c27a1b3b075a1589fa75a186ed40abc25bfcd248"
	if got := HashKey("dev", "dev-secret-key"); got != want {
		t.Fatalf("HashKey = %q, want %q", got, want)
	}
}

func TestNewAndRun(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(t, c)
	s, err := New(cfg, Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want the bound port", s.Addr())
	}

	t.Run("taken port fails in New", func(t *testing.T) {
		cfg2 := cfg
		cfg2.Addr = s.Addr()
		if _, err := New(cfg2, Deps{Log: testLogger(t)}); err == nil || !strings.Contains(err.Error(), s.Addr()) {
			t.Fatalf("New on a taken port: %v", err)
		}
	})
	t.Run("no logger", func(t *testing.T) {
		if _, err := New(cfg, Deps{}); err == nil {
			t.Fatal("New without a logger succeeded")
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		bad := cfg
		bad.MaxSkew = 0
		if _, err := New(bad, Deps{Log: slog.New(slog.DiscardHandler)}); err == nil || !strings.HasPrefix(err.Error(), "ingest: Config.MaxSkew:") {
			t.Fatalf("New with a bad config: %v", err)
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	r := postTx(t, "http://"+s.Addr(), txWith(map[string]any{"event_time": time.Now().UTC().Format(time.RFC3339)}))
	if r.status != http.StatusAccepted {
		t.Fatalf("with the real clock: %d %s", r.status, r.body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil {
		t.Error("still serving after Run returned")
	}
}
