package ingest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// withMember adds a member (JSON text such as `"a":1`) at the end of the
// object b.
func withMember(b []byte, member string) []byte {
	return append(b[:len(b)-1:len(b)-1], ","+member+"}"...)
}

func TestSingleValidation(t *testing.T) {
	_, base := startService(t, testConfig(t, newCluster(t)))
	long := strings.Repeat("a", 65)
	tests := []struct {
		name    string
		body    []byte
		pointer string // one of the reported pointers
	}{
		{"missing transaction_id", txWith(map[string]any{"transaction_id": nil}), "/transaction_id"},
		{"transaction_id too long", txWith(map[string]any{"transaction_id": long}), "/transaction_id"},
		{"transaction_id bad charset", txWith(map[string]any{"transaction_id": "tx 1"}), "/transaction_id"},
		{"missing card_id", txWith(map[string]any{"card_id": nil}), "/card_id"},
		{"card_id bad charset", txWith(map[string]any{"card_id": "card/1"}), "/card_id"},
		{"account_id bad charset", txWith(map[string]any{"account_id": "é"}), "/account_id"},
		{"missing merchant_id", txWith(map[string]any{"merchant_id": ""}), "/merchant_id"},
		{"amount zero", txWith(map[string]any{"amount_minor": 0}), "/amount_minor"},
		{"amount negative", txWith(map[string]any{"amount_minor": -5}), "/amount_minor"},
		{"amount too big", txWith(map[string]any{"amount_minor": int64(1e12) + 1}), "/amount_minor"},
		{"amount missing", txWith(map[string]any{"amount_minor": nil}), "/amount_minor"},
		{"amount fractional", txWith(map[string]any{"amount_minor": 19.99}), "/amount_minor"},
		{"amount as string", txWith(map[string]any{"amount_minor": "1999"}), "/amount_minor"},
		{"currency unknown", txWith(map[string]any{"currency": "XXY"}), "/currency"},
		{"currency lower case", txWith(map[string]any{"currency": "eur"}), "/currency"},
		{"currency missing", txWith(map[string]any{"currency": nil}), "/currency"},
		{"mcc three digits", txWith(map[string]any{"merchant_category": "541"}), "/merchant_category"},
		{"mcc letters", txWith(map[string]any{"merchant_category": "54a1"}), "/merchant_category"},
		{"mcc as number", txWith(map[string]any{"merchant_category": 5411}), "/merchant_category"},
		{"country unknown", txWith(map[string]any{"merchant_country": "XX"}), "/merchant_country"},
		{"country alpha-3", txWith(map[string]any{"merchant_country": "DEU"}), "/merchant_country"},
		{"channel unknown", txWith(map[string]any{"channel": "phone"}), "/channel"},
		{"lat without lon", txWith(map[string]any{"lon": nil}), "/lon"},
		{"lon without lat", txWith(map[string]any{"lat": nil}), "/lat"},
		{"lat out of range", txWith(map[string]any{"lat": 90.5}), "/lat"},
		{"lon out of range", txWith(map[string]any{"lon": -180.1}), "/lon"},
		{"lat as string", txWith(map[string]any{"lat": "52.5"}), "/lat"},
		{"ip invalid", txWith(map[string]any{"ip": "300.1.1.1"}), "/ip"},
		{"device_id bad charset", txWith(map[string]any{"device_id": "a b"}), "/device_id"},
		{"event_time missing", txWith(map[string]any{"event_time": nil}), "/event_time"},
		{"event_time not RFC 3339", txWith(map[string]any{"event_time": "2026-03-01 12:00"}), "/event_time"},
		{"event_time as number", txWith(map[string]any{"event_time": 1700000000}), "/event_time"},
		{"event_time too far ahead", txWith(map[string]any{"event_time": "2026-03-01T12:05:01Z"}), "/event_time"},
		{"event_time before 2000", txWith(map[string]any{"event_time": "1999-12-31T23:59:59Z"}), "/event_time"},
		{"unknown field", txWith(map[string]any{"cvv": "123"}), "/cvv"},
		// Keys are exact-case and each may appear once (issue 16): a
		// case-insensitive, last-wins reader would take 5 below.
		{"duplicate key", withMember(txWith(nil), `"amount_minor":5`), "/amount_minor"},
		{"duplicate key escaped", withMember(txWith(nil), `"amount\u005fminor":5`), "/amount_minor"},
		{"key in another case", withMember(txWith(nil), `"Amount_Minor":5`), "/Amount_Minor"},
		{"wrong schema", txWith(map[string]any{"schema": "fraudstream.transaction.v9"}), "/schema"},
		{"ingest_time from client", txWith(map[string]any{"ingest_time": "2026-03-01T12:00:00Z"}), "/ingest_time"},
		{"array instead of object", []byte(`[1,2]`), ""},
		{"string instead of object", []byte(`"tx"`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postTx(t, base, tt.body)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status = %d, want 422; body %s", r.status, r.body)
			}
			p := decodeProblem(t, r)
			if p.Type != problemTypeBase+"validation" {
				t.Errorf("type = %q", p.Type)
			}
			var pointers []string
			for _, fe := range p.Errors {
				pointers = append(pointers, fe.Pointer)
				if fe.Detail == "" {
					t.Errorf("empty detail for %q", fe.Pointer)
				}
			}
			found := false
			for _, ptr := range pointers {
				found = found || ptr == tt.pointer
			}
			if !found {
				t.Errorf("pointers = %q, want %q among them", pointers, tt.pointer)
			}
		})
	}

	t.Run("duplicate key detail", func(t *testing.T) {
		p := decodeProblem(t, postTx(t, base, withMember(txWith(nil), `"card_id":"card-2"`)))
		if len(p.Errors) != 1 || p.Errors[0].Pointer != "/card_id" || !strings.Contains(p.Errors[0].Detail, "duplicate key") {
			t.Errorf("errors = %+v, want one duplicate key at /card_id", p.Errors)
		}
	})

	t.Run("every problem at once", func(t *testing.T) {
		r := postTx(t, base, txWith(map[string]any{"amount_minor": 0, "currency": "XXX1", "channel": "x"}))
		p := decodeProblem(t, r)
		if len(p.Errors) != 3 {
			t.Errorf("errors = %+v, want 3", p.Errors)
		}
	})
}

