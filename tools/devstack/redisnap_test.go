package devstack

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/ingest"
)

// TestRestartKeepsIdempotency: a transaction posted before a clean restart
// of the dev stack on the same data dir is answered from its idempotency
// record afterwards (the first answer, replayed), not accepted as new.
func TestRestartKeepsIdempotency(t *testing.T) {
	dir := t.TempDir()
	tx := event.Transaction{TransactionID: "restart-1", CardID: "card-restart", AmountMinor: 4599, Currency: "USD",
		MerchantID: "m-coffee", MerchantCategory: "5814", MerchantCountry: "US", Channel: event.ChannelCardPresent,
		EventTime: time.Now().UTC().Truncate(time.Second)}
	body, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	first, replayed := postOnce(t, dir, body)
	if replayed != "" {
		t.Fatalf("first post replayed (%q): %s", replayed, first)
	}
	if _, err := os.Stat(filepath.Join(dir, snapshotFile)); err != nil {
		t.Fatalf("no snapshot after a clean stop: %v", err)
	}
	second, replayed := postOnce(t, dir, body)
	if replayed != "true" {
		t.Fatalf("after a restart the same transaction was accepted as new: %s (first %s)", second, first)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("replayed answer %s, want the first one %s", second, first)
	}
}

// postOnce starts the dev stack on dir, posts body until it is answered
// 202, stops the stack cleanly and returns the answer and its
// Idempotent-Replayed header.
func postOnce(t *testing.T, dir string, body []byte) ([]byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	stack, err := Start(ctx, Config{DataDir: dir, BrokerListen: "127.0.0.1:0", Partitions: 2,
		IngestAddr: "127.0.0.1:0", ScorerAddr: "127.0.0.1:0", AlertsAddr: "127.0.0.1:0"}, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- stack.Run(runCtx) }()
	var answer []byte
	var replayed string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, stack.IngestURL()+"/v1/transactions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+stack.APIKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			replayed = resp.Header.Get(ingest.ReplayedHeader)
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable || ctx.Err() != nil {
			t.Fatalf("POST: %d %s", resp.StatusCode, answer)
		}
		time.Sleep(200 * time.Millisecond) // broker not ready yet
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("stack.Run: %v", err)
	}
	return answer, replayed
}

// TestRedisSnapshotRoundTrip: every type with its expiry comes back, keys
// that expired while stopped do not, and binary values survive.
func TestRedisSnapshotRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := miniredis.NewMiniRedis()
	db0, db3 := src.DB(0), src.DB(3)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	binary := string([]byte{0, 0xff, 0xfe, '\n', 0x80})
	must(nil, db0.Set("str", binary))
	db0.SetTTL("str", time.Hour)
	must(nil, db0.Set("forever", "v"))
	must(nil, db0.Set("short", "gone"))
	db0.SetTTL("short", 2*time.Second)
	db0.HSet("hash", "a", "1", "b", "2")
	must(db0.Push("list", "x", "y", "x"))
	must(db3.SetAdd("set", "p", "q"))
	must(db3.ZAdd("zset", 1.5, "m"))
	db3.SetTTL("zset", 10*time.Minute)

	saved := time.Now()
	s := newRedisSnapshot(src, dir, slog.New(slog.DiscardHandler))
	if n, err := s.save(saved); err != nil || n != 7 {
		t.Fatalf("save: %d keys, %v; want 7", n, err)
	}
	// Restored a minute later: "short" expired meanwhile, the rest lost a
	// minute of their TTLs.
	dst := miniredis.NewMiniRedis()
	n, err := newRedisSnapshot(dst, dir, slog.New(slog.DiscardHandler)).restore(saved.Add(time.Minute))
	if err != nil || n != 6 {
		t.Fatalf("restore: %d keys, %v; want 6", n, err)
	}
	d0, d3 := dst.DB(0), dst.DB(3)
	if v, _ := d0.Get("str"); v != binary {
		t.Errorf("str = %q, want %q", v, binary)
	}
	if ttl := d0.TTL("str"); ttl != 59*time.Minute {
		t.Errorf("str TTL %v, want 59m", ttl)
	}
	if ttl := d0.TTL("forever"); ttl != 0 {
		t.Errorf("forever got TTL %v", ttl)
	}
	if d0.Exists("short") {
		t.Error("a key that expired while stopped was restored")
	}
	if got := map[string]string{"a": d0.HGet("hash", "a"), "b": d0.HGet("hash", "b")}; !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("hash = %v", got)
	}
	if l, _ := d0.List("list"); !reflect.DeepEqual(l, []string{"x", "y", "x"}) {
		t.Errorf("list = %v", l)
	}
	if m, _ := d3.Members("set"); !reflect.DeepEqual(m, []string{"p", "q"}) {
		t.Errorf("set = %v", m)
	}
	if z, _ := d3.SortedSet("zset"); !reflect.DeepEqual(z, map[string]float64{"m": 1.5}) || d3.TTL("zset") != 9*time.Minute {
		t.Errorf("zset = %v, TTL %v", z, d3.TTL("zset"))
	}

	// A damaged file stops the start with its name, instead of silently
	// forgetting every idempotency record.
	if err := os.WriteFile(filepath.Join(dir, snapshotFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = newRedisSnapshot(miniredis.NewMiniRedis(), dir, slog.New(slog.DiscardHandler)).restore(time.Now())
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(snapshotFile)) {
		t.Errorf("damaged snapshot: got %v, want an error naming %s", err, snapshotFile)
	}
}
