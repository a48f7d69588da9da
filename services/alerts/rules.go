package alerts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// RuleChecker checks a structurally valid rule set against what the scorer
// can evaluate (its feature environment, functions, limits). A returned
// *event.ValidationError is shown field by field; any other error as a
// whole. See Deps.RuleChecker.
type RuleChecker func(event.RuleSet) error

// rulesBook keeps the newest rule set of the compacted fraud-rules topic,
// read from the start by a group-less read_committed consumer (every
// replica sees every version), and publishes new versions with the same
// client's idempotent acks=all producer.
type rulesBook struct {
	cl    *kgo.Client
	log   *slog.Logger
	check RuleChecker

	mu      sync.Mutex
	latest  event.RuleSet // Version 0 until one is read or published
	pos     map[int32]int64
	advance chan struct{} // closed and replaced whenever pos moves

	publishMu sync.Mutex // one publication at a time in this process
}

func newRulesBook(log *slog.Logger, check RuleChecker) *rulesBook {
	return &rulesBook{log: log, check: check, pos: map[int32]int64{}, advance: make(chan struct{}),
		latest: event.RuleSet{Schema: event.SchemaRules, Rules: []event.Rule{}}}
}

func (b *rulesBook) opts() []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumeTopics(event.TopicRules),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, and required by idempotence
		kgo.ProducerLinger(0),
	}
}

func (b *rulesBook) run(ctx context.Context) error {
	defer b.cl.Close()
	return follow(ctx, b.cl, b.log, "rules", b.apply)
}

// apply takes one fraud-rules record: a newer valid rule set replaces the
// current one, whatever else only moves the position.
func (b *rulesBook) apply(r *kgo.Record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pos[r.Partition] < r.Offset+1 {
		b.pos[r.Partition] = r.Offset + 1
		close(b.advance)
		b.advance = make(chan struct{})
	}
	if string(r.Key) != event.RuleSetKey || r.Value == nil {
		return
	}
	rs, err := event.DecodeRuleSetRecord(r.Value)
	if err != nil {
		b.log.Warn("rules: skipping invalid rule set", "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	if rs.Version > b.latest.Version {
		b.latest = rs
	}
}

// sync waits, at most until ctx is done, for the consumer to have read
// everything committed to fraud-rules when it was called, so a read after
// a write (on any replica) sees the write. It returns whether it caught up.
func (b *rulesBook) sync(ctx context.Context) bool {
	ends, err := kadm.NewClient(b.cl).ListCommittedOffsets(ctx, event.TopicRules)
	if err != nil {
		b.log.Warn("rules: list end offsets", "err", err)
		return false
	}
	for {
		b.mu.Lock()
		behind := false
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && b.pos[o.Partition] < o.Offset {
				behind = true
			}
		})
		adv := b.advance
		b.mu.Unlock()
		if !behind {
			return true
		}
		select {
		case <-adv:
		case <-ctx.Done():
			return false
		}
	}
}

func (b *rulesBook) current() event.RuleSet {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.latest
}

// errConflict reports a PUT based on an outdated version.
var errConflict = errors.New("conflict")

