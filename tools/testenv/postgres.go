package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var pgState struct {
	once sync.Once
	base *url.URL // server URL; the path is replaced by each fresh database
	err  error

	mu    sync.Mutex // serializes use of admin, and numbering
	admin *pgx.Conn
	n     int
}

// Postgres returns the DSN (postgres://…/name?sslmode=disable) of a new,
// empty database for this test. The database is dropped when the test ends,
// forcibly disconnecting whatever the test left open.
func Postgres(t testing.TB) string {
	t.Helper()
	requireMain(t)
	pgState.once.Do(func() {
		pgState.base, pgState.err = setupPostgres()
		if pgState.err == nil {
			pgState.admin, pgState.err = connectAdmin(pgState.base)
		}
		if pgState.err == nil {
			atExit(func() { pgState.admin.Close(context.Background()) })
		}
	})
	if pgState.err != nil {
		unavailable(t, "PostgreSQL server", pgState.err)
	}

	name, err := createDatabase()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(name); err != nil {
			t.Logf("testenv: %v", err)
		}
	})
	u := *pgState.base
	u.Path = "/" + name
	return u.String()
}

func setupPostgres() (*url.URL, error) {
	if env := os.Getenv("TEST_DATABASE_URL"); env != "" {
		u, err := url.Parse(env)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return nil, fmt.Errorf("TEST_DATABASE_URL %q is not a postgres:// URL", env)
		}
		return u, nil
	}
	return startPostgres()
}

func connectAdmin(u *url.URL) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	return c, nil
}

// createDatabase makes a database with a name unique across test binaries
// sharing a TEST_DATABASE_URL server.
func createDatabase() (string, error) {
	s := &pgState
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := fmt.Sprintf("testenv_%d_%d_%s", os.Getpid(), s.n, hex.EncodeToString(suffix))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

func dropDatabase(name string) error {
	s := &pgState
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// FORCE (PostgreSQL 13+) ends connections a test forgot to close.
	if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// startPostgres creates a cluster with initdb and runs postgres on a free
// port. It runs the postgres binary itself rather than pg_ctl, which would
// daemonize it: as our child it dies with the test binary (see sysProcAttr).
func startPostgres() (*url.URL, error) {
	initdb, err := findBinary("initdb")
	if err != nil {
		return nil, err
	}
	// The server binary must come with initdb's version.
	postgres := filepath.Join(filepath.Dir(initdb), "postgres")
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		postgres = filepath.Join(filepath.Dir(real), "postgres")
	}
	if _, err := os.Stat(postgres); err != nil {
		return nil, fmt.Errorf("postgres next to %s: %w", initdb, errMissing)
	}
	as, err := postgresAccount()
	if err != nil {
		return nil, err
	}

	// Not t.TempDir: its parents are private to us, and as root the server
	// runs as postgres, which must be able to enter the directory.
	dir, err := tempDir("pg")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := os.Chmod(dir, 0o755); err != nil {
		cleanup()
		return nil, fmt.Errorf("chmod %s: %w", dir, err)
	}
	if as != nil {
		if err := os.Chown(dir, int(as.uid), int(as.gid)); err != nil {
			cleanup()
			return nil, fmt.Errorf("chown %s to postgres: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	args := []string{"-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"}
	if err := runTool(dir, as, initdb, append(args, "--locale=C.UTF-8")...); err != nil {
		// Some systems lack the C.UTF-8 locale; the C locale always exists.
		os.RemoveAll(data)
		if err2 := runTool(dir, as, initdb, append(args, "--no-locale")...); err2 != nil {
			cleanup()
			return nil, err
		}
	}

	var lastErr error
	for range 3 { // the free port can be taken before postgres binds it
		port, err := freePort()
		if err != nil {
			cleanup()
			return nil, err
		}
		p, err := startProc(dir, filepath.Join(dir, "server.log"), as, postgres,
			"-D", data, "-p", strconv.Itoa(port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1",
			// Durability is worthless for a throwaway server; speed is not.
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=500")
		if err != nil {
			cleanup()
			return nil, err
		}
		u := &url.URL{
			Scheme:   "postgres",
			User:     url.User("postgres"),
			Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path:     "/postgres",
			RawQuery: "sslmode=disable",
		}
		lastErr = p.waitReady(30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, u.String())
			if err != nil {
				return err
			}
			return c.Close(ctx)
		})
		if lastErr == nil {
			atExit(func() {
				// SIGINT is PostgreSQL's fast shutdown: clients are
				// disconnected, nothing is waited for.
				p.stop(syscall.SIGINT, 10*time.Second)
				cleanup()
			})
			return u, nil
		}
	}
	cleanup()
	return nil, fmt.Errorf("start postgres: %w", lastErr)
}
