package alerts

import (
	"errors"
	"fmt"
	"github.com/fraudstream/fraudstream/internal/platform/configfield"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
)

// Defaults for Config, used by DefaultConfig. The environment variable each
// setting is read from in cmd/fraudstream is named in the Config field docs.
const (
	DefaultAddr           = "127.0.0.1:8080"
	DefaultGroupID        = "fraudstream-alerts"
	DefaultBatchSize      = 1000
	DefaultFlushInterval  = 100 * time.Millisecond
	DefaultDBMaxConns     = 8
	DefaultSSEBuffer      = 4096
	DefaultSSEMaxClients  = 1000
	DefaultSSEHeartbeat   = 15 * time.Second
	DefaultStartupTimeout = 30 * time.Second
	DefaultStatsRetention = time.Hour
	DefaultRuleBudget     = 100 * time.Microsecond
	// The sink group's timeouts: franz-go's defaults.
	DefaultSessionTimeout   = 45 * time.Second
	DefaultRebalanceTimeout = 60 * time.Second
	MinTokenLength          = 16
	// Dashboard sessions: ended after this long unused, and this long
	// after the login in any case.
	DefaultLoginIdleTimeout = 30 * time.Minute
	DefaultLoginMaxAge      = 12 * time.Hour
)

// Config is everything alerts needs to run. Start from DefaultConfig: every
// size and duration must be positive, so a zero value is refused by Validate
// rather than silently meaning "unlimited".
type Config struct {
	// Addr is the HTTP listen address of the dashboard, the analyst API and
	// /healthz, /readyz, /metrics (ALERTS_ADDR, default 127.0.0.1:8080).
	Addr string

	// Kafka is how to reach the brokers (KAFKA_BROKERS, KAFKA_TLS, …).
	Kafka kafkaopt.Config

	// DatabaseURL selects the store (DATABASE_URL, required):
	//   - postgres://… or postgresql://…: PostgreSQL through pgx;
	//   - sqlite:PATH, file:PATH or a bare PATH: an SQLite file, created
	//     with its directory if missing (the embedded default).
	DatabaseURL string

	// GroupID is the consumer group of the database sink
	// (ALERTS_GROUP_ID, default fraudstream-alerts). The group only
	// assigns partitions; offsets live in the database, never in Kafka.
	// Replicas writing to the same database must share it.
	GroupID string

	// SessionTimeout is how long the sink's group waits for a silent
	// member (a crashed replica) before moving its partitions to the
	// others; until then those partitions are not written to the database
	// (ALERTS_SESSION_TIMEOUT, default 45s, at least 1s).
	SessionTimeout time.Duration

	// RebalanceTimeout is how long a rebalance waits for every member to
	// rejoin, which includes saving the batch in flight
	// (ALERTS_REBALANCE_TIMEOUT, default 60s, at least 1s).
	RebalanceTimeout time.Duration

	// BatchSize caps the records written in one database transaction
	// (ALERTS_BATCH_SIZE, default 1000).
	BatchSize int

	// FlushInterval is how long the sink waits for a batch to fill after
	// its first record before writing it anyway: the bound on how stale
	// the database is behind Kafka (ALERTS_FLUSH_INTERVAL, default 100ms).
	FlushInterval time.Duration

	// DBMaxConns caps PostgreSQL connections (ALERTS_DB_MAX_CONNS,
	// default 8). SQLite always uses one writer connection.
	DBMaxConns int

	// SSEBuffer is how many events a live-stream client may fall behind
	// before it is disconnected, so a slow browser never slows the
	// service (ALERTS_SSE_BUFFER, default 4096: 0.8 s at 5k events/s, so
	// a healthy client rides out a GC pause or a busy core). Queued events
	// are shared between clients, so each costs 8 bytes per client.
	// EventSource reconnects by itself, and while a reconnecting client is
	// backfilled from the database its live events queue without this
	// bound (up to 65,536).
	SSEBuffer int

	// SSEMaxClients caps concurrent /api/v1/stream clients; more get 503
	// (ALERTS_SSE_MAX_CLIENTS, default 1000).
	SSEMaxClients int

	// SSEHeartbeat is the interval of comment lines on idle streams that
	// keep proxies from closing them (ALERTS_SSE_HEARTBEAT, default 15s).
	SSEHeartbeat time.Duration

	// StartupTimeout bounds opening and migrating the database in New
	// (ALERTS_STARTUP_TIMEOUT, default 30s).
	StartupTimeout time.Duration

	// StatsRetention is how much event time of fraud-stats windows, back
	// from the newest, GET /api/v1/stats keeps in memory
	// (ALERTS_STATS_RETENTION, default 1h).
	StatsRetention time.Duration

	// Retention is how long stored transactions are kept, by event time
	// (ALERTS_RETAIN_APPROVED 7d, ALERTS_RETAIN_ALERTS 90d,
	// ALERTS_RETAIN_LABELED 730d by default; 0 keeps forever; labeled
	// ones are kept longest). See docs/design/storage.md.
	Retention RetentionPolicy

	// RetentionInterval is how often the retention pass runs, which also
	// creates the partitions of the coming days (ALERTS_RETENTION_INTERVAL,
	// default 10m, between 1s and 6h).
	RetentionInterval time.Duration

	// RuleBudget is the measured time one rule may take per transaction
	// before PUT /api/v1/rules publishes it: main gives it to the scorer's
	// checker (Deps.RuleChecker), which evaluates rules on sample
	// transactions (docs/design/rule-cost.md). ALERTS_RULE_BUDGET,
	// default 100µs, between 1µs and 1s.
	RuleBudget time.Duration

	// Token, when set, is required for the dashboard's data, the analyst
	// API and the stream, as the cookie set by POST /api/v1/login or as
	// "Authorization: Bearer TOKEN" (ALERTS_TOKEN, at least 16
	// characters). It is required when Addr is not a loopback address:
	// card data is never served to the network without it. With a token,
	// /metrics needs it too (a Prometheus scrape config sends it as a
	// bearer token); /healthz and /readyz stay open for probes.
	Token string

	// LoginIdleTimeout ends a dashboard session not used for this long
	// (ALERTS_LOGIN_IDLE_TIMEOUT, default 30m). An open dashboard polls
	// every few seconds, so only a closed or sleeping one idles out.
	LoginIdleTimeout time.Duration

	// LoginMaxAge ends a dashboard session this long after its login,
	// used or not (ALERTS_LOGIN_MAX_AGE, default 12h, at least
	// LoginIdleTimeout).
	LoginMaxAge time.Duration

	// SecureCookie marks the session cookie Secure (sent over HTTPS only)
	// on every response (ALERTS_SECURE_COOKIE, default false). Without it
	// the cookie is Secure when the login came over TLS or with
	// "X-Forwarded-Proto: https" from a TLS-terminating proxy.
	SecureCookie bool

	// HTTP bounds slow and silent clients and open connections
	// (ALERTS_READ_HEADER_TIMEOUT, ALERTS_BODY_TIMEOUT, ALERTS_IDLE_TIMEOUT,
	// ALERTS_MAX_HEADER_BYTES, ALERTS_MAX_CONNS; defaults as in
	// httpserver.DefaultLimits except MaxConns, 2048, which must exceed
	// SSEMaxClients). The stream is not cut by them: there is no write
	// timeout.
	HTTP httpserver.Limits
}

