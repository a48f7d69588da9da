//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestHappyPath: POST → scored → stored → on the SSE stream, through
// containers on their own network.
func TestHappyPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := start(t, ctx)

	events := subscribe(t, ctx, e.alerts+"/api/v1/stream")
	const n = 50
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("e2e-happy-%d-%d", time.Now().UnixNano(), i)
		body := fmt.Sprintf(`{"transaction_id":%q,"card_id":"card-%d","amount_minor":%d,"currency":"EUR",
"merchant_id":"m-1","merchant_category":"5411","merchant_country":"DE","channel":"card_present","event_time":%q}`,
			ids[i], i%7, 100+i, time.Now().UTC().Format(time.RFC3339Nano))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.ingest+"/v1/transactions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %d", ids[i], resp.StatusCode)
		}
	}

	for _, id := range ids {
		if !events.wait(id, time.Minute) {
			t.Fatalf("%s never arrived on the SSE stream", id)
		}
	}
	for _, id := range ids {
		// The stream can be ahead of the database by one sink flush.
		code, body, err := getJSON(ctx, e.alerts+"/api/v1/transactions/"+id)
		for deadline := time.Now().Add(30 * time.Second); code == 404 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			code, body, err = getJSON(ctx, e.alerts+"/api/v1/transactions/"+id)
		}
		if err != nil || code != 200 {
			t.Fatalf("GET %s: %d %v %s", id, code, err, body)
		}
		var rec struct {
			Decision string `json:"decision"`
		}
		if err := json.Unmarshal([]byte(body), &rec); err != nil || rec.Decision == "" {
			t.Fatalf("GET %s: no decision in %s", id, body)
		}
	}
	if dup := events.duplicates(); len(dup) > 0 {
		t.Fatalf("SSE delivered duplicates: %v", dup)
	}
	t.Logf("verified: %d transactions posted, scored, stored in PostgreSQL and streamed once each", n)
}

type sse struct {
	mu   sync.Mutex
	seen map[string]int
}

func subscribe(t *testing.T, ctx context.Context, url string) *sse {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer e2e-dashboard-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	s := &sse{seen: map[string]int{}}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
			if !ok {
				continue
			}
			var rec struct {
				Transaction struct {
					ID string `json:"transaction_id"`
				} `json:"transaction"`
			}
			if json.Unmarshal(bytes.TrimSpace(data), &rec) == nil {
				s.mu.Lock()
				s.seen[rec.Transaction.ID]++
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *sse) wait(id string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		ok := s.seen[id] > 0
		s.mu.Unlock()
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *sse) duplicates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, n := range s.seen {
		if n > 1 {
			out = append(out, id)
		}
	}
	return out
}
