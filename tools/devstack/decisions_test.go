package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/client"
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/ingest"
	"github.com/fraudstream/fraudstream/services/scorer"
	"github.com/fraudstream/fraudstream/tools/devbroker"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// sameDecision reports how d differs from the stored scored record s, or "".
func sameDecision(d client.Decision, s event.Scored) string {
	switch {
	case d.Pending:
		return "pending"
	case d.TransactionID != s.Transaction.TransactionID:
		return fmt.Sprintf("transaction_id %s, stored %s", d.TransactionID, s.Transaction.TransactionID)
	case d.Decision != s.Decision || d.Score != s.Score:
		return fmt.Sprintf("decision %s %v, stored %s %v", d.Decision, d.Score, s.Decision, s.Score)
	case d.RuleSetVersion != s.RuleSetVersion || d.ModelVersion != s.ModelVersion:
		return fmt.Sprintf("versions %d %s, stored %d %s", d.RuleSetVersion, d.ModelVersion, s.RuleSetVersion, s.ModelVersion)
	case d.Partition != s.Partition || d.Offset != s.Offset:
		return fmt.Sprintf("at %d/%d, stored at %d/%d", d.Partition, d.Offset, s.Partition, s.Offset)
	case len(d.Reasons) != len(s.Reasons):
		return fmt.Sprintf("%d reasons, stored %d", len(d.Reasons), len(s.Reasons))
	case !d.ScoredAt.Equal(s.ScoredAt):
		return fmt.Sprintf("scored_at %s, stored %s", d.ScoredAt, s.ScoredAt)
	}
	for i := range d.Reasons {
		if d.Reasons[i] != s.Reasons[i] {
			return fmt.Sprintf("reason %d: %+v, stored %+v", i, d.Reasons[i], s.Reasons[i])
		}
	}
	return ""
}

// TestDecisionsEqualStoredRecords: 500 decisions from 16 goroutines through
// the whole pipeline; each equals the record the alerts sink stored, and a
// retry with the same key gets the same decision.
func TestDecisionsEqualStoredRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	stack, err := Start(ctx, Config{
		DataDir: t.TempDir(), BrokerListen: "127.0.0.1:0", Partitions: 4,
		IngestAddr: "127.0.0.1:0", ScorerAddr: "127.0.0.1:0", AlertsAddr: "127.0.0.1:0",
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- stack.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-runErr; err != nil {
			t.Errorf("stack.Run: %v", err)
		}
	}()

	const n, workers = 500, 16
	gen := traffic.New(traffic.Config{Seed: 17, Cards: 200, IDPrefix: "dec"})
	now := time.Now().UTC()
	txs := make([]event.Transaction, n)
	for i := range txs {
		txs[i] = gen.Next(now.Add(time.Duration(i) * time.Millisecond)).Tx
	}
	c := client.New(stack.IngestURL(), stack.APIKey(), client.WithBudget(20*time.Second), client.WithMaxAttempts(10))
	got := make([]client.Decision, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				d, err := c.Decide(ctx, txs[i])
				if err != nil {
					errs <- fmt.Errorf("%s: %w", txs[i].TransactionID, err)
					continue
				}
				got[i] = d
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	store := stack.Alerts().Store()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		count, err := store.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if count >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d stored", count, n)
		}
	}
	decisions := map[string]int{}
	for i, d := range got {
		s, err := store.Transaction(ctx, txs[i].TransactionID)
		if err != nil {
			t.Fatalf("stored %s: %v", txs[i].TransactionID, err)
		}
		if diff := sameDecision(d, s); diff != "" {
			t.Errorf("%s: %s", txs[i].TransactionID, diff)
		}
		decisions[d.Decision]++
	}
	for _, i := range []int{0, n / 2, n - 1} { // retries: same key, same decision
		d, err := c.Decide(ctx, txs[i])
		if err != nil || !d.Replayed || sameDecision(d, mustStored(t, ctx, stack, txs[i].TransactionID)) != "" {
			t.Errorf("retry of %s: %+v, %v", txs[i].TransactionID, d, err)
		}
	}
	t.Logf("%d decisions equal to the stored records: %v", n, decisions)
}

