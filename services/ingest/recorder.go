package ingest

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Recording answers after the response.
//
// Once Kafka acknowledged a request's records, the 202 answers of all its
// items are stored in one write: its answers key (idempotency.go), which
// the claims of its items name by the request's token and point into by
// index. That write does not happen before the response: the handler
// queues it, answers, and the recorder below writes whatever answers are
// queued in one pipeline, so concurrent requests share a round trip
// instead of making one each. Why this keeps the promises:
//
//   - A retry never writes a second record. Until the answers land, the
//     key holds this request's claim with the same fingerprint and no
//     answers, and a retry that finds such a claim waits for it (polling,
//     up to ProduceTimeout) and then replays the answer; it does not
//     produce. Nothing else can take the key: a claim without answers is
//     taken over only once it is older than its pend (ProduceTimeout + 2s
//     from the claim for a single POST, ProduceTimeout more for a batch,
//     which may first wait for other requests' keys), and the recorder
//     writes within one round trip of being woken. The takeover is a
//     compare-and-set that also checks the answers key is still missing,
//     so answers that land just before it are not overlooked.
//   - A retry gets the first answer, with the replay header: the answers
//     key holds exactly the body the client was sent for each item (for a
//     batch, the item's result as a single POST's 202 body).
//   - 202 still means acknowledged: the answers are queued only after the
//     acks.
//   - Failures are unchanged: a produce that failed still releases its
//     claim synchronously, before its 503 is written (release), so a retry
//     is produced again at once. Its line in the answers is empty, so a
//     claim whose release failed is taken over as soon as the answers land.
//
// The crash window is the one of the earlier two-write protocol: a crash
// between the response and the write loses the answers after the client
// may have seen its 202. The claims then have no answers, a later retry
// (which a client only sends when it did not see the answer) takes the
// claim over once it is stale and is produced again, and the scorer drops
// the repeat by transaction_id, as it does for every duplicate ingest
// cannot rule out (see the package doc). A clean shutdown loses nothing:
// Run stops the HTTP server, then writes every queued answer before
// closing Redis. If Redis fails, the write is counted and logged exactly
// as before (record_idempotency), with the same outcome as a crash.

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
