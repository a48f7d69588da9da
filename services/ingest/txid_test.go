package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestTransactionIDRegistry: a transaction_id accepted once is bound to its
// contents for every client. Another transaction reusing it is refused with
// 409 transaction-id-reused, from another API key, under another
// Idempotency-Key, in a batch, and after the first answer expired; the same
// contents are accepted again. Nothing refused reaches Kafka.
func TestTransactionIDRegistry(t *testing.T) {
	c := newCluster(t)
	cfg, rdb := realRedisConfig(t, c)
	// Short claims: IdempotencyTTL at its minimum, and a short produce
	// timeout, so the first answer expires within the test.
	cfg.ProduceTimeout = 300 * time.Millisecond
	cfg.IdempotencyTTL = time.Second
	_, base := startService(t, cfg)
	ctx := context.Background()
	url := base + "/v1/transactions"
	const other = "some-other-key" // API key "other"

	first := txWith(map[string]any{"transaction_id": "reg-1"})
	wantStatus(t, postTx(t, base, first), http.StatusAccepted)
	reused := txWith(map[string]any{"transaction_id": "reg-1", "card_id": "card-other", "amount_minor": 777_00})

	wantReused := func(t *testing.T, r response) {
		t.Helper()
		wantStatus(t, r, http.StatusConflict)
		p := decodeProblem(t, r)
		if p.Type != problemTypeBase+"transaction-id-reused" || p.Title != "transaction_id is taken by a different transaction" {
			t.Errorf("problem %+v", p)
		}
		if r.header.Get("Retry-After") != "" {
			t.Errorf("Retry-After %q on a conflict no retry resolves", r.header.Get("Retry-After"))
		}
	}
	batchAs := func(t *testing.T, key string, lines ...[]byte) BatchResponse {
		t.Helper()
		r := post(t, base+"/v1/transactions/batch", "application/x-ndjson", "Bearer "+key, bytes.Join(lines, []byte("\n")))
		wantStatus(t, r, http.StatusMultiStatus)
		var br BatchResponse
		if err := json.Unmarshal(r.body, &br); err != nil {
			t.Fatal(err)
		}
		return br
	}

	t.Run("registry entry", func(t *testing.T) {
		v, err := rdb.Get(ctx, "txid:reg-1").Result()
		if err != nil {
			t.Fatal(err)
		}
		tx, err := event.DecodeTransaction(first)
		if err != nil {
			t.Fatal(err)
		}
		canonical, _ := tx.AppendCanonical(nil)
		if want := fmt.Sprintf("%016x", event.Fingerprint(canonical)); v != want {
			t.Errorf("registry holds %q, want the fingerprint %q", v, want)
		}
		if ttl := rdb.PTTL(ctx, "txid:reg-1").Val(); ttl < cfg.TransactionIDTTL-time.Minute || ttl > cfg.TransactionIDTTL {
			t.Errorf("registry TTL %v, want about %v", ttl, cfg.TransactionIDTTL)
		}
	})
	t.Run("other contents, other API key", func(t *testing.T) {
		wantReused(t, postWith(t, url, other, nil, reused))
	})
	t.Run("other contents, other Idempotency-Key", func(t *testing.T) {
		wantReused(t, postWith(t, url, testKey, map[string]string{"Idempotency-Key": "a-fresh-key"}, reused))
	})
	t.Run("other contents in a batch of another API key", func(t *testing.T) {
		br := batchAs(t, other, txWith(map[string]any{"transaction_id": "reg-2"}), reused)
		if g := br.Results[1]; g.Status != http.StatusConflict || g.Problem.Type != problemTypeBase+"transaction-id-reused" {
			t.Errorf("reused item: %+v", g)
		}
		if g := br.Results[0]; g.Status != http.StatusAccepted {
			t.Errorf("fresh item: %+v", g)
		}
		// The refused item's claim was given back.
		if n := rdb.Exists(ctx, "idem:other:reg-1").Val(); n != 0 {
			t.Errorf("refused batch item left its idempotency claim")
		}
	})
	t.Run("a batch registers its ids too", func(t *testing.T) {
		wantReused(t, postTx(t, base, txWith(map[string]any{"transaction_id": "reg-2", "amount_minor": 1})))
	})
	t.Run("other contents within one batch", func(t *testing.T) {
		br := batchAs(t, testKey, txWith(map[string]any{"transaction_id": "reg-3"}), txWith(map[string]any{"transaction_id": "reg-3", "amount_minor": 1}))
		if g := br.Results[1]; g.Status != http.StatusConflict || g.Problem.Type != problemTypeBase+"transaction-id-reused" {
			t.Errorf("reused item: %+v", g)
		}
	})
	t.Run("same contents, other API key or Idempotency-Key, is accepted again", func(t *testing.T) {
		for _, r := range []response{
			postWith(t, url, other, nil, first),
			postWith(t, url, testKey, map[string]string{"Idempotency-Key": "another-fresh-key"}, first),
		} {
			wantStatus(t, r, http.StatusAccepted)
			if r.header.Get(ReplayedHeader) != "" {
				t.Errorf("answered as a replay: %s", r.body)
			}
		}
	})
	t.Run("after the first answer expired", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for rdb.Exists(ctx, "idem:tester:reg-1").Val() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the idempotency claim did not expire")
			}
			time.Sleep(100 * time.Millisecond)
		}
		wantReused(t, postTx(t, base, reused))
		wantStatus(t, postTx(t, base, first), http.StatusAccepted) // the same transaction again
	})

	// reg-1: the first, once more from the other key, once under another
	// Idempotency-Key, once after the answer expired; reg-2 once; reg-3
	// once. No reused contents.
	counts := readTopic(t, c.ListenAddrs())
	if counts["reg-1"] != 4 || counts["reg-2"] != 1 || counts["reg-3"] != 1 {
		t.Errorf("records by transaction_id: %v", counts)
	}
}

// TestTransactionIDRegistryKeptOnFailure: a produce that fails gives its
// idempotency claim back but keeps the registry entry (the record may
// still land), so a retry of the same contents is produced and other
// contents stay refused.
func TestTransactionIDRegistryKeptOnFailure(t *testing.T) {
	rdb, base, release := failingProduce(t)
	body := txWith(map[string]any{"transaction_id": "fail-1"})
	checkUnavailable(t, postTx(t, base, body))
	if n := rdb.Exists(context.Background(), "idem:tester:fail-1", "txid:fail-1").Val(); n != 1 {
		t.Fatalf("after a 503, %d of the claim and the registry entry exist, want the registry entry alone", n)
	}
	release()
	r := postWith(t, base+"/v1/transactions", "some-other-key", nil, txWith(map[string]any{"transaction_id": "fail-1", "amount_minor": 1}))
	wantStatus(t, r, http.StatusConflict)
	wantStatus(t, postTx(t, base, body), http.StatusAccepted)
}
