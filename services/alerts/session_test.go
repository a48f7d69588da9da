package alerts

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests speak HTTP only, so they run unchanged against the code
// before dashboard sessions were stored (where they fail).

// call sends one request and returns the response with its body read
// (but for an event stream's).
func call(t *testing.T, method, url string, h http.Header, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	if resp.Header.Get("Content-Type") != "text/event-stream" { // a stream would never end
		b, _ = io.ReadAll(resp.Body)
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s %s: %d with Content-Type %q, want application/problem+json", method, url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp, string(b)
}

// loginCookie logs in at base and returns the session cookie as a Cookie
// header.
func loginCookie(t *testing.T, base, token string) http.Header {
	t.Helper()
	resp, body := call(t, "POST", base+"/api/v1/login", nil, `{"token":"`+token+`"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("login = %d %s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			return http.Header{"Cookie": {c.Name + "=" + c.Value}}
		}
	}
	t.Fatalf("login set no %s cookie: %v", sessionCookie, resp.Header["Set-Cookie"])
	return nil
}

func with(h http.Header, k, v string) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	out.Set(k, v)
	return out
}

func TestLogoutRevokesTheSession(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	cfg.Token = "correct-horse-battery-staple"
	base := "http://" + start(t, cfg, nil).Addr()

	cookie := loginCookie(t, base, cfg.Token)
	if resp, _ := call(t, "GET", base+"/api/v1/alerts", cookie, ""); resp.StatusCode != 200 {
		t.Fatalf("alerts with the session = %d", resp.StatusCode)
	}
	if resp, _ := call(t, "POST", base+"/api/v1/logout", cookie, ""); resp.StatusCode != 204 {
		t.Fatalf("logout = %d", resp.StatusCode)
	}
	// The browser dropped the cookie; whoever copied it must not get in.
	for _, path := range []string{"/api/v1/alerts", "/api/v1/rules", "/api/v1/stream", "/metrics"} {
		if resp, _ := call(t, "GET", base+path, cookie, ""); resp.StatusCode != 401 {
			t.Errorf("%s with the logged-out cookie = %d, want 401", path, resp.StatusCode)
		}
	}
	var info authInfo
	if _, body := call(t, "GET", base+"/api/v1/auth", cookie, ""); json.Unmarshal([]byte(body), &info) != nil || info.Authenticated {
		t.Errorf("/api/v1/auth with the logged-out cookie = %s, want authenticated false", body)
	}
	// A new login is a new session, unlike the old one.
	again := loginCookie(t, base, cfg.Token)
	if again.Get("Cookie") == cookie.Get("Cookie") {
		t.Fatal("a second login set the same cookie value")
	}
	if resp, _ := call(t, "GET", base+"/api/v1/alerts", again, ""); resp.StatusCode != 200 {
		t.Fatalf("alerts with the new session = %d", resp.StatusCode)
	}
	if resp, _ := call(t, "GET", base+"/api/v1/alerts", cookie, ""); resp.StatusCode != 401 {
		t.Fatalf("the old cookie came back to life after a new login: %d", resp.StatusCode)
	}
}

func TestLoginThrottled(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	cfg.Token = "correct-horse-battery-staple"
	base := "http://" + start(t, cfg, nil).Addr()

	// A burst of wrong tokens: the first five are told so, the sixth
	// attempt is throttled, and so is the right token while locked out.
	const free = 5
	for i := range free {
		if resp, body := call(t, "POST", base+"/api/v1/login", nil, `{"token":"wrong-token-`+strconv.Itoa(i)+`"}`); resp.StatusCode != 401 {
			t.Fatalf("bad login %d = %d %s, want 401", i+1, resp.StatusCode, body)
		}
	}
	for _, tok := range []string{"wrong-token-x", cfg.Token} {
		resp, body := call(t, "POST", base+"/api/v1/login", nil, `{"token":"`+tok+`"}`)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("login %d of the burst = %d %s, want 429", free+1, resp.StatusCode, body)
		}
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || secs < 1 {
			t.Fatalf("Retry-After = %q, want a positive number of seconds", resp.Header.Get("Retry-After"))
		}
		var pr problem
		if err := json.Unmarshal([]byte(body), &pr); err != nil || pr.Status != 429 || pr.Detail == "" {
			t.Fatalf("429 body = %s", body)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Fatal("a throttled login set a cookie")
		}
	}
	// The bearer token is not a login: tools keep working.
	if resp, _ := call(t, "GET", base+"/api/v1/alerts", http.Header{"Authorization": {"Bearer " + cfg.Token}}, ""); resp.StatusCode != 200 {
		t.Fatalf("bearer during a login lock-out = %d", resp.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	cfg.Token = "correct-horse-battery-staple"
	base := "http://" + start(t, cfg, nil).Addr()

	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/", 200},
		{"GET", "/static/app.js", 200},
		{"GET", "/static/style.css", 200},
		{"GET", "/api/v1/auth", 200},
		{"GET", "/api/v1/alerts", 401},
		{"GET", "/metrics", 401},
		{"GET", "/healthz", 200},
		{"GET", "/readyz", 200},
		{"GET", "/nowhere", 404},
		{"POST", "/api/v1/logout", 204},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			resp, _ := call(t, tt.method, base+tt.path, nil, "")
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			h := resp.Header
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-") {
				t.Errorf("Content-Security-Policy %q allows unsafe sources", csp)
			}
			for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestMetricsNeedTheToken(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	cfg.Token = "correct-horse-battery-staple"
	base := "http://" + start(t, cfg, nil).Addr()

	tests := []struct {
		name   string
		h      http.Header
		status int
	}{
		{"none", nil, 401},
		{"wrong bearer", http.Header{"Authorization": {"Bearer wrong-token-wrong-token"}}, 401},
		{"bearer", http.Header{"Authorization": {"Bearer " + cfg.Token}}, 200},
		{"session", loginCookie(t, base, cfg.Token), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, "GET", base+"/metrics", tt.h, "")
			if resp.StatusCode != tt.status {
				t.Fatalf("/metrics = %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 200 && !strings.Contains(body, "fraudstream_alerts_sink_rows_stored_total") {
				t.Fatal("/metrics lacks the sink's series")
			}
			if tt.status == 401 && (strings.Contains(body, "fraudstream_") || resp.Header.Get("WWW-Authenticate") == "") {
				t.Fatalf("401 leaks metrics or lacks WWW-Authenticate: %s", body)
			}
		})
	}
	// Probes stay open.
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, _ := call(t, "GET", base+path, nil, ""); resp.StatusCode != 200 {
			t.Errorf("%s without the token = %d, want 200", path, resp.StatusCode)
		}
	}
	// Without a token (loopback only) /metrics stays open.
	open := "http://" + start(t, testConfig(brokers, sqliteURL(t)), nil).Addr()
	if resp, _ := call(t, "GET", open+"/metrics", nil, ""); resp.StatusCode != 200 {
		t.Errorf("/metrics without a configured token = %d, want 200", resp.StatusCode)
	}
}

func TestCrossOriginWritesRefused(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	cfg.Token = "correct-horse-battery-staple"
	base := "http://" + start(t, cfg, nil).Addr()
	cookie := loginCookie(t, base, cfg.Token)

	disposition := `{"disposition":"confirmed_fraud"}`
	tests := []struct {
		name   string
		h      http.Header
		status int
	}{
		{"cross-site fetch", with(cookie, "Sec-Fetch-Site", "cross-site"), 403},
		{"same-site other origin", with(cookie, "Sec-Fetch-Site", "same-site"), 403},
		{"foreign Origin", with(cookie, "Origin", "https://evil.example"), 403},
		{"same-origin fetch", with(cookie, "Sec-Fetch-Site", "same-origin"), 404}, // no such transaction: past the check
		{"no browser headers", cookie, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, "POST", base+"/api/v1/alerts/tx-none/disposition", tt.h, disposition)
			if resp.StatusCode != tt.status {
				t.Fatalf("disposition = %d %s, want %d", resp.StatusCode, body, tt.status)
			}
		})
	}
	// A cross-site logout does not end the session.
	if resp, _ := call(t, "POST", base+"/api/v1/logout", with(cookie, "Sec-Fetch-Site", "cross-site"), ""); resp.StatusCode != 403 {
		t.Fatalf("cross-site logout = %d, want 403", resp.StatusCode)
	}
	if resp, _ := call(t, "GET", base+"/api/v1/alerts", cookie, ""); resp.StatusCode != 200 {
		t.Fatalf("session after a refused cross-site logout = %d, want 200", resp.StatusCode)
	}
}

// TestSessionsAcrossReplicas: replicas behind a load balancer share the
// database; a session made on one is accepted by the other, and a logout
// on either ends it on both, open streams included.
func TestSessionsAcrossReplicas(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			brokers := newCluster(t)
			cfg := testConfig(brokers, b.url(t))
			cfg.Token = "correct-horse-battery-staple"
			cfg.SSEHeartbeat = 100 * time.Millisecond
			one := "http://" + start(t, cfg, nil).Addr()
			two := "http://" + start(t, cfg, nil).Addr()

			cookie := loginCookie(t, one, cfg.Token)
			for _, base := range []string{one, two} {
				if resp, _ := call(t, "GET", base+"/api/v1/alerts", cookie, ""); resp.StatusCode != 200 {
					t.Fatalf("%s with a session from the first replica = %d, want 200", base, resp.StatusCode)
				}
			}

			// A stream on the first replica with the session.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", one+"/api/v1/stream", nil)
			req.Header = cookie.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("stream = %d", resp.StatusCode)
			}
			rd := bufio.NewReader(resp.Body)
			if _, err := rd.ReadString('\n'); err != nil {
				t.Fatal(err)
			}

			// Logged out on the second replica.
			if r, _ := call(t, "POST", two+"/api/v1/logout", cookie, ""); r.StatusCode != 204 {
				t.Fatalf("logout on the second replica = %d", r.StatusCode)
			}
			for _, base := range []string{one, two} {
				if r, _ := call(t, "GET", base+"/api/v1/alerts", cookie, ""); r.StatusCode != 401 {
					t.Errorf("%s after logout on the second replica = %d, want 401", base, r.StatusCode)
				}
			}
			ended := make(chan error, 1)
			go func() { _, err := io.Copy(io.Discard, rd); ended <- err }()
			select {
			case err := <-ended:
				if ctx.Err() != nil {
					t.Fatalf("stream ended by the test's deadline, not the logout: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the stream of a logged-out session is still open 10 s later")
			}
		})
	}
}
