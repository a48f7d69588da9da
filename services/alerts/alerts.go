// Package alerts is the last stage of fraudstream: it stores every scored
// transaction in a database exactly once and shows them to analysts.
//
// Three parts run side by side in Run:
//
//   - the sink (sink.go) consumes scored-transactions with a consumer group
//     used only to spread partitions over replicas, and writes rows together
//     with the next offsets in one database transaction (Store.SaveBatch);
//     offsets live in the database, never in Kafka, which is what makes the
//     copy exactly-once;
//   - the live stream (live.go, hub.go) is a second, group-less
//     read_committed consumer of every partition starting at the end, fanned
//     out to SSE clients through bounded buffers, so any replica serves
//     every alert and a slow browser never slows anything else;
//   - rulesBook (rules.go) reads the compacted fraud-rules topic from the
//     start and publishes new versions (GET/PUT /api/v1/rules);
//   - statsBook (stats.go) keeps the latest revision of each fraud-stats
//     window of the last StatsRetention and the partitions' watermarks
//     (GET /api/v1/stats);
//   - the HTTP server (http.go, api.go, auth.go, throttle.go): the
//     dashboard (web/), the analyst API under /api/v1, a token login with
//     database-stored sessions when Config.Token is set, and /healthz,
//     /readyz, /metrics (behind the token). See docs/design/alerts-sessions.md.
//
// Every record the live stream sends carries, as its SSE id, the stream's
// position on every partition; a client that reconnects with it gets what
// it missed from the database (rows keep their Kafka position) before live
// events, without duplicates.
//
// Store has two implementations, PostgreSQL (production) and SQLite (the
// embedded default), chosen by Config.DatabaseURL and held to one
// conformance suite.
package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"golang.org/x/sync/errgroup"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// Deps are what alerts gets from its caller besides Config.
type Deps struct {
	Log *slog.Logger // required

	// RuleChecker, when not nil, vets a rule set before PUT /api/v1/rules
	// publishes it, after the structural checks and the compilation of
	// each expression over the features. It is the seam for the scorer's
	// own check (its functions, limits, model inputs).
	RuleChecker RuleChecker
	// DefaultRules, when not nil, is the rule set shown (and edited from)
	// while fraud-rules holds none: the scorer's built-in set, which is
	// the one in force until a version is published.
	DefaultRules *event.RuleSet
}

// Service is a running alerts: a bound listener, an open database and two
// Kafka clients.
type Service struct {
	cfg     Config
	log     *slog.Logger
	store   Store
	m       *metrics
	auth    *auth
	sink    *sink
	live    *live
	hub     *hub
	rules   *rulesBook
	stats   *statsBook
	ln      net.Listener
	handler http.Handler
	ready   chan struct{} // see Ready
	done    chan struct{} // closed when Run returns
}