func mustStored(t *testing.T, ctx context.Context, stack *Stack, id string) event.Scored {
	t.Helper()
	s, err := stack.Alerts().Store().Transaction(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The scorer child of TestDecisionsSurviveScorerSIGKILL.
const (
	scorerChildEnv   = "FRAUDSTREAM_DEVSTACK_SCORER_CHILD"
	scorerBrokersEnv = "FRAUDSTREAM_DEVSTACK_SCORER_BROKERS"
	scorerRedisEnv   = "FRAUDSTREAM_DEVSTACK_SCORER_REDIS"
)

// killScorerConfig is the configuration of both scorers of the kill test:
// a short session timeout, so the survivor takes the partitions over soon,
// and a short transaction timeout, so the broker aborts the dead one's
// open transaction soon.
func killScorerConfig(brokers []string, redisURL, txnID string) scorer.Config {
	c := scorer.DefaultConfig()
	c.Addr, c.Kafka, c.RedisURL = "127.0.0.1:0", kafkaopt.Config{Brokers: brokers}, redisURL
	c.TransactionalID, c.GroupID = txnID, "decisions-kill"
	c.SessionTimeout, c.TransactionTimeout = 6*time.Second, 2*time.Second
	return c
}

// runScorerChild runs a scorer configured from the environment until
// SIGTERM or SIGKILL; it prints "assigned" once it holds partitions.
func runScorerChild() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := killScorerConfig(strings.Split(os.Getenv(scorerBrokersEnv), ","), os.Getenv(scorerRedisEnv), os.Getenv(scorerChildEnv))
	svc, err := scorer.New(cfg, scorer.Deps{Log: log})
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

// TestDecisionsSurviveScorerSIGKILL: two scorers, one a child process
// SIGKILLed while decisions are outstanding. Every request gets the
// committed decision or pending, never another one; a pending one becomes
// readable at its Location after the failover.
func TestDecisionsSurviveScorerSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a scorer process; takes ~30 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	brk, err := devbroker.Start(ctx, devbroker.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 4}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer brk.Close()
	brokers := []string{brk.Addr()}
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		t.Fatal(err)
	}
	defer mr.Close()
	redisURL := "redis://" + mr.Addr()

	ic := ingest.DefaultConfig()
	ic.Addr, ic.Kafka, ic.RedisURL = "127.0.0.1:0", kafkaopt.Config{Brokers: brokers}, redisURL
	ic.APIKeys, ic.RateLimit, ic.RateBurst = []string{ingest.HashKey("dev", DevAPIKey)}, 100_000, 100_000
	ing, err := ingest.New(ic, ingest.Deps{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scorer.New(killScorerConfig(brokers, redisURL, "decisions-kill-a"), scorer.Deps{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{"ingest": ing.Run, "scorer": sc.Run} {
		running.Go(func() {
			if err := run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	defer func() { stop(); running.Wait() }()

	child := exec.Command(os.Args[0], "-test.run", "^$")
	child.Env = append(os.Environ(), scorerChildEnv+"=decisions-kill-b",
		scorerBrokersEnv+"="+strings.Join(brokers, ","), scorerRedisEnv+"="+redisURL)
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := child.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = child.Process.Kill()
			_ = child.Wait()
		}
	}()
	childAssigned := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "level=ERROR") {
				t.Logf("child: %s", line)
			}
			if strings.Contains(line, `msg="partitions assigned"`) && !strings.Contains(line, "partitions=[]") {
				select {
				case childAssigned <- struct{}{}:
				default:
				}
			}
		}
	}()
	select {
	case <-childAssigned:
	case <-time.After(60 * time.Second):
		t.Fatal("the child scorer was never assigned partitions")
	}

	c := client.New("http://"+ing.Addr(), DevAPIKey, client.WithMaxAttempts(10), client.WithBudget(5*time.Second))
	gen := traffic.New(traffic.Config{Seed: 23, Cards: 400, IDPrefix: "kill"})
	var genMu sync.Mutex // the generator is not safe for concurrent use
	next := func() event.Transaction {
		genMu.Lock()
		defer genMu.Unlock()
		return gen.Next(time.Now().UTC()).Tx
	}
	// Warm up until decisions flow from both scorers' partitions.
	for ok, warm := 0, time.Now().Add(60*time.Second); ok < 20; {
		if time.Now().After(warm) {
			t.Fatal("decisions never flowed with both scorers")
		}
		if d, err := c.Decide(ctx, next()); err == nil && !d.Pending {
			ok++
		} else {
			ok = 0
		}
	}

	type answer struct {
		tx   event.Transaction
		d    client.Decision
		err  error
		long bool // its budget outlasts the failover
	}
	const n, workers = 320, 8
	answers := make(chan answer, n)
	var wg sync.WaitGroup
	for w := range workers {
		// Half the requests wait long enough for the failover, half
		// fall back to pending.
		long := w%2 == 0
		budget := 1 * time.Second
		if long {
			budget = 30 * time.Second
		}
		cw := client.New("http://"+ing.Addr(), DevAPIKey, client.WithMaxAttempts(10), client.WithBudget(budget))
		wg.Go(func() {
			for range n / workers {
				tx := next()
				d, err := cw.Decide(ctx, tx)
				answers <- answer{tx, d, err, long}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killed = true
	wg.Wait()
	close(answers)

	// The committed scored records, read_committed, by transaction_id.
	var all []answer
	for a := range answers {
		if a.err != nil {
			t.Errorf("%s: %v", a.tx.TransactionID, a.err)
			continue
		}
		all = append(all, a)
	}
	want := map[string]bool{}
	for _, a := range all {
		want[a.tx.TransactionID] = true
	}
	stored := readScored(t, ctx, brokers, want)
	var decided, pending int
	for _, a := range all {
		s, ok := stored[a.tx.TransactionID]
		if !ok {
			t.Errorf("%s: no committed scored record", a.tx.TransactionID)
			continue
		}
		d := a.d
		if d.Pending {
			pending++
			if a.long {
				t.Errorf("%s: pending within a 30 s budget: the failover took longer", a.tx.TransactionID)
			}
			for deadline := time.Now().Add(60 * time.Second); d.Pending && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if d, err = c.Lookup(ctx, a.d); err != nil {
					t.Fatalf("%s: GET %s: %v", a.tx.TransactionID, a.d.Location, err)
				}
			}
		} else {
			decided++
		}
		if diff := sameDecision(d, s); diff != "" {
			t.Errorf("%s (answered pending: %v): %s", a.tx.TransactionID, a.d.Pending, diff)
		}
	}
	t.Logf("%d decisions around a scorer SIGKILL: %d answered with the committed decision, %d pending and then read at their Location",
		len(all), decided, pending)
}

// readScored reads committed scored records from the start until it holds
// those of every transaction in want, keyed by transaction_id.
func readScored(t *testing.T, ctx context.Context, brokers []string, want map[string]bool) map[string]event.Scored {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(event.TopicScored),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]event.Scored{}
	found := 0
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for found < len(want) {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read %d of %d scored records: %v", found, len(want), rctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			s, err := event.DecodeScored(r.Value)
			if err != nil {
				t.Errorf("scored record %d/%d: %v", r.Partition, r.Offset, err)
				return
			}
			for _, h := range r.Headers {
				if h.Key == event.HeaderScoredAt {
					s.ScoredAt, _ = time.Parse(time.RFC3339Nano, string(h.Value))
				}
			}
			if _, dup := out[s.Transaction.TransactionID]; dup {
				t.Errorf("%s scored twice", s.Transaction.TransactionID)
			}
			out[s.Transaction.TransactionID] = s
			if want[s.Transaction.TransactionID] {
				found++
			}
		})
	}
	return out
}
