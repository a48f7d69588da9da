package benchreport

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/fraudstream/fraudstream/tools/loadgen"
)

// Status is the verdict on one figure.
type Status string

// Verdicts.
const (
	Met         Status = "met"
	NotMet      Status = "not met"
	NotMeasured Status = "not measured"
)

// Ratio is a throughput compared with its baseline in one benchmark run,
// once per -count repetition.
type Ratio struct {
	Benchmark      string
	Measured, Base []float64 // throughput of the system and of its baseline, per run
	Ratios         []float64 // per run
	// Ceiling, per run where the benchmark measures it, is what a third
	// loop doing only the least the system must do reached against the
	// same baseline: no implementation can beat it on that machine.
	Ceiling []float64
	Unit    string
	Target  float64
	Status  Status
}

func verdictRatio(r Ratio) Ratio {
	r.Status = verdict(r.Ratios, func(m float64) bool { return m >= r.Target })
	return r
}

// verdict is NotMeasured without runs, otherwise Met when their median
// meets the target (meets) and NotMet when it does not.
func verdict(runs []float64, meets func(median float64) bool) Status {
	switch {
	case len(runs) == 0:
		return NotMeasured
	case meets(Median(runs)):
		return Met
	}
	return NotMet
}

// ScorerRatio is the scorer against a plain transactional copy loop
// (BenchmarkScorerVsCopyLoop).
func ScorerRatio(s *Set) Ratio {
	const b = "BenchmarkScorerVsCopyLoop"
	return verdictRatio(Ratio{Benchmark: b, Measured: s.Values(b, "scorer-records/s"), Base: s.Values(b, "copy-records/s"),
		Ratios: s.Values(b, "ratio"), Ceiling: s.Values(b, "codec-ratio"), Unit: "records/s", Target: TargetScorerRatio})
}

// Rate is a throughput held to an absolute target, beside the floor
// implementation the same benchmark runs in each repetition: the least
// that keeps the system's promises, so a bound on what it could reach.
type Rate struct {
	Benchmark       string
	Measured, Floor []float64 // per run
	Unit            string
	Target          float64
	Status          Status
}

// Restore is the scorer restoring one partition that holds a million
// cards' state (BenchmarkRestore1MCards): seconds per restore against the
// target, and the heap each restored card holds (reported, no target).
type Restore struct {
	Seconds, BytesPerCard []float64 // per run
	Target                float64   // seconds
	Status                Status
}

// RestoreOf reads BenchmarkRestore1MCards.
func RestoreOf(s *Set) Restore {
	const b = "BenchmarkRestore1MCards"
	r := Restore{Seconds: s.Values(b, "s/restore"), BytesPerCard: s.Values(b, "heap-bytes/card"), Target: TargetRestoreSeconds}
	r.Status = verdict(r.Seconds, func(m float64) bool { return m <= r.Target })
	return r
}

// IngestBatchRate is POST /v1/transactions/batch through the whole service
// against its target, with the floor handler of the same run
// (BenchmarkIngestBatch/full and /floor).
func IngestBatchRate(s *Set) Rate {
	r := Rate{Benchmark: "BenchmarkIngestBatch", Measured: s.Values("BenchmarkIngestBatch/full", "tx/s"),
		Floor: s.Values("BenchmarkIngestBatch/floor", "tx/s"), Unit: "tx/s", Target: TargetIngestBatch}
	r.Status = verdict(r.Measured, func(m float64) bool { return m >= r.Target })
	return r
}

// IngestRatio is POST /v1/transactions through the whole service against
// a bare decode-and-202 handler (BenchmarkIngestSingle/full and /bare,
// which run one after the other in each repetition).
func IngestRatio(s *Set) Ratio {
	full, bare := s.Values("BenchmarkIngestSingle/full", "req/s"), s.Values("BenchmarkIngestSingle/bare", "req/s")
	r := Ratio{Benchmark: "BenchmarkIngestSingle", Measured: full, Base: bare, Unit: "req/s", Target: TargetIngestRatio}
	for i := range min(len(full), len(bare)) {
		if bare[i] > 0 {
			r.Ratios = append(r.Ratios, full[i]/bare[i])
		}
	}
	return verdictRatio(r)
}

// SinkRatio is the database sink against a raw COPY of the same rows into
// PostgreSQL (BenchmarkSinkVsRawCopy).
func SinkRatio(s *Set) Ratio {
	const b = "BenchmarkSinkVsRawCopy"
	return verdictRatio(Ratio{Benchmark: b, Measured: s.Values(b, "sink-rows/s"), Base: s.Values(b, "copy-rows/s"),
		Ratios: s.Values(b, "ratio"), Unit: "rows/s", Target: TargetSinkRatio})
}

// Latency is the verdict on end-to-end latency at the target rate.
type Latency struct {
	TargetRate, Achieved float64
	Client, Records      loadgen.Latency
	Status               Status
	Why                  string
}

