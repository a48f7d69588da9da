package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/testenv"
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
// until b.N are done, failing on any status but want. It reports the
// process's CPU per request, and redis-server's when rdb is not nil.
func runPosts(b *testing.B, url, prefix string, want int, rdb *redis.Client) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	var n atomic.Int64
	var redisCPU time.Duration
	if rdb != nil {
		redisCPU = redisCPUTime(b, rdb)
	}
	cpu := testenv.ProcessCPU(b)
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
	b.ReportMetric(float64((testenv.ProcessCPU(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/req")
	if rdb != nil {
		b.ReportMetric(float64((redisCPUTime(b, rdb)-redisCPU).Microseconds())/float64(b.N), "redis-cpu-µs/req")
	}
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
		runPosts(b, srv.URL, fmt.Sprintf("bare-%d-", benchRun.Add(1)), http.StatusAccepted, nil)
	})
	b.Run("full", func(b *testing.B) {
		cfg := benchConfig(b)
		base := startBenchService(b, cfg)
		rdb := redisClient(b, cfg.RedisURL)
		b.SetParallelism(16)
		runPosts(b, base+"/v1/transactions", fmt.Sprintf("full-%d-", benchRun.Add(1)), http.StatusAccepted, rdb)
	})
}

// BenchmarkIngestBatch posts 1000-item NDJSON batches from two keep-alive
// clients and reports transactions per second: through the whole service
// (full), and, in the same run, through floorBatch (floor), the least a
// batch endpoint keeping ingest's promises must do per item. Issue 6 asks
// for 200,000 tx/s from the service; floor bounds what any implementation
// of those promises could reach with the same libraries on this machine.
// Both report the CPU this process (service, clients and the in-process
// broker) and redis-server spent per transaction.
//
//	go test ./services/ingest -run '^$' -bench 'BenchmarkIngestBatch' -benchtime 300x
func BenchmarkIngestBatch(b *testing.B) {
	b.Run("floor", func(b *testing.B) {
		cfg := benchConfig(b)
		f := newFloorBatch(b, cfg)
		srv := httptest.NewServer(f)
		defer srv.Close()
		postBatches(b, srv.URL, f.rdb)
	})
	b.Run("full", func(b *testing.B) {
		cfg := benchConfig(b)
		base := startBenchService(b, cfg)
		postBatches(b, base+"/v1/transactions/batch", redisClient(b, cfg.RedisURL))
	})
}

// postBatches posts b.N batches of 1000 benchBody transactions to url
// from two clients, failing on any answer but 207 with all 1000 accepted.
// rdb reads redis-server's CPU time before and after.
func postBatches(b *testing.B, url string, rdb *redis.Client) {
	const items = 1000
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	prefix := fmt.Sprintf("batch-%d-", benchRun.Add(1))
	var n atomic.Int64
	redisCPU := redisCPUTime(b, rdb)
	cpu := testenv.ProcessCPU(b)
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
	elapsed := time.Since(start)
	b.StopTimer()
	txs := float64(b.N * items)
	b.ReportMetric(txs/elapsed.Seconds(), "tx/s")
	b.ReportMetric(float64((testenv.ProcessCPU(b)-cpu).Microseconds())/txs, "cpu-µs/tx")
	b.ReportMetric(float64((redisCPUTime(b, rdb)-redisCPU).Microseconds())/txs, "redis-cpu-µs/tx")
}

// floorBatch is the floor of BenchmarkIngestBatch: per batch it reads the
// body and splits it; per item it decodes and validates the transaction,
// encodes the record with its ingest_time, claims the transaction_id in
// Redis (SET NX with a TTL, in one pipeline for the batch: no fingerprint,
// and no answer stored afterwards), produces the record with ingest's
// producer settings and waits for its acknowledgement; then it answers 207
// with each item's partition and offset. It has no authentication, rate
// limit, metrics, logging, replay or conflict detection, all of which the
// service must do besides.
type floorBatch struct {
	rdb *redis.Client
	cl  *kgo.Client
}

func newFloorBatch(b *testing.B, cfg Config) *floorBatch {
	opts, err := cfg.Kafka.Opts()
	if err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, producerOpts(cfg)...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return &floorBatch{rdb: redisClient(b, cfg.RedisURL), cl: cl}
}

func (f *floorBatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, e := readBody(w, r, DefaultMaxBatchBodyBytes)
	if e != nil {
		writeProblem(w, e)
		return
	}
	items, e := splitBatch(mediaNDJSON, bodyString(body), DefaultMaxBatchItems)
	if e != nil {
		writeProblem(w, e)
		return
	}
	ctx := r.Context()
	recs := make([]*kgo.Record, len(items))
	stored := make([]Accepted, len(items))
	pipe := f.rdb.Pipeline()
	for i, item := range items {
		tx, e := decodeTransaction(item, testNow, DefaultMaxSkew)
		if e != nil {
			writeProblem(w, e)
			return
		}
		canonical, err := tx.Encode()
		var v []byte
		if err == nil {
			v, err = withIngestTime(canonical, testNow)
		}
		if err != nil {
			writeProblem(w, &Error{Kind: KindInternal, Detail: err.Error()})
			return
		}
		recs[i] = &kgo.Record{Topic: event.TopicRaw, Key: []byte(tx.CardID), Value: v}
		pipe.SetNX(ctx, "floor:"+tx.TransactionID, "1", time.Minute)
		stored[i].TransactionID = tx.TransactionID
	}
	if _, err := pipe.Exec(ctx); err != nil {
		writeProblem(w, &Error{Kind: KindUnavailable, Detail: err.Error()})
		return
	}
	var wg sync.WaitGroup
	errs := make([]error, len(recs))
	wg.Add(len(recs))
	for i, rec := range recs {
		f.cl.Produce(ctx, rec, func(rec *kgo.Record, err error) {
			stored[i].Partition, stored[i].Offset, errs[i] = rec.Partition, rec.Offset, err
			wg.Done()
		})
	}
	wg.Wait()
	resp := BatchResponse{Results: make([]BatchResult, len(items))}
	for i := range items {
		if errs[i] != nil {
			writeProblem(w, &Error{Kind: KindUnavailable, Detail: errs[i].Error()})
			return
		}
		resp.Results[i] = BatchResult{Index: i, Status: http.StatusAccepted, TransactionID: stored[i].TransactionID,
			Partition: &stored[i].Partition, Offset: &stored[i].Offset}
		resp.Accepted++
	}
	writeBatchResponse(w, &resp)
}

// redisCPUTime is the user and system CPU time redis-server has used, from
// INFO cpu.
func redisCPUTime(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu: %s: %v", line, err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
