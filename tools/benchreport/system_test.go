//go:build benchsystem

package benchreport

// This file is `make bench`. It is a test behind a build tag because it
// needs throwaway Redis and PostgreSQL servers from tools/testenv; CI
// never builds it. Settings come from the environment (BENCH_*), see
// benchSettings, and the paths from -args flags set by the Makefile.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/tools/loadgen"
	"github.com/fraudstream/fraudstream/tools/testenv"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// soakEventSpan is the event time a soak covers, at any wall-clock length.
const soakEventSpan = 96 * time.Hour

var (
	flagRoot = flag.String("bench.root", "../..", "repository root")
	flagBin  = flag.String("bench.bin", "bin/fraudstream", "the fraudstream binary, relative to the root")
	flagOut  = flag.String("bench.out", "docs/BENCHMARKS.md", "the report, relative to the root")
	flagDir  = flag.String("bench.dir", "out/bench", "raw outputs (micro-benchmarks, JSON), relative to the root")
)

// settings of one run, from BENCH_* variables.
type settings struct {
	Count        int           // BENCH_COUNT: -count of the micro-benchmarks (3)
	MicroFile    string        // BENCH_MICRO_FILE: reuse this micro-benchmark output instead of running them
	E2ERate      float64       // BENCH_E2E_RATE (5000)
	E2E          time.Duration // BENCH_E2E: latency phase (60s)
	QualityRate  float64       // BENCH_QUALITY_RATE (200)
	Quality      time.Duration // BENCH_QUALITY (3m)
	Cards        int           // BENCH_CARDS: cards of the latency phase (200000)
	QualityCards int           // BENCH_QUALITY_CARDS (2000)
	SoakRate     float64       // BENCH_SOAK_RATE (1000)
	SoakCards    int           // BENCH_SOAK_CARDS (20000)
	Soak         time.Duration // BENCH_SOAK (10m)
	set          []string      // the variables that were set, for the report
}

func benchSettings(t *testing.T) settings {
	s := settings{Count: 3, E2ERate: 5000, E2E: time.Minute, QualityRate: 200, Quality: 3 * time.Minute,
		Cards: 200_000, QualityCards: 2000, SoakRate: 1000, SoakCards: 20_000, Soak: 10 * time.Minute}
	dur := func(name string, dst *time.Duration) {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				t.Fatalf("%s=%q: want a positive duration such as 1m", name, v)
			}
			*dst = d
			s.set = append(s.set, name+"="+v)
		}
	}
	num := func(name string, dst *float64) {
		if v := os.Getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 {
				t.Fatalf("%s=%q: want a positive number", name, v)
			}
			*dst = f
			s.set = append(s.set, name+"="+v)
		}
	}
	count, cards, qcards, scards := float64(s.Count), float64(s.Cards), float64(s.QualityCards), float64(s.SoakCards)
	num("BENCH_COUNT", &count)
	num("BENCH_CARDS", &cards)
	num("BENCH_QUALITY_CARDS", &qcards)
	num("BENCH_SOAK_CARDS", &scards)
	s.Count, s.Cards, s.QualityCards, s.SoakCards = int(count), int(cards), int(qcards), int(scards)
	num("BENCH_E2E_RATE", &s.E2ERate)
	num("BENCH_QUALITY_RATE", &s.QualityRate)
	num("BENCH_SOAK_RATE", &s.SoakRate)
	dur("BENCH_E2E", &s.E2E)
	dur("BENCH_QUALITY", &s.Quality)
	dur("BENCH_SOAK", &s.Soak)
	if v := os.Getenv("BENCH_MICRO_FILE"); v != "" {
		s.MicroFile = v
		s.set = append(s.set, "BENCH_MICRO_FILE="+v)
	}
	return s
}