// E2EVerdict judges the latency phase: met only when the run sustained
// the target rate and the client-measured p50 and p99 are within target.
func E2EVerdict(p *Phase, targetRate float64) Latency {
	l := Latency{TargetRate: targetRate, Status: NotMeasured}
	if p == nil || p.Report == nil || p.Report.E2E == nil || p.Report.E2E.Client.Count == 0 {
		l.Why = "no scored records were seen"
		return l
	}
	r := p.Report
	l.Achieved, l.Client, l.Records = r.Throughput, r.E2E.Client, r.E2E.Records
	var why []string
	if l.Achieved < rateTolerance*targetRate {
		why = append(why, fmt.Sprintf("the rate reached was %.0f/s, not %.0f/s", l.Achieved, targetRate))
	}
	if l.Client.P50 > TargetE2EP50 {
		why = append(why, fmt.Sprintf("p50 %.1f ms > %.0f ms", l.Client.P50, TargetE2EP50))
	}
	if l.Client.P99 > TargetE2EP99 {
		why = append(why, fmt.Sprintf("p99 %.1f ms > %.0f ms", l.Client.P99, TargetE2EP99))
	}
	if m := r.E2E.Missing; m > 0 {
		why = append(why, fmt.Sprintf("%d accepted transactions were never seen scored", m))
	}
	l.Status, l.Why = Met, strings.Join(why, "; ")
	if len(why) > 0 {
		l.Status = NotMet
	}
	return l
}

// Flatness is the soak verdict for one service.
type Flatness struct {
	Service                         string
	Samples                         int
	HeapEarly, HeapLate             float64 // median heap goal (or heap in use), second and last quarter, bytes
	HeapGoal                        bool    // whether Heap* is the heap goal (go_memstats_next_gc_bytes)
	InuseEarly, InuseLate           float64 // median heap in use, second and last quarter
	GoroutinesEarly, GoroutinesLate float64 // median goroutines, second and last quarter
	GoroutinesMin, GoroutinesMax    float64 // over the whole soak
	RSSLast                         float64
	Flat                            bool
	Why                             string
}

// Flat judges each service's samples: the first quarter of the soak is
// warm-up; the medians of the heap goal and of the goroutines in the last
// quarter are compared with those of the second. Fewer than 8 samples of
// a service cannot show a trend and are judged not flat.
func Flat(samples []Sample) []Flatness {
	by := map[string][]Sample{}
	for _, s := range samples {
		by[s.Service] = append(by[s.Service], s)
	}
	var out []Flatness
	for _, name := range slices.Sorted(maps.Keys(by)) {
		ss := by[name]
		slices.SortFunc(ss, func(a, b Sample) int { return int(a.Elapsed - b.Elapsed) })
		f := Flatness{Service: name, Samples: len(ss), RSSLast: ss[len(ss)-1].RSS, HeapGoal: true,
			GoroutinesMin: ss[0].Goroutines, GoroutinesMax: ss[0].Goroutines}
		for _, s := range ss {
			f.HeapGoal = f.HeapGoal && s.NextGC > 0
			f.GoroutinesMin, f.GoroutinesMax = min(f.GoroutinesMin, s.Goroutines), max(f.GoroutinesMax, s.Goroutines)
		}
		if len(ss) < 8 {
			f.Why = fmt.Sprintf("only %d samples", len(ss))
			out = append(out, f)
			continue
		}
		q := len(ss) / 4
		early, late := ss[q:2*q], ss[len(ss)-q:]
		med := func(ss []Sample, v func(Sample) float64) float64 {
			vs := make([]float64, len(ss))
			for i, s := range ss {
				vs[i] = v(s)
			}
			return Median(vs)
		}
		heap := func(s Sample) float64 { return s.HeapInuse }
		if f.HeapGoal {
			heap = func(s Sample) float64 { return s.NextGC }
		}
		inuse := func(s Sample) float64 { return s.HeapInuse }
		gor := func(s Sample) float64 { return s.Goroutines }
		f.HeapEarly, f.HeapLate = med(early, heap), med(late, heap)
		f.InuseEarly, f.InuseLate = med(early, inuse), med(late, inuse)
		f.GoroutinesEarly, f.GoroutinesLate = med(early, gor), med(late, gor)
		var why []string
		if f.HeapLate > heapGrowthLimit*f.HeapEarly {
			what := "heap in use"
			if f.HeapGoal {
				what = "heap goal"
			}
			why = append(why, fmt.Sprintf("%s grew %.0f%%", what, 100*(f.HeapLate/f.HeapEarly-1)))
		}
		if f.GoroutinesLate > goroutineGrowthLimit*f.GoroutinesEarly+goroutineSlack {
			why = append(why, fmt.Sprintf("goroutines grew from %.0f to %.0f", f.GoroutinesEarly, f.GoroutinesLate))
		}
		f.Flat, f.Why = len(why) == 0, strings.Join(why, "; ")
		out = append(out, f)
	}
	return out
}
