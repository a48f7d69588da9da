package ingest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Kind classifies a failed request; it alone chooses the HTTP status and the
// problem type, so handlers never pick status codes themselves.
type Kind int

// Kinds of failure, each with its status in the comment.
const (
	KindInternal              Kind = iota // 500
	KindMalformed                         // 400: not parsable JSON / NDJSON
	KindUnauthorized                      // 401: missing or unknown API key
	KindNotFound                          // 404
	KindMethodNotAllowed                  // 405
	KindTooLarge                          // 413: body or batch too large
	KindUnsupportedMedia                  // 415: wrong Content-Type
	KindInvalid                           // 422: field-level validation errors
	KindUnavailable                       // 503: brokers did not acknowledge in time
	KindForbidden                         // 403: valid key without the route's scope
	KindBadHeader                         // 400: malformed request header (Idempotency-Key)
	KindIdempotencyConflict               // 409: Idempotency-Key reused with another body
	KindInProgress                        // 409: the first request with this key is still running
	KindRateLimited                       // 429: the key's rate limit is exhausted
	KindRedisUnavailable                  // 503: Redis failed (fail-closed)
	KindTransactionIDConflict             // 409: transaction_id taken by a transaction with other contents
	KindRequestTimeout                    // 408: the body did not arrive within the body timeout
	KindBadParameter                      // 400: malformed query parameter (budget_ms)
)

// problemTypeBase prefixes every problem type URI. The fragment names the
// problem; openapi.yaml documents each.
const problemTypeBase = "https://fraudstream.github.io/problems/"

var kinds = [...]struct {
	status int
	slug   string // the problem type is problemTypeBase + slug
	title  string
	reason string // label of the rejected-by-reason counter
}{
	KindInternal:         {http.StatusInternalServerError, "internal", "Internal server error", "internal"},
	KindMalformed:        {http.StatusBadRequest, "malformed-json", "Request body is not well-formed JSON", "malformed"},
	KindUnauthorized:     {http.StatusUnauthorized, "unauthorized", "Missing or invalid API key", "unauthorized"},
	KindNotFound:         {http.StatusNotFound, "not-found", "Not found", "not_found"},
	KindMethodNotAllowed: {http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed", "method_not_allowed"},
	KindTooLarge:         {http.StatusRequestEntityTooLarge, "too-large", "Request body too large", "too_large"},
	KindUnsupportedMedia: {http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported Content-Type", "unsupported_media_type"},
	KindInvalid:          {http.StatusUnprocessableEntity, "validation", "Request body is invalid", "invalid"},
	KindUnavailable:      {http.StatusServiceUnavailable, "unavailable", "Kafka did not acknowledge the transaction in time", "unavailable"},
	KindForbidden:        {http.StatusForbidden, "forbidden", "API key is not allowed this route", "forbidden"},
	KindBadHeader:        {http.StatusBadRequest, "invalid-header", "Invalid request header", "invalid_header"},
	KindIdempotencyConflict: {http.StatusConflict, "idempotency-key-reused",
		"Idempotency-Key was already used with a different request", "idempotency_conflict"},
	KindInProgress: {http.StatusConflict, "idempotency-in-progress",
		"A request with this Idempotency-Key is still in progress", "idempotency_in_progress"},
	KindRateLimited:      {http.StatusTooManyRequests, "rate-limited", "Rate limit exceeded", "rate_limited"},
	KindRedisUnavailable: {http.StatusServiceUnavailable, "redis-unavailable", "Redis is unavailable", "redis_unavailable"},
	KindTransactionIDConflict: {http.StatusConflict, "transaction-id-reused",
		"transaction_id is taken by a different transaction", "transaction_id_conflict"},
	KindRequestTimeout: {http.StatusRequestTimeout, "request-timeout", "Request body not received in time", "request_timeout"},
	KindBadParameter:   {http.StatusBadRequest, "invalid-parameter", "Invalid query parameter", "invalid_parameter"},
}

func (k Kind) status() int { return kinds[k].status }

// Error is a failed request: its kind, a detail for the client, field errors
// for KindInvalid, and the underlying cause (logged, never sent).
type Error struct {
	Kind   Kind
	Detail string
	Fields []event.FieldError
	Err    error
	// RetryAfter overrides the kind's default Retry-After (429 answers
	// carry the limiter's own wait).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := kinds[e.Kind].title + ": " + e.Detail
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// classify turns an error from decoding or validating one transaction into
// an *Error: field errors are 422, everything else unparsable is 400.
func classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ve *event.ValidationError
	if errors.As(err, &ve) {
		return &Error{Kind: KindInvalid, Detail: "see errors for each invalid field", Fields: ve.Errors}
	}
	if errors.Is(err, event.ErrMalformed) {
		return &Error{Kind: KindMalformed, Detail: err.Error()}
	}
	return &Error{Kind: KindInternal, Detail: "unexpected error", Err: err}
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string             `json:"type"`
	Title  string             `json:"title"`
	Status int                `json:"status"`
	Detail string             `json:"detail,omitempty"`
	Errors []event.FieldError `json:"errors,omitempty"`
}

func (e *Error) problem() Problem {
	k := kinds[e.Kind]
	return Problem{
		Type:   problemTypeBase + k.slug,
		Title:  k.title,
		Status: k.status,
		Detail: e.Detail,
		Errors: e.Fields,
	}
}

// retryAfter is what 503 answers put in Retry-After: long enough for a
// leader election or a reconnect, short enough not to stall clients.
const retryAfter = time.Second

// retryAfterSeconds is d as a Retry-After value: whole seconds, rounded up,
// at least 1 (0 would invite an immediate retry storm).
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

// writeProblem writes e as application/problem+json with the headers its
// kind calls for.
func writeProblem(w http.ResponseWriter, e *Error) {
	h := w.Header()
	switch e.Kind {
	case KindUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="fraudstream-ingest"`)
	case KindUnavailable, KindRedisUnavailable, KindInProgress, KindRateLimited:
		d := retryAfter
		if e.RetryAfter > 0 {
			d = e.RetryAfter
		}
		h.Set("Retry-After", retryAfterSeconds(d))
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Kind.status())
	_ = json.NewEncoder(w).Encode(e.problem())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeRaw writes an already encoded JSON body (a replayed answer).
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
