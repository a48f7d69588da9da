// Package client is the Go client of fraudstream's ingest API for a payment
// path: Decide submits a transaction and returns its fraud decision within
// a latency budget.
//
// Retries are safe by construction. Every attempt of one Decide call sends
// the same bytes under the same Idempotency-Key (the transaction_id unless
// WithIdempotencyKey says otherwise), and ingest answers a repeated key with
// the first attempt's outcome without writing the transaction again, so a
// retry can never create a second transaction or a second decision: the
// decision returned is the one stored, whichever attempt returns it.
// Decide retries what is worth retrying (a broken connection, 429, 503,
// and a 409 saying the first attempt is still in progress), honouring
// Retry-After, within the attempts and the caller's context; every other
// refusal is returned at once as an *Error carrying the RFC 9457 problem.
//
// A budget that runs out is not an error: the Decision comes back with
// Pending set and a Location, to be read later with Lookup.
//
// The package uses only the standard library and pkg/event.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Decision is a transaction's fraud decision, as stored in the committed
// scored record, or a pending one when the budget ran out first.
type Decision struct {
	TransactionID string `json:"transaction_id"`
	// Decision is approve, review or decline; "pending" when Pending.
	Decision       string         `json:"decision"`
	Score          float64        `json:"score"`
	Reasons        []event.Reason `json:"reasons"`
	RuleSetVersion int64          `json:"rule_set_version"`
	ModelVersion   string         `json:"model_version"`
	// Partition and Offset are where the transaction is stored in
	// raw-transactions.
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	ScoredAt  time.Time `json:"scored_at"`

	// Pending is set when the budget ran out before the decision was
	// read; Location is then where Lookup reads it.
	Pending  bool   `json:"-"`
	Location string `json:"-"`
	// Replayed is set when ingest answered from an earlier attempt's
	// idempotency record.
	Replayed bool `json:"-"`
}

// Pending is the Decision value of a pending answer.
const Pending = "pending"

// Error is a refusal by ingest: its HTTP status and RFC 9457 problem.
type Error struct {
	Status int
	Type   string `json:"type"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	// Errors are the invalid fields of a 422.
	Errors []event.FieldError `json:"errors"`
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("fraudstream: %d %s: %s", e.Status, e.Title, e.Detail)
	}
	return fmt.Sprintf("fraudstream: %d %s", e.Status, e.Title)
}

// Temporary reports whether the same request may succeed later: 429, 503,
// and a 409 whose first attempt is still in progress.
func (e *Error) Temporary() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	case http.StatusConflict:
		return strings.HasSuffix(e.Type, "/idempotency-in-progress")
	}
	return false
}

// Client calls one ingest endpoint. It is safe for concurrent use.
type Client struct {
	base, apiKey string
	http         *http.Client
	attempts     int
	backoff      time.Duration
	budget       time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: one with a 30 s timeout
// per attempt; the caller's context bounds the whole call).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithMaxAttempts sets how many times Decide sends a transaction at most
// (default 4; 1 disables retries).
func WithMaxAttempts(n int) Option { return func(c *Client) { c.attempts = max(n, 1) } }

// WithBackoff sets the first wait between attempts when the server names
// none; it doubles after each attempt (default 50 ms).
func WithBackoff(d time.Duration) Option { return func(c *Client) { c.backoff = d } }

// WithBudget sets the latency budget ingest waits for a decision before it
// answers pending (sent as budget_ms; default 0: the server's,
// INGEST_DECISION_BUDGET).
func WithBudget(d time.Duration) Option { return func(c *Client) { c.budget = d } }

// New returns a Client of the ingest API at baseURL (e.g.
// "http://127.0.0.1:8081") authenticating with apiKey.
func New(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), apiKey: apiKey,
		http: &http.Client{Timeout: 30 * time.Second}, attempts: 4, backoff: 50 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	return c
}

// DecideOption configures one Decide call.
type DecideOption func(*decideCall)

type decideCall struct{ key string }

// WithIdempotencyKey sends key as the Idempotency-Key instead of the
// transaction_id.
func WithIdempotencyKey(key string) DecideOption { return func(d *decideCall) { d.key = key } }

// Decide submits tx to POST /v1/decisions and returns its decision, or a
// pending Decision when the budget ran out. Attempts share one
// Idempotency-Key and one body, so retrying is always safe.
func (c *Client) Decide(ctx context.Context, tx event.Transaction, opts ...DecideOption) (Decision, error) {
	call := decideCall{key: tx.TransactionID}
	for _, o := range opts {
		o(&call)
	}
	body, err := json.Marshal(tx)
	if err != nil {
		return Decision{}, fmt.Errorf("fraudstream: encode transaction: %w", err)
	}
	url := c.base + "/v1/decisions"
	if c.budget > 0 {
		url += "?budget_ms=" + strconv.FormatInt(c.budget.Milliseconds(), 10)
	}
	return c.retry(ctx, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", call.key)
		return req, nil
	})
}

// Lookup reads a pending decision at its Location: the decision once
// scored, still pending, or an *Error (404 once it has left ingest's
// recent decisions; then read the alerts API).
func (c *Client) Lookup(ctx context.Context, d Decision) (Decision, error) {
	if d.Location == "" {
		return Decision{}, errors.New("fraudstream: the decision has no Location")
	}
	return c.retry(ctx, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, c.base+d.Location, nil)
	})
}

// retry sends the requests newReq builds until one is answered with a
// decision or a final refusal.
func (c *Client) retry(ctx context.Context, newReq func() (*http.Request, error)) (Decision, error) {
	wait := c.backoff
	var last error
	for attempt := 1; ; attempt++ {
		req, err := newReq()
		if err != nil {
			return Decision{}, fmt.Errorf("fraudstream: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
		req.Header.Set("Accept", "application/json")
		d, retryAfter, err := c.do(req)
		if err == nil {
			return d, nil
		}
		last = err
		var e *Error
		if errors.As(err, &e) && !e.Temporary() {
			return Decision{}, err
		}
		if ctx.Err() != nil {
			return Decision{}, fmt.Errorf("fraudstream: %w (last attempt: %w)", context.Cause(ctx), last)
		}
		if attempt >= c.attempts {
			return Decision{}, fmt.Errorf("fraudstream: %d attempts: %w", attempt, last)
		}
		pause := wait
		if retryAfter > 0 {
			pause = retryAfter
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < pause {
			return Decision{}, fmt.Errorf("fraudstream: no time left to retry after %s: %w", pause, last)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return Decision{}, fmt.Errorf("fraudstream: %w (last attempt: %w)", context.Cause(ctx), last)
		case <-t.C:
		}
		wait *= 2
	}
}

// do sends one request and reads its answer.
func (c *Client) do(req *http.Request) (Decision, time.Duration, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return Decision{}, 0, err // a transport error: retried
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Decision{}, 0, fmt.Errorf("read answer: %w", err)
	}
	var retryAfter time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted:
		var d Decision
		if err := json.Unmarshal(b, &d); err != nil {
			return Decision{}, 0, &Error{Status: resp.StatusCode, Title: "unreadable answer", Detail: err.Error()}
		}
		d.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
		if d.Decision == Pending {
			d.Pending = true
			d.Location = resp.Header.Get("Location")
		}
		return d, 0, nil
	}
	e := &Error{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), RetryAfter: retryAfter}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		_ = json.Unmarshal(b, e) // a problem that does not parse keeps the status text
	}
	return Decision{}, retryAfter, e
}
