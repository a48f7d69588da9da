package ingest

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/internal/testenv"
)

// benchBody returns transaction i as JSON without a per-call json.Marshal,
// so the client side of a benchmark costs little CPU.
func benchBody(prefix string, i int64) []byte {
	b := make([]byte, 0, 400)
	b = append(b, `{"transaction_id":"`...)
	b = append(b, prefix...)
	b = strconv.AppendInt(b, i, 10)
	b = append(b, `","card_id":"card-`...)
	b = strconv.AppendInt(b, i%1000, 10)
	b = append(b, `","amount_minor":1999,"currency":"EUR","merchant_id":"m-7","merchant_category":"5411",`+
		`"merchant_country":"DE","channel":"card_present","lat":52.52,"lon":13.405,"device_id":"dev-1",`+
		`"ip":"192.0.2.7","event_time":"2026-03-01T11:59:00Z"}`...)
	return b
}

// startBenchService runs the service logging at info, the production
// default: at debug (the tests' level) kgo logs every produce request,
// which the benchmarks would measure instead of the service.
func startBenchService(b *testing.B, cfg Config) string {
	log := slog.New(slog.NewTextHandler(tWriter{b}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	_, base := startServiceLog(b, cfg, log)
	return base
}

func benchConfig(b *testing.B) Config {
	cfg := testConfig(b, newCluster(b))
	cfg.RedisURL = testenv.Redis(b) // a real redis-server, as in production
	cfg.RateLimit, cfg.RateBurst = 100_000_000, 100_000_000
	return cfg
}

// runPosts sends POSTs of benchBody from GOMAXPROCS×p keep-alive clients
// until b.N are done, failing on any status but want.
func runPosts(b *testing.B, url, prefix string, want int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(benchBody(prefix, n.Add(1))))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

var benchRun atomic.Int64 // keeps transaction ids unique across runs

// BenchmarkIngestSingle compares, in one run, POST /v1/transactions through
// the whole service (auth, rate limit and idempotency in a real Redis,
// validation, produce to an in-process kfake broker, acknowledgement) with
// a bare handler that only decodes and validates the same body and answers
// 202. Both are served over loopback HTTP with keep-alive; b.RunParallel
// gives GOMAXPROCS×-cpu… concurrent clients (SetParallelism raises it).
//
//	go test ./services/ingest -run '^$' -bench 'BenchmarkIngest' -benchtime 5s
func BenchmarkIngestSingle(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, e := readBody(w, r, DefaultMaxBodyBytes)
			if e == nil {
				t, e2 := decodeTransaction(bodyString(body), testNow, DefaultMaxSkew)
				if e2 == nil {
					writeJSON(w, http.StatusAccepted, Accepted{TransactionID: t.TransactionID})
					return
				}
				e = e2
			}
			writeProblem(w, e)
		}))
		defer srv.Close()
		b.SetParallelism(16)
		runPosts(b, srv.URL, fmt.Sprintf("bare-%d-", benchRun.Add(1)), http.StatusAccepted)
	})
	b.Run("full", func(b *testing.B) {
		base := startBenchService(b, benchConfig(b))
		b.SetParallelism(16)
		runPosts(b, base+"/v1/transactions", fmt.Sprintf("full-%d-", benchRun.Add(1)), http.StatusAccepted)
	})
}

// BenchmarkIngestBatch posts 1000-item NDJSON batches through the whole
// service and reports transactions per second.
func BenchmarkIngestBatch(b *testing.B) {
	const items = 1000
	cfg := benchConfig(b)
	base := startBenchService(b, cfg)
	url := base + "/v1/transactions/batch"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	prefix := fmt.Sprintf("batch-%d-", benchRun.Add(1))
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		var buf bytes.Buffer
		for pb.Next() {
			buf.Reset()
			first := n.Add(items) - items
			for i := range int64(items) {
				buf.Write(benchBody(prefix, first+i))
				buf.WriteByte('\n')
			}
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(buf.Bytes()))
			req.Header.Set("Content-Type", "application/x-ndjson")
			req.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusMultiStatus || !bytes.Contains(body, []byte(`"accepted":1000,`)) {
				b.Errorf("status %d: %.300s", resp.StatusCode, body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*items)/time.Since(start).Seconds(), "tx/s")
}
