package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/testenv"
)

const testKey = "test-secret-key-0123456789"

// testNow is the fixed clock of every test service.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newCluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, event.TopicRaw))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestMain(m *testing.M) { testenv.Main(m) }

// newMiniredis is an in-process Redis for tests that are not about Redis;
// the idempotency and rate-limit tests use a real one (testenv.Redis).
func newMiniredis(t testing.TB) *miniredis.Miniredis {
	t.Helper()
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		t.Fatalf("miniredis: %v", err)
	}
	t.Cleanup(m.Close)
	return m
}

func testConfig(t testing.TB, c *kfake.Cluster) Config {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka = kafkaopt.Config{Brokers: c.ListenAddrs()}
	cfg.RedisURL = "redis://" + newMiniredis(t).Addr()
	cfg.APIKeys = []string{HashKey("other", "some-other-key"), HashKey("tester", testKey)}
	return cfg
}

// testLogger logs through t so output shows only for failing tests.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startService runs a Service until the test ends and returns its base URL.
func startService(t testing.TB, cfg Config) (*Service, string) {
	t.Helper()
	return startServiceLog(t, cfg, testLogger(t))
}

// startServiceLog is startService with its own logger.
func startServiceLog(t testing.TB, cfg Config, log *slog.Logger) (*Service, string) {
	t.Helper()
	s, err := New(cfg, Deps{Log: log, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return s, "http://" + s.Addr()
}

// validTx is a valid transaction as a JSON object; tests change fields.
func validTx() map[string]any {
	return map[string]any{
		"transaction_id":    "tx-0001",
		"card_id":           "card-42",
		"account_id":        "acct-9",
		"amount_minor":      1999,
		"currency":          "EUR",
		"merchant_id":       "m-7",
		"merchant_category": "5411",
		"merchant_country":  "DE",
		"channel":           "card_present",
		"lat":               52.52,
		"lon":               13.405,
		"device_id":         "dev-1",
		"ip":                "192.0.2.7",
		"event_time":        "2026-03-01T11:59:00Z",
	}
}

// txWith returns validTx as JSON with fields set (a nil value deletes).
func txWith(set map[string]any) []byte {
	m := validTx()
	maps.Copy(m, set)
	for k, v := range set {
		if v == nil {
			delete(m, k)
		}
	}
	b, _ := json.Marshal(m)
	return b
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func post(t testing.TB, url, contentType, auth string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func postTx(t testing.TB, base string, body []byte) response {
	t.Helper()
	return post(t, base+"/v1/transactions", "application/json", "Bearer "+testKey, body)
}

func decodeProblem(t testing.TB, r response) Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, r.body)
	}
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Status != r.status || p.Type == "" || p.Title == "" {
		t.Fatalf("problem %+v does not match status %d", p, r.status)
	}
	return p
}

// fetchRecord reads the record at partition/offset of raw-transactions.
func fetchRecord(t testing.TB, c *kfake.Cluster, partition int32, offset int64) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			event.TopicRaw: {partition: kgo.NewOffset().At(offset)},
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record at %s/%d@%d: %v", event.TopicRaw, partition, offset, err)
		}
		var found *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset == offset && found == nil {
				found = r
			}
		})
		if found != nil {
			return found
		}
	}
}

// readTopic reads every record of raw-transactions from the brokers, up to
// the end offsets at the time of the call, and counts them by
// transaction_id.
func readTopic(t testing.TB, brokers []string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, event.TopicRaw)
	adm.Close()
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	want := map[int32]int64{}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			total += o.Offset
		}
	})
	counts := map[string]int{}
	if total == 0 {
		return counts
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(event.TopicRaw),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %v (still waiting for %v)", event.TopicRaw, err, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			tx, err := event.DecodeTransaction(r.Value)
			if err != nil {
				t.Errorf("record %d@%d: %v", r.Partition, r.Offset, err)
			}
			counts[tx.TransactionID]++
			if r.Offset == end-1 {
				delete(want, r.Partition)
			}
		})
	}
	return counts
}
