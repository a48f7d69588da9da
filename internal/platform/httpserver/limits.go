package httpserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Limits, shared by every service (see docs/design/http-limits.md).
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConns          = 1024
)

// Limits bound what one client can hold of a server, so a slow or silent
// client costs a connection for a bounded time and at most MaxConns
// connections are open at once. There is deliberately no write timeout:
// the live stream (SSE) holds its response open for hours.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers, from the
	// connection's first byte (PREFIX_READ_HEADER_TIMEOUT, default 10s).
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's whole body, from the moment
	// its handler starts; a client trickling bytes cannot extend it
	// (PREFIX_BODY_TIMEOUT, default 30s). A handler reading past it gets
	// ErrBodyTimeout.
	BodyTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request
	// (PREFIX_IDLE_TIMEOUT, default 2m).
	IdleTimeout time.Duration
	// MaxHeaderBytes limits the request line and headers; more get 431
	// (PREFIX_MAX_HEADER_BYTES, default 64 KiB).
	MaxHeaderBytes int
	// MaxConns is the most connections open at once; a connection beyond
	// it is accepted and closed at once (PREFIX_MAX_CONNS, default 1024).
	MaxConns int
}

// DefaultLimits returns Limits with every default filled in.
func DefaultLimits() Limits {
	return Limits{ReadHeaderTimeout: DefaultReadHeaderTimeout, BodyTimeout: DefaultBodyTimeout,
		IdleTimeout: DefaultIdleTimeout, MaxHeaderBytes: DefaultMaxHeaderBytes, MaxConns: DefaultMaxConns}
}

// WithDefaults fills the zero fields of l with their defaults.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.ReadHeaderTimeout == 0 {
		l.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if l.BodyTimeout == 0 {
		l.BodyTimeout = d.BodyTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxConns == 0 {
		l.MaxConns = d.MaxConns
	}
	return l
}

// A LimitError names the Limits field Check refused, such as "BodyTimeout".
type LimitError struct {
	Field string
	Err   error
}

func (e *LimitError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *LimitError) Unwrap() error { return e.Err }

// Check returns a *LimitError naming the first bad limit. Zero is refused
// rather than meaning "unlimited".
func (l Limits) Check() error {
	for _, d := range []struct {
		v     time.Duration
		field string
	}{
		{l.ReadHeaderTimeout, "ReadHeaderTimeout"},
		{l.BodyTimeout, "BodyTimeout"},
		{l.IdleTimeout, "IdleTimeout"},
	} {
		if d.v <= 0 {
			return &LimitError{d.field, errors.New("must be a positive duration such as 10s")}
		}
	}
	if l.MaxHeaderBytes < 1<<10 {
		return &LimitError{"MaxHeaderBytes", errors.New("must be at least 1024")}
	}
	if l.MaxConns <= 0 {
		return &LimitError{"MaxConns", errors.New("must be a positive number of connections")}
	}
	return nil
}

// limitEnv is the environment variable suffix of each field.
var limitEnv = map[string]string{
	"ReadHeaderTimeout": "READ_HEADER_TIMEOUT",
	"BodyTimeout":       "BODY_TIMEOUT",
	"IdleTimeout":       "IDLE_TIMEOUT",
	"MaxHeaderBytes":    "MAX_HEADER_BYTES",
	"MaxConns":          "MAX_CONNS",
}

// Validate is Check naming the environment variable of the first bad
// limit; prefix is the service's, such as "SCORER".
func (l Limits) Validate(prefix string) error {
	err := l.Check()
	var le *LimitError
	if errors.As(err, &le) {
		return fmt.Errorf("%s_%s: %w", prefix, limitEnv[le.Field], le.Err)
	}
	return err
}

// ErrBodyTimeout is what reading a request body returns once the body
// timeout passed; handlers answer it with 408.
var ErrBodyTimeout = fmt.Errorf("request body not received within the body timeout: %w", os.ErrDeadlineExceeded)

// limitBody sets the connection's read deadline to now+d while a request's
// body is read and clears it once the body was read to its end, so the
// server's background read of a handler that runs long (SSE, a wait for
// Kafka) has no deadline. A body the handler left unread is not read after
// it returns: the deadline moves to now, the server's attempt to drain it
// fails at once, and the connection closes after the response. That is how
// a 401 goes out before, and without, the body of an unauthenticated
// request.
func limitBody(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			next.ServeHTTP(w, r) // not a net/http connection (a test recorder)
			return
		}
		b := &deadlineBody{ReadCloser: r.Body, rc: rc}
		r.Body = b
		defer func() {
			if !b.eof.Load() {
				_ = rc.SetReadDeadline(time.Now())
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc  *http.ResponseController
	eof atomic.Bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		if !b.eof.Swap(true) {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = ErrBodyTimeout
	}
	return n, err
}

// Listener is a TCP listener holding at most max connections open. Beyond
// that it accepts a connection and closes it at once (with a reset), rather
// than leaving it in the kernel's backlog: the client learns immediately
// that the server is full and can retry or go elsewhere, health checks fail
// fast instead of hanging, and no file descriptor is held for it.
type Listener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused atomic.Uint64
	log     *slog.Logger
	mu      sync.Mutex
	warned  time.Time // last refusal logged
}

// Listen binds addr, naming it in the error so a bad setting is obvious,
// and holds at most maxConns connections open (see Listener).
func Listen(addr string, maxConns int, log *slog.Logger) (*Listener, error) {
	if maxConns <= 0 {
		return nil, fmt.Errorf("listen on %q: connection limit %d is not positive", addr, maxConns)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", addr, err)
	}
	return &Listener{Listener: ln, max: int64(maxConns), log: log}, nil
}

// Accept returns the next connection within the limit, closing those
// beyond it.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset: nothing lingers in TIME_WAIT here
		}
		_ = c.Close()
		l.warn()
	}
}

// warn logs refusals at most every 10 seconds.
func (l *Listener) warn() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.warned) < 10*time.Second {
		return
	}
	l.warned = time.Now()
	l.log.Warn("connection limit reached: closing new connections", "addr", l.Addr().String(),
		"max_conns", l.max, "refused_total", l.refused.Load())
}

// Open is the number of connections open now; Refused the number closed
// at once because the limit was reached.
func (l *Listener) Open() int       { return int(l.open.Load()) }
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Collectors export Open and Refused as fraudstream_http_connections_open
// and fraudstream_http_connections_refused_total.
func (l *Listener) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fraudstream_http_connections_open",
			Help: "HTTP connections open now."}, func() float64 { return float64(l.Open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "fraudstream_http_connections_refused_total",
			Help: "HTTP connections closed on accept because the connection limit was reached."},
			func() float64 { return float64(l.Refused()) }),
	}
}

// limitedConn gives its slot back once, however often it is closed.
type limitedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
