package scorer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/redisopt"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// Profile enrichment: the card profiles ingest keeps in Redis (home
// country, account opening date, risk tier; see event.ProfileKey) fill the
// features home_country_mismatch, account_age_days and risk_tier.
//
// The batch loop looks the cards of each poll up before processing it, in
// one pipelined round trip (MGET, in chunks) bounded by RedisTimeout, for
// the cards that are not in the cache or whose entry is older than
// ProfileCacheTTL. The cache is bounded (ProfileCacheSize, two generations:
// an approximation of LRU without per-entry allocations) and remembers
// absent profiles too, so unknown cards do not cost a round trip per batch.
// A card without a profile is scored with defaults (no mismatch, age 0,
// tier 0) and profile_missing set. When Redis fails or is slow the lookup
// gives up at the timeout, Redis is left alone for profileRetryAfter, and
// records are scored with the cached entry even if it is older than the
// TTL, or else without a profile: flagged profile_missing and counted in
// fraudstream_scorer_profile_unavailable_total. A partition never waits
// longer than RedisTimeout per poll for Redis.
//
// Determinism caveat: profiles are read at processing time, so they are the
// one input of a scored record that is not a function of the partition's
// records. A replay after a crash gives byte-identical records only if
// the profiles it reads are the same as the first time (unchanged, and
// Redis answering both times); without Redis (RedisURL empty) scoring stays
// fully deterministic.

// profileRetryAfter is how long the scorer leaves Redis alone after a
// failed lookup, so a dead or stalled Redis costs one timeout per this
// interval instead of one per batch.
const profileRetryAfter = time.Second

// profileMGetChunk bounds the keys of one MGET of the pipeline.
const profileMGetChunk = 500

// profileInfo is what the features need of a profile.
type profileInfo struct {
	homeCountry string
	opened      int64 // account_opened, Unix ms at midnight UTC
	hasOpened   bool
	tier        int64
}

// profileStatus says how a record's profile was found.
type profileStatus uint8

const (
	profileFound       profileStatus = iota
	profileAbsent                    // no profile (or no Redis configured)
	profileUnavailable               // Redis did not answer and nothing was cached
)

type profileEntry struct {
	info    profileInfo
	found   bool      // false: Redis has no (readable) profile for the card
	fetched time.Time // wall clock of the lookup, for the TTL
}

// profileCache holds at most 2·half entries in two generations: new entries
// go into cur; when cur is full it becomes old and the previous old is
// dropped. An entry used from old is moved into cur, so entries in use
// survive and idle ones age out, as in an LRU cache.
//
// The batch loop fills it (promote, put) while the partitions' workers
// read it (get), so it is locked. A poll's entries are in cur when its
// records are handed to the workers, and at most one generation turns over
// within a batch (half ≥ MaxBatchRecords, checked by Config.Validate), so
// an entry a queued record needs is never dropped before the record is
// processed.
type profileCache struct {
	mu       sync.RWMutex
	half     int
	cur, old map[string]profileEntry
}

func newProfileCache(size int) *profileCache {
	half := max(size/2, 1)
	return &profileCache{half: half, cur: make(map[string]profileEntry, half)}
}

// get looks card up without moving it, so lookups while a batch is
// processed never drop an entry the batch's prefetch filled.
func (c *profileCache) get(card string) (profileEntry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e, ok := c.cur[card]; ok {
		return e, true
	}
	e, ok := c.old[card]
	return e, ok
}

// promote is get for the prefetch: an entry found in old moves into cur.
func (c *profileCache) promote(card string) (profileEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cur[card]; ok {
		return e, true
	}
	e, ok := c.old[card]
	if ok {
		delete(c.old, card)
		c.putLocked(card, e)
	}
	return e, ok
}

func (c *profileCache) put(card string, e profileEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(card, e)
}

func (c *profileCache) putLocked(card string, e profileEntry) {
	if _, ok := c.cur[card]; !ok && len(c.cur) >= c.half {
		c.old, c.cur = c.cur, make(map[string]profileEntry, c.half)
	}
	c.cur[card] = e
}

func (c *profileCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.cur) + len(c.old)
}

// profiles is the scorer's profile lookup: the batch loop prefetches a
// poll's cards before handing its records to the workers, which look them
// up; only the cache is shared between them. A nil *profiles (no Redis configured) finds no profiles.
type profiles struct {
	rdb     *redis.Client
	ttl     time.Duration
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger
	m       *metrics

	cache   *profileCache
	retryAt time.Time // no lookups before this, after a failure
	down    bool      // the last lookup failed (for logging transitions)

	want map[string]struct{} // scratch of prefetch
	keys []string
}

func newProfiles(cfg Config, log *slog.Logger, m *metrics, now func() time.Time) (*profiles, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	opts, err := redisOptions(cfg.RedisURL, cfg.RedisTimeout)
	if err != nil {
		return nil, err
	}
	return &profiles{
		rdb:     redis.NewClient(opts),
		ttl:     cfg.ProfileCacheTTL,
		timeout: cfg.RedisTimeout,
		now:     now,
		log:     log,
		m:       m,
		cache:   newProfileCache(cfg.ProfileCacheSize),
		want:    make(map[string]struct{}),
	}, nil
}

