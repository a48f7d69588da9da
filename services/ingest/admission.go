package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// admission decides whether a request gets in, and keeps what it claimed
// until the request is answered. Every route passes, in order:
//
//	authenticate   the API key (Authorization: Bearer), before a body byte is read
//	requireScope   the key holds the route's scope: 403 otherwise, costing nothing
//
// then a route that writes transactions calls Admit (below), and any other
// route passes limitRequest (one unit of the rate limit). Redis formats,
// the claim protocol and its crash windows: docs/design/ingest-idempotency.md.
type admission struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	rdb     *redis.Client

	keys []apiKey // parsed once, by Config.validate
	// anonymous is the key of requests without one (AllowAnonymous).
	anonymous apiKey

	rec recorder
	// admits feeds runAdmitter, which closes admitterStopped when it ends.
	admits          chan *admitCall
	admitterStopped chan struct{}
}

func newAdmission(cfg Config, keys []apiKey, rdb *redis.Client, log *slog.Logger, m *metrics) *admission {
	return &admission{
		cfg:             cfg,
		log:             log,
		metrics:         m,
		rdb:             rdb,
		keys:            keys,
		anonymous:       apiKey{id: anonymousID, rate: cfg.RateLimit, burst: cfg.RateBurst, scopes: scopeAll},
		rec:             recorder{wake: make(chan struct{}, 1)},
		admits:          make(chan *admitCall),
		admitterStopped: make(chan struct{}),
	}
}

// start runs the admitter and the recorder until stop is called; stop
// returns once every admission in flight is answered and every answer
// queued is written.
func (ad *admission) start() (stop func()) {
	stopRecorder, recorderDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(recorderDone)
		ad.runRecorder(stopRecorder)
	}()
	stopAdmitter := make(chan struct{})
	go ad.runAdmitter(stopAdmitter)
	return func() {
		close(stopAdmitter)
		<-ad.admitterStopped
		close(stopRecorder)
		<-recorderDone
	}
}

// Admit is the entry point for every route that writes transactions (POST
// /v1/transactions, POST /v1/transactions/batch, and any new one, such as
// POST /v1/decisions): it charges cost units of the request's rate limit
// (one per transaction, valid or not) and, when allowed, claims items, one
// per valid transaction (newIdemItem), in one Redis round trip shared with
// concurrent requests. It sets the RateLimit headers and returns 413 when
// cost can never fit in the key's burst, 429 when the budget is exhausted
// (nothing is claimed then), and 503 when Redis fails and RedisFailOpen is
// off. Otherwise each item's outcome says what to do with it:
//
//	idemOwned       produce it
//	idemUnrecorded  produce it (Redis failed open: nothing is recorded)
//	idemReplay      answer it.replay, with ReplayedHeader
//	idemConflict, idemTxConflict, idemInProgress   answer 409
//
// The handler then calls ticket.release with the owned items whose produce
// failed, before it answers, and ticket.record with the 202 bodies, after.
func (ad *admission) Admit(w http.ResponseWriter, r *http.Request, cost int, items []*idemItem) (ticket, *Error) {
	t := ticket{ad: ad, c: ad.newClaimer(keyID(r.Context()), len(items)), items: items}
	return t, ad.admitItems(w, r, cost, items, t.c)
}

// A ticket is an admitted request's claims.
type ticket struct {
	ad    *admission
	c     claimer
	items []*idemItem
}

// release gives back the claims of failed, owned items whose produce
// failed, so a retry is produced again; synchronous, so the client's 503
// cannot overtake it.
func (t ticket) release(r *http.Request, failed []*idemItem) { t.ad.releaseItems(r, failed) }

// record queues the request's answers for the recorder: bodies[j] is the
// 202 body of t.items[j], nil where it got none. Call it after the response.
func (t ticket) record(bodies [][]byte) { t.ad.remember(answerWrites(t.c, t.items, bodies)) }

// releaseItems gives back the claims of owned items whose produce failed,
// detached from the request's cancellation: a client that hung up must not
// leave a pending claim behind.
func (ad *admission) releaseItems(r *http.Request, items []*idemItem) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), ad.cfg.RedisTimeout)
	defer cancel()
	ad.release(ctx, items)
}

// charge charges n units to the request's key with no claims, setting the
// RateLimit headers; errors as Admit's.
func (ad *admission) charge(w http.ResponseWriter, r *http.Request, n int) *Error {
	return ad.admitItems(w, r, n, nil, claimer{})
}

