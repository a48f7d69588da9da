package alerts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestLoginThrottleBackoff(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// Each step: advance the clock, then either fail once or check the wait.
	type step struct {
		after time.Duration // since t0
		fail  bool
		wait  time.Duration // expected wait before the step's attempt
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"free failures then doubling lock-outs", []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0},
			{0, true, 0},            // the 5th failure locks for 1s
			{0, false, time.Second}, // so the 6th attempt waits
			{time.Second, true, 0},  // tried once unlocked, failed: 2s
			{time.Second, false, 2 * time.Second},
			{3 * time.Second, true, 0}, // 4s
			{3 * time.Second, false, 4 * time.Second},
			{7 * time.Second, true, 0}, // 8s
			{8 * time.Second, false, 7 * time.Second},
		}},
		{"an old burst is forgiven", []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0},
			{loginForget + 2*time.Second, true, 0}, // counts as the first of a new burst
			{loginForget + 2*time.Second, false, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newLoginThrottle()
			for i, s := range tt.steps {
				now := t0.Add(s.after)
				if got := th.wait("192.0.2.1", now); got != s.wait {
					t.Fatalf("step %d: wait = %s, want %s", i, got, s.wait)
				}
				if s.fail {
					th.fail("192.0.2.1", now)
				}
			}
			if got := th.wait("192.0.2.2", t0.Add(tt.steps[len(tt.steps)-1].after)); got != 0 {
				t.Fatalf("another address waits %s, want 0", got)
			}
		})
	}

	t.Run("capped", func(t *testing.T) {
		th := newLoginThrottle()
		now := t0
		for range 40 {
			now = now.Add(th.wait("a", now))
			th.fail("a", now)
		}
		if got := th.wait("a", now); got != loginBackoffMax {
			t.Fatalf("wait after 40 failures = %s, want the cap %s", got, loginBackoffMax)
		}
	})
	t.Run("success forgets", func(t *testing.T) {
		th := newLoginThrottle()
		for range loginFreeFailures - 1 {
			th.fail("a", t0)
		}
		th.succeed("a")
		th.fail("a", t0)
		if got := th.wait("a", t0); got != 0 {
			t.Fatalf("wait = %s after a success and one failure, want 0", got)
		}
	})
	t.Run("overall bucket", func(t *testing.T) {
		th := newLoginThrottle()
		// Every failure from a new address: only the overall bucket holds them.
		for i := range loginGlobalBurst {
			if got := th.wait(fmt.Sprint("198.51.100.", i), t0); got != 0 {
				t.Fatalf("failure %d: wait %s, want 0", i, got)
			}
			th.fail(fmt.Sprint("198.51.100.", i), t0)
		}
		if got := th.wait("203.0.113.9", t0); got != time.Second {
			t.Fatalf("a fresh address after %d failures overall waits %s, want 1s", loginGlobalBurst, got)
		}
		if got := th.wait("203.0.113.9", t0.Add(time.Second)); got != 0 {
			t.Fatalf("after one refill second the wait is %s, want 0", got)
		}
	})
}

func TestClientKey(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.7:5555", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:5555", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::/64"},
		{"not-an-address", "not-an-address"},
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			if got := clientKey(tt.remote); got != tt.want {
				t.Fatalf("clientKey(%q) = %q, want %q", tt.remote, got, tt.want)
			}
		})
	}
}

// clock is a settable time source for auth.now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestSessionExpiry: a session ends after the idle timeout without use,
// use extends it, and it ends at its maximum age in any case.
func TestSessionExpiry(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	cfg.Token = "correct-horse-battery-staple"
	cfg.LoginIdleTimeout = 30 * time.Minute
	cfg.LoginMaxAge = 2 * time.Hour
	clk := &clock{t: time.Now()}
	svc := start(t, cfg, func(s *Service) { s.auth.now = clk.now })
	base := "http://" + svc.Addr()
	get := func(h http.Header) int {
		resp, _ := call(t, "GET", base+"/api/v1/alerts", h, "")
		return resp.StatusCode
	}

	t.Run("idle", func(t *testing.T) {
		c := loginCookie(t, base, cfg.Token)
		clk.add(29 * time.Minute)
		if code := get(c); code != 200 {
			t.Fatalf("after 29 idle minutes = %d, want 200", code)
		}
		clk.add(29 * time.Minute) // 58 minutes after login, 29 after its last use
		if code := get(c); code != 200 {
			t.Fatalf("29 minutes after the last use = %d, want 200 (use extends the session)", code)
		}
		clk.add(31 * time.Minute)
		if code := get(c); code != 401 {
			t.Fatalf("31 idle minutes = %d, want 401", code)
		}
	})
	t.Run("max age", func(t *testing.T) {
		c := loginCookie(t, base, cfg.Token)
		for range 5 { // used every 20 minutes: never idle
			clk.add(20 * time.Minute)
			if code := get(c); code != 200 {
				t.Fatalf("in use = %d, want 200", code)
			}
		}
		clk.add(20*time.Minute + time.Second) // just past 2h after the login
		if code := get(c); code != 401 {
			t.Fatalf("past the maximum age = %d, want 401", code)
		}
	})
	t.Run("ended sessions are deleted at the next login", func(t *testing.T) {
		stored := func(c http.Header) error {
			req, _ := http.NewRequest("GET", "/", nil)
			req.Header = c
			_, err := svc.Store().Session(context.Background(), svc.auth.cookieKey(req))
			return err
		}
		old := loginCookie(t, base, cfg.Token)
		if err := stored(old); err != nil {
			t.Fatalf("session after login: %v", err)
		}
		clk.add(3 * time.Hour)
		loginCookie(t, base, cfg.Token)
		if err := stored(old); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ended session after the next login: %v, want ErrNotFound", err)
		}
	})
}
