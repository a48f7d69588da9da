package alerts

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/testenv"
)

// BenchmarkSinkVsRawCopy compares, in one run on one PostgreSQL, the
// sink's SaveBatch (COPY into a temp table, INSERT … ON CONFLICT DO
// NOTHING, offsets, one transaction) with a bare COPY of the same rows
// into a table of the same shape (columns, constraints and indexes:
// the cost of keeping the table queryable is the same for both). The
// issue's target: ratio ≥ 0.7.
//
//	go test -run '^$' -bench SinkVsRawCopy -benchtime 20x ./services/alerts/
func BenchmarkSinkVsRawCopy(b *testing.B) {
	url := testenv.Postgres(b)
	ctx := context.Background()
	s, err := OpenStore(ctx, url, 4, discardLog())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pg := s.(*pgStore)
	if _, err := pg.pool.Exec(ctx, `CREATE TABLE raw_copy (LIKE scored_transactions INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	mk := func(prefix string, it int) []Record {
		rows := make([]Record, batch)
		for i := range rows {
			rows[i] = rec(fmt.Sprintf("%s-%d-%d", prefix, it, i), int32(i%4), int64(it*batch+i))
			rows[i].Value, _ = rows[i].Scored.Encode() // the sink stores the consumed bytes
		}
		return rows
	}
	var sinkTime, copyTime time.Duration
	for it := range b.N {
		rows := mk("s", it)
		start := time.Now()
		if _, err := s.SaveBatch(ctx, event.TopicScored, rows, map[int32]int64{0: int64(it*batch + batch)}); err != nil {
			b.Fatal(err)
		}
		sinkTime += time.Since(start)

		rows = mk("c", it)
		start = time.Now()
		src := make([][]any, len(rows))
		for i, r := range rows {
			t := r.Scored.Transaction
			rec, err := compressRecord(r.Value) // the stored form, as the sink stores it
			if err != nil {
				b.Fatal(err)
			}
			src[i] = []any{t.EventTime, r.Offset, nullTime(r.Scored.ScoredAt), r.Partition, r.Scored.Decision,
				t.TransactionID, t.CardID, rec, "r"}
		}
		if _, err := pg.pool.CopyFrom(ctx, pgx.Identifier{"raw_copy"}, append(pgColumns[:len(pgColumns):len(pgColumns)], "class"), pgx.CopyFromRows(src)); err != nil {
			b.Fatal(err)
		}
		copyTime += time.Since(start)
	}
	n := float64(b.N * batch)
	sinkRate, copyRate := n/sinkTime.Seconds(), n/copyTime.Seconds()
	b.ReportMetric(sinkRate, "sink-rows/s")
	b.ReportMetric(copyRate, "copy-rows/s")
	b.ReportMetric(sinkRate/copyRate, "ratio")
}

// BenchmarkStreamFanout200 measures the live stream end to end over HTTP:
// one publisher, 200 SSE clients each reading every event. The reported
// events/s is what every one of the 200 clients received per second; the
// issue's target is 5k events/s without slowing the sink, which the hub
// guarantees by never blocking publish (slow clients are dropped, counted
// as kicked).
//
//	go test -run '^$' -bench '^BenchmarkStreamFanout200$' -benchtime 20000x ./services/alerts/
func BenchmarkStreamFanout200(b *testing.B) {
	const clients = 200
	m := newMetrics(prometheus.NewRegistry())
	// Queues that hold the whole run: this measures how fast the handlers
	// deliver, not the drop policy (an unthrottled publisher outruns any
	// client, and BenchmarkSinkWithStreamFanout200 covers a real rate).
	h := newHub(max(b.N, DefaultSSEBuffer), clients+10, m)
	h.start([]int64{0, 0, 0, 0})
	svc := &Service{cfg: DefaultConfig(), log: discardLog(), hub: h, m: m}
	srv := httptest.NewServer(http.HandlerFunc(svc.stream))
	defer srv.Close()

	var received atomic.Int64
	var ready, done sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &http.Transport{MaxConnsPerHost: clients + 10, MaxIdleConnsPerHost: clients + 10}
	hc := &http.Client{Transport: tr}
	for range clients {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
			resp, err := hc.Do(req)
			if err != nil {
				ready.Done()
				return
			}
			defer resp.Body.Close()
			r := bufio.NewReaderSize(resp.Body, 64<<10)
			signalled := false
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					if !signalled {
						ready.Done()
					}
					return
				}
				if !signalled && len(line) > 3 && string(line[:3]) == "id:" {
					ready.Done() // subscribed: the first id line came
					signalled = true
				}
				if len(line) > 6 && string(line[:6]) == "event:" {
					received.Add(1)
				}
			}
		}()
	}
	ready.Wait()
	data := []byte(`{"schema":"fraudstream.scored.v1","transaction":{"transaction_id":"bench","card_id":"c"},"score":0.5,"decision":"review"}`)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		h.publish(int32(i%4), int64(i/4), data)
	}
	publishTime := time.Since(start)
	want := int64(b.N) * clients
	deadline := time.Now().Add(60 * time.Second)
	for received.Load() < want && time.Now().Before(deadline) {
		if kicked := testutilKicked(m); kicked > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s/client")
	b.ReportMetric(float64(publishTime.Nanoseconds())/float64(b.N), "publish-ns/event")
	b.ReportMetric(testutilKicked(m), "kicked")
	b.ReportMetric(float64(received.Load())/float64(want), "delivered")
	cancel()
	srv.CloseClientConnections()
	done.Wait()
}

func testutilKicked(m *metrics) float64 {
	var mm dto.Metric
	_ = m.sseSlowKicked.Write(&mm)
	return mm.GetCounter().GetValue()
}

// BenchmarkSinkWithStreamFanout200 runs the whole alerts service on kfake
// with records produced at 5k/s (transactions of 250 every 50 ms, as the
// scorer commits), first with no stream client, then with 200 real SSE
// clients in the same process, and reports for each phase the sink's rows/s
// (rows of the phase / time from its first record until all are stored),
// its tail (last record committed → stored) and its database time per 1,000
// rows; and for the 200 clients the events/s each received (over the time
// until it had every event of the phase), how many were delivered, and the
// drops (slow disconnects, resets, reconnects). Issue 7's target: fan-out
// to 200 clients at 5k events/s without slowing the sink.
//
//	go test -run '^$' -bench SinkWithStreamFanout200 -benchtime 1x ./services/alerts/
func BenchmarkSinkWithStreamFanout200(b *testing.B) {
	for _, db := range []struct {
		name string
		url  func(testing.TB) string
	}{
		{"sqlite", func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), "alerts.db") }},
		{"postgres", testenv.Postgres},
	} {
		b.Run(db.name, func(b *testing.B) {
			for range b.N {
				benchSinkWithFanout(b, db.url(b))
			}
		})
	}
}

func benchSinkWithFanout(b *testing.B, dbURL string) {
	const (
		clients = 200
		rate    = 5000 // records/s
		perTxn  = 250
		phase   = 10 * time.Second
		parts   = 4
	)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, event.TopicScored, event.TopicStats, event.TopicScoredDLQ),
		kfake.SeedTopics(1, event.TopicRules))
	if err != nil {
		b.Fatal(err)
	}
	defer kc.Close()
	cfg := DefaultConfig() // production batch, flush and SSEBuffer
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = kc.ListenAddrs()
	cfg.DatabaseURL = dbURL
	svc, err := New(cfg, Deps{Log: discardLog()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			b.Error(err)
		}
	}()
	select {
	case <-svc.Ready():
	case <-time.After(20 * time.Second):
		b.Fatal("alerts not ready")
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.TransactionalID("bench-fanout"),
		kgo.DefaultProduceTopic(event.TopicScored), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer pcl.Close()

	saveSeconds := func() float64 {
		var mm dto.Metric
		_ = svc.m.batchSeconds.Write(&mm)
		return mm.GetHistogram().GetSampleSum()
	}
	type result struct {
		produceRate                     float64
		sinkRate, sinkTail, saveMsPer1k float64
		clientRates                     []float64
		delivered, kicked, resets       float64
		reconnects                      int64
		streamTail                      time.Duration
	}
	seq := 0
	run := func(nClients int) result {
		var res result
		rows0, save0, kicked0 := testutil.ToFloat64(svc.m.rowsStored), saveSeconds(), testutil.ToFloat64(svc.m.sseSlowKicked)
		want := int(rate * phase / time.Second)
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		counts := make([]atomic.Int64, nClients)
		doneAt := make([]atomic.Int64, nClients) // unix ns of the client's last wanted event
		var reconnects, resets atomic.Int64
		var wg sync.WaitGroup
		hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: nClients + 10, MaxIdleConnsPerHost: nClients + 10}}
		for i := range nClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &sseClient{url: "http://" + svc.Addr() + "/api/v1/stream", hc: hc, skipData: true}
				c.onEvent = func(name string, _ []byte) bool {
					if name == "scored" && counts[i].Add(1) == int64(want) {
						doneAt[i].Store(time.Now().UnixNano())
					}
					return true
				}
				for first := true; pctx.Err() == nil; first = false {
					if !first {
						reconnects.Add(1) // EventSource would reconnect the same way
						time.Sleep(100 * time.Millisecond)
					}
					_ = c.session(pctx)
				}
				resets.Add(c.resets.Load())
			}()
		}
		for deadline := time.Now().Add(30 * time.Second); testutil.ToFloat64(svc.m.sseClients) < float64(nClients); {
			if time.Now().After(deadline) {
				b.Fatalf("only %v of %d stream clients subscribed", testutil.ToFloat64(svc.m.sseClients), nClients)
			}
			time.Sleep(10 * time.Millisecond)
		}

		start := time.Now()
		for n := 0; n < want; n += perTxn {
			time.Sleep(time.Until(start.Add(time.Duration(n) * time.Second / rate)))
			recs := make([]*kgo.Record, perTxn)
			for j := range recs {
				v, _ := scored(fmt.Sprintf("f-%d", seq), event.DecisionReview).Encode()
				recs[j] = &kgo.Record{Value: v, Partition: int32(seq % parts)}
				seq++
			}
			if err := pcl.BeginTransaction(); err != nil {
				b.Fatal(err)
			}
			if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			if err := pcl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				b.Fatal(err)
			}
		}
		produced := time.Now()
		res.produceRate = float64(want) / produced.Sub(start).Seconds()
		for testutil.ToFloat64(svc.m.rowsStored)-rows0 < float64(want) {
			if time.Since(produced) > time.Minute {
				b.Fatalf("sink stored %v of %d rows", testutil.ToFloat64(svc.m.rowsStored)-rows0, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
		stored := time.Now()
		res.sinkRate = float64(want) / stored.Sub(start).Seconds()
		res.sinkTail = float64(stored.Sub(produced).Milliseconds())
		res.saveMsPer1k = (saveSeconds() - save0) * 1000 / (float64(want) / 1000)

		if nClients > 0 {
			all := func() bool {
				for i := range counts {
					if counts[i].Load() < int64(want) {
						return false
					}
				}
				return true
			}
			for deadline := time.Now().Add(30 * time.Second); !all() && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			var last int64
			var total int64
			for i := range counts {
				total += counts[i].Load()
				if at := doneAt[i].Load(); at > 0 {
					res.clientRates = append(res.clientRates, float64(want)/time.Unix(0, at).Sub(start).Seconds())
					last = max(last, at)
				} else {
					res.clientRates = append(res.clientRates, float64(counts[i].Load())/time.Since(start).Seconds())
				}
			}
			if last > 0 {
				res.streamTail = time.Unix(0, last).Sub(produced)
			}
			res.delivered = float64(total) / float64(want*nClients)
		}
		stop()
		wg.Wait()
		res.kicked = testutil.ToFloat64(svc.m.sseSlowKicked) - kicked0
		res.resets = float64(resets.Load())
		res.reconnects = reconnects.Load()
		hc.CloseIdleConnections()
		return res
	}

	alone := run(0)
	with := run(clients)
	sort.Float64s(with.clientRates)
	b.ReportMetric(alone.produceRate, "produced/s-alone")
	b.ReportMetric(with.produceRate, "produced/s-200")
	b.ReportMetric(alone.sinkRate, "sink-rows/s-alone")
	b.ReportMetric(with.sinkRate, "sink-rows/s-200")
	b.ReportMetric(alone.sinkTail, "sink-tail-ms-alone")
	b.ReportMetric(with.sinkTail, "sink-tail-ms-200")
	b.ReportMetric(alone.saveMsPer1k, "save-ms/1k-alone")
	b.ReportMetric(with.saveMsPer1k, "save-ms/1k-200")
	b.ReportMetric(with.clientRates[0], "client-ev/s-min")
	b.ReportMetric(with.clientRates[len(with.clientRates)/2], "client-ev/s-median")
	b.ReportMetric(with.delivered, "delivered")
	b.ReportMetric(float64(with.streamTail.Milliseconds()), "stream-tail-ms")
	b.ReportMetric(with.kicked, "kicked")
	b.ReportMetric(with.resets, "resets")
	b.ReportMetric(float64(with.reconnects), "reconnects")
}
