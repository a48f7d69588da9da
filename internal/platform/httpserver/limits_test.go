package httpserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveTest serves h with lim on a fresh listener until the test ends and
// returns the listener.
func serveTest(t *testing.T, lim Limits, h http.Handler) *Listener {
	t.Helper()
	ln, err := Listen("127.0.0.1:0", lim.MaxConns, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, lim, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln
}

// bodyHandler reads the whole body like the services' handlers do: 408 on
// ErrBodyTimeout, 401 without reading when the request has no key.
func bodyHandler(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer ok" {
		http.Error(w, "no key", http.StatusUnauthorized)
		return
	}
	b, err := io.ReadAll(r.Body)
	switch {
	case errors.Is(err, ErrBodyTimeout):
		http.Error(w, "too slow", http.StatusRequestTimeout)
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		fmt.Fprintf(w, "got %d bytes", len(b))
	}
}

// rawConn is one client connection speaking HTTP/1.1 by hand.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr net.Addr) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// head sends a POST's headers declaring n body bytes.
func (c *rawConn) head(t *testing.T, n int, auth string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "POST /tx HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", auth, n); err != nil {
		t.Fatal(err)
	}
}

// response reads one response within wait; status 0 means the connection
// ended without one.
func (c *rawConn) response(t *testing.T, wait time.Duration) (status int, closeAfter bool) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no response within %v", wait)
		}
		return 0, true
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Close
}

// closedWithin reports whether the server ends the connection within wait.
func (c *rawConn) closedWithin(wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func testLimits() Limits {
	l := DefaultLimits()
	l.BodyTimeout = 500 * time.Millisecond
	return l
}

// TestUnsentBodyIsCut: a request that declares a body and sends none is
// answered 408 once the body timeout passed, and its connection closed.
func TestUnsentBodyIsCut(t *testing.T) {
	ln := serveTest(t, testLimits(), http.HandlerFunc(bodyHandler))
	c := dial(t, ln.Addr())
	start := time.Now()
	c.head(t, 100, "Bearer ok")
	status, _ := c.response(t, 5*time.Second)
	if status != http.StatusRequestTimeout && status != 0 {
		t.Fatalf("status %d, want 408 or a closed connection", status)
	}
	if took := time.Since(start); took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("cut after %v, want about the 500ms body timeout", took)
	}
	if !c.closedWithin(2 * time.Second) {
		t.Error("connection still open after the body timeout")
	}
}

// TestTrickledBodyFails: a body sent one byte at a time cannot extend the
// body timeout: the request fails instead of being served.
func TestTrickledBodyFails(t *testing.T) {
	ln := serveTest(t, testLimits(), http.HandlerFunc(bodyHandler))
	c := dial(t, ln.Addr())
	const n = 40 // 4s at 10 bytes/s, far beyond the 500ms timeout
	c.head(t, n, "Bearer ok")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	start := time.Now()
	status, _ := c.response(t, 10*time.Second)
	if status != http.StatusRequestTimeout && status != 0 {
		t.Fatalf("trickled body: status %d, want 408 or a closed connection", status)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("trickled body held the connection %v", took)
	}
}

// TestUnauthenticatedBodyIsNotRead: a handler that refuses a request
// without reading its body answers at once, however long the body timeout,
// and the connection closes rather than wait for the unread body.
func TestUnauthenticatedBodyIsNotRead(t *testing.T) {
	lim := DefaultLimits() // body timeout 30s: the answer must not wait for it
	ln := serveTest(t, lim, http.HandlerFunc(bodyHandler))
	c := dial(t, ln.Addr())
	start := time.Now()
	c.head(t, 1000, "Bearer wrong")
	status, closeAfter := c.response(t, 3*time.Second)
	if status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", status)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("401 took %v", took)
	}
	if !closeAfter {
		t.Error("401 to a request with an unread body does not say Connection: close")
	}
	if !c.closedWithin(2 * time.Second) {
		t.Error("connection with an unread body still open after the 401")
	}
}

