package scorer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer"
	"github.com/fraudstream/fraudstream/tools/testenv"
)

// BenchmarkScorerVsCopyLoop is the speed check of issue 4: the scorer's
// throughput against the cheapest exactly-once processor there is, a plain
// GroupTransactSession loop that copies raw-transactions to
// scored-transactions. Both run against the same in-process kfake broker on
// the same n records, with the same batch bounds (commit interval and
// maximum records per transaction), the same read_committed consumption and
// the same completion check, one after the other. Each iteration uses a
// fresh broker and swaps which of the two goes first; the metrics are over
// all iterations:
//
//	go test -run '^$' -bench ScorerVsCopyLoop -benchtime 4x ./services/scorer/
//
// copy-records/s and scorer-records/s are the two rates, ratio is scorer
// over copy (issue 4 asks for at least 0.6).
//
// A third loop runs beside them on the same input: the codec loop, the copy
// loop that also does the least any scorer must do per record under the
// JSON wire format (docs/architecture.md), decode and validate the JSON transaction and
// encode a JSON scored record that carries it (zero features, no state, no
// changelog). Its rate over the copy loop's, codec-ratio, is a ceiling for
// ratio: a scorer that computed its features for free would still be
// slower than the codec loop. The rates move with whatever
// else the machine runs; the CPU time the process spent per record during
// each run (broker, clients and processor together: copy-cpu-µs/rec,
// scorer-cpu-µs/rec) moves much less, so cpu-ratio, copy's CPU per record
// over the scorer's, tells a change in the scorer's cost on a busy machine.
func BenchmarkScorerVsCopyLoop(b *testing.B) {
	const n = 200_000
	var copyTime, scorerTime, codecTime time.Duration
	var copyCPU, scorerCPU, codecCPU time.Duration
	var runs int
	for i := range b.N {
		b.StopTimer()
		brokers, stop := newBenchCluster(b)
		seedBenchInput(b, brokers, n)
		cfg := testConfig(brokers, fmt.Sprintf("scorer-vs-copy-%d", i))
		cfg.CommitInterval = scorer.DefaultCommitInterval
		cfg.MaxBatchRecords = scorer.DefaultMaxBatchRecords
		cfg.TransactionTimeout = scorer.DefaultTransactionTimeout
		b.StartTimer()
		runCopy := func() {
			cpu := testenv.ProcessCPU(b)
			copyTime += runCopyLoop(b, brokers, cfg, false)
			copyCPU += testenv.ProcessCPU(b) - cpu
		}
		runCodec := func() {
			cpu := testenv.ProcessCPU(b)
			codecTime += runCopyLoop(b, brokers, cfg, true)
			codecCPU += testenv.ProcessCPU(b) - cpu
		}
		runScoring := func() {
			cpu := testenv.ProcessCPU(b)
			scorerTime += runScorer(b, brokers, cfg)
			scorerCPU += testenv.ProcessCPU(b) - cpu
		}
		if i%2 == 0 {
			runCopy()
			runScoring()
			runCodec()
		} else {
			runCodec()
			runScoring()
			runCopy()
		}
		runs++
		b.StopTimer()
		stop()
	}
	copyRate := float64(runs*n) / copyTime.Seconds()
	scorerRate := float64(runs*n) / scorerTime.Seconds()
	b.ReportMetric(copyRate, "copy-records/s")
	b.ReportMetric(scorerRate, "scorer-records/s")
	b.ReportMetric(scorerRate/copyRate, "ratio")
	codecRate := float64(runs*n) / codecTime.Seconds()
	b.ReportMetric(codecRate, "codec-records/s")
	b.ReportMetric(codecRate/copyRate, "codec-ratio")
	perRecord := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(runs*n) }
	b.ReportMetric(perRecord(copyCPU), "copy-cpu-µs/rec")
	b.ReportMetric(perRecord(scorerCPU), "scorer-cpu-µs/rec")
	b.ReportMetric(perRecord(copyCPU)/perRecord(scorerCPU), "cpu-ratio")
	b.ReportMetric(perRecord(codecCPU), "codec-cpu-µs/rec")
}

// newBenchCluster starts an in-process kfake broker with the pipeline's
// topics, as BenchmarkScorerPipeline does.
func newBenchCluster(b *testing.B) (brokers []string, stop func()) {
	b.Helper()
	return pipelineCluster(b)
}

// seedBenchInput produces the input of BenchmarkScorerPipeline: n
// transactions of 5000 cards, 1 ms apart in event time.
func seedBenchInput(b *testing.B, brokers []string, n int) {
	b.Helper()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	base := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	rs := make([]*kgo.Record, 0, 10_000)
	for i := range n {
		x := tx(fmt.Sprintf("p-%07d", i), fmt.Sprintf("card-%d", i%5000), base.Add(time.Duration(i)*time.Millisecond))
		v, err := x.Encode()
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, &kgo.Record{Topic: event.TopicRaw, Key: []byte(x.CardID), Value: v})
		if len(rs) == cap(rs) || i == n-1 {
			if err := prod.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			rs = rs[:0]
		}
	}
}

