package scorer

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/testenv"
)

func TestProfileCacheBounded(t *testing.T) {
	c := newProfileCache(10)
	for i := range 100 {
		c.put(fmt.Sprintf("c%d", i), profileEntry{found: true})
		if c.len() > 10 {
			t.Fatalf("cache holds %d entries after %d puts, bound 10", c.len(), i+1)
		}
	}
	// An entry in use survives a churn of new ones; an idle one does not.
	c.put("hot", profileEntry{found: true})
	c.put("cold", profileEntry{found: true})
	for i := range 20 {
		if _, ok := c.promote("hot"); !ok {
			t.Fatalf("hot entry dropped after %d puts", i)
		}
		c.put(fmt.Sprintf("n%d", i), profileEntry{})
	}
	if _, ok := c.get("cold"); ok {
		t.Errorf("an idle entry survived 20 puts into a cache of 10")
	}
	// get never moves an entry, so lookups cannot drop prefetched ones.
	before := c.len()
	for i := range 100 {
		c.get(fmt.Sprintf("n%d", i))
	}
	if c.len() != before {
		t.Errorf("get changed the cache")
	}
}

func fetchesOf(rs ...*kgo.Record) kgo.Fetches {
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: event.TopicRaw, Partitions: []kgo.FetchPartition{{Records: rs}}}}}}
}

