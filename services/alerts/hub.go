package alerts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// errTooManyClients is returned by subscribe when SSEMaxClients are connected.
var errTooManyClients = errors.New("too many stream clients")

// resumeQueue bounds how many live events a client that is being
// backfilled from the database may have queued (see Service.backfill): at
// 5k events/s that is 13 s of backfill. The queue holds pointers to events
// the hub renders once and shares with every client, so it costs 8 bytes an
// entry per client, not a copy of each event.
const resumeQueue = 64 << 10

// hub fans rendered SSE events out to stream clients. publish never blocks:
// each client has a bounded queue, and a client whose queue is full is
// disconnected (its browser reconnects and resumes, see Service.stream).
//
// The hub also keeps the live stream's position: for each partition of
// scored-transactions, the next offset it will publish. Every event's SSE
// id is that whole vector, so a client that reconnects with Last-Event-ID
// says exactly what it has seen on every partition, not only on the
// partition of its last event.
type hub struct {
	bufSize, maxClients int
	m                   *metrics

	mu      sync.Mutex
	clients map[*subscriber]struct{}
	pos     []int64 // next offset per partition; index is the partition
}

// hubEvent is one record as the hub fans it out: rendered once, shared by
// every client, never modified.
type hubEvent struct {
	partition int32
	offset    int64
	pos       []int64 // the stream position after this event
	data      []byte  // the JSON of the event
	msg       []byte  // the rendered SSE event with pos as its id
}

// subscriber is one stream client's queue of events not yet taken by its
// handler. The hub appends; the handler takes everything queued at once,
// so a client that keeps up costs one wake-up per burst, not per event.
type subscriber struct {
	wake   chan struct{} // capacity 1: the queue became non-empty
	kicked chan struct{} // closed when the hub dropped this client for being slow

	mu    sync.Mutex
	queue []*hubEvent
	limit int // a client with this many events queued is dropped
}

func newHub(bufSize, maxClients int, m *metrics) *hub {
	return &hub{bufSize: bufSize, maxClients: maxClients, m: m, clients: map[*subscriber]struct{}{}}
}

// start sets the position the live consumer starts from.
func (h *hub) start(pos []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pos = append([]int64(nil), pos...)
}

// subscribe registers a client and returns the position its first event
// follows. A resuming client gets room for resumeQueue events instead of
// bufSize until it calls settle: live events keep arriving while its
// handler backfills the gap before them from the database.
func (h *hub) subscribe(resuming bool) (*subscriber, []int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.clients) >= h.maxClients {
		return nil, nil, errTooManyClients
	}
	c := &subscriber{wake: make(chan struct{}, 1), kicked: make(chan struct{}), limit: h.bufSize}
	if resuming {
		c.limit = max(h.bufSize, resumeQueue)
	}
	h.clients[c] = struct{}{}
	h.m.sseClients.Set(float64(len(h.clients)))
	return c, append([]int64(nil), h.pos...), nil
}

func (h *hub) unsubscribe(c *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
	h.m.sseClients.Set(float64(len(h.clients)))
}

// publish advances the position past (partition, offset) and, when data is
// not nil, queues it for every client as a "scored" event.
func (h *hub) publish(partition int32, offset int64, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	pos := make([]int64, max(len(h.pos), int(partition)+1))
	copy(pos, h.pos)
	pos[partition] = max(pos[partition], offset+1)
	h.pos = pos
	if data == nil {
		return
	}
	ev := &hubEvent{partition: partition, offset: offset, pos: pos, data: data, msg: renderEvent(pos, data)}
	kicked := false
	for c := range h.clients {
		if !c.push(ev) {
			delete(h.clients, c)
			close(c.kicked)
			h.m.sseSlowKicked.Inc()
			kicked = true
		}
	}
	if kicked {
		h.m.sseClients.Set(float64(len(h.clients)))
	}
}

// push queues ev, or reports false if the client is too far behind.
func (c *subscriber) push(ev *hubEvent) bool {
	c.mu.Lock()
	if len(c.queue) >= c.limit {
		c.mu.Unlock()
		return false
	}
	c.queue = append(c.queue, ev)
	first := len(c.queue) == 1
	c.mu.Unlock()
	if first {
		select {
		case c.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	return true
}

// take returns every queued event and leaves spare, emptied, as the queue:
// the handler and the hub swap two slices instead of allocating.
func (c *subscriber) take(spare []*hubEvent) []*hubEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cap(spare) > 4*c.limit {
		spare = nil // do not keep a backfill-sized array for the client's life
	}
	q := c.queue
	c.queue = spare[:0]
	return q
}

// settle ends a resume: it takes what was queued during the backfill and,
// in the same step, bounds the queue to limit from now on, so the events
// that piled up meanwhile do not count against the client.
func (c *subscriber) settle(limit int) []*hubEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queue
	c.queue, c.limit = nil, limit
	return q
}

// formatPosition renders a position as an SSE id: the next offsets of
// partitions 0, 1, … separated by commas.
func formatPosition(pos []int64) string {
	return string(appendPosition(nil, pos))
}

func appendPosition(b []byte, pos []int64) []byte {
	for i, o := range pos {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, o, 10)
	}
	return b
}

// parsePosition reads a Last-Event-ID written by formatPosition.
func parsePosition(s string) ([]int64, error) {
	if s == "" || len(s) > 16<<10 {
		return nil, errors.New("empty or too long")
	}
	parts := strings.Split(s, ",")
	pos := make([]int64, len(parts))
	for i, p := range parts {
		o, err := strconv.ParseInt(p, 10, 64)
		if err != nil || o < 0 {
			return nil, fmt.Errorf("offset %d: %q is not an offset", i, p)
		}
		pos[i] = o
	}
	return pos, nil
}

// renderEvent renders one "scored" SSE event. json.Marshal never emits a
// newline, so data is one SSE data line.
func renderEvent(pos []int64, data []byte) []byte {
	b := make([]byte, 0, len(data)+32+12*len(pos))
	b = append(b, "id: "...)
	b = appendPosition(b, pos)
	b = append(b, "\nevent: scored\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
