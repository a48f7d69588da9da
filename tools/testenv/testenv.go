// Package testenv gives tests throwaway Redis and PostgreSQL servers.
//
// Redis(t) returns a redis:// URL of an empty database and Postgres(t) the
// postgres:// DSN of a freshly created database. Each test binary starts at
// most one server of each kind, lazily on first use, and hands every caller
// its own Redis database number or PostgreSQL database, so tests stay fast and
// isolated and can run in parallel.
//
// Servers come from, in this order:
//   - TEST_REDIS_URL / TEST_DATABASE_URL: an existing server. For PostgreSQL
//     each caller gets a uniquely named database, dropped at cleanup; the role
//     in the URL needs CREATEDB. For Redis each caller claims a free database
//     number of that server and flushes it.
//   - redis-server, or initdb and postgres (on PATH or under
//     /usr/lib/postgresql/*/bin): started under a temporary directory on a
//     free 127.0.0.1 port. As root, PostgreSQL runs as the "postgres" user,
//     since initdb refuses to run as root.
//
// When neither is available the test is skipped with the reason, except when
// CI=true, where a missing server fails the test: CI must never pass by
// silently testing nothing.
//
// A package whose tests use this package must call Main from TestMain, so
// the servers are stopped and their directories removed when the tests end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// This package reads the environment (TEST_*, CI) by design: it is test
// plumbing, not service code.
package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// mainCalled records that TestMain went through Main, which is what stops
// the servers; without it they would outlive their directories' cleanup.
var mainCalled atomic.Bool

// stoppers are run by Main after the tests, in reverse order of start.
var (
	stopMu   sync.Mutex
	stoppers []func()
)

func atExit(f func()) {
	stopMu.Lock()
	defer stopMu.Unlock()
	stoppers = append(stoppers, f)
}

// Main runs the tests of a package and then stops the servers this package
// started. Call it from TestMain; it does not return.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	mainCalled.Store(true)
	code := m.Run()
	stopAll()
	return code
}

func stopAll() {
	stopMu.Lock()
	fs := stoppers
	stoppers = nil
	stopMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// requireMain fails a test whose package forgot testenv.Main: the servers it
// would start could not be stopped.
func requireMain(t testing.TB) {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("testenv: this package must call testenv.Main(m) from TestMain (func TestMain(m *testing.M) { testenv.Main(m) })")
	}
}

// errMissing marks a server binary that is not installed: a skip, not a
// failure, outside CI.
var errMissing = errors.New("not installed")

// unavailable skips or fails t because a server cannot be provided.
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if errors.Is(err, errMissing) && os.Getenv("CI") != "true" {
		t.Skipf("testenv: no %s: %v (install it or set the TEST_* URL; under CI=true this fails)", what, err)
	}
	t.Fatalf("testenv: %s: %v", what, err)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// A server started on it may still lose a race; callers retry.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// findBinary looks name up on PATH, then in the newest
// /usr/lib/postgresql/*/bin (Debian puts the server binaries only there).
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) }) // newest first
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w (not on PATH nor in /usr/lib/postgresql/*/bin)", name, errMissing)
}

// tempDir makes the working directory of a server, named after our pid so
// that a later run can remove the directories of test binaries that were
// killed before Main could clean up (their servers died with them).
func tempDir(kind string) (string, error) {
	sweepStale(kind)
	dir, err := os.MkdirTemp("", fmt.Sprintf("testenv-%s-%d-", kind, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("%s directory: %w", kind, err)
	}
	return dir, nil
}

func sweepStale(kind string) {
	prefix := "testenv-" + kind + "-"
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		// Signal 0 probes for the process without touching it.
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
}