// apiKeyKey is the context key of the authenticated *apiKey.
type apiKeyKey struct{}

// anonymousID names requests without a key when AllowAnonymous is set.
const anonymousID = "anonymous"

// keyOf returns the request's authenticated key; only routes behind
// authenticate call it.
func keyOf(ctx context.Context) *apiKey {
	k, _ := ctx.Value(apiKeyKey{}).(*apiKey)
	if k == nil {
		return &apiKey{}
	}
	return k
}

func keyID(ctx context.Context) string {
	k, _ := ctx.Value(apiKeyKey{}).(*apiKey)
	if k == nil {
		return ""
	}
	return k.id
}

// authenticate accepts "Authorization: Bearer <key>" for a configured key
// and stores the key's id (never the key) in the request context.
func (s *Service) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h == "" {
			if s.cfg.AllowAnonymous {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), apiKeyKey{}, &s.adm.anonymous)))
				return
			}
			s.fail(w, r, &Error{Kind: KindUnauthorized, Detail: "send Authorization: Bearer <API key>"})
			return
		}
		scheme, token, _ := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			s.fail(w, r, &Error{Kind: KindUnauthorized, Detail: "the Authorization scheme must be Bearer"})
			return
		}
		k, ok := s.adm.lookupKey(token)
		if !ok {
			s.fail(w, r, &Error{Kind: KindUnauthorized, Detail: "unknown API key"})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), apiKeyKey{}, k)))
	})
}

