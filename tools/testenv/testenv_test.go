package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestRedisGivesEachCallerItsOwnDatabase(t *testing.T) {
	var a, b string
	t.Run("first", func(t *testing.T) {
		a = Redis(t)
		b = Redis(t)
		if a == b {
			t.Fatalf("two callers got the same URL %s", a)
		}
		ua, _ := url.Parse(a)
		ub, _ := url.Parse(b)
		if _, err := redisDo(ua, "SET", "k", "from-a"); err != nil {
			t.Fatal(err)
		}
		v, err := redisDo(ub, "GET", "k")
		if err != nil {
			t.Fatal(err)
		}
		if v != nil {
			t.Fatalf("database of b sees a's key: %v", v)
		}
	})
	// Cleanup flushed a's database.
	ua, _ := url.Parse(a)
	v, err := redisDo(ua, "GET", "k")
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		t.Fatalf("key survived cleanup: %v", v)
	}
}

func TestPostgresGivesEachCallerAFreshDatabase(t *testing.T) {
	ctx := context.Background()
	var dsn string
	t.Run("use", func(t *testing.T) {
		dsn = Postgres(t)
		other := Postgres(t)
		if dsn == other {
			t.Fatalf("two callers got the same DSN %s", dsn)
		}
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: cleanup must still drop the database.
		if _, err := c.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
		c2, err := pgx.Connect(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close(ctx)
		var n int
		if err := c2.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 't'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatal("a fresh database sees another caller's table")
		}
	})
	u, _ := url.Parse(dsn)
	name := strings.TrimPrefix(u.Path, "/")
	pgState.mu.Lock()
	defer pgState.mu.Unlock()
	var exists bool
	if err := pgState.admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s survived cleanup", name)
	}
}

func TestPostgresParallelCallers(t *testing.T) {
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, Postgres(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			if _, err := c.Exec(ctx, "CREATE TABLE same_name (x int)"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFindBinaryMissing(t *testing.T) {
	_, err := findBinary("no-such-server-binary-xyz")
	if !errors.Is(err, errMissing) {
		t.Fatalf("err = %v, want errMissing", err)
	}
}

// recorder captures what unavailable does with a test.
type recorder struct {
	testing.TB
	calls []string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Skipf(format string, a ...any)  { r.calls = append(r.calls, "skip") }
func (r *recorder) Fatalf(format string, a ...any) { r.calls = append(r.calls, "fatal") }

func TestUnavailableSkipsExceptInCI(t *testing.T) {
	missing := fmt.Errorf("redis-server: %w", errMissing)
	broken := errors.New("server exited")
	tests := []struct {
		ci   string
		err  error
		want string
	}{
		{"", missing, "skip"},
		{"false", missing, "skip"},
		{"true", missing, "fatal"},
		{"", broken, "fatal"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("CI=%q/%v", tt.ci, tt.err), func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{}
			unavailable(r, "Redis server", tt.err)
			if len(r.calls) == 0 || r.calls[0] != tt.want {
				t.Fatalf("calls = %v, want %s first", r.calls, tt.want)
			}
		})
	}
}
