package ingest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// slowConn is a client connection speaking HTTP/1.1 by hand, so a test
// can declare a body and send it slowly or never.
type slowConn struct {
	net.Conn
	r *bufio.Reader
}

func dialIngest(t *testing.T, base string) *slowConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &slowConn{Conn: c, r: bufio.NewReader(c)}
}

// answer reads one response within wait; 0 means the connection ended
// without one.
func (c *slowConn) answer(t *testing.T, wait time.Duration) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer within %v", wait)
		}
		return 0, err.Error()
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// closedWithin reports whether ingest ends the connection within wait.
func (c *slowConn) closedWithin(wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestSlowClients: a declared body that never comes or trickles in holds
// a connection no longer than INGEST_BODY_TIMEOUT, and a request without a
// valid key is answered 401 before any body byte is read.
func TestSlowClients(t *testing.T) {
	cfg := testConfig(t, newCluster(t))
	cfg.HTTP.BodyTimeout = 500 * time.Millisecond
	_, base := startService(t, cfg)
	body := txWith(nil)

	for _, tc := range []struct {
		name, path, auth string
		trickle          bool // send the body a byte every 100ms (else never)
		want             int  // 0: a closed connection is fine too
		within           time.Duration
	}{
		{"no key, body never sent", "/v1/transactions", "", false, http.StatusUnauthorized, 300 * time.Millisecond},
		{"unknown key, body never sent", "/v1/transactions", "Bearer wrong-key", false, http.StatusUnauthorized, 300 * time.Millisecond},
		{"no key, batch never sent", "/v1/transactions/batch", "", false, http.StatusUnauthorized, 300 * time.Millisecond},
		{"valid key, body never sent", "/v1/transactions", "Bearer " + testKey, false, http.StatusRequestTimeout, 3 * time.Second},
		{"valid key, body trickled", "/v1/transactions", "Bearer " + testKey, true, http.StatusRequestTimeout, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialIngest(t, base)
			auth := ""
			if tc.auth != "" {
				auth = "Authorization: " + tc.auth + "\r\n"
			}
			start := time.Now()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: ingest\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
				tc.path, auth, len(body))
			stop := make(chan struct{})
			defer close(stop)
			if tc.trickle {
				go func() {
					for i := range body {
						select {
						case <-stop:
							return
						case <-time.After(100 * time.Millisecond):
						}
						if _, err := c.Write(body[i : i+1]); err != nil {
							return
						}
					}
				}()
			}
			status, text := c.answer(t, 10*time.Second)
			took := time.Since(start)
			if status != tc.want && !(status == 0 && tc.want == http.StatusRequestTimeout) {
				t.Fatalf("status %d (%s), want %d", status, text, tc.want)
			}
			if took > tc.within {
				t.Errorf("answered after %v, want within %v", took, tc.within)
			}
			if !c.closedWithin(time.Second) {
				t.Error("connection with an unread body still open after the answer")
			}
		})
	}
}
