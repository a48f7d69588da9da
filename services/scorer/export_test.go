package scorer

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/entity"
	"github.com/fraudstream/fraudstream/services/scorer/model"
)

// ReasonVelocity1m is the reason code of the one rule of PredictableDeps.
const ReasonVelocity1m = "VELOCITY_1M"

// Velocity1mLimit is the count_1m from which PredictableDeps' rule fires.
const Velocity1mLimit = 5

// PredictableDeps returns Deps that score with one rule, VELOCITY_1M (count_1m ≥
// 5, weight 0.9: a decline) and a model that always says ~0, so service
// tests can predict every decision. The default rules and model have
// their own tests (golden_test.go).
func PredictableDeps(log *slog.Logger) Deps {
	rs := event.RuleSet{Schema: event.SchemaRules, Version: 1, UpdatedBy: "test", Rules: []event.Rule{{
		ID: "velocity_1m", Expression: "count_1m >= 5", Weight: 0.9, ReasonCode: ReasonVelocity1m,
		Description: "velocity", Mode: event.ModeActive,
	}}}
	m, err := model.Load(strings.NewReader(`{"version":"test-zero","intercept":-40,"features":[{"name":"count_1m","weight":0}]}`))
	if err != nil {
		panic(err)
	}
	return Deps{Log: log, Rules: &rs, Model: m}
}

// SetAbortHook makes the service abort, after flushing, every batch for
// which f returns true. Tests only; set it before Run.
func SetAbortHook(s *Service, f func() bool) { s.abortHook = f }

// CheckStats checks committed fraud-stats records against the committed
// scored records: per window revisions 1, 2, … with at most one Final,
// last; each Final window's counts, decisions, amount and late count equal
// to a recomputation from the scored records; too-late counts not above
// the scored records flagged late. It returns the number of Final windows.
func CheckStats(t testing.TB, stats, scored []*kgo.Record) int {
	t.Helper()
	ss := make([]event.Scored, 0, len(scored))
	for _, r := range scored {
		s, err := event.DecodeScored(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	return checkStatsAgainstScored(t, decodeStats(t, stats), ss, false)
}

// Replay scores one partition's records, in order, in a fresh task with
// cfg's settings, as a crash-free reference: it returns the scored value
// of each transaction by transaction_id.
func Replay(cfg Config, records []*kgo.Record) (map[string][]byte, error) {
	p, err := newTaskParams(cfg.withDefaults(), PredictableDeps(nil), time.Now)
	if err != nil {
		return nil, err
	}
	return replay(p, records)
}

// replay scores records in order in a fresh task with p, returning the
// scored value of each transaction by transaction_id.
func replay(p *taskParams, records []*kgo.Record) (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(records) == 0 {
		return out, nil
	}
	t, c := newTask(records[0].Partition, p), newBatchCounts()
	for _, r := range records {
		for _, o := range t.process(r, &c) {
			if o.Topic != event.TopicScored {
				continue
			}
			s, err := event.DecodeScored(o.Value)
			if err != nil {
				return nil, err
			}
			out[s.Transaction.TransactionID] = o.Value
		}
	}
	return out, nil
}

// ReplayEntities is Replay with the entity stage on: the table is read
// from entities, the committed entity-features records, in order, and
// the task waits for nothing (the table is complete as far as those
// records go). A record joined online with a complete table must replay
// byte-identically (docs/design/entities.md).
func ReplayEntities(cfg Config, records, entities []*kgo.Record) (map[string][]byte, error) {
	cfg = cfg.withDefaults()
	p, err := newTaskParams(cfg, PredictableDeps(nil), time.Now)
	if err != nil {
		return nil, err
	}
	tab := entity.NewTable(cfg.Entities.Memory)
	for _, r := range entities {
		e, err := event.DecodeEntityEntry(r.Value)
		if err != nil {
			return nil, err
		}
		tab.Apply(e)
	}
	p.entities = &entityParams{table: tab, lag: cfg.Entities.Lag, memory: cfg.Entities.Memory}
	return replay(p, records)
}
