package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/tools/traffic"
)

func unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// httpSender posts to ingest from Workers goroutines over keep-alive
// connections.
type httpSender struct {
	cfg    Config
	poster traffic.Poster
	t      *tracker
	jobs   chan []traffic.Labeled
	wg     sync.WaitGroup
	// alternate picks the endpoint of each request in decisions mode.
	alternate atomic.Uint64
	ctx       context.Context
	cancel    context.CancelFunc
}

func newHTTPSender(cfg Config, client *http.Client, t *tracker) *httpSender {
	if client == nil {
		client = traffic.KeepAliveClient(cfg.Workers)
	}
	s := &httpSender{cfg: cfg, t: t, jobs: make(chan []traffic.Labeled, cfg.Workers),
		poster: traffic.Poster{URL: cfg.IngestURL, APIKey: cfg.APIKey, Client: client}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for range cfg.Workers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for ls := range s.jobs {
				if s.cfg.Mode == ModeBatch {
					s.postBatch(ls)
				} else {
					s.post(ls[0])
				}
			}
		}()
	}
	return s
}

// send hands ls to a worker, waiting while all are busy. Once ctx is done,
// the requests in flight are cancelled.
func (s *httpSender) send(ctx context.Context, ls []traffic.Labeled) error {
	select {
	case s.jobs <- ls:
		return nil
	case <-ctx.Done():
		s.cancel()
		return nil
	}
}

func (s *httpSender) close() {
	close(s.jobs)
	s.wg.Wait()
	s.cancel()
}

func (s *httpSender) do(path, contentType string, body []byte, ls []traffic.Labeled) (*http.Response, time.Time, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
	start := time.Now()
	s.t.started(ls, start)
	resp, err := s.poster.Post(ctx, path, contentType, body)
	if err != nil {
		cancel()
		return nil, start, err
	}
	// The deadline must outlive Do: the body is read after it returns.
	body0 := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{body0, closerFunc(func() error { err := body0.Close(); cancel(); return err })}
	return resp, start, nil
}

// maxInProgressAttempts bounds how often one send asks again after 409
// idempotency-in-progress.
const maxInProgressAttempts = 5

// isInProgress reports whether resp is ingest's problem+json answer
// "idempotency-in-progress". It reads at most the first 4 KiB of the body.
func isInProgress(resp *http.Response) bool {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return bytes.Contains(b, []byte("idempotency-in-progress"))
}

// retryAfter is resp's Retry-After in seconds, within [100ms, 2s].
func retryAfter(resp *http.Response) time.Duration {
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil {
		return 100 * time.Millisecond
	}
	return min(max(time.Duration(secs)*time.Second, 100*time.Millisecond), 2*time.Second)
}

// sleep waits d, or returns false as soon as the run is cancelled.
func (s *httpSender) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func (s *httpSender) post(l traffic.Labeled) {
	body, err := l.Tx.Encode()
	if err != nil {
		s.t.request(0, "encode")
		return
	}
	var (
		resp  *http.Response
		start time.Time
	)
	path, decide := "/v1/transactions", false
	if s.cfg.Mode == ModeDecisions && s.alternate.Add(1)%2 == 0 {
		path, decide = "/v1/decisions", true
		if s.cfg.DecisionBudget > 0 {
			path += "?budget_ms=" + strconv.FormatInt(s.cfg.DecisionBudget.Milliseconds(), 10)
		}
	}
	for attempt := 1; ; attempt++ {
		resp, start, err = s.do(path, "application/json", body, []traffic.Labeled{l})
		if err != nil {
			if s.ctx.Err() == nil {
				s.t.request(0, retryKind(l.Retry, transportKind(err)))
				s.t.result(l.Tx.TransactionID, l.Retry, false, "")
			}
			return
		}
		inProgress := resp.StatusCode == http.StatusConflict && isInProgress(resp)
		_, _ = io.Copy(io.Discard, resp.Body) // read to the end, so the connection is reused
		resp.Body.Close()
		// 409 idempotency-in-progress means another request with this key
		// (the client's own retry, or the send it retries) is still
		// waiting for Kafka: ask again after Retry-After, as a real client
		// would, to learn that request's answer.
		if !inProgress || attempt == maxInProgressAttempts || !s.sleep(retryAfter(resp)) {
			break
		}
	}
	if decide && resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusAccepted {
		el := time.Since(start)
		s.t.request(el, "")
		if s.cfg.Mode == ModeDecisions {
			s.t.decision(el, !decide, resp.StatusCode == http.StatusAccepted)
		}
		s.t.result(l.Tx.TransactionID, l.Retry, true, "")
		return
	}
	s.t.request(0, retryKind(l.Retry, "http "+strconv.Itoa(resp.StatusCode)))
	s.t.result(l.Tx.TransactionID, l.Retry, false, "")
}

