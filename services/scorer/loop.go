package scorer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// sessionRetryDelay spaces out session re-creations after a failure, so a
// broker outage does not turn into a tight reconnect loop.
const sessionRetryDelay = time.Second

// abortTimeout bounds the abort of the open transaction at shutdown.
const abortTimeout = 5 * time.Second

// errSessionSetup marks errors that a new session cannot fix.
var errSessionSetup = errors.New("create Kafka session")

// consume runs transactional sessions until ctx is cancelled. A session
// whose transaction could not be ended is closed and replaced: franz-go
// documents every End error as not retryable. Its open transaction is
// aborted (by the broker when the new session's producer fences it), and
// the new session re-consumes from the last committed offsets.
func (s *Service) consume(ctx context.Context) error {
	for {
		err := s.runSession(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errSessionSetup) {
			return err
		}
		s.log.Error("Kafka session failed; starting a new one", "err", err, "retry_in", sessionRetryDelay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sessionRetryDelay):
		}
	}
}

// runSession is the exactly-once loop of one session: poll, begin, process
// and produce for up to CommitInterval or MaxBatchRecords, end with a
// commit of the outputs and the input offsets together.
func (s *Service) runSession(ctx context.Context) error {
	sess, err := kgo.NewGroupTransactSession(s.sessionOpts()...)
	if err != nil {
		return fmt.Errorf("%w: %w", errSessionSetup, err)
	}
	s.setSession(sess)
	defer func() {
		s.setSession(nil)
		sess.Close() // leaves the group, so the partitions move at once
	}()
	s.log.Info("scorer session started", "group", s.cfg.GroupID, "transactional_id", s.cfg.TransactionalID)

	for {
		// Wait for input before beginning: an idle scorer opens no
		// transactions.
		fetches := sess.PollRecords(ctx, s.cfg.MaxBatchRecords)
		if ctx.Err() != nil {
			return nil
		}
		if err := s.checkFetches(fetches); err != nil {
			return err
		}
		if fetches.Empty() {
			continue
		}
		// Restore before beginning, so a long restore does not hold a
		// transaction open towards its timeout.
		if err := s.prepare(ctx, fetches); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		b := newBatch()
		if err := s.processFetches(ctx, sess, fetches, b); err != nil {
			s.abort(ctx, sess)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}

		deadline := time.Now().Add(s.cfg.CommitInterval)
		for b.counts.records < s.cfg.MaxBatchRecords {
			wait := time.Until(deadline)
			if wait <= 0 {
				break
			}
			pctx, cancel := context.WithTimeout(ctx, wait)
			fetches := sess.PollRecords(pctx, s.cfg.MaxBatchRecords-b.counts.records)
			cancel()
			if ctx.Err() != nil {
				s.abort(ctx, sess)
				return nil
			}
			if err := s.checkFetches(fetches); err != nil {
				s.abort(ctx, sess)
				return err
			}
			// A partition assigned mid-batch is restored here, inside
			// the transaction; that is rare.
			if err := s.processFetches(ctx, sess, fetches, b); err != nil {
				s.abort(ctx, sess)
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		if ctx.Err() != nil {
			// Shutting down: do not commit a batch whose produces may
			// have been cut short by the cancelled context.
			s.abort(ctx, sess)
			return nil
		}
		if err := s.end(ctx, sess, b); err != nil {
			return err
		}
	}
}

// batch is the state of the open transaction.
type batch struct {
	counts batchCounts
	tasks  []*task // tasks that processed records in this batch, to flush

	mu         sync.Mutex
	produceErr error // first failed produce; the batch must then abort
}

func newBatch() *batch { return &batch{counts: newBatchCounts()} }

func (b *batch) promise(_ *kgo.Record, err error) {
	if err == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.produceErr == nil {
		b.produceErr = err
	}
}

func (b *batch) err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.produceErr
}

// prepare restores the tasks of the partitions in fetches that have not
// been restored since they were assigned or reset.
func (s *Service) prepare(ctx context.Context, fetches kgo.Fetches) error {
	var err error
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if err != nil || len(p.Records) == 0 {
			return
		}
		if t := s.taskFor(p.Partition); !t.restored {
			err = s.restore(ctx, t)
		}
	})
	return err
}

