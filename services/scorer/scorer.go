// Package scorer turns raw-transactions into scored-transactions exactly
// once.
//
// The scorer consumes raw-transactions in a consumer group and, for each
// batch of records, opens one Kafka transaction that holds everything the
// batch produced (scored records, dead letters) together with the batch's
// input offsets. Either all of it becomes visible to read_committed readers
// or none of it does; after a crash or a rebalance the uncommitted input is
// simply consumed again.
//
// Each assigned partition gets a task that owns the partition's state (card
// histories, the transaction_id de-duplication set, the watermark) and
// processes its records in partition order. Features are computed from the
// records and that state only, never from the wall clock, so processing the
// same partition again yields byte-identical record values. Outputs go to
// the same partition number of the co-partitioned output topics, so scored
// partition p holds exactly the transactions of input partition p, in order.
//
// State is durable through the compacted scorer-state changelog, written
// in the same transaction: at the end of each batch, the state of every
// card the batch changed (a tombstone for an expired card) and the
// partition's metadata (its watermark generator). A task is restored from
// its changelog partition, read_committed up to the last stable offset,
// when its partition is assigned and after every aborted transaction, so
// state always matches the committed input offsets.
//
// Each task also keeps 1-minute event-time windows of what it scored and
// writes them to fraud-stats in the same transactions (stats.go), and the
// batch loop enriches records with the card profiles in Redis, which are
// the one input read at processing time (profile.go).
//
// Layout: features.go computes features, score.go scores them with the
// rules in force (rulebook.go follows fraud-rules) and the model, task.go
// holds per-partition state and its eviction, state.go encodes a card's
// state for the changelog, restore.go reads it back, loop.go runs the
// transactional batch loop. offline.go runs the same task without Kafka,
// for training (train.go) and the golden and detection-quality tests.
package scorer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/entity"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

// Service is one scorer instance. Create it with New and run it with Run.
type Service struct {
	// lastCommit is how long the last end of a batch took (its workers'
	// tail, flush and EndTxn), at most CommitInterval: the least time the
	// next batch stays open (loop.go). Touched only by the loop.
	lastCommit time.Duration
	cfg        Config
	log        *slog.Logger
	ln         net.Listener
	handler    http.Handler
	kprom      *kprom.Metrics
	m          *metrics
	params     *taskParams
	kafkaOpts  []kgo.Opt
	// abortHook, set only by tests, makes End abort a flushed batch, so
	// the broker-side abort and the rewind after it are exercised.
	abortHook func() bool

	// mu guards what the group callbacks (on the client's goroutines)
	// share with the batch loop and the readiness check.
	mu      sync.Mutex
	sess    *kgo.GroupTransactSession // nil while no session runs
	joined  bool                      // the session's member is in the group
	lastErr error                     // why the last session ended, for /readyz
	tasks   map[int32]*task           // by raw-transactions partition
	// quarantined holds the partitions set aside, with the reason
	// (quarantine.go); they are paused in the session's client.
	quarantined map[int32]string
}

// New checks cfg and binds the HTTP listener, so Addr is known before Run.
// It does not contact Kafka.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scorer config: %w", err)
	}
	kafkaOpts, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, fmt.Errorf("scorer config: %w", err)
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := httpserver.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	params, err := newTaskParams(cfg, deps, time.Now)
	if err != nil {
		return nil, fmt.Errorf("scorer config: %w", err)
	}
	ruleOpts := []rules.Option{
		rules.WithRuntimeErrorHook(func(string, error) { m.ruleErrors.Inc() }),
		rules.WithRunBudget(cfg.RuleRunBudget),
		rules.WithDisableHook(ruleDisabled(log, m)),
	}
	set, err := initialRules(deps, ruleOpts...)
	if err != nil {
		return nil, fmt.Errorf("scorer config: %w", err)
	}
	params.rules = newRuleBook(set, log, m, ruleOpts...)
	if cfg.Entities.Enabled {
		params.entities = &entityParams{table: entity.NewTable(cfg.Entities.Memory), lag: cfg.Entities.Lag,
			wait: cfg.Entities.Wait, memory: cfg.Entities.Memory}
	}
	if params.profiles, err = newProfiles(cfg, log, m, time.Now); err != nil {
		return nil, fmt.Errorf("scorer config: %w", err)
	}
	s := &Service{
		cfg:       cfg,
		log:       log,
		kprom:     kprom.NewMetrics(metricsNamespace, kprom.Subsystem("kafka"), kprom.Registry(reg)),
		m:         m,
		kafkaOpts: kafkaOpts,
		tasks:     make(map[int32]*task),
		params:    params,
	}
	mux := http.NewServeMux()
	httpserver.MountOps(mux, reg, s.ready)
	s.handler = mux
	ln, err := httpserver.Listen(cfg.Addr, cfg.HTTP.MaxConns, log)
	if err != nil {
		params.profiles.close()
		return nil, fmt.Errorf("scorer: %w", err)
	}
	s.ln = ln
	reg.MustRegister(ln.Collectors()...)
	return s, nil
}

