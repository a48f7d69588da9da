package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// stream follows alerts' live stream (GET /api/v1/stream, server-sent
// events) and hands every "scored" event's data to onScored with the time it
// arrived. When the connection drops, or alerts disconnects it for reading
// too slowly, it reconnects with Last-Event-ID, and alerts backfills what
// was missed from its database.
type stream struct {
	url, token string
	client     *http.Client // without a timeout: the response never ends
	log        *slog.Logger
	onScored   func(data []byte, at time.Time)

	lastID     string // touched only by the reading goroutine
	reconnects atomic.Int64
	resets     atomic.Int64 // "event: reset": alerts could not fill a gap
}

// open subscribes; once it returns, every record alerts publishes from then
// on reaches the returned body, which lives until it is closed or ctx ends.
// Connecting is bounded by ten seconds.
func (s *stream) open(ctx context.Context) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("stream request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	timer := time.AfterFunc(10*time.Second, cancel)
	resp, err := s.client.Do(req)
	timer.Stop()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open stream %s: %w", s.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("open stream %s: %s: %s", s.url, resp.Status, bytes.TrimSpace(msg))
	}
	return cancelOnClose{resp.Body, cancel}, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// run reads body, then reconnects, until ctx is done.
func (s *stream) run(ctx context.Context, body io.ReadCloser) {
	for {
		err := s.read(ctx, body)
		body.Close()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("stream interrupted; reconnecting", "err", err, "last_event_id", s.lastID)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			if body, err = s.open(ctx); err == nil {
				s.reconnects.Add(1)
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("stream reconnect failed", "err", err)
		}
	}
}

// read parses events until the body ends. Only the fields loadgen uses
// are parsed: id, event and data (one data line per event, as alerts
// writes them).
func (s *stream) read(ctx context.Context, body io.Reader) error {
	r := bufio.NewReaderSize(body, 64<<10)
	var name string
	var data []byte
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			rest, err2 := r.ReadBytes('\n')
			line, err = append(append([]byte(nil), line...), rest...), err2
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF // the server ended a stream that never ends
			}
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "":
			if len(line) > 0 {
				continue // a comment
			}
			switch name {
			case "scored":
				if data != nil {
					s.onScored(data, time.Now())
				}
			case "reset":
				s.resets.Add(1)
			}
			name, data = "", nil
		case "id":
			s.lastID = string(value)
		case "event":
			name = string(value)
		case "data":
			data = append([]byte(nil), value...)
		}
	}
}
