package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// The previous version's records, exactly as it wrote them.
func oldPendingRecord(fp, tok string) string {
	return `{"state":"pending","fp":"` + fp + `","token":"` + tok + `"}`
}

func oldDoneRecord(fp, body string) string {
	return `{"state":"done","fp":"` + fp + `","status":202,"body":` + body + `}`
}

func writeClaimString(fp string, c claimer, idx int) string {
	var sb strings.Builder
	return writeClaim(&sb, fp, c, idx)
}

// txItem is the idempotency item of the transaction txWith(set) under
// tester's key.
func txItem(t *testing.T, set map[string]any) *idemItem {
	t.Helper()
	tx, err := event.DecodeTransaction(txWith(set))
	if err != nil {
		t.Fatal(err)
	}
	canonical, _ := tx.Encode()
	return newIdemItem("tester", tx.TransactionID, tx.TransactionID, canonical)
}

// waitAnswers waits for the recorder to write key and returns its value.
func waitAnswers(t *testing.T, rdb *redis.Client, key string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := rdb.Get(context.Background(), key).Result()
		if err == nil {
			return v
		}
		if !errors.Is(err, redis.Nil) || time.Now().After(deadline) {
			t.Fatalf("answers %s: %v", key, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func postBatch(t *testing.T, base string, lines ...[]byte) BatchResponse {
	t.Helper()
	r := post(t, base+"/v1/transactions/batch", "application/x-ndjson", "Bearer "+testKey, bytes.Join(lines, []byte("\n")))
	wantStatus(t, r, http.StatusMultiStatus)
	var br BatchResponse
	if err := json.Unmarshal(r.body, &br); err != nil {
		t.Fatal(err)
	}
	return br
}

// claimOf reads and decodes the claim under key.
func claimOf(t *testing.T, rdb *redis.Client, key string) idemRecord {
	t.Helper()
	v, err := rdb.Get(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("claim %s: %v", key, err)
	}
	var rec idemRecord
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		t.Fatalf("claim %s = %q: %v", key, v, err)
	}
	return rec
}

func countKeys(t *testing.T, rdb *redis.Client, pattern string) int {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// TestClaimFormat: writeClaim is json.Marshal of the claim's fields, and
// the previous version, reading a claim as its own record, finds its fp
// and no "done" state: in progress, never a replay (idempotency.go).
func TestClaimFormat(t *testing.T) {
	it := newIdemItem("k", "tx-1", "tx-1", []byte("x"))
	c := claimer{keyID: "k", tok: newToken(), ttl: 24 * time.Hour, pend: 7 * time.Second}
	for _, idx := range []int{0, 7, 999} {
		got := writeClaimString(it.fp, c, idx)
		want, _ := json.Marshal(idemRecord{FP: it.fp, Token: c.tok, Index: idx, TTL: c.ttl.Milliseconds(), Pend: c.pend.Milliseconds()})
		if got != string(want) {
			t.Errorf("writeClaim\n got %s\nwant %s", got, want)
		}
		if len(got) > claimSize(it.fp, c) {
			t.Errorf("claim of %d bytes, claimSize %d", len(got), claimSize(it.fp, c))
		}
		// The previous version's record type and its decisions.
		var old struct {
			State  string          `json:"state"`
			FP     string          `json:"fp"`
			Token  string          `json:"token,omitempty"`
			Status int             `json:"status,omitempty"`
			Body   json.RawMessage `json:"body,omitempty"`
		}
		if err := json.Unmarshal([]byte(got), &old); err != nil || old.FP != it.fp || old.State == idemDone {
			t.Errorf("an old instance reads %s as %+v (%v): not in progress", got, old, err)
		}
	}
	if len(c.tok) != 16 || strings.ContainsAny(c.tok, `:"\`) {
		t.Errorf("token %q", c.tok)
	}
}

// TestIdempotencyAnswers: an accepted batch writes one claim per item and
// one answers key, all with IdempotencyTTL; once the answers landed, a
// retried batch and a single POST of one of its items replay exactly what
// was first sent.
func TestIdempotencyAnswers(t *testing.T) {
	c := newCluster(t)
	cfg, rdb := realRedisConfig(t, c)
	_, base := startService(t, cfg)
	ctx := context.Background()

	ids := []string{"ans-0", "ans-1", "ans-2"}
	var lines [][]byte
	for _, id := range ids {
		lines = append(lines, txWith(map[string]any{"transaction_id": id}))
	}
	// An invalid item in the middle: its line in the answers is empty.
	lines = append(lines[:2], txWith(map[string]any{"transaction_id": "bad", "amount_minor": -1}), lines[2])
	first := postBatch(t, base, lines...)
	if first.Accepted != 3 || first.Rejected != 1 {
		t.Fatalf("first batch %+v", first)
	}
	claim := claimOf(t, rdb, "idem:tester:ans-2")
	if claim.Index != 3 || claim.Pend != (cfg.ProduceTimeout*2+2*time.Second).Milliseconds() {
		t.Errorf("claim of the last item %+v, want index 3 and a batch's pend", claim)
	}
	answersKey := "idemanswers:tester:" + claim.Token
	answers := waitAnswers(t, rdb, answersKey)
	wantLines := make([]string, 4)
	for i, r := range first.Results {
		if r.Status == http.StatusAccepted {
			wantLines[i] = string(Accepted{TransactionID: r.TransactionID, Partition: *r.Partition, Offset: *r.Offset}.appendJSON(nil))
		}
	}
	if answers != strings.Join(wantLines, "\n") {
		t.Errorf("answers\n%s\nwant\n%s", answers, strings.Join(wantLines, "\n"))
	}
	if n, m := countKeys(t, rdb, "idem:tester:*"), countKeys(t, rdb, "idemanswers:tester:*"); n != 3 || m != 1 {
		t.Errorf("%d claims and %d answers keys, want 3 and 1", n, m)
	}
	for _, k := range []string{"idem:tester:ans-0", "idem:tester:ans-2", answersKey} {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl < cfg.IdempotencyTTL-time.Minute || ttl > cfg.IdempotencyTTL {
			t.Errorf("%s TTL %v, want about %v", k, ttl, cfg.IdempotencyTTL)
		}
	}

	t.Run("retried batch replays", func(t *testing.T) {
		again := postBatch(t, base, lines...)
		for _, i := range []int{0, 1, 3} {
			got, was := again.Results[i], first.Results[i]
			if got.Status != http.StatusAccepted || !got.Replayed || *got.Partition != *was.Partition || *got.Offset != *was.Offset {
				t.Errorf("item %d: %+v, first %+v", i, got, was)
			}
		}
	})
	t.Run("single POST of a batch item replays", func(t *testing.T) {
		r := postTx(t, base, txWith(map[string]any{"transaction_id": "ans-2"}))
		wantStatus(t, r, http.StatusAccepted)
		if r.header.Get(ReplayedHeader) != "true" || string(r.body) != wantLines[3]+"\n" {
			t.Errorf("replay: header %q body %s, want %s", r.header.Get(ReplayedHeader), r.body, wantLines[3])
		}
		r = postTx(t, base, txWith(map[string]any{"transaction_id": "ans-2", "amount_minor": 5}))
		wantStatus(t, r, http.StatusConflict)
	})
	t.Run("a single POST writes one claim and one answers key", func(t *testing.T) {
		first := postTx(t, base, txWith(map[string]any{"transaction_id": "ans-single"}))
		wantStatus(t, first, http.StatusAccepted)
		claim := claimOf(t, rdb, "idem:tester:ans-single")
		if claim.Index != 0 || claim.Pend != (cfg.ProduceTimeout+2*time.Second).Milliseconds() {
			t.Errorf("claim %+v", claim)
		}
		if v := waitAnswers(t, rdb, "idemanswers:tester:"+claim.Token); v+"\n" != string(first.body) {
			t.Errorf("answers %q, answer %s", v, first.body)
		}
		if n, m := countKeys(t, rdb, "idem:tester:*"), countKeys(t, rdb, "idemanswers:tester:*"); n != 4 || m != 2 {
			t.Errorf("%d claims and %d answers keys, want 4 and 2", n, m)
		}
		again := postBatch(t, base, txWith(map[string]any{"transaction_id": "ans-single"}))
		var a Accepted
		_ = json.Unmarshal(first.body, &a)
		if r := again.Results[0]; !r.Replayed || *r.Offset != a.Offset || *r.Partition != a.Partition {
			t.Errorf("batch retry of a single POST: %+v, first %s", r, first.body)
		}
	})
	counts := readTopic(t, c.ListenAddrs())
	for _, id := range append(ids, "ans-single") {
		if counts[id] != 1 {
			t.Errorf("%s stored %d times", id, counts[id])
		}
	}
}

// TestIdempotencyTakeover: a claim without answers older than its pend is
// taken over and produced, once; so is a claim whose request's answers
// have no 202 for it. A younger one is in progress, and is replayed once
// its answers land.
func TestIdempotencyTakeover(t *testing.T) {
	c := newCluster(t)
	cfg, rdb := realRedisConfig(t, c)
	cfg.ProduceTimeout = 300 * time.Millisecond
	_, base := startService(t, cfg)
	ctx := context.Background()
	crashed := claimer{keyID: "tester", tok: "crashed-request0", ttl: time.Minute, pend: time.Second}
	// hold writes crashed's claim for id as if written age ago.
	hold := func(id string, idx int, age time.Duration) *idemItem {
		t.Helper()
		it := txItem(t, map[string]any{"transaction_id": id})
		if err := rdb.Set(ctx, it.key, writeClaimString(it.fp, crashed, idx), crashed.ttl-age).Err(); err != nil {
			t.Fatal(err)
		}
		return it
	}

	t.Run("stale claim, single POST", func(t *testing.T) {
		hold("tk-1", 0, 2*time.Second)
		r := postTx(t, base, txWith(map[string]any{"transaction_id": "tk-1"}))
		wantStatus(t, r, http.StatusAccepted)
		if r.header.Get(ReplayedHeader) != "" {
			t.Error("a takeover was marked as a replay")
		}
		claim := claimOf(t, rdb, "idem:tester:tk-1")
		if claim.Token == crashed.tok {
			t.Fatal("the stale claim is still there")
		}
		waitAnswers(t, rdb, "idemanswers:tester:"+claim.Token)
		again := postTx(t, base, txWith(map[string]any{"transaction_id": "tk-1"}))
		if again.header.Get(ReplayedHeader) != "true" || !bytes.Equal(again.body, r.body) {
			t.Errorf("retry after the takeover: %d %s, want the replay of %s", again.status, again.body, r.body)
		}
	})
	t.Run("stale claim, batch", func(t *testing.T) {
		hold("tk-2", 4, 2*time.Second)
		br := postBatch(t, base, txWith(map[string]any{"transaction_id": "tk-2"}), txWith(map[string]any{"transaction_id": "tk-3"}))
		for i, r := range br.Results {
			if r.Status != http.StatusAccepted || r.Replayed {
				t.Errorf("item %d: %+v", i, r)
			}
		}
		if claim := claimOf(t, rdb, "idem:tester:tk-2"); claim.Token == crashed.tok || claim.Index != 0 {
			t.Errorf("claim after the takeover %+v", claim)
		}
	})
	t.Run("answers without this item", func(t *testing.T) {
		// The claimant finished, its line for the item is empty (its
		// produce failed) and its release failed: no need to wait.
		hold("tk-4", 1, 0)
		if err := rdb.Set(ctx, "idemanswers:tester:"+crashed.tok, `{"transaction_id":"x","partition":0,"offset":1}`+"\n", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		r := postTx(t, base, txWith(map[string]any{"transaction_id": "tk-4"}))
		wantStatus(t, r, http.StatusAccepted)
		if r.header.Get(ReplayedHeader) != "" {
			t.Error("replayed another item's answer")
		}
		rdb.Del(ctx, "idemanswers:tester:"+crashed.tok)
	})
	t.Run("fresh claim is in progress, then replayed", func(t *testing.T) {
		hold("tk-5", 2, 0)
		r := postTx(t, base, txWith(map[string]any{"transaction_id": "tk-5"}))
		wantStatus(t, r, http.StatusConflict)
		if p := decodeProblem(t, r); p.Type != problemTypeBase+"idempotency-in-progress" || r.header.Get("Retry-After") == "" {
			t.Errorf("problem %+v, Retry-After %q", p, r.header.Get("Retry-After"))
		}
		br := postBatch(t, base, txWith(map[string]any{"transaction_id": "tk-5"}))
		if br.Results[0].Status != http.StatusConflict || br.Results[0].Problem.Type != problemTypeBase+"idempotency-in-progress" {
			t.Errorf("batch item %+v", br.Results[0])
		}
		// The claimant's answers land: line 2 is the item's.
		body := `{"transaction_id":"tk-5","partition":1,"offset":77}`
		if err := rdb.Set(ctx, "idemanswers:tester:"+crashed.tok, "a\n\n"+body, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		r = postTx(t, base, txWith(map[string]any{"transaction_id": "tk-5"}))
		wantStatus(t, r, http.StatusAccepted)
		if r.header.Get(ReplayedHeader) != "true" || string(r.body) != body+"\n" {
			t.Errorf("replay: header %q body %s, want %s", r.header.Get(ReplayedHeader), r.body, body)
		}
		br = postBatch(t, base, txWith(map[string]any{"transaction_id": "tk-5"}))
		if g := br.Results[0]; !g.Replayed || *g.Partition != 1 || *g.Offset != 77 {
			t.Errorf("batch replay %+v", g)
		}
	})
	counts := readTopic(t, c.ListenAddrs())
	want := map[string]int{"tk-1": 1, "tk-2": 1, "tk-3": 1, "tk-4": 1, "tk-5": 0}
	for id, n := range want {
		if counts[id] != n {
			t.Errorf("%s stored %d times, want %d", id, counts[id], n)
		}
	}
}

// TestIdempotencyOldRecords: the previous version's records are read during
// a rolling upgrade: done records replay, pending ones are in progress, and
// either with another fingerprint is a conflict.
func TestIdempotencyOldRecords(t *testing.T) {
	c := newCluster(t)
	cfg, rdb := realRedisConfig(t, c)
	cfg.ProduceTimeout = 300 * time.Millisecond
	_, base := startService(t, cfg)
	ctx := context.Background()
	set := func(key, v string) {
		t.Helper()
		if err := rdb.Set(ctx, key, v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	done := txItem(t, map[string]any{"transaction_id": "old-done"})
	body := `{"transaction_id":"old-done","partition":2,"offset":42}`
	set(done.key, oldDoneRecord(done.fp, body))
	pending := txItem(t, map[string]any{"transaction_id": "old-pending"})
	set(pending.key, oldPendingRecord(pending.fp, "an-old-instance"))

	r := postTx(t, base, txWith(map[string]any{"transaction_id": "old-done"}))
	wantStatus(t, r, http.StatusAccepted)
	if r.header.Get(ReplayedHeader) != "true" || string(r.body) != body+"\n" {
		t.Errorf("old done record: header %q body %s", r.header.Get(ReplayedHeader), r.body)
	}
	r = postTx(t, base, txWith(map[string]any{"transaction_id": "old-pending"}))
	wantStatus(t, r, http.StatusConflict)
	if p := decodeProblem(t, r); p.Type != problemTypeBase+"idempotency-in-progress" {
		t.Errorf("old pending record: %+v", p)
	}
	br := postBatch(t, base,
		txWith(map[string]any{"transaction_id": "old-done"}),
		txWith(map[string]any{"transaction_id": "old-pending"}),
		txWith(map[string]any{"transaction_id": "old-done", "amount_minor": 5}))
	if g := br.Results[0]; g.Status != http.StatusAccepted || !g.Replayed || *g.Partition != 2 || *g.Offset != 42 {
		t.Errorf("batch, old done: %+v", g)
	}
	if g := br.Results[1]; g.Status != http.StatusConflict || g.Problem.Type != problemTypeBase+"idempotency-in-progress" {
		t.Errorf("batch, old pending: %+v", g)
	}
	if g := br.Results[2]; g.Status != http.StatusConflict || g.Problem.Type != problemTypeBase+"transaction-id-reused" {
		t.Errorf("batch, old done with another body: %+v", g)
	}
	// The batch registered old-pending's transaction_id with the contents
	// of the old claim, so another body is refused as a reused id.
	r = postTx(t, base, txWith(map[string]any{"transaction_id": "old-pending", "amount_minor": 5}))
	if p := decodeProblem(t, r); r.status != http.StatusConflict || p.Type != problemTypeBase+"transaction-id-reused" {
		t.Errorf("old pending with another body: %d %+v", r.status, p)
	}
	// The old claim expires (its short TTL): the next retry produces.
	rdb.Del(ctx, pending.key)
	wantStatus(t, postTx(t, base, txWith(map[string]any{"transaction_id": "old-pending"})), http.StatusAccepted)
	if counts := readTopic(t, c.ListenAddrs()); counts["old-done"] != 0 || counts["old-pending"] != 1 {
		t.Errorf("records by transaction_id: %v", counts)
	}
}

// TestTakeoverScript: a stale claim is replaced only while it is the one
// read and, when asked, while its claimant's answers key does not exist
// (answers that landed after they were read).
func TestTakeoverScript(t *testing.T) {
	s, rdb := adminService(t)
	ctx := context.Background()
	for _, c := range []struct {
		name           string
		stored         string
		answers        bool // the claimant's answers exist
		checkAnswers   bool
		want           int64
		wantAfterwards string
	}{
		{"unchanged", "old", false, true, 1, "new"},
		{"changed meanwhile", "other", false, true, 0, "other"},
		{"answers landed meanwhile", "old", true, true, 0, "old"},
		{"answers without the item", "old", true, false, 1, "new"},
	} {
		t.Run(c.name, func(t *testing.T) {
			key, answers := "idem:to:"+c.name, "idemanswers:to:"+c.name
			rdb.Set(ctx, key, c.stored, time.Minute)
			if c.answers {
				rdb.Set(ctx, answers, "x", time.Minute)
			}
			keys := []string{key}
			if c.checkAnswers {
				keys = append(keys, answers)
			}
			n, err := takeoverScript.Run(ctx, s.rdb, keys, "old", "new", time.Hour.Milliseconds()).Int64()
			if err != nil || n != c.want {
				t.Fatalf("takeover %d (%v), want %d", n, err, c.want)
			}
			if v := rdb.Get(ctx, key).Val(); v != c.wantAfterwards {
				t.Errorf("key holds %q, want %q", v, c.wantAfterwards)
			}
			if ttl := rdb.PTTL(ctx, key).Val(); n == 1 && ttl < time.Hour-time.Minute {
				t.Errorf("TTL after the takeover %v", ttl)
			}
		})
	}
}
