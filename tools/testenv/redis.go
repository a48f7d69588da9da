package testenv

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// redisDatabases is how many databases our own redis-server offers: one per
// Redis(t) call in a test binary, so no caller ever sees another's keys.
const redisDatabases = 4096

// claimKey marks a database of a shared TEST_REDIS_URL server as taken by
// one caller, so parallel test binaries pick different databases.
const claimKey = "testenv:claim"

var redisState struct {
	once sync.Once
	base *url.URL // server URL without a database number
	err  error
	own  bool // started by us: database numbers are simply handed out

	mu     sync.Mutex
	nextDB int
	numDBs int
}

// Redis returns the URL (redis://host:port/N) of an empty Redis database for
// this test; its keys are flushed when the test ends.
func Redis(t testing.TB) string {
	t.Helper()
	requireMain(t)
	redisState.once.Do(func() {
		redisState.base, redisState.own, redisState.numDBs, redisState.err = setupRedis()
	})
	if redisState.err != nil {
		unavailable(t, "Redis server", redisState.err)
	}
	db, err := claimRedisDB()
	if err != nil {
		t.Fatalf("testenv: Redis database: %v", err)
	}
	u := *redisState.base
	u.Path = "/" + strconv.Itoa(db)
	t.Cleanup(func() {
		// Free the memory (and, on a shared server, the claim).
		if _, err := redisDo(&u, "FLUSHDB"); err != nil {
			t.Logf("testenv: flush Redis database %d: %v", db, err)
		}
	})
	return u.String()
}

func setupRedis() (base *url.URL, own bool, numDBs int, err error) {
	if env := os.Getenv("TEST_REDIS_URL"); env != "" {
		u, err := url.Parse(env)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			return nil, false, 0, fmt.Errorf("TEST_REDIS_URL %q is not a redis:// or rediss:// URL", env)
		}
		u.Path = ""
		n := 16 // the Redis default, when CONFIG is not allowed
		if v, err := redisDo(u, "CONFIG", "GET", "databases"); err == nil {
			if a, ok := v.([]any); ok && len(a) == 2 {
				if s, ok := a[1].(string); ok {
					if m, err := strconv.Atoi(s); err == nil && m > 0 {
						n = m
					}
				}
			}
		} else if _, perr := redisDo(u, "PING"); perr != nil {
			return nil, false, 0, fmt.Errorf("TEST_REDIS_URL: %w", perr)
		}
		return u, false, n, nil
	}
	u, err := startRedis()
	return u, true, redisDatabases, err
}

func startRedis() (*url.URL, error) {
	bin, err := findBinary("redis-server")
	if err != nil {
		return nil, err
	}
	dir, err := tempDir("redis")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // the free port can be taken before redis binds it
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p, err := startProc(dir, filepath.Join(dir, "redis.log"), nil, bin,
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--databases", strconv.Itoa(redisDatabases))
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		u := &url.URL{Scheme: "redis", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		if lastErr = p.waitReady(10*time.Second, func() error { _, err := redisDo(u, "PING"); return err }); lastErr == nil {
			atExit(func() {
				p.stop(syscall.SIGTERM, 5*time.Second)
				os.RemoveAll(dir)
			})
			return u, nil
		}
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("start redis-server: %w", lastErr)
}

// claimRedisDB picks the database for one caller.
func claimRedisDB() (int, error) {
	s := &redisState
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.own {
		// Database 0 stays unused so a stray client without a number
		// cannot touch a test's keys.
		s.nextDB++
		if s.nextDB >= s.numDBs {
			return 0, fmt.Errorf("all %d databases of the test Redis are used; raise redisDatabases", s.numDBs-1)
		}
		return s.nextDB, nil
	}
	token := make([]byte, 8)
	_, _ = rand.Read(token)
	claim := fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(token))
	start := int(token[0]) % s.numDBs
	for i := range s.numDBs {
		db := (start + i) % s.numDBs
		u := *s.base
		u.Path = "/" + strconv.Itoa(db)
		v, err := redisDo(&u, "SET", claimKey, claim, "NX", "EX", "3600")
		if err != nil {
			return 0, err
		}
		if v == nil {
			continue // claimed by another caller
		}
		// The database is ours: empty it, then put the claim back.
		if _, err := redisDo(&u, "FLUSHDB"); err != nil {
			return 0, err
		}
		if _, err := redisDo(&u, "SET", claimKey, claim, "EX", "3600"); err != nil {
			return 0, err
		}
		return db, nil
	}
	return 0, fmt.Errorf("all %d databases of TEST_REDIS_URL are claimed by other tests", s.numDBs)
}

// redisDo runs one command on a new connection to u, selecting u's database.
// It is a minimal RESP client: the test plumbing should not depend on the
// Redis client library the services use.
func redisDo(u *url.URL, args ...string) (any, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	var conn net.Conn
	var err error
	if u.Scheme == "rediss" {
		conn, err = tls.DialWithDialer(&d, "tcp", u.Host, &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
	} else {
		conn, err = d.Dial("tcp", u.Host)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to Redis %s: %w", u.Host, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	rw := bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn))

	var cmds [][]string
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			cmds = append(cmds, []string{"AUTH", u.User.Username(), pw})
			if u.User.Username() == "" {
				cmds[0] = []string{"AUTH", pw}
			}
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		cmds = append(cmds, []string{"SELECT", db})
	}
	cmds = append(cmds, args)
	for _, c := range cmds {
		fmt.Fprintf(rw, "*%d\r\n", len(c))
		for _, a := range c {
			fmt.Fprintf(rw, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if err := rw.Flush(); err != nil {
		return nil, fmt.Errorf("write to Redis: %w", err)
	}
	var v any
	for _, c := range cmds {
		if v, err = readRESP(rw.Reader); err != nil {
			return nil, fmt.Errorf("redis %s: %w", c[0], err)
		}
	}
	return v, nil
}

// readRESP reads one reply: strings, integers, nil, arrays; an error reply
// is returned as an error.
func readRESP(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, errors.New(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err // $-1 is nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readRESP(r); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}
