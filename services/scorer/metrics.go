package scorer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudstream/fraudstream/pkg/event"
)

const metricsNamespace = "fraudstream_scorer"

// metrics are the scorer's own counters; the Kafka client's come from kprom.
// Record counters advance only when a batch's transaction commits, so they
// count committed output, not attempts.
type metrics struct {
	scored     *prometheus.CounterVec // by decision
	dlq        prometheus.Counter
	duplicates prometheus.Counter
	idReused   prometheus.Counter
	tooLate    prometheus.Counter
	late       prometheus.Counter
	changelog  prometheus.Counter
	restores   prometheus.Histogram
	restoreRec prometheus.Counter
	txns       *prometheus.CounterVec // by outcome: committed, aborted
	batchSize  prometheus.Histogram

	stats              prometheus.Counter
	profileMissing     prometheus.Counter
	profileUnavailable prometheus.Counter
	profileErrors      prometheus.Counter // lookups, counted at once
	profileKeys        prometheus.Counter
	profileBad         prometheus.Counter
	entityStale        prometheus.Counter
	entityEvents       prometheus.Counter
	entityBad          prometheus.Counter

	quarantined prometheus.Gauge // partitions set aside (quarantine.go)

	ruleSetVersion prometheus.Gauge
	rulesRejected  prometheus.Counter
	ruleErrors     prometheus.Counter     // rule evaluations that failed at run time
	rulesDisabled  *prometheus.CounterVec // by rule: disabled by the run-time guard
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		scored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "records_scored_total",
			Help: "Transactions scored in committed batches, by decision.",
		}, []string{"decision"}),
		dlq: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "dlq_records_total",
			Help: "Input records dead-lettered in committed batches (undecodable, invalid, or reusing a transaction_id with different content).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "duplicates_dropped_total",
			Help: "Input records dropped in committed batches as redeliveries: their transaction_id was already scored with the same contents.",
		}),
		idReused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "transaction_id_reused_total",
			Help: "Input records dead-lettered in committed batches because their transaction_id was already scored with different contents (also in dlq_records_total).",
		}),
		tooLate: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "too_late_records_total",
			Help: "Transactions scored in committed batches that arrived behind the watermark by more than the allowed lateness.",
		}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "late_records_total",
			Help: "Transactions scored in committed batches that arrived behind the watermark but within the allowed lateness (state updated).",
		}),
		changelog: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "changelog_records_total",
			Help: "scorer-state changelog entries (card states, tombstones, partition metadata) in committed batches.",
		}),
		restores: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "restore_seconds",
			Help:    "Time to restore one partition's state from the scorer-state changelog.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1 ms … 4.4 min
		}),
		restoreRec: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "restore_records_total",
			Help: "scorer-state changelog records read by restores.",
		}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "transactions_total",
			Help: "Kafka transactions ended, by outcome (committed, aborted).",
		}, []string{"outcome"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "batch_records",
			Help:    "Input records per committed Kafka transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 … 16384
		}),
		stats: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "stats_records_total",
			Help: "fraud-stats window results (first firings, re-firings and final ones) in committed batches.",
		}),
		profileMissing: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "profile_missing_total",
			Help: "Transactions scored in committed batches without a card profile (none stored, no Redis configured, or Redis unavailable).",
		}),
		entityStale: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "entity_stale_total",
			Help: "Transactions scored in committed batches without entity features (entity_stale): the entity-features table was not complete through their join time within SCORER_ENTITY_WAIT.",
		}),
		entityEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "entity_events_total",
			Help: "Records written to entity-events in committed batches (visits, flags, progress).",
		}),
		entityBad: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "entity_table_bad_records_total",
			Help: "entity-features records this scorer could not decode (skipped: an aggregator bug).",
		}),
		profileUnavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "profile_unavailable_total",
			Help: "Transactions scored in committed batches without a card profile because Redis failed or was too slow and none was cached.",
		}),
		profileErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "profile_lookup_errors_total",
			Help: "Profile lookups (one pipelined MGET per poll) that failed or timed out; Redis is then left alone for a second.",
		}),
		profileKeys: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "profile_lookup_keys_total",
			Help: "Card profiles looked up in Redis (cache misses and expired entries).",
		}),
		profileBad: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "profile_unreadable_total",
			Help: "Card profiles found in Redis that could not be decoded; the card is scored without one.",
		}),
		quarantined: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "quarantined_partitions",
			Help: "raw-transactions partitions this instance has set aside because their state cannot be restored; the others are scored.",
		}),
		ruleSetVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "rule_set_version",
			Help: "Version of the rule set in force (from fraud-rules, or the built-in default).",
		}),
		rulesRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "rule_sets_rejected_total",
			Help: "Rule sets read from fraud-rules that did not decode or compile; the set in force stayed.",
		}),
		ruleErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "rule_runtime_errors_total",
			Help: "Rule evaluations that failed at run time (counted as not matched).",
		}),
		rulesDisabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "rules_disabled_total",
			Help: "Rules disabled in this instance by the run-time guard (over the configured rule budget or the evaluator's memory budget), by rule id; each stays off until a new rule set version is applied.",
		}, []string{"rule"}),
	}
	// Show every decision and outcome from the start, at zero.
	for _, d := range []string{event.DecisionApprove, event.DecisionReview, event.DecisionDecline} {
		m.scored.WithLabelValues(d)
	}
	m.txns.WithLabelValues("committed")
	m.txns.WithLabelValues("aborted")
	for _, c := range []prometheus.Collector{m.scored, m.dlq, m.duplicates, m.idReused, m.tooLate, m.late, m.changelog,
		m.restores, m.restoreRec, m.txns, m.batchSize,
		m.stats, m.profileMissing, m.profileUnavailable, m.profileErrors, m.profileKeys, m.profileBad,
		m.entityStale, m.entityEvents, m.entityBad,
		m.quarantined, m.ruleSetVersion, m.rulesRejected, m.ruleErrors, m.rulesDisabled} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register scorer metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) committed(c *batchCounts) {
	m.txns.WithLabelValues("committed").Inc()
	m.batchSize.Observe(float64(c.records))
	for d, n := range c.decisions {
		m.scored.WithLabelValues(d).Add(float64(n))
	}
	m.dlq.Add(float64(c.dlq))
	m.duplicates.Add(float64(c.duplicates))
	m.idReused.Add(float64(c.idConflicts))
	m.tooLate.Add(float64(c.tooLate))
	m.late.Add(float64(c.late))
	m.changelog.Add(float64(c.changelog))
	m.stats.Add(float64(c.stats))
	m.profileMissing.Add(float64(c.profileMissing))
	m.profileUnavailable.Add(float64(c.profileUnavailable))
	m.entityStale.Add(float64(c.entityStale))
	m.entityEvents.Add(float64(c.entityEvents))
}

func (m *metrics) restored(st restoreStats) {
	m.restores.Observe(st.elapsed.Seconds())
	m.restoreRec.Add(float64(st.records))
}

func (m *metrics) aborted() {
	m.txns.WithLabelValues("aborted").Inc()
}