// DefaultMaxConns leaves room beside DefaultSSEMaxClients streams.
const DefaultMaxConns = 2048

func defaultHTTPLimits() httpserver.Limits {
	l := httpserver.DefaultLimits()
	l.MaxConns = DefaultMaxConns
	return l
}

// DefaultConfig returns a Config with every default filled in. Kafka
// brokers and the database URL have no default.
func DefaultConfig() Config {
	c := Config{
		Addr:             DefaultAddr,
		HTTP:             defaultHTTPLimits(),
		GroupID:          DefaultGroupID,
		SessionTimeout:   DefaultSessionTimeout,
		RebalanceTimeout: DefaultRebalanceTimeout,
		BatchSize:        DefaultBatchSize,
		FlushInterval:    DefaultFlushInterval,
		DBMaxConns:       DefaultDBMaxConns,
		SSEBuffer:        DefaultSSEBuffer,
		SSEMaxClients:    DefaultSSEMaxClients,
		SSEHeartbeat:     DefaultSSEHeartbeat,
		StartupTimeout:   DefaultStartupTimeout,
		StatsRetention:   DefaultStatsRetention,
		LoginIdleTimeout: DefaultLoginIdleTimeout,
		LoginMaxAge:      DefaultLoginMaxAge,
		RuleBudget:       DefaultRuleBudget,
	}
	c.Retention = DefaultRetentionPolicy()
	c.RetentionInterval = DefaultRetentionInterval
	return c
}

