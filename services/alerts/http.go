package alerts

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// web is the dashboard: plain files, no build step, nothing from a CDN.
//
//go:embed web
var webFS embed.FS

func (s *Service) routes(reg *prometheus.Registry) http.Handler {
	r := chi.NewRouter()
	r.Use(securityHeaders)
	// Cookie-authenticated writes: SameSite=Strict keeps the cookie off
	// cross-site requests, and this refuses cross-origin unsafe requests
	// by Sec-Fetch-Site (or Origin against Host) in case it does not.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusForbidden, "cross-origin "+r.Method+" refused: send it from the dashboard's own origin, or without a browser")
	}))
	r.Use(cop.Handler)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "no route for "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	})
	httpserver.MountOps(opsMux{Router: r, metrics: s.auth.require}, reg, s.readyCheck)

	r.Get("/api/v1/auth", s.authStatus)
	r.Post("/api/v1/login", s.login)
	r.Post("/api/v1/logout", s.logout)
	r.Group(func(r chi.Router) {
		r.Use(s.auth.require)
		r.Get("/api/v1/transactions/{transaction_id}", s.getTransaction)
		r.Get("/api/v1/alerts", s.listAlerts)
		r.Post("/api/v1/alerts/{transaction_id}/disposition", s.setDisposition)
		r.Get("/api/v1/cards/{card_id}/transactions", s.cardTransactions)
		r.Get("/api/v1/rules", s.getRules)
		r.Put("/api/v1/rules", s.putRules)
		r.Get("/api/v1/stats", s.getStats)
		r.Get("/api/v1/stream", s.stream)
	})

	static, _ := fs.Sub(webFS, "web") // cannot fail: "web" is embedded
	files := http.FileServerFS(static)
	r.Get("/", files.ServeHTTP)
	r.Get("/static/*", http.StripPrefix("/static", files).ServeHTTP)
	return r
}

// opsMux mounts httpserver's operational endpoints with /metrics behind
// the token (when one is set); /healthz and /readyz stay open for probes.
type opsMux struct {
	chi.Router
	metrics func(http.Handler) http.Handler
}

func (m opsMux) Handle(pattern string, h http.Handler) {
	if pattern == "/metrics" {
		h = m.metrics(h)
	}
	m.Router.Handle(pattern, h)
}

// contentSecurityPolicy lets the dashboard load only its own files: no
// inline script or style, no framing, fetch and the event stream to its
// own origin only.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sets the browser protections on every response.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func (s *Service) getTransaction(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "transaction_id")
	if !event.ValidID(id) {
		writeProblem(w, r, http.StatusBadRequest, "transaction_id must be 1-64 of A-Z a-z 0-9 _ - . :")
		return
	}
	sc, err := s.store.Transaction(r.Context(), id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "transaction "+id+" is not stored (yet)")
		return
	case err != nil:
		s.log.Error("read transaction", "transaction_id", id, "err", err)
		writeProblem(w, r, http.StatusServiceUnavailable, "the database is not available")
		return
	}
	v := itemView{scoredView: viewOf(sc)}
	if l, err := s.store.Label(r.Context(), id); err == nil {
		v.Label = &l
	} else if !errors.Is(err, ErrNotFound) {
		s.log.Warn("read label", "transaction_id", id, "err", err)
	}
	writeJSON(w, http.StatusOK, v)
}

