package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/fraudstream/fraudstream/tools/traffic"
)

// Report is what a run measured. It is printed as text and, with
// --report-json, written as JSON; durations are in milliseconds.
type Report struct {
	Mode    Mode      `json:"mode"`
	Target  string    `json:"target"` // ingest URL or Kafka topic
	Seed    uint64    `json:"seed"`
	Started time.Time `json:"started"`
	// SendSeconds is the sending phase; DrainSeconds the wait for the last
	// scored records after it.
	SendSeconds  float64 `json:"send_seconds"`
	DrainSeconds float64 `json:"drain_seconds"`
	TargetRate   float64 `json:"target_rate"` // 0: as fast as possible
	// TimeScale is how many times faster than the wall clock event time
	// ran (1: real time).
	TimeScale float64 `json:"time_scale"`

	Transactions int        `json:"transactions"`        // distinct transactions sent
	Retries      int        `json:"retries"`             // resends of a transaction (same id and body)
	Accepted     int        `json:"accepted"`            // distinct transactions acknowledged (202, or a Kafka ack)
	Rejected     int        `json:"rejected"`            // distinct transactions never acknowledged
	Throughput   float64    `json:"throughput"`          // accepted per second of the sending phase
	Generated    Gen        `json:"generated"`           // what the simulator made
	Requests     Latency    `json:"requests"`            // per HTTP request (a batch is one) or per produced record
	Errors       Errors     `json:"errors"`              // per request or item, by kind
	E2E          *E2E       `json:"e2e,omitempty"`       // with a stream to follow
	Decisions    *Decisions `json:"decisions,omitempty"` // decisions mode
	Quality      *Quality   `json:"quality,omitempty"`
}

// Decisions compares, in one run, POST /v1/decisions answered with a
// decision against its floor, POST /v1/transactions → 202.
type Decisions struct {
	Floor   Latency `json:"floor"`   // POST /v1/transactions → 202
	Decided Latency `json:"decided"` // POST /v1/decisions → 200
	Pending int     `json:"pending"` // decisions answered 202 pending
}

// Gen counts what the simulator produced.
type Gen struct {
	Episodes   map[traffic.Pattern]int `json:"episodes"`
	ByPattern  map[traffic.Pattern]int `json:"by_pattern"`
	LateMinute int                     `json:"late_minute"` // arrived a minute or more after their event time
	Cards      int                     `json:"cards"`
	// PerCardPerMinute is the mean transactions per card per minute of
	// event time. A real card makes a few a day; far above that, velocity
	// features flag ordinary cards and the quality figures mean little.
	PerCardPerMinute float64 `json:"per_card_per_minute"`
}

// Errors counts failures by kind: "http 503", "item 400" (a batch item),
// "transport timeout", "kafka …".
type Errors map[string]int

// E2E is end-to-end latency of accepted transactions, from the scored
// records on the stream.
type E2E struct {
	Source  string `json:"source"`  // "stream" (alerts' SSE) or "topic" (scored-transactions)
	Scored  int    `json:"scored"`  // accepted transactions seen scored
	Missing int    `json:"missing"` // accepted, never seen scored before the drain ended
	// Recovered are among Scored: the stream lost them, alerts' API had
	// them. They count for quality and Records, not Client or FanOut.
	Recovered  int `json:"recovered"`
	Duplicates int `json:"duplicates"` // scored records seen again for a transaction
	Foreign    int `json:"foreign"`    // scored records of other traffic
	Reconnects int `json:"reconnects"`
	Resets     int `json:"resets"`
	// Client is from the start of the request (or the produce) that first
	// sent the transaction to its scored record's arrival on the stream or
	// the topic, on the client's clock.
	Client Latency `json:"client"`
	// Records is from ingest_time in the transaction to scored_at of the
	// scored record, both stamped by the services.
	Records Latency `json:"records"`
	// FanOut is from scored_at to arrival on the stream (alerts' share
	// and the scorer's transaction commit) or on the topic (the commit).
	FanOut Latency `json:"fan_out"`
}

// Latency summarises a distribution, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// histogram records durations in microseconds, from 1µs to an hour, to
// three significant digits.
type histogram struct{ h *hdrhistogram.Histogram }

func newHistogram() histogram {
	return histogram{hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)}
}

func (h histogram) record(d time.Duration) {
	us := max(d.Microseconds(), 1) // clock steps can make a duration zero or negative
	_ = h.h.RecordValue(min(us, h.h.HighestTrackableValue()))
}

