// Package loadgen drives the pipeline with simulated traffic and measures
// it: throughput and request latency at the front door, end-to-end latency
// to the scored record on alerts' live stream, and detection quality of the
// scored decisions against the simulator's labels.
//
// A run subscribes to the stream first, then sends transactions from
// tools/traffic — to ingest one per request, in NDJSON batches, or
// straight to the raw-transactions topic — at a fixed rate or as fast as
// its workers go, until a count or a duration is reached. It then waits a
// bounded time for the last scored records and returns a Report.
//
// Every transaction of a run has the id "<prefix>-<n>", so the run tracks
// each one by n in bit sets: a long run keeps the transactions in flight,
// not all it sent.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// Mode is how transactions reach the pipeline.
type Mode string

// Modes of sending.
const (
	ModeHTTP  Mode = "http"  // POST /v1/transactions, one transaction per request
	ModeBatch Mode = "batch" // POST /v1/transactions/batch, NDJSON
	ModeKafka Mode = "kafka" // produce to raw-transactions directly, stamping ingest_time
	// ModeDecisions alternates POST /v1/decisions and POST
	// /v1/transactions, one transaction per request, so one run reports
	// decision latency beside its floor, the POST→202 latency.
	ModeDecisions Mode = "decisions"
)

// Config is one run.
type Config struct {
	Mode Mode
	// IngestURL is ingest's base URL and APIKey its bearer key (http and
	// batch modes).
	IngestURL, APIKey string
	// Kafka and Topic are where kafka mode produces; Topic defaults to
	// raw-transactions.
	Kafka kafkaopt.Config
	Topic string
	// Rate is transactions per second; 0 sends as fast as Workers
	// concurrent requests (or the producer's buffer) allow.
	Rate float64
	// Workers is the number of concurrent requests; default 8.
	Workers int
	// BatchSize is the transactions per batch request; default 100. A
	// batch is sent when full or 100ms after its first transaction.
	BatchSize int
	// Count bounds the distinct transactions sent (retries come on top)
	// and Duration the time spent sending; at least one must be set, and
	// the run stops at whichever comes first.
	Count    int
	Duration time.Duration
	// Traffic configures the simulator. Its IDPrefix must be unique to the
	// run: scored records are matched to the run by it.
	Traffic traffic.Config
	// AlertsURL is alerts' base URL, whose live stream (/api/v1/stream) the
	// run follows; empty skips the end-to-end and quality measurements.
	// AlertsToken is its bearer token when alerts requires one.
	AlertsURL, AlertsToken string
	// FromTopic follows the scored-transactions topic (through Kafka)
	// instead of alerts' stream: the pipeline's latency without alerts'
	// fan-out, at rates the stream cannot carry. AlertsURL is then not
	// needed.
	FromTopic bool
	// Drain bounds the wait for scored records after sending; default 30s.
	// Accepted transactions the stream has not delivered by then (alerts
	// disconnects a client that falls behind, and cannot always backfill)
	// are then read from alerts' API, within another Drain, for the
	// quality figures.
	Drain time.Duration
	// Progress is the interval of progress lines; default 5s, negative
	// for none.
	Progress time.Duration
	// RequestTimeout bounds one request; default 10s.
	RequestTimeout time.Duration
	// DecisionBudget is sent as budget_ms with each decision request;
	// 0 leaves ingest's default.
	DecisionBudget time.Duration
	// TimeScale makes simulated event time run this many times faster
	// than the wall clock, ending at the wall clock when sending ends (so
	// every event time is in the past); default 1, real time. A card of a
	// real population pays a few times a day: at TimeScale 1 a run of
	// minutes either sends each card's purchases seconds apart (few
	// cards: velocity features misfire) or sends every card once (many
	// cards: each arrives without history). With TimeScale 400, a
	// 3-minute run at 200/s over 2,000 cards is 20 hours of event time at
	// one purchase per card per hour, as the offline quality test sees
	// it. Arrival delays, episode gaps and retry delays are in event time
	// too. It needs Duration, or Count with a Rate, to know when sending
	// ends. Latencies are measured on the wall clock as always.
	TimeScale float64
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.Topic == "" {
		c.Topic = event.TopicRaw
	}
	if c.Drain == 0 {
		c.Drain = 30 * time.Second
	}
	if c.Progress == 0 {
		c.Progress = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.TimeScale == 0 {
		c.TimeScale = 1
	}
	if c.Traffic.IDPrefix == "" {
		c.Traffic.IDPrefix = "load"
	}
	if c.Traffic.CardPrefix == "" {
		c.Traffic.CardPrefix = CardPrefix(c.Traffic.Seed)
	}
}

// CardPrefix is the default card id prefix of a run with this simulator
// seed, "card-s<seed>-". A seed decides where each card lives and how it
// spends, so cards are named per seed: runs with one seed continue the
// same cardholders, and runs with another seed (or fraudstream dev's
// traffic, whose cards are "card-…") never reuse a card id for a
// cardholder in another city, which the scorer would flag as impossible
// travel.
func CardPrefix(seed uint64) string { return "card-s" + strconv.FormatUint(seed, 10) + "-" }

// Validate names the first bad setting.
func (c Config) Validate() error {
	switch c.Mode {
	case ModeHTTP, ModeBatch, ModeDecisions:
		if !strings.HasPrefix(c.IngestURL, "http://") && !strings.HasPrefix(c.IngestURL, "https://") {
			return fmt.Errorf("ingest URL %q is not an http(s) URL", c.IngestURL)
		}
	case ModeKafka:
	default:
		return fmt.Errorf("mode %q is not http, batch, decisions or kafka", c.Mode)
	}
	if c.Mode == ModeKafka || c.FromTopic {
		if err := c.Kafka.Validate(); err != nil {
			return err
		}
	}
	switch {
	case c.Rate < 0:
		return fmt.Errorf("rate %v is negative", c.Rate)
	case c.Count < 0 || c.Duration < 0:
		return errors.New("count and duration must not be negative")
	case c.Count == 0 && c.Duration == 0:
		return errors.New("set a count or a duration: a run must end by itself")
	case c.BatchSize > 1000:
		return fmt.Errorf("batch size %d is above ingest's default limit of 1000", c.BatchSize)
	case c.AlertsURL != "" && !strings.HasPrefix(c.AlertsURL, "http://") && !strings.HasPrefix(c.AlertsURL, "https://"):
		return fmt.Errorf("alerts URL %q is not an http(s) URL", c.AlertsURL)
	case c.TimeScale != 0 && (c.TimeScale < 1 || c.TimeScale > 100_000):
		return fmt.Errorf("time scale %v is not between 1 and 100000 (0: 1)", c.TimeScale)
	case c.TimeScale > 1 && c.Duration == 0 && c.Rate == 0:
		return errors.New("a time scale above 1 needs a duration, or a count with a rate, to know when sending ends")
	case strings.ContainsAny(c.Traffic.IDPrefix, " /"):
		return fmt.Errorf("id prefix %q must be a transaction id prefix", c.Traffic.IDPrefix)
	}
	return c.Traffic.Validate()
}

// Deps are what a run uses besides its Config.
type Deps struct {
	Log *slog.Logger
	// Progress receives the progress lines (stderr); nil discards them.
	Progress io.Writer
	// HTTPClient sends the transactions; default a keep-alive client sized
	// for the workers.
	HTTPClient *http.Client
}

// Run runs cfg and reports what it measured. It returns an error only when
// the run cannot start (bad config, no stream, no Kafka client) or the
// simulator fails; failed requests are counted in the report. Cancelling ctx
// ends the run early with a report of what was done.
func Run(ctx context.Context, cfg Config, deps Deps) (*Report, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Progress == nil {
		deps.Progress = io.Discard
	}
	t := newTracker(cfg.Traffic.IDPrefix)
	rep := &Report{Mode: cfg.Mode, Seed: cfg.Traffic.Seed, TargetRate: cfg.Rate, TimeScale: cfg.TimeScale, Started: time.Now().UTC()}

	// Subscribe before sending, so no scored record of the run is missed.
	streamCtx, stopStream := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStream()
	var st *stream
	var streamDone chan struct{}
	switch {
	case cfg.FromTopic:
		f, err := newTopicFollower(ctx, cfg)
		if err != nil {
			return nil, err
		}
		st = &stream{} // counts no reconnects
		t.source = "topic"
		streamDone = make(chan struct{})
		go func() { defer close(streamDone); f.run(streamCtx, t) }()
	case cfg.AlertsURL != "":
		// The reader only splits events and queues them, so it drains the
		// socket as fast as alerts writes; decoding happens apart.
		t.source = "stream"
		scored := make(chan arrival, 16<<10)
		st = &stream{url: cfg.AlertsURL + "/api/v1/stream", token: cfg.AlertsToken, client: &http.Client{}, log: deps.Log,
			onScored: func(data []byte, at time.Time) { scored <- arrival{data, at} }}
		body, err := st.open(streamCtx)
		if err != nil {
			return nil, err
		}
		streamDone = make(chan struct{})
		decoded := make(chan struct{})
		go func() {
			defer close(decoded)
			for a := range scored {
				t.scored(a.data, a.at, true)
			}
		}()
		go func() {
			defer close(streamDone)
			st.run(streamCtx, body)
			close(scored)
			<-decoded
		}()
	}

	var snd sender
	switch cfg.Mode {
	case ModeHTTP, ModeBatch, ModeDecisions:
		rep.Target = cfg.IngestURL
		snd = newHTTPSender(cfg, deps.HTTPClient, t)
	case ModeKafka:
		rep.Target = "kafka " + strings.Join(cfg.Kafka.Brokers, ",") + " topic " + cfg.Topic
		ks, err := newKafkaSender(cfg, t)
		if err != nil {
			return nil, err
		}
		snd = ks
	}

	gen := traffic.New(cfg.Traffic)
	start := time.Now()
	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		if cfg.Progress < 0 {
			<-stopProgress
			return
		}
		tick := time.NewTicker(cfg.Progress)
		defer tick.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-tick.C:
				fmt.Fprintln(deps.Progress, t.progress(time.Since(start), st != nil))
			}
		}
	}()

	err := drive(ctx, cfg, gen, snd, t, start)
	snd.close() // waits for requests in flight
	sendTime := time.Since(start)

	// Wait for the scored records of what was accepted.
	drainStart := time.Now()
	if st != nil {
		deadline := time.NewTimer(cfg.Drain)
		poll := time.NewTicker(20 * time.Millisecond)
	wait:
		for t.missing() > 0 {
			select {
			case <-ctx.Done():
				break wait
			case <-deadline.C:
				break wait
			case <-poll.C:
			}
		}
		deadline.Stop()
		poll.Stop()
		stopStream()
		<-streamDone
		if t.missing() > 0 && ctx.Err() == nil && !cfg.FromTopic {
			recoverMissing(ctx, cfg, deps.HTTPClient, t)
		}
	}
	close(stopProgress)
	<-progressDone

	rep.SendSeconds = sendTime.Seconds()
	rep.DrainSeconds = time.Since(drainStart).Seconds()
	s := gen.Stats()
	rep.Generated = Gen{Episodes: s.Episodes, ByPattern: s.ByPattern, LateMinute: s.LateMinute, Cards: len(gen.CardIDs())}
	t.fill(rep, st)
	if rep.SendSeconds > 0 {
		rep.Throughput = float64(rep.Accepted) / rep.SendSeconds
		rep.Generated.PerCardPerMinute = float64(rep.Transactions) / (rep.SendSeconds * cfg.TimeScale) * 60 / float64(rep.Generated.Cards)
	}
	return rep, err
}

