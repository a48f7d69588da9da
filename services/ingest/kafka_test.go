package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestAcceptedIsStored checks the one promise of ingest: a 202 names a
// partition and offset where the record is, keyed by card_id, holding the
// transaction with ingest_time set.
func TestAcceptedIsStored(t *testing.T) {
	c := newCluster(t)
	_, base := startService(t, testConfig(t, c))

	body := txWith(nil)
	r := postTx(t, base, body)
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var a Accepted
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	if a.TransactionID != "tx-0001" || a.Partition < 0 || a.Partition > 2 || a.Offset != 0 {
		t.Fatalf("accepted = %+v", a)
	}

	rec := fetchRecord(t, c, a.Partition, a.Offset)
	if string(rec.Key) != "card-42" {
		t.Errorf("key = %q, want card-42", rec.Key)
	}
	want, err := event.DecodeTransaction(body)
	if err != nil {
		t.Fatal(err)
	}
	want.IngestTime = testNow
	wantValue, _ := want.Encode()
	if string(rec.Value) != string(wantValue) {
		t.Errorf("value\n got %s\nwant %s", rec.Value, wantValue)
	}
	got, err := event.DecodeTransaction(rec.Value)
	if err != nil {
		t.Fatalf("stored value does not decode: %v", err)
	}
	if got.Schema != event.SchemaTransaction || !got.IngestTime.Equal(testNow) {
		t.Errorf("schema %q ingest_time %v", got.Schema, got.IngestTime)
	}
	if d := time.Since(rec.Timestamp); d < 0 || d > time.Minute {
		t.Errorf("record timestamp %v, want about now", rec.Timestamp)
	}

	// Same card, same partition, next offset.
	r = postTx(t, base, txWith(map[string]any{"transaction_id": "tx-0002"}))
	var b Accepted
	if err := json.Unmarshal(r.body, &b); err != nil || b.Partition != a.Partition || b.Offset != a.Offset+1 {
		t.Errorf("second accepted = %+v (%v), want partition %d offset %d", b, err, a.Partition, a.Offset+1)
	}
}

// TestBrokerDown: with the cluster gone, a request answers 503 with
// Retry-After within the produce timeout, and nothing says 202.
func TestBrokerDown(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(t, c)
	cfg.ProduceTimeout = 500 * time.Millisecond
	_, base := startService(t, cfg)
	if r := postTx(t, base, txWith(nil)); r.status != http.StatusAccepted {
		t.Fatalf("warm-up: %d %s", r.status, r.body)
	}
	c.Close()

	for i := range 3 {
		start := time.Now()
		r := postTx(t, base, txWith(map[string]any{"transaction_id": fmt.Sprintf("down-%d", i)}))
		took := time.Since(start)
		t.Logf("503 after %v", took)
		checkUnavailable(t, r)
		if took > cfg.ProduceTimeout+time.Second {
			t.Errorf("503 took %v, bound is %v", took, cfg.ProduceTimeout)
		}
	}
}

// TestBrokerSlow: the broker takes the produce request and does not answer.
// The record is in flight, which the idempotent producer cannot recall, yet
// the request still answers 503 in time.
func TestBrokerSlow(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(t, c)
	cfg.ProduceTimeout = 500 * time.Millisecond
	_, base := startService(t, cfg)
	if r := postTx(t, base, txWith(nil)); r.status != http.StatusAccepted {
		t.Fatalf("warm-up: %d %s", r.status, r.body)
	}

	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	var slept sync.Once
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		slept.Do(func() { c.SleepControl(func() { <-release }) })
		return nil, nil, false
	})

	start := time.Now()
	r := postTx(t, base, txWith(map[string]any{"transaction_id": "slow-1"}))
	checkUnavailable(t, r)
	if took := time.Since(start); took > cfg.ProduceTimeout+time.Second {
		t.Errorf("503 took %v, bound is %v", took, cfg.ProduceTimeout)
	}
	once.Do(func() { close(release) })
}

func checkUnavailable(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503; body %s", r.status, r.body)
	}
	p := decodeProblem(t, r)
	if p.Type != problemTypeBase+"unavailable" {
		t.Errorf("type %q", p.Type)
	}
	if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
}

