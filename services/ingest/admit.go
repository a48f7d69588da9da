package ingest

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Admission: the rate limit and the idempotency claims of a request in one
// Redis round trip.
//
// Before, a single POST made up to three round trips to Redis before its
// record went to Kafka: the GCRA script of go-redis/redis_rate, SET NX of
// the idempotency claim, and GET of the record when the claim was taken.
// admitScript does all of it at once, atomically: it runs redis_rate's
// allow_n GCRA unchanged (same key, same arithmetic, same answers: burst,
// rate per period, cost; TestAdmitMatchesRedisRate holds it to the
// library), and only when the request is allowed does it check each
// transaction_id's registry entry (idempotency.go) and claim each
// idempotency key with SET NX, registering the transaction_id when the
// claim is new and the registry does not hold it yet. A refused request
// therefore claims nothing, and a transaction_id registered with another
// fingerprint claims nothing either. A taken key costs no further round trip when it
// holds a record of the previous version or another fingerprint; a claim of
// this version with the same fingerprint costs one more, to read its
// answers (settle), and more while its owner is still producing (then wait
// polls, as before). Duplicates are rare; the common case stays one call.
//
// Profile routes run the script with no keys (just the rate limit), and so
// do batches, which then claim their many keys in one pipeline (claim in
// idempotency.go): Redis spends less CPU per key on pipelined commands than
// on a Lua loop, and for a batch that, not the round trip, is the limit.
//
//	KEYS[1]     "rate:ingest:" + key_id (redis_rate's "rate:" prefix kept, so
//	            limits carry over a rolling upgrade)
//	KEYS[2..]   per item: its idempotency key, its registry key
//	ARGV        burst, rate, period (seconds), cost, claim TTL (ms),
//	            registry TTL (ms), then per item: its claim (writeClaim:
//	            its format is spelled once, in Go), its registry fingerprint
//	reply       {allowed, remaining, retry_after, reset_after, claim...}
//	            as redis_rate's allow_n, followed when allowed by one result
//	            per item: 1 (claimed, registered now), 2 (claimed, the
//	            registry held its fingerprint), the other fingerprint the
//	            registry holds (a string: nothing claimed), or
//	            {record, PTTL in ms} of a taken idempotency key
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

// admission is the rate-limit part of admitScript's answer, with the
// meaning of redis_rate.Result.
type admission struct {
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
func (s *Service) admit(ctx context.Context, k *apiKey, cost int, items []*idemItem, c claimer) (admission, error) {
	keys, args := admitArgs(k, cost, items, c)
	v, err := admitScript.Run(ctx, s.rdb, keys, args...).Slice()
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
// admission and the items' outcomes.
func resolveAdmission(v []any, err error, items []*idemItem, c claimer) (admission, error) {
	if err != nil {
		return admission{}, fmt.Errorf("rate limit and claim: %w", err)
	}
	a, err := parseAdmission(v)
	if err != nil {
		return admission{}, err
	}
	if !a.allowed {
		return a, nil
	}
	if len(v) != 4+len(items) {
		return admission{}, fmt.Errorf("rate limit and claim: %d replies for %d keys", len(v)-4, len(items))
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
				return admission{}, fmt.Errorf("rate limit and claim: unexpected reply %v for %s", r, it.key)
			}
			// Our own claim is owned (the script ran twice: a retry
			// after a connection broke mid-reply).
			if err := it.resolve(rec, pttl, c); err != nil {
				return admission{}, err
			}
		default:
			return admission{}, fmt.Errorf("rate limit and claim: unexpected reply %T for %s", r, it.key)
		}
	}
	return a, nil
}

// Coalescing admissions.
//
// Every POST needs its admitScript answer before it can produce, so under
// concurrent load many requests wait on Redis at once, each on its own
// connection, costing a write and a read system call in ingest and in
// redis-server per request. runAdmitter takes the admissions that are
// waiting and sends them as one pipeline: while one pipeline is out, the
// next requests queue up and go together in the next. A lone request goes
// at once, so nothing waits for a timer. Each request still gets its own
// script call and answer; only the round trip is shared.

// admitCall is one request's admission, answered through done.
type admitCall struct {
	k     *apiKey
	cost  int
	items []*idemItem
	c     claimer

	a    admission
	err  error
	done chan struct{}
}

// maxAdmitPipeline bounds the script calls in one pipeline.
const maxAdmitPipeline = 256

// admitShared is admit through runAdmitter, or directly when it is not
// running. ctx bounds only the wait to be taken; once taken, the call is
// bounded by RedisTimeout like any other.
func (s *Service) admitShared(ctx context.Context, k *apiKey, cost int, items []*idemItem, cl claimer) (admission, error) {
	c := &admitCall{k: k, cost: cost, items: items, c: cl, done: make(chan struct{})}
	select {
	case s.admits <- c: // unbuffered: taken only by a running admitter
		<-c.done
		return c.a, c.err
	case <-s.admitterStopped:
		return s.admit(ctx, k, cost, items, cl)
	case <-ctx.Done():
		return admission{}, fmt.Errorf("rate limit and claim: %w", context.Cause(ctx))
	}
}

// runAdmitter serves admitShared until stop is closed.
func (s *Service) runAdmitter(stop <-chan struct{}) {
	defer close(s.admitterStopped)
	batch := make([]*admitCall, 0, maxAdmitPipeline)
	for {
		select {
		case c := <-s.admits:
			batch = append(batch[:0], c)
		case <-stop:
			return
		}
	more: // the requests already waiting go along
		for len(batch) < maxAdmitPipeline {
			select {
			case c := <-s.admits:
				batch = append(batch, c)
			default:
				break more
			}
		}
		s.admitPipeline(batch)
		clear(batch)
	}
}

// admitPipeline runs the calls' scripts in one round trip and answers each.
func (s *Service) admitPipeline(calls []*admitCall) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RedisTimeout)
	defer cancel()
	if len(calls) == 1 {
		c := calls[0]
		c.a, c.err = s.admit(ctx, c.k, c.cost, c.items, c.c)
		close(c.done)
		return
	}
	pipe := s.rdb.Pipeline()
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
			v, err = admitScript.Run(ctx, s.rdb, keys, args...).Slice()
		}
		c.a, c.err = resolveAdmission(v, err, c.items, c.c)
		close(c.done)
	}
}

// parseAdmission reads the four GCRA values at the head of the reply, as
// redis_rate.Limiter.AllowN does.
func parseAdmission(v []any) (admission, error) {
	if len(v) < 4 {
		return admission{}, fmt.Errorf("rate limit: %d values in the reply, want 4", len(v))
	}
	allowed, ok1 := v[0].(int64)
	remaining, ok2 := v[1].(int64)
	retry, ok3 := v[2].(string)
	reset, ok4 := v[3].(string)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return admission{}, fmt.Errorf("rate limit: unexpected reply %v", v[:4])
	}
	retryAfter, err := strconv.ParseFloat(retry, 64)
	if err != nil {
		return admission{}, fmt.Errorf("rate limit: retry_after %q: %w", retry, err)
	}
	resetAfter, err := strconv.ParseFloat(reset, 64)
	if err != nil {
		return admission{}, fmt.Errorf("rate limit: reset_after %q: %w", reset, err)
	}
	return admission{
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