func (h histogram) summary() Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if h.h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.h.TotalCount(),
		Mean:  h.h.Mean() / 1000,
		P50:   ms(h.h.ValueAtQuantile(50)),
		P90:   ms(h.h.ValueAtQuantile(90)),
		P99:   ms(h.h.ValueAtQuantile(99)),
		P999:  ms(h.h.ValueAtQuantile(99.9)),
		Max:   ms(h.h.Max()),
	}
}

func (l Latency) String() string {
	if l.Count == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)",
		fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max), l.Count)
}

func fmtMs(ms float64) string {
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.2fs", ms/1000)
}

func fmtRatio(r *float64) string {
	if r == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", *r)
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	rate := "as fast as possible"
	if r.TargetRate > 0 {
		rate = fmt.Sprintf("target %.0f/s", r.TargetRate)
	}
	p("loadgen %s → %s, seed %d, %.1fs sending (%s), %.1fs draining", r.Mode, r.Target, r.Seed, r.SendSeconds, rate, r.DrainSeconds)
	p("transactions  %d sent (+%d retries), %d accepted, %d rejected; throughput %.1f/s",
		r.Transactions, r.Retries, r.Accepted, r.Rejected, r.Throughput)
	var gen []string
	for _, pat := range append([]traffic.Pattern{traffic.Normal}, traffic.Scenarios...) {
		n, e := r.Generated.ByPattern[pat], r.Generated.Episodes[pat]
		switch {
		case e > 0:
			gen = append(gen, fmt.Sprintf("%s %d (%d episodes)", pat, n, e))
		case n > 0:
			gen = append(gen, fmt.Sprintf("%s %d", pat, n))
		}
	}
	p("generated     %s; %d a minute or more late", strings.Join(gen, ", "), r.Generated.LateMinute)
	p("population    %d cards, %.2f transactions per card per minute of event time", r.Generated.Cards, r.Generated.PerCardPerMinute)
	if r.TimeScale > 1 {
		p("  event time ran %.0f× faster than the wall clock, ending at the end of sending", r.TimeScale)
	}
	if r.Generated.PerCardPerMinute > 0.5 && r.Quality != nil {
		p("  note: ordinary cards buy far faster than real ones here, so velocity features misfire;")
		p("        for detection figures, raise --cards or lower --rate")
	}
	p("requests      %s", r.Requests)
	if d := r.Decisions; d != nil {
		p("  POST /v1/transactions → 202   %s", d.Floor)
		p("  POST /v1/decisions → 200      %s", d.Decided)
		p("  decisions pending (budget ran out): %d", d.Pending)
	}
	if len(r.Errors) == 0 {
		p("errors        none")
	} else {
		var errs []string
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			errs = append(errs, fmt.Sprintf("%s: %d", k, r.Errors[k]))
		}
		p("errors        %s", strings.Join(errs, ", "))
	}
	if e := r.E2E; e != nil {
		p("end to end    %d of %d accepted scored (%d on the %s, %d read from alerts' API after it), %d missing, %d duplicates, %d other records, %d reconnects, %d resets",
			e.Scored, r.Accepted, e.Scored-e.Recovered, e.Source, e.Recovered, e.Missing, e.Duplicates, e.Foreign, e.Reconnects, e.Resets)
		p("  send → %-6s (client)     %s", e.Source, e.Client)
		p("  ingest_time → scored_at    %s", e.Records)
		p("  scored_at → %-6s         %s", e.Source, e.FanOut)
	}
	if q := r.Quality; q != nil {
		p("detection     %d scored, %d fraud, %d flagged (review or decline): precision %s, recall %s, F1 %s, false-positive rate %s",
			q.Scored, q.Fraud, q.Flagged, fmtRatio(q.Precision), fmtRatio(q.Recall), fmtRatio(q.F1), fmtRatio(q.FalsePositiveRate))
		p("  %-22s %8s %8s %8s %9s %9s %8s", "scenario", "txs", "flagged", "recall", "episodes", "detected", "recall")
		for _, pat := range traffic.Scenarios {
			s := q.Scenarios[pat]
			if s == nil {
				continue
			}
			p("  %-22s %8d %8d %8s %9d %9d %8s", pat, s.Transactions, s.Flagged, fmtRatio(s.Recall),
				s.Episodes, s.EpisodesDetected, fmtRatio(s.EpisodeRecall))
		}
		if len(q.Reasons) > 0 {
			p("  %-22s %8s %8s %9s", "reason", "flagged", "fraud", "precision")
			for _, code := range slices.Sorted(maps.Keys(q.Reasons)) {
				rq := q.Reasons[code]
				p("  %-22s %8d %8d %9s", code, rq.Flagged, rq.Fraud, fmtRatio(rq.Precision))
			}
		}
	}
}