// New validates cfg, opens and migrates the database, creates the Kafka
// clients and binds the HTTP listener, so Addr is known at once. Nothing is
// consumed or served until Run.
func New(cfg Config, deps Deps) (svc *Service, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		return nil, errors.New("alerts: Deps.Log is required")
	}
	log := deps.Log
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartupTimeout)
	defer cancel()
	store, err := OpenStore(ctx, cfg.DatabaseURL, cfg.DBMaxConns, log)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	closers = append(closers, func() { store.Close() })
	store.SetRetention(cfg.Retention)

	reg := httpserver.NewRegistry()
	m := newMetrics(reg)
	base, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	base = append(base, kgo.WithLogger(kafkaopt.Logger(log.With("kafka", "sink"))))

	sk := newSink(store, log, m, cfg.BatchSize, cfg.FlushInterval)
	sinkOpts := append(append([]kgo.Opt{}, base...), sk.opts(cfg.GroupID, cfg.SessionTimeout, cfg.RebalanceTimeout)...)
	sinkOpts = append(sinkOpts, kgo.ClientID("fraudstream-alerts-sink"),
		kgo.WithHooks(kprom.NewMetrics("fraudstream", kprom.Subsystem("alerts_sink_kafka"), kprom.Registerer(reg))))
	if sk.cl, err = kgo.NewClient(sinkOpts...); err != nil {
		return nil, fmt.Errorf("alerts: sink kafka client: %w", err)
	}
	closers = append(closers, sk.cl.Close)

	// client builds a Kafka client with the connection options, a name and
	// its own kprom series.
	client := func(name string, opts ...kgo.Opt) (*kgo.Client, error) {
		o, err := cfg.Kafka.Opts()
		if err != nil {
			return nil, err
		}
		o = append(o, kgo.ClientID("fraudstream-alerts-"+name),
			kgo.WithLogger(kafkaopt.Logger(log.With("kafka", name))),
			kgo.WithHooks(kprom.NewMetrics("fraudstream", kprom.Subsystem("alerts_"+name+"_kafka"), kprom.Registerer(reg))))
		cl, err := kgo.NewClient(append(o, opts...)...)
		if err != nil {
			return nil, fmt.Errorf("alerts: %s kafka client: %w", name, err)
		}
		closers = append(closers, cl.Close)
		return cl, nil
	}

	h := newHub(cfg.SSEBuffer, cfg.SSEMaxClients, m)
	lv := newLive(h, log, m)
	// The live consumer's client is made in live.run, once its start
	// offsets are listed with a plain admin client.
	conn, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	liveLog := kgo.WithLogger(kafkaopt.Logger(log.With("kafka", "live")))
	lv.opts = append(append([]kgo.Opt{}, conn...), kgo.ClientID("fraudstream-alerts-live"), liveLog,
		kgo.WithHooks(kprom.NewMetrics("fraudstream", kprom.Subsystem("alerts_live_kafka"), kprom.Registerer(reg))))
	lv.opts = append(lv.opts, lv.consumerOpts()...)
	if lv.adm, err = kgo.NewClient(append(conn, kgo.ClientID("fraudstream-alerts-live-admin"), liveLog)...); err != nil {
		return nil, fmt.Errorf("alerts: live admin kafka client: %w", err)
	}
	closers = append(closers, lv.adm.Close)

	rb := newRulesBook(log, deps.RuleChecker)
	if deps.DefaultRules != nil {
		rb.latest = *deps.DefaultRules
	}
	if rb.cl, err = client("rules", rb.opts()...); err != nil {
		return nil, err
	}
	sb := newStatsBook(log, cfg.StatsRetention)
	if sb.cl, err = client("stats", sb.opts()...); err != nil {
		return nil, err
	}

	ln, err := httpserver.Listen(cfg.Addr, cfg.HTTP.MaxConns, log)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	reg.MustRegister(ln.Collectors()...)

	s := &Service{cfg: cfg, log: log, store: store, m: m, auth: newAuth(cfg, store, log), sink: sk, live: lv, hub: h,
		rules: rb, stats: sb, ln: ln, ready: make(chan struct{}), done: make(chan struct{})}
	s.handler = s.routes(reg)
	go func() {
		for _, c := range []<-chan struct{}{sk.ready, lv.ready} {
			select {
			case <-c:
			case <-s.done:
				return
			}
		}
		close(s.ready)
	}()
	return s, nil
}

// Addr is the bound HTTP address, such as 127.0.0.1:8080.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Ready is closed once the sink has its first partition assignment
// positioned at the stored offsets and the live stream consumes from its
// listed start positions, so records committed from then on reach both. It serves tests
// and startup logs; /readyz is the operational check.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Store is the service's database, for tests and tools that inspect what
// was stored. It is closed when Run returns.
func (s *Service) Store() Store { return s.store }

// Run consumes and serves until ctx is cancelled or a part fails, then shuts
// everything down: HTTP gets httpserver.ShutdownTimeout, the sink leaves its
// group (an unsaved batch is simply read again by the next owner), and the
// database closes last. Run may be called once.
func (s *Service) Run(ctx context.Context) error {
	defer close(s.done)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.sink.run(gctx) })
	g.Go(func() error { return s.live.run(gctx) })
	g.Go(func() error { return s.rules.run(gctx) })
	g.Go(func() error { return s.stats.run(gctx) })
	g.Go(func() error {
		r := retainer{store: s.store, policy: s.cfg.Retention, interval: s.cfg.RetentionInterval, log: s.log, m: s.m}
		r.run(gctx)
		return nil
	})
	g.Go(func() error { return httpserver.Serve(gctx, s.ln, s.handler, s.cfg.HTTP, s.log) })
	g.Go(func() error {
		select {
		case <-s.ready:
			s.log.Info("alerts ready", "addr", s.Addr())
		case <-gctx.Done():
		}
		return nil
	})
	err := g.Wait()
	if cerr := s.store.Close(); cerr != nil {
		s.log.Warn("close database", "err", cerr)
	}
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	return nil
}

// readyCheck is /readyz: the database answers and Kafka knows the topic.
func (s *Service) readyCheck(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	md, err := kadm.NewClient(s.rules.cl).Metadata(ctx, event.TopicScored)
	if err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	t, ok := md.Topics[event.TopicScored]
	if !ok {
		return fmt.Errorf("topic %s: not in metadata", event.TopicScored)
	}
	if t.Err != nil {
		return fmt.Errorf("topic %s: %w", event.TopicScored, t.Err)
	}
	return nil
}