// waitGroupCaughtUp waits until group has committed the end offset of
// every raw-transactions partition, polling as BenchmarkScorerPipeline does.
func waitGroupCaughtUp(b *testing.B, brokers []string, group string, failed <-chan error) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		ends, err1 := adm.ListEndOffsets(context.Background(), event.TopicRaw)
		committed, err2 := adm.FetchOffsets(context.Background(), group)
		if err1 == nil && err2 == nil {
			var left int64
			ends.Each(func(o kadm.ListedOffset) {
				c, _ := committed.Lookup(o.Topic, o.Partition)
				left += o.Offset - max(c.At, 0)
			})
			if left == 0 {
				return
			}
		}
		select {
		case err := <-failed:
			b.Fatalf("stopped before catching up: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runScorer runs the scorer from the start of raw-transactions until its
// group has committed the end, and returns the time that took.
func runScorer(b *testing.B, brokers []string, cfg scorer.Config) time.Duration {
	b.Helper()
	svc, err := scorer.New(cfg, scorer.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	begin := time.Now()
	go func() { done <- svc.Run(ctx) }()
	waitGroupCaughtUp(b, brokers, cfg.GroupID, done)
	elapsed := time.Since(begin)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed
}

// runCopyLoop runs copyLoop (the codec loop if codec is set) in its own
// group and transactional id, from the start of raw-transactions until it
// has committed the end, and returns the time that took.
func runCopyLoop(b *testing.B, brokers []string, cfg scorer.Config, codec bool) time.Duration {
	b.Helper()
	suffix := "-copy"
	if codec {
		suffix = "-codec"
	}
	cfg.GroupID += suffix
	cfg.TransactionalID += suffix
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	begin := time.Now()
	go func() { done <- copyLoop(ctx, brokers, cfg, codec) }()
	waitGroupCaughtUp(b, brokers, cfg.GroupID, done)
	elapsed := time.Since(begin)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed
}

// copyLoop is the baseline: the scorer's batch loop (loop.go) with the
// scoring taken out. It consumes raw-transactions read_committed in a
// GroupTransactSession and, per transaction bounded by cfg.CommitInterval
// and cfg.MaxBatchRecords, produces each record's key and value unchanged
// to the same partition of scored-transactions, then commits them with the
// input offsets. With codec set it produces, instead of the input value,
// codecRecord's scored record, and fails on a record that does not decode.
func copyLoop(ctx context.Context, brokers []string, cfg scorer.Config, codec bool) error {
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(brokers...),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.ConsumerGroup(cfg.GroupID),
		kgo.ConsumeTopics(event.TopicRaw),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		return err
	}
	defer sess.Close()
	var mu sync.Mutex
	var produceErr error
	promise := func(_ *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && produceErr == nil {
			produceErr = err
		}
	}
	produce := func(fetches kgo.Fetches) int {
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			out := &kgo.Record{Topic: event.TopicScored, Partition: r.Partition, Key: r.Key, Value: r.Value}
			if codec {
				if err := codecRecord(r, out); err != nil {
					promise(out, err)
					return
				}
			}
			sess.Produce(ctx, out, promise)
			n++
		})
		return n
	}
	for {
		fetches := sess.PollRecords(ctx, cfg.MaxBatchRecords)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.Empty() {
			continue
		}
		if err := sess.Begin(); err != nil {
			return err
		}
		records := produce(fetches)
		deadline := time.Now().Add(cfg.CommitInterval)
		for records < cfg.MaxBatchRecords {
			wait := time.Until(deadline)
			if wait <= 0 {
				break
			}
			pctx, cancel := context.WithTimeout(ctx, wait)
			fetches := sess.PollRecords(pctx, cfg.MaxBatchRecords-records)
			cancel()
			if ctx.Err() != nil {
				_, _ = sess.End(context.Background(), kgo.TryAbort)
				return nil
			}
			records += produce(fetches)
		}
		if err := sess.Client().Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// Promises have all run once Flush returns.
		mu.Lock()
		err := produceErr
		mu.Unlock()
		if err != nil {
			return err
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		_ = committed // false after a rebalance: the session rewound, go on

	}
}

// codecRecord sets out's value to the scored record of the transaction in
// r, with no features and an approving decision, and its scored-at header,
// as the scorer's decode and encode stages write them (task.go).
func codecRecord(r, out *kgo.Record) error {
	tx, err := event.DecodeTransaction(r.Value)
	if err == nil {
		err = tx.Validate(time.Time{}, 0)
	}
	if err != nil {
		return fmt.Errorf("codec loop: offset %d: %w", r.Offset, err)
	}
	s := event.Scored{
		Transaction:  tx,
		Decision:     event.DecisionApprove,
		ModelVersion: "codec-loop",
		Partition:    r.Partition,
		Offset:       r.Offset,
		ScoredAt:     time.Now(),
	}
	buf := make([]byte, 0, s.SizeHint()+len(time.RFC3339Nano))
	if buf, err = s.AppendEncode(buf); err != nil {
		return err
	}
	out.Value = buf[:len(buf):len(buf)]
	n := len(buf)
	buf = s.ScoredAt.AppendFormat(buf, time.RFC3339Nano)
	out.Headers = []kgo.RecordHeader{{Key: event.HeaderScoredAt, Value: buf[n:]}}
	return nil
}
