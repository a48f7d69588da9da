package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/fraudstream/fraudstream/services/alerts"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

// alertsFlags registers alerts' flags and returns its Config after parse.
func alertsFlags(f *flags) func() alerts.Config {
	d := alerts.DefaultConfig()
	addr := f.String("addr", "ALERTS_ADDR", d.Addr, "HTTP listen address of the dashboard and analyst API")
	kafka := f.kafka()
	httpLimits := f.httpLimits("ALERTS", d.HTTP)
	db := f.String("database-url", "DATABASE_URL", "", "postgres://… for PostgreSQL, or sqlite:PATH for an SQLite file")
	group := f.String("group-id", "ALERTS_GROUP_ID", d.GroupID, "consumer group of the database sink (partition assignment only)")
	session := f.Duration("session-timeout", "ALERTS_SESSION_TIMEOUT", d.SessionTimeout, "how long the sink's group waits for a silent (crashed) member")
	rebalance := f.Duration("rebalance-timeout", "ALERTS_REBALANCE_TIMEOUT", d.RebalanceTimeout, "how long a rebalance of the sink's group waits for members to rejoin")
	batch := f.Int("batch-size", "ALERTS_BATCH_SIZE", d.BatchSize, "most records in one database transaction")
	flush := f.Duration("flush-interval", "ALERTS_FLUSH_INTERVAL", d.FlushInterval, "longest wait for a batch to fill")
	conns := f.Int("db-max-conns", "ALERTS_DB_MAX_CONNS", d.DBMaxConns, "PostgreSQL connection pool size")
	sseBuf := f.Int("sse-buffer", "ALERTS_SSE_BUFFER", d.SSEBuffer, "events a live-stream client may fall behind before it is disconnected")
	sseMax := f.Int("sse-max-clients", "ALERTS_SSE_MAX_CLIENTS", d.SSEMaxClients, "most concurrent live-stream clients")
	beat := f.Duration("sse-heartbeat", "ALERTS_SSE_HEARTBEAT", d.SSEHeartbeat, "interval of keep-alive comments on idle streams")
	startup := f.Duration("startup-timeout", "ALERTS_STARTUP_TIMEOUT", d.StartupTimeout, "bound on opening and migrating the database")
	retention := f.Duration("stats-retention", "ALERTS_STATS_RETENTION", d.StatsRetention, "event time of fraud-stats windows kept for the charts")
	token := f.String("token", "ALERTS_TOKEN", "", "dashboard, API and /metrics token (Bearer or login cookie); required when --addr is not loopback")
	idle := f.Duration("login-idle-timeout", "ALERTS_LOGIN_IDLE_TIMEOUT", d.LoginIdleTimeout, "a dashboard session not used for this long ends")
	maxAge := f.Duration("login-max-age", "ALERTS_LOGIN_MAX_AGE", d.LoginMaxAge, "a dashboard session ends this long after its login")
	secure := f.Bool("secure-cookie", "ALERTS_SECURE_COOKIE", false, "always mark the session cookie Secure (HTTPS only), e.g. behind a TLS proxy")
	ruleBudget := f.Duration("rule-budget", "ALERTS_RULE_BUDGET", d.RuleBudget, "measured time one rule may take per transaction before a rule set is published")
	retainApproved := f.Days("retain-approved", "ALERTS_RETAIN_APPROVED", d.Retention.Approved, "how long approved, unlabeled transactions are kept, by event time (7d, 2w, 2y; 0 = forever)")
	retainAlerts := f.Days("retain-alerts", "ALERTS_RETAIN_ALERTS", d.Retention.Alerts, "how long review and decline transactions without a label are kept (0 = forever)")
	retainLabeled := f.Days("retain-labeled", "ALERTS_RETAIN_LABELED", d.Retention.Labeled, "how long labeled transactions (training data) are kept; the longest (0 = forever)")
	retentionInterval := f.Duration("retention-interval", "ALERTS_RETENTION_INTERVAL", d.RetentionInterval, "how often retention runs (and partitions of the coming days are created)")
	for field, flag := range map[string]string{"Addr": "addr", "DatabaseURL": "database-url", "GroupID": "group-id",
		"SessionTimeout": "session-timeout", "RebalanceTimeout": "rebalance-timeout", "BatchSize": "batch-size",
		"FlushInterval": "flush-interval", "DBMaxConns": "db-max-conns", "SSEBuffer": "sse-buffer",
		"SSEMaxClients": "sse-max-clients", "SSEHeartbeat": "sse-heartbeat", "StartupTimeout": "startup-timeout",
		"StatsRetention": "stats-retention", "Token": "token", "LoginIdleTimeout": "login-idle-timeout",
		"LoginMaxAge": "login-max-age", "SecureCookie": "secure-cookie", "RuleBudget": "rule-budget",
		"Retention.Approved": "retain-approved", "Retention.Alerts": "retain-alerts", "Retention.Labeled": "retain-labeled",
		"RetentionInterval": "retention-interval"} {
		f.field(field, flag) // alerts' errors name these fields (configfield.Error)
	}
	return func() alerts.Config {
		return alerts.Config{Addr: *addr, Kafka: kafka(), HTTP: httpLimits(), DatabaseURL: *db, GroupID: *group,
			SessionTimeout: *session, RebalanceTimeout: *rebalance,
			BatchSize: *batch, FlushInterval: *flush, DBMaxConns: *conns, SSEBuffer: *sseBuf,
			SSEMaxClients: *sseMax, SSEHeartbeat: *beat, StartupTimeout: *startup,
			StatsRetention: *retention, Token: *token,
			LoginIdleTimeout: *idle, LoginMaxAge: *maxAge, SecureCookie: *secure, RuleBudget: *ruleBudget,
			Retention:         alerts.RetentionPolicy{Approved: *retainApproved, Alerts: *retainAlerts, Labeled: *retainLabeled},
			RetentionInterval: *retentionInterval}
	}
}

func runAlerts(ctx context.Context, args []string, env func(string) string, _, stderr io.Writer) error {
	return runService(ctx, "alerts", args, env, stderr, alertsFlags, func(c alerts.Config, log *slog.Logger) (service, error) {
		return alerts.New(c, alertsDeps(c, log))
	})
}

// alertsDeps wires the scorer's rule checker into alerts, with the
// configured measured budget: what PUT /api/v1/rules accepts is what the
// scorer can evaluate within its limits.
func alertsDeps(c alerts.Config, log *slog.Logger) alerts.Deps {
	lim := rules.DefaultLimits()
	lim.EvalBudget = c.RuleBudget
	return alerts.Deps{Log: log, RuleChecker: rules.Checker(lim), DefaultRules: rules.DefaultRuleSet()}
}