// lookupKey compares the key's hash with every configured hash in constant
// time and without stopping at a match, so timing reveals neither which
// key matched nor how much of a hash did.
func (ad *admission) lookupKey(token string) (*apiKey, bool) {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range ad.keys {
		if subtle.ConstantTimeCompare(sum[:], ad.keys[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, false
	}
	return &ad.keys[found], true
}

// requireScope answers 403 to a valid key that does not hold sc. It runs
// after authenticate, before the rate limit: a forbidden request costs
// nothing.
func (s *Service) requireScope(sc scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := keyOf(r.Context())
			if k.scopes&sc == 0 {
				s.fail(w, r, &Error{Kind: KindForbidden,
					Detail: fmt.Sprintf("API key %q does not have the %s scope this route needs", k.id, sc)})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// limitRequest charges one unit of the key's rate limit per request, for
// routes that do not write transactions.
func (s *Service) limitRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := s.adm.charge(w, r, 1); e != nil {
			s.fail(w, r, e)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Rate limits are redis_rate's GCRA (github.com/go-redis/redis_rate AllowN)
// in Redis, so all replicas share one budget per API key, under
// "rate:ingest:" + key_id. Each key may send its rate (Config.RateLimit or
// ";rate=N") transactions per second with bursts up to its burst.
const rateKeyPrefix = "ingest:"

// admitItems charges n units to the request's key and, if allowed, claims
// items' idempotency keys for c: a single item in the same Redis call
// (admitScript), a batch's items right after it in one pipeline (claim).
// Keys that hold a claim with the same fingerprint are settled from the
// claimant's answers (settle). It then waits for the keys other requests
// still hold, bounded by the produce timeout (the longest their owners can
// take). It sets the
// RateLimit headers and returns 413 when n can never fit in the burst, 429
// when the budget is exhausted (no key is claimed then), and 503 when
// Redis fails and RedisFailOpen is off. Failing open, the request passes
// unlimited and its items are idemUnrecorded.
func (ad *admission) admitItems(w http.ResponseWriter, r *http.Request, n int, items []*idemItem, c claimer) *Error {
	k := keyOf(r.Context())
	if n > k.burst {
		return &Error{Kind: KindTooLarge,
			Detail: fmt.Sprintf("%d transactions exceed this API key's burst of %d; send smaller batches", n, k.burst)}
	}
	deadline := time.Now().Add(ad.cfg.ProduceTimeout)
	// One claim rides in the rate-limit script. A batch's claims follow it
	// as pipelined SET NX instead: for many keys Redis's CPU, not the
	// round trip, is the limit, and a Lua loop costs Redis about 60 %
	// more per key than the same commands pipelined (docs/benchmarks-ingest.md).
	inScript, op := items, "admit"
	if len(items) > 1 || len(items) == 0 {
		inScript, op = nil, "rate_limit"
	}
	ctx, cancel := context.WithTimeout(r.Context(), ad.cfg.RedisTimeout)
	a, err := ad.admitShared(ctx, k, n, inScript, c)
	if err == nil && a.allowed && len(items) > 1 {
		op = "claim_idempotency"
		_, err = ad.claim(ctx, items, c)
	}
	if err == nil && a.allowed && len(inScript) == 1 && inScript[0].outcome == idemHeld {
		op = "claim_idempotency" // a duplicate: one more round trip
		_, err = ad.settle(ctx, inScript, c)
	}
	cancel()
	if err != nil {
		if e := ad.redisFailed(op, err); e != nil {
			ad.releaseItems(r, items) // what a batch claimed before Redis failed
			return e
		}
		for _, it := range items {
			if it.pending == "" { // claims already made are still recorded
				it.outcome = idemUnrecorded
			}
		}
		return nil
	}
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(k.burst))
	h.Set("RateLimit-Remaining", strconv.Itoa(a.remaining))
	h.Set("RateLimit-Reset", retryAfterSeconds(a.resetAfter))
	if !a.allowed {
		ad.metrics.rateLimited.WithLabelValues(k.id).Inc()
		return &Error{Kind: KindRateLimited, RetryAfter: a.retryAfter,
			Detail: fmt.Sprintf("API key %q may send %d transactions per second (burst %d); retry after %s",
				k.id, k.rate, k.burst, a.retryAfter.Round(time.Millisecond))}
	}
	var open []*idemItem
	for _, it := range items {
		if it.outcome == idemInProgress {
			open = append(open, it)
		}
	}
	if len(open) == 0 {
		return nil
	}
	ctx, cancel = context.WithTimeout(r.Context(), ad.cfg.ProduceTimeout+ad.cfg.RedisTimeout)
	defer cancel()
	if err := ad.wait(ctx, open, c, deadline); err != nil {
		e := ad.redisFailed("claim_idempotency", err)
		if e != nil {
			// Give back what this request claimed: it will not produce.
			ad.releaseItems(r, items)
			return e
		}
		for _, it := range open {
			if it.outcome == idemInProgress {
				it.outcome = idemUnrecorded
			}
		}
	}
	return nil
}

// redisFailed counts and logs a Redis failure of op and returns what the
// request gets: nil when failing open, a 503 problem when failing closed.
func (ad *admission) redisFailed(op string, err error) *Error {
	outcome := "failed_closed"
	if ad.cfg.RedisFailOpen {
		outcome = "failed_open"
	}
	ad.metrics.redisErrors.WithLabelValues(op, outcome).Inc()
	ad.log.Warn("redis failed", "op", op, "outcome", outcome, "err", err)
	if ad.cfg.RedisFailOpen {
		return nil
	}
	return &Error{Kind: KindRedisUnavailable, Detail: "Redis did not answer; retry later", Err: err}
}

// admitScript is redis_rate's allow_n GCRA, unchanged (TestAdmitMatchesRedisRate
// holds it to the library), followed, only when allowed, by each item's
// registry check and idempotency claim (SET NX): a refused request claims
// nothing. Keys, arguments and reply: docs/design/ingest-idempotency.md.
//
//	KEYS  "rate:ingest:" + key_id, then per item: idempotency key, registry key
//	ARGV  burst, rate, period (s), cost, claim TTL (ms), registry TTL (ms),
//	      then per item: claim (writeClaim), registry fingerprint
//	reply {allowed, remaining, retry_after, reset_after}, then per item:
//	      1 claimed and registered, 2 claimed (registry held this fp),
//	      another fp (string: nothing claimed), {claim, PTTL ms} (key taken)
var admitScript = redis.NewScript(`
-- TIME before a write: effects replication (the default since Redis 5)
redis.replicate_commands()

local rate_limit_key = KEYS[1]
local burst = ARGV[1]
local rate = ARGV[2]
local period = ARGV[3]
local cost = tonumber(ARGV[4])

-- GCRA as in github.com/go-redis/redis_rate/v10 allowN, unchanged.
local emission_interval = period / rate
local increment = emission_interval * cost
local burst_offset = emission_interval * burst

local jan_1_2017 = 1483228800
local now = redis.call("TIME")
now = (now[1] - jan_1_2017) + (now[2] / 1000000)

local tat = redis.call("GET", rate_limit_key)

if not tat then
  tat = now
else
  tat = tonumber(tat)
end

tat = math.max(tat, now)

local new_tat = tat + increment
local allow_at = new_tat - burst_offset

local diff = now - allow_at
local remaining = diff / emission_interval

if remaining < 0 then
  local reset_after = tat - now
  local retry_after = diff * -1
  return {0, 0, tostring(retry_after), tostring(reset_after)}
end

local reset_after = new_tat - now
if reset_after > 0 then
  redis.call("SET", rate_limit_key, new_tat, "EX", math.ceil(reset_after))
end

-- Allowed: check the registry and claim the idempotency keys (formats
-- in idempotency.go).
local out = {cost, remaining, "-1", tostring(reset_after)}
local ttl = ARGV[5]
local reg_ttl = ARGV[6]
for i = 2, #KEYS, 2 do
  local claim, fp = ARGV[5 + i], ARGV[6 + i]
  local reg = redis.call("GET", KEYS[i + 1])
  if reg and reg ~= fp then
    out[#out + 1] = reg
  elseif redis.call("SET", KEYS[i], claim, "NX", "PX", ttl) then
    if reg then
      out[#out + 1] = 2
    else
      redis.call("SET", KEYS[i + 1], fp, "PX", reg_ttl)
      out[#out + 1] = 1
    end
  else
    out[#out + 1] = {redis.call("GET", KEYS[i]), redis.call("PTTL", KEYS[i])}
  end
end
return out
`)

// rateResult is the rate-limit part of admitScript's answer, with the
// meaning of redis_rate.Result.
type rateResult struct {
	allowed    bool
	remaining  int
	retryAfter time.Duration // when refused: until the request would pass
	resetAfter time.Duration // until the budget is full again
}

// admitPeriod is the rate limit's period: rates are per second.
const admitPeriod = time.Second

// admit charges cost units to key k and, when allowed, claims items for c,
// resolving each item's outcome from the one reply: idemOwned, idemReplay,
// idemConflict, idemInProgress (still to be waited for by the caller), or
// idemHeld (still to be settled by the caller). It returns an error only
// when Redis fails.
func (ad *admission) admit(ctx context.Context, k *apiKey, cost int, items []*idemItem, c claimer) (rateResult, error) {
	keys, args := admitArgs(k, cost, items, c)
	v, err := admitScript.Run(ctx, ad.rdb, keys, args...).Slice()
	return resolveAdmission(v, err, items, c)
}

func admitArgs(k *apiKey, cost int, items []*idemItem, c claimer) ([]string, []any) {
	keys := make([]string, 1, 1+2*len(items))
	keys[0] = rateKey(k.id)
	args := make([]any, 6, 6+2*len(items))
	args[0], args[1], args[2], args[3] = k.burst, k.rate, admitPeriod.Seconds(), cost
	args[4], args[5] = c.ttl.Milliseconds(), c.regTTL.Milliseconds()
	for _, it := range items {
		keys = append(keys, it.key, it.regKey)
		args = append(args, it.claimValue(c), it.regFP)
	}
	return keys, args
}

// resolveAdmission reads admitScript's reply v (or its error err) into the
// rate-limit result and the items' outcomes.
func resolveAdmission(v []any, err error, items []*idemItem, c claimer) (rateResult, error) {
	if err != nil {
		return rateResult{}, fmt.Errorf("rate limit and claim: %w", err)
	}
	a, err := parseAdmission(v)
	if err != nil {
		return rateResult{}, err
	}
	if !a.allowed {
		return a, nil
	}
	if len(v) != 4+len(items) {
		return rateResult{}, fmt.Errorf("rate limit and claim: %d replies for %d keys", len(v)-4, len(items))
	}
	for i, it := range items {
		switch r := v[4+i].(type) {
		case int64:
			it.outcome, it.pending = idemOwned, it.claimValue(c)
			it.reg = regWritten
			if r == 2 {
				it.reg = regSame
			}
		case string:
			it.outcome, it.reg = idemTxConflict, regOther
		case []any:
			var rec string
			var pttl int64
			ok := len(r) == 2
			if ok {
				rec, ok = r[0].(string)
			}
			if ok {
				pttl, ok = r[1].(int64)
			}
			if !ok {
				return rateResult{}, fmt.Errorf("rate limit and claim: unexpected reply %v for %s", r, it.key)
			}
			// Our own claim is owned (the script ran twice: a retry
			// after a connection broke mid-reply).
			if err := it.resolve(rec, pttl, c); err != nil {
				return rateResult{}, err
			}
		default:
			return rateResult{}, fmt.Errorf("rate limit and claim: unexpected reply %T for %s", r, it.key)
		}
	}
	return a, nil
}

// Coalescing: runAdmitter sends the admissions waiting at once as one
// pipeline, each still its own script call and answer; a lone request goes
// at once, so nothing waits for a timer (docs/design/ingest-idempotency.md).

// admitCall is one request's admission, answered through done.
type admitCall struct {
	k     *apiKey
	cost  int
	items []*idemItem
	c     claimer

	a    rateResult
	err  error
	done chan struct{}
}

// maxAdmitPipeline bounds the script calls in one pipeline.
const maxAdmitPipeline = 256

// admitShared is admit through runAdmitter, or directly when it is not
// running. ctx bounds only the wait to be taken; once taken, the call is
// bounded by RedisTimeout like any other.
func (ad *admission) admitShared(ctx context.Context, k *apiKey, cost int, items []*idemItem, cl claimer) (rateResult, error) {
	c := &admitCall{k: k, cost: cost, items: items, c: cl, done: make(chan struct{})}
	select {
	case ad.admits <- c: // unbuffered: taken only by a running admitter
		<-c.done
		return c.a, c.err
	case <-ad.admitterStopped:
		return ad.admit(ctx, k, cost, items, cl)
	case <-ctx.Done():
		return rateResult{}, fmt.Errorf("rate limit and claim: %w", context.Cause(ctx))
	}
}

// runAdmitter serves admitShared until stop is closed.
func (ad *admission) runAdmitter(stop <-chan struct{}) {
	defer close(ad.admitterStopped)
	batch := make([]*admitCall, 0, maxAdmitPipeline)
	for {
		select {
		case c := <-ad.admits:
			batch = append(batch[:0], c)
		case <-stop:
			return
		}
	more: // the requests already waiting go along
		for len(batch) < maxAdmitPipeline {
			select {
			case c := <-ad.admits:
				batch = append(batch, c)
			default:
				break more
			}
		}
		ad.admitPipeline(batch)
		clear(batch)
	}
}

// admitPipeline runs the calls' scripts in one round trip and answers each.
func (ad *admission) admitPipeline(calls []*admitCall) {
	ctx, cancel := context.WithTimeout(context.Background(), ad.cfg.RedisTimeout)
	defer cancel()
	if len(calls) == 1 {
		c := calls[0]
		c.a, c.err = ad.admit(ctx, c.k, c.cost, c.items, c.c)
		close(c.done)
		return
	}
	pipe := ad.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		keys, args := admitArgs(c.k, c.cost, c.items, c.c)
		cmds[i] = admitScript.EvalSha(ctx, pipe, keys, args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, c := range calls {
		v, err := cmds[i].Slice()
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			// Not loaded yet (or flushed): nothing ran, so run it alone,
			// which loads it.
			keys, args := admitArgs(c.k, c.cost, c.items, c.c)
			v, err = admitScript.Run(ctx, ad.rdb, keys, args...).Slice()
		}
		c.a, c.err = resolveAdmission(v, err, c.items, c.c)
		close(c.done)
	}
}

// parseAdmission reads the four GCRA values at the head of the reply, as
// redis_rate.Limiter.AllowN does.
func parseAdmission(v []any) (rateResult, error) {
	if len(v) < 4 {
		return rateResult{}, fmt.Errorf("rate limit: %d values in the reply, want 4", len(v))
	}
	allowed, ok1 := v[0].(int64)
	remaining, ok2 := v[1].(int64)
	retry, ok3 := v[2].(string)
	reset, ok4 := v[3].(string)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return rateResult{}, fmt.Errorf("rate limit: unexpected reply %v", v[:4])
	}
	retryAfter, err := strconv.ParseFloat(retry, 64)
	if err != nil {
		return rateResult{}, fmt.Errorf("rate limit: retry_after %q: %w", retry, err)
	}
	resetAfter, err := strconv.ParseFloat(reset, 64)
	if err != nil {
		return rateResult{}, fmt.Errorf("rate limit: reset_after %q: %w", reset, err)
	}
	return rateResult{
		allowed:    allowed > 0,
		remaining:  int(remaining),
		retryAfter: seconds(retryAfter),
		resetAfter: seconds(resetAfter),
	}, nil
}

// seconds converts the script's float seconds; -1 stays -1 (not limited).
func seconds(f float64) time.Duration {
	if f == -1 {
		return -1
	}
	return time.Duration(f * float64(time.Second))
}

// rateKey is the Redis key of an API key's GCRA state.
func rateKey(keyID string) string { return "rate:" + rateKeyPrefix + keyID }
