package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/testenv"
)

// The tests in this file run against a real Redis (testenv.Redis), since
// they are about what Redis does: SET NX races, TTLs, the GCRA script.

func realRedisConfig(t *testing.T, c *kfake.Cluster) (Config, *redis.Client) {
	t.Helper()
	cfg := testConfig(t, c)
	cfg.RedisURL = testenv.Redis(t)
	return cfg, redisClient(t, cfg.RedisURL)
}

// redisClient is a client of the Redis at url, closed when tb ends.
func redisClient(tb testing.TB, url string) *redis.Client {
	tb.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

func postWith(t testing.TB, url, key string, header map[string]string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return response{resp.StatusCode, resp.Header, b.Bytes()}
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
}

func TestIdempotency(t *testing.T) {
	c := newCluster(t)
	cfg, rdb := realRedisConfig(t, c)
	_, base := startService(t, cfg)
	url := base + "/v1/transactions"
	ctx := context.Background()

	first := postTx(t, base, txWith(map[string]any{"transaction_id": "idem-1"}))
	wantStatus(t, first, http.StatusAccepted)
	if first.header.Get(ReplayedHeader) != "" {
		t.Errorf("first answer marked as replay")
	}

	t.Run("retry replays the first answer", func(t *testing.T) {
		// Same transaction, other field order and whitespace: the
		// fingerprint is over the canonical form.
		var m map[string]any
		_ = json.Unmarshal(txWith(map[string]any{"transaction_id": "idem-1"}), &m)
		pretty, _ := json.MarshalIndent(m, "", "   ")
		r := postTx(t, base, pretty)
		wantStatus(t, r, http.StatusAccepted)
		if r.header.Get(ReplayedHeader) != "true" || !bytes.Equal(r.body, first.body) {
			t.Errorf("replay: header %q body %s, want %s", r.header.Get(ReplayedHeader), r.body, first.body)
		}
	})
	t.Run("same transaction_id, other body is 409", func(t *testing.T) {
		r := postTx(t, base, txWith(map[string]any{"transaction_id": "idem-1", "amount_minor": 5}))
		wantStatus(t, r, http.StatusConflict)
		if p := decodeProblem(t, r); p.Type != problemTypeBase+"transaction-id-reused" {
			t.Errorf("type %q", p.Type)
		}
	})
	t.Run("explicit Idempotency-Key", func(t *testing.T) {
		h := map[string]string{"Idempotency-Key": "order-77/attempt"}
		a := postWith(t, url, testKey, h, txWith(map[string]any{"transaction_id": "idem-2"}))
		wantStatus(t, a, http.StatusAccepted)
		b := postWith(t, url, testKey, h, txWith(map[string]any{"transaction_id": "idem-2"}))
		wantStatus(t, b, http.StatusAccepted)
		if b.header.Get(ReplayedHeader) != "true" || !bytes.Equal(a.body, b.body) {
			t.Errorf("replay %s vs %s", b.body, a.body)
		}
		// The key, not the transaction_id, identifies the request.
		r := postWith(t, url, testKey, h, txWith(map[string]any{"transaction_id": "idem-3"}))
		wantStatus(t, r, http.StatusConflict)
		ttl, err := rdb.TTL(ctx, "idem:tester:order-77/attempt").Result()
		if err != nil || ttl < cfg.IdempotencyTTL-time.Minute || ttl > cfg.IdempotencyTTL {
			t.Errorf("record TTL %v (%v), want about %v", ttl, err, cfg.IdempotencyTTL)
		}
	})
	t.Run("bad Idempotency-Key is 400", func(t *testing.T) {
		for _, k := range []string{strings.Repeat("k", 256), "has space", "ключ"} {
			r := postWith(t, url, testKey, map[string]string{"Idempotency-Key": k}, txWith(nil))
			wantStatus(t, r, http.StatusBadRequest)
			if p := decodeProblem(t, r); p.Type != problemTypeBase+"invalid-header" {
				t.Errorf("type %q", p.Type)
			}
		}
	})
	t.Run("keys are scoped per API key", func(t *testing.T) {
		r := postWith(t, url, "some-other-key", nil, txWith(map[string]any{"transaction_id": "idem-1"}))
		wantStatus(t, r, http.StatusAccepted)
		if r.header.Get(ReplayedHeader) != "" {
			t.Error("another API key got tester's answer")
		}
	})
	t.Run("stored record format", func(t *testing.T) {
		v, err := rdb.Get(ctx, "idem:tester:idem-1").Result()
		if err != nil {
			t.Fatal(err)
		}
		var rec idemRecord
		if err := json.Unmarshal([]byte(v), &rec); err != nil || rec.State != "" || len(rec.FP) != 64 ||
			len(rec.Token) != 16 || rec.Index != 0 || rec.TTL != cfg.IdempotencyTTL.Milliseconds() ||
			rec.Pend != (cfg.ProduceTimeout+2*time.Second).Milliseconds() {
			t.Fatalf("claim %s (%v)", v, err)
		}
		answers := waitAnswers(t, rdb, "idemanswers:tester:"+rec.Token)
		if !bytes.Equal([]byte(answers+"\n"), first.body) {
			t.Errorf("answers %q, first answer %s", answers, first.body)
		}
	})

	counts := readTopic(t, c.ListenAddrs())
	if counts["idem-1"] != 2 || counts["idem-2"] != 1 || counts["idem-3"] != 0 {
		// idem-1 twice: once for tester, once for the other key.
		t.Errorf("records by transaction_id: %v", counts)
	}
}

// TestIdempotencyConcurrent: duplicates in flight at once while the broker
// is slow produce one record; every duplicate waits and replays it.
func TestIdempotencyConcurrent(t *testing.T) {
	c := newCluster(t)
	cfg, _ := realRedisConfig(t, c)
	_, base := startService(t, cfg)
	wantStatus(t, postTx(t, base, txWith(map[string]any{"transaction_id": "warm"})), http.StatusAccepted)

	var slept sync.Once
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		slept.Do(func() { c.SleepControl(func() { time.Sleep(300 * time.Millisecond) }) })
		return nil, nil, false
	})
	const n = 12
	body := txWith(map[string]any{"transaction_id": "race-1"})
	results := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = postTx(t, base, body) })
	}
	wg.Wait()
	fresh := 0
	for i, r := range results {
		wantStatus(t, r, http.StatusAccepted)
		if r.header.Get(ReplayedHeader) == "" {
			fresh++
		}
		if !bytes.Equal(r.body, results[0].body) {
			t.Errorf("answer %d %s differs from %s", i, r.body, results[0].body)
		}
	}
	if fresh != 1 {
		t.Errorf("%d answers not marked as replays, want 1", fresh)
	}
	if counts := readTopic(t, c.ListenAddrs()); counts["race-1"] != 1 {
		t.Errorf("race-1 stored %d times", counts["race-1"])
	}
}