// Addr is the address the HTTP listener is bound to.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Run consumes, scores and produces until ctx is cancelled, serving the
// operational endpoints meanwhile. On cancellation it aborts the open
// transaction, leaves the group and shuts the HTTP server down; it returns
// nil after such a clean shutdown. Run must be called once.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	httpDone := make(chan error, 1)
	go func() {
		err := httpserver.Serve(ctx, s.ln, s.handler, s.cfg.HTTP, s.log)
		cancel() // a dead listener stops the scorer too: it could not be probed
		httpDone <- err
	}()
	rulesDone := make(chan struct{})
	go func() {
		defer close(rulesDone)
		s.params.rules.follow(ctx, s.kafkaOpts)
	}()
	var entities sync.WaitGroup
	if s.params.entities != nil {
		// The table follower and the aggregator stage (entitystage.go).
		entities.Go(func() { s.followEntityTable(ctx) })
		entities.Go(func() {
			if err := s.runEntityStage(ctx); err != nil {
				s.log.Error("entity aggregator stopped", "err", err)
			}
		})
	}
	var err error
	select {
	case <-s.params.rules.synced:
		err = s.consume(ctx)
	case <-ctx.Done():
	}
	cancel()
	<-rulesDone
	entities.Wait()
	s.params.profiles.close()
	return errors.Join(err, <-httpDone)
}

// ready reports whether the scorer is doing its work: a session runs, its
// member has joined the group (possibly with no partitions, as a standby),
// and a broker answers.
func (s *Service) ready(ctx context.Context) error {
	s.mu.Lock()
	sess, joined, lastErr := s.sess, s.joined, s.lastErr
	s.mu.Unlock()
	select {
	case <-s.params.rules.synced:
	default:
		return errors.New("reading the rule sets in fraud-rules")
	}
	switch {
	case sess == nil && lastErr != nil:
		return fmt.Errorf("no Kafka session, restarting after: %w", lastErr)
	case sess == nil:
		return errors.New("no Kafka session (starting)")
	case !joined:
		return errors.New("consumer group not joined yet")
	}
	if err := sess.Client().Ping(ctx); err != nil {
		return fmt.Errorf("kafka unreachable: %w", err)
	}
	// Quarantined partitions leave the instance ready while it serves
	// others, and not ready when it serves none.
	s.mu.Lock()
	detail, all := s.quarantineStatus()
	s.mu.Unlock()
	switch {
	case all:
		return errors.New("every assigned partition is quarantined; " + detail)
	case detail != "":
		return &httpserver.Degraded{Detail: detail}
	}
	return nil
}

// sessionOpts are the client options of the exactly-once session.
func (s *Service) sessionOpts() []kgo.Opt {
	opts := append([]kgo.Opt(nil), s.kafkaOpts...)
	return append(opts,
		kgo.ClientID("fraudstream-scorer"),
		kgo.TransactionalID(s.cfg.TransactionalID),
		kgo.TransactionTimeout(s.cfg.TransactionTimeout),
		kgo.ConsumerGroup(s.cfg.GroupID),
		kgo.ConsumeTopics(event.TopicRaw),
		// Read only committed input: ingest's idempotent producer is not
		// transactional today, but anything upstream that is must not
		// leak aborted records into scores.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A new owner of a partition waits for the previous owner's
		// transaction to finish before reading its offset (KIP-447).
		// franz-go 1.22 always does this (docs/architecture.md); its option
		// kgo.RequireStableFetchOffsets is now a deprecated no-op.
		kgo.SessionTimeout(s.cfg.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, s.cfg.SessionTimeout/3)),
		kgo.RebalanceTimeout(s.cfg.RebalanceTimeout),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Outputs keep the input's partition number (co-partitioning).
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.WithHooks(s.kprom),
		kgo.WithLogger(kafkaopt.Logger(s.log)),
	)
}

// onAssigned creates a task per newly assigned partition. The task is
// restored from the scorer-state changelog by the batch loop before its
// first record is processed (see prepare), not here: a restore can take
// seconds, and the group's callbacks should return promptly.
func (s *Service) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.joined = true
	for _, p := range assigned[event.TopicRaw] {
		s.tasks[p] = newTask(p, s.params)
	}
	s.log.Info("partitions assigned", "partitions", assigned[event.TopicRaw])
}

// onRevoked drops the tasks of revoked partitions. The session aborts the
// open transaction, so nothing they did since the last commit is kept.
func (s *Service) onRevoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range revoked[event.TopicRaw] {
		delete(s.tasks, p)
	}
	s.release(cl, revoked[event.TopicRaw])
	s.log.Info("partitions revoked", "partitions", revoked[event.TopicRaw])
}

// onLost is onRevoked after the member fell out of the group.
func (s *Service) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.joined = false
	for _, p := range lost[event.TopicRaw] {
		delete(s.tasks, p)
	}
	s.release(cl, lost[event.TopicRaw])
	s.log.Warn("partitions lost", "partitions", lost[event.TopicRaw])
}

// taskFor returns partition p's task. A record of a partition without a
// task can only come from a revoke racing the poll, whose transaction the
// session aborts anyway; a fresh task keeps the loop simple.
func (s *Service) taskFor(p int32) *task {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[p]
	if !ok {
		t = newTask(p, s.params)
		s.tasks[p] = t
	}
	return t
}

// resetTasks replaces every task with an unrestored one after an aborted
// transaction. The session rewinds each partition to its last committed
// offset, so the state must rewind too: keeping it would count the
// re-consumed records twice and drop them as duplicates of themselves.
// Each reset task restores from scorer-state, which holds exactly the
// state as of the committed offsets, before its next record.
func (s *Service) resetTasks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.tasks {
		s.tasks[p] = newTask(p, s.params)
	}
}

func (s *Service) setSession(sess *kgo.GroupTransactSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sess = sess
	s.joined = false
	if sess != nil {
		s.lastErr = nil
	}
	if sess == nil {
		clear(s.tasks)
		// A new session's client pauses nothing: its partitions are
		// tried afresh.
		s.release(nil, slices.Collect(maps.Keys(s.quarantined)))
	}
}
