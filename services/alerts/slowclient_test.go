package alerts

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestSlowClients: token-protected endpoints answer 401 before reading a
// body, the unprotected login cannot be held open by a body that never
// comes, and the live stream outlives every HTTP timeout.
func TestSlowClients(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	cfg.Token = "correct-horse-battery-staple"
	cfg.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
	cfg.HTTP.BodyTimeout = 300 * time.Millisecond
	cfg.HTTP.IdleTimeout = 300 * time.Millisecond
	svc := start(t, cfg, nil)

	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
		within                   time.Duration
	}{
		{"rules without token", "PUT", "/api/v1/rules", "", http.StatusUnauthorized, 250 * time.Millisecond},
		{"disposition with a wrong token", "POST", "/api/v1/alerts/x/disposition", "Bearer wrong-token-wrong-token", http.StatusUnauthorized, 250 * time.Millisecond},
		{"login, body never sent", "POST", "/api/v1/login", "", http.StatusRequestTimeout, 2 * time.Second},
		{"rules with the token, body never sent", "PUT", "/api/v1/rules", "Bearer " + cfg.Token, http.StatusRequestTimeout, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", svc.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			auth := ""
			if tc.auth != "" {
				auth = "Authorization: " + tc.auth + "\r\n"
			}
			start := time.Now()
			fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: alerts\r\n%sContent-Type: application/json\r\nContent-Length: 500\r\n\r\n",
				tc.method, tc.path, auth)
			r := bufio.NewReader(c)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if took := time.Since(start); resp.StatusCode != tc.want || took > tc.within {
				t.Fatalf("got %d after %v, want %d within %v", resp.StatusCode, took, tc.want, tc.within)
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := r.ReadByte(); err == nil || isTimeout(err) {
				t.Error("connection with an unread body still open after the answer")
			}
		})
	}

	t.Run("stream outlives the timeouts", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+svc.Addr()+"/api/v1/stream", nil)
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		time.Sleep(5 * cfg.HTTP.BodyTimeout) // past every timeout
		newProducer(t, brokers).txn(true, batchOf("late", 3)...)
		seen := map[string]bool{}
		for len(seen) < 3 {
			var v scoredView
			if err := json.Unmarshal([]byte(readEvent(t, r)["data"]), &v); err != nil {
				t.Fatal(err)
			}
			seen[v.Transaction.TransactionID] = true
		}
		for i := range 3 {
			if id := fmt.Sprintf("late-%d", i); !seen[id] {
				t.Errorf("%s not streamed", id)
			}
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