func TestBatch(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(t, c)
	cfg.MaxBatchItems = 5
	cfg.MaxBodyBytes = 1024
	_, base := startService(t, cfg)
	url := base + "/v1/transactions/batch"
	auth := "Bearer " + testKey

	good := func(id string) string { return string(txWith(map[string]any{"transaction_id": id})) }
	bad := string(txWith(map[string]any{"transaction_id": "b-1", "amount_minor": 0}))
	huge := string(txWith(map[string]any{"transaction_id": "b-2", "account_id": strings.Repeat("x", 1100)}))

	tests := []struct {
		name        string
		contentType string
		body        string
		statuses    []int
		pointers    map[int]string // item index → a pointer in its problem
	}{
		{
			name:        "ndjson mixed",
			contentType: "application/x-ndjson",
			body:        good("n-1") + "\n" + bad + "\n\n" + `{"transaction_id":` + "\r\n" + good("n-2") + "\n" + huge + "\n",
			statuses:    []int{202, 422, 400, 202, 413},
			pointers:    map[int]string{1: "/amount_minor"},
		},
		{
			name:        "json array mixed",
			contentType: "application/json; charset=utf-8",
			body:        "[" + good("a-1") + "," + bad + `,{"cvv":1},` + good("a-2") + "]",
			statuses:    []int{202, 422, 422, 202},
			pointers:    map[int]string{1: "/amount_minor", 2: "/cvv"},
		},
		{
			name:        "all bad",
			contentType: "application/x-ndjson",
			body:        bad + "\n" + "[]\n",
			statuses:    []int{422, 422},
			pointers:    map[int]string{1: ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, url, tt.contentType, auth, []byte(tt.body))
			if r.status != http.StatusMultiStatus {
				t.Fatalf("status %d, want 207; body %s", r.status, r.body)
			}
			var br BatchResponse
			if err := json.Unmarshal(r.body, &br); err != nil {
				t.Fatal(err)
			}
			if len(br.Results) != len(tt.statuses) {
				t.Fatalf("%d results, want %d: %s", len(br.Results), len(tt.statuses), r.body)
			}
			accepted := 0
			for i, res := range br.Results {
				if res.Index != i || res.Status != tt.statuses[i] {
					t.Errorf("result %d = index %d status %d, want status %d", i, res.Index, res.Status, tt.statuses[i])
				}
				if res.Status == http.StatusAccepted {
					accepted++
					if res.Partition == nil || res.Offset == nil || res.Problem != nil {
						t.Errorf("accepted result %d: %+v", i, res)
						continue
					}
					rec := fetchRecord(t, c, *res.Partition, *res.Offset)
					got, err := event.DecodeTransaction(rec.Value)
					if err != nil || got.TransactionID != res.TransactionID || string(rec.Key) != got.CardID {
						t.Errorf("record for result %d: %+v key %q (%v)", i, got, rec.Key, err)
					}
					continue
				}
				if res.Problem == nil || res.Problem.Status != res.Status || res.Partition != nil {
					t.Errorf("rejected result %d: %+v", i, res)
					continue
				}
				if want, ok := tt.pointers[i]; ok {
					found := false
					for _, fe := range res.Problem.Errors {
						found = found || fe.Pointer == want
					}
					if !found {
						t.Errorf("result %d errors %+v, want pointer %q", i, res.Problem.Errors, want)
					}
				}
			}
			if br.Accepted != accepted || br.Rejected != len(tt.statuses)-accepted {
				t.Errorf("accepted %d rejected %d", br.Accepted, br.Rejected)
			}
		})
	}

	wholeRequest := []struct {
		name        string
		contentType string
		body        string
		status      int
	}{
		{"empty ndjson", "application/x-ndjson", "\n\n", 422},
		{"empty array", "application/json", "[]", 422},
		{"object instead of array", "application/json", good("o-1"), 422},
		{"broken array", "application/json", "[" + good("x-1") + ",{", 400},
		{"array then garbage", "application/json", "[" + good("x-1") + "] x", 400},
		{"too many items", "application/x-ndjson", strings.Repeat(good("m-1")+"\n", 6), 413},
		{"too many array items", "application/json", "[" + strings.Repeat(good("m-1")+",", 5) + good("m-1") + "]", 413},
		{"text/plain", "text/plain", good("t-1"), 415},
	}
	for _, tt := range wholeRequest {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, url, tt.contentType, auth, []byte(tt.body))
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
			decodeProblem(t, r)
		})
	}

	t.Run("unauthorized", func(t *testing.T) {
		r := post(t, url, "application/x-ndjson", "", []byte(good("u-1")))
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("status %d headers %v", r.status, r.header)
		}
	})

	t.Run("same card keeps batch order", func(t *testing.T) {
		var lines []string
		for i := range 5 {
			lines = append(lines, good(fmt.Sprintf("ord-%d", i)))
		}
		r := post(t, url, "application/x-ndjson", auth, []byte(strings.Join(lines, "\n")))
		var br BatchResponse
		if err := json.Unmarshal(r.body, &br); err != nil || br.Accepted != 5 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		for i := 1; i < 5; i++ {
			p, q := br.Results[i-1], br.Results[i]
			if *p.Partition != *q.Partition || *q.Offset != *p.Offset+1 {
				t.Errorf("item %d at %d@%d after %d@%d", i, *q.Partition, *q.Offset, *p.Partition, *p.Offset)
			}
		}
	})
}

