package scorer_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/testenv"
)

// TestScorerProfiles runs the service against a real Redis holding the
// profiles of some cards: those are enriched, the others flagged missing,
// and the metrics count them.
func TestScorerProfiles(t *testing.T) {
	url := testenv.Redis(t)
	opts, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	for c := range 10 {
		tier := c % 4
		v, _ := event.Profile{CardID: fmt.Sprintf("card-%d", c), HomeCountry: "GB", AccountOpened: "2024-01-01", RiskTier: &tier}.Encode()
		if err := rdb.Set(context.Background(), event.ProfileKey(fmt.Sprintf("card-%d", c)), v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	brokers := newCluster(t)
	prod := newClient(t, brokers)
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	var in []*kgo.Record
	for i := range 400 {
		in = append(in, rec(t, tx(fmt.Sprintf("p-%03d", i), fmt.Sprintf("card-%d", i%20), base.Add(time.Duration(i)*time.Second))))
	}
	produce(t, prod, in)
	cfg := testConfig(brokers, "scorer-profiles")
	cfg.RedisURL = url
	svc := start(t, cfg)
	waitCaughtUp(t, kadm.NewClient(prod), cfg.GroupID)
	_, metrics := get(t, "http://"+svc.svc.Addr()+"/metrics")
	svc.stop(t)

	for _, s := range readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted()) {
		x, _ := event.DecodeScored(s.Value)
		var n int
		fmt.Sscanf(x.Transaction.CardID, "card-%d", &n)
		f := x.Features
		if n < 10 {
			if f.ProfileMissing || !f.HomeCountryMismatch || f.RiskTier != int64(n%4) || f.AccountAgeDays < 854 || f.AccountAgeDays > 855 {
				t.Fatalf("%s (card %d, profile GB, tier %d, opened 2024-01-01): %+v", x.Transaction.TransactionID, n, n%4, f)
			}
		} else if !f.ProfileMissing || f.RiskTier != 0 || f.HomeCountryMismatch || f.AccountAgeDays != 0 {
			t.Fatalf("%s (no profile): %+v", x.Transaction.TransactionID, f)
		}
	}
	for _, line := range []string{
		"fraudstream_scorer_profile_missing_total 200",
		"fraudstream_scorer_profile_unavailable_total 0",
		"fraudstream_scorer_profile_lookup_errors_total 0",
	} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("no %q in /metrics", line)
		}
	}
}

// TestScorerRedisDownNoStall points the scorer at a Redis that accepts
// connections and never answers. Every record must still be scored and
// committed promptly, flagged profile_missing and counted as unavailable.
func TestScorerRedisDownNoStall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	brokers := newCluster(t)
	prod := newClient(t, brokers)
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	const n = 3000
	var in []*kgo.Record
	for i := range n {
		in = append(in, rec(t, tx(fmt.Sprintf("d-%04d", i), fmt.Sprintf("card-%d", i%300), base.Add(time.Duration(i)*time.Second))))
	}
	cfg := testConfig(brokers, "scorer-redis-down")
	cfg.RedisURL = "redis://" + ln.Addr().String() + "/0"
	cfg.MaxBatchRecords = 100
	svc := start(t, cfg)
	begin := time.Now()
	produce(t, prod, in)
	waitCaughtUp(t, kadm.NewClient(prod), cfg.GroupID)
	elapsed := time.Since(begin)
	_, metrics := get(t, "http://"+svc.svc.Addr()+"/metrics")
	svc.stop(t)

	scored := readTopic(t, brokers, event.TopicScored, kgo.ReadCommitted())
	if len(scored) != n {
		t.Fatalf("%d scored records, want %d", len(scored), n)
	}
	for _, r := range scored {
		if x, _ := event.DecodeScored(r.Value); !x.Features.ProfileMissing {
			t.Fatalf("%s scored with a profile", x.Transaction.TransactionID)
		}
	}
	for _, line := range []string{
		fmt.Sprintf("fraudstream_scorer_profile_missing_total %d", n),
		fmt.Sprintf("fraudstream_scorer_profile_unavailable_total %d", n),
	} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("no %q in /metrics", line)
		}
	}
	if !strings.Contains(metrics, "fraudstream_scorer_profile_lookup_errors_total ") ||
		strings.Contains(metrics, "fraudstream_scorer_profile_lookup_errors_total 0\n") {
		t.Errorf("no lookup errors counted")
	}
	t.Logf("%d records in %d-record batches scored in %s with Redis silent", n, cfg.MaxBatchRecords, elapsed.Round(time.Millisecond))
}
