package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/fraudstream/fraudstream/pkg/client"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// A payment path asks for a decision with a 100 ms budget. The first
// attempt meets an ingest that is briefly unavailable (503); the client
// retries with the same Idempotency-Key, which makes the retry safe.
func ExampleClient_Decide() {
	var calls atomic.Int32
	ingest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"type":"https://fraudstream.github.io/problems/unavailable","title":"Kafka did not acknowledge the transaction in time","status":503}`)
			return
		}
		fmt.Println("attempt", calls.Load(), r.URL.RequestURI(), "Idempotency-Key:", r.Header.Get("Idempotency-Key"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"transaction_id":"tx-0001","decision":"decline","score":0.93,`+
			`"reasons":[{"code":"impossible_travel","source":"rule","weight":0.8}],`+
			`"rule_set_version":3,"model_version":"logreg-1","partition":2,"offset":1207,`+
			`"scored_at":"2026-03-01T12:00:00.004Z"}`)
	}))
	defer ingest.Close()

	c := client.New(ingest.URL, "dev-secret-key", client.WithBudget(100*time.Millisecond))
	lat, lon := 52.52, 13.405
	d, err := c.Decide(context.Background(), event.Transaction{
		TransactionID: "tx-0001", CardID: "card-42", AmountMinor: 1999, Currency: "EUR",
		MerchantID: "m-7", MerchantCategory: "5411", MerchantCountry: "DE",
		Channel: event.ChannelCardPresent, Lat: &lat, Lon: &lon,
		EventTime: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	if d.Pending {
		fmt.Println("pending; read it later at", d.Location)
		return
	}
	fmt.Println(d.Decision, d.Score, d.Reasons[0].Code)
	// Output:
	// attempt 2 /v1/decisions?budget_ms=100 Idempotency-Key: tx-0001
	// decline 0.93 impossible_travel
}
