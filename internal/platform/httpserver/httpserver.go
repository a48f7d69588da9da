// Package httpserver runs the HTTP side of every fraudstream service: one
// listener, graceful shutdown with a deadline, and the operational endpoints
// /healthz, /readyz and /metrics mounted the same way everywhere, and the
// limits that keep slow or silent clients from holding connections
// (Limits, Listener; docs/design/http-limits.md).
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ShutdownTimeout bounds how long Serve waits for in-flight requests after
// its context is cancelled. Streams (SSE) are cut at that point.
const ShutdownTimeout = 10 * time.Second

// Serve serves h on ln until ctx is done, then shuts down gracefully:
// listeners close at once, in-flight requests get ShutdownTimeout to finish.
// It returns nil after a clean shutdown. lim bounds headers, bodies, idle
// connections and header size (ln, from Listen, bounds connections); see
// docs/design/http-limits.md.
//
// Request contexts derive from ctx, so they are cancelled when shutdown
// starts: long-lived streams (SSE) end at once instead of holding shutdown
// for ShutdownTimeout. A handler whose work must complete regardless, such
// as waiting for a broker acknowledgement it already asked for, detaches
// with context.WithoutCancel.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, lim Limits, log *slog.Logger) error {
	if err := lim.Validate("HTTP"); err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           limitBody(lim.BodyTimeout, h),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("http listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// ReadyFunc reports whether a service can do its work; a nil error is ready.
type ReadyFunc func(ctx context.Context) error

// Degraded is what a ReadyFunc returns for a service that is ready but not
// doing all of its work (a scorer with a quarantined partition): /readyz
// answers 200 and names it in "detail".
type Degraded struct{ Detail string }

func (d *Degraded) Error() string { return d.Detail }

// Mux is the subset of a router the operational endpoints need; both
// *http.ServeMux and chi.Router satisfy it.
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// MountOps adds /healthz (the process is up), /readyz (ready reports nil
// or a *Degraded within two seconds) and /metrics (reg in the Prometheus
// text format).
func MountOps(mux Mux, reg *prometheus.Registry, ready ReadyFunc) {
	mux.Handle("/healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	mux.Handle("/readyz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		err := ready(ctx)
		if d, ok := errors.AsType[*Degraded](err); ok {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "detail": d.Detail})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
