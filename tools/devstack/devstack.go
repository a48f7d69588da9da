// Package devstack runs the whole pipeline in one process: the embedded
// broker (unless real Kafka is given), an in-process Redis-protocol server
// (miniredis, unless a Redis URL is given) for ingest's idempotency records,
// rate limits and card profiles, snapshotted to the data dir so a restart
// keeps them (redisnap.go), ingest, scorer and alerts on SQLite
// (unless a database URL is given), and simulated traffic. It is what
// `fraudstream dev` and `make run` start, and what the in-process
// integration tests drive, so the tests exercise exactly what a user runs.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"golang.org/x/sync/errgroup"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/services/alerts"
	"github.com/fraudstream/fraudstream/services/ingest"
	"github.com/fraudstream/fraudstream/services/scorer"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
	"github.com/fraudstream/fraudstream/tools/devbroker"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// DevAPIKey is the ingest API key of the dev stack when none is configured.
const DevAPIKey = "dev-secret-key"

// Config describes the stack. Zero fields take the defaults of `fraudstream dev`.
type Config struct {
	// DataDir holds the broker's log and the SQLite database; a second run
	// on the same directory resumes. Default ".data".
	DataDir string
	// Kafka, when it has brokers, is used instead of the embedded broker.
	Kafka kafkaopt.Config
	// BrokerListen is the embedded broker's address; default 127.0.0.1:9092.
	BrokerListen string
	// Partitions of the embedded broker's topics; default 6.
	Partitions int
	// DatabaseURL overrides the SQLite file in DataDir.
	DatabaseURL string
	// RedisURL, when set, is used instead of the in-process miniredis,
	// whose data is snapshotted to DataDir/redis.snapshot about every
	// second and at a clean stop, and restored at start.
	RedisURL string
	// Listen addresses of the services; defaults as in each service.
	IngestAddr, ScorerAddr, AlertsAddr string
	// APIKey is the clear ingest key; default DevAPIKey.
	APIKey string
	// Rate of simulated transactions per second; 0 sends none.
	Rate float64
	// Seed of the traffic simulator.
	Seed uint64
}

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = ".data"
	}
	if c.BrokerListen == "" {
		c.BrokerListen = "127.0.0.1:9092"
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.APIKey == "" {
		c.APIKey = DevAPIKey
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite:" + filepath.Join(c.DataDir, "alerts.db")
	}
}

// Stack is a started pipeline; Run runs it.
type Stack struct {
	cfg      Config
	log      *slog.Logger
	broker   *devbroker.Broker    // nil with external Kafka
	redis    *miniredis.Miniredis // nil with external Redis
	snap     *redisSnapshot       // nil with external Redis
	redisURL string
	ingest   *ingest.Service
	scorer   *scorer.Service
	alerts   *alerts.Service
	brokers  []string
	Sender   *traffic.Sender // nil when Rate is 0
}