// batchResponse is the part of ingest's 207 answer loadgen reads.
type batchResponse struct {
	Results []struct {
		Index  int `json:"index"`
		Status int `json:"status"`
	} `json:"results"`
}

func (s *httpSender) postBatch(ls []traffic.Labeled) {
	var body []byte
	for _, l := range ls {
		b, err := l.Tx.Encode()
		if err != nil {
			s.t.request(0, "encode")
			return
		}
		body = append(append(body, b...), '\n')
	}
	resp, start, err := s.do("/v1/transactions/batch", "application/x-ndjson", body, ls)
	if err != nil {
		if s.ctx.Err() == nil {
			s.t.request(0, transportKind(err))
			for _, l := range ls {
				s.t.result(l.Tx.TransactionID, l.Retry, false, "")
			}
		}
		return
	}
	var br batchResponse
	decodeErr := json.NewDecoder(resp.Body).Decode(&br)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMultiStatus || decodeErr != nil || len(br.Results) != len(ls) {
		kind := "http " + strconv.Itoa(resp.StatusCode)
		if resp.StatusCode == http.StatusMultiStatus {
			kind = "batch response unreadable"
		}
		s.t.request(0, kind)
		for _, l := range ls {
			s.t.result(l.Tx.TransactionID, l.Retry, false, "")
		}
		return
	}
	s.t.request(time.Since(start), "")
	for _, r := range br.Results {
		if r.Index < 0 || r.Index >= len(ls) {
			continue
		}
		l := ls[r.Index]
		if r.Status == http.StatusAccepted {
			s.t.result(l.Tx.TransactionID, l.Retry, true, "")
		} else {
			s.t.result(l.Tx.TransactionID, l.Retry, false, "item "+strconv.Itoa(r.Status))
		}
	}
}

// retryKind marks the failures of retries, which ingest may refuse (409
// while the first send is in flight) without anything being wrong.
func retryKind(retry bool, kind string) string {
	if retry {
		return "retry " + kind
	}
	return kind
}

// transportKind names a failed request's error for the report.
func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "transport timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "transport connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "transport connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "transport unexpected EOF"
	}
	return "transport error"
}

// kafkaSender produces straight to the raw-transactions topic with an
// idempotent producer, keyed by card_id as ingest does, stamping
// ingest_time itself. A retry is produced again with a new ingest_time: a
// duplicate the scorer must drop by transaction_id.
type kafkaSender struct {
	cl *kgo.Client
	t  *tracker
}

func newKafkaSender(cfg Config, t *tracker) (*kafkaSender, error) {
	opts, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ClientID("fraudstream-loadgen"),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence needs acks=all; kgo enables it by default
		kgo.MaxBufferedRecords(max(10*cfg.Workers, 1000)),
		kgo.RecordDeliveryTimeout(max(cfg.RequestTimeout, time.Second)),
		kgo.ProducerLinger(time.Millisecond),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return &kafkaSender{cl: cl, t: t}, nil
}

// send produces each transaction; Produce blocks while the buffer is full.
func (s *kafkaSender) send(ctx context.Context, ls []traffic.Labeled) error {
	for _, l := range ls {
		tx := l.Tx
		start := time.Now()
		tx.IngestTime = start.UTC()
		v, err := tx.Encode()
		if err != nil {
			return fmt.Errorf("encode simulated transaction: %w", err)
		}
		s.t.started([]traffic.Labeled{l}, start)
		id, retry := tx.TransactionID, l.Retry
		s.cl.Produce(ctx, &kgo.Record{Key: []byte(tx.CardID), Value: v}, func(_ *kgo.Record, err error) {
			if err == nil {
				s.t.request(time.Since(start), "")
				s.t.result(id, retry, true, "")
				return
			}
			if ctx.Err() != nil {
				return
			}
			s.t.request(0, kafkaKind(err))
			s.t.result(id, retry, false, "")
		})
	}
	return nil
}

func (s *kafkaSender) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.cl.Flush(ctx)
	s.cl.Close()
}

func kafkaKind(err error) string {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return "kafka " + ke.Message
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "kafka record timeout"
	case errors.Is(err, kgo.ErrMaxBuffered):
		return "kafka buffer full"
	}
	return "kafka error"
}
