package alerts

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Login throttling, in each replica's memory (see
// docs/design/alerts-sessions.md):
//   - per client address: the loginFreeFailures-th failed login in a row
//     locks the address out for loginBackoffBase, and each further one
//     for twice as long as the one before, up to loginBackoffMax. A
//     locked-out address gets 429 whatever token it sends, so the
//     (loginFreeFailures+1)-th attempt of a burst is 429. A success, or
//     loginForget without a failure, clears the address's record;
//   - overall: failures drain a token bucket of loginGlobalBurst refilled
//     at loginGlobalRate per second; an empty bucket answers every login
//     429, so many addresses together cannot try more than that.
//
// IPv6 clients are counted per /64, the block one subscriber usually holds.
const (
	loginFreeFailures = 5
	loginBackoffBase  = time.Second
	loginBackoffMax   = 15 * time.Minute
	loginForget       = 15 * time.Minute
	loginGlobalBurst  = 30
	loginGlobalRate   = 1.0 // failures per second, refilled
	// loginMaxClients bounds the addresses remembered; beyond it new
	// addresses are only held to the overall bucket.
	loginMaxClients = 10_000
)

type loginThrottle struct {
	mu      sync.Mutex
	clients map[string]*loginFailures
	tokens  float64   // of the overall bucket
	filled  time.Time // when tokens was last brought up to date
}

type loginFailures struct {
	n           int
	last        time.Time // of the last failure
	lockedUntil time.Time
}

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{clients: map[string]*loginFailures{}, tokens: loginGlobalBurst}
}

// clientKey is the throttled unit of a RemoteAddr: the IPv4 address or
// the IPv6 /64.
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64) // cannot fail for an IPv6 address
		return p.String()
	}
	return ip.String()
}

// refill brings the overall bucket up to now.
func (t *loginThrottle) refill(now time.Time) {
	if !t.filled.IsZero() && now.After(t.filled) {
		t.tokens = min(loginGlobalBurst, t.tokens+now.Sub(t.filled).Seconds()*loginGlobalRate)
	}
	t.filled = now
}

// wait returns how long client must wait before its next login attempt,
// 0 if it may try now.
func (t *loginThrottle) wait(client string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d time.Duration
	if f, ok := t.clients[client]; ok {
		d = max(d, f.lockedUntil.Sub(now))
	}
	t.refill(now)
	if t.tokens < 1 {
		d = max(d, time.Duration((1-t.tokens)/loginGlobalRate*float64(time.Second)))
	}
	return max(d, 0)
}

// fail records a failed login of client.
func (t *loginThrottle) fail(client string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refill(now)
	t.tokens = max(t.tokens-1, 0)
	f, ok := t.clients[client]
	if ok && now.Sub(f.last) > loginForget && !now.Before(f.lockedUntil) {
		f.n = 0 // an old burst is forgiven
	}
	if !ok {
		if len(t.clients) >= loginMaxClients {
			t.prune(now)
		}
		if len(t.clients) >= loginMaxClients {
			return
		}
		f = &loginFailures{}
		t.clients[client] = f
	}
	f.n++
	f.last = now
	if extra := f.n - loginFreeFailures + 1; extra > 0 {
		d := loginBackoffMax
		if extra <= 20 { // 2^20 s is beyond the cap anyway
			d = min(loginBackoffBase<<(extra-1), loginBackoffMax)
		}
		f.lockedUntil = now.Add(d)
	}
}

// succeed forgets client's failures.
func (t *loginThrottle) succeed(client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.clients, client)
}

// prune forgets the clients neither locked out nor failing recently.
func (t *loginThrottle) prune(now time.Time) {
	for k, f := range t.clients {
		if now.Sub(f.last) > loginForget && !now.Before(f.lockedUntil) {
			delete(t.clients, k)
		}
	}
}
