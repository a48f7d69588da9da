package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// brokerProc is a `fraudstream broker` process.
type brokerProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startBrokerProc(t *testing.T, bin, addr, dir string) *brokerProc {
	t.Helper()
	cmd := exec.Command(bin, "broker", "--listen", addr, "--data-dir", dir, "--partitions", "3", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = tWriter{t}, tWriter{t}
	// If the test binary dies the broker gets SIGTERM, never SIGKILL: kfake
	// can lose track of records when killed (docs/architecture.md).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	p := &brokerProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })

	// Ready when the topic is in the metadata.
	deadline := time.Now().Add(30 * time.Second)
	for {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			md, merr := kadm.NewClient(cl).Metadata(ctx, event.TopicRaw)
			cancel()
			cl.Close()
			if merr == nil && md.Topics[event.TopicRaw].Err == nil && len(md.Topics[event.TopicRaw].Partitions) == 3 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("broker exited at start: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("broker not ready after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the broker to flush and exit.
func (p *brokerProc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("broker did not exit 30s after SIGTERM")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDurabilityBrokerRestart: clients POST while a real `fraudstream
// broker` process is stopped with SIGTERM and restarted on the same data
// dir and port. While it is down every request answers 503 within the
// produce timeout; afterwards every transaction that got a 202 is in the
// topic exactly once.
func TestDurabilityBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the fraudstream binary")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "fraudstream")
	build := exec.Command("go", "build", "-o", bin, "github.com/fraudstream/fraudstream/cmd/fraudstream")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr, dataDir := freeAddr(t), filepath.Join(tmp, "kafka")
	broker := startBrokerProc(t, bin, addr, dataDir)

	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Kafka = kafkaopt.Config{Brokers: []string{addr}}
	cfg.APIKeys = []string{HashKey("tester", testKey)}
	cfg.RedisURL = "redis://" + newMiniredis(t).Addr()
	cfg.ProduceTimeout = time.Second
	cfg.RateLimit, cfg.RateBurst = 1_000_000, 1_000_000
	s, err := New(cfg, Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	base := "http://" + s.Addr()

	type outcome struct {
		status int
		took   time.Duration
		at     time.Time
	}
	var (
		mu       sync.Mutex
		outcomes = map[string]outcome{}
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("dur-%d-%d", w, i)
				body := txWith(map[string]any{"transaction_id": id, "card_id": fmt.Sprintf("card-%d", i%50)})
				req, _ := http.NewRequest(http.MethodPost, base+"/v1/transactions", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+testKey)
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("POST: %v", err)
					return
				}
				var a Accepted
				if resp.StatusCode == http.StatusAccepted {
					_ = json.NewDecoder(resp.Body).Decode(&a)
				}
				resp.Body.Close()
				mu.Lock()
				outcomes[id] = outcome{resp.StatusCode, time.Since(start), start}
				mu.Unlock()
				if resp.StatusCode == http.StatusServiceUnavailable {
					time.Sleep(20 * time.Millisecond) // a polite client backs off a little
				}
			}
		})
	}

	time.Sleep(1500 * time.Millisecond)
	stoppedAt := time.Now()
	broker.stop(t)
	t.Logf("broker stopped with SIGTERM in %v", time.Since(stoppedAt))
	downFrom := time.Now()
	time.Sleep(3 * time.Second)
	restartAt := time.Now()
	startBrokerProc(t, bin, addr, dataDir)
	t.Logf("broker restarted in %v", time.Since(restartAt))
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()

	var accepted, unavailable, downAnswers, acceptedAfter int
	var worst time.Duration
	for _, o := range outcomes {
		switch o.status {
		case http.StatusAccepted:
			accepted++
			if o.at.After(restartAt) {
				acceptedAfter++
			}
		case http.StatusServiceUnavailable:
			unavailable++
			worst = max(worst, o.took)
		default:
			t.Errorf("unexpected status %d", o.status)
		}
		// Requests sent wholly while the broker was down.
		if o.at.After(downFrom) && o.at.Add(o.took).Before(restartAt) {
			downAnswers++
			if o.status != http.StatusServiceUnavailable {
				t.Errorf("status %d while the broker was down", o.status)
			}
		}
	}
	t.Logf("%d requests: %d accepted (%d after the restart), %d unavailable (slowest 503 %v), %d answered while down",
		len(outcomes), accepted, acceptedAfter, unavailable, worst, downAnswers)
	if bound := cfg.ProduceTimeout + 500*time.Millisecond; worst > bound {
		t.Errorf("a 503 took %v, bound is %v", worst, bound)
	}
	if downAnswers == 0 || accepted == 0 || acceptedAfter == 0 {
		t.Fatalf("the test did not exercise down time and recovery")
	}

	counts := readTopic(t, []string{addr})
	for id, o := range outcomes {
		n := counts[id]
		if o.status == http.StatusAccepted && n != 1 {
			t.Errorf("%s got 202 and is in the topic %d times", id, n)
		}
		if n > 1 {
			t.Errorf("%s is in the topic %d times", id, n)
		}
	}
	var strays int
	for id := range counts {
		if _, ok := outcomes[id]; !ok {
			strays++
		}
	}
	landed503 := 0
	for id, o := range outcomes {
		if o.status != http.StatusAccepted && counts[id] == 1 {
			landed503++
		}
	}
	t.Logf("topic holds %d transactions; %d answered 503 landed anyway (allowed: retried, the scorer drops repeats); %d unknown",
		len(counts), landed503, strays)
	if strays > 0 {
		t.Errorf("%d transactions in the topic were never sent", strays)
	}
}