func TestSingleRequestErrors(t *testing.T) {
	cfg := testConfig(t, newCluster(t))
	cfg.MaxBodyBytes = 1024
	_, base := startService(t, cfg)
	url := base + "/v1/transactions"
	auth := "Bearer " + testKey
	big := txWith(map[string]any{"account_id": strings.Repeat("x", 1100)})
	tests := []struct {
		name        string
		contentType string
		auth        string
		body        []byte
		status      int
		problem     string
		retryHeader string // header that must be set
	}{
		{"malformed truncated", "application/json", auth, []byte(`{"transaction_id":`), 400, "malformed-json", ""},
		{"malformed syntax", "application/json", auth, []byte(`{transaction_id: 1}`), 400, "malformed-json", ""},
		{"malformed empty", "application/json", auth, nil, 400, "malformed-json", ""},
		{"malformed trailing data", "application/json", auth, append(txWith(nil), []byte(` {}`)...), 400, "malformed-json", ""},
		{"too large", "application/json", auth, big, 413, "too-large", ""},
		{"no content type", "", auth, txWith(nil), 415, "unsupported-media-type", ""},
		{"text/plain", "text/plain", auth, txWith(nil), 415, "unsupported-media-type", ""},
		{"ndjson on single", "application/x-ndjson", auth, txWith(nil), 415, "unsupported-media-type", ""},
		{"latin1 charset", "application/json; charset=iso-8859-1", auth, txWith(nil), 415, "unsupported-media-type", ""},
		{"unparsable content type", "application/json; ;", auth, txWith(nil), 415, "unsupported-media-type", ""},
		{"no authorization", "application/json", "", txWith(nil), 401, "unauthorized", "WWW-Authenticate"},
		{"wrong key", "application/json", "Bearer nope", txWith(nil), 401, "unauthorized", "WWW-Authenticate"},
		{"hash instead of key", "application/json", "Bearer " + strings.SplitN(HashKey("x", testKey), ":", 2)[1], txWith(nil), 401, "unauthorized", "WWW-Authenticate"},
		{"basic scheme", "application/json", "Basic dGVzdDp0ZXN0", txWith(nil), 401, "unauthorized", "WWW-Authenticate"},
		{"empty bearer", "application/json", "Bearer ", txWith(nil), 401, "unauthorized", "WWW-Authenticate"},
		// Authentication comes before everything else, so an anonymous
		// caller learns nothing about the body it sent.
		{"no authorization and bad body", "text/plain", "", []byte("x"), 401, "unauthorized", "WWW-Authenticate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, url, tt.contentType, tt.auth, tt.body)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.status, r.body)
			}
			p := decodeProblem(t, r)
			if p.Type != problemTypeBase+tt.problem {
				t.Errorf("type = %q, want %q", p.Type, problemTypeBase+tt.problem)
			}
			if tt.retryHeader != "" && r.header.Get(tt.retryHeader) == "" {
				t.Errorf("%s header missing", tt.retryHeader)
			}
			if strings.Contains(string(r.body), testKey) {
				t.Errorf("response echoes the API key")
			}
		})
	}

	t.Run("accepted content types", func(t *testing.T) {
		for i, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8"} {
			body := txWith(map[string]any{"transaction_id": "ct-" + string(rune('a'+i))})
			if r := post(t, url, ct, auth, body); r.status != http.StatusAccepted {
				t.Errorf("%q: status %d, body %s", ct, r.status, r.body)
			}
		}
	})
	t.Run("bearer scheme is case-insensitive", func(t *testing.T) {
		if r := post(t, url, "application/json", "bearer "+testKey, txWith(map[string]any{"transaction_id": "lc"})); r.status != http.StatusAccepted {
			t.Errorf("status %d, body %s", r.status, r.body)
		}
	})
}