// TestBatchBrokerDown: every good item gets its own 503 and the answer
// carries Retry-After; bad items still get their validation problems.
func TestBatchBrokerDown(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(t, c)
	cfg.ProduceTimeout = 500 * time.Millisecond
	_, base := startService(t, cfg)
	c.Close()
	body := string(txWith(map[string]any{"transaction_id": "d-1"})) + "\n" +
		string(txWith(map[string]any{"amount_minor": -1})) + "\n" +
		string(txWith(map[string]any{"transaction_id": "d-2", "card_id": "other"}))
	start := time.Now()
	r := post(t, base+"/v1/transactions/batch", "application/x-ndjson", "Bearer "+testKey, []byte(body))
	if took := time.Since(start); took > cfg.ProduceTimeout+time.Second {
		t.Errorf("took %v", took)
	}
	if r.status != http.StatusMultiStatus || r.header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q body %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	var br BatchResponse
	if err := json.Unmarshal(r.body, &br); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{503, 422, 503} {
		if br.Results[i].Status != want {
			t.Errorf("item %d status %d, want %d", i, br.Results[i].Status, want)
		}
	}
	if br.Accepted != 0 || br.Rejected != 3 {
		t.Errorf("accepted %d rejected %d", br.Accepted, br.Rejected)
	}
}

// TestBufferFull: with the producer buffer full of records the broker has
// not answered, a new request gets 503 at once rather than queueing.
func TestBufferFull(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(t, c)
	cfg.MaxBatchItems, cfg.MaxBufferedRecords = 1, 1
	cfg.ProduceTimeout = 2 * time.Second
	_, base := startService(t, cfg)
	if r := postTx(t, base, txWith(nil)); r.status != http.StatusAccepted {
		t.Fatalf("warm-up: %d %s", r.status, r.body)
	}
	release := make(chan struct{})
	defer close(release)
	var slept sync.Once
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		slept.Do(func() { c.SleepControl(func() { <-release }) })
		return nil, nil, false
	})

	first := make(chan response, 1)
	go func() { first <- postTx(t, base, txWith(map[string]any{"transaction_id": "held"})) }()
	time.Sleep(200 * time.Millisecond) // let the first record reach the broker
	start := time.Now()
	r := postTx(t, base, txWith(map[string]any{"transaction_id": "rejected"}))
	checkUnavailable(t, r)
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("a full buffer took %v to answer", took)
	}
	if p := decodeProblem(t, r); !strings.Contains(p.Detail, "too many") {
		t.Errorf("detail %q", p.Detail)
	}
	checkUnavailable(t, <-first)
}

// TestShutdownAnswersInFlight: cancelling Run while a request waits for
// Kafka lets it finish with its real answer, not a spurious 503.
func TestShutdownAnswersInFlight(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(t, c)
	s, err := New(cfg, Deps{Log: testLogger(t), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + s.Addr()
	if r := postTx(t, base, txWith(nil)); r.status != http.StatusAccepted {
		t.Fatalf("warm-up: %d %s", r.status, r.body)
	}
	var slept sync.Once
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		slept.Do(func() { c.SleepControl(func() { time.Sleep(300 * time.Millisecond) }) })
		return nil, nil, false
	})
	got := make(chan response, 1)
	go func() { got <- postTx(t, base, txWith(map[string]any{"transaction_id": "inflight"})) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	if r := <-got; r.status != http.StatusAccepted {
		t.Errorf("in-flight request during shutdown: %d %s", r.status, r.body)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