// TestIdempotencyInProgress: a claim whose owner does not finish within the
// wait bound answers 409 in progress with Retry-After.
func TestIdempotencyInProgress(t *testing.T) {
	c := newCluster(t)
	cfg, rdb := realRedisConfig(t, c)
	cfg.ProduceTimeout = 300 * time.Millisecond
	_, base := startService(t, cfg)
	body := txWith(map[string]any{"transaction_id": "stuck-1"})
	tx, _ := event.DecodeTransaction(body)
	canonical, _ := tx.Encode()
	it := newIdemItem("tester", "stuck-1", "stuck-1", canonical)
	v := oldPendingRecord(it.fp, "another-replica")
	if err := rdb.Set(context.Background(), it.key, v, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := postTx(t, base, body)
	wantStatus(t, r, http.StatusConflict)
	if p := decodeProblem(t, r); p.Type != problemTypeBase+"idempotency-in-progress" {
		t.Errorf("type %q", p.Type)
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if took := time.Since(start); took < cfg.ProduceTimeout/2 || took > cfg.ProduceTimeout+time.Second {
		t.Errorf("answered after %v; the wait bound is %v", took, cfg.ProduceTimeout)
	}
	// The owner gives up (its claim is deleted): the next retry produces.
	rdb.Del(context.Background(), it.key)
	wantStatus(t, postTx(t, base, body), http.StatusAccepted)
}

// TestIdempotencyReleasedOnFailure: a produce that fails (503) frees the
// key, so the client's retry is produced rather than refused or replayed.
func TestIdempotencyReleasedOnFailure(t *testing.T) {
	rdb, base, release := failingProduce(t)
	body := txWith(map[string]any{"transaction_id": "fail-1"})
	checkUnavailable(t, postTx(t, base, body))
	if n, err := rdb.Exists(context.Background(), "idem:tester:fail-1").Result(); err != nil || n != 0 {
		t.Fatalf("key still held after a 503: exists=%d err=%v", n, err)
	}
	release()
	r := postTx(t, base, body)
	wantStatus(t, r, http.StatusAccepted)
	if r.header.Get(ReplayedHeader) != "" {
		t.Error("a retry after 503 was replayed")
	}
}

func TestIdempotencyBatch(t *testing.T) {
	c := newCluster(t)
	cfg, _ := realRedisConfig(t, c)
	_, base := startService(t, cfg)
	url := base + "/v1/transactions/batch"
	batch := func(lines ...string) BatchResponse {
		t.Helper()
		r := post(t, url, "application/x-ndjson", "Bearer "+testKey, []byte(strings.Join(lines, "\n")))
		wantStatus(t, r, http.StatusMultiStatus)
		var br BatchResponse
		if err := json.Unmarshal(r.body, &br); err != nil {
			t.Fatal(err)
		}
		return br
	}
	item := func(id string, amount int) string {
		return string(txWith(map[string]any{"transaction_id": id, "amount_minor": amount}))
	}
	single := postTx(t, base, txWith(map[string]any{"transaction_id": "b-0", "amount_minor": 10}))
	wantStatus(t, single, http.StatusAccepted)

	first := batch(item("b-1", 10), item("b-2", 10))
	if first.Accepted != 2 {
		t.Fatalf("first batch %+v", first)
	}
	// A retry with one more item: the old ones replay, the new one is
	// produced; a repeat inside the batch replays its first occurrence;
	// a changed item is a 409; an item sent before alone replays too.
	second := batch(item("b-1", 10), item("b-2", 10), item("b-3", 10), item("b-3", 10), item("b-2", 99), item("b-0", 10))
	type want struct {
		status   int
		replayed bool
	}
	for i, w := range []want{{202, true}, {202, true}, {202, false}, {202, true}, {409, false}, {202, true}} {
		got := second.Results[i]
		if got.Status != w.status || got.Replayed != w.replayed {
			t.Errorf("item %d: status %d replayed %v, want %d %v (%+v)", i, got.Status, got.Replayed, w.status, w.replayed, got.Problem)
		}
	}
	for i := range 2 {
		if *second.Results[i].Offset != *first.Results[i].Offset || *second.Results[i].Partition != *first.Results[i].Partition {
			t.Errorf("item %d replayed a different position", i)
		}
	}
	if *second.Results[3].Offset != *second.Results[2].Offset {
		t.Errorf("in-batch repeat got offset %d, first %d", *second.Results[3].Offset, *second.Results[2].Offset)
	}
	var a Accepted
	_ = json.Unmarshal(single.body, &a)
	if *second.Results[5].Offset != a.Offset {
		t.Errorf("b-0 replayed offset %d, single answer said %d", *second.Results[5].Offset, a.Offset)
	}
	counts := readTopic(t, c.ListenAddrs())
	for _, id := range []string{"b-0", "b-1", "b-2", "b-3"} {
		if counts[id] != 1 {
			t.Errorf("%s stored %d times", id, counts[id])
		}
	}
}

// TestRedisDown: failing closed answers 503 quickly; failing open accepts
// and counts the failure. Profiles always need Redis.
func TestRedisDown(t *testing.T) {
	c := newCluster(t)
	for _, failOpen := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail open %v", failOpen), func(t *testing.T) {
			cfg := testConfig(t, c)
			m := newMiniredis(t)
			cfg.RedisURL = "redis://" + m.Addr()
			cfg.RedisFailOpen = failOpen
			cfg.RedisTimeout = 200 * time.Millisecond
			_, base := startService(t, cfg)
			m.Close()
			id := fmt.Sprintf("down-%v", failOpen)
			start := time.Now()
			r := postTx(t, base, txWith(map[string]any{"transaction_id": id}))
			// A few Redis calls of at most RedisTimeout each: well under a
			// second when idle; the bound leaves room for a loaded machine
			// while still catching a wait for the produce or request timeout.
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("answered after %v", took)
			}
			batch := post(t, base+"/v1/transactions/batch", "application/x-ndjson", "Bearer "+testKey,
				txWith(map[string]any{"transaction_id": id + "-b"}))
			if failOpen {
				wantStatus(t, r, http.StatusAccepted)
				wantStatus(t, batch, http.StatusMultiStatus)
				if !bytes.Contains(batch.body, []byte(`"accepted":1`)) {
					t.Errorf("batch %s", batch.body)
				}
			} else {
				wantStatus(t, r, http.StatusServiceUnavailable)
				if p := decodeProblem(t, r); p.Type != problemTypeBase+"redis-unavailable" || r.header.Get("Retry-After") == "" {
					t.Errorf("problem %+v Retry-After %q", p, r.header.Get("Retry-After"))
				}
				if batch.status != http.StatusServiceUnavailable && batch.status != http.StatusMultiStatus {
					t.Errorf("batch status %d", batch.status)
				}
			}
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/cards/card-1/profile", nil)
			req.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("profile without Redis: %d", resp.StatusCode)
			}
			_, metrics := get(t, base+"/metrics")
			outcome := map[bool]string{false: "failed_closed", true: "failed_open"}[failOpen]
			// admit: a POST's rate limit and claim; rate_limit: the profile route.
			for _, op := range []string{"admit", "rate_limit"} {
				if !strings.Contains(metrics, `fraudstream_ingest_redis_errors_total{op="`+op+`",outcome="`+outcome+`"}`) {
					t.Errorf("metrics lack the %s %s failure", outcome, op)
				}
			}
			if code, _ := get(t, base+"/readyz"); (code == 200) != failOpen {
				t.Errorf("/readyz %d with Redis down, fail open %v", code, failOpen)
			}
		})
	}
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestRateLimit(t *testing.T) {
	c := newCluster(t)
	cfg, _ := realRedisConfig(t, c)
	cfg.APIKeys = append(cfg.APIKeys, HashKey("slow", "slow-key")+";rate=1;burst=3", HashKey("reader", "reader-key")+";scopes=profiles:read")
	_, base := startService(t, cfg)
	url := base + "/v1/transactions"

	for i := range 3 {
		r := postWith(t, url, "slow-key", nil, txWith(map[string]any{"transaction_id": fmt.Sprintf("rl-%d", i)}))
		wantStatus(t, r, http.StatusAccepted)
		if got := r.header.Get("RateLimit-Remaining"); got != strconv.Itoa(2-i) || r.header.Get("RateLimit-Limit") != "3" {
			t.Errorf("request %d: RateLimit-Limit %q Remaining %q", i, r.header.Get("RateLimit-Limit"), got)
		}
	}
	r := postWith(t, url, "slow-key", nil, txWith(map[string]any{"transaction_id": "rl-3"}))
	wantStatus(t, r, http.StatusTooManyRequests)
	if p := decodeProblem(t, r); p.Type != problemTypeBase+"rate-limited" {
		t.Errorf("type %q", p.Type)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if r.header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("RateLimit-Remaining %q", r.header.Get("RateLimit-Remaining"))
	}

	t.Run("other keys are not limited", func(t *testing.T) {
		wantStatus(t, postWith(t, url, testKey, nil, txWith(map[string]any{"transaction_id": "rl-other"})), http.StatusAccepted)
	})
	t.Run("batch larger than the burst is 413", func(t *testing.T) {
		lines := strings.Repeat(string(txWith(nil))+"\n", 4)
		r := post(t, base+"/v1/transactions/batch", "application/x-ndjson", "Bearer slow-key", []byte(lines))
		wantStatus(t, r, http.StatusRequestEntityTooLarge)
	})
	t.Run("batch is charged per item", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // one unit back
		one := post(t, base+"/v1/transactions/batch", "application/x-ndjson", "Bearer slow-key",
			[]byte(string(txWith(map[string]any{"transaction_id": "rl-b1"}))+"\n"+string(txWith(map[string]any{"transaction_id": "rl-b2"}))))
		wantStatus(t, one, http.StatusTooManyRequests)
	})
	t.Run("scopes: 403 outside, allowed inside", func(t *testing.T) {
		r := postWith(t, url, "reader-key", nil, txWith(map[string]any{"transaction_id": "rl-r"}))
		wantStatus(t, r, http.StatusForbidden)
		if p := decodeProblem(t, r); p.Type != problemTypeBase+"forbidden" || !strings.Contains(p.Detail, "transactions:write") {
			t.Errorf("problem %+v", p)
		}
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/cards/card-9/profile", nil)
		req.Header.Set("Authorization", "Bearer reader-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET profile with profiles:read: %d, want 404", resp.StatusCode)
		}
	})
	t.Run("401 without or with a wrong key", func(t *testing.T) {
		wantStatus(t, post(t, url, "application/json", "", txWith(nil)), http.StatusUnauthorized)
		wantStatus(t, postWith(t, url, "nope", nil, txWith(nil)), http.StatusUnauthorized)
	})
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{`fraudstream_ingest_rate_limited_total{key_id="slow"}`, `fraudstream_ingest_rejected_total{reason="forbidden"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestFastEncodings holds the hand-written encodings to json.Marshal.
func TestFastEncodings(t *testing.T) {
	tx, err := event.DecodeTransaction(txWith(nil))
	if err != nil {
		t.Fatal(err)
	}
	canonical, _ := tx.Encode()
	for _, now := range []time.Time{testNow, time.Date(2026, 7, 9, 1, 2, 3, 456789000, time.FixedZone("x", 3600)), time.Unix(0, 1).UTC()} {
		got, err := withIngestTime(canonical, now)
		if err != nil {
			t.Fatal(err)
		}
		tx.IngestTime = now.UTC()
		want, _ := tx.Encode()
		if !bytes.Equal(got, want) {
			t.Errorf("withIngestTime\n got %s\nwant %s", got, want)
		}
	}
	a := Accepted{TransactionID: "tx-1:a.b_c", Partition: 11, Offset: 1 << 40}
	if want, _ := json.Marshal(a); !bytes.Equal(a.appendJSON(nil), want) {
		t.Errorf("Accepted.appendJSON %s, want %s", a.appendJSON(nil), want)
	}
}

// failingProduce starts ingest on a real Redis with a 300 ms produce
// timeout and, after one accepted warm-up transaction, holds the broker's
// next produce until release (also called at cleanup), so the next POST
// gets a 503.
func failingProduce(t *testing.T) (rdb *redis.Client, base string, release func()) {
	t.Helper()
	c := newCluster(t)
	cfg, rdb := realRedisConfig(t, c)
	cfg.ProduceTimeout = 300 * time.Millisecond
	_, base = startService(t, cfg)
	wantStatus(t, postTx(t, base, txWith(map[string]any{"transaction_id": "warm"})), http.StatusAccepted)
	held := make(chan struct{})
	var once, slept sync.Once
	release = func() { once.Do(func() { close(held) }) }
	t.Cleanup(release)
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		slept.Do(func() { c.SleepControl(func() { <-held }) })
		return nil, nil, false
	})
	return rdb, base, release
}