// Validate reports the first bad setting as a *configfield.Error naming
// its Config field (cmd/fraudstream names the variable and flag).
func (c Config) Validate() error {
	bad := func(field, msg string, args ...any) error { return configfield.New("alerts", field, msg, args...) }
	if c.Addr == "" {
		return bad("Addr", "a listen address such as 127.0.0.1:8080 is required")
	}
	if err := c.Kafka.Validate(); err != nil {
		return err // kafkaopt names the setting, as for every service
	}
	if _, err := parseDatabaseURL(c.DatabaseURL); err != nil {
		return &configfield.Error{Service: "alerts", Field: "DatabaseURL", Err: err}
	}
	if err := c.HTTP.Check(); err != nil {
		var le *httpserver.LimitError
		if errors.As(err, &le) {
			return &configfield.Error{Service: "alerts", Field: "HTTP." + le.Field, Err: le.Err}
		}
		return &configfield.Error{Service: "alerts", Field: "HTTP", Err: err}
	}
	checks := []struct {
		ok    bool
		field string
		msg   string
	}{
		{c.GroupID != "", "GroupID", "must not be empty"},
		{c.SessionTimeout >= time.Second, "SessionTimeout", fmt.Sprintf("%s is below 1s", c.SessionTimeout)},
		{c.RebalanceTimeout >= time.Second, "RebalanceTimeout", fmt.Sprintf("%s is below 1s", c.RebalanceTimeout)},
		{c.BatchSize > 0, "BatchSize", "must be positive"},
		{c.FlushInterval > 0, "FlushInterval", "must be positive"},
		{c.DBMaxConns > 0, "DBMaxConns", "must be positive"},
		{c.SSEBuffer > 0, "SSEBuffer", "must be positive"},
		{c.SSEMaxClients > 0, "SSEMaxClients", "must be positive"},
		// Streams hold connections: leave room for the API and probes.
		{c.HTTP.MaxConns > c.SSEMaxClients, "HTTP.MaxConns", fmt.Sprintf("%d must exceed Config.SSEMaxClients (%d)", c.HTTP.MaxConns, c.SSEMaxClients)},
		{c.SSEHeartbeat > 0, "SSEHeartbeat", "must be positive"},
		{c.StartupTimeout > 0, "StartupTimeout", "must be positive"},
		{c.StatsRetention > 0, "StatsRetention", "must be positive"},
		{c.LoginIdleTimeout >= time.Second, "LoginIdleTimeout", fmt.Sprintf("%s is below 1s", c.LoginIdleTimeout)},
		{c.LoginMaxAge >= c.LoginIdleTimeout, "LoginMaxAge", fmt.Sprintf("%s is below Config.LoginIdleTimeout (%s)", c.LoginMaxAge, c.LoginIdleTimeout)},
		{c.RetentionInterval >= time.Second && c.RetentionInterval <= 6*time.Hour, "RetentionInterval", fmt.Sprintf("%s must be between 1s and 6h", c.RetentionInterval)},
		{c.RuleBudget >= time.Microsecond && c.RuleBudget <= time.Second, "RuleBudget", fmt.Sprintf("%s must be between 1µs and 1s", c.RuleBudget)},
		{c.Token == "" || len(c.Token) >= MinTokenLength, "Token", fmt.Sprintf("must be at least %d characters", MinTokenLength)},
		{c.Token != "" || isLoopback(c.Addr), "Token", "required when Config.Addr listens beyond localhost (" + c.Addr + ")"},
	}
	for _, ch := range checks {
		if !ch.ok {
			return bad(ch.field, "%s", ch.msg)
		}
	}
	return c.Retention.Validate()
}

// isLoopback reports whether addr only accepts connections from this
// machine. An empty host listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// database is a parsed Config.DatabaseURL.
type database struct {
	driver string // "postgres" or "sqlite"
	dsn    string // the URL for pgx, the file path for SQLite
}

// parseDatabaseURL recognises the forms documented on Config.DatabaseURL.
func parseDatabaseURL(s string) (database, error) {
	switch {
	case s == "":
		return database{}, errors.New("required: postgres://user@host/db or sqlite:PATH")
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		if _, err := pgx.ParseConfig(s); err != nil {
			// pgx's error may quote the URL with its password; say only what is wrong.
			return database{}, errors.New("not a valid PostgreSQL URL")
		}
		return database{driver: "postgres", dsn: s}, nil
	}
	path := s
	for _, prefix := range []string{"sqlite://", "sqlite:", "file://", "file:"} {
		if p, ok := strings.CutPrefix(s, prefix); ok {
			path = p
			break
		}
	}
	if path == s && strings.Contains(s, "://") {
		scheme, _, _ := strings.Cut(s, "://")
		return database{}, fmt.Errorf("unsupported scheme %q: use postgres:// or sqlite:PATH", scheme)
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return database{}, fmt.Errorf("%q: want sqlite:PATH with a plain file path (no query or fragment)", s)
	}
	if path == ":memory:" {
		// Each connection would see its own empty database.
		return database{}, errors.New("in-memory SQLite is not supported; give a file path")
	}
	return database{driver: "sqlite", dsn: path}, nil
}
