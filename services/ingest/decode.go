package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unsafe"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// Media types ingest reads.
const (
	mediaJSON   = "application/json"
	mediaNDJSON = "application/x-ndjson"
)

// mediaType returns the request's media type if it is one of allowed and
// its charset, if any, is UTF-8 (the only encoding JSON may use, RFC 8259).
func mediaType(r *http.Request, allowed ...string) (string, *Error) {
	ct := r.Header.Get("Content-Type")
	want := fmt.Sprintf("send Content-Type %s", allowed[0])
	for _, a := range allowed[1:] {
		want += " or " + a
	}
	if ct == "" {
		return "", &Error{Kind: KindUnsupportedMedia, Detail: "missing Content-Type; " + want}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", &Error{Kind: KindUnsupportedMedia, Detail: fmt.Sprintf("unparsable Content-Type %q; %s", ct, want)}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "", &Error{Kind: KindUnsupportedMedia, Detail: fmt.Sprintf("charset %q is not supported; JSON must be UTF-8", cs)}
	}
	for _, a := range allowed {
		if mt == a {
			return mt, nil
		}
	}
	return "", &Error{Kind: KindUnsupportedMedia, Detail: fmt.Sprintf("Content-Type %q is not supported; %s", mt, want)}
}

// readBody reads the whole body, refusing more than limit bytes with 413.
// The buffer is sized from Content-Length (bounded by limit), so a body
// that declares its length is read without growing and copying the buffer
// as io.ReadAll does; the spare byte lets the read that finds EOF fit.
// A body without Content-Length (chunked) starts at 512 bytes and grows.
// At most maxPrealloc is reserved before the bytes arrive: the server has
// no body read timeout, so a client that declares a length and trickles
// could otherwise hold a whole limit's worth of memory per connection
// without sending it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *Error) {
	size := int64(512)
	if n := r.ContentLength; n >= 0 {
		size = min(n, limit, maxPrealloc) + 1
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	b := make([]byte, 0, size)
	for {
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, &Error{Kind: KindTooLarge, Detail: fmt.Sprintf("body is larger than %d bytes", limit)}
			}
			if errors.Is(err, httpserver.ErrBodyTimeout) {
				return nil, &Error{Kind: KindRequestTimeout, Detail: "the body did not arrive within the server's body timeout; send it at once"}
			}
			// The client went away or sent a broken chunked body.
			return nil, &Error{Kind: KindMalformed, Detail: "could not read the request body", Err: err}
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // more than declared (or no length): grow
		}
	}
}

// maxPrealloc bounds the buffer readBody reserves from Content-Length; a
// 1000-item batch is about 400 KB.
const maxPrealloc = 1 << 20

// bodyString views a body read by readBody as a string, without copying:
// the caller gives up b, which nothing writes again. Transactions decoded
// from it (event.DecodeTransactionString) take their fields from it in
// place, so a batch of a thousand shares the body's one allocation.
func bodyString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// decodeTransaction decodes and validates one transaction exactly as it
// will be produced: strict JSON, every field checked, event time against
// now. The returned transaction has IngestTime unset; its strings are
// substrings of s.
func decodeTransaction(s string, now time.Time, maxSkew time.Duration) (event.Transaction, *Error) {
	tx, err := event.DecodeTransactionString(s)
	if err != nil {
		return event.Transaction{}, classify(err)
	}
	if err := tx.Validate(now, maxSkew); err != nil || !tx.IngestTime.IsZero() {
		return event.Transaction{}, invalid(err, tx.IngestTime)
	}
	return tx, nil
}

// invalid is the error of a transaction that failed validation (err) or
// carries an ingest_time; apart from decodeTransaction so that its
// variables stay off the heap of every valid transaction.
func invalid(err error, ingestTime time.Time) *Error {
	var ve *event.ValidationError
	if err != nil && !errors.As(err, &ve) {
		return classify(err)
	}
	if !ingestTime.IsZero() {
		// Clients must not claim when we received their request: the
		// end-to-end latency metrics start from it.
		if ve == nil {
			ve = &event.ValidationError{}
		}
		ve.Errors = append(ve.Errors, event.FieldError{Pointer: "/ingest_time", Detail: "is set by ingest and must be absent"})
	}
	return classify(ve)
}

// splitBatch cuts a batch body into one raw JSON text per item, each a
// substring of body. NDJSON splits on newlines, skipping blank lines, so
// one broken line fails only its own item. A JSON array must be
// well-formed as a whole: a syntax error anywhere fails the request, since
// item boundaries are then unknown.
func splitBatch(mt string, body string, maxItems int) ([]string, *Error) {
	var items []string
	tooMany := func() *Error {
		return &Error{Kind: KindTooLarge, Detail: fmt.Sprintf("a batch holds at most %d transactions", maxItems)}
	}
	switch mt {
	case mediaNDJSON:
		items = make([]string, 0, min(strings.Count(body, "\n")+1, maxItems))
		for line := range strings.SplitSeq(body, "\n") {
			line = strings.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			if len(items) == maxItems {
				return nil, tooMany()
			}
			items = append(items, line)
		}
	default:
		dec := json.NewDecoder(strings.NewReader(body))
		tok, err := dec.Token()
		if err != nil {
			return nil, classify(decodeErr(err))
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return nil, &Error{Kind: KindInvalid, Detail: "a batch sent as application/json must be an array of transactions",
				Fields: []event.FieldError{{Pointer: "", Detail: "must be an array"}}}
		}
		for dec.More() {
			if len(items) == maxItems {
				return nil, tooMany()
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, classify(decodeErr(err))
			}
			// The item ends where the decoder stopped; take it from body
			// rather than keep the decoder's copy.
			end := int(dec.InputOffset())
			if end >= len(raw) && body[end-len(raw):end] == string(raw) {
				items = append(items, body[end-len(raw):end])
			} else {
				items = append(items, string(raw))
			}
		}
		if _, err := dec.Token(); err != nil { // the closing ']'
			return nil, classify(decodeErr(err))
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, &Error{Kind: KindMalformed, Detail: "data after the JSON array"}
		}
	}
	if len(items) == 0 {
		return nil, &Error{Kind: KindInvalid, Detail: "the batch holds no transactions",
			Fields: []event.FieldError{{Pointer: "", Detail: "must hold at least one transaction"}}}
	}
	return items, nil
}

func decodeErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: unexpected end of the body", event.ErrMalformed)
	}
	return fmt.Errorf("%w: %v", event.ErrMalformed, err)
}
