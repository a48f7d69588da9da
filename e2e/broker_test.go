//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// postOutcome tallies what clients saw.
type postOutcome struct {
	mu        sync.Mutex
	accepted  []string // 202
	refused   []string // 503 problem+json: not acknowledged, may still be written
	bad503    int      // 503 without problem+json or Retry-After
	other     map[int]int
	errs      int
	first503  time.Time
	last503   time.Time
	after503s atomic.Int64 // 202s after the first 503
}

// TestBrokerRestart: the broker is stopped gracefully (SIGTERM) and started
// again while clients POST to ingest. Clients see 503 problem+json with
// Retry-After during the outage, 202 again after it, and every transaction
// that got a 202 is scored and stored exactly once.
func TestBrokerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e := startWith(t, ctx, config{persistent: true, fastFailover: true, ingestEnv: map[string]string{
		"INGEST_PRODUCE_TIMEOUT": "2s",
		"INGEST_RATE_LIMIT":      "100000",
		"INGEST_RATE_BURST":      "100000",
	}})
	prefix := fmt.Sprintf("br-%d", time.Now().UnixNano())
	out := &postOutcome{other: map[int]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const clients = 8
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%d-%d", prefix, c, i)
				e.post(ctx, id, c*100_000+i, out)
			}
		}()
	}
	time.Sleep(5 * time.Second)
	out.mu.Lock()
	before := len(out.accepted)
	out.mu.Unlock()
	grace := 20 * time.Second
	stopped := time.Now()
	if err := e.broker.Stop(ctx, &grace); err != nil {
		t.Fatalf("stop broker: %v", err)
	}
	t.Logf("stopped the broker gracefully (SIGTERM) after %d accepted POSTs; took %s", before, time.Since(stopped).Round(time.Millisecond))
	time.Sleep(10 * time.Second)
	if err := docker(ctx, "start", e.broker.GetContainerID()); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	restarted := time.Now()
	t.Logf("started the broker again after %s down", restarted.Sub(stopped).Round(time.Millisecond))
	// Keep posting until clients have been accepted again for a while.
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if out.after503s.Load() >= 2000 {
			break
		}
	}
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()

	out.mu.Lock()
	defer out.mu.Unlock()
	t.Logf("clients: %d × 202, %d × 503 (first %s, last %s after the stop), %d 202s after the first 503, other statuses %v, %d transport errors",
		len(out.accepted), len(out.refused), out.first503.Sub(stopped).Round(time.Millisecond), out.last503.Sub(stopped).Round(time.Millisecond),
		out.after503s.Load(), out.other, out.errs)
	if len(out.refused) == 0 {
		t.Errorf("no client saw a 503 while the broker was down")
	}
	if out.bad503 > 0 {
		t.Errorf("%d 503s lacked application/problem+json or Retry-After", out.bad503)
	}
	if out.after503s.Load() == 0 {
		t.Fatalf("ingest never accepted again after the broker restarted")
	}
	// Every 202 exactly once. A 503'd transaction may still have been
	// written (the produce finished after ingest gave up), but never twice.
	scored := e.scoredIDs(ctx, out.accepted, 3*time.Minute)
	stored := e.storedIDs(ctx, out.accepted, 2*time.Minute)
	for where, got := range map[string]map[string]int{"scored-transactions (read_committed)": scored, "PostgreSQL scored_transactions": stored} {
		exactlyOnceAccepted(t, where, out.accepted, out.refused, got)
	}
}

// exactlyOnceAccepted: every accepted id exactly once, refused ids at most
// once, nothing else.
func exactlyOnceAccepted(t *testing.T, where string, accepted, refused []string, got map[string]int) {
	t.Helper()
	known := map[string]bool{}
	var lost, dup []string
	for _, id := range accepted {
		known[id] = true
		if got[id] == 0 {
			lost = append(lost, id)
		}
	}
	landed := 0
	for _, id := range refused {
		known[id] = true
		if got[id] > 0 {
			landed++
		}
	}
	extra := 0
	for id, n := range got {
		if n > 1 {
			dup = append(dup, fmt.Sprintf("%s×%d", id, n))
		}
		if !known[id] {
			extra++
		}
	}
	if len(lost) > 0 || len(dup) > 0 || extra > 0 {
		t.Errorf("%s: %d accepted: %d lost %v, %d duplicated %v, %d unexpected", where, len(accepted), len(lost), head(lost), len(dup), head(dup), extra)
		return
	}
	t.Logf("verified %s: all %d accepted transactions exactly once; %d of %d refused (503) ones were written anyway, once each; 0 duplicates",
		where, len(accepted), landed, len(refused))
}

// post sends one transaction and records the outcome.
func (e *env) post(ctx context.Context, id string, i int, out *postOutcome) {
	tx := transaction(id, i)
	tx.Schema, tx.IngestTime = "", time.Time{}
	body, _ := json.Marshal(tx)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.ingest+"/v1/transactions", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		out.mu.Lock()
		out.errs++
		out.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	out.mu.Lock()
	defer out.mu.Unlock()
	switch resp.StatusCode {
	case http.StatusAccepted:
		out.accepted = append(out.accepted, id)
		if !out.first503.IsZero() {
			out.after503s.Add(1)
		}
	case http.StatusServiceUnavailable:
		now := time.Now()
		if out.first503.IsZero() {
			out.first503 = now
		}
		out.last503 = now
		out.refused = append(out.refused, id)
		if resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Retry-After") == "" {
			out.bad503++
		}
	default:
		out.other[resp.StatusCode]++
	}
}
