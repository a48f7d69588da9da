package benchreport

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/fraudstream/fraudstream/tools/loadgen"
)

// Load is the machine's load average at one moment, from /proc/loadavg.
type Load struct {
	At                 time.Time
	One, Five, Fifteen float64
}

func (l Load) String() string {
	if l.At.IsZero() {
		return "unknown"
	}
	return fmt.Sprintf("%.2f, %.2f, %.2f", l.One, l.Five, l.Fifteen)
}

// ReadLoad reads the load average now.
func ReadLoad() (Load, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return Load{}, err
	}
	return parseLoadavg(string(b), time.Now())
}

func parseLoadavg(s string, at time.Time) (Load, error) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return Load{}, fmt.Errorf("loadavg %q: want three numbers", s)
	}
	l := Load{At: at}
	for i, dst := range []*float64{&l.One, &l.Five, &l.Fifteen} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Load{}, fmt.Errorf("loadavg %q: %w", s, err)
		}
		*dst = v
	}
	return l, nil
}

// Span is the load before and after a step.
type Span struct{ Before, After Load }

func (s Span) String() string {
	return fmt.Sprintf("load average %s before, %s after", s.Before, s.After)
}

// Machine describes where the run happened.
type Machine struct {
	CPU       string
	Cores     int
	MemoryGiB float64
	GoVersion string
	OS, Arch  string
	Kernel    string
}

// ThisMachine describes the machine the process runs on; what cannot be
// read stays empty.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemoryGiB = kb / (1 << 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Command is one command the run executed, with its load.
type Command struct {
	Line    string  // as a person would type it, from the repository root
	Seconds float64 // wall time
	Load    Span
	Err     string // non-empty when it failed
}

// Phase is one loadgen phase of the system benchmark.
type Phase struct {
	Command string // the equivalent fraudstream loadgen command line
	Load    Span
	Report  *loadgen.Report
	Err     string
}

// Sample is one reading of a service's runtime metrics during the soak.
type Sample struct {
	Elapsed    time.Duration
	Service    string
	HeapInuse  float64 // go_memstats_heap_inuse_bytes: live heap plus garbage not yet collected
	NextGC     float64 // go_memstats_next_gc_bytes: the heap goal, GOGC=100 makes it twice the live heap after the last GC
	Goroutines float64 // go_goroutines
	RSS        float64 // process_resident_memory_bytes
}

// Soak is the sustained-load phase.
type Soak struct {
	Phase
	Duration time.Duration
	Interval time.Duration
	Samples  []Sample
	Loads    []Load // the machine's load, sampled with the services
}

// Report is everything one `make bench` measured.
type Report struct {
	Machine           Machine
	Started, Finished time.Time
	// HowProduced says how this run was started (make bench, with which
	// BENCH_* settings), in the report's words.
	HowProduced string
	// Stack describes the system under test of the system benchmark.
	Stack string
	// Micro is the parsed output of Commands; MicroFile where it is kept.
	Micro     *Set
	MicroFile string
	Commands  []Command

	// E2ERate is the target rate of the latency phase.
	E2ERate float64
	E2E     *Phase
	Quality *Phase
	Soak    *Soak
	Notes   []string
}

// Targets of the performance issue.
const (
	TargetScorerRatio = 0.6
	TargetIngestRatio = 0.5
	TargetSinkRatio   = 0.7
	TargetIngestBatch = 200_000 // tx/s
	// TargetRestoreSeconds bounds the scorer's restore of a million cards.
	TargetRestoreSeconds = 15.0
	TargetE2EP50         = 30.0  // ms
	TargetE2EP99         = 120.0 // ms
	// A run reaches its rate when it sustains this share of it.
	rateTolerance = 0.95
	// Soak: a service is flat when the median of its heap goal (or, without
	// it, its heap in use) in the last quarter of the soak is at most this
	// factor of the median in the second quarter (the first is warm-up),
	// and the median of its goroutines at most this factor plus
	// goroutineSlack. Medians, because single samples swing with the GC
	// cycle and with the requests in flight.
	heapGrowthLimit      = 1.25
	goroutineGrowthLimit = 1.10
	goroutineSlack       = 5
)
