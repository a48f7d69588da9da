package benchreport

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/tools/loadgen"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/fraudstream/fraudstream/services/scorer
cpu: AMD EPYC
BenchmarkScorerVsCopyLoop-2   	       2	2912345678 ns/op	    725810 copy-records/s	     89291 scorer-records/s	         0.1230 ratio
    copyloop_bench_test.go:40: a log line
BenchmarkScorerVsCopyLoop-2   	       2	2812345678 ns/op	    700000 copy-records/s	     91000 scorer-records/s	         0.1300 ratio
BenchmarkScorerVsCopyLoop-2   	       2	2712345678 ns/op	    710000 copy-records/s	     85000 scorer-records/s	         0.1197 ratio
PASS
ok  	github.com/fraudstream/fraudstream/services/scorer	40.1s
pkg: github.com/fraudstream/fraudstream/services/ingest
BenchmarkIngestSingle/bare-2  	  60000	     50000 ns/op	     20000 req/s	    4000 B/op	      40 allocs/op
BenchmarkIngestSingle/full-2  	  20000	    150000 ns/op	      6000 req/s
BenchmarkIngestSingle/bare-2  	  60000	     50000 ns/op	     10000 req/s
BenchmarkIngestSingle/full-2  	  20000	    150000 ns/op	      6000 req/s
BenchmarkIngestSingle/bare
    bench_test.go:12: skipped: no redis
