package traffic

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Sender posts generated transactions to an ingest endpoint at a steady rate.
type Sender struct {
	URL     string       // ingest base URL, e.g. http://127.0.0.1:8081
	APIKey  string       // bearer key
	Rate    float64      // transactions per second
	Workers int          // concurrent requests; default 4
	Client  *http.Client // default: KeepAliveClient(Workers); each request is bounded by 10 s
	Log     *slog.Logger
	Now     func() time.Time // default time.Now

	Accepted, Rejected, Failed atomic.Int64
}

// Run sends until ctx is done or limit transactions were sent (0: no limit).
// Rejections and failures are counted and logged, not returned: a dev
// pipeline keeps running while one of its services restarts.
func (s *Sender) Run(ctx context.Context, g *Generator, limit int) error {
	if s.Rate <= 0 {
		return fmt.Errorf("traffic rate must be positive, got %v", s.Rate)
	}
	workers := max(s.Workers, 1)
	p := &Poster{URL: s.URL, APIKey: s.APIKey, Client: s.Client}
	if p.Client == nil {
		p.Client = KeepAliveClient(workers)
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	bodies := make(chan []byte, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range bodies {
				s.post(ctx, p, b)
			}
		}()
	}
	defer func() { close(bodies); wg.Wait() }()

	tick := time.NewTicker(time.Duration(float64(time.Second) / s.Rate))
	defer tick.Stop()
	for sent := 0; limit == 0 || sent < limit; sent++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		b, err := g.Next(now()).Tx.Encode()
		if err != nil {
			return fmt.Errorf("encode simulated transaction: %w", err)
		}
		select {
		case bodies <- b:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// requestTimeout bounds one simulated request, its answer read.
const requestTimeout = 10 * time.Second

func (s *Sender) post(ctx context.Context, p *Poster, body []byte) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := p.Post(ctx, "/v1/transactions", "application/json", body)
	if err != nil {
		if ctx.Err() == nil {
			s.Failed.Add(1)
			s.Log.Warn("simulated transaction not sent", "err", err)
		}
		return
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		s.Accepted.Add(1)
		return
	}
	s.Rejected.Add(1)
	s.Log.Warn("simulated transaction rejected", "status", resp.StatusCode, "body", string(msg))
}