func putProfile(t *testing.T, rdb *redis.Client, card, home, opened string, tier int) {
	t.Helper()
	v, err := event.Profile{CardID: card, HomeCountry: home, AccountOpened: opened, RiskTier: &tier}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(context.Background(), event.ProfileKey(card), v, 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// testProfiles returns a profile lookup against url with a settable clock.
func testProfiles(t *testing.T, url string, timeout time.Duration) (*profiles, *metrics, *time.Time) {
	t.Helper()
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.RedisURL, cfg.RedisTimeout = url, timeout
	p, err := newProfiles(cfg, slog.New(slog.DiscardHandler), m, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p, m, &clock
}

// TestProfilesFromRedis enriches transactions with profiles from a real
// Redis: found, absent and unreadable profiles, one round trip for a poll,
// the cache, and a refresh after the TTL.
func TestProfilesFromRedis(t *testing.T) {
	url := testenv.Redis(t)
	opts, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	putProfile(t, rdb, "home", "DE", "2020-01-01", 2)
	putProfile(t, rdb, "abroad", "US", "2025-12-01", 1)
	if err := rdb.Set(context.Background(), event.ProfileKey("bad"), "{not json", 0).Err(); err != nil {
		t.Fatal(err)
	}

	p, m, clock := testProfiles(t, url, time.Second)
	params := testParams()
	params.profiles = p
	tk, c := newTask(0, params), newBatchCounts()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i, card := range []string{"home", "abroad", "none", "bad", "home"} {
		recs = append(recs, txRecord(t, 0, int64(i), testTx(fmt.Sprintf("t%d", i), card, base.Add(time.Duration(i)*time.Second))))
	}
	p.prefetch(context.Background(), fetchesOf(recs...))
	if n := testutil.ToFloat64(m.profileKeys); n != 4 {
		t.Errorf("looked up %v keys, want the 4 distinct cards", n)
	}
	var got []event.Features
	for _, r := range recs {
		got = append(got, decodeOut(t, tk.process(r, &c)[0]).Features)
	}
	want := []event.Features{
		{AccountAgeDays: 2251.5, RiskTier: 2}, // merchant country DE = home
		{HomeCountryMismatch: true, AccountAgeDays: 90.5 + 1.0/86400, RiskTier: 1},
		{ProfileMissing: true},
		{ProfileMissing: true},
		{AccountAgeDays: 2251.5 + 4.0/86400, RiskTier: 2},
	}
	for i := range want {
		g := got[i]
		if g.HomeCountryMismatch != want[i].HomeCountryMismatch || math.Abs(g.AccountAgeDays-want[i].AccountAgeDays) > 1e-9 ||
			g.RiskTier != want[i].RiskTier || g.ProfileMissing != want[i].ProfileMissing {
			t.Errorf("record %d (%s): mismatch %v age %v tier %v missing %v, want %+v", i, recs[i].Key,
				g.HomeCountryMismatch, g.AccountAgeDays, g.RiskTier, g.ProfileMissing, want[i])
		}
	}
	if c.profileMissing != 2 || c.profileUnavailable != 0 || testutil.ToFloat64(m.profileBad) != 1 {
		t.Errorf("missing %d unavailable %d unreadable %v, want 2, 0, 1", c.profileMissing, c.profileUnavailable,
			testutil.ToFloat64(m.profileBad))
	}

	// Cached: a changed profile is seen only after the TTL.
	putProfile(t, rdb, "home", "DE", "2020-01-01", 3)
	p.prefetch(context.Background(), fetchesOf(recs...))
	if info, st := p.lookup("home"); st != profileFound || info.tier != 2 || testutil.ToFloat64(m.profileKeys) != 4 {
		t.Errorf("within the TTL: tier %d (%v), %v keys looked up; want the cached tier 2 and no lookup", info.tier, st,
			testutil.ToFloat64(m.profileKeys))
	}
	*clock = clock.Add(DefaultProfileCacheTTL)
	p.prefetch(context.Background(), fetchesOf(recs...))
	if info, _ := p.lookup("home"); info.tier != 3 || testutil.ToFloat64(m.profileKeys) != 8 {
		t.Errorf("after the TTL: tier %d, %v keys looked up; want 3 and 8", info.tier, testutil.ToFloat64(m.profileKeys))
	}

	// Redis gone: the stale entries are used, unknown cards are unavailable.
	down, dm, dclock := testProfiles(t, blackhole(t), 50*time.Millisecond)
	down.cache = p.cache
	*dclock = clock.Add(2 * DefaultProfileCacheTTL)
	tk.params.profiles = down
	other := txRecord(t, 0, 9, testTx("t9", "unknown", base.Add(time.Minute)))
	down.prefetch(context.Background(), fetchesOf(append(recs, other)...))
	if info, st := down.lookup("home"); st != profileFound || info.tier != 3 {
		t.Errorf("stale entry while Redis is down: tier %d (%v), want 3", info.tier, st)
	}
	c = newBatchCounts()
	if f := decodeOut(t, tk.process(other, &c)[0]).Features; !f.ProfileMissing || c.profileUnavailable != 1 {
		t.Errorf("unknown card while Redis is down: missing %v, unavailable %d", f.ProfileMissing, c.profileUnavailable)
	}
	if testutil.ToFloat64(dm.profileErrors) != 1 {
		t.Errorf("lookup errors = %v, want 1", testutil.ToFloat64(dm.profileErrors))
	}
}

// blackhole returns the URL of a Redis that accepts connections and never
// answers: the slowest Redis there is.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return "redis://" + ln.Addr().String() + "/0"
}

// refused returns the URL of a Redis that refuses connections.
func refused(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "redis://" + addr + "/0"
}

// TestProfilesRedisDown: a Redis that refuses or never answers costs a
// poll at most the timeout, then is left alone for profileRetryAfter;
// records are flagged profile_missing and counted as unavailable.
func TestProfilesRedisDown(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(*testing.T) string
	}{{"refused", refused}, {"silent", blackhole}} {
		t.Run(tc.name, func(t *testing.T) {
			const timeout = 50 * time.Millisecond
			p, m, clock := testProfiles(t, tc.url(t), timeout)
			params := testParams()
			params.profiles = p
			tk, c := newTask(0, params), newBatchCounts()
			var recs []*kgo.Record
			for i := range 300 {
				recs = append(recs, txRecord(t, 0, int64(i), testTx(fmt.Sprintf("t%d", i), fmt.Sprintf("card-%d", i%50),
					time.Unix(0, t0).Add(time.Duration(i)*time.Second))))
			}
			begin := time.Now()
			p.prefetch(context.Background(), fetchesOf(recs...))
			if d := time.Since(begin); d > 10*timeout {
				t.Errorf("a lookup against a dead Redis took %s, timeout %s", d, timeout)
			} else {
				t.Logf("lookup gave up after %s", d.Round(time.Millisecond))
			}
			for _, r := range recs {
				if f := decodeOut(t, tk.process(r, &c)[0]).Features; !f.ProfileMissing {
					t.Fatalf("%s scored with a profile while Redis is down", r.Key)
				}
			}
			if c.profileMissing != 300 || c.profileUnavailable != 300 || testutil.ToFloat64(m.profileErrors) != 1 {
				t.Errorf("missing %d unavailable %d errors %v, want 300, 300, 1", c.profileMissing, c.profileUnavailable,
					testutil.ToFloat64(m.profileErrors))
			}
			// Left alone until profileRetryAfter has passed, then retried.
			begin = time.Now()
			p.prefetch(context.Background(), fetchesOf(recs...))
			if d := time.Since(begin); d > timeout/2 || testutil.ToFloat64(m.profileErrors) != 1 {
				t.Errorf("retried at once: %s, %v errors", d, testutil.ToFloat64(m.profileErrors))
			}
			*clock = clock.Add(profileRetryAfter)
			p.prefetch(context.Background(), fetchesOf(recs...))
			if testutil.ToFloat64(m.profileErrors) != 2 {
				t.Errorf("not retried after %s", profileRetryAfter)
			}
		})
	}
}

// BenchmarkProfilePrefetch measures the lookup of one poll of 2,000
// records over 2,000 cards, all cache misses (every profile present),
// against a real Redis: one pipelined MGET round trip.
func BenchmarkProfilePrefetch(b *testing.B) {
	url := testenv.Redis(b)
	opts, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	tier := 1
	v, _ := event.Profile{HomeCountry: "DE", AccountOpened: "2020-01-01", RiskTier: &tier}.Encode()
	recs := make([]*kgo.Record, 2000)
	for i := range recs {
		card := fmt.Sprintf("card-%d", i)
		if err := rdb.Set(context.Background(), event.ProfileKey(card), v, 0).Err(); err != nil {
			b.Fatal(err)
		}
		recs[i] = &kgo.Record{Key: []byte(card)}
	}
	m, _ := newMetrics(prometheus.NewRegistry())
	clock := time.Now()
	cfg := DefaultConfig()
	cfg.RedisURL, cfg.RedisTimeout = url, time.Second
	p, err := newProfiles(cfg, slog.New(slog.DiscardHandler), m, func() time.Time { return clock })
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	fs := fetchesOf(recs...)
	b.ReportAllocs()
	for b.Loop() {
		clock = clock.Add(cfg.ProfileCacheTTL) // every entry expired
		p.prefetch(context.Background(), fs)
	}
	if testutil.ToFloat64(m.profileErrors) != 0 {
		b.Fatal("lookups failed")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/record")
}
