package ingest

// Decisions: POST /v1/decisions writes a transaction exactly as POST
// /v1/transactions does (the same handler: validation, auth, rate limit,
// idempotency, produce) and then waits, within a latency budget, for the
// committed scored record of the (partition, offset) the produce ack
// returned. Every replica reads scored-transactions read_committed, all
// partitions, with no group (decisionFeed) into a bounded index of recent
// decisions that wakes the waiters. The protocol, its invariants and its
// cost are in docs/design/decisions.md.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// Defaults of DecisionConfig.
const (
	DefaultDecisionBudget    = 250 * time.Millisecond
	DefaultDecisionMaxBudget = 10 * time.Second
	DefaultDecisionRetention = 2 * time.Minute
	DefaultDecisionCacheSize = 100_000
)

// DecisionConfig configures POST /v1/decisions.
type DecisionConfig struct {
	// Budget is how long a decision request waits for its scored record
	// when it names no budget of its own; then it is answered 202 with
	// "decision": "pending" and a Location (INGEST_DECISION_BUDGET,
	// default 250ms). It counts from the request's arrival.
	Budget time.Duration
	// MaxBudget caps a budget a request asks for with "Prefer: wait=N" or
	// "?budget_ms=N" (INGEST_DECISION_MAX_BUDGET, default 10s).
	MaxBudget time.Duration
	// Retention is how long a decision stays in the index of recent
	// decisions that answers GET /v1/decisions/{partition}/{offset} and
	// late retries; at start-up the index is filled from the scored
	// records of this last period (INGEST_DECISION_RETENTION, default 2m).
	Retention time.Duration
	// CacheSize bounds the index's entries (about 470 bytes of heap each)
	// whatever Retention says (INGEST_DECISION_CACHE_SIZE, default 100000).
	CacheSize int
}

// DefaultDecisionConfig returns a DecisionConfig with every default.
func DefaultDecisionConfig() DecisionConfig {
	return DecisionConfig{Budget: DefaultDecisionBudget, MaxBudget: DefaultDecisionMaxBudget,
		Retention: DefaultDecisionRetention, CacheSize: DefaultDecisionCacheSize}
}

// Validate returns a *ConfigError naming the first bad field as
// "Decisions.<Field>".
func (c DecisionConfig) Validate() error {
	switch {
	case c.Budget <= 0:
		return fieldErr("Decisions.Budget", "must be positive")
	case c.MaxBudget < c.Budget:
		return fieldErr("Decisions.MaxBudget", "must be at least Config.Decisions.Budget (%s)", c.Budget)
	case c.Retention <= 0:
		return fieldErr("Decisions.Retention", "must be positive")
	case c.CacheSize <= 0:
		return fieldErr("Decisions.CacheSize", "must be positive")
	}
	return nil
}

// Decision is the answer to POST /v1/decisions and GET
// /v1/decisions/{partition}/{offset}: the decision of the committed scored
// record of the transaction stored at Partition/Offset of raw-transactions.
// Decision is "pending" (and the scoring fields empty) when the budget ran
// out first.
type Decision struct {
	// TransactionID is empty only in a pending answer to a GET of an
	// offset the feed has not read yet.
	TransactionID  string         `json:"transaction_id,omitempty"`
	Decision       string         `json:"decision"`
	Score          *float64       `json:"score,omitempty"`
	Reasons        []event.Reason `json:"reasons,omitempty"`
	RuleSetVersion *int64         `json:"rule_set_version,omitempty"`
	ModelVersion   string         `json:"model_version,omitempty"`
	Partition      int32          `json:"partition"`
	Offset         int64          `json:"offset"`
	ScoredAt       *time.Time     `json:"scored_at,omitempty"`
}

// DecisionPending is the Decision of a request whose budget ran out.
const DecisionPending = "pending"

// decisionKey is where a transaction is stored in raw-transactions; the
// scored record carries it (co-partitioned topics), so it names the
// transaction even when its transaction_id is reused later.
type decisionKey struct {
	p int32
	o int64
}