func TestBenchmarkReport(t *testing.T) {
	root, err := filepath.Abs(*flagRoot)
	if err != nil {
		t.Fatal(err)
	}
	if f := os.Getenv("BENCH_RERENDER"); f != "" {
		rerender(t, root, f)
		return
	}
	s := benchSettings(t)
	dir := filepath.Join(root, *flagDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rep := Report{Machine: ThisMachine(), Started: time.Now(), E2ERate: s.E2ERate}
	rep.HowProduced = howProduced(root, s)
	t.Logf("%s", rep.HowProduced)

	// 1. Micro-benchmarks, each command timed with the load around it.
	rep.MicroFile = filepath.Join(*flagDir, "micro.txt")
	if s.MicroFile != "" {
		rep.MicroFile = s.MicroFile
		rep.Notes = append(rep.Notes, "The micro-benchmarks were not run by this invocation: their output was read from "+s.MicroFile+" (BENCH_MICRO_FILE).")
	} else {
		rep.Commands = runMicro(t, root, filepath.Join(root, rep.MicroFile), s.Count)
	}
	micro, err := os.ReadFile(filepath.Join(root, rep.MicroFile))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Micro, err = Parse(bytes.NewReader(micro)); err != nil {
		t.Fatal(err)
	}

	// 2. The system benchmark: the real binaries as separate processes, a
	// fresh stack for each phase. Phases on a fast event-time clock start
	// hours in the past, which the scorer's watermarks would call too late
	// after any phase that reached the present; and each phase's memory is
	// its own.
	bin := filepath.Join(root, *flagBin)
	ctx := context.Background()
	stackPhase := func(pc phaseConfig, during func(st *stack) func()) *Phase {
		st := startStack(t, bin)
		defer st.stop(t)
		rep.Stack = st.describe
		var done func()
		if during != nil {
			done = during(st)
		}
		ph := runPhase(t, ctx, st, pc)
		if done != nil {
			done()
		}
		return ph
	}

	// Quality: one purchase per card per hour of event time.
	rep.Quality = stackPhase(phaseConfig{name: "quality", rate: s.QualityRate, duration: s.Quality, seed: 2, cards: s.QualityCards,
		workers: 16, timeScale: s.QualityRate * 3600 / float64(s.QualityCards)}, nil)
	rep.E2E = stackPhase(phaseConfig{name: "latency", rate: s.E2ERate, duration: s.E2E, seed: 1, cards: s.Cards, workers: 256}, nil)

	// Soak: event time covers soakEventSpan whatever the wall-clock
	// duration, so the scorer's 24-hour look-back state is at its steady
	// size (evicting as much as it adds) from the first quarter on.
	soak := &Soak{Duration: s.Soak, Interval: max(s.Soak/40, 5*time.Second)}
	soakScale := max(1, float64(soakEventSpan)/float64(s.Soak))
	soak.Phase = *stackPhase(phaseConfig{name: "soak", rate: s.SoakRate, duration: s.Soak, seed: 3, cards: s.SoakCards, workers: 64, timeScale: soakScale},
		func(st *stack) func() {
			stopSampling := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				tick := time.NewTicker(soak.Interval)
				defer tick.Stop()
				for {
					select {
					case <-stopSampling:
						return
					case <-tick.C:
					}
					el := time.Since(start)
					for _, svc := range st.services {
						if smp, err := scrape(svc.name, svc.url+"/metrics"); err == nil {
							smp.Elapsed = el
							soak.Samples = append(soak.Samples, smp)
						} else {
							t.Logf("soak: %s metrics: %v", svc.name, err)
						}
					}
					if l, err := ReadLoad(); err == nil {
						soak.Loads = append(soak.Loads, l)
					}
				}
			}()
			return func() { close(stopSampling); wg.Wait() }
		})
	rep.Soak = soak
	rep.Finished = time.Now()

	// 3. The report, and the raw data beside the micro output.
	var md bytes.Buffer
	if err := Render(&md, rep); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, *flagOut)
	if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644)
	}
	t.Logf("wrote %s in %s", out, rep.Finished.Sub(rep.Started).Round(time.Second))
}

// rerender writes the report again from the JSON of an earlier run
// (BENCH_RERENDER=out/bench/report.json), with the current renderer, and
// says so in the report: for a fix of the report's wording, without a
// second run whose figures would differ.
func rerender(t *testing.T, root, file string) {
	b, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	rev, _ := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	rep.HowProduced += fmt.Sprintf(" The text was rendered again from that run's measurements (%s) by the renderer of commit %s (BENCH_RERENDER); no figure was measured again.", file, strings.TrimSpace(string(rev)))
	var md bytes.Buffer
	if err := Render(&md, rep); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, *flagOut), md.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func howProduced(root string, s settings) string {
	rev, _ := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	dirty, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	state := ""
	if len(bytes.TrimSpace(dirty)) > 0 {
		state = " with uncommitted changes"
	}
	env := "default settings"
	if len(s.set) > 0 {
		env = strings.Join(s.set, " ")
	}
	return fmt.Sprintf("This run: `make bench` with %s, on commit %s%s. Defaults: BENCH_COUNT=3, BENCH_E2E=1m at BENCH_E2E_RATE=5000, BENCH_QUALITY=3m at BENCH_QUALITY_RATE=200 over BENCH_QUALITY_CARDS=2000, BENCH_SOAK=10m at BENCH_SOAK_RATE=1000 over BENCH_SOAK_CARDS=20000, BENCH_CARDS=200000 (latency phase).",
		env, strings.TrimSpace(string(rev)), state)
}

