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
// Before, a single POST made three round trips to Redis before its record
// went to Kafka and after: the GCRA script of go-redis/redis_rate, SET NX of
// the idempotency claim, and GET of the record when the claim was taken.
// admitScript does all of it at once, atomically: it runs redis_rate's
// allow_n GCRA unchanged (same key, same arithmetic, same answers: burst,
// rate per period, cost; TestAdmitMatchesRedisRate holds it to the
// library), and only when the request is allowed does it claim each
// idempotency key with SET NX, returning for each key either 1 (claimed) or
// the record that is already there. A refused request therefore claims
// nothing, and a taken key costs no further round trip unless its owner is
// still producing (then claim polls, as before).
//
//	KEYS[1]     "rate:ingest:" + key_id (redis_rate's "rate:" prefix kept, so
//	            limits carry over a rolling upgrade)
//	KEYS[2..]   idempotency keys
//	ARGV        burst, rate, period (seconds), cost, pending TTL (ms), token,
//	            then one fingerprint per idempotency key
//	reply       {allowed, remaining, retry_after, reset_after, claim...}
//	            as redis_rate's allow_n, followed when allowed by one claim
//	            result per idempotency key: 1 or the existing record
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

-- Allowed: claim the idempotency keys (format in idempotency.go).
local out = {cost, remaining, "-1", tostring(reset_after)}
local ttl = ARGV[5]
local token = ARGV[6]
for i = 2, #KEYS do
  local pending = '{"state":"pending","fp":"' .. ARGV[5 + i] .. '","token":"' .. token .. '"}'
  if redis.call("SET", KEYS[i], pending, "NX", "PX", ttl) then
    out[#out + 1] = 1
  else
    out[#out + 1] = redis.call("GET", KEYS[i])
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

// admit charges cost units to key k and, when allowed, claims items with
// the pending token tok, resolving each item's outcome from the one reply:
// idemOwned, idemReplay, idemConflict, or idemInProgress (still to be
// waited for by the caller). It returns an error only when Redis fails.
func (s *Service) admit(ctx context.Context, k *apiKey, cost int, items []*idemItem, tok string) (admission, error) {
	keys := make([]string, 1, 1+len(items))
	keys[0] = rateKey(k.id)
	args := make([]any, 6, 6+len(items))
	args[0], args[1], args[2], args[3] = k.burst, k.rate, admitPeriod.Seconds(), cost
	args[4], args[5] = s.pendingTTL().Milliseconds(), tok
	for _, it := range items {
		keys = append(keys, it.key)
		args = append(args, it.fp)
	}
	v, err := admitScript.Run(ctx, s.rdb, keys, args...).Slice()
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
		switch c := v[4+i].(type) {
		case int64:
			it.outcome = idemOwned
			it.pending = pendingRecord(it.fp, tok)
		case string:
			if err := it.resolve(c); err != nil {
				return admission{}, err
			}
		default:
			return admission{}, fmt.Errorf("rate limit and claim: unexpected reply %T for %s", c, it.key)
		}
	}
	return a, nil
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
