// Package ingest is the front door of fraudstream: an HTTP API that accepts
// card transactions, validates them field by field, and produces each to
// the raw-transactions topic keyed by card_id.
//
// The one promise ingest makes is that 202 Accepted means Kafka has the
// record: the producer is idempotent with acks from all in-sync replicas,
// and a request answers only after its record was acknowledged. When the
// brokers are slow or down, a request waits at most Config.ProduceTimeout
// and then gets 503 with Retry-After; it never hangs and never gets a 202
// for a record that was not stored. A 503 may still be followed by the
// record landing (an in-flight idempotent write cannot be recalled), so a
// retried transaction can appear twice in the topic; the scorer drops the
// repeat as a redelivery.
//
// A transaction_id names one transaction for every API key: a registry in
// Redis binds each accepted id to its contents' fingerprint, and another
// transaction reusing the id gets 409 transaction-id-reused
// (docs/design/transaction-ids.md).
//
// Retries are safe: every transaction is claimed in Redis under its
// Idempotency-Key (default: its transaction_id) before it is produced, and
// a retry is replayed the first answer and never writes a second record.
// Admission (API key, scope, GCRA rate limit shared by all replicas, and
// the claims) has one entry point, admission.Admit (admission.go); the
// protocol is docs/design/ingest-idempotency.md.
// Card profiles are stored in Redis under event.ProfileKey for the scorer.
//
// Routes: POST /v1/transactions (one JSON transaction), POST
// /v1/transactions/batch (NDJSON or a JSON array, per-item results),
// PUT/GET /v1/cards/{card_id}/profile, GET /openapi.yaml, and /healthz,
// /readyz, /metrics. Errors are RFC 9457 problem documents; see
// openapi.yaml.
package ingest

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
)

//go:embed openapi.yaml
var openAPI []byte

// Deps are what ingest takes from its caller rather than from Config.
type Deps struct {
	Log *slog.Logger     // required
	Now func() time.Time // the clock for event-time skew and ingest_time; time.Now when nil
}

// Service is a running ingest: a bound listener and a Kafka producer.
type Service struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	cl      *kgo.Client
	rdb     *redis.Client // shared with adm; profiles use it directly
	adm     *admission
	ln      net.Listener
	handler http.Handler
	metrics *metrics
	// decisions feeds POST /v1/decisions (decisions.go).
	decisions *decisionFeed
}

// New validates cfg, creates the Kafka producer and binds the listener, so
// Addr is known at once and a taken port fails here, not in Run. The
// brokers are not contacted yet; /readyz reports whether they answer.
func New(cfg Config, deps Deps) (*Service, error) {
	set, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if deps.Log == nil {
		return nil, errors.New("ingest: Deps.Log is required")
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	log := deps.Log.With("service", "ingest")

	reg := httpserver.NewRegistry()
	kafkaMetrics := kprom.NewMetrics("fraudstream", kprom.Subsystem("ingest_kafka"), kprom.Registry(reg),
		kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.Batches, kprom.Records, kprom.UncompressedBytes))
	opts, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	opts = append(opts, producerOpts(cfg)...)
	opts = append(opts, kgo.WithHooks(kafkaMetrics), kgo.WithLogger(kafkaopt.Logger(log)))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("ingest: create Kafka producer: %w", err)
	}
	ln, err := httpserver.Listen(cfg.Addr, cfg.HTTP.MaxConns, log)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("ingest: %w", err)
	}
	reg.MustRegister(ln.Collectors()...)
	feed, err := newDecisionFeed(cfg, reg, log)
	if err != nil {
		cl.Close()
		_ = ln.Close()
		return nil, fmt.Errorf("ingest: %w", err)
	}
	// The Redis client connects lazily; /readyz reports whether it answers.
	rdb := redis.NewClient(set.redis)
	m := newMetrics(reg)
	s := &Service{
		cfg:       cfg,
		log:       log,
		now:       now,
		cl:        cl,
		rdb:       rdb,
		adm:       newAdmission(cfg, set.keys, rdb, log, m),
		ln:        ln,
		metrics:   m,
		decisions: feed,
	}
	s.handler = s.routes(reg)
	if len(set.keys) == 0 {
		log.Warn("no API keys configured: accepting anonymous requests (AllowAnonymous)")
	}
	return s, nil
}

