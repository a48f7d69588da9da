package ingest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Rate limits are GCRA in Redis, so all replicas share one budget per API
// key. The algorithm, key and answers are those of
// github.com/go-redis/redis_rate's AllowN, run by ingest's own script so
// that a POST's idempotency claim rides in the same round trip (admit.go):
//
//	key: "rate:ingest:" + key_id
//
// Each key may send its rate (Config.RateLimit or ";rate=N") transactions
// per second with bursts up to its burst. A single POST or profile request
// costs 1, a batch 1 per item. Answers carry RateLimit-Limit (the burst),
// RateLimit-Remaining and RateLimit-Reset (seconds until the budget is
// full again); a refused request gets 429 with Retry-After.
const rateKeyPrefix = "ingest:"

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

// limitRequest charges one unit of the key's rate limit per request.
func (s *Service) limitRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := s.allow(w, r, 1); e != nil {
			s.fail(w, r, e)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allow charges n units to the request's key, setting the RateLimit
// headers. It returns 429 when the budget is exhausted, 413 when n can never
// fit in the burst, and 503 when Redis fails and RedisFailOpen is off.
func (s *Service) allow(w http.ResponseWriter, r *http.Request, n int) *Error {
	return s.admitItems(w, r, n, nil, claimer{})
}

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
func (s *Service) admitItems(w http.ResponseWriter, r *http.Request, n int, items []*idemItem, c claimer) *Error {
	k := keyOf(r.Context())
	if n > k.burst {
		return &Error{Kind: KindTooLarge,
			Detail: fmt.Sprintf("%d transactions exceed this API key's burst of %d; send smaller batches", n, k.burst)}
	}
	deadline := time.Now().Add(s.cfg.ProduceTimeout)
	// One claim rides in the rate-limit script. A batch's claims follow it
	// as pipelined SET NX instead: for many keys Redis's CPU, not the
	// round trip, is the limit, and a Lua loop costs Redis about 60 %
	// more per key than the same commands pipelined (docs/benchmarks-ingest.md).
	inScript, op := items, "admit"
	if len(items) > 1 || len(items) == 0 {
		inScript, op = nil, "rate_limit"
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RedisTimeout)
	a, err := s.admitShared(ctx, k, n, inScript, c)
	if err == nil && a.allowed && len(items) > 1 {
		op = "claim_idempotency"
		_, err = s.claim(ctx, items, c)
	}
	if err == nil && a.allowed && len(inScript) == 1 && inScript[0].outcome == idemHeld {
		op = "claim_idempotency" // a duplicate: one more round trip
		_, err = s.settle(ctx, inScript, c)
	}
	cancel()
	if err != nil {
		if e := s.redisFailed(op, err); e != nil {
			s.releaseItems(r, items) // what a batch claimed before Redis failed
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
		s.metrics.rateLimited.WithLabelValues(k.id).Inc()
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
	ctx, cancel = context.WithTimeout(r.Context(), s.cfg.ProduceTimeout+s.cfg.RedisTimeout)
	defer cancel()
	if err := s.wait(ctx, open, c, deadline); err != nil {
		e := s.redisFailed("claim_idempotency", err)
		if e != nil {
			// Give back what this request claimed: it will not produce.
			s.releaseItems(r, items)
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
func (s *Service) redisFailed(op string, err error) *Error {
	outcome := "failed_closed"
	if s.cfg.RedisFailOpen {
		outcome = "failed_open"
	}
	s.metrics.redisErrors.WithLabelValues(op, outcome).Inc()
	s.log.Warn("redis failed", "op", op, "outcome", outcome, "err", err)
	if s.cfg.RedisFailOpen {
		return nil
	}
	return &Error{Kind: KindRedisUnavailable, Detail: "Redis did not answer; retry later", Err: err}
}
