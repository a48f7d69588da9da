package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestFutureDatedAttackCannotSilenceVelocity replays the attack of issue
// 16 through ingest's HTTP API, the scorer and alerts: 23 transactions on
// throwaway cards dated now+290 s (ingest accepts up to 5 minutes ahead),
// spread over every partition, then a victim card's 8 quick 3 USD
// e-commerce charges. Before the fix the partitions' watermarks jumped to
// now+285 s, and the victim's charges were scored late with count_1m 0 and
// approved. Now the watermark follows ingest_time: the victim's charges
// are on time and the later ones declined on CARD_TESTING and VELOCITY_1M.
func TestFutureDatedAttackCannotSilenceVelocity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const partitions = 3
	stack := StartForTest(t, ctx, Config{Partitions: partitions},
		slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))

	post := func(tx event.Transaction) {
		t.Helper()
		body, err := tx.Encode()
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, stack.IngestURL()+"/v1/transactions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+stack.APIKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %d %s", tx.TransactionID, resp.StatusCode, b)
		}
	}
	scored := func(id string) event.Scored {
		t.Helper()
		for {
			resp, err := http.Get(stack.AlertsURL() + "/api/v1/transactions/" + id)
			if err != nil {
				t.Fatal(err)
			}
			var s event.Scored
			err = json.NewDecoder(resp.Body).Decode(&s)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && err == nil {
				return s
			}
			if ctx.Err() != nil {
				t.Fatalf("transaction %s never stored: last status %d", id, resp.StatusCode)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	now := time.Now().UTC().Truncate(time.Millisecond)
	attackers := map[int32]int{}
	var ids []string
	for i := range 23 {
		id := fmt.Sprintf("attack-%02d", i)
		post(event.Transaction{TransactionID: id, CardID: fmt.Sprintf("card-throwaway-%02d", i), AmountMinor: 100,
			Currency: "USD", MerchantID: "m-attack", MerchantCategory: "5999", MerchantCountry: "US",
			Channel: event.ChannelEcommerce, EventTime: now.Add(290 * time.Second)})
		ids = append(ids, id)
	}
	for _, id := range ids {
		s := scored(id)
		attackers[s.Partition]++
	}
	if len(attackers) != partitions {
		t.Fatalf("attack reached partitions %v, want all %d", attackers, partitions)
	}

	var victim []string
	for i := range 8 {
		id := fmt.Sprintf("victim-%d", i)
		post(event.Transaction{TransactionID: id, CardID: "card-victim", AmountMinor: 300, Currency: "USD",
			MerchantID: "m-shop", MerchantCategory: "5732", MerchantCountry: "US", Channel: event.ChannelEcommerce,
			EventTime: time.Now().UTC().Truncate(time.Millisecond)})
		victim = append(victim, id)
	}
	for i, id := range victim {
		s := scored(id)
		var codes []string
		for _, r := range s.Reasons {
			codes = append(codes, r.Code)
		}
		t.Logf("%s: late %v count_1m %d score %.3f %s %v (watermark %s, now+%s)", id, s.Late, s.Features.Count1m,
			s.Score, s.Decision, codes, s.Watermark.Format(time.RFC3339Nano), s.Watermark.Sub(now).Round(time.Second))
		if s.Late {
			t.Errorf("%s scored late: a client's future event time moved the watermark", id)
		}
		if s.Features.Count1m != int64(i) {
			t.Errorf("%s: count_1m %d, want %d", id, s.Features.Count1m, i)
		}
		if s.Watermark.After(time.Now()) {
			t.Errorf("%s: watermark %s ahead of the wall clock", id, s.Watermark)
		}
		if i >= 5 && (s.Decision != event.DecisionDecline || !slices.Contains(codes, "CARD_TESTING") || !slices.Contains(codes, "VELOCITY_1M")) {
			t.Errorf("%s: %s %v, want decline on CARD_TESTING and VELOCITY_1M", id, s.Decision, codes)
		}
	}
}
