// Package redisopt turns a Redis URL and a service's failure policy into
// go-redis client options: the one place that parses REDIS_URL's value for
// every service, so a second copy cannot drift to another retry policy.
package redisopt

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Policy is how a client meets a slow or failing Redis. Services differ on
// purpose, and each says why next to the Policy it passes:
// ingest retries once (a stale pooled connection must not cost a client a
// 503), the scorer never (a failed lookup is not worth a second timeout;
// it scores without profiles instead).
type Policy struct {
	// Timeout bounds dialing and each read and write; callers validate
	// that it is positive.
	// A call's context deadline bounds it too (ContextTimeoutEnabled).
	Timeout time.Duration
	// Retries is how many times a command that failed on a network error
	// is sent again; 0 means never (unlike go-redis's MaxRetries, where 0
	// means 3).
	Retries int
	// PoolTimeout bounds the wait for a free pooled connection; 0 keeps
	// go-redis's default, Timeout + 1s.
	PoolTimeout time.Duration
}

// Options parses rawURL, which must be redis:// or rediss:// (TLS), and
// applies p. Errors never quote the URL's password; they do not name a
// setting either, which is the caller's to add.
func Options(rawURL string, p Policy) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, errors.New("must be a redis:// or rediss:// (TLS) URL such as redis://127.0.0.1:6379/0")
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		// The error may quote the URL, password and all; name only what
		// is wrong with it.
		return nil, errors.New(strings.ReplaceAll(err.Error(), rawURL, u.Redacted()))
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = p.Timeout, p.Timeout, p.Timeout
	if p.PoolTimeout > 0 {
		opts.PoolTimeout = p.PoolTimeout
	}
	opts.ContextTimeoutEnabled = true // a caller's deadline bounds its Redis calls
	opts.MaxRetries = p.Retries
	if p.Retries <= 0 {
		opts.MaxRetries = -1 // go-redis: -1 disables retries, 0 means its default (3)
	}
	return opts, nil
}
