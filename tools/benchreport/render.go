package benchreport

import (
	"bytes"
	"embed"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/fraudstream/fraudstream/tools/loadgen"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// The report's words are in templates/ (report.md.tmpl, and the parts it
// repeats or chooses between in phrases.md.tmpl). The Go below only
// computes what they print: the figures with their verdicts (a view) and
// the funcs that format numbers.
//
//go:embed templates/*.tmpl
var templateFS embed.FS

var reportTemplate = sync.OnceValues(func() (*template.Template, error) {
	return template.New("").Funcs(templateFuncs).ParseFS(templateFS, "templates/*.tmpl")
})

var templateFuncs = template.FuncMap{
	"num":       num,
	"nums":      joinNum,
	"f3":        f3,
	"f3s":       joinF,
	"at":        at,
	"atF":       atF,
	"inc":       func(i int) int { return i + 1 },
	"mib":       func(bytes float64) string { return fmt.Sprintf("%.1f", bytes/(1<<20)) },
	"seconds":   func(d time.Duration) time.Duration { return d.Round(time.Second) },
	"short":     shortCmd,
	"orUnknown": orUnknown,
}

// reported is the verdict on a figure that has no target.
const reported Status = "reported (no target)"

// Render writes the report as Markdown, from templates/report.md.tmpl.
func Render(w io.Writer, r Report) error {
	t, err := reportTemplate()
	if err != nil {
		return fmt.Errorf("parse report templates: %w", err)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "report.md.tmpl", newView(r)); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	_, err = w.Write(b.Bytes())
	return err
}

// view is what report.md.tmpl prints: one run's figures and verdicts. A
// nil pointer is a phase or section that did not run.
type view struct {
	HowProduced, Stack string
	Machine            Machine
	MicroCPU           string // go test's name of the CPU, when it differs from /proc/cpuinfo's
	Started, Finished  string // RFC 3339, UTC
	Took               time.Duration

	Throughputs []ratioView // scorer, ingest, sink: each against its baseline
	Batch       rateView
	Restore     restoreView

	E2ERate              float64
	TargetP50, TargetP99 float64 // ms
	Latency              Latency
	E2EPhase             *phaseView
	E2EReported          bool         // the latency phase has a loadgen report
	SoakE2E              *soakE2EView // the soak's latency, for comparison

	QualityPhase  *phaseView
	Quality       *qualityView // nil without quality figures
	QualityStatus Status

	Soak       *soakView
	SoakStatus Status

	Commands      []Command
	PhaseCommands []string // the loadgen phases' command lines, in the order they ran
	MicroFile     string
	Notes         []string
	Micro         *microView
}

// ratioView is a Ratio with its medians and the load around its command.
type ratioView struct {
	Ratio
	Kind        string // scorer, ingest or sink: picks its title and limits in phrases.md.tmpl
	Load        *Span  // nil when no command ran the benchmark
	NotMeasured bool

	MedianRatio, MedianMeasured, MedianBase, MedianCeiling float64
}

type rateView struct {
	Rate
	Load                        *Span
	NotMeasured                 bool
	MedianMeasured, MedianFloor float64
	FloorPctOfTarget, BestFloor float64
	Runs                        []batchRun
}

// batchRun is one repetition of the batch benchmark; Floor and Share are
// nil where the floor handler has no figure for it.
type batchRun struct {
	Service      float64
	Floor, Share *float64
}

type restoreView struct {
	Restore
	Load                              *Span
	MedianSeconds, MedianBytesPerCard float64
	MemoryStatus                      Status
}

type phaseView struct {
	Command   string
	Load      Span
	Err       string
	HasReport bool
	Loadgen   string // the loadgen report as text, without its last newline
}

type soakE2EView struct {
	Achieved, TargetRate float64
	Duration             time.Duration
	Client, Records      loadgen.Latency
}

type qualityView struct {
	*loadgen.Quality
	Cards                       int
	PerCardPerMinute, TimeScale float64
	ScenarioRows                []scenarioRow // in the order of traffic.Scenarios
	ReasonRows                  []reasonRow   // by code
	E2EPerCard                  float64       // the latency phase's rate per card, for contrast
	E2EPerCardKnown             bool
}

type scenarioRow struct {
	Pattern traffic.Pattern
	*loadgen.ScenarioQuality
}

type reasonRow struct {
	Code string
	*loadgen.ReasonQuality
}

type soakView struct {
	Phase              *phaseView
	Duration, Interval time.Duration
	EventTime          *eventTimeView // nil when the soak ran in real time
	HeapGrowthPct      float64        // the limits of Flat, as percentages
	GoroutineGrowthPct float64
	GoroutineSlack     int
	Services           []Flatness
	Samples            []Sample
	LoadSampled        bool // the machine's load was sampled during the soak
	LoadLow, LoadHigh  float64
}

type eventTimeView struct {
	Scale          float64
	Span           time.Duration // of event time, to the hour
	Cards          int
	PerCardPerHour float64
}

type microView struct{ Rows []microRow }

type microRow struct {
	Name   string
	Runs   int
	Values []microValue // by unit
}

type microValue struct {
	Median float64
	Unit   string
}

func newView(r Report) view {
	v := view{
		HowProduced: r.HowProduced, Stack: r.Stack, Machine: r.Machine,
		Started:  r.Started.UTC().Format(time.RFC3339),
		Finished: r.Finished.UTC().Format(time.RFC3339),
		Took:     r.Finished.Sub(r.Started).Round(time.Second),
		E2ERate:  r.E2ERate, TargetP50: TargetE2EP50, TargetP99: TargetE2EP99,
		Latency:      E2EVerdict(r.E2E, r.E2ERate),
		E2EPhase:     newPhaseView(r.E2E),
		E2EReported:  r.E2E != nil && r.E2E.Report != nil,
		QualityPhase: newPhaseView(r.Quality),
		Commands:     r.Commands, MicroFile: r.MicroFile, Notes: r.Notes,
	}
	if r.Micro != nil && r.Micro.CPU != "" && r.Micro.CPU != r.Machine.CPU {
		v.MicroCPU = r.Micro.CPU
	}
	// The load of a micro-benchmark is that of the first command naming it.
	loadOf := func(bench string) *Span {
		for _, c := range r.Commands {
			if strings.Contains(c.Line, strings.TrimPrefix(bench, "Benchmark")) {
				return &c.Load
			}
		}
		return nil
	}
	for _, x := range []struct {
		kind string
		r    Ratio
	}{{"scorer", ScorerRatio(r.Micro)}, {"ingest", IngestRatio(r.Micro)}, {"sink", SinkRatio(r.Micro)}} {
		v.Throughputs = append(v.Throughputs, ratioView{Ratio: x.r, Kind: x.kind, Load: loadOf(x.r.Benchmark),
			NotMeasured: x.r.Status == NotMeasured, MedianRatio: Median(x.r.Ratios), MedianMeasured: Median(x.r.Measured),
			MedianBase: Median(x.r.Base), MedianCeiling: Median(x.r.Ceiling)})
	}

	batch := IngestBatchRate(r.Micro)
	v.Batch = rateView{Rate: batch, Load: loadOf(batch.Benchmark), NotMeasured: batch.Status == NotMeasured,
		MedianMeasured: Median(batch.Measured), MedianFloor: Median(batch.Floor),
		FloorPctOfTarget: 100 * Median(batch.Floor) / batch.Target,
		BestFloor:        slices.Max(append([]float64{0}, batch.Floor...))}
	for i, s := range batch.Measured {
		run := batchRun{Service: s}
		if i < len(batch.Floor) {
			run.Floor = &batch.Floor[i]
			if batch.Floor[i] > 0 {
				share := s / batch.Floor[i]
				run.Share = &share
			}
		}
		v.Batch.Runs = append(v.Batch.Runs, run)
	}

	restore := RestoreOf(r.Micro)
	v.Restore = restoreView{Restore: restore, Load: loadOf("BenchmarkRestore1MCards"),
		MedianSeconds: Median(restore.Seconds), MedianBytesPerCard: Median(restore.BytesPerCard), MemoryStatus: NotMeasured}
	if len(restore.BytesPerCard) > 0 {
		v.Restore.MemoryStatus = reported
	}

	if s := r.Soak; s != nil && s.Report != nil && s.Report.E2E != nil && s.Report.E2E.Client.Count > 0 {
		v.SoakE2E = &soakE2EView{Achieved: s.Report.Throughput, TargetRate: s.Report.TargetRate, Duration: s.Duration,
			Client: s.Report.E2E.Client, Records: s.Report.E2E.Records}
	}

	v.QualityStatus = NotMeasured
	if q := qualityOf(r.Quality); q != nil {
		v.QualityStatus = reported
		rep := r.Quality.Report
		qv := &qualityView{Quality: q, Cards: rep.Generated.Cards, PerCardPerMinute: rep.Generated.PerCardPerMinute,
			TimeScale: rep.TimeScale}
		for _, pat := range traffic.Scenarios {
			if s := q.Scenarios[pat]; s != nil {
				qv.ScenarioRows = append(qv.ScenarioRows, scenarioRow{Pattern: pat, ScenarioQuality: s})
			}
		}
		for _, code := range slices.Sorted(maps.Keys(q.Reasons)) {
			qv.ReasonRows = append(qv.ReasonRows, reasonRow{Code: code, ReasonQuality: q.Reasons[code]})
		}
		if r.E2E != nil && r.E2E.Report != nil {
			qv.E2EPerCard, qv.E2EPerCardKnown = r.E2E.Report.Generated.PerCardPerMinute, true
		}
		v.Quality = qv
	}

	v.Soak, v.SoakStatus = newSoakView(r.Soak)
	for _, ph := range []*Phase{r.Quality, r.E2E, soakPhase(r.Soak)} {
		if ph != nil && ph.Command != "" {
			v.PhaseCommands = append(v.PhaseCommands, ph.Command)
		}
	}

	if r.Micro != nil {
		v.Micro = &microView{}
		for _, name := range r.Micro.Names() {
			row := microRow{Name: name}
			units := map[string]bool{}
			for _, res := range r.Micro.Results {
				if res.Name == name {
					row.Runs++
					for u := range res.Values {
						units[u] = true
					}
				}
			}
			for _, u := range slices.Sorted(maps.Keys(units)) {
				row.Values = append(row.Values, microValue{Median: Median(r.Micro.Values(name, u)), Unit: u})
			}
			v.Micro.Rows = append(v.Micro.Rows, row)
		}
	}
	return v
}

func newPhaseView(p *Phase) *phaseView {
	if p == nil {
		return nil
	}
	v := &phaseView{Command: p.Command, Load: p.Load, Err: p.Err}
	if p.Report != nil {
		var text strings.Builder
		p.Report.WriteText(&text)
		v.HasReport, v.Loadgen = true, strings.TrimRight(text.String(), "\n")
	}
	return v
}

// newSoakView judges the soak: met when every service sampled was flat,
// not measured when it did not run or sampled none.
func newSoakView(s *Soak) (*soakView, Status) {
	if s == nil {
		return nil, NotMeasured
	}
	v := &soakView{Phase: newPhaseView(&s.Phase), Duration: s.Duration, Interval: s.Interval,
		HeapGrowthPct: 100 * (heapGrowthLimit - 1), GoroutineGrowthPct: 100 * (goroutineGrowthLimit - 1),
		GoroutineSlack: goroutineSlack, Services: Flat(s.Samples), Samples: s.Samples}
	if rep := s.Report; rep != nil && rep.TimeScale > 1 {
		span := time.Duration(rep.TimeScale * float64(s.Duration)).Round(time.Hour)
		v.EventTime = &eventTimeView{Scale: rep.TimeScale, Span: span, Cards: rep.Generated.Cards,
			PerCardPerHour: rep.Generated.PerCardPerMinute * 60}
	}
	for i, l := range s.Loads {
		if i == 0 || l.One < v.LoadLow {
			v.LoadLow = l.One
		}
		v.LoadHigh = max(v.LoadHigh, l.One)
	}
	v.LoadSampled = len(s.Loads) > 0
	status := Met
	for _, f := range v.Services {
		if !f.Flat {
			status = NotMet
		}
	}
	if len(v.Services) == 0 {
		status = NotMeasured
	}
	return v, status
}

func qualityOf(p *Phase) *loadgen.Quality {
	if p == nil || p.Report == nil {
		return nil
	}
	return p.Report.Quality
}

func soakPhase(s *Soak) *Phase {
	if s == nil {
		return nil
	}
	return &s.Phase
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// f3 is a ratio that may be undefined (no denominator).
func f3(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", *v)
}

// at is vs[i] for a table, "—" when the run has no such figure.
func at(vs []float64, i int) string {
	if i >= len(vs) {
		return "—"
	}
	return num(vs[i])
}

// atF is at for ratios.
func atF(vs []float64, i int) string {
	if i >= len(vs) {
		return "—"
	}
	return fmt.Sprintf("%.3f", vs[i])
}

func joinNum(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = num(v)
	}
	return strings.Join(s, ", ")
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
