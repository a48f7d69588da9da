package alerts

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sseClient follows /api/v1/stream as EventSource does: it remembers the
// last id and sends it as Last-Event-ID when it reconnects.
type sseClient struct {
	url    string
	hc     *http.Client
	lastID string
	// onEvent sees every event with data; returning false ends the
	// connection (a client going away mid-stream).
	onEvent func(name string, data []byte) bool
	// skipData passes onEvent an empty data instead of a copy: a
	// benchmark's 200 clients share the server's cores, and copying every
	// event would measure the clients more than the server.
	skipData bool
	resets   atomic.Int64
}

// session reads one connection until the server ends it, ctx is done or
// onEvent returns false (then it returns errHangUp).
func (c *sseClient) session(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if c.lastID != "" {
		req.Header.Set("Last-Event-ID", c.lastID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stream: %s", resp.Status)
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var name string
	var data []byte
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		field, value, _ := bytes.Cut(line, []byte(": "))
		switch {
		case len(line) == 0:
			if name == "reset" {
				c.resets.Add(1)
			}
			if data != nil && !c.onEvent(name, data) {
				return errHangUp
			}
			name, data = "", nil
		case line[0] == ':':
		case string(field) == "id":
			c.lastID = string(value)
		case string(field) == "event":
			name = string(value)
		case string(field) == "data" && c.skipData:
			data = []byte{}
		case string(field) == "data":
			data = append(data[:0], value...)
		}
	}
}

var errHangUp = errors.New("client hung up")

// slowStore makes the sink lag behind the live stream, as a busy database
// does: every SaveBatch takes at least delay.
type slowStore struct {
	Store
	delay time.Duration
}

func (s *slowStore) SaveBatch(ctx context.Context, topic string, rows []Record, offsets map[int32]int64) (int, error) {
	time.Sleep(s.delay)
	return s.Store.SaveBatch(ctx, topic, rows, offsets)
}

// TestStreamResumeUnderLoad produces 20k records as fast as kfake takes
// them, and again at 5k/s, while the sink lags (every batch of up to 1000
// takes 300 ms more), and a client that hangs up
// three times mid-stream and resumes with Last-Event-ID. The resumes are
// backfilled from a database that is behind the live stream at that
// moment; the client must end with every record exactly once, in
// partition order, without a reset and without being dropped.
func TestStreamResumeUnderLoad(t *testing.T) {
	for _, b := range backends {
		for _, rate := range []int{0, 5000} { // records/s; 0 is as fast as possible
			t.Run(fmt.Sprintf("%s/rate=%d", b.name, rate), func(t *testing.T) { testStreamResumeUnderLoad(t, b.url(t), rate) })
		}
	}
}

func testStreamResumeUnderLoad(t *testing.T, dbURL string, rate int) {
	const total = 20000
	brokers := newCluster(t)
	cfg := testConfig(brokers, dbURL)
	cfg.BatchSize = 1000
	cfg.FlushInterval = 50 * time.Millisecond
	svc := start(t, cfg, func(s *Service) { s.sink.store = &slowStore{Store: s.store, delay: 300 * time.Millisecond} })

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	type seen struct {
		i  int
		id string // the SSE id: the position after the event
	}
	var got []seen
	hangUps := map[int]bool{3000: true, 9000: true, 15000: true}
	c := &sseClient{url: "http://" + svc.Addr() + "/api/v1/stream", hc: &http.Client{}}
	c.onEvent = func(name string, data []byte) bool {
		if name != "scored" {
			return true
		}
		var v struct {
			Transaction struct {
				ID string `json:"transaction_id"`
			} `json:"transaction"`
		}
		if err := json.Unmarshal(data, &v); err != nil {
			t.Errorf("event data %s: %v", data, err)
			return false
		}
		i, err := strconv.Atoi(strings.TrimPrefix(v.Transaction.ID, "u-"))
		if err != nil {
			t.Errorf("unexpected id %q", v.Transaction.ID)
			return false
		}
		got = append(got, seen{i: i, id: c.lastID})
		return !hangUps[len(got)] && len(got) < total
	}

	// Subscribe before producing: the stream starts at the end.
	streamDone := make(chan error, 1)
	go func() {
		hungUp := 0
		for len(got) < total && ctx.Err() == nil {
			err := c.session(ctx)
			if errors.Is(err, errHangUp) && len(got) < total {
				hungUp++
				time.Sleep(200 * time.Millisecond) // gone a while: the gap grows
				continue
			}
			if !errors.Is(err, errHangUp) && ctx.Err() == nil {
				streamDone <- fmt.Errorf("connection ended by the server after %d events: %v", len(got), err)
				return
			}
		}
		if hungUp != len(hangUps) {
			streamDone <- fmt.Errorf("hung up %d times, want %d", hungUp, len(hangUps))
			return
		}
		streamDone <- ctx.Err()
	}()
	for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(svc.m.sseClients) < 1; {
		if time.Now().After(deadline) {
			t.Fatal("stream client never subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}

	p := newProducer(t, brokers)
	start := time.Now()
	const perTxn = 250
	for n := 0; n < total; n += perTxn {
		recs := make([]*kgo.Record, perTxn)
		for j := range recs {
			i := n + j
			recs[j] = scoredRecord(fmt.Sprintf("u-%d", i), int32(i%testPartitions))
		}
		p.txn(true, recs...)
		if rate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(n+perTxn) * time.Second / time.Duration(rate))))
		}
	}
	produced := time.Since(start)
	if err := <-streamDone; err != nil {
		t.Fatalf("after %d of %d events: %v", len(got), total, err)
	}
	t.Logf("produced %d in %v (%.0f/s); streamed in %v; backfilled %v; stored %v at the end",
		total, produced.Round(time.Millisecond), total/produced.Seconds(), time.Since(start).Round(time.Millisecond),
		testutil.ToFloat64(svc.m.sseBackfilled), testutil.ToFloat64(svc.m.rowsStored))

	// Exactly once, in partition order, ids moving only forward.
	count := make([]int, total)
	lastI := make([]int, testPartitions)
	for p := range lastI {
		lastI[p] = -1
	}
	var prev []int64
	for k, s := range got {
		count[s.i]++
		p := s.i % testPartitions
		if s.i <= lastI[p] {
			t.Fatalf("event %d: u-%d after u-%d on partition %d", k, s.i, lastI[p], p)
		}
		lastI[p] = s.i
		pos, err := parsePosition(s.id)
		if err != nil {
			t.Fatalf("event %d: id %q: %v", k, s.id, err)
		}
		for q := range prev {
			if q >= len(pos) || pos[q] < prev[q] {
				t.Fatalf("event %d: id %s went back from %s", k, s.id, formatPosition(prev))
			}
		}
		prev = pos
	}
	for i, n := range count {
		if n != 1 {
			t.Fatalf("u-%d delivered %d times", i, n)
		}
	}
	if n := c.resets.Load(); n != 0 {
		t.Errorf("%d resets", n)
	}
	if n := testutil.ToFloat64(svc.m.sseSlowKicked); n != 0 {
		t.Errorf("client dropped as slow %v times", n)
	}
	if n := testutil.ToFloat64(svc.m.sseBackfilled); n == 0 {
		t.Errorf("no record came from the database: the resumes were not exercised")
	}
}
