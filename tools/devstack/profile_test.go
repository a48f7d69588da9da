package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestScorerEnrichesWithProfiles stores a card profile through ingest and
// sees the scorer of the same stack use it: the dev stack hands its Redis
// to the scorer too.
func TestScorerEnrichesWithProfiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stack := StartForTest(t, ctx, Config{Partitions: 2}, slog.New(slog.DiscardHandler))

	send := func(method, url string, body []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+stack.APIKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
		}
	}
	send(http.MethodPut, stack.IngestURL()+"/v1/cards/card-prof/profile",
		[]byte(`{"home_country":"DE","account_opened":"2019-04-01","risk_tier":2}`))
	tx := event.Transaction{TransactionID: "prof-1", CardID: "card-prof", AmountMinor: 4200, Currency: "EUR",
		MerchantID: "m-1", MerchantCategory: "5411", MerchantCountry: "FR", Channel: event.ChannelCardPresent,
		EventTime: time.Now().UTC().Truncate(time.Millisecond)}
	body, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	send(http.MethodPost, stack.IngestURL()+"/v1/transactions", body)

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(stack.AlertsURL() + "/api/v1/transactions/prof-1")
		if err != nil {
			t.Fatal(err)
		}
		var got event.Scored
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && err == nil {
			f := got.Features
			if f.ProfileMissing || !f.HomeCountryMismatch || f.RiskTier != 2 || f.AccountAgeDays < 2000 {
				t.Fatalf("scored without the profile (home DE, tier 2, opened 2019-04-01): %+v", f)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction never stored: last status %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