// microCommands are the Go micro-benchmarks make bench runs: the three
// comparisons with their baselines, the batch endpoint beside its floor
// and the scorer's restore of a million cards, then the per-record costs. Each is
// bounded by a fixed iteration count or a short benchtime.
func microCommands(count int) [][]string {
	c := strconv.Itoa(count)
	return [][]string{
		{"go", "test", "-run", "^$", "-bench", "ScorerVsCopyLoop$", "-benchtime", "2x", "-count", c, "./services/scorer/"},
		{"go", "test", "-run", "^$", "-bench", "IngestSingle$", "-benchtime", "2s", "-count", c, "./services/ingest/"},
		{"go", "test", "-run", "^$", "-bench", "IngestBatch$", "-benchtime", "300x", "-count", c, "./services/ingest/"},
		{"go", "test", "-run", "^$", "-bench", "Restore1MCards$", "-benchtime", "1x", "-count", c, "./services/scorer/"},
		{"go", "test", "-run", "^$", "-bench", "SinkVsRawCopy$", "-benchtime", "20x", "-count", c, "./services/alerts/"},
		{"go", "test", "-run", "^$", "-bench", "TaskProcess$|TaskProcessDefault$|ScorerPipeline$", "-benchtime", "1s", "-benchmem", "-count", c, "./services/scorer/"},
		{"go", "test", "-run", "^$", "-bench", ".", "-benchtime", "0.5s", "-benchmem", "-count", c,
			"./pkg/event/", "./pkg/watermark/", "./pkg/windowing/", "./services/scorer/rules/", "./services/scorer/model/", "./tools/traffic/"},
	}
}

func shellLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$|* ") {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

func runMicro(t *testing.T, root, file string, count int) []Command {
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []Command
	for _, args := range microCommands(count) {
		c := Command{Line: shellLine(args)}
		t.Logf("running %s", c.Line)
		c.Load.Before, _ = ReadLoad()
		start := time.Now()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = root
		cmd.Env = os.Environ()
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.MultiWriter(f, testLog{t}), &stderr
		if err := cmd.Run(); err != nil {
			c.Err = fmt.Sprintf("%v %s", err, lastLine(stderr.String()))
			t.Logf("%s: %s", c.Line, c.Err)
		}
		c.Seconds = time.Since(start).Seconds()
		c.Load.After, _ = ReadLoad()
		cmds = append(cmds, c)
	}
	return cmds
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// testLog copies benchmark result lines to the test log, so make bench
// shows progress.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "ok") || strings.HasPrefix(line, "FAIL") {
			l.t.Log(line)
		}
	}
	return len(p), nil
}

type service struct {
	name, url string
	cmd       *exec.Cmd
	done      chan struct{}
}

