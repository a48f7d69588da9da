package benchreport

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fraudstream/fraudstream/tools/loadgen"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// Render writes the report as Markdown.
func Render(w io.Writer, r Report) error {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	m := r.Machine
	p("# fraudstream benchmarks")
	p("")
	p("Written by `make bench` (tools/benchreport); do not edit by hand. %s", r.HowProduced)
	p("")
	cpu := orUnknown(m.CPU)
	if r.Micro != nil && r.Micro.CPU != "" && r.Micro.CPU != m.CPU {
		cpu += fmt.Sprintf(" (`/proc/cpuinfo`; go test reports `cpu: %s`)", r.Micro.CPU)
	}
	p("- **Machine:** %s, %d cores, %.0f GiB memory, Linux %s, %s %s/%s.", cpu, m.Cores, m.MemoryGiB, orUnknown(m.Kernel), m.GoVersion, m.OS, m.Arch)
	p("- **Run:** %s → %s (%s).", r.Started.UTC().Format(time.RFC3339), r.Finished.UTC().Format(time.RFC3339), r.Finished.Sub(r.Started).Round(time.Second))
	p("- **Load:** the machine is shared; every figure below gives the load average (1, 5, 15 min, from `/proc/loadavg`) around it. On 2 cores a load above 2 means the benchmark competed for CPU, which makes throughputs pessimistic and latencies long.")
	if r.Stack != "" {
		p("- **System under test:** %s", r.Stack)
	}
	p("")

	p("## Summary")
	p("")
	p("| figure | target | measured (median of runs) | verdict | load average |")
	p("| --- | --- | --- | --- | --- |")
	loadOf := func(bench string) string {
		for _, c := range r.Commands {
			if strings.Contains(c.Line, strings.TrimPrefix(bench, "Benchmark")) {
				return fmt.Sprintf("%s → %s", c.Load.Before, c.Load.After)
			}
		}
		return "unknown"
	}
	ratios := []struct {
		title string
		r     Ratio
	}{
		{"scorer vs plain transactional copy loop (same broker)", ScorerRatio(r.Micro)},
		{"ingest vs bare decode-and-202 handler", IngestRatio(r.Micro)},
		{"database sink vs raw COPY (PostgreSQL)", SinkRatio(r.Micro)},
	}
	for _, x := range ratios {
		p("| %s | ratio ≥ %.1f | %s | %s | %s |", x.title, x.r.Target, ratioCell(x.r), x.r.Status.bold(), loadOf(x.r.Benchmark))
	}
	batch := IngestBatchRate(r.Micro)
	p("| ingest batch endpoint, 1000-item NDJSON batches | ≥ %s %s | %s | %s | %s |", num(batch.Target), batch.Unit, rateCell(batch), batch.Status.bold(), loadOf(batch.Benchmark))
	restore := RestoreOf(r.Micro)
	restoreCell, memoryCell, memoryStatus := "—", "—", NotMeasured
	if len(restore.Seconds) > 0 {
		restoreCell = fmt.Sprintf("%.1f s (%d runs: %s)", Median(restore.Seconds), len(restore.Seconds), joinNum(restore.Seconds))
	}
	if len(restore.BytesPerCard) > 0 {
		memoryCell, memoryStatus = fmt.Sprintf("%s bytes of heap per restored card", num(Median(restore.BytesPerCard))), "reported (no target)"
	}
	p("| scorer restore of one partition holding 1 million cards' state | ≤ %.0f s | %s | %s | %s |", restore.Target, restoreCell, restore.Status.bold(), loadOf("BenchmarkRestore1MCards"))
	p("| scorer memory per active card (three transactions each) | measured | %s | %s | %s |", memoryCell, memoryStatus.bold(), loadOf("BenchmarkRestore1MCards"))
	lat := E2EVerdict(r.E2E, r.E2ERate)
	p("| end-to-end latency POST → scored record on the SSE stream, at %.0f tx/s | p50 ≤ %.0f ms, p99 ≤ %.0f ms | %s | %s | %s |",
		r.E2ERate, TargetE2EP50, TargetE2EP99, latencyCell(lat), lat.Status.bold(), phaseLoad(r.E2E))
	if q := qualityOf(r.Quality); q != nil {
		p("| detection quality (scored output vs loadgen labels) | offline reference: precision 0.89, recall 0.97 | precision %s, recall %s | reported (no target) | %s |",
			f3(q.Precision), f3(q.Recall), phaseLoad(r.Quality))
	} else {
		p("| detection quality | — | — | %s | — |", NotMeasured.bold())
	}
	soakStatus, soakCell := NotMeasured, "—"
	if r.Soak != nil {
		fl := Flat(r.Soak.Samples)
		soakStatus = Met
		var cells []string
		for _, f := range fl {
			word := "flat"
			if !f.Flat {
				word, soakStatus = "not flat", NotMet
			}
			cells = append(cells, f.Service+" "+word)
		}
		if len(fl) == 0 {
			soakStatus = NotMeasured
		}
		soakCell = fmt.Sprintf("%s soak: %s", r.Soak.Duration, strings.Join(cells, ", "))
	}
	p("| soak at sustained load: heap and goroutines of each service | flat | %s | %s | %s |", soakCell, soakStatus.bold(), soakLoad(r.Soak))
	p("")

	p("## Commands")
	p("")
	p("`make bench` ran, from the repository root:")
	p("")
	p("```")
	for _, c := range r.Commands {
		p("%s", c.Line)
	}
	for _, ph := range []*Phase{r.Quality, r.E2E, soakPhase(r.Soak)} {
		if ph != nil && ph.Command != "" {
			p("%s", ph.Command)
		}
	}
	p("```")
	p("")
	p("The micro-benchmark output is kept in `%s` (benchstat reads it: `go run golang.org/x/perf/cmd/benchstat@latest %s`; with -count 3 it gives no confidence intervals, which need 6 runs: BENCH_COUNT=6). The loadgen phases ran in the benchmark's own process with `tools/loadgen`, exactly as the `fraudstream loadgen` command lines above would.", r.MicroFile, r.MicroFile)
	p("")
	p("| command | seconds | load before | load after | result |")
	p("| --- | ---: | --- | --- | --- |")
	for _, c := range r.Commands {
		res := "ok"
		if c.Err != "" {
			res = "failed: " + c.Err
		}
		p("| `%s` | %.0f | %s | %s | %s |", shortCmd(c.Line), c.Seconds, c.Load.Before, c.Load.After, res)
	}
	p("")

	p("## Throughput against a baseline, in one run")
	p("")
	p("Each benchmark runs the service and its baseline in the same process, on the same broker or database, one after the other, repeated (`-count`); the ratio is per repetition and the verdict uses the median.")
	p("")
	for _, x := range ratios {
		p("### %s", x.title)
		p("")
		p("`%s`: target ratio ≥ %.1f — %s.", x.r.Benchmark, x.r.Target, x.r.Status.bold())
		p("")
		if len(x.r.Ratios) > 0 && len(x.r.Ceiling) > 0 {
			p("| run | measured (%s) | baseline (%s) | ratio | ceiling ratio |", x.r.Unit, x.r.Unit)
			p("| ---: | ---: | ---: | ---: | ---: |")
			for i, ratio := range x.r.Ratios {
				p("| %d | %s | %s | %.3f | %s |", i+1, at(x.r.Measured, i), at(x.r.Base, i), ratio, atF(x.r.Ceiling, i))
			}
			p("")
		} else if len(x.r.Ratios) > 0 {
			p("| run | measured (%s) | baseline (%s) | ratio |", x.r.Unit, x.r.Unit)
			p("| ---: | ---: | ---: | ---: |")
			for i, ratio := range x.r.Ratios {
				p("| %d | %s | %s | %.3f |", i+1, at(x.r.Measured, i), at(x.r.Base, i), ratio)
			}
			p("")
		}
		p("%s", ratioLimits(x.r))
		p("")
	}

	p("## Ingest batch endpoint")
	p("")
	p("`%s`: target ≥ %s %s through the whole service — %s. In each repetition the same clients first post to the floor handler, which does only what ingest's promises require per item (decode and validate, one Redis claim, produce and wait for the acknowledgement, a per-item answer), then to the service.", batch.Benchmark, num(batch.Target), batch.Unit, batch.Status.bold())
	p("")
	if len(batch.Measured) > 0 {
		p("| run | service (%s) | floor (%s) | service / floor |", batch.Unit, batch.Unit)
		p("| ---: | ---: | ---: | ---: |")
		for i, v := range batch.Measured {
			share := "—"
			if i < len(batch.Floor) && batch.Floor[i] > 0 {
				share = fmt.Sprintf("%.3f", v/batch.Floor[i])
			}
			p("| %d | %s | %s | %s |", i+1, num(v), at(batch.Floor, i), share)
		}
		p("")
	}
	p("%s", batchLimits(batch))
	p("")

	p("## End-to-end latency at %.0f transactions/s", r.E2ERate)
	p("")
	writePhase(p, r.E2E)
	if r.E2E != nil && r.E2E.Report != nil {
		p("Verdict: %s%s. Client-measured (send of the POST → the scored record arriving on alerts' SSE stream): %s. From the records' own timestamps (ingest_time → scored_at): %s. Rate achieved: %.0f/s of %.0f/s.",
			lat.Status.bold(), because(lat.Why), lat.Client, lat.Records, lat.Achieved, lat.TargetRate)
		p("")
		if s := r.Soak; s != nil && s.Report != nil && s.Report.E2E != nil && s.Report.E2E.Client.Count > 0 {
			e := s.Report.E2E
			p("For comparison, at the soak's lower sustained rate (%.0f tx/s achieved of %.0f/s, over %s): client p50 %.1f ms, p99 %.1f ms; records p50 %.1f ms, p99 %.1f ms.",
				s.Report.Throughput, s.Report.TargetRate, s.Duration, e.Client.P50, e.Client.P99, e.Records.P50, e.Records.P99)
			p("")
		}
		p("What limits it: broker (kfake), Redis, PostgreSQL, the three services and the load generator share the machine's %d cores, so the rate the client reaches and the queueing delay are bounded by CPU, not by the pipeline's design; a single POST costs ingest a Redis script call (rate limit and idempotency claim) and an acks=all produce before its answer, and a Redis write after it (see docs/benchmarks-ingest.md), and the scorer commits a Kafka transaction every 50 ms (`SCORER_COMMIT_INTERVAL`), which sets a floor of tens of milliseconds on the time to a committed, read_committed-visible scored record.", m.Cores)
		p("")
	}

	p("## Detection quality")
	p("")
	writePhase(p, r.Quality)
	if q := qualityOf(r.Quality); q != nil {
		rep := r.Quality.Report
		p("%d scored, %d fraud, %d flagged (review or decline): precision %s, recall %s, F1 %s, false-positive rate %s. Population: %d cards, %.3f transactions per card per minute of event time.",
			q.Scored, q.Fraud, q.Flagged, f3(q.Precision), f3(q.Recall), f3(q.F1), f3(q.FalsePositiveRate), rep.Generated.Cards, rep.Generated.PerCardPerMinute)
		p("")
		p("| scenario | transactions | flagged | recall | episodes | detected | episode recall |")
		p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, pat := range traffic.Scenarios {
			if s := q.Scenarios[pat]; s != nil {
				p("| %s | %d | %d | %s | %d | %d | %s |", pat, s.Transactions, s.Flagged, f3(s.Recall), s.Episodes, s.EpisodesDetected, f3(s.EpisodeRecall))
			}
		}
		p("")
		p("Precision per reason code (of the flagged transactions carrying it, the share that was fraud):")
		p("")
		p("| reason | flagged | fraud | precision |")
		p("| --- | ---: | ---: | ---: |")
		for _, code := range slices.Sorted(maps.Keys(q.Reasons)) {
			rq := q.Reasons[code]
			p("| %s | %d | %d | %s |", code, rq.Flagged, rq.Fraud, f3(rq.Precision))
		}
		p("")
		p("Precision is per transaction over the whole scored output; recall per scenario is per fraudulent transaction and per episode. The simulator's cardholders must spend at a realistic rate, and with some history: the velocity rules (`count_1m`, `count_10m`) misfire on ordinary cards that buy every few minutes, and the new-country and amount features misfire on cards seen for the first time. In minutes of wall time that takes a fast event-time clock (`--time-scale`): here event time ran %.0f× faster than the wall clock, ending when its sending ended, so this phase is hours of event time, at the per-card rate above. The latency phase sends in real time to many cards (%s transactions per card per minute of event time), so its own quality figures, in its loadgen report, mean little; the soak runs on a fast clock like this phase.",
			rep.TimeScale, e2ePerCard(r.E2E))
		p("")
	}

	p("## Soak")
	p("")
	if s := r.Soak; s != nil {
		writePhase(p, &s.Phase)
		if rep := s.Report; rep != nil && rep.TimeScale > 1 {
			p("Event time ran %.0f× faster than the wall clock (%s of event time over %d cards, %.2f transactions per card per hour), so the scorer's per-card state, which keeps 24 hours of look-back, is at its steady size from the first quarter on: it evicts as much as it adds. In real time a 10-minute soak would only show that state filling.",
				rep.TimeScale, (time.Duration(rep.TimeScale * float64(s.Duration))).Round(time.Hour), rep.Generated.Cards, rep.Generated.PerCardPerMinute*60)
			p("")
		}
		p("Every %s each service's `/metrics` was read (`go_memstats_next_gc_bytes`, `go_memstats_heap_inuse_bytes`, `go_goroutines`, `process_resident_memory_bytes`). The heap goal (next GC) is twice the live heap after the last collection, so it follows live memory; heap in use also holds garbage and swings with the GC cycle. A service is flat when, after the first quarter (warm-up), the median of its heap goal in the last quarter is at most %.0f%% above the second quarter's, and the median of its goroutines at most %.0f%% + %d above (ingest's goroutines follow the client's connections and requests in flight).",
			s.Interval, 100*(heapGrowthLimit-1), 100*(goroutineGrowthLimit-1), goroutineSlack)
		p("")
		p("| service | samples | heap goal, 2nd quarter → last (MiB, medians) | heap in use (MiB, medians) | goroutines (medians; range over the soak) | RSS at end (MiB) | verdict |")
		p("| --- | ---: | --- | --- | --- | ---: | --- |")
		for _, f := range Flat(s.Samples) {
			v := "flat"
			if !f.Flat {
				v = "**not flat**: " + f.Why
			}
			goal := "n/a"
			if f.HeapGoal {
				goal = fmt.Sprintf("%.1f → %.1f", f.HeapEarly/(1<<20), f.HeapLate/(1<<20))
			}
			p("| %s | %d | %s | %.1f → %.1f | %.0f → %.0f; %.0f–%.0f | %.1f | %s |", f.Service, f.Samples, goal, f.InuseEarly/(1<<20), f.InuseLate/(1<<20),
				f.GoroutinesEarly, f.GoroutinesLate, f.GoroutinesMin, f.GoroutinesMax, f.RSSLast/(1<<20), v)
		}
		p("")
		p("What limits it: the verdict compares two quarters of one soak, so it tells growth from noise only as far as the samples allow; it does not tell a leak from state that is still filling. The scorer's per-card state (look-back series, de-duplication ids) covers 24 hours of event time plus the allowed lateness, which this soak's clock passes in its first quarter, so growth after that is not the state filling up to its horizon; explaining it needs a heap profile. Ingest's goroutines follow the connections and requests in flight from the load generator's workers, so they swing with latency. The services share the machine's cores with the load generator, Redis and PostgreSQL, so the rate sustained and the GC's pacing move with the load.")
		p("")
		if len(s.Samples) > 0 {
			p("<details><summary>all samples</summary>")
			p("")
			p("| elapsed | service | heap goal (MiB) | heap in use (MiB) | goroutines | RSS (MiB) |")
			p("| ---: | --- | ---: | ---: | ---: | ---: |")
			for _, x := range s.Samples {
				p("| %s | %s | %.1f | %.1f | %.0f | %.1f |", x.Elapsed.Round(time.Second), x.Service, x.NextGC/(1<<20), x.HeapInuse/(1<<20), x.Goroutines, x.RSS/(1<<20))
			}
			p("")
			p("</details>")
			p("")
		}
	} else {
		p("Not run.")
		p("")
	}

	if len(r.Notes) > 0 {
		p("## Notes")
		p("")
		for _, n := range r.Notes {
			p("- %s", n)
		}
		p("")
	}

	if r.Micro != nil {
		p("## All micro-benchmarks (median of runs)")
		p("")
		p("| benchmark | runs | values |")
		p("| --- | ---: | --- |")
		for _, name := range r.Micro.Names() {
			units := map[string]bool{}
			runs := 0
			for _, res := range r.Micro.Results {
				if res.Name == name {
					runs++
					for u := range res.Values {
						units[u] = true
					}
				}
			}
			var cells []string
			for _, u := range slices.Sorted(maps.Keys(units)) {
				cells = append(cells, fmt.Sprintf("%s %s", num(Median(r.Micro.Values(name, u))), u))
			}
			p("| %s | %d | %s |", name, runs, strings.Join(cells, ", "))
		}
		p("")
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writePhase(p func(string, ...any), ph *Phase) {
	if ph == nil {
		p("Not run.")
		p("")
		return
	}
	p("```")
	p("%s", ph.Command)
	p("```")
	p("")
	p("Load: %s.", ph.Load)
	if ph.Err != "" {
		p("The phase ended with an error: %s.", ph.Err)
	}
	if rep := ph.Report; rep != nil {
		var tr strings.Builder
		rep.WriteText(&tr)
		p("")
		p("<details><summary>loadgen report</summary>")
		p("")
		p("```")
		p("%s", strings.TrimRight(tr.String(), "\n"))
		p("```")
		p("")
		p("</details>")
	}
	p("")
}

func ratioLimits(r Ratio) string {
	switch {
	case r.Status == NotMeasured:
		return "Not measured: the benchmark did not run or printed no figures (see the command table)."
	case strings.Contains(r.Benchmark, "ScorerVsCopyLoop"):
		limits := "What limits it: the copy loop only moves bytes (≈ 1–2 µs per record), while the scorer decodes, de-duplicates, computes the look-back features, scores with rules and model, encodes the scored record and writes the changelog of every touched card (≈ 5–10 µs per record, docs/benchmarks-scorer.md); the broker and both clients share the same cores."
		if len(r.Ceiling) > 0 {
			limits += fmt.Sprintf(" The ceiling ratio is the codec loop's: the copy loop that also decodes each JSON transaction and encodes a JSON scored record carrying it, with no features, state or changelog. It reached %.3f of the copy loop (median): a scorer that reads and writes the pipeline's JSON records (docs/architecture.md) cannot exceed that on this machine, whatever its features cost.", Median(r.Ceiling))
		}
		return limits
	case strings.Contains(r.Benchmark, "IngestSingle"):
		return "What limits it: the bare handler does no I/O; the full path adds bearer-key auth, a Redis script call (GCRA rate limit and idempotency claim, shared in one pipeline by the requests waiting together) and an acks=all produce to the broker before answering, and a Redis write of the answer after it: round trips to servers on the same cores, whose system calls are about a third of the process's CPU profile (docs/benchmarks-ingest.md)."
	case strings.Contains(r.Benchmark, "SinkVsRawCopy"):
		return "What limits it: the sink's transaction does more than the COPY: COPY into a temporary table, `INSERT … ON CONFLICT DO NOTHING` into the indexed table, and the offsets row, all in one transaction (services/alerts/BENCHMARKS.md)."
	}
	return ""
}

// batchLimits says what bounds the batch endpoint's rate.
func batchLimits(r Rate) string {
	if r.Status == NotMeasured {
		return "Not measured: the benchmark did not run or printed no figures (see the command table)."
	}
	best := slices.Max(append([]float64{0}, r.Floor...))
	return fmt.Sprintf("What limits it: the clients, the service, the in-process broker and redis-server share the machine's cores, so the rate is their CPU per transaction, which the benchmark reports beside each rate (cpu-µs/tx for this process, redis-cpu-µs/tx for redis-server; raw output in the micro-benchmark file). The floor reached %s %s at the median (%.0f%% of the target; best run %s). It does less per item than the promises need (no authentication, rate limit, fingerprint for conflict detection or answer stored for replay), so the service, which must do all that besides, can come near the floor's rate but not pass it; the difference between the two columns is what that work costs (docs/benchmarks-ingest.md).", num(Median(r.Floor)), r.Unit, 100*Median(r.Floor)/r.Target, num(best))
}

func rateCell(r Rate) string {
	if len(r.Measured) == 0 {
		return "—"
	}
	return fmt.Sprintf("%s %s (floor handler %s; %d runs: %s)", num(Median(r.Measured)), r.Unit, num(Median(r.Floor)), len(r.Measured), joinNum(r.Measured))
}

func joinNum(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = num(v)
	}
	return strings.Join(s, ", ")
}

func atF(vs []float64, i int) string {
	if i >= len(vs) {
		return "—"
	}
	return fmt.Sprintf("%.3f", vs[i])
}

func ratioCell(r Ratio) string {
	if len(r.Ratios) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.3f (%s / %s %s; %d runs: %s)", Median(r.Ratios), num(Median(r.Measured)), num(Median(r.Base)), r.Unit, len(r.Ratios), joinF(r.Ratios))
}

func latencyCell(l Latency) string {
	if l.Client.Count == 0 {
		return "—"
	}
	return fmt.Sprintf("client p50 %.1f ms, p99 %.1f ms; records p50 %.1f ms, p99 %.1f ms; at %.0f tx/s achieved",
		l.Client.P50, l.Client.P99, l.Records.P50, l.Records.P99, l.Achieved)
}

func qualityOf(p *Phase) *loadgen.Quality {
	if p == nil || p.Report == nil {
		return nil
	}
	return p.Report.Quality
}

func e2ePerCard(p *Phase) string {
	if p == nil || p.Report == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", p.Report.Generated.PerCardPerMinute)
}

func phaseLoad(p *Phase) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%s → %s", p.Load.Before, p.Load.After)
}

func soakPhase(s *Soak) *Phase {
	if s == nil {
		return nil
	}
	return &s.Phase
}

func soakLoad(s *Soak) string {
	if s == nil {
		return "—"
	}
	lo, hi := 0.0, 0.0
	for i, l := range s.Loads {
		if i == 0 || l.One < lo {
			lo = l.One
		}
		hi = max(hi, l.One)
	}
	if len(s.Loads) == 0 {
		return phaseLoad(&s.Phase)
	}
	return fmt.Sprintf("1-min load %.1f–%.1f during the soak", lo, hi)
}

func because(why string) string {
	if why == "" {
		return ""
	}
	return " (" + why + ")"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func f3(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", *v)
}

func at(vs []float64, i int) string {
	if i >= len(vs) {
		return "—"
	}
	return num(vs[i])
}

func joinF(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprintf("%.3f", v)
	}
	return strings.Join(s, ", ")
}

// num formats a figure for people: thousands separated, few decimals.
func num(v float64) string {
	switch {
	case v >= 1000 || v <= -1000:
		s := fmt.Sprintf("%.0f", v)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// shortCmd keeps a command line readable in a table cell.
func shortCmd(s string) string {
	if len(s) > 110 {
		return s[:107] + "…"
	}
	return s
}
