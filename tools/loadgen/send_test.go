package loadgen

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// TestPostAsksAgainWhileInProgress: ingest answers 409
// idempotency-in-progress while another request with the same key waits
// for Kafka; loadgen asks again after Retry-After and counts the
// transaction as accepted once ingest replays the 202. Any other 409 is
// final.
func TestPostAsksAgainWhileInProgress(t *testing.T) {
	for _, c := range []struct {
		name      string
		slug      string
		wantCalls int32
		accepted  int
	}{
		{"in progress, then accepted", "idempotency-in-progress", 3, 1},
		{"key reused: final", "idempotency-key-reused", 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) < 3 {
					w.Header().Set("Content-Type", "application/problem+json")
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(http.StatusConflict)
					_, _ = w.Write([]byte(`{"type":"https://fraudstream.github.io/problems/` + c.slug + `","status":409}`))
					return
				}
				w.WriteHeader(http.StatusAccepted)
				_, _ = w.Write([]byte(`{}`))
			}))
			defer srv.Close()

			tr := newTracker("lg")
			s := newHTTPSender(Config{IngestURL: srv.URL, Workers: 1, RequestTimeout: 5 * time.Second}, srv.Client(), tr)
			l := traffic.Labeled{Tx: event.Transaction{TransactionID: "lg-1", CardID: "card-1"}}
			tr.sending(l)
			s.post(l)
			s.close()
			if got := calls.Load(); got != c.wantCalls {
				t.Errorf("%d requests, want %d", got, c.wantCalls)
			}
			if tr.acceptedN != c.accepted {
				t.Errorf("accepted %d, want %d (errors %v)", tr.acceptedN, c.accepted, tr.errors)
			}
			if c.accepted == 1 && len(tr.errors) != 0 {
				t.Errorf("errors %v, want none: the 409s were not final", tr.errors)
			}
		})
	}
}