// processFetches runs each partition's records through its task, in
// offset order, and produces the outputs into the open transaction.
// Partitions are independent (each task owns its state), so they are
// processed in parallel, one goroutine per partition up to GOMAXPROCS:
// order within a partition, which is all that determinism and the output
// order need, is kept. Produce is asynchronous; End flushes and waits for
// every record.
func (s *Service) processFetches(ctx context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches, b *batch) error {
	if err := s.prepare(ctx, fetches); err != nil {
		return err
	}
	// One bounded profile lookup for the poll's cards (profile.go); after
	// it the cache is only read, so tasks may look up concurrently.
	s.params.profiles.prefetch(ctx, fetches)
	type work struct {
		t    *task
		recs []*kgo.Record
	}
	var todo []work
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		t := s.taskFor(p.Partition)
		if !slices.Contains(b.tasks, t) {
			b.tasks = append(b.tasks, t)
		}
		todo = append(todo, work{t, p.Records})
	})
	run := func(w work, c *batchCounts) {
		for _, r := range w.recs {
			for _, out := range w.t.process(r, c) {
				sess.Produce(ctx, out, b.promise)
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	if workers <= 1 {
		for _, w := range todo {
			run(w, &b.counts)
		}
		return nil
	}
	next := make(chan work)
	counts := make([]batchCounts, workers)
	var wg sync.WaitGroup
	for i := range workers {
		counts[i] = newBatchCounts()
		wg.Go(func() {
			for w := range next {
				run(w, &counts[i])
			}
		})
	}
	for _, w := range todo {
		next <- w
	}
	close(next)
	wg.Wait()
	for i := range counts {
		b.counts.merge(&counts[i])
	}
	return nil
}

// flushState produces the fraud-stats records and the changelog entries of
// every task the batch touched into the open transaction, so they commit
// with the outputs and the input offsets.
func (s *Service) flushState(ctx context.Context, sess *kgo.GroupTransactSession, b *batch) {
	for _, t := range b.tasks {
		for _, r := range t.stats.take() {
			b.counts.stats++
			sess.Produce(ctx, r, b.promise)
		}
		for _, r := range t.flush() {
			b.counts.changelog++
			sess.Produce(ctx, r, b.promise)
		}
	}
}

// checkFetches logs fetch errors. Most are retried inside the client;
// only a closed client ends the session. Context errors come from the
// batch deadline and are expected.
func (s *Service) checkFetches(fetches kgo.Fetches) error {
	if fetches.IsClientClosed() {
		return errors.New("poll: Kafka client closed")
	}
	for _, fe := range fetches.Errors() {
		if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
			continue
		}
		s.log.Warn("fetch error", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
	}
	return nil
}

// end commits the batch, or aborts it if a produce failed or the group
// rebalanced meanwhile. It is not cut short by a cancelled ctx: a commit
// in flight at shutdown finishes, bounded by the transaction timeout.
// After an abort the session has rewound to the committed offsets, and
// the tasks are reset to match. An error means the session is unusable.
func (s *Service) end(ctx context.Context, sess *kgo.GroupTransactSession, b *batch) error {
	s.flushState(ctx, sess, b)
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.TransactionTimeout)
	defer cancel()
	// Flush first so every produce has its outcome: committing with a
	// failed record would lose that record for good.
	try := kgo.TryCommit
	if err := sess.Client().Flush(ectx); err != nil {
		s.log.Warn("flush before commit failed; aborting the batch", "err", err)
		try = kgo.TryAbort
	} else if err := b.err(); err != nil {
		s.log.Warn("produce failed; aborting the batch", "err", err)
		try = kgo.TryAbort
	} else if s.abortHook != nil && s.abortHook() {
		try = kgo.TryAbort
	}
	committed, err := sess.End(ectx, try)
	if err != nil {
		s.m.aborted()
		s.resetTasks()
		return fmt.Errorf("end transaction: %w", err)
	}
	if !committed {
		s.m.aborted()
		s.resetTasks()
		s.log.Info("transaction aborted; re-consuming from the last commit", "records", b.counts.records)
		return nil
	}
	s.m.committed(&b.counts)
	s.log.Debug("transaction committed", "records", b.counts.records, "dlq", b.counts.dlq,
		"duplicates", b.counts.duplicates, "changelog", b.counts.changelog)
	return nil
}

// abort ends the open transaction with an abort at shutdown, so readers
// are not held back until the broker times it out.
func (s *Service) abort(ctx context.Context, sess *kgo.GroupTransactSession) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	s.m.aborted()
	if _, err := sess.End(actx, kgo.TryAbort); err != nil {
		s.log.Warn("abort open transaction", "err", err)
		return
	}
	s.log.Info("open transaction aborted at shutdown")
}
