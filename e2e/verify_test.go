//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-connections/nat"
	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// The broker advertises broker:9092, the address the services dial on the
// Docker network. A client on the host keeps that name in its metadata and
// dials it through here, which maps it to the port Docker published on the
// host, looked up at each dial so a restarted broker's new port is found.
func (e *env) kafka(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	dial := func(ctx context.Context, network, host string) (net.Conn, error) {
		if host == "broker:9092" {
			p, err := e.broker.MappedPort(ctx, "9092/tcp")
			if err != nil {
				return nil, fmt.Errorf("broker port: %w", err)
			}
			host = net.JoinHostPort("127.0.0.1", p.Port())
		}
		return dialer.DialContext(ctx, network, host)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers("broker:9092"), kgo.Dialer(dial)}, opts...)...)
	if err != nil {
		e.t.Fatalf("kafka client: %v", err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

// transaction is a valid payment with an event time of now.
func transaction(id string, i int) event.Transaction {
	return event.Transaction{
		Schema: event.SchemaTransaction, TransactionID: id, CardID: fmt.Sprintf("card-%d", i%997),
		AmountMinor: int64(100 + i%5000), Currency: "EUR", MerchantID: fmt.Sprintf("m-%d", i%61),
		MerchantCategory: "5411", MerchantCountry: "DE", Channel: event.ChannelCardPresent,
		EventTime: time.Now().UTC(), IngestTime: time.Now().UTC(),
	}
}

// feeder writes transactions straight into raw-transactions, keyed by card
// as ingest does, at a steady rate.
type feeder struct {
	mu   sync.Mutex
	ids  []string
	done chan error

	// The last tenth of the stream waits for release, so that faults meant
	// to land during the stream do, however slow the machine is.
	release     chan struct{}
	releaseOnce sync.Once
}

// releaseRest lets the held-back end of the stream go.
func (f *feeder) releaseRest() { f.releaseOnce.Do(func() { close(f.release) }) }

// feed produces n transactions named prefix-i over about `over`, in the
// background; the last tenth only after releaseRest. wait returns the ids
// once all were acknowledged.
func (e *env) feed(ctx context.Context, prefix string, n int, over time.Duration) *feeder {
	cl := e.kafka(kgo.DefaultProduceTopic(event.TopicRaw), kgo.ProducerLinger(5*time.Millisecond))
	f := &feeder{done: make(chan error, 1), release: make(chan struct{})}
	const chunk = 250
	tick := over / time.Duration((n+chunk-1)/chunk)
	holdAt := n - n/10
	go func() {
		next := time.Now()
		for i := 0; i < n; i += chunk {
			if i >= holdAt {
				select {
				case <-f.release:
				case <-ctx.Done():
					f.done <- ctx.Err()
					return
				}
			}
			var recs []*kgo.Record
			for j := i; j < min(i+chunk, n); j++ {
				id := fmt.Sprintf("%s-%d", prefix, j)
				v, err := transaction(id, j).Encode()
				if err != nil {
					f.done <- err
					return
				}
				tx := transaction(id, j)
				recs = append(recs, &kgo.Record{Key: []byte(tx.CardID), Value: v})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				f.done <- fmt.Errorf("produce: %w", err)
				return
			}
			f.mu.Lock()
			for _, r := range recs {
				tx, _ := event.DecodeTransaction(r.Value)
				f.ids = append(f.ids, tx.TransactionID)
			}
			f.mu.Unlock()
			next = next.Add(tick)
			time.Sleep(time.Until(next))
		}
		f.done <- nil
	}()
	return f
}

func (f *feeder) acked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}

func (f *feeder) wait(t *testing.T) []string {
	t.Helper()
	f.releaseRest()
	if err := <-f.done; err != nil {
		t.Fatalf("feed: %v", err)
	}
	return f.ids
}

// scoredIDs reads scored-transactions read_committed from the start until
// every id in want was seen (or the deadline), then until the topic stays
// quiet for two seconds, and returns how often each transaction id came.
func (e *env) scoredIDs(ctx context.Context, want []string, timeout time.Duration) map[string]int {
	cl := e.kafka(kgo.ConsumeTopics(event.TopicScored), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	missing := make(map[string]bool, len(want))
	for _, id := range want {
		missing[id] = true
	}
	seen := make(map[string]int, len(want))
	deadline := time.Now().Add(timeout)
	quietSince := time.Time{}
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			sc, err := event.DecodeScored(r.Value)
			if err != nil {
				e.t.Errorf("undecodable scored record at %d/%d: %v", r.Partition, r.Offset, err)
				return
			}
			seen[sc.Transaction.TransactionID]++
			delete(missing, sc.Transaction.TransactionID)
		})
		if len(missing) > 0 {
			continue
		}
		if n > 0 || quietSince.IsZero() {
			quietSince = time.Now()
		} else if time.Since(quietSince) > 2*time.Second {
			break
		}
	}
	return seen
}