// decided is one entry of the index: the answer's JSON, built once.
type decided struct {
	key  decisionKey
	txID string
	fp   uint64 // event.Fingerprint of the transaction's canonical encoding
	body []byte
	at   time.Time // when the feed read it
}

// waiter is one request waiting for the scored record at key.
type waiter struct {
	key  decisionKey
	txID string
	fp   uint64        // its transaction's fingerprint; 0 if unknown
	ch   chan *decided // buffered 1; nil sent when the offset was passed unscored
}

// decisionIndex holds the recent decisions and the waiters. Invariants,
// under mu: a waiter is registered only for a key not in the index and not
// yet passed (passed[p] < o), so add never misses one; entries are evicted
// oldest first, by count and by age.
type decisionIndex struct {
	mu      sync.Mutex
	byKey   map[decisionKey]*decided
	byTx    map[string]*decided // transaction_id → its newest entry
	ring    []*decided          // FIFO of entries, capacity cacheSize
	head, n int
	// passed is the highest input offset read per partition: the scorer
	// writes a partition's outputs in input order, so an offset at or
	// below it without an entry was never scored (a dropped repeat of a
	// retried transaction, or a dead letter).
	passed    map[int32]int64
	waiters   map[int32]map[int64][]*waiter
	retention time.Duration
}

func newDecisionIndex(size int, retention time.Duration) *decisionIndex {
	return &decisionIndex{
		byKey: make(map[decisionKey]*decided), byTx: make(map[string]*decided),
		ring: make([]*decided, size), passed: make(map[int32]int64),
		waiters: make(map[int32]map[int64][]*waiter), retention: retention,
	}
}

// add stores d and wakes the waiters of its key, and those of the
// partition's earlier offsets, which will never be scored: each of them
// gets the decision of the same transaction (transaction_id and
// fingerprint) when the index has it: the repeat of a transaction the
// scorer dropped as a redelivery carries the decision of its first copy.
// Otherwise nil: a transaction reusing an id with other contents (the
// scorer dead-letters it) must never get the other one's decision.
func (x *decisionIndex) add(d *decided) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.evict(d.at)
	if x.n == len(x.ring) {
		x.drop()
	}
	x.ring[(x.head+x.n)%len(x.ring)] = d
	x.n++
	x.byKey[d.key] = d
	x.byTx[d.txID] = d
	if o, ok := x.passed[d.key.p]; !ok || d.key.o > o {
		x.passed[d.key.p] = d.key.o
	}
	ws := x.waiters[d.key.p]
	for o, list := range ws {
		if o > d.key.o {
			continue
		}
		for _, w := range list {
			ans := d
			if o < d.key.o {
				ans = x.sameTransaction(w.key.p, w.txID, w.fp)
			}
			w.ch <- ans
		}
		delete(ws, o)
	}
}

// evict drops entries older than the retention.
func (x *decisionIndex) evict(now time.Time) {
	for x.n > 0 && now.Sub(x.ring[x.head].at) > x.retention {
		x.drop()
	}
}

func (x *decisionIndex) drop() {
	old := x.ring[x.head]
	x.ring[x.head] = nil
	x.head = (x.head + 1) % len(x.ring)
	x.n--
	if x.byKey[old.key] == old {
		delete(x.byKey, old.key)
	}
	if x.byTx[old.txID] == old {
		delete(x.byTx, old.txID)
	}
}

// lookupState is what the index knows of a key.
type lookupState int

const (
	stateDecided lookupState = iota // in the index
	stateWaiting                    // not read yet: it may still come
	stateGone                       // passed, and not (or no longer) in the index
)

// sameTransaction is the entry of the transaction txID with fingerprint
// fp in partition p, or nil.
func (x *decisionIndex) sameTransaction(p int32, txID string, fp uint64) *decided {
	if d := x.byTx[txID]; d != nil && fp != 0 && d.fp == fp && d.key.p == p {
		return d
	}
	return nil
}

// lookup answers from the index; with txID and fp set, an offset passed
// unscored is answered by the same transaction's entry (sameTransaction).
func (x *decisionIndex) lookup(k decisionKey, txID string, fp uint64) (*decided, lookupState) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lookupLocked(k, txID, fp)
}