// Start starts the broker and builds the services, binding their listeners;
// nothing is consumed or served until Run.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (s *Stack, err error) {
	cfg.defaults()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s = &Stack{cfg: cfg, log: log, brokers: cfg.Kafka.Brokers}
	// Keep our own pointer: every failure below returns nil for s.
	started := s
	defer func() {
		if err != nil {
			started.close()
		}
	}()
	if len(cfg.Kafka.Brokers) == 0 {
		s.broker, err = devbroker.Start(ctx, devbroker.Config{Listen: cfg.BrokerListen,
			DataDir: filepath.Join(cfg.DataDir, "kafka"), Partitions: cfg.Partitions}, log.With("service", "broker"))
		if err != nil {
			return nil, err
		}
		s.brokers = []string{s.broker.Addr()}
		cfg.Kafka = kafkaopt.Config{Brokers: s.brokers}
	}

	s.redisURL = cfg.RedisURL
	if s.redisURL == "" {
		m := miniredis.NewMiniRedis()
		snap := newRedisSnapshot(m, cfg.DataDir, log.With("service", "redis"))
		// Restored before the server listens: no client sees a partial state.
		n, err := snap.restore(time.Now())
		if err != nil {
			return nil, err
		}
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start in-process redis: %w", err)
		}
		s.redis, s.snap = m, snap
		s.redisURL = "redis://" + s.redis.Addr()
		if n > 0 {
			log.Info("in-process redis restored", "keys", n, "from", snap.path)
		}
	}

	ic := ingest.DefaultConfig()
	ic.Kafka, ic.APIKeys, ic.RedisURL = cfg.Kafka, []string{ingest.HashKey("dev", cfg.APIKey)}, s.redisURL
	// One developer's machine: a limit that loadgen against the dev stack
	// does not hit, while requests still go through the limiter.
	ic.RateLimit, ic.RateBurst = 100_000, 200_000
	setAddr(&ic.Addr, cfg.IngestAddr)
	if s.ingest, err = ingest.New(ic, ingest.Deps{Log: log.With("service", "ingest")}); err != nil {
		return nil, err
	}

	sc := scorer.DefaultConfig()
	sc.Kafka, sc.TransactionalID = cfg.Kafka, "fraudstream-scorer-dev"
	sc.RedisURL = s.redisURL // card profiles, written by ingest
	setAddr(&sc.Addr, cfg.ScorerAddr)
	if s.scorer, err = scorer.New(sc, scorer.Deps{Log: log.With("service", "scorer")}); err != nil {
		return nil, err
	}

	ac := alerts.DefaultConfig()
	ac.Kafka, ac.DatabaseURL = cfg.Kafka, cfg.DatabaseURL
	setAddr(&ac.Addr, cfg.AlertsAddr)
	if s.alerts, err = alerts.New(ac, alerts.Deps{Log: log.With("service", "alerts"), RuleChecker: rules.Check, DefaultRules: rules.DefaultRuleSet()}); err != nil {
		return nil, err
	}

	if cfg.Rate > 0 {
		s.Sender = &traffic.Sender{URL: s.IngestURL(), APIKey: cfg.APIKey, Rate: cfg.Rate,
			Log: log.With("service", "traffic")}
	}
	return s, nil
}

func setAddr(dst *string, addr string) {
	if addr != "" {
		*dst = addr
	}
}

// IngestURL, AlertsURL and ScorerURL are the services' base URLs.
func (s *Stack) IngestURL() string { return "http://" + s.ingest.Addr() }
func (s *Stack) AlertsURL() string { return "http://" + s.alerts.Addr() }
func (s *Stack) ScorerURL() string { return "http://" + s.scorer.Addr() }

// RedisURL is the Redis ingest uses (the in-process one unless configured).
func (s *Stack) RedisURL() string { return s.redisURL }

// Brokers are the Kafka bootstrap addresses in use.
func (s *Stack) Brokers() []string { return s.brokers }

// Alerts is the alerts service, for tests that look into its store.
func (s *Stack) Alerts() *alerts.Service { return s.alerts }

// APIKey is the clear ingest API key.
func (s *Stack) APIKey() string { return s.cfg.APIKey }

// Run runs every service (and the traffic) until ctx is done or one of them
// fails, then stops them all, snapshots the in-process Redis once they have
// written their last answers, and, last, stops the embedded broker, so no
// client loses its broker while it shuts down.
func (s *Stack) Run(ctx context.Context) (err error) {
	defer s.close()
	if s.snap != nil {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			s.snap.run(stop)
		}()
		defer func() {
			close(stop)
			<-done
			n, serr := s.snap.save(time.Now())
			if serr != nil {
				err = errors.Join(err, serr)
				return
			}
			s.log.Info("in-process redis saved", "keys", n, "to", s.snap.path)
		}()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return named("ingest", s.ingest.Run(gctx)) })
	g.Go(func() error { return named("scorer", s.scorer.Run(gctx)) })
	g.Go(func() error { return named("alerts", s.alerts.Run(gctx)) })
	if s.Sender != nil {
		g.Go(func() error {
			// Start sending once alerts is consuming, so the first
			// simulated transactions already reach the dashboard.
			select {
			case <-s.alerts.Ready():
			case <-gctx.Done():
				return nil
			case <-time.After(30 * time.Second):
			}
			gen := traffic.New(traffic.Config{Seed: s.cfg.Seed, IDPrefix: fmt.Sprintf("sim-%d", time.Now().Unix())})
			return named("traffic", s.Sender.Run(gctx, gen, 0))
		})
	}
	return g.Wait()
}

func named(service string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", service, err)
}

func (s *Stack) close() {
	if s.broker != nil {
		s.broker.Close()
	}
	if s.redis != nil {
		s.redis.Close()
	}
}
