package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/fraudstream/fraudstream/tools/testenv"
)

// adminService is an admission on a real Redis, without API keys.
func adminService(t *testing.T) (*admission, *redis.Client) {
	t.Helper()
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	cfg := DefaultConfig()
	return newAdmission(cfg, nil, rdb, testLogger(t), newMetrics(prometheus.NewRegistry())), rdb
}

// TestAdmitMatchesRedisRate runs the same costs through redis_rate's AllowN
// and through admitScript (on two keys of their own) and wants the same
// answers: the script is the library's GCRA with claims added.
func TestAdmitMatchesRedisRate(t *testing.T) {
	s, rdb := adminService(t)
	ctx := context.Background()
	lim := redis_rate.NewLimiter(rdb)
	for _, l := range []struct{ rate, burst int }{{1, 5}, {10, 3}, {50, 20}} {
		t.Run(fmt.Sprintf("rate %d burst %d", l.rate, l.burst), func(t *testing.T) {
			id := fmt.Sprintf("cmp-%d-%d", l.rate, l.burst)
			k := &apiKey{id: id, rate: l.rate, burst: l.burst}
			limit := redis_rate.Limit{Rate: l.rate, Burst: l.burst, Period: time.Second}
			for i, cost := range []int{1, 2, 1, 3, 1, 1, 5, 1, 1, l.burst, 1} {
				want, err := lim.AllowN(ctx, "lib:"+id, limit, cost)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.admit(ctx, k, cost, nil, claimer{})
				if err != nil {
					t.Fatal(err)
				}
				// The calls are microseconds apart: equal decisions, and
				// times within a few milliseconds.
				if got.allowed != (want.Allowed == cost) || abs(got.remaining-want.Remaining) > 1 ||
					absDur(got.retryAfter-want.RetryAfter) > 20*time.Millisecond ||
					absDur(got.resetAfter-want.ResetAfter) > 20*time.Millisecond {
					t.Errorf("call %d cost %d: admit %+v, redis_rate %+v", i, cost, got, *want)
				}
			}
		})
	}
	if n, err := rdb.Exists(ctx, rateKey("cmp-1-5")).Result(); err != nil || n != 1 {
		t.Errorf("GCRA state not under %s: exists=%d err=%v", rateKey("cmp-1-5"), n, err)
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// TestAdmitClaims covers what the one script call decides for each key.
func TestAdmitClaims(t *testing.T) {
	s, rdb := adminService(t)
	ctx := context.Background()
	k := &apiKey{id: "claims", rate: 1, burst: 3}
	item := func(id, body string) *idemItem { return newIdemItem(k.id, id, id, []byte(body)) }
	set := func(it *idemItem, v string) {
		t.Helper()
		if err := rdb.Set(ctx, it.key, v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// The previous version's records, and a claim of this one.
	fresh := item("fresh", "a")
	replay := item("replay", "b")
	set(replay, oldDoneRecord(replay.fp, `{"transaction_id":"replay","partition":1,"offset":7}`))
	conflict := item("conflict", "c")
	set(conflict, oldDoneRecord(item("conflict", "other body").fp, `{}`))
	pending := item("pending", "d")
	set(pending, oldPendingRecord(pending.fp, "someone-else"))
	held := item("held", "e")
	other := claimer{keyID: k.id, tok: "someone-else", ttl: time.Minute, pend: time.Minute, regTTL: time.Hour}
	set(held, writeClaimString(held.fp, other, 3))

	c := claimer{keyID: k.id, tok: "mytoken", ttl: s.cfg.IdempotencyTTL, pend: s.pendingTTL(), regTTL: s.cfg.TransactionIDTTL}
	a, err := s.admit(ctx, k, 1, []*idemItem{fresh, replay, conflict, pending, held}, c)
	if err != nil {
		t.Fatal(err)
	}
	if !a.allowed || a.remaining != 2 {
		t.Fatalf("admission %+v, want allowed with 2 remaining", a)
	}
	for _, c := range []struct {
		it   *idemItem
		want idemOutcome
	}{{fresh, idemOwned}, {replay, idemReplay}, {conflict, idemConflict}, {pending, idemInProgress}, {held, idemHeld}} {
		if c.it.outcome != c.want {
			t.Errorf("%s: outcome %d, want %d", c.it.key, c.it.outcome, c.want)
		}
	}
	if string(replay.replay.Body) != `{"transaction_id":"replay","partition":1,"offset":7}` || replay.replay.Status != 202 {
		t.Errorf("replayed record %+v", replay.replay)
	}
	if held.held.Token != "someone-else" || held.held.Index != 3 || held.heldTTL <= 0 || held.heldTTL > time.Minute.Milliseconds() {
		t.Errorf("held claim read as %+v, PTTL %d", held.held, held.heldTTL)
	}
	// The claim is the documented record, with the long TTL.
	v, err := rdb.Get(ctx, fresh.key).Result()
	if err != nil || v != writeClaimString(fresh.fp, c, 0) || fresh.pending != v {
		t.Errorf("claimed key holds %q (%v), item pending %q", v, err, fresh.pending)
	}
	var rec idemRecord
	if err := json.Unmarshal([]byte(v), &rec); err != nil || rec.State != "" || rec.FP != fresh.fp || rec.Token != "mytoken" ||
		rec.Index != 0 || rec.TTL != c.ttl.Milliseconds() || rec.Pend != c.pend.Milliseconds() {
		t.Errorf("claim %q does not decode as one: %+v %v", v, rec, err)
	}
	if ttl := rdb.PTTL(ctx, fresh.key).Val(); ttl <= s.cfg.IdempotencyTTL-time.Minute || ttl > s.cfg.IdempotencyTTL {
		t.Errorf("claim TTL %v, want about %v", ttl, s.cfg.IdempotencyTTL)
	}

	t.Run("a refused request claims nothing", func(t *testing.T) {
		late := item("late", "e")
		a, err := s.admit(ctx, k, 3, []*idemItem{late}, c)
		if err != nil {
			t.Fatal(err)
		}
		if a.allowed || a.retryAfter <= 0 || a.retryAfter > 2*time.Second {
			t.Fatalf("admission %+v, want refused with a retry within 2s", a)
		}
		if n := rdb.Exists(ctx, late.key).Val(); n != 0 {
			t.Error("a rate-limited request claimed its key")
		}
		if late.outcome != idemOwned || late.pending != "" {
			t.Errorf("refused item touched: %+v", late)
		}
	})
}

// TestAdmitShared: concurrent admissions coalesced into pipelines each get
// their own answer, and after the admitter stops they are made directly.
func TestAdmitShared(t *testing.T) {
	s, rdb := adminService(t)
	ctx := context.Background()
	stop := make(chan struct{})
	go s.runAdmitter(stop)
	k := &apiKey{id: "shared", rate: 1, burst: 25}
	const n = 60
	items := make([]*idemItem, n)
	results := make([]rateResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		items[i] = newIdemItem(k.id, fmt.Sprintf("sh-%d", i), fmt.Sprintf("sh-%d", i), []byte{byte(i)})
		wg.Go(func() {
			results[i], errs[i] = s.admitShared(ctx, k, 1, []*idemItem{items[i]}, claimer{keyID: k.id, tok: fmt.Sprintf("tok-%d", i), ttl: time.Minute, pend: time.Second, regTTL: time.Hour})
		})
	}
	wg.Wait()
	allowed := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		claimed := rdb.Get(ctx, items[i].key).Val() == items[i].claim
		if results[i].allowed {
			allowed++
		}
		if claimed != results[i].allowed || (claimed && items[i].outcome != idemOwned) {
			t.Errorf("call %d: allowed %v, claimed %v, outcome %d", i, results[i].allowed, claimed, items[i].outcome)
		}
	}
	if allowed != k.burst {
		t.Errorf("%d of %d allowed, want the burst of %d", allowed, n, k.burst)
	}
	close(stop)
	<-s.admitterStopped
	it := newIdemItem(k.id, "after-stop", "after-stop", []byte("x"))
	if _, err := s.admitShared(ctx, &apiKey{id: "other", rate: 1, burst: 1}, 1, []*idemItem{it}, claimer{tok: "t", ttl: time.Minute, regTTL: time.Hour}); err != nil || it.outcome != idemOwned {
		t.Errorf("after stop: outcome %d, err %v", it.outcome, err)
	}
}

// TestRecorder: queued answers are written with the idempotency TTL, and
// those still queued when the recorder stops are written before it
// returns; after that, remember writes at once.
func TestRecorder(t *testing.T) {
	s, rdb := adminService(t)
	ctx := context.Background()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); s.runRecorder(stop) }()

	n := recordChunk + 10 // more than one script call
	ws := make([]idemWrite, n)
	for i := range ws {
		ws[i] = idemWrite{key: fmt.Sprintf("idem:rec:%d", i), val: fmt.Sprintf(`{"state":"done","n":%d}`, i)}
	}
	s.remember(ws[:n/2])
	s.remember(ws[n/2:])
	close(stop)
	<-done
	late := idemWrite{key: "idem:rec:late", val: `{"state":"done"}`}
	s.remember([]idemWrite{late})
	for _, w := range append(ws, late) {
		v, err := rdb.Get(ctx, w.key).Result()
		if err != nil || v != w.val {
			t.Fatalf("%s = %q (%v), want %s", w.key, v, err, w.val)
		}
	}
	if ttl := rdb.PTTL(ctx, ws[0].key).Val(); ttl < s.cfg.IdempotencyTTL-time.Minute || ttl > s.cfg.IdempotencyTTL {
		t.Errorf("record TTL %v, want %v", ttl, s.cfg.IdempotencyTTL)
	}
}

// TestRateLimitedClaimsNothing: through HTTP, a 429 leaves no claim behind,
// so the same transaction is accepted once the budget is back.
func TestRateLimitedClaimsNothing(t *testing.T) {
	c := newCluster(t)
	cfg, rdb := realRedisConfig(t, c)
	cfg.APIKeys = append(cfg.APIKeys, HashKey("slow", "slow-key")+";rate=1;burst=1")
	_, base := startService(t, cfg)
	url := base + "/v1/transactions"
	wantStatus(t, postWith(t, url, "slow-key", nil, txWith(map[string]any{"transaction_id": "nc-1"})), http.StatusAccepted)
	r := postWith(t, url, "slow-key", nil, txWith(map[string]any{"transaction_id": "nc-2"}))
	wantStatus(t, r, http.StatusTooManyRequests)
	if n := rdb.Exists(context.Background(), "idem:slow:nc-2").Val(); n != 0 {
		t.Fatal("the 429 claimed its idempotency key")
	}
	time.Sleep(1100 * time.Millisecond)
	r = postWith(t, url, "slow-key", nil, txWith(map[string]any{"transaction_id": "nc-2"}))
	wantStatus(t, r, http.StatusAccepted)
	if r.header.Get(ReplayedHeader) != "" {
		t.Error("accepted after a 429 but marked as a replay")
	}
}

// TestAdmitOwnClaim: a script that ran twice (a retried call) finds its own
// claim; the request owns it rather than waiting for itself.
func TestAdmitOwnClaim(t *testing.T) {
	it := newIdemItem("k", "own", "own", []byte("x"))
	other := newIdemItem("k", "other", "other", []byte("y"))
	c := claimer{keyID: "k", tok: "tok", ttl: time.Minute, pend: time.Second}
	v := []any{int64(1), int64(0), "-1", "0.5",
		[]any{writeClaimString(it.fp, c, 0), int64(59_000)},
		[]any{writeClaimString(other.fp, claimer{keyID: "k", tok: "someone-else", ttl: time.Minute, pend: time.Second}, 0), int64(59_000)}}
	if _, err := resolveAdmission(v, nil, []*idemItem{it, other}, c); err != nil {
		t.Fatal(err)
	}
	if it.outcome != idemOwned || it.pending != writeClaimString(it.fp, c, 0) {
		t.Errorf("own claim: outcome %d pending %q", it.outcome, it.pending)
	}
	if other.outcome != idemHeld {
		t.Errorf("another's claim: outcome %d, want held (to be settled)", other.outcome)
	}
}

// TestSetCommandsMatchGoRedis: the commands setCommands builds are, argument
// for argument, those of go-redis's Set and SetNX for the same TTL, whole
// seconds (EX) or not (PX).
func TestSetCommandsMatchGoRedis(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	ctx := context.Background()
	deref := func(args []any) []any {
		out := make([]any, len(args))
		for i, a := range args {
			if p, ok := a.(*string); ok {
				a = *p
			}
			out[i] = a
		}
		return out
	}
	for _, ttl := range []time.Duration{24 * time.Hour, 7 * time.Second, 7500 * time.Millisecond, 300 * time.Millisecond, 0} {
		for _, nx := range []bool{false, true} {
			cmds := newSetCommands(rdb, ttl, nx, 2)
			for i := range 2 {
				key, val := fmt.Sprintf("idem:k:%d", i), fmt.Sprintf(`{"n":%d}`, i)
				got := deref(cmds.next(&key, &val))
				var want []any
				if nx {
					want = rdb.Pipeline().SetNX(ctx, key, val, ttl).Args()
				} else {
					want = rdb.Pipeline().Set(ctx, key, val, ttl).Args()
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("ttl %v nx %v: %v, go-redis %v", ttl, nx, got, want)
				}
			}
		}
	}
}

// TestClaimTTL: a batch's claims (pipelined SET NX) live IdempotencyTTL,
// as the single POST's claim in admitScript does, and carry their index and
// the batch's longer pend.
func TestClaimTTL(t *testing.T) {
	s, rdb := adminService(t)
	ctx := context.Background()
	items := []*idemItem{newIdemItem("ttl", "a", "a", []byte("a")), newIdemItem("ttl", "b", "b", []byte("b"))}
	items[1].idx = 5
	c := s.newClaimer("ttl", len(items))
	if c.pend != s.pendingTTL()+s.cfg.ProduceTimeout || c.ttl != s.cfg.IdempotencyTTL {
		t.Errorf("batch claimer %+v", c)
	}
	if _, err := s.claim(ctx, items, c); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.outcome != idemOwned || rdb.Get(ctx, it.key).Val() != writeClaimString(it.fp, c, it.idx) {
			t.Fatalf("%s: outcome %v, value %q", it.key, it.outcome, rdb.Get(ctx, it.key).Val())
		}
		if ttl := rdb.PTTL(ctx, it.key).Val(); ttl <= s.cfg.IdempotencyTTL-time.Minute || ttl > s.cfg.IdempotencyTTL {
			t.Errorf("claim TTL %v, want about %v", ttl, s.cfg.IdempotencyTTL)
		}
	}
}