func (x *decisionIndex) lookupLocked(k decisionKey, txID string, fp uint64) (*decided, lookupState) {
	if d := x.byKey[k]; d != nil {
		return d, stateDecided
	}
	if o, ok := x.passed[k.p]; !ok || o < k.o {
		return nil, stateWaiting
	}
	if d := x.sameTransaction(k.p, txID, fp); d != nil {
		return d, stateDecided
	}
	return nil, stateGone
}

// wait returns the decision at k, waiting until ctx is done. It returns
// (nil, stateGone) when k was passed without a decision the index holds,
// and (nil, stateWaiting) when ctx ended first.
func (x *decisionIndex) wait(ctx context.Context, k decisionKey, txID string, fp uint64) (*decided, lookupState) {
	x.mu.Lock()
	d, st := x.lookupLocked(k, txID, fp)
	if st != stateWaiting {
		x.mu.Unlock()
		return d, st
	}
	w := &waiter{key: k, txID: txID, fp: fp, ch: make(chan *decided, 1)}
	ws := x.waiters[k.p]
	if ws == nil {
		ws = make(map[int64][]*waiter)
		x.waiters[k.p] = ws
	}
	ws[k.o] = append(ws[k.o], w)
	x.mu.Unlock()

	select {
	case d := <-w.ch:
		if d == nil {
			return nil, stateGone
		}
		return d, stateDecided
	case <-ctx.Done():
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	list := x.waiters[k.p][k.o]
	for i, o := range list {
		if o == w {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(x.waiters[k.p], k.o)
	} else {
		x.waiters[k.p][k.o] = list
	}
	// add may have answered between ctx ending and the lock.
	select {
	case d := <-w.ch:
		if d != nil {
			return d, stateDecided
		}
		return nil, stateGone
	default:
	}
	return nil, stateWaiting
}

// decisionFeed reads scored-transactions into the index.
type decisionFeed struct {
	cl      *kgo.Client
	index   *decisionIndex
	log     *slog.Logger
	now     func() time.Time
	metrics *decisionMetrics
}

// newDecisionFeed creates the feed's consumer: read_committed, so only
// decisions of committed scorer transactions are ever answered; every
// partition, no group, so every replica can answer any request; starting
// at the records of the last Retention, so a restarted replica still
// answers recent GETs.
// Its clock is the wall clock, not Deps.Now: it is compared with Kafka's
// record timestamps.
func newDecisionFeed(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*decisionFeed, error) {
	now := time.Now
	opts, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	start := now().Add(-cfg.Decisions.Retention).UnixMilli()
	opts = append(opts,
		kgo.ConsumeTopics(event.TopicScored),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(start)),
		// A fetch answers as soon as one record is there: this path is
		// about latency, and the stream is small.
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.WithLogger(kafkaopt.Logger(log)),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create decisions consumer: %w", err)
	}
	return &decisionFeed{cl: cl, index: newDecisionIndex(cfg.Decisions.CacheSize, cfg.Decisions.Retention),
		log: log, now: now, metrics: newDecisionMetrics(reg)}, nil
}

// run reads until ctx is done, then closes the client.
func (f *decisionFeed) run(ctx context.Context) {
	defer f.cl.Close()
	for {
		fetches := f.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				f.log.Warn("decisions feed: fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			d, err := decodeDecided(r, f.now())
			if err != nil {
				// The alerts sink dead-letters such a record; here its
				// waiters end as pending when a later offset passes.
				f.metrics.undecodable.Inc()
				f.log.Warn("decisions feed: undecodable scored record", "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			f.index.add(d)
		})
	}
}

// decodeDecided builds the index entry of a scored record.
func decodeDecided(r *kgo.Record, now time.Time) (*decided, error) {
	s, err := event.DecodeScored(r.Value)
	if err != nil {
		return nil, err
	}
	d := Decision{
		TransactionID: s.Transaction.TransactionID, Decision: s.Decision, Score: &s.Score,
		Reasons: s.Reasons, RuleSetVersion: &s.RuleSetVersion, ModelVersion: s.ModelVersion,
		Partition: s.Partition, Offset: s.Offset,
	}
	if d.Reasons == nil {
		d.Reasons = []event.Reason{}
	}
	for _, h := range r.Headers {
		if h.Key == event.HeaderScoredAt {
			if t, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
				d.ScoredAt = &t
			}
		}
	}
	body, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	canonical, err := s.Transaction.AppendCanonical(nil)
	if err != nil {
		return nil, err
	}
	return &decided{key: decisionKey{s.Partition, s.Offset}, txID: d.TransactionID, fp: event.Fingerprint(canonical),
		body: body, at: now}, nil
}

// decisionMetrics are the decision API's series.
type decisionMetrics struct {
	latency     *prometheus.HistogramVec
	pending     prometheus.Counter
	undecodable prometheus.Counter
}

func newDecisionMetrics(reg prometheus.Registerer) *decisionMetrics {
	m := &decisionMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fraudstream", Subsystem: "ingest", Name: "decision_latency_seconds",
			Help:    "POST /v1/decisions from arrival to answer, by outcome (decided or pending).",
			Buckets: []float64{.001, .002, .004, .006, .008, .01, .015, .02, .03, .04, .06, .08, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		pending: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "fraudstream", Subsystem: "ingest", Name: "decisions_pending_total",
			Help: "Decision requests answered 202 pending because their budget ran out (or their record was not in the index).",
		}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "fraudstream", Subsystem: "ingest", Name: "decision_feed_undecodable_total",
			Help: "Scored records the decisions feed could not decode (the alerts sink dead-letters them).",
		}),
	}
	reg.MustRegister(m.latency, m.pending, m.undecodable)
	return m
}

