package alerts

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's own Prometheus series; the Kafka clients add
// theirs through kprom hooks.
type metrics struct {
	rowsStored    prometheus.Counter
	duplicates    prometheus.Counter
	batches       prometheus.Counter
	batchSeconds  prometheus.Histogram
	deadLetters   *prometheus.CounterVec
	saveErrors    prometheus.Counter
	lag           *prometheus.GaugeVec
	liveRecords   prometheus.Counter
	sseClients    prometheus.Gauge
	sseSlowKicked prometheus.Counter
	sseBackfilled prometheus.Counter

	retentionDeleted  *prometheus.CounterVec
	partitionsDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns = "fraudstream"
	m := &metrics{
		rowsStored: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "alerts_sink",
			Name: "rows_stored_total", Help: "Scored transactions newly written to the database."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "alerts_sink",
			Name: "duplicate_rows_total", Help: "Consumed records not stored: their transaction_id was already stored with the same content (re-reads after a crash or rebalance), or they arrived past their retention (docs/design/storage.md)."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "alerts_sink",
			Name: "batches_total", Help: "Database transactions committed by the sink."}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "alerts_sink",
			Name: "batch_save_seconds", Help: "Time to write one batch and its offsets.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "alerts_sink",
			Name: "dead_letters_total", Help: "Records written to scored-transactions.dlq instead of the database, by reason: invalid (not a valid scored record) or conflict (transaction_id stored with different content). A retried batch may write one again."},
			[]string{"reason"}),
		saveErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "alerts_sink",
			Name: "save_errors_total", Help: "Batches the database refused; the sink rewinds and retries them."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "alerts_sink",
			Name: "lag_records", Help: "Committed records of the partition not yet in the database, as of the last fetch."},
			[]string{"partition"}),
		liveRecords: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "alerts_live",
			Name: "records_total", Help: "Scored records fanned out to live-stream clients."}),
		sseClients: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: "alerts_live",
			Name: "sse_clients", Help: "Connected /api/v1/stream clients."}),
		sseSlowKicked: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "alerts_live",
			Name: "sse_slow_disconnects_total", Help: "Stream clients disconnected because their buffer was full."}),
		sseBackfilled: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "alerts_live",
			Name: "sse_backfilled_total", Help: "Stored records sent to reconnecting stream clients to fill their gap."}),
		retentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "alerts_retention",
			Name: "rows_deleted_total", Help: "Stored transactions removed by the retention policy (dropped with their partition or deleted), by class: approved, alerts, labeled."},
			[]string{"class"}),
		partitionsDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "alerts_retention",
			Name: "partitions_dropped_total", Help: "Day partitions dropped by the retention policy (PostgreSQL)."}),
	}
	for _, class := range []string{"approved", "alerts", "labeled"} {
		m.retentionDeleted.WithLabelValues(class) // present at 0
	}
	for _, reason := range []string{"invalid", "conflict"} {
		m.deadLetters.WithLabelValues(reason) // present at 0
	}
	reg.MustRegister(m.sseBackfilled, m.rowsStored, m.duplicates, m.batches, m.batchSeconds, m.deadLetters,
		m.saveErrors, m.lag, m.liveRecords, m.sseClients, m.sseSlowKicked, m.retentionDeleted, m.partitionsDropped)
	return m
}

func partitionLabel(p int32) string { return strconv.FormatInt(int64(p), 10) }
