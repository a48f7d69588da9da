package devstack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
	"github.com/fraudstream/fraudstream/tools/testenv"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

func TestMain(m *testing.M) {
	if os.Getenv(scorerChildEnv) != "" {
		os.Exit(runScorerChild()) // a scorer to SIGKILL (decisions_test.go)
	}
	testenv.Main(m)
}

// TestPipelineExactlyOnce posts 2,000 transactions, a tenth of them twice
// (client retries with the same transaction_id), through ingest → scorer →
// alerts, and checks that each is stored once and streamed once.
func TestPipelineExactlyOnce(t *testing.T) {
	backends := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + t.TempDir() + "/alerts.db" },
		"postgres": func(t *testing.T) string { return testenv.Postgres(t) },
	}
	for name, dbURL := range backends {
		t.Run(name, func(t *testing.T) { testPipeline(t, dbURL(t), 2000) })
	}
}

func testPipeline(t *testing.T, databaseURL string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	stack := StartForTest(t, ctx, Config{Partitions: 4, DatabaseURL: databaseURL}, log)
	stream := openStream(t, ctx, stack.AlertsURL()+"/api/v1/stream")

	// Generate n distinct transactions; every tenth is posted twice.
	gen := traffic.New(traffic.Config{Seed: 1, Cards: 300, IDPrefix: "it"})
	now := time.Now().UTC()
	var bodies [][]byte
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		b, err := gen.Next(now.Add(time.Duration(i) * time.Millisecond)).Tx.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var tx event.Transaction
		_ = json.Unmarshal(b, &tx)
		want[tx.TransactionID] = true
		bodies = append(bodies, b)
		if i%10 == 0 {
			bodies = append(bodies, b)
		}
	}
	if len(want) != n {
		t.Fatalf("generator produced %d distinct ids, want %d", len(want), n)
	}

	post := &http.Client{Timeout: 30 * time.Second}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, b := range bodies {
		g.Go(func() error {
			// A 503 asks the client to retry (Redis or the broker slow on
			// a loaded machine); the retry is safe: same idempotency key.
			for attempt := 1; ; attempt++ {
				req, _ := http.NewRequestWithContext(gctx, http.MethodPost, stack.IngestURL()+"/v1/transactions", bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+stack.APIKey())
				resp, err := post.Do(req)
				if err != nil {
					return err
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusAccepted:
					return nil
				case resp.StatusCode == http.StatusServiceUnavailable && attempt < 10,
					// A retry after a 503 can meet its first attempt still
					// waiting for Kafka; a client retries that too.
					resp.StatusCode == http.StatusConflict && bytes.Contains(body, []byte("idempotency-in-progress")) && attempt < 10:
					time.Sleep(500 * time.Millisecond)
					continue
				}
				return fmt.Errorf("POST: %d %s", resp.StatusCode, body)
			}
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	// The database ends up with exactly the n distinct transactions.
	store := stack.Alerts().Store()
	deadline := time.Now().Add(90 * time.Second)
	for {
		count, err := store.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if count == int64(n) {
			break
		}
		if count > int64(n) || time.Now().After(deadline) {
			t.Fatalf("database holds %d transactions, want %d", count, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for id := range want {
		s, err := store.Transaction(ctx, id)
		if err != nil {
			t.Fatalf("transaction %s: %v", id, err)
		}
		if s.Transaction.TransactionID != id || s.Decision == "" {
			t.Fatalf("transaction %s stored wrong: %+v", id, s)
		}
	}

	// The live stream delivered each exactly once, and nothing else.
	seen := stream.waitFor(t, n, 60*time.Second)
	for id, c := range seen {
		if !want[id] {
			t.Errorf("stream delivered unknown transaction %s", id)
		}
		if c != 1 {
			t.Errorf("stream delivered %s %d times", id, c)
		}
	}
	if len(seen) != n {
		t.Errorf("stream delivered %d distinct transactions, want %d", len(seen), n)
	}

	// The API serves a stored transaction with its score.
	var id string
	for id = range want {
		break
	}
	resp, err := http.Get(stack.AlertsURL() + "/api/v1/transactions/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got event.Scored
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || got.Transaction.TransactionID != id {
		t.Fatalf("GET transaction %s: status %d, err %v, id %q", id, resp.StatusCode, err, got.Transaction.TransactionID)
	}
}

// stream collects the transaction ids of scored events from an SSE endpoint.
type stream struct {
	mu   sync.Mutex
	seen map[string]int
	n    int
}

func openStream(t *testing.T, ctx context.Context, url string) *stream {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{seen: map[string]int{}}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data:")
			if !ok {
				continue
			}
			var rec event.Scored
			if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &rec); err != nil {
				continue
			}
			s.mu.Lock()
			s.seen[rec.Transaction.TransactionID]++
			s.n++
			s.mu.Unlock()
		}
	}()
	return s
}

// waitFor waits until n events arrived (or timeout), lets a moment pass for
// any duplicate to show up, and returns the counts by id.
func (s *stream) waitFor(t *testing.T, n int, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		got := s.n
		s.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestStartFailureIsAnError: a bad setting after the broker started comes
// back as an error naming it, and the broker is closed again.
func TestStartFailureIsAnError(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	_, err := Start(ctx, Config{DataDir: t.TempDir(), BrokerListen: "127.0.0.1:0", DatabaseURL: "mysql://nope",
		IngestAddr: "127.0.0.1:0", ScorerAddr: "127.0.0.1:0", AlertsAddr: "127.0.0.1:0"}, log)
	if err == nil || !strings.Contains(err.Error(), "Config.DatabaseURL") {
		t.Fatalf("got %v, want an error naming Config.DatabaseURL", err)
	}
}

// TestRuleEditsAreCheckedByTheScorer: alerts vets a PUT rule set with the
// scorer's own checker, so rules over transaction fields (the default set
// uses channel and amount_minor) are accepted and unknown names refused.
func TestRuleEditsAreCheckedByTheScorer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stack := StartForTest(t, ctx, Config{Partitions: 2}, slog.New(slog.DiscardHandler))

	put := func(body []byte) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, stack.AlertsURL()+"/api/v1/rules", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Before anything is published, the analysts see the set the scorer
	// applies: the built-in default, at its version.
	def, err := rules.Default()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(stack.AlertsURL() + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(cur), fmt.Sprintf(`"version":%d`, def.Version)) || !strings.Contains(string(cur), `"card_testing"`) {
		t.Fatalf("GET /api/v1/rules before any publication = %s, want the default set, version %d", cur, def.Version)
	}
	def.Version = 0 // a new set, not an edit of the default
	defJSON, _ := def.Encode()
	if code, body := put(defJSON); code != http.StatusOK {
		t.Fatalf("default rule set refused: %d %s", code, body)
	}
	bad := `{"rules":[{"id":"x","expression":"count_2m > 3","weight":0.5,"reason_code":"X","mode":"active"}]}`
	code, body := put([]byte(bad))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "/rules/0/expression") || !strings.Contains(body, "count_2m") {
		t.Fatalf("unknown name: got %d %s", code, body)
	}
}