// redisOptions parses a redis:// or rediss:// URL with the scorer's
// policy: every round trip, and the wait for a pooled connection, bounded
// by timeout, and no retries: a failed lookup is not worth a second
// timeout, the records are scored without profiles instead.
func redisOptions(rawURL string, timeout time.Duration) (*redis.Options, error) {
	opts, err := redisopt.Options(rawURL, redisopt.Policy{Timeout: timeout, PoolTimeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	return opts, nil
}

func (p *profiles) close() {
	if p != nil {
		_ = p.rdb.Close()
	}
}

// prefetch makes sure the cache holds an entry for every card (record key)
// in fetches, looking the missing and expired ones up in one pipelined
// round trip. It never takes longer than the Redis timeout, and while
// Redis is considered down it does nothing.
func (p *profiles) prefetch(ctx context.Context, fetches kgo.Fetches) {
	if p == nil {
		return
	}
	now := p.now()
	if now.Before(p.retryAt) {
		return
	}
	clear(p.want)
	p.keys = p.keys[:0]
	fetches.EachRecord(func(r *kgo.Record) {
		if _, ok := p.want[string(r.Key)]; ok || len(r.Key) == 0 {
			return
		}
		if e, ok := p.cache.promote(string(r.Key)); ok && now.Sub(e.fetched) < p.ttl {
			return
		}
		card := string(r.Key)
		p.want[card] = struct{}{}
		p.keys = append(p.keys, event.ProfileKey(card))
	})
	if len(p.keys) == 0 {
		return
	}
	if err := p.fetch(ctx, now); err != nil {
		if ctx.Err() != nil {
			return // shutting down
		}
		p.m.profileErrors.Inc()
		p.retryAt = now.Add(profileRetryAfter)
		if !p.down {
			p.log.Warn("card profiles unavailable; scoring without them", "err", err,
				"keys", len(p.keys), "retry_in", profileRetryAfter)
		}
		p.down = true
		return
	}
	if p.down {
		p.log.Info("card profiles available again")
		p.down = false
	}
}

func (p *profiles) fetch(ctx context.Context, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	cmds := make([]*redis.SliceCmd, 0, (len(p.keys)+profileMGetChunk-1)/profileMGetChunk)
	_, err := p.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i := 0; i < len(p.keys); i += profileMGetChunk {
			cmds = append(cmds, pipe.MGet(ctx, p.keys[i:min(i+profileMGetChunk, len(p.keys))]...))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis MGET of %d profiles: %w", len(p.keys), err)
	}
	p.m.profileKeys.Add(float64(len(p.keys)))
	i := 0
	for _, cmd := range cmds {
		for _, v := range cmd.Val() {
			key := p.keys[i]
			i++
			card := key[len(event.ProfileKeyPrefix):]
			e := profileEntry{fetched: now}
			if s, ok := v.(string); ok {
				info, err := decodeProfileInfo(s)
				if err != nil {
					p.m.profileBad.Inc()
					p.log.Debug("unreadable card profile; scoring without it", "card_id", card, "err", err)
				} else {
					e.info, e.found = info, true
				}
			}
			p.cache.put(card, e)
		}
	}
	return nil
}

func decodeProfileInfo(s string) (profileInfo, error) {
	pr, err := event.DecodeProfileRecord([]byte(s))
	if err != nil {
		return profileInfo{}, err
	}
	info := profileInfo{homeCountry: pr.HomeCountry, tier: int64(pr.Tier())}
	if t, ok := pr.Opened(); ok {
		info.opened, info.hasOpened = t.UnixMilli(), true
	}
	return info, nil
}

// lookup returns the card's profile as the last prefetch left it. An entry
// older than the TTL is still used: prefetch refreshes it when Redis
// answers, so it is only stale while Redis does not.
func (p *profiles) lookup(card string) (profileInfo, profileStatus) {
	if p == nil {
		return profileInfo{}, profileAbsent
	}
	e, ok := p.cache.get(card)
	switch {
	case !ok:
		return profileInfo{}, profileUnavailable
	case !e.found:
		return profileInfo{}, profileAbsent
	}
	return e.info, profileFound
}

// profileFeatures fills the profile features of a transaction at event
// time et (Unix ms). account_age_days is negative for a transaction dated
// before the account was opened: suspicious in itself, and left for rules
// and the model to judge.
func profileFeatures(f *event.Features, info *profileInfo, tx *event.Transaction, et int64) {
	f.HomeCountryMismatch = info.homeCountry != "" && tx.MerchantCountry != info.homeCountry
	if info.hasOpened {
		f.AccountAgeDays = float64(et-info.opened) / float64(24*time.Hour/time.Millisecond)
	}
	f.RiskTier = info.tier
}
