package alerts

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// statsBook keeps the event-time windows of the fraud-stats topic for the
// dashboard's charts: the latest revision of each (partition, window),
// bounded to StatsRetention before the newest window, and each partition's
// watermark as its records report it. It reads with a group-less
// read_committed consumer starting StatsRetention back in time, so a
// restarted replica draws the same charts.
type statsBook struct {
	cl   *kgo.Client
	log  *slog.Logger
	keep time.Duration
	idle time.Duration
	now  func() time.Time

	mu      sync.Mutex
	windows map[windowKey]event.Stats
	parts   map[int32]*partitionWM
	newest  time.Time // the latest window end seen
}

type windowKey struct {
	partition int32
	start     int64 // Unix milliseconds
}

type partitionWM struct {
	watermark time.Time
	seen      time.Time // wall clock of its last record
}

// statsIdle is how long a partition may report nothing before it stops
// holding the combined watermark back (it has no traffic, so nothing of it
// is pending).
const statsIdle = 2 * time.Minute

func newStatsBook(log *slog.Logger, keep time.Duration) *statsBook {
	return &statsBook{log: log, keep: keep, idle: statsIdle, now: time.Now,
		windows: map[windowKey]event.Stats{}, parts: map[int32]*partitionWM{}}
}

func (b *statsBook) opts() []kgo.Opt {
	// Records are produced when windows fire, shortly after they end, so
	// producing time bounds event time well enough for where to start.
	from := time.Now().Add(-b.keep - time.Minute).UnixMilli()
	return []kgo.Opt{
		kgo.ConsumeTopics(event.TopicStats),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(from)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}
}

func (b *statsBook) run(ctx context.Context) error {
	defer b.cl.Close()
	return follow(ctx, b.cl, b.log, "stats", func(r *kgo.Record) {
		s, err := event.DecodeStats(r.Value)
		if err != nil {
			b.log.Warn("stats: skipping invalid record", "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		b.apply(s)
	})
}

// apply keeps s if it is the newest revision of its window.
func (b *statsBook) apply(s event.Stats) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pw := b.parts[s.Partition]
	if pw == nil {
		pw = &partitionWM{}
		b.parts[s.Partition] = pw
	}
	pw.seen = b.now()
	if s.Watermark.After(pw.watermark) {
		pw.watermark = s.Watermark
	}
	if s.WindowEnd.After(b.newest) {
		b.newest = s.WindowEnd
	}
	cutoff := b.newest.Add(-b.keep)
	if !s.WindowEnd.After(cutoff) {
		return
	}
	k := windowKey{s.Partition, s.WindowStart.UnixMilli()}
	if old, ok := b.windows[k]; ok && old.Revision > s.Revision {
		return
	}
	b.windows[k] = s
	for k, w := range b.windows {
		if !w.WindowEnd.After(cutoff) {
			delete(b.windows, k)
		}
	}
}

// statsWindow is one window summed over the partitions that reported it.
type statsWindow struct {
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Partitions  int       `json:"partitions"`
	Count       int64     `json:"count"`
	Approved    int64     `json:"approved"`
	Review      int64     `json:"review"`
	Declined    int64     `json:"declined"`
	Late        int64     `json:"late"`
	TooLate     int64     `json:"too_late"`
	AmountMinor int64     `json:"amount_minor"`
	DeclineRate float64   `json:"decline_rate"`
	// LatencyP50Ms is the count-weighted mean of the partitions' medians
	// and LatencyP99Ms the largest of their 99th percentiles (an upper
	// bound): exact percentiles cannot be combined from percentiles.
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	LatencyMaxMs float64 `json:"latency_max_ms"`
	// Final is true when every partition's record of the window is final.
	Final bool `json:"final"`
	// Provisional is true until the combined watermark has passed the
	// window's end: more records may still change it.
	Provisional bool `json:"provisional"`
}

type partitionStatus struct {
	Partition int32      `json:"partition"`
	Watermark *time.Time `json:"watermark,omitempty"`
	// LagMs is how far the watermark is behind the wall clock.
	LagMs float64   `json:"lag_ms"`
	Idle  bool      `json:"idle"`
	Seen  time.Time `json:"last_record_at"`
}

type statsResponse struct {
	// CombinedWatermark is the minimum of the partitions' watermarks,
	// leaving out partitions idle for longer than 2 minutes; absent until
	// a partition reports one.
	CombinedWatermark *time.Time        `json:"combined_watermark,omitempty"`
	Partitions        []partitionStatus `json:"partitions"`
	Windows           []statsWindow     `json:"windows"`
	PartitionWindows  []event.Stats     `json:"partition_windows"`
}

func (b *statsBook) snapshot() statsResponse {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	out := statsResponse{Partitions: []partitionStatus{}, Windows: []statsWindow{}, PartitionWindows: []event.Stats{}}
	var combined, anyWM time.Time
	for p, pw := range b.parts {
		st := partitionStatus{Partition: p, Seen: pw.seen, Idle: now.Sub(pw.seen) > b.idle}
		if !pw.watermark.IsZero() {
			wm := pw.watermark
			st.Watermark = &wm
			st.LagMs = float64(now.Sub(wm).Milliseconds())
			if !st.Idle && (combined.IsZero() || wm.Before(combined)) {
				combined = wm
			}
			if anyWM.IsZero() || wm.After(anyWM) {
				anyWM = wm
			}
		}
		out.Partitions = append(out.Partitions, st)
	}
	if combined.IsZero() {
		combined = anyWM // every partition idle: none holds the others back
	}
	if !combined.IsZero() {
		out.CombinedWatermark = &combined
	}
	sort.Slice(out.Partitions, func(i, j int) bool { return out.Partitions[i].Partition < out.Partitions[j].Partition })

	byStart := map[int64]*statsWindow{}
	var weighted = map[int64]float64{}
	for _, s := range b.windows {
		out.PartitionWindows = append(out.PartitionWindows, s)
		k := s.WindowStart.UnixMilli()
		w := byStart[k]
		if w == nil {
			w = &statsWindow{WindowStart: s.WindowStart, WindowEnd: s.WindowEnd, Final: true}
			byStart[k] = w
		}
		w.Partitions++
		w.Count += s.Count
		w.Approved += s.Approved
		w.Review += s.Review
		w.Declined += s.Declined
		w.Late += s.Late
		w.TooLate += s.TooLate
		w.AmountMinor += s.AmountMinor
		weighted[k] += s.LatencyP50Ms * float64(s.Count)
		w.LatencyP99Ms = max(w.LatencyP99Ms, s.LatencyP99Ms)
		w.LatencyMaxMs = max(w.LatencyMaxMs, s.LatencyMaxMs)
		w.Final = w.Final && s.Final
	}
	for k, w := range byStart {
		if w.Count > 0 {
			w.DeclineRate = float64(w.Declined) / float64(w.Count)
			w.LatencyP50Ms = weighted[k] / float64(w.Count)
		}
		w.Provisional = combined.IsZero() || combined.Before(w.WindowEnd)
		out.Windows = append(out.Windows, *w)
	}
	sort.Slice(out.Windows, func(i, j int) bool { return out.Windows[i].WindowStart.Before(out.Windows[j].WindowStart) })
	sort.Slice(out.PartitionWindows, func(i, j int) bool {
		a, c := out.PartitionWindows[i], out.PartitionWindows[j]
		if !a.WindowStart.Equal(c.WindowStart) {
			return a.WindowStart.Before(c.WindowStart)
		}
		return a.Partition < c.Partition
	})
	return out
}

// getStats serves GET /api/v1/stats.
func (s *Service) getStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.stats.snapshot())
}
