package ingest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fraudstream/fraudstream/pkg/event"
)

func doProfile(t *testing.T, method, url, contentType, key string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func TestProfiles(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(t, c)
	m := newMiniredis(t)
	cfg.RedisURL = "redis://" + m.Addr()
	_, base := startService(t, cfg)
	url := base + "/v1/cards/card-42/profile"
	const valid = `{"home_country":"DE","home_lat":52.52,"home_lon":13.405,"account_opened":"2019-04-01","risk_tier":1}`

	if r := doProfile(t, http.MethodGet, url, "", testKey, nil); r.status != http.StatusNotFound {
		t.Fatalf("GET before PUT: %d %s", r.status, r.body)
	} else {
		decodeProblem(t, r)
	}
	r := doProfile(t, http.MethodPut, url, "application/json", testKey, []byte(valid))
	wantStatus(t, r, http.StatusOK)
	want := `{"schema":"fraudstream.profile.v1","card_id":"card-42","home_country":"DE","home_lat":52.52,"home_lon":13.405,"account_opened":"2019-04-01","risk_tier":1,"updated_at":"2026-03-01T12:00:00Z"}` + "\n"
	if string(r.body) != want {
		t.Errorf("PUT answer\n got %s\nwant %s", r.body, want)
	}
	g := doProfile(t, http.MethodGet, url, "", testKey, nil)
	wantStatus(t, g, http.StatusOK)
	if !bytes.Equal(g.body, r.body) || g.header.Get("Content-Type") != "application/json" {
		t.Errorf("GET %s (%s)", g.body, g.header.Get("Content-Type"))
	}
	// The scorer's view: the documented key holds the event.Profile JSON.
	stored, err := m.Get(event.ProfileKey("card-42"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := event.DecodeProfile([]byte(stored))
	if err != nil || p.Validate(testNow) != nil || p.Tier() != 1 || p.CardID != "card-42" {
		t.Errorf("stored %s: %+v %v", stored, p, err)
	}
	if m.TTL(event.ProfileKey("card-42")) != 0 {
		t.Error("profile has a TTL")
	}
	// PUT replaces.
	wantStatus(t, doProfile(t, http.MethodPut, url, "application/json", testKey,
		[]byte(`{"home_country":"FR","account_opened":"2019-04-01","risk_tier":3}`)), http.StatusOK)
	if s, _ := m.Get(event.ProfileKey("card-42")); !strings.Contains(s, `"FR"`) || strings.Contains(s, "home_lat") {
		t.Errorf("after replace: %s", s)
	}

	with := func(old, new string) []byte { return []byte(strings.Replace(valid, old, new, 1)) }
	tests := []struct {
		name    string
		url     string
		body    []byte
		pointer string
	}{
		{"country unknown", url, with(`"DE"`, `"XX"`), "/home_country"},
		{"country missing", url, with(`"home_country":"DE",`, ""), "/home_country"},
		{"lat without lon", url, with(`,"home_lon":13.405`, ""), "/home_lon"},
		{"lat out of range", url, with(`52.52`, `-91`), "/home_lat"},
		{"lon out of range", url, with(`13.405`, `181`), "/home_lon"},
		{"opened missing", url, with(`"account_opened":"2019-04-01",`, ""), "/account_opened"},
		{"opened not a date", url, with(`2019-04-01`, `April 2019`), "/account_opened"},
		{"opened in the future", url, with(`2019-04-01`, `2026-03-02`), "/account_opened"},
		{"tier missing", url, with(`,"risk_tier":1`, ""), "/risk_tier"},
		{"tier out of range", url, with(`"risk_tier":1`, `"risk_tier":4`), "/risk_tier"},
		{"tier as string", url, with(`"risk_tier":1`, `"risk_tier":"1"`), "/risk_tier"},
		{"unknown field", url, with(`{`, `{"pin":"1234",`), "/pin"},
		{"card_id differs from path", url, with(`{`, `{"card_id":"card-43",`), "/card_id"},
		{"updated_at from client", url, with(`{`, `{"updated_at":"2026-01-01T00:00:00Z",`), "/updated_at"},
		{"wrong schema", url, with(`{`, `{"schema":"fraudstream.transaction.v1",`), "/schema"},
		{"card_id in path invalid", base + "/v1/cards/card%20x/profile", []byte(valid), "/card_id"},
		{"not an object", url, []byte(`[1]`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := doProfile(t, http.MethodPut, tt.url, "application/json", testKey, tt.body)
			wantStatus(t, r, http.StatusUnprocessableEntity)
			p := decodeProblem(t, r)
			for _, fe := range p.Errors {
				if fe.Pointer == tt.pointer && fe.Detail != "" {
					return
				}
			}
			t.Errorf("errors %+v lack pointer %q", p.Errors, tt.pointer)
		})
	}
	requestErrors := []struct {
		name, method, url, contentType, key string
		body                                []byte
		status                              int
	}{
		{"malformed", http.MethodPut, url, "application/json", testKey, []byte(`{"home_country":`), 400},
		{"wrong content type", http.MethodPut, url, "text/plain", testKey, []byte(valid), 415},
		{"too large", http.MethodPut, url, "application/json", testKey, bytes.Repeat([]byte(" "), int(cfg.MaxBodyBytes)+1), 413},
		{"no key", http.MethodPut, url, "application/json", "", []byte(valid), 401},
		{"GET invalid card_id", http.MethodGet, base + "/v1/cards/a%20b/profile", "", testKey, nil, 404},
		{"DELETE", http.MethodDelete, url, "", testKey, nil, 405},
	}
	for _, tt := range requestErrors {
		t.Run(tt.name, func(t *testing.T) {
			r := doProfile(t, tt.method, tt.url, tt.contentType, tt.key, tt.body)
			wantStatus(t, r, tt.status)
			decodeProblem(t, r)
		})
	}
}