// captured is a response buffered to be read before it is sent.
type captured struct {
	w      http.ResponseWriter
	h      http.Header
	status int
	body   bytes.Buffer
}

func (c *captured) Header() http.Header { return c.h }
func (c *captured) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}
func (c *captured) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (c *captured) Unwrap() http.ResponseWriter { return c.w }

// send writes the captured response to w unchanged.
func (c *captured) send(w http.ResponseWriter) {
	for k, v := range c.h {
		w.Header()[k] = v
	}
	w.WriteHeader(c.status)
	_, _ = w.Write(c.body.Bytes())
}

// handleDecision serves POST /v1/decisions: handleSingle, then the wait.
// Every answer but the 202 of an accepted transaction is handleSingle's
// own, unchanged (problems, 429, 503, 409). A replayed request carries the
// first request's partition and offset, so it gets the same decision.
func (s *Service) handleDecision(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	budget, applied, e := s.decisionBudget(r)
	if e != nil {
		if le := s.adm.charge(w, r.WithContext(context.WithoutCancel(r.Context())), 1); le != nil {
			e = le
		}
		s.fail(w, r, e)
		return
	}
	c := &captured{w: w, h: make(http.Header)}
	// The body handleSingle reads (it bounds it) is kept, for the
	// transaction's fingerprint.
	var body bytes.Buffer
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(r.Body, &body), r.Body}
	s.handleSingle(c, r)
	var acc Accepted
	if c.status != http.StatusAccepted || json.Unmarshal(c.body.Bytes(), &acc) != nil {
		c.send(w)
		return
	}
	fp := s.requestFingerprint(body.Bytes())
	for k, v := range c.h {
		if k != "Content-Type" && k != "X-Content-Type-Options" {
			w.Header()[k] = v
		}
	}
	if applied != "" {
		w.Header().Set("Preference-Applied", applied)
	}
	ctx, cancel := context.WithDeadline(r.Context(), start.Add(budget))
	defer cancel()
	d, _ := s.decisions.index.wait(ctx, decisionKey{acc.Partition, acc.Offset}, acc.TransactionID, fp)
	outcome := "decided"
	if d != nil {
		writeRaw(w, http.StatusOK, d.body)
	} else {
		outcome = "pending"
		s.decisions.metrics.pending.Inc()
		writePending(w, acc)
	}
	s.decisions.metrics.latency.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}