--- FAIL: BenchmarkIngestBatch
pkg: github.com/fraudstream/fraudstream/pkg/watermark
BenchmarkWatermarkClassify 	1000000000	         1.600 ns/op
ok  	github.com/fraudstream/fraudstream/pkg/watermark	2.0s
`

func TestParse(t *testing.T) {
	s, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if s.Goos != "linux" || s.Goarch != "amd64" || s.CPU != "AMD EPYC" {
		t.Errorf("configuration %q %q %q", s.Goos, s.Goarch, s.CPU)
	}
	if len(s.Results) != 8 {
		t.Fatalf("%d results, want 8: %+v", len(s.Results), s.Results)
	}
	r := s.Results[0]
	if r.Pkg != "github.com/fraudstream/fraudstream/services/scorer" || r.Name != "BenchmarkScorerVsCopyLoop" || r.Procs != 2 || r.N != 2 {
		t.Errorf("first result %+v", r)
	}
	if r.Values["ratio"] != 0.123 || r.Values["copy-records/s"] != 725810 || r.Values["ns/op"] != 2912345678 {
		t.Errorf("first result values %v", r.Values)
	}
	if got := s.Values("BenchmarkIngestSingle/full", "req/s"); len(got) != 2 || got[0] != 6000 {
		t.Errorf("full req/s %v", got)
	}
	if got := s.Values("BenchmarkIngestSingle/bare", "B/op"); len(got) != 1 || got[0] != 4000 {
		t.Errorf("bare B/op %v", got)
	}
	last := s.Results[len(s.Results)-1]
	if last.Name != "BenchmarkWatermarkClassify" || last.Procs != 1 || last.Pkg != "github.com/fraudstream/fraudstream/pkg/watermark" {
		t.Errorf("result without a procs suffix: %+v", last)
	}
	if got := s.Names(); len(got) != 4 {
		t.Errorf("names %v", got)
	}
}

func TestParseRejectsBrokenResultLines(t *testing.T) {
	for _, in := range []string{
		"BenchmarkX-2 10 5 ns/op 7\n",
		"BenchmarkX-2 10 five ns/op\n",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil {
			t.Errorf("Parse(%q) accepted a broken line", in)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestRatios(t *testing.T) {
	s, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	sc := ScorerRatio(s)
	if sc.Status != NotMet || Median(sc.Ratios) != 0.123 || len(sc.Measured) != 3 {
		t.Errorf("scorer %+v", sc)
	}
	in := IngestRatio(s)
	if len(in.Ratios) != 2 || math.Abs(in.Ratios[0]-0.3) > 1e-9 || math.Abs(in.Ratios[1]-0.6) > 1e-9 || in.Status != NotMet {
		t.Errorf("ingest %+v: want ratios 0.3 and 0.6 paired by run, median 0.45 below 0.5", in)
	}
	if sk := SinkRatio(s); sk.Status != NotMeasured {
		t.Errorf("sink without a benchmark: %+v", sk)
	}
}

func TestParseLoadavg(t *testing.T) {
	l, err := parseLoadavg("4.58 1.84 1.03 3/139 29231\n", time.Unix(0, 0))
	if err != nil || l.One != 4.58 || l.Five != 1.84 || l.Fifteen != 1.03 {
		t.Fatalf("%+v %v", l, err)
	}
	if l.String() != "4.58, 1.84, 1.03" {
		t.Errorf("String %q", l)
	}
	if _, err := parseLoadavg("4.58", time.Now()); err == nil {
		t.Error("accepted one number")
	}
}

func samples(service string, n int, heap func(i int) float64, gor func(i int) float64) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{Elapsed: time.Duration(i) * 10 * time.Second, Service: service, HeapInuse: heap(i), Goroutines: gor(i), RSS: 50 << 20}
	}
	return out
}

func TestFlat(t *testing.T) {
	const mib = 1 << 20
	steady := samples("scorer", 20, func(i int) float64 {
		if i < 5 {
			return float64(i) * 20 * mib // warm-up may grow
		}
		return 100*mib + float64(i%3)*mib
	}, func(int) float64 { return 40 })
	leaking := samples("ingest", 20, func(i int) float64 { return float64(10+i*5) * mib }, func(int) float64 { return 30 })
	goroutines := samples("alerts", 20, func(int) float64 { return 30 * mib }, func(i int) float64 { return float64(20 + 3*i) })
	few := samples("broker", 5, func(int) float64 { return mib }, func(int) float64 { return 1 })
	got := map[string]Flatness{}
	for _, f := range Flat(append(append(append(steady, leaking...), goroutines...), few...)) {
		got[f.Service] = f
	}
	if f := got["scorer"]; !f.Flat {
		t.Errorf("steady scorer judged not flat: %+v", f)
	}
	if f := got["ingest"]; f.Flat || !strings.Contains(f.Why, "heap in use grew") {
		t.Errorf("growing heap judged flat: %+v", f)
	}
	if f := got["alerts"]; f.Flat || !strings.Contains(f.Why, "goroutines grew") {
		t.Errorf("growing goroutines judged flat: %+v", f)
	}
	if f := got["broker"]; f.Flat {
		t.Errorf("5 samples judged flat: %+v", f)
	}

	// With the heap goal, the GC cycle's swings of heap in use do not
	// count, a growing goal does; one spike of goroutines does not count.
	swinging := samples("scorer", 20, func(i int) float64 { return float64(50+(i%2)*50+i) * mib }, func(i int) float64 {
		if i == 19 {
			return 90
		}
		return 40
	})
	growing := samples("alerts", 20, func(int) float64 { return 30 * mib }, func(int) float64 { return 20 })
	for i := range swinging {
		swinging[i].NextGC = 120 * mib
		growing[i].NextGC = float64(40+4*i) * mib
	}
	got = map[string]Flatness{}
	for _, f := range Flat(append(swinging, growing...)) {
		got[f.Service] = f
	}
	if f := got["scorer"]; !f.Flat || !f.HeapGoal {
		t.Errorf("flat heap goal with a swinging heap in use and one goroutine spike judged not flat: %+v", f)
	}
	if f := got["alerts"]; f.Flat || !strings.Contains(f.Why, "heap goal grew") {
		t.Errorf("growing heap goal judged flat: %+v", f)
	}
}

func phase(throughput, p50, p99 float64, missing int) *Phase {
	prec, rec := 0.9, 0.95
	return &Phase{Command: "fraudstream loadgen --rate 5000", Report: &loadgen.Report{
		Throughput: throughput, Transactions: 1000, Accepted: 1000,
		E2E: &loadgen.E2E{Scored: 1000 - missing, Missing: missing,
			Client:  loadgen.Latency{Count: 1000, P50: p50, P99: p99},
			Records: loadgen.Latency{Count: 1000, P50: p50 / 2, P99: p99 / 2}},
		Quality: &loadgen.Quality{Scored: 1000, Precision: &prec, Recall: &rec,
			Scenarios: map[traffic.Pattern]*loadgen.ScenarioQuality{traffic.CardTesting: {Transactions: 10, Flagged: 9, Recall: &rec}},
			Reasons:   map[string]*loadgen.ReasonQuality{"CARD_TESTING": {Flagged: 10, Fraud: 9, Precision: &prec}}},
	}}
}

func TestE2EVerdict(t *testing.T) {
	for _, c := range []struct {
		name string
		p    *Phase
		want Status
		why  string
	}{
		{"within target", phase(4990, 12, 80, 0), Met, ""},
		{"rate not reached", phase(3000, 12, 80, 0), NotMet, "rate reached was 3000/s"},
		{"p50 too long", phase(5000, 31, 80, 0), NotMet, "p50 31.0 ms"},
		{"p99 too long", phase(5000, 12, 121, 0), NotMet, "p99 121.0 ms"},
		{"records missing", phase(5000, 12, 80, 3), NotMet, "3 accepted"},
		{"no phase", nil, NotMeasured, "no scored"},
	} {
		l := E2EVerdict(c.p, 5000)
		if l.Status != c.want || !strings.Contains(l.Why, c.why) {
			t.Errorf("%s: %s (%s), want %s containing %q", c.name, l.Status, l.Why, c.want, c.why)
		}
	}
}

func TestRender(t *testing.T) {
	set, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	load := Span{Before: Load{At: time.Unix(1, 0), One: 1.5, Five: 1, Fifteen: 0.5}, After: Load{At: time.Unix(2, 0), One: 2.5, Five: 1.2, Fifteen: 0.6}}
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	r := Report{
		Machine: Machine{CPU: "AMD EPYC", Cores: 2, MemoryGiB: 24, GoVersion: "go1.26.8", OS: "linux", Arch: "amd64", Kernel: "6.1"},
		Started: start, Finished: start.Add(15 * time.Minute), HowProduced: "`make bench` with BENCH_SOAK=1m.",
		Micro: set, MicroFile: "out/bench/micro.txt",
		Commands: []Command{{Line: "go test -run '^$' -bench 'ScorerVsCopyLoop$' ./services/scorer/", Seconds: 40, Load: load}},
		E2ERate:  5000, E2E: phase(3000, 12, 80, 0), Quality: phase(200, 10, 20, 0),
		Soak: &Soak{Phase: Phase{Command: "fraudstream loadgen --rate 1000 --duration 1m0s", Load: load}, Duration: time.Minute, Interval: 5 * time.Second,
			Samples: samples("scorer", 12, func(int) float64 { return 1 << 20 }, func(int) float64 { return 10 })},
	}
	var b bytes.Buffer
	if err := Render(&b, r); err != nil {
		t.Fatal(err)
	}
	wantInReport(t, b.String(),
		"AMD EPYC, 2 cores, 24 GiB memory, Linux 6.1, go1.26.8 linux/amd64",
		"out/bench/micro.txt`; with -count 3",
		"with BENCH_SOAK=1m.",
		"| scorer vs plain transactional copy loop (same broker) | ratio ≥ 0.6 | 0.123 (89,291 / 710,000 records/s; 3 runs: 0.123, 0.130, 0.120) | **not met** | 1.50, 1.00, 0.50 → 2.50, 1.20, 0.60 |",
		"| ingest vs bare decode-and-202 handler | ratio ≥ 0.5 | 0.450",
		"| database sink vs raw COPY (PostgreSQL) | ratio ≥ 0.7 | — | **not measured** |",
		"| ingest batch endpoint, 1000-item NDJSON batches | ≥ 200,000 tx/s | — | **not measured** |",
		"| scorer restore of one partition holding 1 million cards' state | ≤ 15 s | — | **not measured** |",
		"at 3000 tx/s achieved | **not met** |",
		"precision 0.900, recall 0.950",
		"1m0s soak: scorer flat | **met** |",
		"go test -run '^$' -bench 'ScorerVsCopyLoop$' ./services/scorer/",
		"fraudstream loadgen --rate 1000 --duration 1m0s",
		"| card_testing | 10 | 9 | 0.950 |",
		"| BenchmarkWatermarkClassify | 1 | 1.6 ns/op |",
	)
}