// stream serves GET /api/v1/stream: scored records as server-sent events
// from the moment of connecting. Each event is "event: scored" with the
// record as JSON data and, as its id, the stream position after it (see
// hub); comment lines keep idle connections open.
//
// A client that reconnects with Last-Event-ID (EventSource does so by
// itself) first gets the records it missed, from the database, then live
// ones, without duplicates or gaps. Its live subscription starts before
// the backfill, with room for what arrives meanwhile (resumeQueue), so a
// resume loses nothing however long the database takes to catch up. When
// the database makes no progress for backfillStall, or the gap is over
// maxBackfill records, it gets "event: reset" instead and should reload
// what it shows.
func (s *Service) stream(w http.ResponseWriter, r *http.Request) {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id") // for clients that cannot set headers
	}
	from, err := parsePosition(last)
	resuming := last != "" && err == nil
	c, pos, err := s.hub.subscribe(resuming)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeProblem(w, r, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer s.hub.unsubscribe(c)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise buffer the stream
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w)}
	if !sw.add([]byte("retry: 2000\n: connected\n\n")) || !sw.flush() {
		return
	}

	// floor is what the client has seen beyond the hub's position (it
	// came from a replica further ahead): live events below it are skipped.
	var floor []int64
	if resuming {
		var ok bool
		if floor, ok = s.backfill(r.Context(), sw, c, from, pos); !ok {
			return
		}
	} else if !sw.add(fmt.Appendf(nil, "id: %s\n\n", formatPosition(pos))) || !sw.flush() {
		// The id alone sets the client's resume point before any event.
		return
	}

	tick := time.NewTicker(s.cfg.SSEHeartbeat)
	defer tick.Stop()
	// What was queued during a backfill comes first; from now on the
	// client may fall SSEBuffer events behind.
	evs := c.settle(s.hub.bufSize)
	for {
		// Everything queued goes out in 64 KiB writes and one flush: a
		// syscall per burst, not per event, is what lets hundreds of
		// clients follow thousands of events per second.
		for _, ev := range evs {
			msg := ev.msg
			if floor != nil {
				if int(ev.partition) < len(floor) && ev.offset < floor[ev.partition] {
					continue
				}
				msg = renderEvent(mergePositions(ev.pos, floor), ev.data)
			}
			if !sw.add(msg) {
				return
			}
		}
		if len(evs) > 0 && !sw.flush() {
			return
		}
		clear(evs) // let the events go once every client has sent them
		select {
		case <-r.Context().Done():
			return
		case <-c.kicked:
			return // too slow; the client reconnects and resumes
		case <-c.wake:
			evs = c.take(evs)
		case <-tick.C:
			evs = evs[:0]
			if !s.auth.stillValid(r.Context()) {
				return // logged out or expired: the client's reconnect gets 401
			}
			if !sw.add([]byte(": heartbeat\n\n")) || !sw.flush() {
				return
			}
		}
	}
}

// sseWriter batches a stream's output into large writes.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
}

const sseWriteSize = 64 << 10

// add appends b, writing out (unflushed) once the buffer is full. It
// reports false when the client is gone.
func (sw *sseWriter) add(b []byte) bool {
	sw.buf = append(sw.buf, b...)
	return len(sw.buf) < sseWriteSize || sw.write()
}

// write hands the buffer to the connection. A write that cannot finish in
// time means a dead peer; the hub has already moved on without it, the
// deadline only frees the goroutine.
func (sw *sseWriter) write() bool {
	if len(sw.buf) == 0 {
		return true
	}
	_ = sw.rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := sw.w.Write(sw.buf)
	sw.buf = sw.buf[:0]
	return err == nil
}

// flush writes out and flushes what was added.
func (sw *sseWriter) flush() bool {
	if !sw.write() {
		return false
	}
	_ = sw.rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return sw.rc.Flush() == nil
}

// Bounds of a resume backfill.
const (
	maxBackfill   = 100_000 // records; 20 s of stream at 5k/s
	backfillChunk = 2000    // records read from the database at once
	// backfillStall is how long the database may store nothing of the
	// gap before the client gets a reset.
	backfillStall = 10 * time.Second
)

