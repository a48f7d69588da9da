package scorer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
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
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sessionRetryDelay):
		}
	}
}

// checkTopics makes sure the topics can hold what the scorer writes before
// it joins the group (kafkaopt.CheckTopics): with too few scorer-state
// partitions, say, every transaction would abort, and with an uncompacted
// changelog, retention would quietly delete cards' state. A bad layout
// stops the scorer with an error naming each problem; missing topics and
// an unreachable broker are retried by consume, as they may be a setup
// step that has not run yet.
func (s *Service) checkTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(s.kafkaOpts...)
	if err != nil {
		return fmt.Errorf("%w: %w", errSessionSetup, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, topicCheckTimeout)
	defer cancel()
	layout, err := kafkaopt.DescribeTopics(ctx, cl)
	if err != nil {
		return err
	}
	err = layout.Check()
	if _, bad := errors.AsType[*kafkaopt.LayoutError](err); bad {
		return fmt.Errorf("%w: %w", errSessionSetup, err)
	}
	if err == nil && s.params.entities != nil {
		// Set before any task runs in this session (entities.go).
		s.params.entities.sources = int32(layout[event.TopicRaw].Partitions)
		s.params.entities.partitions = int32(layout[event.TopicEntityEvents].Partitions)
	}
	return err
}

// topicCheckTimeout bounds checkTopics' requests: an unreachable broker
// fails the check, and consume tries again.
const topicCheckTimeout = 15 * time.Second

// runSession is the exactly-once loop of one session: poll, begin, process
// and produce for up to CommitInterval or MaxBatchRecords, end with a
// commit of the outputs and the input offsets together.
func (s *Service) runSession(ctx context.Context) error {
	if err := s.checkTopics(ctx); err != nil {
		return err
	}
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

session:
	for {
		// Wait for input before beginning: an idle scorer opens no
		// transactions, but one to fire idle partitions' stats windows
		// once per idle period (idle.go).
		pctx, cancel := context.WithTimeout(ctx, s.idlePoll())
		fetches := sess.PollRecords(pctx, s.cfg.MaxBatchRecords)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err := s.checkFetches(fetches); err != nil {
			return err
		}
		if fetches.Empty() {
			if len(s.idleTasks(time.Now())) > 0 {
				if err := sess.Begin(); err != nil {
					return fmt.Errorf("begin transaction: %w", err)
				}
				if err := s.end(ctx, newBatch(ctx, sess)); err != nil {
					return err
				}
			}
			continue
		}
		// Restore before beginning, so a long restore does not hold a
		// transaction open towards its timeout.
		if err := s.prepare(ctx, fetches); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errQuarantined) {
				// The poll's records are dropped and re-polled, but
				// the quarantined partition's (quarantine.go).
				s.pauseQuarantined(sess.Client())
				if err := s.rewind(ctx, sess, nil); err != nil {
					return err
				}
				continue
			}
			return err
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		b := newBatch(ctx, sess)
		if err := s.processFetches(ctx, fetches, b); err != nil {
			s.abort(ctx, b)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}

		// Adaptive commit (docs/design/decisions.md#adaptive-commit): the
		// batch ends as soon as the workers have processed everything
		// handed to them and nothing more is buffered, but not before it
		// has been open as long as the previous commit took, so that at
		// most about half of the loop's time goes to fixed
		// per-transaction costs. CommitInterval and MaxBatchRecords stay
		// the upper bounds. Under load, records buffer while a batch is
		// processed and committed, so batches grow by themselves.
		begun := time.Now()
		deadline := begun.Add(s.cfg.CommitInterval)
		for b.records < s.cfg.MaxBatchRecords {
			wait := time.Until(deadline)
			if wait <= 0 {
				break
			}
			// A nil context is kgo's non-blocking poll: what is buffered
			// now, without waiting.
			//lint:ignore SA1012 kgo documents nil as "drain what is buffered and return"
			fetches := sess.PollRecords(nil, s.cfg.MaxBatchRecords-b.records)
			if fetches.NumRecords() == 0 {
				var pctx context.Context
				var cancel context.CancelFunc
				if b.drained() {
					linger := s.lastCommit - time.Since(begun)
					if linger <= 0 {
						break
					}
					// Processed, but the batch is younger than the last
					// commit: wait that long for more records.
					pctx, cancel = context.WithTimeout(ctx, min(wait, linger))
				} else {
					// Wait for new records, or for the workers to drain
					// (then the loop polls once more).
					pctx, cancel = context.WithTimeout(ctx, wait)
					go func(idle <-chan struct{}) {
						select {
						case <-idle:
							cancel()
						case <-pctx.Done():
						}
					}(b.idle())
				}
				fetches = sess.PollRecords(pctx, s.cfg.MaxBatchRecords-b.records)
				cancel()
			}
			if ctx.Err() != nil {
				s.abort(ctx, b)
				return nil
			}
			if err := s.checkFetches(fetches); err != nil {
				s.abort(ctx, b)
				return err
			}
			// A partition assigned mid-batch is restored here, inside
			// the transaction; that is rare.
			if err := s.processFetches(ctx, fetches, b); err != nil {
				if errors.Is(err, errQuarantined) && ctx.Err() == nil {
					s.pauseQuarantined(sess.Client())
					if err := s.rewind(ctx, sess, b); err != nil {
						return err
					}
					continue session
				}
				s.abort(ctx, b)
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		if ctx.Err() != nil {
			// Shutting down: do not commit a batch whose produces may
			// have been cut short by the cancelled context.
			s.abort(ctx, b)
			return nil
		}
		if err := s.end(ctx, b); err != nil {
			return err
		}
	}
}

// workerQueue bounds the polls queued for one partition's worker; a full
// queue makes the batch loop wait, so a slow partition holds back polling.
const workerQueue = 16

// chunkSize is how many records a worker's goroutines hand on at a time:
// small enough that the next step starts soon, large enough that the
// hand-over costs nothing per record.
const chunkSize = 128

// batch is the state of the open transaction. Each partition's records are
// processed by a worker of their own, which produces the outputs into the
// transaction as it goes. So the loop keeps polling while the workers
// process, and the partitions use the cores in parallel. Order within a
// partition, which is all that determinism and the output order need, is
// kept: one worker per partition, fed in offset order. Workers share
// nothing but the read-only task parameters, the profile cache (locked)
// and the session. finish is the barrier before the transaction ends:
// after it no worker produces.
//
// A worker is a pipeline of three goroutines over chunks of records, so
// even a single busy partition uses every core: the first decodes
// (outcome.decode), the second scores in offset order (task.score: state,
// features, rules and model, the only step that touches the task), the
// third encodes and produces in the same order (outcome.record). Chunks go
// back to the first when the third is done with them.
type batch struct {
	ctx     context.Context
	sess    *kgo.GroupTransactSession
	records int         // input records handed to workers
	counts  batchCounts // the workers' counts, merged by finish
	workers map[*task]*worker

	mu         sync.Mutex
	produceErr error // first failed produce; the batch must then abort
	// processed counts the input records the workers are done with; the
	// batch is drained when it equals records. idleCh, when not nil, is
	// closed at the next drain.
	processed int
	handed    int // records, under mu
	idleCh    chan struct{}
}

// drained reports whether the workers have processed every record handed
// to them.
func (b *batch) drained() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.processed == b.handed
}