func TestRouting(t *testing.T) {
	_, base := startService(t, testConfig(t, newCluster(t)))
	t.Run("unknown path is a 404 problem", func(t *testing.T) {
		r := post(t, base+"/v2/transactions", "application/json", "Bearer "+testKey, txWith(nil))
		if r.status != http.StatusNotFound {
			t.Fatalf("status %d", r.status)
		}
		decodeProblem(t, r)
	})
	t.Run("GET on a POST route is a 405 problem", func(t *testing.T) {
		resp, err := http.Get(base + "/v1/transactions")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		r := response{resp.StatusCode, resp.Header, b}
		if r.status != http.StatusMethodNotAllowed {
			t.Fatalf("status %d", r.status)
		}
		decodeProblem(t, r)
	})
}

func TestAnonymous(t *testing.T) {
	cfg := testConfig(t, newCluster(t))
	cfg.APIKeys = nil
	cfg.AllowAnonymous = true
	_, base := startService(t, cfg)
	if r := post(t, base+"/v1/transactions", "application/json", "", txWith(nil)); r.status != http.StatusAccepted {
		t.Fatalf("anonymous: status %d, body %s", r.status, r.body)
	}
	// A presented key is still checked: a client that means to
	// authenticate should hear that its key is wrong.
	if r := post(t, base+"/v1/transactions", "application/json", "Bearer wrong", txWith(nil)); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong key: status %d, body %s", r.status, r.body)
	}
}

// TestOpenAPICoversRoutes keeps openapi.yaml honest: every route the router
// serves is documented, and every documented path is served.
func TestOpenAPICoversRoutes(t *testing.T) {
	s, base := startService(t, testConfig(t, newCluster(t)))
	resp, err := http.Get(base + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(doc, []byte("openapi: 3.1")) {
		t.Fatalf("GET /openapi.yaml: %d %.40q", resp.StatusCode, doc)
	}
	served := map[string]bool{}
	err = chi.Walk(s.handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served[route] = true
		if !bytes.Contains(doc, []byte("\n  "+route+":\n")) {
			t.Errorf("route %s %s is not in openapi.yaml", method, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":") {
			if p := strings.TrimSuffix(strings.TrimSpace(line), ":"); !served[p] {
				t.Errorf("openapi.yaml documents %s, which is not served", p)
			}
		}
	}
}

func TestOps(t *testing.T) {
	c := newCluster(t)
	_, base := startService(t, testConfig(t, c))
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if r := postTx(t, base, txWith(nil)); r.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	postTx(t, base, txWith(map[string]any{"amount_minor": 0}))
	// franz-go may count the written batch (kprom's hook) just after the
	// record's promise has let the 202 go, so wait a little for it.
	var code int
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, body = get("/metrics"); code != 200 || strings.Contains(body, "fraudstream_ingest_kafka_produce_records_total") || time.Now().After(deadline) {
			break
		}
	}
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`fraudstream_ingest_http_requests_total{route="/v1/transactions",status="202"} 1`,
		`fraudstream_ingest_http_requests_total{route="/v1/transactions",status="422"} 1`,
		`fraudstream_ingest_rejected_total{reason="invalid"} 1`,
		`fraudstream_ingest_produce_duration_seconds_count{result="ok"} 1`,
		`fraudstream_ingest_kafka_produce_records_total`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	c.Close()
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the broker gone: %d %s", code, body)
	}
}

