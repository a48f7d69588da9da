package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/tools/devstack"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// TestStreamReconnectsWithLastEventID serves two connections: the first
// ends after two events; the second must resume from the last id.
func TestStreamReconnectsWithLastEventID(t *testing.T) {
	var mu sync.Mutex
	var conns []string // Last-Event-ID and Authorization of each connection
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns = append(conns, r.Header.Get("Last-Event-ID")+"|"+r.Header.Get("Authorization"))
		n := len(conns)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		if n == 1 {
			fmt.Fprint(w, "retry: 2000\n: connected\n\nid: 0,0\n\n")
			fmt.Fprint(w, "id: 1,0\nevent: scored\ndata: {\"a\":1}\n\n")
			fmt.Fprint(w, "id: 1,1\nevent: scored\ndata: {\"a\":2}\n\n")
			return
		}
		fmt.Fprint(w, ": connected\n\nevent: reset\ndata: {}\n\nid: 2,1\nevent: scored\ndata: {\"a\":3}\n\n")
		fl.Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()

	var got []string
	done := make(chan struct{})
	s := &stream{url: srv.URL, token: "tok", client: srv.Client(), log: slog.New(slog.DiscardHandler),
		onScored: func(data []byte, _ time.Time) {
			got = append(got, string(data))
			if len(got) == 3 {
				close(done)
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	body, err := s.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	finished := make(chan struct{})
	go func() { s.run(ctx, body); close(finished) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("events %v", got)
	}
	cancel()
	<-finished
	if strings.Join(got, " ") != `{"a":1} {"a":2} {"a":3}` {
		t.Errorf("events %v", got)
	}
	if len(conns) != 2 || conns[0] != "|Bearer tok" || conns[1] != "1,1|Bearer tok" {
		t.Errorf("connections %q, want the second to resume from 1,1", conns)
	}
	if s.reconnects.Load() != 1 || s.resets.Load() != 1 {
		t.Errorf("reconnects %d, resets %d", s.reconnects.Load(), s.resets.Load())
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Mode: ModeHTTP, IngestURL: "http://127.0.0.1:8081", Count: 10}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(c *Config){
		"unbounded":        func(c *Config) { c.Count = 0 },
		"unknown mode":     func(c *Config) { c.Mode = "carrier-pigeon" },
		"bad url":          func(c *Config) { c.IngestURL = "127.0.0.1:8081" },
		"kafka no brokers": func(c *Config) { c.Mode = ModeKafka },
		"negative rate":    func(c *Config) { c.Rate = -1 },
		"huge batch":       func(c *Config) { c.BatchSize = 5000 },
		"bad scenario":     func(c *Config) { c.Traffic.Scenarios = map[traffic.Pattern]float64{"nope": 0.1} },
	} {
		c := ok
		mutate(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted %+v", name, c)
		}
	}
}

// TestRunAgainstThePipeline runs loadgen in each mode against the real
// pipeline in this process (embedded broker, ingest, scorer, alerts on
// SQLite) and checks that every transaction was accepted and seen scored,
// with latency and quality measured for all of them.
func TestRunAgainstThePipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	stack := devstack.StartForTest(t, ctx, devstack.Config{Partitions: 4}, log)

	const n = 500
	for _, c := range []struct {
		mode      Mode
		fromTopic bool
	}{{ModeHTTP, false}, {ModeBatch, false}, {ModeKafka, false}, {ModeHTTP, true}, {ModeDecisions, false}} {
		mode := c.mode
		name := string(mode)
		if c.fromTopic {
			name += "/from-topic"
		}
		t.Run(name, func(t *testing.T) {
			var progress bytes.Buffer
			cfg := Config{
				Mode: mode, IngestURL: stack.IngestURL(), APIKey: stack.APIKey(),
				Kafka: kafkaopt.Config{Brokers: stack.Brokers()},
				Rate:  0, Workers: 8, BatchSize: 50, Count: n, Drain: time.Minute, Progress: 50 * time.Millisecond,
				AlertsURL: stack.AlertsURL(), FromTopic: c.fromTopic,
				Traffic: traffic.Config{Seed: 3, Cards: 200, FraudRate: 0.05, RetryRate: 0.1, RetryAfter: 60 * time.Millisecond, EpisodeScale: 0.001,
					IDPrefix: "lg-" + strings.ReplaceAll(name, "/", "-"),
					Delay:    traffic.Delay{Median: 50 * time.Millisecond, TailFraction: 0.02, TailMax: 5 * time.Second}},
			}
			rep, err := Run(ctx, cfg, Deps{Log: log, Progress: &progress})
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			rep.WriteText(&text)
			t.Logf("report:\n%s", text.String())

			// A retry racing its first send makes one of them get 409
			// (in flight); the other is accepted. Nothing else may fail.
			unexpected := 0
			for kind, c := range rep.Errors {
				if !strings.HasSuffix(kind, " 409") {
					unexpected += c
				}
			}
			if rep.Transactions != n || rep.Accepted != n || rep.Rejected != 0 || unexpected != 0 {
				t.Errorf("sent %d, accepted %d, rejected %d, errors %v; want all %d accepted", rep.Transactions, rep.Accepted, rep.Rejected, rep.Errors, n)
			}
			if rep.Retries == 0 {
				t.Error("no retries sent")
			}
			e := rep.E2E
			if e == nil || e.Scored != n || e.Missing != 0 || e.Duplicates != 0 || e.Recovered != 0 {
				t.Fatalf("end to end %+v, want all %d scored once", e, n)
			}
			if e.Client.Count != n || e.Records.Count != n || e.FanOut.Count != n || e.Client.P50 <= 0 || e.Client.Max < e.Client.P99 {
				t.Errorf("latency measured for %d/%d/%d of %d: %+v", e.Client.Count, e.Records.Count, e.FanOut.Count, n, e)
			}
			q := rep.Quality
			if q == nil || q.Scored != n || q.Fraud == 0 || len(q.Scenarios) == 0 || q.Recall == nil || q.FalsePositiveRate == nil {
				t.Errorf("quality %+v", q)
			}
			if wantReq := int64(n + rep.Retries - conflicts(rep.Errors)); mode != ModeBatch && rep.Requests.Count != wantReq {
				t.Errorf("%d requests measured, want %d", rep.Requests.Count, wantReq)
			}
			if d := rep.Decisions; (mode == ModeDecisions) != (d != nil) {
				t.Errorf("decisions report %+v in mode %s", d, mode)
			} else if d != nil && (d.Floor.Count == 0 || d.Decided.Count == 0 || d.Floor.Count+d.Decided.Count+int64(d.Pending) != rep.Requests.Count) {
				t.Errorf("decisions %+v do not add up to %d requests", d, rep.Requests.Count)
			}
			if !strings.Contains(progress.String(), "loadgen ") {
				t.Errorf("no progress line: %q", progress.String())
			}
		})
	}
}

func conflicts(errs Errors) int {
	n := 0
	for kind, c := range errs {
		if strings.HasSuffix(kind, " 409") {
			n += c
		}
	}
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var _ io.Writer = testWriter{}
