package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/tools/devbroker"
)

// The crash test: a real alerts process, this test binary re-executed,
// is killed with SIGKILL at random moments while it sinks a stream, and
// restarted each time. At the end the database must hold exactly the
// committed scored records: none missing, none twice, no aborted one.

const (
	killChildEnv   = "FRAUDSTREAM_ALERTS_KILL_CHILD"
	killBrokersEnv = "FRAUDSTREAM_ALERTS_KILL_BROKERS"
	killDBEnv      = "FRAUDSTREAM_ALERTS_KILL_DB"
	killGroupEnv   = "FRAUDSTREAM_ALERTS_KILL_GROUP"
)

// runKillChild runs alerts as `fraudstream alerts` would, configured from
// the environment, until SIGTERM (or SIGKILL).
func runKillChild() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka.Brokers = strings.Split(os.Getenv(killBrokersEnv), ",")
	cfg.DatabaseURL = os.Getenv(killDBEnv)
	cfg.GroupID = os.Getenv(killGroupEnv)
	cfg.BatchSize = 500
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.Retention = RetentionPolicy{} // the records' event times are fixed days in the past
	svc, err := New(cfg, Deps{Log: log})
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := svc.Run(ctx); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

func TestSinkSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testSIGKILL(t, b.url(t), 20000, 12) })
	}
}

func testSIGKILL(t *testing.T, dbURL string, n, kills int) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const partitions = 4
	// The broker runs in this process and is only ever closed cleanly
	// (see tools/devbroker on kfake and SIGKILL).
	brk, err := devbroker.Start(ctx, devbroker.Config{Listen: "127.0.0.1:0", Partitions: partitions}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer brk.Close()

	// The producer writes n committed records in transactions of 100,
	// with an aborted transaction after every tenth, over a few seconds.
	prod, err := kgo.NewClient(kgo.SeedBrokers(brk.Addr()), kgo.TransactionalID("kill-test-producer"),
		kgo.DefaultProduceTopic(event.TopicScored))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	want := map[string]bool{}
	prodDone := make(chan error, 1)
	// The last tenth of the stream waits for the kills, so every kill
	// lands while records are still to come, however fast the sink is.
	var killsDone atomic.Bool
	go func() {
		prodDone <- func() error {
			for txn := 0; len(want) < n; txn++ {
				for len(want) >= n*9/10 && !killsDone.Load() {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					time.Sleep(10 * time.Millisecond)
				}
				commit := txn%11 != 10
				if err := prod.BeginTransaction(); err != nil {
					return err
				}
				var recs []*kgo.Record
				for i := range 100 {
					id := fmt.Sprintf("k-%d-%d", txn, i)
					if !commit {
						id = "aborted-" + id
					}
					s := scored(id, event.DecisionReview)
					s.Transaction.CardID = fmt.Sprintf("card-%d", (txn*100+i)%97)
					v, _ := s.Encode()
					recs = append(recs, &kgo.Record{Key: []byte(s.Transaction.CardID), Value: v})
					if commit {
						want[id] = true
					}
				}
				if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					return err
				}
				if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
					return err
				}
				time.Sleep(30 * time.Millisecond) // a stream over several seconds, not one burst
			}
			return nil
		}()
	}()

	// The store as the test reads it; the child writes it.
	store := openTestStore(t, dbURL)
	var child *exec.Cmd
	var stderr strings.Builder
	var mu sync.Mutex
	startChild := func(run int) {
		child = exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), killChildEnv+"=1", killBrokersEnv+"="+brk.Addr(), killDBEnv+"="+dbURL,
			// Offsets live in the database; the group only assigns
			// partitions. A fresh group per run spares each restart
			// the wait for the killed member's session to time out.
			fmt.Sprintf("%s=kill-test-%d", killGroupEnv, run))
		child.Stderr = &lockedWriter{mu: &mu, w: &stderr}
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int64 {
		c, err := store.Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var progress []string
	midStream := 0 // kills that landed before everything was stored
	run := 0
	for ; run < kills; run++ {
		startChild(run)
		// Kill at a random moment: often during start-up and migration,
		// often in the middle of a batch.
		time.Sleep(time.Duration(100+rng.IntN(800)) * time.Millisecond)
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		c := count()
		progress = append(progress, fmt.Sprint(c))
		if c < int64(n) {
			midStream++
		}
	}
	killsDone.Store(true)
	if midStream < kills {
		t.Errorf("only %d of %d kills landed while the stream was being sunk", midStream, run)
	}
	if err := <-prodDone; err != nil {
		t.Fatalf("producer: %v", err)
	}
	// The last run sinks the rest and is stopped cleanly.
	startChild(run)
	deadline := time.Now().Add(60 * time.Second)
	for count() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a wrong extra row would show up now
	_ = child.Process.Signal(syscall.SIGTERM)
	_ = child.Wait()
	t.Logf("rows stored when each of the %d kills landed: %s", run, strings.Join(progress, ", "))

	// Exactly the committed set, each once, at its own position.
	ends, err := kadm.NewClient(prod).ListCommittedOffsets(ctx, event.TopicScored)
	if err != nil {
		t.Fatal(err)
	}
	to := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { to[o.Partition] = o.Offset })
	rows, err := store.Range(ctx, nil, to, 2*n)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		id := r.Scored.Transaction.TransactionID
		if seen[id] {
			t.Errorf("%s stored twice", id)
		}
		seen[id] = true
		if !want[id] {
			t.Errorf("%s stored but never committed", id)
		}
	}
	missing := 0
	for id := range want {
		if !seen[id] {
			missing++
		}
	}
	total := count()
	if missing > 0 || len(seen) != n || total != int64(n) {
		mu.Lock()
		t.Fatalf("database holds %d rows (%d distinct in range), %d of %d committed records missing\nchild stderr:\n%s", total, len(seen), missing, n, stderr.String())
		mu.Unlock()
	}
	offs, err := store.Offsets(ctx, event.TopicScored)
	if err != nil {
		t.Fatal(err)
	}
	for p, end := range to {
		// A partition ends with a transaction marker, which the sink
		// never sees as a record: its stored position may stop just
		// before it.
		if offs[p] != end && offs[p] != end-1 {
			t.Errorf("partition %d: stored next offset %d, want the end %d (or the marker before it)", p, offs[p], end)
		}
	}
	t.Logf("%d SIGKILLs (%d mid-stream), then %d rows = the %d committed records exactly (aborted ones absent); %.1fs", run, midStream, total, n, time.Since(began).Seconds())
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