// storedIDs returns the transaction ids in PostgreSQL once it holds at
// least len(want) rows of them (or at the deadline).
func (e *env) storedIDs(ctx context.Context, want []string, timeout time.Duration) map[string]int {
	e.t.Helper()
	p, err := e.pg.MappedPort(ctx, nat.Port("5432/tcp"))
	if err != nil {
		e.t.Fatalf("postgres port: %v", err)
	}
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://fraud:fraud@127.0.0.1:%s/fraud?sslmode=disable", p.Port()))
	if err != nil {
		e.t.Fatalf("postgres: %v", err)
	}
	defer conn.Close(context.Background())
	wanted := make(map[string]bool, len(want))
	for _, id := range want {
		wanted[id] = true
	}
	deadline := time.Now().Add(timeout)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM scored_transactions`).Scan(&n); err != nil {
			e.t.Fatalf("count: %v", err)
		}
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	rows, err := conn.Query(ctx, `SELECT transaction_id FROM scored_transactions`)
	if err != nil {
		e.t.Fatalf("query: %v", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatalf("rows: %v", err)
	}
	out := make(map[string]int, len(ids))
	for _, id := range ids {
		out[id]++
	}
	return out
}

// exactlyOnce compares what arrived with what was sent: every id once,
// nothing missing, nothing else. It reports the numbers it checked.
func exactlyOnce(t *testing.T, where string, sent []string, got map[string]int) {
	t.Helper()
	var missing, dup []string
	total := 0
	for _, n := range got {
		total += n
	}
	sentSet := make(map[string]bool, len(sent))
	for _, id := range sent {
		sentSet[id] = true
		switch n := got[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s×%d", id, n))
		}
	}
	extra := 0
	for id := range got {
		if !sentSet[id] {
			extra++
		}
	}
	if len(missing) > 0 || len(dup) > 0 || extra > 0 {
		t.Errorf("%s: %d sent, %d records, %d distinct: %d missing %v, %d duplicated %v, %d unexpected",
			where, len(sent), total, len(got), len(missing), head(missing), len(dup), head(dup), extra)
		return
	}
	t.Logf("verified %s: %d transactions sent, %d records, %d distinct ids, 0 missing, 0 duplicated", where, len(sent), total, len(got))
}

func head(s []string) []string {
	sort.Strings(s)
	return s[:min(len(s), 5)]
}

// docker runs the docker CLI: the fault injections are what an operator's
// `docker kill` and `docker network disconnect` do.
func docker(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// sigkill kills c with SIGKILL, no grace at all, then starts it again and
// waits until it is ready.
func (e *env) sigkill(ctx context.Context, c testcontainers.Container, name string) time.Duration {
	e.t.Helper()
	if err := docker(ctx, "kill", "--signal", "KILL", c.GetContainerID()); err != nil {
		e.t.Fatalf("kill %s: %v", name, err)
	}
	began := time.Now()
	if err := c.Start(ctx); err != nil {
		e.t.Fatalf("restart %s: %v", name, err)
	}
	return time.Since(began)
}

// scoredBy sums fraudstream_scorer_records_scored_total on a scorer's
// /metrics: how many transactions this instance has scored in committed
// batches since it started, or -1 if it cannot be read.
func scoredBy(ctx context.Context, c testcontainers.Container) int {
	u, err := c.PortEndpoint(ctx, "8082/tcp", "http")
	if err != nil {
		return -1
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "fraudstream_scorer_records_scored_total") {
			continue
		}
		if f := strings.Fields(line); len(f) == 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			total += v
		}
	}
	return int(total)
}