// sampleCeiling has the scorer's codec loop and the batch endpoint with its
// floor, as the benchmarks print them.
const sampleCeiling = `pkg: github.com/fraudstream/fraudstream/services/scorer
BenchmarkScorerVsCopyLoop-2   	       2	3067426490 ns/op	         6.071 codec-cpu-µs/rec	         0.2972 codec-ratio	    192917 codec-records/s	         1.636 copy-cpu-µs/rec	    649210 copy-records/s	         0.1251 cpu-ratio	         0.1799 ratio	        13.08 scorer-cpu-µs/rec	    116761 scorer-records/s
BenchmarkScorerVsCopyLoop-2   	       2	3067426490 ns/op	         0.3100 codec-ratio	    600000 copy-records/s	         0.2000 ratio	    120000 scorer-records/s
pkg: github.com/fraudstream/fraudstream/services/ingest
BenchmarkIngestBatch/floor-2         	     300	   5873022 ns/op	         6.751 cpu-µs/tx	         3.292 redis-cpu-µs/tx	    170000 tx/s	 2964438 B/op	   13262 allocs/op
BenchmarkIngestBatch/full-2          	     300	   8742928 ns/op	         9.171 cpu-µs/tx	         5.816 redis-cpu-µs/tx	    110000 tx/s	 4289074 B/op	    7301 allocs/op
BenchmarkIngestBatch/floor-2         	     300	   5873022 ns/op	    190000 tx/s
BenchmarkIngestBatch/full-2          	     300	   8742928 ns/op	    120000 tx/s
pkg: github.com/fraudstream/fraudstream/services/scorer
BenchmarkRestore1MCards-2   	       1	27965150184 ns/op	      1155 heap-bytes/card	         6.621 s/restore
BenchmarkRestore1MCards-2   	       1	27965150184 ns/op	      1201 heap-bytes/card	        16.2 s/restore
BenchmarkRestore1MCards-2   	       1	27965150184 ns/op	      1100 heap-bytes/card	         7.0 s/restore
`