// sender sends jobs; send may block (back-pressure), close waits for what
// is in flight.
type sender interface {
	send(ctx context.Context, ls []traffic.Labeled) error
	close()
}

// drive generates transactions and hands them to snd at the configured
// rate until the count or the duration is reached or ctx is done.
func drive(ctx context.Context, cfg Config, gen *traffic.Generator, snd sender, t *tracker, start time.Time) error {
	var stop <-chan time.Time
	if cfg.Duration > 0 {
		timer := time.NewTimer(cfg.Duration)
		defer timer.Stop()
		stop = timer.C
	}
	batch := 1
	if cfg.Mode == ModeBatch {
		batch = cfg.BatchSize
	}
	var (
		pending    []traffic.Labeled
		firstAt    time.Time
		sent       int // distinct transactions
		interval   time.Duration
		maxBacklog = 100 * time.Millisecond // how far behind schedule before catching up is given up
		stopped    bool
	)
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	next := start
	clock := newEventClock(cfg, start)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		ls := pending
		pending = nil
		return snd.send(ctx, ls)
	}
	for cfg.Count == 0 || sent < cfg.Count {
		select {
		case <-ctx.Done():
			return flush()
		case <-stop:
			stopped = true
		default:
		}
		if stopped {
			break
		}
		if interval > 0 {
			next = next.Add(interval)
			now := time.Now()
			if d := next.Sub(now); d > time.Millisecond {
				// Sleep in steps of at least a millisecond; faster rates
				// send small bursts on schedule.
				if batch > 1 && len(pending) > 0 && now.Sub(firstAt) >= 100*time.Millisecond {
					if err := flush(); err != nil {
						return err
					}
				}
				select {
				case <-ctx.Done():
					return flush()
				case <-stop:
					stopped = true
				case <-time.After(d):
				}
				if stopped {
					break
				}
			} else if -d > maxBacklog {
				next = now // the target cannot keep up; do not burst to catch up
			}
		}
		l := gen.Next(clock.at(time.Now()))
		if !l.Retry {
			sent++
		}
		t.sending(l)
		if len(pending) == 0 {
			firstAt = time.Now()
		}
		pending = append(pending, l)
		if len(pending) >= batch || time.Since(firstAt) >= 100*time.Millisecond {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	// A client finishes its retries: send those still scheduled, when due.
	for {
		due, more := gen.DueRetries(clock.at(time.Now()))
		for _, l := range due {
			t.sending(l)
			pending = append(pending, l)
			if len(pending) >= batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil || !more {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// eventClock maps the wall clock to simulated event time (see
// Config.TimeScale): k times as fast, reaching the wall clock when sending
// is planned to end, and never ahead of it.
type eventClock struct {
	k      float64
	origin time.Time // event time at the start
	start  time.Time
}

func newEventClock(cfg Config, start time.Time) eventClock {
	c := eventClock{k: max(cfg.TimeScale, 1), origin: start, start: start}
	if c.k == 1 {
		return c
	}
	planned := cfg.Duration
	if cfg.Rate > 0 && cfg.Count > 0 {
		if d := time.Duration(float64(cfg.Count) / cfg.Rate * float64(time.Second)); planned == 0 || d < planned {
			planned = d
		}
	}
	c.origin = start.Add(-time.Duration((c.k - 1) * float64(planned)))
	return c
}

func (c eventClock) at(wall time.Time) time.Time {
	if c.k == 1 {
		return wall
	}
	t := c.origin.Add(time.Duration(c.k * float64(wall.Sub(c.start))))
	if t.After(wall) {
		return wall
	}
	return t
}

// tracker keeps the state of a run's transactions, shared by the senders
// and the stream reader.
type tracker struct {
	prefix string
	source string // where scored records come from: stream or topic

	mu                                        sync.Mutex
	inflight                                  map[uint64]*txState // sent, not yet seen scored
	accepted, scoredSet                       bitset              // by transaction number
	transactions, retries, acceptedN, scoredN int
	duplicates, foreign, recovered            int
	requests                                  histogram
	errors                                    Errors
	client, records, fanOut                   histogram
	quality                                   *qualityCounter
	requestsN                                 int
	floor, decided                            histogram // decisions mode
	pending                                   int
}

type txState struct {
	sent    time.Time // start of the first request carrying it
	pattern traffic.Pattern
	episode string
}

func newTracker(prefix string) *tracker {
	return &tracker{prefix: prefix + "-", inflight: map[uint64]*txState{}, requests: newHistogram(),
		floor: newHistogram(), decided: newHistogram(),
		errors: Errors{}, client: newHistogram(), records: newHistogram(), fanOut: newHistogram(),
		quality: newQualityCounter()}
}

func (t *tracker) seq(id string) (uint64, bool) {
	n, ok := strings.CutPrefix(id, t.prefix)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, err == nil
}

// sending registers a transaction about to be sent.
func (t *tracker) sending(l traffic.Labeled) {
	seq, _ := t.seq(l.Tx.TransactionID)
	t.mu.Lock()
	defer t.mu.Unlock()
	if l.Retry {
		t.retries++
		return
	}
	t.transactions++
	t.inflight[seq] = &txState{pattern: l.Pattern, episode: l.Episode}
}

// started stamps the first send time of the transactions of a request.
func (t *tracker) started(ls []traffic.Labeled, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range ls {
		seq, _ := t.seq(l.Tx.TransactionID)
		if s := t.inflight[seq]; s != nil && s.sent.IsZero() {
			s.sent = at
		}
	}
}

// decision records one request of decisions mode: a decision (pending
// or not) or, with floor set, a POST /v1/transactions.
func (t *tracker) decision(d time.Duration, floor, pending bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case floor:
		t.floor.record(d)
	case pending:
		t.pending++
	default:
		t.decided.record(d)
	}
}

// request records one request: its latency, or its error kind.
func (t *tracker) request(d time.Duration, errKind string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requestsN++
	if errKind != "" {
		t.errors[errKind]++
		return
	}
	t.requests.record(d)
}

// result records the fate of one transaction in a request. A failed
// retry (such as 409 while the first send is in flight) is counted under
// "retry …", apart from failures of first sends.
func (t *tracker) result(id string, retry, ok bool, errKind string) {
	seq, _ := t.seq(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	if ok {
		if !t.accepted.get(seq) {
			t.accepted.set(seq)
			t.acceptedN++
		}
		return
	}
	if errKind != "" {
		t.errors[retryKind(retry, errKind)]++
	}
}

// scoredRecord is the part of a stream event loadgen reads.
type scoredRecord struct {
	Transaction struct {
		TransactionID string    `json:"transaction_id"`
		IngestTime    time.Time `json:"ingest_time"`
	} `json:"transaction"`
	Decision string `json:"decision"`
	Reasons  []struct {
		Code   string `json:"code"`
		Shadow bool   `json:"shadow"`
	} `json:"reasons"`
	ScoredAt *time.Time `json:"scored_at"`
}

type arrival struct {
	data []byte
	at   time.Time
}

// scored handles one scored record, from the stream (live) or read from
// the API after the stream lost it.
func (t *tracker) scored(data []byte, at time.Time, live bool) {
	var r scoredRecord
	if err := unmarshal(data, &r); err != nil {
		return
	}
	t.record(r, at, live)
}

func (t *tracker) record(r scoredRecord, at time.Time, live bool) {
	seq, ours := t.seq(r.Transaction.TransactionID)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ours {
		t.foreign++
		return
	}
	if t.scoredSet.get(seq) {
		t.duplicates++
		return
	}
	s := t.inflight[seq]
	if s == nil {
		t.foreign++ // same prefix, not sent by this run
		return
	}
	delete(t.inflight, seq)
	t.scoredSet.set(seq)
	t.scoredN++
	if !live {
		t.recovered++
	}
	if !t.accepted.get(seq) {
		// The record beat its own 202 back to the client.
		t.accepted.set(seq)
		t.acceptedN++
	}
	if live && !s.sent.IsZero() {
		t.client.record(at.Sub(s.sent))
	}
	if r.ScoredAt != nil {
		if !r.Transaction.IngestTime.IsZero() {
			t.records.record(r.ScoredAt.Sub(r.Transaction.IngestTime))
		}
		if live {
			t.fanOut.record(at.Sub(*r.ScoredAt))
		}
	}
	o := Outcome{Pattern: s.pattern, Episode: s.episode, Decision: r.Decision}
	for _, reason := range r.Reasons {
		if !reason.Shadow {
			o.Reasons = append(o.Reasons, reason.Code)
		}
	}
	t.quality.add(o)
}

// missingIDs lists the accepted transactions not seen scored.
func (t *tracker) missingIDs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []string
	for seq := range t.inflight {
		if t.accepted.get(seq) {
			ids = append(ids, t.prefix+strconv.FormatUint(seq, 10))
		}
	}
	return ids
}

// recoverMissing reads the scored records the stream did not deliver from
// alerts' API (GET /api/v1/transactions/{id}), with Workers requests at a
// time, for at most Drain. They count for quality and for the records'
// own latency, not for the client's.
func recoverMissing(ctx context.Context, cfg Config, client *http.Client, t *tracker) {
	if client == nil {
		client = &http.Client{Timeout: cfg.RequestTimeout}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Drain)
	defer cancel()
	ids := make(chan string)
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.AlertsURL+"/api/v1/transactions/"+id, nil)
				if err != nil {
					continue
				}
				if cfg.AlertsToken != "" {
					req.Header.Set("Authorization", "Bearer "+cfg.AlertsToken)
				}
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				if err == nil && resp.StatusCode == http.StatusOK {
					t.scored(data, time.Now(), false)
				}
			}
		}()
	}
	for _, id := range t.missingIDs() {
		select {
		case ids <- id:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(ids)
	wg.Wait()
}

// missing is how many accepted transactions have not been seen scored.
func (t *tracker) missing() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.acceptedN - t.scoredN
}

func (t *tracker) progress(elapsed time.Duration, streaming bool) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	errs := 0
	for _, n := range t.errors {
		errs += n
	}
	line := fmt.Sprintf("loadgen %6.1fs: sent %d (%.0f/s), accepted %d, errors %d, request p99 %s",
		elapsed.Seconds(), t.transactions, float64(t.transactions)/elapsed.Seconds(), t.acceptedN, errs,
		fmtMs(float64(t.requests.h.ValueAtQuantile(99))/1000))
	if streaming {
		line += fmt.Sprintf(", scored %d, e2e p99 %s", t.scoredN, fmtMs(float64(t.client.h.ValueAtQuantile(99))/1000))
	}
	return line
}

