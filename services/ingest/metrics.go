package ingest

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are ingest's own series; the Kafka client's come from kprom.
type metrics struct {
	requests *prometheus.CounterVec
	produce  *prometheus.HistogramVec
	rejected *prometheus.CounterVec

	replays     *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	redisErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fraudstream", Subsystem: "ingest", Name: "http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "status"}),
		produce: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fraudstream", Subsystem: "ingest", Name: "produce_duration_seconds",
			Help:    "Time from handing a record to the producer until Kafka acknowledged or refused it.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fraudstream", Subsystem: "ingest", Name: "rejected_total",
			Help: "Requests and batch items refused, by reason.",
		}, []string{"reason"}),
	}
	m.replays = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "fraudstream", Subsystem: "ingest", Name: "idempotent_replays_total",
		Help: "Transactions answered from their idempotency record instead of being produced again.",
	}, []string{"endpoint"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "fraudstream", Subsystem: "ingest", Name: "rate_limited_total",
		Help: "Requests refused with 429, by API key id.",
	}, []string{"key_id"})
	m.redisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "fraudstream", Subsystem: "ingest", Name: "redis_errors_total",
		Help: "Redis failures by operation and whether the request failed open or closed.",
	}, []string{"op", "outcome"})
	reg.MustRegister(m.requests, m.produce, m.rejected, m.replays, m.rateLimited, m.redisErrors)
	return m
}

func (m *metrics) observeProduce(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.produce.WithLabelValues(result).Observe(d.Seconds())
}

func (m *metrics) reject(k Kind) { m.rejected.WithLabelValues(kinds[k].reason).Inc() }

// countRequests counts every request by its chi route pattern, so the
// label set stays bounded whatever paths clients send.
func (m *metrics) countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	})
}