// TestKeepAliveAfterBody: once a body was read to its end the deadline is
// lifted: a handler may work past the body timeout with its context intact,
// and the connection serves a later request.
func TestKeepAliveAfterBody(t *testing.T) {
	lim := testLimits()
	ln := serveTest(t, lim, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(2 * lim.BodyTimeout):
			io.WriteString(w, "ok")
		case <-r.Context().Done():
			http.Error(w, "context cancelled", http.StatusInternalServerError)
		}
	}))
	c := dial(t, ln.Addr())
	for i := range 2 {
		c.head(t, 2, "Bearer ok")
		io.WriteString(c, "{}")
		if status, closeAfter := c.response(t, 5*time.Second); status != http.StatusOK || closeAfter {
			t.Fatalf("request %d: status %d, close %v; want 200 on a kept-alive connection", i, status, closeAfter)
		}
		time.Sleep(2 * lim.BodyTimeout)
	}
}

// TestConnectionCap: beyond MaxConns, new connections are closed at once
// instead of being held, and a slot freed is usable again.
func TestConnectionCap(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxConns = 5
	ln := serveTest(t, lim, http.HandlerFunc(bodyHandler))
	var held []*rawConn
	for range 5 {
		c := dial(t, ln.Addr())
		c.head(t, 10, "Bearer ok") // body never sent: holds its slot
		held = append(held, c)
	}
	// Let the server accept the held ones before the excess arrives.
	deadline := time.Now().Add(2 * time.Second)
	for ln.Open() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	closed := 0
	for range 20 {
		// The reset may come before the dial returns.
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil || (&rawConn{Conn: c, r: bufio.NewReader(c)}).closedWithin(2*time.Second) {
			closed++
		}
		if c != nil {
			c.Close()
		}
	}
	if closed != 20 {
		t.Errorf("%d of 20 connections beyond the cap were closed, want all", closed)
	}
	if got := ln.Open(); got != 5 {
		t.Errorf("open connections %d, want 5", got)
	}
	if got := ln.Refused(); got != 20 {
		t.Errorf("refused %d, want 20", got)
	}
	held[0].Close()
	deadline = time.Now().Add(2 * time.Second)
	for ln.Open() > 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := ln.Open(); got != 4 {
		t.Fatalf("after a client closed: open connections %d, want 4", got)
	}
	c := dial(t, ln.Addr())
	c.head(t, 2, "Bearer ok")
	io.WriteString(c, "{}")
	if status, _ := c.response(t, 3*time.Second); status != http.StatusOK {
		t.Errorf("after a slot was freed: status %d, want 200", status)
	}
}

// TestStreamOutlivesTimeouts: a long-lived response (SSE) keeps streaming
// well past every timeout of Limits.
func TestStreamOutlivesTimeouts(t *testing.T) {
	lim := Limits{ReadHeaderTimeout: 200 * time.Millisecond, BodyTimeout: 200 * time.Millisecond,
		IdleTimeout: 200 * time.Millisecond, MaxHeaderBytes: 4096, MaxConns: 4}
	const ticks = 15 // every 100ms: 1.5s, over 7 times each timeout
	ln := serveTest(t, lim, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range ticks {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}))
	resp, err := http.Get("http://" + ln.Addr().String() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("stream cut after %q: %v", b, err)
	}
	if got := strings.Count(string(b), "data: "); got != ticks {
		t.Errorf("stream delivered %d events, want %d", got, ticks)
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*Limits)
		want string
	}{
		{func(l *Limits) { l.ReadHeaderTimeout = 0 }, "INGEST_READ_HEADER_TIMEOUT"},
		{func(l *Limits) { l.BodyTimeout = -time.Second }, "INGEST_BODY_TIMEOUT"},
		{func(l *Limits) { l.IdleTimeout = 0 }, "INGEST_IDLE_TIMEOUT"},
		{func(l *Limits) { l.MaxHeaderBytes = 10 }, "INGEST_MAX_HEADER_BYTES"},
		{func(l *Limits) { l.MaxConns = 0 }, "INGEST_MAX_CONNS"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			l := DefaultLimits()
			tc.mut(&l)
			if err := l.Validate("INGEST"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if err := DefaultLimits().Validate("INGEST"); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
