//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/client"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestDecisionsScorerSIGKILL: two ingest and two scorer containers; while
// decisions flow through both ingest replicas, each scorer is SIGKILLed in
// turn. Every request gets the committed decision or pending, never
// another; a pending one is read at its Location from the other ingest
// replica once the failover is done; a retry on the other replica gets the
// same decision.
func TestDecisionsScorerSIGKILL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	e := startWith(t, ctx, config{scorers: 2, fastFailover: true})
	ing2 := e.run(ctx, "ingest-2", e.service("ingest", "INGEST_ADDR", "8081", map[string]string{
		"INGEST_API_KEYS": "e2e:" + sha256hex(apiKey),
		"REDIS_URL":       "redis://redis:6379/0",
	}))
	ingests := []string{e.ingest, endpoint(t, ctx, ing2, "8081/tcp")}

	type answer struct {
		tx      event.Transaction
		d       client.Decision
		err     error
		replica int // the ingest replica that answered
	}
	const workers, perWorker = 8, 300
	answers := make(chan answer, workers*perWorker)
	prefix := fmt.Sprintf("dk-%d", time.Now().UnixNano())
	var wg sync.WaitGroup
	for w := range workers {
		// Half the requests wait out a failover, half fall back to
		// pending after 500 ms.
		budget := 500 * time.Millisecond
		if w%2 == 0 {
			budget = 40 * time.Second
		}
		c := client.New(ingests[w%2], apiKey, client.WithBudget(budget), client.WithMaxAttempts(10))
		wg.Go(func() {
			for i := range perWorker {
				tx := transaction(fmt.Sprintf("%s-%d-%d", prefix, w, i), w*perWorker+i)
				tx.Schema, tx.IngestTime = "", time.Time{} // a client's body
				d, err := c.Decide(ctx, tx)
				answers <- answer{tx, d, err, w % 2}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	for i, s := range e.scorers {
		time.Sleep(4 * time.Second)
		up := e.sigkill(ctx, s, fmt.Sprintf("scorer-%d", i+1))
		t.Logf("SIGKILLed scorer-%d while decisions flowed; restarted in %s", i+1, up.Round(time.Millisecond))
	}
	wg.Wait()
	close(answers)

	var all []answer
	var ids []string
	for a := range answers {
		if a.err != nil {
			t.Errorf("%s: %v", a.tx.TransactionID, a.err)
			continue
		}
		all = append(all, a)
		ids = append(ids, a.tx.TransactionID)
	}
	stored := e.scoredRecords(ctx, ids, 3*time.Minute)
	var decided, pending int
	for _, a := range all {
		s, ok := stored[a.tx.TransactionID]
		if !ok {
			t.Errorf("%s: no committed scored record", a.tx.TransactionID)
			continue
		}
		d := a.d
		other := client.New(ingests[1-a.replica], apiKey, client.WithMaxAttempts(10))
		if d.Pending {
			pending++
			var err error
			for deadline := time.Now().Add(time.Minute); d.Pending && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				if d, err = other.Lookup(ctx, a.d); err != nil {
					t.Fatalf("%s: GET %s on the other replica: %v", a.tx.TransactionID, a.d.Location, err)
				}
			}
		} else {
			decided++
		}
		if diff := differs(d, s); diff != "" {
			t.Errorf("%s (pending first: %v): %s", a.tx.TransactionID, a.d.Pending, diff)
		}
	}
	// Retries on the other replica: the same decision, nothing written.
	for _, a := range all[:min(len(all), 20)] {
		other := client.New(ingests[1-a.replica], apiKey, client.WithBudget(10*time.Second))
		d, err := other.Decide(ctx, a.tx)
		if err != nil || !d.Replayed || differs(d, stored[a.tx.TransactionID]) != "" {
			t.Errorf("retry of %s on the other replica: %+v, %v", a.tx.TransactionID, d, err)
		}
	}
	t.Logf("%d decisions through 2 ingest replicas around 2 scorer SIGKILLs: %d answered with the committed decision, %d pending then read at their Location on the other replica",
		len(all), decided, pending)
}

// differs says how a decision differs from the committed scored record.
func differs(d client.Decision, s event.Scored) string {
	switch {
	case d.Pending:
		return "still pending"
	case d.TransactionID != s.Transaction.TransactionID || d.Partition != s.Partition || d.Offset != s.Offset:
		return fmt.Sprintf("%s at %d/%d, stored %s at %d/%d", d.TransactionID, d.Partition, d.Offset,
			s.Transaction.TransactionID, s.Partition, s.Offset)
	case d.Decision != s.Decision || d.Score != s.Score || d.RuleSetVersion != s.RuleSetVersion || d.ModelVersion != s.ModelVersion:
		return fmt.Sprintf("%s %v (%d, %s), stored %s %v (%d, %s)", d.Decision, d.Score, d.RuleSetVersion, d.ModelVersion,
			s.Decision, s.Score, s.RuleSetVersion, s.ModelVersion)
	case len(d.Reasons) != len(s.Reasons):
		return fmt.Sprintf("%d reasons, stored %d", len(d.Reasons), len(s.Reasons))
	}
	return ""
}

// scoredRecords reads scored-transactions read_committed until it holds
// the record of every id, each once.
func (e *env) scoredRecords(ctx context.Context, ids []string, timeout time.Duration) map[string]event.Scored {
	cl := e.kafka(kgo.ConsumeTopics(event.TopicScored), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := make(map[string]event.Scored, len(ids))
	for deadline := time.Now().Add(timeout); len(out) < len(want) && time.Now().Before(deadline); {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			s, err := event.DecodeScored(r.Value)
			if err != nil || !want[s.Transaction.TransactionID] {
				return
			}
			if _, dup := out[s.Transaction.TransactionID]; dup {
				e.t.Errorf("%s scored twice", s.Transaction.TransactionID)
			}
			out[s.Transaction.TransactionID] = s
		})
	}
	return out
}