// publish validates rs, gives it the next version and writes it to
// fraud-rules. base, when not zero, is the version the editor started
// from: if another version was published since, publish fails with
// errConflict rather than overwrite it.
func (b *rulesBook) publish(ctx context.Context, rs event.RuleSet, base int64) (event.RuleSet, error) {
	b.publishMu.Lock()
	defer b.publishMu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	caughtUp := b.sync(sctx)
	cancel()
	if !caughtUp {
		return event.RuleSet{}, errors.New("fraud-rules could not be read to its end; not publishing on a stale version")
	}
	cur := b.current()
	if base != 0 && base != cur.Version {
		return event.RuleSet{}, fmt.Errorf("%w: the rule set was edited from version %d, but version %d was published since", errConflict, base, cur.Version)
	}
	rs.Schema = event.SchemaRules
	rs.Version = cur.Version + 1
	rs.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	v, err := rs.Encode()
	if err != nil {
		return event.RuleSet{}, fmt.Errorf("encode rule set: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rec := &kgo.Record{Topic: event.TopicRules, Key: []byte(event.RuleSetKey), Value: v}
	if err := b.cl.ProduceSync(pctx, rec).FirstErr(); err != nil {
		return event.RuleSet{}, fmt.Errorf("publish rule set version %d: %w", rs.Version, err)
	}
	b.apply(rec) // read our own write at once
	b.log.Info("published rule set", "version", rs.Version, "rules", len(rs.Rules), "by", rs.UpdatedBy)
	return rs, nil
}

// featureEnv has every feature name a rule expression may use, with the
// zero value of its type, so expr can type-check an expression the way
// the scorer evaluates it.
var featureEnv = func() map[string]any {
	env := map[string]any{}
	t := reflect.TypeOf(event.Features{})
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			env[name] = reflect.Zero(f.Type).Interface()
		}
	}
	return env
}()

// checkExpressions compiles every non-empty expression as a boolean over
// the features and reports the ones that do not compile.
func checkExpressions(rs event.RuleSet) []event.FieldError {
	var fe []event.FieldError
	for i, r := range rs.Rules {
		if strings.TrimSpace(r.Expression) == "" {
			continue // Validate reports it
		}
		if _, err := expr.Compile(r.Expression, expr.Env(featureEnv), expr.AsBool()); err != nil {
			msg, _, _ := strings.Cut(err.Error(), "\n") // the rest is a caret diagram
			fe = append(fe, event.FieldError{Pointer: fmt.Sprintf("/rules/%d/expression", i), Detail: msg})
		}
	}
	return fe
}

// ruleSetRequest is the body of PUT /api/v1/rules: a rule set whose
// version, if given, is the one the editor started from.
func (s *Service) getRules(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	s.rules.sync(ctx) // best effort: a slow broker serves what we have
	cancel()
	writeJSON(w, http.StatusOK, s.rules.current())
}

// putRules serves PUT /api/v1/rules: validate, then publish as the next
// version. The body's version, when not 0, must be the current version
// (optimistic concurrency; 409 otherwise).
func (s *Service) putRules(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeProblem(w, r, http.StatusUnsupportedMediaType, "the body must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body must be at most %d bytes", maxBodyBytes))
		return
	case errors.Is(err, httpserver.ErrBodyTimeout):
		writeProblem(w, r, http.StatusRequestTimeout, "the body did not arrive within the server's body timeout")
		return
	case err != nil:
		writeProblem(w, r, http.StatusBadRequest, "could not read the body: "+err.Error())
		return
	}
	rs, err := event.DecodeRuleSet(body)
	var ve *event.ValidationError
	switch {
	case errors.As(err, &ve):
	case err != nil:
		writeProblem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	var fe []event.FieldError
	if ve != nil {
		fe = append(fe, ve.Errors...)
	}
	// The scorer's own checker knows its whole environment (features and
	// transaction fields); the built-in check over the features alone is
	// the fallback when none is wired.
	if s.rules.check == nil {
		fe = append(fe, checkExpressions(rs)...)
	}
	if len(fe) == 0 && s.rules.check != nil {
		if err := s.rules.check(rs); err != nil {
			if errors.As(err, &ve) {
				fe = append(fe, ve.Errors...)
			} else {
				fe = append(fe, event.FieldError{Pointer: "", Detail: err.Error()})
			}
		}
	}
	if len(fe) > 0 {
		writeProblemErrors(w, r, http.StatusUnprocessableEntity, "the rule set is not valid", fe)
		return
	}
	out, err := s.rules.publish(r.Context(), rs, rs.Version)
	switch {
	case errors.Is(err, errConflict):
		writeProblem(w, r, http.StatusConflict, err.Error())
		return
	case err != nil:
		s.log.Error("publish rules", "err", err)
		w.Header().Set("Retry-After", "5")
		writeProblem(w, r, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}
