package ingest

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// The recorder writes a request's answers after its response, pipelined
// with other requests'. Invariant: answers are queued only after Kafka's
// acks, and until they land the claim (same fp, no answers) makes a retry
// wait, never produce. Why the promises hold and the crash window:
// docs/design/ingest-idempotency.md#recording-answers-after-the-response.

// idemWrite is one request's answers to store: its answers key and value.
type idemWrite struct {
	key string
	val string
}

// recorder is the queue of answers not yet written.
type recorder struct {
	mu     sync.Mutex
	queue  []idemWrite
	queued int           // bytes of the answers in queue
	closed bool          // Run is over: callers write their own answers
	wake   chan struct{} // capacity 1: answers are queued
}

// Bounds of the recorder: writes and bytes per pipeline, and bytes of
// answers waiting. A write holds all the answers of a request, a line per
// item, so bytes rather than writes bound the memory: a 1000-item batch's
// answers are about 60 KB. A request that finds the queue full writes its
// own answers, which slows it down rather than letting the queue (and the
// time before answers land) grow.
const (
	recordChunk      = 1024
	recordChunkBytes = 1 << 20
	maxRecordQueue   = 8 << 20
)

// remember queues ws for the recorder, or writes them at once when the
// recorder has stopped or is too far behind.
func (ad *admission) remember(ws []idemWrite) {
	if len(ws) == 0 {
		return
	}
	size := 0
	for _, w := range ws {
		size += len(w.key) + len(w.val)
	}
	r := &ad.rec
	r.mu.Lock()
	if r.closed || r.queued+size > maxRecordQueue {
		r.mu.Unlock()
		ad.writeRecords(ws)
		return
	}
	r.queue = append(r.queue, ws...)
	r.queued += size
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default: // already woken; it will take these too
	}
}

// runRecorder writes queued answers until stop is closed, then writes what
// is left and returns; answers queued later are written by their requests.
func (ad *admission) runRecorder(stop <-chan struct{}) {
	r := &ad.rec
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
		r.queue, r.queued = spare[:0], 0
		r.closed = stopping
		r.mu.Unlock()
		ad.writeRecords(q)
		clear(q) // let the records go
		spare = q
		if stopping {
			return
		}
	}
}

// writeRecords stores ws, up to recordChunk writes and recordChunkBytes
// bytes (but at least one write) at a time, each call bounded by
// RedisTimeout and detached from any request: the answers were already
// sent, and at shutdown they must still be written.
func (ad *admission) writeRecords(ws []idemWrite) {
	for len(ws) > 0 {
		n, size := 1, len(ws[0].key)+len(ws[0].val)
		for n < min(len(ws), recordChunk) {
			size += len(ws[n].key) + len(ws[n].val)
			if size > recordChunkBytes {
				break
			}
			n++
		}
		chunk := ws[:n]
		ws = ws[n:]
		// Pipelined plain SETs rather than one script: Redis spends less
		// per key on them. A plain SET: an answers key is named by its
		// request's random token, so no other request writes it.
		ctx, cancel := context.WithTimeout(context.Background(), ad.cfg.RedisTimeout)
		pipe := ad.rdb.Pipeline()
		cmds := newSetCommands(ad.rdb, ad.cfg.IdempotencyTTL, false, len(chunk))
		for i := range chunk {
			w := &chunk[i] // not changed until Exec returns
			_ = pipe.Process(ctx, redis.NewStatusCmd(ctx, cmds.next(&w.key, &w.val)...))
		}
		_, err := pipe.Exec(ctx)
		cancel()
		if err != nil {
			ad.redisFailed("record_idempotency", err)
		}
	}
}
