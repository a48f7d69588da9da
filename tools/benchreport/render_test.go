package benchreport

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/tools/loadgen"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

var update = flag.Bool("update", false, "rewrite testdata/report-*.golden.md from the current renderer")

// sampleSink is the database sink's benchmark, met in two runs of three.
const sampleSink = `pkg: github.com/fraudstream/fraudstream/services/alerts
BenchmarkSinkVsRawCopy-2   	       1	 912345678 ns/op	     22000 copy-rows/s	         0.7800 ratio	     17160 sink-rows/s
BenchmarkSinkVsRawCopy-2   	       1	 912345678 ns/op	     21000 copy-rows/s	         0.6500 ratio	     13650 sink-rows/s
BenchmarkSinkVsRawCopy-2   	       1	 912345678 ns/op	     23000 copy-rows/s	         0.7500 ratio	     17250 sink-rows/s
`

// goldenReports are fixed reports that between them take every branch of
// Render: all figures measured (full), nothing at all (empty), and phases
// that ran without a usable result (sparse).
func goldenReports(t *testing.T) map[string]Report {
	t.Helper()
	at := func(min int) time.Time { return time.Date(2026, 6, 1, 10, min, 0, 0, time.UTC) }
	span := func(min int, b, a float64) Span {
		return Span{Before: Load{At: at(min), One: b, Five: b / 2, Fifteen: b / 4}, After: Load{At: at(min + 1), One: a, Five: a / 2, Fifteen: a / 4}}
	}
	f := func(v float64) *float64 { return &v }
	lat := func(p50, p99 float64) loadgen.Latency {
		return loadgen.Latency{Count: 250_000, Mean: p50 * 1.2, P50: p50, P90: p99 / 2, P99: p99, P999: p99 * 1.5, Max: p99 * 3}
	}

	micro := mustParse(t, sample+sampleCeiling+sampleSink)
	micro.CPU = "AMD EPYC 7B13 (go test)"
	e2e := &Phase{Command: "fraudstream loadgen --mode http --rate 5000 --duration 1m0s --cards 200000", Load: span(20, 1.9, 6.4),
		Err: "drain: 12 accepted transactions not seen within 30s",
		Report: &loadgen.Report{Mode: loadgen.ModeHTTP, Target: "http://127.0.0.1:8081", Seed: 7, SendSeconds: 60, DrainSeconds: 2.5,
			TargetRate: 5000, TimeScale: 1, Transactions: 202_000, Retries: 3, Accepted: 201_990, Rejected: 10, Throughput: 3366.5,
			Generated: loadgen.Gen{Cards: 200_000, PerCardPerMinute: 0.8415,
				ByPattern: map[traffic.Pattern]int{traffic.Normal: 200_000, traffic.CardTesting: 2000},
				Episodes:  map[traffic.Pattern]int{traffic.CardTesting: 100}},
			Requests: lat(150, 320), Errors: loadgen.Errors{"http 503": 10},
			E2E: &loadgen.E2E{Source: "stream", Scored: 201_978, Missing: 12, Recovered: 4, Client: lat(161.9, 333.1),
				Records: lat(22.6, 100.6), FanOut: lat(40, 90)}}}
	quality := &Phase{Command: "fraudstream loadgen --mode batch --rate 200 --duration 3m0s --cards 2000 --time-scale 120", Load: span(24, 1.1, 1.3),
		Report: &loadgen.Report{Mode: loadgen.ModeBatch, Target: "http://127.0.0.1:8081", Seed: 8, SendSeconds: 180, TargetRate: 200,
			TimeScale: 120, Transactions: 36_000, Accepted: 36_000, Throughput: 200,
			Generated: loadgen.Gen{Cards: 2000, PerCardPerMinute: 0.0833},
			Quality: &loadgen.Quality{Scored: 36_000, Fraud: 900, Flagged: 1000, Precision: f(0.888), Recall: f(0.991), F1: f(0.937),
				FalsePositiveRate: f(0.0032),
				Scenarios: map[traffic.Pattern]*loadgen.ScenarioQuality{
					traffic.CardTesting:         {Transactions: 400, Flagged: 399, Recall: f(0.9975), Episodes: 20, EpisodesDetected: 20, EpisodeRecall: f(1)},
					traffic.ImpossibleTravel:    {Transactions: 200, Flagged: 190, Recall: f(0.95), Episodes: 100, EpisodesDetected: 98, EpisodeRecall: f(0.98)},
					traffic.CompromisedMerchant: {Transactions: 300, Flagged: 0, Episodes: 3},
				},
				Reasons: map[string]*loadgen.ReasonQuality{
					"VELOCITY_1M":  {Flagged: 500, Fraud: 450, Precision: f(0.9)},
					"CARD_TESTING": {Flagged: 400, Fraud: 399, Precision: f(0.9975)},
					"NEW_COUNTRY":  {Flagged: 100, Fraud: 51},
				}}}}
	var soakSamples []Sample
	soakSamples = append(soakSamples, samples("scorer", 12, func(i int) float64 { return float64(90+i%3) * (1 << 20) }, func(int) float64 { return 40 })...)
	for i := range soakSamples {
		soakSamples[i].NextGC = float64(180+i%2) * (1 << 20)
	}
	soakSamples = append(soakSamples, samples("ingest", 12, func(i int) float64 { return float64(20+5*i) * (1 << 20) }, func(i int) float64 { return float64(30 + 4*i) })...)
	soakSamples = append(soakSamples, samples("alerts", 5, func(int) float64 { return 30 << 20 }, func(int) float64 { return 25 })...)
	full := Report{
		Machine: Machine{CPU: "AMD EPYC 7B13", Cores: 2, MemoryGiB: 23.4, GoVersion: "go1.26.8", OS: "linux", Arch: "amd64", Kernel: "6.18.44"},
		Started: at(0), Finished: at(18).Add(21 * time.Second),
		HowProduced: "This run: `make bench` with default settings, on commit 3ff54c5.",
		Stack:       "`fraudstream broker`, `fraudstream ingest`, `fraudstream scorer` and `fraudstream alerts` as four processes.",
		Micro:       micro, MicroFile: "out/bench/micro.txt",
		Commands: []Command{
			{Line: "go test -run '^$' -bench 'ScorerVsCopyLoop$|Restore1MCards$' -count 3 -timeout 30m ./services/scorer/ | tee -a out/bench/micro.txt", Seconds: 412.4, Load: span(1, 0.15, 0.7)},
			{Line: "go test -run '^$' -bench 'IngestSingle|IngestBatch' -count 3 ./services/ingest/", Seconds: 120.6, Load: span(8, 0.7, 1.22)},
			{Line: "go test -run '^$' -bench 'SinkVsRawCopy$' -count 3 ./services/alerts/", Seconds: 61, Load: span(11, 1.27, 1.23),
				Err: "exit status 1"},
		},
		E2ERate: 5000, E2E: e2e, Quality: quality,
		Soak: &Soak{
			Phase: Phase{Command: "fraudstream loadgen --mode http --rate 1000 --duration 10m0s --cards 20000 --time-scale 576", Load: span(27, 2.2, 3.1),
				Report: &loadgen.Report{Mode: loadgen.ModeHTTP, Target: "http://127.0.0.1:8081", SendSeconds: 600, TargetRate: 1000, TimeScale: 576,
					Accepted: 599_000, Throughput: 998.3, Generated: loadgen.Gen{Cards: 20_000, PerCardPerMinute: 0.0052},
					E2E: &loadgen.E2E{Source: "stream", Scored: 599_000, Client: lat(9.4, 48.2), Records: lat(4.1, 30.5)}}},
			Duration: 10 * time.Minute, Interval: 5 * time.Second, Samples: soakSamples,
			Loads: []Load{{At: at(28), One: 2.4}, {At: at(30), One: 1.7}, {At: at(33), One: 3.05}},
		},
		Notes: []string{"The micro-benchmarks were not run by this invocation.", "A second note."},
	}

	sparse := Report{
		Started: at(0), Finished: at(1),
		Micro:    mustParse(t, "BenchmarkIngestSingle/full-2 1 1 ns/op 9000 req/s\nBenchmarkIngestSingle/bare-2 1 1 ns/op 10000 req/s\n"),
		Commands: []Command{{Line: "go test -run '^$' -bench 'IngestSingle' ./services/ingest/", Seconds: 3, Err: "signal: killed"}},
		E2ERate:  2000,
		E2E:      &Phase{Command: "fraudstream loadgen --rate 2000", Err: "connect: connection refused"},
		Quality:  &Phase{Command: "fraudstream loadgen --rate 200 --time-scale 60", Report: &loadgen.Report{TimeScale: 60}},
		Soak:     &Soak{Phase: Phase{Command: "fraudstream loadgen --rate 1000 --duration 1m0s"}, Duration: time.Minute, Interval: 5 * time.Second},
	}
	return map[string]Report{"full": full, "empty": {}, "sparse": sparse}
}

// TestRenderGolden holds Render's whole text for fixed reports, byte for
// byte; go test -run TestRenderGolden -update rewrites the files after a
// deliberate change of wording. The report read back from its JSON (what
// BENCH_RERENDER does) renders the same text.
func TestRenderGolden(t *testing.T) {
	for name, r := range goldenReports(t) {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			if err := Render(&got, r); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join("testdata", "report-"+name+".golden.md")
			if *update {
				if err := os.WriteFile(file, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("Render differs from %s (go test -update rewrites it):\n%s", file, firstDiff(string(want), got.String()))
			}

			js, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var back Report
			if err := json.Unmarshal(js, &back); err != nil {
				t.Fatal(err)
			}
			var again bytes.Buffer
			if err := Render(&again, back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), got.Bytes()) {
				t.Errorf("the report read back from JSON renders otherwise:\n%s", firstDiff(got.String(), again.String()))
			}
		})
	}
}

// firstDiff shows the first line where got departs from want.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\nwant " + wl + "\n got " + gl
		}
	}
	return "(same lines)"
}
