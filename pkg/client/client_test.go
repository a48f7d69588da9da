package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/client"
	"github.com/fraudstream/fraudstream/pkg/event"
)

type seen struct {
	key, uri string
	body     []byte
}

// server answers the i-th request with answers[i] (the last one repeats)
// and records what each request carried.
func server(t *testing.T, answers ...func(w http.ResponseWriter)) (*httptest.Server, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		i := min(len(got), len(answers)-1)
		got = append(got, seen{r.Header.Get("Idempotency-Key"), r.URL.RequestURI(), b})
		mu.Unlock()
		answers[i](w)
	}))
	t.Cleanup(s.Close)
	return s, func() []seen { mu.Lock(); defer mu.Unlock(); return append([]seen(nil), got...) }
}

func problem(status int, slug, retryAfter string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/problem+json")
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":"https://fraudstream.github.io/problems/%s","title":"t","status":%d,"detail":"d"}`, slug, status)
	}
}

func decided(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"transaction_id":"tx-1","decision":"approve","score":0.1,"reasons":[],"rule_set_version":1,"model_version":"m","partition":1,"offset":9,"scored_at":"2026-03-01T12:00:00Z"}`)
}

func pending(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/v1/decisions/1/9")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprint(w, `{"transaction_id":"tx-1","decision":"pending","partition":1,"offset":9}`)
}

func tx() event.Transaction {
	return event.Transaction{TransactionID: "tx-1", CardID: "c", AmountMinor: 1, Currency: "EUR", MerchantID: "m",
		MerchantCategory: "5411", MerchantCountry: "DE", Channel: event.ChannelEcommerce, EventTime: time.Unix(0, 0).UTC()}
}

func TestDecideRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answers  []func(http.ResponseWriter)
		attempts int
		wantErr  int // status of the *Error, 0 for success
	}{
		{"503 then decided", []func(http.ResponseWriter){problem(503, "unavailable", "0"), decided}, 2, 0},
		{"429 then decided", []func(http.ResponseWriter){problem(429, "rate-limited", "0"), decided}, 2, 0},
		{"in progress then decided", []func(http.ResponseWriter){problem(409, "idempotency-in-progress", "0"), decided}, 2, 0},
		{"422 is final", []func(http.ResponseWriter){problem(422, "validation", "")}, 1, 422},
		{"reused id is final", []func(http.ResponseWriter){problem(409, "transaction-id-reused", "")}, 1, 409},
		{"attempts run out", []func(http.ResponseWriter){problem(503, "unavailable", "0")}, 3, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, got := server(t, tc.answers...)
			c := client.New(s.URL, "k", client.WithMaxAttempts(3), client.WithBackoff(time.Millisecond))
			d, err := c.Decide(context.Background(), tx())
			var e *client.Error
			switch {
			case tc.wantErr == 0 && (err != nil || d.Decision != "approve" || d.Offset != 9):
				t.Fatalf("Decide = %+v, %v", d, err)
			case tc.wantErr != 0 && (!errors.As(err, &e) || e.Status != tc.wantErr):
				t.Fatalf("error %v, want status %d", err, tc.wantErr)
			}
			reqs := got()
			if len(reqs) != tc.attempts {
				t.Fatalf("%d attempts, want %d", len(reqs), tc.attempts)
			}
			for _, r := range reqs {
				// Safe by construction: one key, one body.
				if r.key != "tx-1" || !bytes.Equal(r.body, reqs[0].body) {
					t.Errorf("attempt with key %q body %s, first had %s", r.key, r.body, reqs[0].body)
				}
			}
		})
	}
}

func TestDecidePendingThenLookup(t *testing.T) {
	s, got := server(t, pending, decided)
	c := client.New(s.URL, "k", client.WithBudget(20*time.Millisecond))
	d, err := c.Decide(context.Background(), tx(), client.WithIdempotencyKey("order-77"))
	if err != nil || !d.Pending || d.Location != "/v1/decisions/1/9" || d.Decision != client.Pending {
		t.Fatalf("Decide = %+v, %v; want pending with a Location", d, err)
	}
	final, err := c.Lookup(context.Background(), d)
	if err != nil || final.Pending || final.Decision != "approve" {
		t.Fatalf("Lookup = %+v, %v", final, err)
	}
	reqs := got()
	if reqs[0].key != "order-77" || reqs[0].uri != "/v1/decisions?budget_ms=20" || reqs[1].uri != "/v1/decisions/1/9" {
		t.Errorf("requests %+v", reqs)
	}
}

// A Retry-After longer than the caller's deadline ends the call at once
// with the server's error, instead of sleeping past the deadline.
func TestDecideRetryAfterBeyondDeadline(t *testing.T) {
	s, got := server(t, problem(503, "unavailable", "30"))
	c := client.New(s.URL, "k")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Decide(ctx, tx())
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 503 || e.RetryAfter != 30*time.Second {
		t.Fatalf("error %v, want the 503 with its Retry-After", err)
	}
	if el := time.Since(start); el > 150*time.Millisecond || len(got()) != 1 {
		t.Errorf("took %s and %d attempts", el, len(got()))
	}
}