type stack struct {
	broker    *exec.Cmd
	brokers   string
	services  []*service
	ingestURL string
	alertsURL string
	apiKey    string
	describe  string
	logDir    string
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startProc(t *testing.T, bin, logDir, name string, args, env []string) *exec.Cmd {
	logf, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), append([]string{"LOG_LEVEL=warn"}, env...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return cmd
}

func startStack(t *testing.T, bin string) *stack {
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v (run make build first)", err)
	}
	redisURL := testenv.Redis(t)
	dbURL := testenv.Postgres(t)
	st := &stack{apiKey: "bench-secret-key", logDir: t.TempDir()}
	st.brokers = freeAddr(t)
	st.broker = startProc(t, bin, st.logDir, "broker", []string{"--listen", st.brokers, "--partitions", "6"}, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", st.brokers, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker did not listen on %s", st.brokers)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sum := sha256.Sum256([]byte(st.apiKey))
	kafka := "KAFKA_BROKERS=" + st.brokers
	add := func(name, addrVar string, env ...string) *service {
		addr := freeAddr(t)
		s := &service{name: name, url: "http://" + addr, done: make(chan struct{})}
		s.cmd = startProc(t, bin, st.logDir, name, nil, append([]string{kafka, addrVar + "=" + addr}, env...))
		go func() { _ = s.cmd.Wait(); close(s.done) }()
		st.services = append(st.services, s)
		return s
	}
	in := add("ingest", "INGEST_ADDR", "REDIS_URL="+redisURL, "INGEST_API_KEYS=bench:"+hex.EncodeToString(sum[:])+";rate=1000000;burst=1000000")
	add("scorer", "SCORER_ADDR", "REDIS_URL="+redisURL, "SCORER_TRANSACTIONAL_ID=bench-scorer")
	al := add("alerts", "ALERTS_ADDR", "DATABASE_URL="+dbURL)
	st.ingestURL, st.alertsURL = in.url, al.url
	for _, s := range st.services {
		deadline := time.Now().Add(90 * time.Second)
		for {
			resp, err := http.Get(s.url + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-s.done:
				st.stop(t)
				t.Fatalf("%s exited at start: %s", s.name, tail(filepath.Join(st.logDir, s.name+".log")))
			default:
			}
			if time.Now().After(deadline) {
				st.stop(t)
				t.Fatalf("%s not ready: %s", s.name, tail(filepath.Join(st.logDir, s.name+".log")))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	st.describe = "`fraudstream broker --partitions 6` (kfake, in memory), `fraudstream ingest`, `fraudstream scorer` and `fraudstream alerts` as four processes of bin/fraudstream with their default settings, a throwaway redis-server (idempotency, rate limits, card profiles) and a throwaway PostgreSQL (alerts' database, `fsync=off`), all on 127.0.0.1; the load generator runs in the benchmark's process on the same machine."
	return st
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop ends the services with SIGTERM, then the broker (SIGTERM: see the
// kfake defect in docs/architecture.md).
func (st *stack) stop(t *testing.T) {
	for _, s := range st.services {
		if s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, s := range st.services {
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			t.Logf("%s did not stop in 20s; killing it", s.name)
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	if st.broker != nil && st.broker.Process != nil {
		_ = st.broker.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = st.broker.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = st.broker.Process.Kill()
		}
		st.broker = nil
	}
}

type phaseConfig struct {
	name      string
	rate      float64
	duration  time.Duration
	seed      uint64
	cards     int
	workers   int
	timeScale float64 // 0: real time
}

func runPhase(t *testing.T, ctx context.Context, st *stack, pc phaseConfig) *Phase {
	prefix := fmt.Sprintf("bench-%s-%d", pc.name, time.Now().Unix())
	d := traffic.Delay{Median: 100 * time.Millisecond, TailFraction: 0.03, TailMax: 10 * time.Second, LateFraction: 0.002, LateMax: 3 * time.Minute}
	cfg := loadgen.Config{
		Mode: loadgen.ModeHTTP, IngestURL: st.ingestURL, APIKey: st.apiKey, Rate: pc.rate, Duration: pc.duration,
		Workers: pc.workers, AlertsURL: st.alertsURL, TimeScale: pc.timeScale, Drain: 30 * time.Second, Progress: 10 * time.Second,
		Traffic: traffic.Config{Seed: pc.seed, Cards: pc.cards, IDPrefix: prefix, RetryRate: 0.01, RetryAfter: 2 * time.Second, Delay: d},
	}
	scale := ""
	if pc.timeScale > 1 {
		scale = fmt.Sprintf(" --time-scale %g", pc.timeScale)
	}
	ph := &Phase{Command: fmt.Sprintf("./bin/fraudstream loadgen --mode http --rate %.0f --count 0 --duration %s --workers %d --seed %d --cards %d%s --url INGEST_URL --alerts-url ALERTS_URL --api-key KEY --drain 30s",
		pc.rate, pc.duration, pc.workers, pc.seed, pc.cards, scale)}
	t.Logf("phase %s: %s", pc.name, ph.Command)
	ph.Load.Before, _ = ReadLoad()
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := loadgen.Run(ctx, cfg, loadgen.Deps{Log: log, Progress: testLogWriter{t}})
	ph.Load.After, _ = ReadLoad()
	ph.Report = r
	if err != nil {
		ph.Err = err.Error()
		t.Logf("phase %s: %v", pc.name, err)
	}
	if r != nil {
		var b bytes.Buffer
		r.WriteText(&b)
		t.Logf("phase %s report:\n%s", pc.name, b.String())
	}
	return ph
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// scrape reads the runtime figures of one service's Prometheus metrics.
func scrape(name, url string) (Sample, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return Sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseMetrics(name, resp.Body)
}
