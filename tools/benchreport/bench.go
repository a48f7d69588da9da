// Package benchreport is `make bench`: it reads the output of the Go
// micro-benchmarks, runs the system benchmark (the real binaries as
// separate processes, driven by tools/loadgen) and writes
// docs/BENCHMARKS.md, where every figure of the performance issue is set
// against its baseline or target, measured in the same run, and stated as
// met or not together with what limits it.
//
// The pieces are apart so they can be tested without running anything:
// Parse reads `go test -bench` output (the format benchstat reads), the
// Report holds what one run measured, and Render turns it into Markdown
// with the templates in templates/.
// The orchestration lives in a test file behind the build tag benchsystem
// (it needs throwaway Redis and PostgreSQL servers from tools/testenv),
// run by `make bench`.
package benchreport

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Result is one line of benchmark output: one run of one benchmark.
type Result struct {
	Pkg   string // import path, from the "pkg:" line before it
	Name  string // such as "BenchmarkIngestSingle/bare", without the -GOMAXPROCS suffix
	Procs int    // GOMAXPROCS of the run; 1 when the name has no suffix
	N     int64  // iterations
	// Values maps each unit ("ns/op", "ratio", "req/s", …) to its value.
	Values map[string]float64
}

// Set is the benchmark output of one or more `go test -bench` runs.
type Set struct {
	Goos, Goarch, CPU string
	Results           []Result
}

// Parse reads `go test -bench` output. Lines that are not benchmark
// results or configuration (test logs, PASS, ok …) are skipped; a result
// line that cannot be read is an error, so a change of format is not
// silently reported as a missing figure.
func Parse(r io.Reader) (*Set, error) {
	s := &Set{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(text, ": "); ok && !strings.HasPrefix(text, "Benchmark") {
			switch k {
			case "pkg":
				pkg = strings.TrimSpace(v)
			case "goos":
				s.Goos = strings.TrimSpace(v)
			case "goarch":
				s.Goarch = strings.TrimSpace(v)
			case "cpu":
				s.CPU = strings.TrimSpace(v)
			}
			continue
		}
		if !strings.HasPrefix(text, "Benchmark") {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 2 {
			continue // a benchmark's name printed alone before its log lines
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue // "BenchmarkX --- FAIL" or a log line that starts with a name
		}
		if len(f)%2 != 0 {
			return nil, fmt.Errorf("line %d: %q: values and units do not pair up", line, text)
		}
		res := Result{Pkg: pkg, Name: f[0], Procs: 1, N: n, Values: map[string]float64{}}
		if i := strings.LastIndexByte(f[0], '-'); i > 0 {
			if p, err := strconv.Atoi(f[0][i+1:]); err == nil && p > 0 {
				res.Name, res.Procs = f[0][:i], p
			}
		}
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %q: value %q is not a number", line, text, f[i])
			}
			res.Values[f[i+1]] = v
		}
		s.Results = append(s.Results, res)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// Values returns the values of unit in every run of the benchmark name, in
// the order they ran.
func (s *Set) Values(name, unit string) []float64 {
	if s == nil {
		return nil
	}
	var out []float64
	for _, r := range s.Results {
		if v, ok := r.Values[unit]; ok && r.Name == name {
			out = append(out, v)
		}
	}
	return out
}

// Names lists the benchmarks in the set, in first-seen order, each once.
func (s *Set) Names() []string {
	var out []string
	for _, r := range s.Results {
		if !slices.Contains(out, r.Name) {
			out = append(out, r.Name)
		}
	}
	return out
}

// Median of vs; 0 for none.
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