// backfill sends the stored records between the client's position from and
// the hub's position pos, where c's live events start. It sends what the
// database holds as soon as it holds it, chunk by chunk, while c queues the
// live events. It returns the partitions where the client is ahead of pos,
// and false if the client is gone.
func (s *Service) backfill(ctx context.Context, sw *sseWriter, c *subscriber, from, pos []int64) ([]int64, bool) {
	to := map[int32]int64{} // the partitions with a gap, and where it ends
	at := append([]int64(nil), from...)
	for len(at) < len(pos) {
		at = append(at, 0)
	}
	var floor []int64
	for p, o := range pos {
		if at[p] < o {
			to[int32(p)] = o
		}
		if at[p] > o {
			floor = mergePositions(pos, from)
		}
	}
	if len(from) > len(pos) {
		floor = mergePositions(pos, from)
	}
	cur := mergePositions(pos, from) // where the client will be after the backfill
	done := func() ([]int64, bool) {
		return floor, sw.add(fmt.Appendf(nil, "id: %s\n\n", formatPosition(cur))) && sw.flush()
	}
	if len(to) == 0 {
		return done()
	}
	reset := func(reason string) ([]int64, bool) {
		s.log.Info("stream resume: reset", "reason", reason, "from", formatPosition(from), "to", formatPosition(pos),
			"reached", formatPosition(at))
		data, _ := json.Marshal(map[string]string{"reason": reason})
		return floor, sw.add(fmt.Appendf(nil, "id: %s\nevent: reset\ndata: %s\n\n", formatPosition(cur), data)) && sw.flush()
	}
	sent := 0
	progress := time.Now()
	for len(to) > 0 {
		select {
		case <-c.kicked:
			return nil, false // the live events piled up; the client resumes from what it got
		default:
		}
		stored, err := s.store.Offsets(ctx, event.TopicScored)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false
			}
			return reset("database unavailable")
		}
		// upto is the part of each gap the database holds now.
		upto := map[int32]int64{}
		for p, o := range to {
			if e := min(stored[p], o); e > at[p] {
				upto[p] = e
			}
		}
		if len(upto) == 0 {
			if time.Since(progress) > backfillStall {
				return reset("the database is behind the live stream")
			}
			select {
			case <-ctx.Done():
				return nil, false
			case <-c.kicked:
				return nil, false // the live events piled up; the client resumes from what it got
			case <-time.After(25 * time.Millisecond):
			}
			continue
		}
		progress = time.Now()
		fromM := make(map[int32]int64, len(upto))
		for p := range upto {
			fromM[p] = at[p]
		}
		rows, err := s.store.Range(ctx, fromM, upto, backfillChunk)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false
			}
			return reset("database unavailable")
		}
		if sent += len(rows); sent > maxBackfill {
			return reset("too many missed records")
		}
		for _, row := range rows {
			at[row.Partition] = row.Offset + 1
			data, err := json.Marshal(viewOf(row.Scored))
			if err != nil {
				continue
			}
			if !sw.add(renderEvent(at, data)) {
				return nil, false
			}
		}
		// Range returns partition then offset order: a full chunk ends
		// inside its last partition, and the partitions before it are
		// done up to upto (offsets without a row are transaction markers
		// or records that were not stored).
		if len(rows) < backfillChunk {
			for p, o := range upto {
				at[p] = o
			}
		} else {
			lastP := rows[len(rows)-1].Partition
			for p, o := range upto {
				if p < lastP {
					at[p] = o
				}
			}
		}
		for p, o := range to {
			if at[p] >= o {
				delete(to, p)
			}
		}
		s.m.sseBackfilled.Add(float64(len(rows)))
		if !sw.flush() {
			return nil, false
		}
	}
	return done()
}

// mergePositions is the per-partition maximum of a and b.
func mergePositions(a, b []int64) []int64 {
	out := make([]int64, max(len(a), len(b)))
	for i := range out {
		if i < len(a) {
			out[i] = a[i]
		}
		if i < len(b) {
			out[i] = max(out[i], b[i])
		}
	}
	return out
}

// problem is an RFC 9457 problem document.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors lists field-level problems with JSON pointers (RFC 6901) into
	// the request body, or "?name" for a query parameter.
	Errors []event.FieldError `json:"errors,omitempty"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	writeProblemErrors(w, r, status, detail, nil)
}

func writeProblemErrors(w http.ResponseWriter, r *http.Request, status int, detail string, errs []event.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type:     "about:blank", // the status code says it all (RFC 9457 §4.2.1)
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: r.URL.Path,
		Errors:   errs,
	})
}
