package httpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestServeOpsAndGracefulShutdown(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", 16, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	var ready, degraded atomic.Bool
	MountOps(mux, NewRegistry(), func(context.Context) error {
		switch {
		case !ready.Load():
			return errors.New("warming up")
		case degraded.Load():
			return fmt.Errorf("serving: %w", &Degraded{Detail: "partition 3 set aside"})
		}
		return nil
	})
	release := make(chan struct{})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, mux, DefaultLimits(), slog.New(slog.DiscardHandler)) }()
	base := "http://" + ln.Addr().String()

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "warming up") {
		t.Errorf("/readyz not ready: %d %s", code, body)
	}
	ready.Store(true)
	if code, body := get("/readyz"); code != 200 || strings.Contains(body, "detail") {
		t.Errorf("/readyz ready: %d %s", code, body)
	}
	degraded.Store(true)
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"detail":"partition 3 set aside"`) {
		t.Errorf("/readyz degraded: %d %s, want 200 with the detail", code, body)
	}
	degraded.Store(false)
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d", code)
	}

	// An in-flight request finishes after shutdown starts.
	slow := make(chan string, 1)
	go func() {
		_, body := get("/slow")
		slow <- body
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if body := <-slow; body != "done" {
		t.Errorf("in-flight request cut off: %q", body)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := Listen("127.0.0.1:-1", 16, nil); err == nil || !strings.Contains(err.Error(), `"127.0.0.1:-1"`) {
		t.Errorf("bad address not named: %v", err)
	}
}
