package ingest

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Recording answers after the response.
//
// Once Kafka acknowledged a record, its answer is stored under the
// request's idempotency key (the "done" record, which replaces the pending
// claim). That write no longer happens before the response: the handler
// queues it, answers, and the recorder below writes whatever answers are
// queued in one pipeline, so concurrent requests share a round trip
// instead of making one each. Why this keeps the promises:
//
//   - A retry never writes a second record. Until the done record lands,
//     the key holds this request's pending claim with the same
//     fingerprint, and a retry that finds a pending claim waits for it
//     (polling, up to ProduceTimeout) and then replays the answer; it does
//     not produce. Nothing else can take the key: the claim expires only
//     after pendingTTL (ProduceTimeout + 2s from the claim), and the
//     recorder writes within one round trip of being woken.
//   - A retry gets the first answer, with the replay header: the done
//     record holds exactly the body the client was sent.
//   - 202 still means acknowledged: the answer is queued only after the ack.
//   - Failures are unchanged: a produce that failed still releases its
//     claim synchronously, before its 503 is written (release), so a retry
//     is produced again at once.
//
// What changes is the crash window. Before, a crash between the broker's
// ack and the SET lost the answer and the client got no response; now a
// crash between the response and the write loses it too, after the client
// may have seen its 202. In both cases the pending claim expires and a
// later retry is produced again — which a client only sends when it did
// not see the answer — and the scorer drops the repeat by transaction_id,
// as it does for every duplicate ingest cannot rule out (see the package
// doc). A clean shutdown loses nothing: Run stops the HTTP server, then
// writes every queued answer before closing Redis. If Redis fails, the
// write is counted and logged exactly as before (record_idempotency).

// idemWrite is one answer to store: its idempotency key and done record.
type idemWrite struct {
	key string
	val string
}

// recorder is the queue of answers not yet written.
type recorder struct {
	mu     sync.Mutex
	queue  []idemWrite
	closed bool          // Run is over: callers write their own answers
	wake   chan struct{} // capacity 1: answers are queued
}

// Bounds of the recorder: answers per pipeline, and answers waiting.
// A request that finds the queue full writes its own answers, which slows
// it down rather than letting the queue (and the time before answers land)
// grow.
const (
	recordChunk    = 1024
	maxRecordQueue = 16 * recordChunk
)

// remember queues ws for the recorder, or writes them at once when the
// recorder has stopped or is too far behind.
func (s *Service) remember(ws []idemWrite) {
	if len(ws) == 0 {
		return
	}
	r := &s.rec
	r.mu.Lock()
	if r.closed || len(r.queue)+len(ws) > maxRecordQueue {
		r.mu.Unlock()
		s.writeRecords(ws)
		return
	}
	r.queue = append(r.queue, ws...)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default: // already woken; it will take these too
	}
}

// runRecorder writes queued answers until stop is closed, then writes what
// is left and returns; answers queued later are written by their requests.
func (s *Service) runRecorder(stop <-chan struct{}) {
	r := &s.rec
	var spare []idemWrite
	for {
		stopping := false
		select {
		case <-r.wake:
		case <-stop:
			stopping = true
		}
		r.mu.Lock()
		q := r.queue
		r.queue = spare[:0]
		r.closed = stopping
		r.mu.Unlock()
		s.writeRecords(q)
		clear(q) // let the records go
		spare = q
		if stopping {
			return
		}
	}
}

// writeRecords stores ws, recordChunk at a time, each call bounded by
// RedisTimeout and detached from any request: the answers were already
// sent, and at shutdown they must still be written.
func (s *Service) writeRecords(ws []idemWrite) {
	for len(ws) > 0 {
		chunk := ws[:min(len(ws), recordChunk)]
		ws = ws[len(chunk):]
		// Pipelined plain SETs rather than one script: Redis spends less
		// per key on them. A plain SET: the key is still ours, since our
		// claim outlives the produce (pendingTTL).
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RedisTimeout)
		pipe := s.rdb.Pipeline()
		cmds := newSetCommands(s.rdb, s.cfg.IdempotencyTTL, false, len(chunk))
		for i := range chunk {
			w := &chunk[i] // not changed until Exec returns
			_ = pipe.Process(ctx, redis.NewStatusCmd(ctx, cmds.next(&w.key, &w.val)...))
		}
		_, err := pipe.Exec(ctx)
		cancel()
		if err != nil {
			s.redisFailed("record_idempotency", err)
		}
	}
}