func (t *tracker) fill(rep *Report, st *stream) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rep.Transactions, rep.Retries, rep.Accepted = t.transactions, t.retries, t.acceptedN
	rep.Rejected = t.transactions - t.acceptedN
	rep.Requests = t.requests.summary()
	if rep.Mode == ModeDecisions {
		rep.Decisions = &Decisions{Floor: t.floor.summary(), Decided: t.decided.summary(), Pending: t.pending}
	}
	rep.Errors = t.errors
	if st == nil {
		return
	}
	rep.E2E = &E2E{Source: t.source, Scored: t.scoredN, Missing: t.acceptedN - t.scoredN, Recovered: t.recovered, Duplicates: t.duplicates, Foreign: t.foreign,
		Reconnects: int(st.reconnects.Load()), Resets: int(st.resets.Load()),
		Client: t.client.summary(), Records: t.records.summary(), FanOut: t.fanOut.summary()}
	q := t.quality.result()
	rep.Quality = &q
}

// bitset is a growable set of transaction numbers.
type bitset []uint64

func (b *bitset) set(i uint64) {
	w := int(i / 64)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w-len(*b)+1+len(*b)/2)...)
	}
	(*b)[w] |= 1 << (i % 64)
}

func (b bitset) get(i uint64) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(1<<(i%64)) != 0
}