// Addr is the address the HTTP listener is bound to, e.g. 127.0.0.1:8081.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Run serves HTTP until ctx is cancelled, then shuts down: in-flight
// requests finish (each bounded by ProduceTimeout), the answers not yet
// recorded in Redis are written, the producer flushes what is still
// buffered, and the Kafka client closes. Run may be called once.
func (s *Service) Run(ctx context.Context) error {
	stopAdmission := s.adm.start()
	// The decisions feed outlives the server: requests still waiting at
	// shutdown get their decision or their budget's pending answer.
	feedCtx, stopFeed := context.WithCancel(context.WithoutCancel(ctx))
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		s.decisions.run(feedCtx)
	}()
	err := httpserver.Serve(ctx, s.ln, s.handler, s.cfg.HTTP, s.log)
	stopFeed()
	<-feedDone
	stopAdmission()
	// Every record still buffered belongs to a request that was already
	// answered 503 or whose client left; flushing gives it its last chance
	// without promising anything, so a failure is only logged.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ProduceTimeout)
	defer cancel()
	if ferr := s.cl.Flush(fctx); ferr != nil {
		s.log.Warn("flush producer at shutdown", "err", ferr)
	}
	s.cl.Close()
	if cerr := s.rdb.Close(); cerr != nil {
		s.log.Warn("close redis client", "err", cerr)
	}
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}

func (s *Service) routes(reg *prometheus.Registry) http.Handler {
	r := chi.NewRouter()
	r.Use(s.metrics.countRequests, s.recoverPanic)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &Error{Kind: KindNotFound, Detail: "no route for " + r.URL.Path})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &Error{Kind: KindMethodNotAllowed, Detail: r.Method + " is not allowed on " + r.URL.Path})
	})
	r.Get("/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openAPI)
	})
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		// Routes that write transactions are charged by admission.Admit
		// inside their handlers, with their claims; the others here.
		r.With(s.requireScope(scopeTransactionsWrite)).Post("/v1/transactions", s.handleSingle)
		r.With(s.requireScope(scopeTransactionsWrite)).Post("/v1/transactions/batch", s.handleBatch)
		r.With(s.requireScope(scopeTransactionsWrite)).Post("/v1/decisions", s.handleDecision)
		r.With(s.requireScope(scopeTransactionsWrite), s.limitRequest).Get("/v1/decisions/{partition}/{offset}", s.handleGetDecision)
		r.With(s.requireScope(scopeProfilesWrite), s.limitRequest).Put("/v1/cards/{card_id}/profile", s.handlePutProfile)
		r.With(s.requireScope(scopeProfilesRead), s.limitRequest).Get("/v1/cards/{card_id}/profile", s.handleGetProfile)
	})
	httpserver.MountOps(r, reg, s.ready)
	return r
}

// ready reports whether a broker answers and knows raw-transactions, and,
// unless ingest fails open without it, whether Redis answers; bounded by
// the caller's context. Ping goes to the wire every time; the topic lookup
// may come from kgo's metadata cache (a few seconds old), which is fine for
// a topic's existence but not for a broker's.
func (s *Service) ready(ctx context.Context) error {
	if !s.cfg.RedisFailOpen {
		if err := s.rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis ping: %w", err)
		}
	}
	if err := s.cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka ping: %w", err)
	}
	md, err := kadm.NewClient(s.cl).Metadata(ctx, event.TopicRaw)
	if err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	t, ok := md.Topics[event.TopicRaw]
	if !ok {
		return fmt.Errorf("topic %s: not in metadata", event.TopicRaw)
	}
	if t.Err != nil {
		return fmt.Errorf("topic %s: %w", event.TopicRaw, t.Err)
	}
	return nil
}

// fail answers a whole request with e, counting and logging it.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, e *Error) {
	s.metrics.reject(e.Kind)
	if e.Kind == KindInternal {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "key_id", keyID(r.Context()), "err", e)
	} else {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "key_id", keyID(r.Context()), "err", e)
	}
	writeProblem(w, e)
}

// recoverPanic turns a handler panic into a logged 500 problem instead of
// a dropped connection.
func (s *Service) recoverPanic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					return // the handler chose to cut the connection
				}
				s.fail(w, r, &Error{Kind: KindInternal, Detail: "internal error", Err: fmt.Errorf("panic: %v", v)})
			}
		}()
		next.ServeHTTP(w, r)
	})
}