// idle returns a channel closed once the workers have processed every
// record handed to them so far.
func (b *batch) idle() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.idleCh == nil {
		b.idleCh = make(chan struct{})
	}
	if b.processed == b.handed {
		close(b.idleCh)
		ch := b.idleCh
		b.idleCh = nil
		return ch
	}
	return b.idleCh
}

// done records that a worker has processed n records.
func (b *batch) done(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.processed += n
	if b.processed == b.handed && b.idleCh != nil {
		close(b.idleCh)
		b.idleCh = nil
	}
}

func newBatch(ctx context.Context, sess *kgo.GroupTransactSession) *batch {
	return &batch{ctx: ctx, sess: sess, counts: newBatchCounts(), workers: make(map[*task]*worker)}
}

// worker processes one partition's records of a batch.
type worker struct {
	t       *task
	in      chan []*kgo.Record
	decoded chan []outcome // to the scoring goroutine
	scored  chan []outcome // to the encoding goroutine
	free    chan []outcome // chunks the encoding goroutine is done with
	counts  batchCounts    // the scoring goroutine's
	emits   batchCounts    // the encoding goroutine's
	flush   bool           // produce the task's state at the end; set before in is closed
	done    chan struct{}
}

// dispatch hands a poll's records of one partition to that partition's
// worker, starting it on the batch's first records of the partition.
func (b *batch) dispatch(t *task, recs []*kgo.Record) {
	w := b.workers[t]
	if w == nil {
		w = &worker{
			t:       t,
			in:      make(chan []*kgo.Record, workerQueue),
			decoded: make(chan []outcome, workerQueue),
			scored:  make(chan []outcome, workerQueue),
			free:    make(chan []outcome, 2*workerQueue+2),
			counts:  newBatchCounts(),
			emits:   newBatchCounts(),
			done:    make(chan struct{}),
		}
		b.workers[t] = w
		go w.decode()
		go b.run(w)
	}
	b.records += len(recs)
	b.mu.Lock()
	b.handed += len(recs)
	b.mu.Unlock()
	t.lastActive = time.Now()
	w.in <- recs
}

