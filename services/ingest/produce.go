package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// producerOpts are the kgo options that make a 202 mean "stored": the
// idempotent producer (kgo's default) with acks from all in-sync replicas,
// and bounds that turn a slow or absent broker into a quick error instead
// of an ever-growing queue.
func producerOpts(cfg Config) []kgo.Opt {
	reqTimeout := max(cfg.ProduceTimeout, 100*time.Millisecond) // kgo's minimum
	return []kgo.Opt{
		kgo.ClientID("fraudstream-ingest"),
		kgo.DefaultProduceTopic(event.TopicRaw),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Full buffer: TryProduce fails at once with ErrMaxBuffered (503)
		// rather than parking the request goroutine.
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		// Records that were never sent are failed after this, so the
		// buffer drains while the broker is down; in-flight records wait
		// for their answer because the idempotent producer cannot know
		// whether the broker wrote them.
		kgo.RecordDeliveryTimeout(max(cfg.ProduceTimeout, time.Second)), // kgo's minimum
		kgo.ProduceRequestTimeout(reqTimeout),
		// Each request waits for its own acknowledgement, so lingering
		// only adds latency; concurrent requests still share produce
		// requests while up to five are in flight per broker.
		kgo.ProducerLinger(0),
	}
}

// ack is where Kafka stored a record, or why it did not.
type ack struct {
	partition int32
	offset    int64
	err       error
}

// produce sends recs and waits until every one is acknowledged or ctx is
// done, whichever is first; results are in the order of recs. A record not
// acknowledged by then reports ctx's error. It may still be written later
// (an in-flight idempotent record cannot be recalled), which is safe: the
// client was told 503 and retries, and the scorer drops the duplicate by
// transaction_id.
func (s *Service) produce(ctx context.Context, recs []*kgo.Record) []ack {
	var (
		mu       sync.Mutex
		acks     = make([]ack, len(recs))
		got      = make([]bool, len(recs))
		pending  = len(recs)
		finished bool
		done     = make(chan struct{})
	)
	for i, rec := range recs {
		start := time.Now()
		// The promise runs on kgo's promise goroutine and must not block.
		s.cl.TryProduce(ctx, rec, func(r *kgo.Record, err error) {
			s.metrics.observeProduce(time.Since(start), err)
			mu.Lock()
			defer mu.Unlock()
			if finished {
				return
			}
			got[i] = true
			acks[i] = ack{partition: r.Partition, offset: r.Offset, err: err}
			if pending--; pending == 0 {
				close(done)
			}
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	finished = true
	for i := range acks {
		if !got[i] {
			acks[i].err = context.Cause(ctx)
		}
	}
	return acks
}

// produceError turns a failed produce into the client's answer. Every
// failure is 503: nothing was promised, and retrying later is the right
// move for a client whatever went wrong between ingest and Kafka.
func (s *Service) produceError(err error) *Error {
	detail := "Kafka did not acknowledge the transaction; retry later"
	switch {
	case errors.Is(err, kgo.ErrMaxBuffered):
		detail = "too many transactions are waiting for Kafka; retry later"
	case errors.Is(err, context.DeadlineExceeded):
		detail = fmt.Sprintf("Kafka did not acknowledge the transaction within %s; retry later", s.cfg.ProduceTimeout)
	case errors.Is(err, kgo.ErrClientClosed):
		detail = "ingest is shutting down; retry later"
	}
	return &Error{Kind: KindUnavailable, Detail: detail, Err: err}
}