// requestFingerprint is the fingerprint of the transaction in an accepted
// request's body, as decodeDecided computes it from its scored record; 0
// (unknown: no fallback by transaction_id) if it does not decode.
func (s *Service) requestFingerprint(body []byte) uint64 {
	tx, e := decodeTransaction(bodyString(body), s.now(), s.cfg.MaxSkew)
	if e != nil {
		return 0
	}
	canonical, err := tx.AppendCanonical(nil)
	if err != nil {
		return 0
	}
	return event.Fingerprint(canonical)
}

// writePending answers 202 pending with where to read the decision.
func writePending(w http.ResponseWriter, acc Accepted) {
	w.Header().Set("Location", decisionPath(acc.Partition, acc.Offset))
	w.Header().Set("Retry-After", "1")
	b, _ := json.Marshal(Decision{TransactionID: acc.TransactionID, Decision: DecisionPending,
		Partition: acc.Partition, Offset: acc.Offset})
	writeRaw(w, http.StatusAccepted, b)
}

func decisionPath(p int32, o int64) string {
	return "/v1/decisions/" + strconv.FormatInt(int64(p), 10) + "/" + strconv.FormatInt(o, 10)
}

// handleGetDecision serves GET /v1/decisions/{partition}/{offset}: 200 with
// the decision, 202 pending while it may still come, 404 once the offset
// was passed and the index does not (or no longer) hold it.
func (s *Service) handleGetDecision(w http.ResponseWriter, r *http.Request) {
	p, perr := strconv.ParseInt(chi.URLParam(r, "partition"), 10, 32)
	o, oerr := strconv.ParseInt(chi.URLParam(r, "offset"), 10, 64)
	if perr != nil || oerr != nil || p < 0 || o < 0 {
		s.fail(w, r, &Error{Kind: KindNotFound, Detail: "a decision is named by a partition and an offset, both non-negative integers, as in the Location of a pending answer"})
		return
	}
	d, st := s.decisions.index.lookup(decisionKey{int32(p), o}, "", 0)
	switch st {
	case stateDecided:
		writeRaw(w, http.StatusOK, d.body)
	case stateWaiting:
		writePending(w, Accepted{Partition: int32(p), Offset: o})
	default:
		s.fail(w, r, &Error{Kind: KindNotFound, Detail: fmt.Sprintf(
			"no decision for partition %d offset %d in the recent decisions (INGEST_DECISION_RETENTION); read the stored scored record with GET /api/v1/transactions/{transaction_id} on the alerts API", p, o)})
	}
}

// decisionBudget is the request's budget: "?budget_ms=N" (milliseconds,
// a bad value is a 400), else "Prefer: wait=N" (seconds, RFC 7240; a
// malformed preference is ignored, as the RFC says), else the default;
// capped at MaxBudget. applied is the Preference-Applied value, if any.
func (s *Service) decisionBudget(r *http.Request) (budget time.Duration, applied string, e *Error) {
	cfg := s.cfg.Decisions
	budget = cfg.Budget
	if q := r.URL.Query(); q.Has("budget_ms") {
		ms, err := strconv.ParseInt(q.Get("budget_ms"), 10, 64)
		if err != nil || ms < 0 {
			return 0, "", &Error{Kind: KindBadParameter, Detail: fmt.Sprintf("budget_ms must be a non-negative integer number of milliseconds, got %q", q.Get("budget_ms"))}
		}
		return min(time.Duration(ms)*time.Millisecond, cfg.MaxBudget), "", nil
	}
	for _, h := range r.Header.Values("Prefer") {
		for pref := range strings.SplitSeq(h, ",") {
			name, val, ok := strings.Cut(strings.TrimSpace(pref), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			secs, err := strconv.ParseFloat(strings.Trim(strings.TrimSpace(val), `"`), 64)
			if err != nil || secs < 0 || secs != secs {
				continue
			}
			budget = min(time.Duration(secs*float64(time.Second)), cfg.MaxBudget)
			return budget, "wait=" + strconv.FormatFloat(budget.Seconds(), 'f', -1, 64), nil
		}
	}
	return budget, "", nil
}
