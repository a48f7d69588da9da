package ingest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Rate limits are GCRA in Redis (github.com/go-redis/redis_rate), so all
// replicas share one budget per API key:
//
//	key: "rate:ingest:" + key_id   (redis_rate adds the "rate:" prefix)
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
	k := keyOf(r.Context())
	if n > k.burst {
		return &Error{Kind: KindTooLarge,
			Detail: fmt.Sprintf("%d transactions exceed this API key's burst of %d; send smaller batches", n, k.burst)}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RedisTimeout)
	defer cancel()
	res, err := s.limiter.AllowN(ctx, rateKeyPrefix+k.id, redis_rate.Limit{Rate: k.rate, Burst: k.burst, Period: time.Second}, n)
	if err != nil {
		if e := s.redisFailed("rate_limit", err); e != nil {
			return e
		}
		return nil
	}
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(k.burst))
	h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
	h.Set("RateLimit-Reset", retryAfterSeconds(res.ResetAfter))
	if res.Allowed < n {
		s.metrics.rateLimited.WithLabelValues(k.id).Inc()
		return &Error{Kind: KindRateLimited, RetryAfter: res.RetryAfter,
			Detail: fmt.Sprintf("API key %q may send %d transactions per second (burst %d); retry after %s",
				k.id, k.rate, k.burst, res.RetryAfter.Round(time.Millisecond))}
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