func TestRenderCeilingAndBatch(t *testing.T) {
	set, err := Parse(strings.NewReader(sampleCeiling))
	if err != nil {
		t.Fatal(err)
	}
	sc := ScorerRatio(set)
	if len(sc.Ceiling) != 2 || sc.Ceiling[1] != 0.31 {
		t.Errorf("scorer ceiling %v, want the two codec-ratio figures", sc.Ceiling)
	}
	batch := IngestBatchRate(set)
	if batch.Status != NotMet || Median(batch.Measured) != 115000 || Median(batch.Floor) != 180000 {
		t.Errorf("batch %+v: want not met, median 115,000 beside a floor of 180,000", batch)
	}
	if slow := RestoreOf(mustParse(t, "BenchmarkRestore1MCards-2 1 1 ns/op 15.1 s/restore\n")); slow.Status != NotMet {
		t.Errorf("a restore of 15.1 s is over the target, got %s", slow.Status)
	}
	if fast := IngestBatchRate(mustParse(t, "BenchmarkIngestBatch/full-2 1 1 ns/op 200000 tx/s\n")); fast.Status != Met {
		t.Errorf("200,000 tx/s is the target, got %s", fast.Status)
	}
	var b bytes.Buffer
	if err := Render(&b, Report{Micro: set}); err != nil {
		t.Fatal(err)
	}
	wantInReport(t, b.String(),
		"| ingest batch endpoint, 1000-item NDJSON batches | ≥ 200,000 tx/s | 115,000 tx/s (floor handler 180,000; 2 runs: 110,000, 120,000) | **not met** |",
		"| run | service (tx/s) | floor (tx/s) | service / floor |",
		"| 1 | 110,000 | 170,000 | 0.647 |",
		"The floor reached 180,000 tx/s at the median (90% of the target; best run 190,000)",
		"| run | measured (records/s) | baseline (records/s) | ratio | ceiling ratio |",
		"| 2 | 120,000 | 600,000 | 0.200 | 0.310 |",
		"It reached 0.304 of the copy loop (median)",
		"| scorer restore of one partition holding 1 million cards' state | ≤ 15 s | 7.0 s (3 runs: 6.62, 16.2, 7) | **met** |",
		"| scorer memory per active card (three transactions each) | measured | 1,155 bytes of heap per restored card | **reported (no target)** |",
	)
}

// wantInReport fails t for each of wants the report out lacks, and then
// logs the report.
func wantInReport(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func mustParse(t *testing.T, in string) *Set {
	t.Helper()
	s, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseMetrics(t *testing.T) {
	in := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
go_memstats_heap_inuse_bytes 1.2345e+07
go_memstats_next_gc_bytes 2e+07
go_memstats_heap_inuse_bytes_total{x="y"} 9
process_resident_memory_bytes 5.5e+07
`
	s, err := parseMetrics("scorer", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if s.Service != "scorer" || s.Goroutines != 42 || s.HeapInuse != 12345000 || s.NextGC != 2e7 || s.RSS != 55e6 {
		t.Errorf("%+v", s)
	}
	if _, err := parseMetrics("x", strings.NewReader("up 1\n")); err == nil {
		t.Error("metrics without the runtime gauges accepted")
	}
	if _, err := parseMetrics("x", strings.NewReader("go_goroutines many\n")); err == nil {
		t.Error("a gauge that is not a number accepted")
	}
}
