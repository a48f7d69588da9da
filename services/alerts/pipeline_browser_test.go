package alerts_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/alerts"
	"github.com/fraudstream/fraudstream/tools/devstack"
)

// TestPostedTransactionAppearsLiveInBrowser runs the real pipeline in this
// process (tools/devstack: broker, ingest, scorer, alerts on SQLite),
// opens the dashboard in chromium, POSTs a transaction to ingest and waits
// for it in the live feed and then in the stored detail view.
func TestPostedTransactionAppearsLiveInBrowser(t *testing.T) {
	ctx := alerts.NewBrowser(t)
	startCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stack := devstack.StartForTest(t, startCtx, devstack.Config{Partitions: 3}, slog.New(slog.DiscardHandler))
	alerts.Do(t, ctx, "open dashboard", chromedp.Navigate(stack.AlertsURL()+"/"))
	alerts.WaitJS(t, ctx, "live status", `document.getElementById("status").dataset.state === "live"`)

	id := fmt.Sprintf("browser-%d", time.Now().UnixNano())
	tx := event.Transaction{TransactionID: id, CardID: "card-browser", AmountMinor: 4200, Currency: "EUR",
		MerchantID: "m-42", MerchantCategory: "5411", MerchantCountry: "DE", Channel: event.ChannelEcommerce,
		EventTime: time.Now().UTC()}
	body, _ := tx.Encode()
	req, _ := http.NewRequest(http.MethodPost, stack.IngestURL()+"/v1/transactions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+stack.APIKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/transactions = %d %s", resp.StatusCode, b)
	}
	posted := time.Now()
	alerts.WaitJS(t, ctx, "the posted transaction in the live feed", fmt.Sprintf(`!!document.querySelector('#rows tr[data-id=%q]')`, id))
	t.Logf("POST → live feed row in the browser: %v", time.Since(posted).Round(time.Millisecond))
	alerts.Screenshot(t, ctx, "live")

	alerts.Do(t, ctx, "open detail", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#rows tr[data-id=%q] td.id`, id)), chromedp.NodeVisible))
	alerts.WaitJS(t, ctx, "stored detail with features", `document.querySelectorAll("#drawer-features tr").length >= 10`)
	alerts.Screenshot(t, ctx, "detail")
}
