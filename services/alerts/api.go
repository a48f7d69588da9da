package alerts

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// The analyst API: the alert queue, card history and dispositions. Lists
// page with an opaque cursor over the total order (event_time desc,
// transaction_id desc), so paging is stable while new rows arrive.

// DefaultPageSize is the page size of list endpoints without ?limit.
const DefaultPageSize = 50

// itemView is one stored transaction in a list or the detail view: the
// scored record, where it was read from, and its label if any.
type itemView struct {
	scoredView
	Kafka *position `json:"kafka,omitempty"` // the scored-transactions position, in lists
	Label *Label    `json:"label,omitempty"`
}

type position struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

func itemOf(s Stored) itemView {
	return itemView{scoredView: viewOf(s.Scored), Kafka: &position{s.Partition, s.Offset}, Label: s.Label}
}

// page is the body of a list endpoint.
type page struct {
	Items      []itemView `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// cursorJSON is the content of an opaque cursor; clients must not rely on it.
type cursorJSON struct {
	T  time.Time `json:"t"`
	ID string    `json:"id"`
}

func encodeCursor(c Cursor) string {
	b, _ := json.Marshal(cursorJSON{T: c.EventTime.UTC(), ID: c.TransactionID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (*Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not a cursor returned by this API")
	}
	var c cursorJSON
	if err := event.Unmarshal(b, &c, event.RejectUnknown); err != nil || c.T.IsZero() || !event.ValidID(c.ID) {
		return nil, errors.New("not a cursor returned by this API")
	}
	return &Cursor{EventTime: c.T, TransactionID: c.ID}, nil
}

// listQuery reads the common list parameters: from, to (RFC 3339), limit
// and cursor. Problems are collected as field errors with pointers to the
// query parameter.
func listQuery(v url.Values, fe *[]event.FieldError) Query {
	q := Query{Limit: DefaultPageSize}
	bad := func(param, detail string) {
		*fe = append(*fe, event.FieldError{Pointer: "?" + param, Detail: detail})
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := v.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				bad(p.name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
				continue
			}
			*p.dst = t
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		bad("to", "must be after from")
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			bad("limit", fmt.Sprintf("must be an integer from 1 to %d", MaxPageSize))
		} else {
			q.Limit = n
		}
	}
	if s := v.Get("cursor"); s != "" {
		c, err := decodeCursor(s)
		if err != nil {
			bad("cursor", err.Error())
		}
		q.After = c
	}
	return q
}

// decisionsParam parses ?decision=a,b against the allowed decisions; none
// given means all allowed.
func decisionsParam(v url.Values, allowed []string, fe *[]event.FieldError) []string {
	s := v.Get("decision")
	if s == "" {
		return allowed
	}
	var out []string
	for _, d := range strings.Split(s, ",") {
		ok := false
		for _, a := range allowed {
			ok = ok || d == a
		}
		if !ok {
			*fe = append(*fe, event.FieldError{Pointer: "?decision", Detail: fmt.Sprintf("must be one or more of %s, got %q", strings.Join(allowed, ", "), d)})
			return nil
		}
		out = append(out, d)
	}
	return out
}

// listAlerts serves GET /api/v1/alerts: transactions decided review or
// decline, filtered by decision, card_id, from and to.
func (s *Service) listAlerts(w http.ResponseWriter, r *http.Request) {
	var fe []event.FieldError
	v := r.URL.Query()
	q := listQuery(v, &fe)
	q.Decisions = decisionsParam(v, []string{event.DecisionReview, event.DecisionDecline}, &fe)
	if c := v.Get("card_id"); c != "" {
		if !event.ValidID(c) {
			fe = append(fe, event.FieldError{Pointer: "?card_id", Detail: "must be 1-64 of A-Z a-z 0-9 _ - . :"})
		}
		q.CardID = c
	}
	s.list(w, r, q, fe)
}

// cardTransactions serves GET /api/v1/cards/{card_id}/transactions: the
// card's history, every decision unless ?decision= narrows it.
func (s *Service) cardTransactions(w http.ResponseWriter, r *http.Request) {
	var fe []event.FieldError
	v := r.URL.Query()
	q := listQuery(v, &fe)
	q.CardID = chi.URLParam(r, "card_id")
	if !event.ValidID(q.CardID) {
		writeProblem(w, r, http.StatusBadRequest, "card_id must be 1-64 of A-Z a-z 0-9 _ - . :")
		return
	}
	if v.Get("decision") != "" {
		q.Decisions = decisionsParam(v, []string{event.DecisionApprove, event.DecisionReview, event.DecisionDecline}, &fe)
	}
	s.list(w, r, q, fe)
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, q Query, fe []event.FieldError) {
	if len(fe) > 0 {
		writeProblemErrors(w, r, http.StatusBadRequest, "invalid query parameters", fe)
		return
	}
	limit := q.Limit
	q.Limit++ // one more tells whether there is a next page
	rows, err := s.store.Transactions(r.Context(), q)
	if err != nil {
		s.log.Error("list transactions", "err", err)
		writeProblem(w, r, http.StatusServiceUnavailable, "the database is not available")
		return
	}
	out := page{Items: make([]itemView, 0, min(len(rows), limit))}
	for i, row := range rows {
		if i == limit {
			out.NextCursor = encodeCursor(rows[i-1].Cursor())
			break
		}
		out.Items = append(out.Items, itemOf(row))
	}
	writeJSON(w, http.StatusOK, out)
}

// dispositionRequest is the body of POST /api/v1/alerts/{id}/disposition.
type dispositionRequest struct {
	Disposition string `json:"disposition"`
	Note        string `json:"note"`
	Analyst     string `json:"analyst"`
}

// Limits of a disposition.
const (
	maxNoteLen    = 2000
	maxAnalystLen = 128
	maxBodyBytes  = 256 << 10
)

// setDisposition serves POST /api/v1/alerts/{transaction_id}/disposition.
// Any stored transaction can be labelled, approved ones included: a
// confirmed fraud the scorer approved is the most valuable label of all.
func (s *Service) setDisposition(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "transaction_id")
	if !event.ValidID(id) {
		writeProblem(w, r, http.StatusBadRequest, "transaction_id must be 1-64 of A-Z a-z 0-9 _ - . :")
		return
	}
	var req dispositionRequest
	if !decodeJSONBody(w, r, &req) {
		return
	}
	var fe []event.FieldError
	switch req.Disposition {
	case DispositionConfirmedFraud, DispositionFalsePositive:
	default:
		fe = append(fe, event.FieldError{Pointer: "/disposition", Detail: fmt.Sprintf("must be %s or %s, got %q", DispositionConfirmedFraud, DispositionFalsePositive, req.Disposition)})
	}
	if len(req.Note) > maxNoteLen {
		fe = append(fe, event.FieldError{Pointer: "/note", Detail: fmt.Sprintf("must be at most %d bytes", maxNoteLen)})
	}
	if len(req.Analyst) > maxAnalystLen {
		fe = append(fe, event.FieldError{Pointer: "/analyst", Detail: fmt.Sprintf("must be at most %d bytes", maxAnalystLen)})
	}
	if len(fe) > 0 {
		writeProblemErrors(w, r, http.StatusUnprocessableEntity, "invalid disposition", fe)
		return
	}
	l, err := s.store.SetLabel(r.Context(), Label{TransactionID: id, Disposition: req.Disposition, Note: req.Note, Analyst: req.Analyst})
	switch {
	case errors.Is(err, ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "transaction "+id+" is not stored (yet)")
		return
	case err != nil:
		s.log.Error("set label", "transaction_id", id, "err", err)
		writeProblem(w, r, http.StatusServiceUnavailable, "the database is not available")
		return
	}
	s.log.Info("disposition", "transaction_id", id, "disposition", l.Disposition, "analyst", l.Analyst)
	writeJSON(w, http.StatusOK, l)
}

// decodeJSONBody strictly decodes a JSON request body into v, answering
// with a problem and returning false when it cannot.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, v any) bool {
	// Requiring the JSON media type also keeps cross-site forms out: a
	// browser only sends it cross-origin after a CORS preflight we refuse.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeProblem(w, r, http.StatusUnsupportedMediaType, "the body must be application/json")
		return false
	}
	// event.Unmarshal: exact-case keys, duplicate and unknown keys refused.
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err == nil {
		err = event.Unmarshal(b, v, event.RejectUnknown)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body must be at most %d bytes", maxBodyBytes))
			return false
		}
		if errors.Is(err, httpserver.ErrBodyTimeout) {
			writeProblem(w, r, http.StatusRequestTimeout, "the body did not arrive within the server's body timeout")
			return false
		}
		writeProblem(w, r, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
