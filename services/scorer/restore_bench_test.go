package scorer

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// BenchmarkRestore1MCards measures restoring one partition holding the
// state of a million cards (three transactions each, the realistic day of
// a card) from in-process kfake, and the heap held per restored card.
// Run with -benchtime=1x; producing the changelog is not timed.
func BenchmarkRestore1MCards(b *testing.B) {
	const cards = 1_000_000
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, event.TopicState))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()

	// One task scores three transactions for each card; its changelog
	// entries are the restore's input.
	p := testParams()
	src, counts := newTask(0, p), newBatchCounts()
	base := time.Unix(0, t0).UTC()
	var bytes int
	for i := 0; i < cards; i += 10_000 {
		for j := i; j < i+10_000; j++ {
			for k := range 3 {
				x := testTx(fmt.Sprintf("tx-%d-%d", j, k), fmt.Sprintf("card-%07d", j), base.Add(time.Duration(j%3600)*time.Second+time.Duration(k)*time.Hour))
				src.process(txRecord(b, 0, 0, x), &counts)
			}
		}
		rs := src.flush()
		for _, r := range rs {
			bytes += len(r.Key) + len(r.Value)
		}
		if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		src = newTask(0, p) // drop what is produced, to keep the benchmark's heap small
	}
	b.Logf("changelog: %d cards, %.1f MB, %.0f bytes per card", cards, float64(bytes)/1e6, float64(bytes)/cards)

	svc, err := New(Config{Addr: "127.0.0.1:0", Kafka: kafkaopt.Config{Brokers: c.ListenAddrs()}, TransactionalID: "bench"}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.ln.Close()
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		t := newTask(0, svc.params)
		start := time.Now()
		if err := svc.restore(context.Background(), t); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if len(t.cards) != cards || len(t.seen) != 3*cards {
			b.Fatalf("restored %d cards, %d ids", len(t.cards), len(t.seen))
		}
		b.ReportMetric(elapsed.Seconds(), "s/restore")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/cards, "heap-bytes/card")
		runtime.KeepAlive(t)
	}
}