func TestProblemJSONShape(t *testing.T) {
	// The wire names are the RFC 9457 members plus "errors"; a renamed
	// struct field must not silently change them.
	e := &Error{Kind: KindInvalid, Detail: "d", Fields: nil}
	b, _ := json.Marshal(e.problem())
	want := `{"type":"https://fraudstream.github.io/problems/validation","title":"Request body is invalid","status":422,"detail":"d"}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
}

// TestBatchResponseJSON holds the hand-written batch answer to writeJSON.
func TestBatchResponseJSON(t *testing.T) {
	p, o := int32(2), int64(1<<40)
	e := (&Error{Kind: KindInvalid, Detail: `bad <input> & "quotes"`, Fields: []event.FieldError{{Pointer: "/amount_minor", Detail: "must be > 0"}}}).problem()
	for name, resp := range map[string]BatchResponse{
		"empty": {},
		"mixed": {Accepted: 2, Rejected: 2, Results: []BatchResult{
			{Index: 0, Status: 202, TransactionID: "tx-1:a.b_c", Partition: &p, Offset: &o},
			{Index: 1, Status: 202, Partition: &p, Offset: &o, Replayed: true},
			{Index: 2, Status: 422, Problem: &e},
			{Index: 3, Status: 409, TransactionID: "needs\"escaping<&>\u00e9", Problem: &e},
		}},
		"no results": {Results: []BatchResult{}},
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		writeJSON(want, http.StatusMultiStatus, resp)
		writeBatchResponse(got, &resp)
		if got.Code != want.Code || got.Body.String() != want.Body.String() ||
			got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
			t.Errorf("%s:\n got %d %s\nwant %d %s", name, got.Code, got.Body, want.Code, want.Body)
		}
	}
}

// TestReadBody: whatever Content-Length says (exact, absent, larger than
// what is sent, beyond the preallocation), the body read is the body sent,
// and more than the limit is 413.
func TestReadBody(t *testing.T) {
	big := strings.Repeat("x", maxPrealloc+1000)
	for _, tc := range []struct {
		name   string
		body   string
		length int64 // Content-Length; -1: unknown (chunked)
		limit  int64
		fails  bool
		kind   Kind // when it fails
	}{
		{"exact", "hello", 5, 100, false, 0},
		{"empty", "", 0, 100, false, 0},
		{"unknown length", strings.Repeat("y", 3000), -1, 10000, false, 0},
		{"beyond preallocation", big, int64(len(big)), 2 << 20, false, 0},
		{"beyond preallocation, unknown length", big, -1, 2 << 20, false, 0},
		{"at the limit", "12345", 5, 5, false, 0},
		{"over the limit", "123456", 6, 5, true, KindTooLarge},
		{"over the limit, unknown length", "123456", -1, 5, true, KindTooLarge},
		{"shorter than declared", "abc", 10, 100, true, KindMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			r.ContentLength = tc.length
			if tc.length >= 0 {
				// As the server does: the body ends where the length says.
				r.Body = io.NopCloser(io.LimitReader(strings.NewReader(tc.body), tc.length))
				if tc.length > int64(len(tc.body)) {
					r.Body = io.NopCloser(io.MultiReader(strings.NewReader(tc.body), errReader{io.ErrUnexpectedEOF}))
				}
			}
			b, e := readBody(httptest.NewRecorder(), r, tc.limit)
			switch {
			case !tc.fails && e != nil:
				t.Fatalf("error %v", e)
			case !tc.fails && string(b) != tc.body:
				t.Fatalf("read %d bytes, sent %d", len(b), len(tc.body))
			case tc.fails && (e == nil || e.Kind != tc.kind):
				t.Fatalf("got %v, want kind %v", e, tc.kind)
			}
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