// decode is a worker's decoding goroutine.
func (w *worker) decode() {
	defer close(w.decoded)
	for recs := range w.in {
		for len(recs) > 0 {
			n := min(len(recs), chunkSize)
			var chunk []outcome
			select {
			case chunk = <-w.free:
			default:
				chunk = make([]outcome, chunkSize)
			}
			chunk = chunk[:n]
			for i, r := range recs[:n] {
				chunk[i].decode(r)
			}
			w.decoded <- chunk
			recs = recs[n:]
		}
	}
}

// run is a worker's scoring goroutine; it starts the encoding one and
// returns when both are done.
func (b *batch) run(w *worker) {
	defer close(w.done)
	emitted := make(chan struct{})
	go b.emit(w, emitted)
	for chunk := range w.decoded {
		for i := range chunk {
			w.t.score(&chunk[i], &w.counts)
		}
		w.scored <- chunk
	}
	close(w.scored)
	if w.flush {
		// The fraud-stats records and changelog entries of the task, so
		// they commit with the outputs and the input offsets. Each worker
		// encodes its own task's state, in parallel with the others and
		// with its own encoding goroutine's tail.
		for _, r := range w.t.stats.take() {
			w.counts.stats++
			b.sess.Produce(b.ctx, r, b.promise)
		}
		for _, r := range w.t.flush() {
			w.counts.changelog++
			b.sess.Produce(b.ctx, r, b.promise)
		}
		// Entity events after the scored records they come from, and the
		// progress promise after the events (entities.go).
		recs, err := w.t.takeEntityRecords()
		if err != nil {
			b.promise(nil, err) // unreachable: the events are plain values; the batch aborts
		}
		for _, r := range recs {
			w.counts.entityEvents++
			b.sess.Produce(b.ctx, r, b.promise)
		}
	}
	<-emitted
	w.counts.merge(&w.emits)
}

// emit is a worker's encoding goroutine: it produces the scored chunks'
// records in the order they were scored.
func (b *batch) emit(w *worker, emitted chan<- struct{}) {
	defer close(emitted)
	for chunk := range w.scored {
		for i := range chunk {
			if r := chunk[i].record(&w.emits); r != nil {
				b.sess.Produce(b.ctx, r, b.promise)
			}
		}
		b.done(len(chunk))
		select {
		case w.free <- chunk[:cap(chunk)]:
		default:
		}
	}
}

// finish waits for every worker to process what it was handed and, if
// flush is set, to produce its task's state; then it merges their counts.
// The transaction may end only after finish.
func (b *batch) finish(flush bool) {
	for _, w := range b.workers {
		w.flush = flush
		close(w.in)
	}
	for t, w := range b.workers {
		<-w.done
		b.counts.merge(&w.counts)
		delete(b.workers, t)
	}
}

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
// been restored since they were assigned or reset. It returns
// errQuarantined when a partition cannot be restored, or when records of
// a quarantined partition were polled before its pause took effect: the
// batch must then be rewound (quarantine.go).
func (s *Service) prepare(ctx context.Context, fetches kgo.Fetches) error {
	var err error
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if err != nil || len(p.Records) == 0 {
			return
		}
		if s.isQuarantined(p.Partition) {
			err = errQuarantined
			return
		}
		if t := s.taskFor(p.Partition); !t.restored {
			err = s.restore(ctx, t)
			if err != nil && ctx.Err() == nil && s.quarantine(p.Partition, err) {
				err = errQuarantined
			}
		}
	})
	return err
}

// processFetches hands each partition's records to its worker (see batch).
// A task is restored before its worker starts, so a restore never races
// the task's processing.
func (s *Service) processFetches(ctx context.Context, fetches kgo.Fetches, b *batch) error {
	if err := s.prepare(ctx, fetches); err != nil {
		return err
	}
	// One bounded profile lookup for the poll's cards (profile.go), before
	// its records are handed on.
	s.params.profiles.prefetch(ctx, fetches)
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			b.dispatch(s.taskFor(p.Partition), p.Records)
		}
	})
	return nil
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
func (s *Service) end(ctx context.Context, b *batch) error {
	ending := time.Now()
	b.finish(true)
	s.fireIdle(b, time.Now())
	sess := b.sess
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
	s.lastCommit = min(time.Since(ending), s.cfg.CommitInterval)
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
func (s *Service) abort(ctx context.Context, b *batch) {
	b.finish(false)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	s.m.aborted()
	if _, err := b.sess.End(actx, kgo.TryAbort); err != nil {
		s.log.Warn("abort open transaction", "err", err)
		return
	}
	s.log.Info("open transaction aborted at shutdown")
}
