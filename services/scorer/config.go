package scorer

import (
	"errors"
	"github.com/fraudstream/fraudstream/internal/platform/configfield"
	"log/slog"
	"time"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/entity"
	"github.com/fraudstream/fraudstream/services/scorer/model"
)

// Defaults of Config. A zero field of Config means its default.
const (
	DefaultAddr               = "127.0.0.1:8082"
	DefaultGroupID            = "fraudstream-scorer"
	DefaultCommitInterval     = 50 * time.Millisecond
	DefaultMaxBatchRecords    = 2000
	DefaultTransactionTimeout = 10 * time.Second
	DefaultReviewThreshold    = 0.5
	DefaultDeclineThreshold   = 0.8
	DefaultMaxOutOfOrder      = 5 * time.Second
	DefaultAllowedLateness    = time.Minute
	DefaultStatsIdleTimeout   = 30 * time.Second
	DefaultSessionTimeout     = 45 * time.Second
	DefaultRebalanceTimeout   = 60 * time.Second
	DefaultRedisTimeout       = 50 * time.Millisecond
	DefaultProfileCacheTTL    = time.Minute
	DefaultProfileCacheSize   = 100_000
	DefaultRuleRunBudget      = time.Millisecond

	// maxEventTimeSetting bounds MaxOutOfOrder and AllowedLateness: state
	// is kept for the look-back (24h) plus both, so a week is already absurd.
	maxEventTimeSetting = 7 * 24 * time.Hour
)

// Config is everything the scorer needs, filled in by main from flags and
// the environment. The environment variable named on each field is the one
// Validate names when the field is wrong. A zero field means its default,
// except Kafka and TransactionalID, which are required.
type Config struct {
	// Addr is the listen address of /healthz, /readyz and /metrics.
	// SCORER_ADDR, default 127.0.0.1:8082.
	Addr string

	// Kafka is how to reach the brokers (KAFKA_BROKERS, KAFKA_TLS, …).
	Kafka kafkaopt.Config

	// HTTP bounds slow and silent clients and open connections
	// (SCORER_READ_HEADER_TIMEOUT, SCORER_BODY_TIMEOUT, SCORER_IDLE_TIMEOUT,
	// SCORER_MAX_HEADER_BYTES, SCORER_MAX_CONNS; defaults in
	// httpserver.DefaultLimits).
	HTTP httpserver.Limits

	// GroupID is the consumer group of all scorer instances; partitions of
	// raw-transactions are divided among its members.
	// SCORER_GROUP_ID, default fraudstream-scorer.
	GroupID string

	// TransactionalID identifies this instance's transactional producer. It
	// must be unique per running instance and stable across restarts of the
	// same instance: two live instances with one ID fence each other (the
	// older one fails every commit), and a restarted instance that reuses
	// its ID aborts whatever its predecessor left open at once instead of
	// after TransactionTimeout. main derives it as "fraudstream-scorer-" +
	// hostname: stable per pod in a Kubernetes StatefulSet, unique per host.
	// Two instances on one host need distinct IDs set explicitly.
	// SCORER_TRANSACTIONAL_ID, required.
	TransactionalID string

	// CommitInterval bounds how long one batch (one Kafka transaction)
	// collects records before it commits; it is the floor of the scorer's
	// added latency. SCORER_COMMIT_INTERVAL, default 50ms.
	CommitInterval time.Duration

	// MaxBatchRecords bounds the input records of one transaction.
	// SCORER_MAX_BATCH_RECORDS, default 2000: the per-transaction cost is
	// fixed, so small batches are slow (measured against kfake: ~775k
	// records/s at 2,000 per transaction, 155k/s at 100).
	MaxBatchRecords int

	// TransactionTimeout is how long the broker lets a transaction stay
	// open before aborting it. It bounds how long a crashed instance that
	// does not come back can hold read_committed readers behind its open
	// transaction. SCORER_TRANSACTION_TIMEOUT, default 10s (franz-go's
	// own default, 40s, is far above our 50 ms batches).
	TransactionTimeout time.Duration

	// ReviewThreshold and DeclineThreshold map a score in [0, 1] to a
	// decision: score ≥ DeclineThreshold declines, score ≥ ReviewThreshold
	// reviews, anything lower approves.
	// SCORER_REVIEW_THRESHOLD (default 0.5), SCORER_DECLINE_THRESHOLD (0.8).
	ReviewThreshold  float64
	DeclineThreshold float64

	// ModelFile is the logistic-regression model (JSON, see package
	// model), e.g. one written by `fraudstream train`. Empty means the
	// built-in default model. SCORER_MODEL_FILE.
	ModelFile string

	// MaxOutOfOrder is how far out of event-time order a partition's
	// records may arrive: the partition's watermark is the largest event
	// time seen minus MaxOutOfOrder. SCORER_MAX_OUT_OF_ORDER, default 5s
	// (the zero value means the default; use 1ms for "in order").
	MaxOutOfOrder time.Duration

	// AllowedLateness is how far behind the watermark a record's event
	// time may be and still count at it (it is "late"); a record at or
	// before watermark − AllowedLateness is "too late": flagged late,
	// counted, and in its card's state at the oldest open time
	// (docs/design/event-time.md). Per-card state is kept for 24h (the
	// longest feature) + AllowedLateness behind the watermark.
	// SCORER_ALLOWED_LATENESS, default 1m.
	AllowedLateness time.Duration

	// StatsIdleTimeout is how long a partition may go without records
	// before its open fraud-stats windows with unreported records are
	// fired (not final) anyway. SCORER_STATS_IDLE_TIMEOUT, default 30s.
	StatsIdleTimeout time.Duration

	// SessionTimeout is how long the group waits for a silent member
	// (a crashed instance) before moving its partitions to the others.
	// SCORER_SESSION_TIMEOUT, default 45s (franz-go's default).
	SessionTimeout time.Duration

	// RebalanceTimeout is how long a rebalance waits for every member to
	// rejoin; it also bounds how long a member may take to end its open
	// transaction when its partitions are revoked.
	// SCORER_REBALANCE_TIMEOUT, default 60s (franz-go's default).
	RebalanceTimeout time.Duration

	// RedisURL locates the Redis holding the card profiles ingest writes
	// (redis://[user:password@]host:port/db, rediss:// for TLS). Empty
	// means no profiles: every record is scored with profile_missing set.
	// Profiles are read at processing time, so they are not replay
	// deterministic (see profile.go). REDIS_URL, default empty.
	RedisURL string

	// RedisTimeout bounds the one profile lookup of each poll (a pipelined
	// MGET); past it the records are scored without the profiles they
	// lacked, and Redis is left alone for a second.
	// SCORER_REDIS_TIMEOUT, default 50ms.
	RedisTimeout time.Duration

	// ProfileCacheTTL is how long a looked-up profile (or its absence) is
	// used before it is looked up again; while Redis does not answer, an
	// older entry is used rather than none. SCORER_PROFILE_CACHE_TTL,
	// default 1m.
	ProfileCacheTTL time.Duration

	// ProfileCacheSize bounds the cached profiles (~150 bytes each). It
	// must be at least twice MaxBatchRecords, so a poll's lookups stay
	// cached until its records are scored. SCORER_PROFILE_CACHE_SIZE,
	// default 100000.
	ProfileCacheSize int

	// RuleRunBudget is the run-time guard of rules on expr's VM: one
	// evaluation in 64 is timed, and a rule timed above this three times
	// in a row is disabled in this instance (logged, counted in
	// fraudstream_scorer_rules_disabled_total). Published rules are
	// bounded before they arrive (docs/design/rule-cost.md); this is the
	// backstop. SCORER_RULE_BUDGET, default 1ms, at most 1s.
	RuleRunBudget time.Duration

	// Entities is the entity stage (docs/design/entities.md).
	Entities EntityConfig
}

// EntityConfig are the settings of the entity stage: the scorer's join
// with the entity-features table and the aggregator's thresholds.
type EntityConfig struct {
	// Enabled turns the stage on in the service: entity events are
	// written to entity-events, entity-features is followed, and records
	// wait for it. It needs `fraudstream entities` running. Offline
	// scoring (training, quality) always runs the stage in process.
	// SCORER_ENTITIES, default false.
	Enabled bool
	// Lag: a record at state time ts is joined with the table as of
	// ts − Lag. It must exceed SCORER_ALLOWED_LATENESS +
	// SCORER_MAX_OUT_OF_ORDER, the earliest a partition can promise its
	// events are complete. SCORER_ENTITY_LAG, default 2m.
	Lag time.Duration
	// Wait bounds how long a record waits for the table to be complete
	// through its join time; after it, the record is scored with
	// entity_stale and no entity features. SCORER_ENTITY_WAIT, default 2s.
	Wait time.Duration
	// Memory is how long a card remembers the merchants it paid at, and
	// the aggregator's compromise window. SCORER_ENTITY_MEMORY, default 7d
	// (168h).
	Memory time.Duration
	// MinFlagged, MinFlaggedShare and MinCards are the aggregator's
	// thresholds (entity.Config); zero means its default.
	MinFlagged      int64
	MinFlaggedShare float64
	MinCards        int64
}

// Defaults of EntityConfig.
const (
	DefaultEntityLag    = 2 * time.Minute
	DefaultEntityWait   = 2 * time.Second
	DefaultEntityMemory = 7 * 24 * time.Hour
)

func (c EntityConfig) withDefaults() EntityConfig {
	if c.Lag == 0 {
		c.Lag = DefaultEntityLag
	}
	if c.Wait == 0 {
		c.Wait = DefaultEntityWait
	}
	if c.Memory == 0 {
		c.Memory = DefaultEntityMemory
	}
	return c
}

// aggregator is the aggregator's configuration.
func (c EntityConfig) aggregator() entity.Config {
	c = c.withDefaults()
	return entity.Config{CompromiseWindow: c.Memory, MinFlagged: c.MinFlagged, MinFlaggedShare: c.MinFlaggedShare,
		MinCards: c.MinCards}.WithDefaults()
}

// DefaultConfig returns a Config with every default filled in; Kafka and
// TransactionalID are left for the caller.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.MaxBatchRecords == 0 {
		c.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = DefaultTransactionTimeout
	}
	if c.ReviewThreshold == 0 {
		c.ReviewThreshold = DefaultReviewThreshold
	}
	if c.DeclineThreshold == 0 {
		c.DeclineThreshold = DefaultDeclineThreshold
	}
	if c.MaxOutOfOrder == 0 {
		c.MaxOutOfOrder = DefaultMaxOutOfOrder
	}
	if c.AllowedLateness == 0 {
		c.AllowedLateness = DefaultAllowedLateness
	}
	if c.StatsIdleTimeout == 0 {
		c.StatsIdleTimeout = DefaultStatsIdleTimeout
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = DefaultRedisTimeout
	}
	if c.ProfileCacheTTL == 0 {
		c.ProfileCacheTTL = DefaultProfileCacheTTL
	}
	if c.ProfileCacheSize == 0 {
		c.ProfileCacheSize = DefaultProfileCacheSize
	}
	c.HTTP = c.HTTP.WithDefaults()
	c.Entities = c.Entities.withDefaults()
	if c.RuleRunBudget == 0 {
		c.RuleRunBudget = DefaultRuleRunBudget
	}
	return c
}

// Validate reports the first bad setting as a *configfield.Error naming
// its Config field. Zero fields are checked as their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Kafka.Validate(); err != nil {
		return err // kafkaopt names the setting, as for every service
	}
	if err := c.HTTP.Check(); err != nil {
		var le *httpserver.LimitError
		if errors.As(err, &le) {
			return &configfield.Error{Service: "scorer", Field: "HTTP." + le.Field, Err: le.Err}
		}
		return &configfield.Error{Service: "scorer", Field: "HTTP", Err: err}
	}
	bad := func(field, msg string, args ...any) error { return configfield.New("scorer", field, msg, args...) }
	switch {
	case c.TransactionalID == "":
		return bad("TransactionalID", "required, and unique per running scorer instance")
	case c.CommitInterval < time.Millisecond:
		return bad("CommitInterval", "%s is below 1ms", c.CommitInterval)
	case c.MaxBatchRecords < 1:
		return bad("MaxBatchRecords", "%d must be at least 1", c.MaxBatchRecords)
	case c.TransactionTimeout < time.Second:
		return bad("TransactionTimeout", "%s is below 1s", c.TransactionTimeout)
	case c.TransactionTimeout <= c.CommitInterval:
		return bad("TransactionTimeout", "%s must be longer than Config.CommitInterval (%s)", c.TransactionTimeout, c.CommitInterval)
	case !(c.ReviewThreshold > 0 && c.ReviewThreshold <= 1):
		return bad("ReviewThreshold", "%v must be in (0, 1]", c.ReviewThreshold)
	case !(c.DeclineThreshold > 0 && c.DeclineThreshold <= 1):
		return bad("DeclineThreshold", "%v must be in (0, 1]", c.DeclineThreshold)
	case c.DeclineThreshold < c.ReviewThreshold:
		return bad("DeclineThreshold", "%v is below Config.ReviewThreshold (%v)", c.DeclineThreshold, c.ReviewThreshold)
	case c.MaxOutOfOrder < time.Millisecond || c.MaxOutOfOrder > maxEventTimeSetting:
		return bad("MaxOutOfOrder", "%s must be between 1ms and %s", c.MaxOutOfOrder, maxEventTimeSetting)
	case c.AllowedLateness < time.Millisecond || c.AllowedLateness > maxEventTimeSetting:
		return bad("AllowedLateness", "%s must be between 1ms and %s", c.AllowedLateness, maxEventTimeSetting)
	case c.StatsIdleTimeout < 10*time.Millisecond || c.StatsIdleTimeout > 24*time.Hour:
		return bad("StatsIdleTimeout", "%s must be between 10ms and 24h", c.StatsIdleTimeout)
	case c.SessionTimeout < time.Second:
		return bad("SessionTimeout", "%s is below 1s", c.SessionTimeout)
	case c.RebalanceTimeout < time.Second:
		return bad("RebalanceTimeout", "%s is below 1s", c.RebalanceTimeout)
	case c.RedisTimeout < time.Millisecond:
		return bad("RedisTimeout", "%s is below 1ms", c.RedisTimeout)
	case c.ProfileCacheTTL < time.Second:
		return bad("ProfileCacheTTL", "%s is below 1s", c.ProfileCacheTTL)
	case c.ProfileCacheSize < 2*c.MaxBatchRecords:
		return bad("ProfileCacheSize", "%d must be at least twice Config.MaxBatchRecords (%d)", c.ProfileCacheSize, c.MaxBatchRecords)
	case c.RuleRunBudget < 0 || c.RuleRunBudget > time.Second:
		return bad("RuleRunBudget", "%s must be between 1ns and 1s", c.RuleRunBudget)
	case c.Entities.Lag <= c.AllowedLateness+c.MaxOutOfOrder:
		return bad("Entities.Lag", "%s must exceed Config.AllowedLateness + Config.MaxOutOfOrder (%s): no partition can promise its entity events complete sooner",
			c.Entities.Lag, c.AllowedLateness+c.MaxOutOfOrder)
	case c.Entities.Wait < 0 || c.Entities.Wait > time.Minute:
		return bad("Entities.Wait", "%s must be between 0 and 1m", c.Entities.Wait)
	case c.Entities.Memory < 24*time.Hour || c.Entities.Memory > 90*24*time.Hour:
		return bad("Entities.Memory", "%s must be between 24h and 2160h (90 days)", c.Entities.Memory)
	case c.Entities.MinFlaggedShare < 0 || c.Entities.MinFlaggedShare > 1:
		return bad("Entities.MinFlaggedShare", "%v must be between 0 and 1", c.Entities.MinFlaggedShare)
	}
	if c.RedisURL != "" {
		if _, err := redisOptions(c.RedisURL, c.RedisTimeout); err != nil {
			return &configfield.Error{Service: "scorer", Field: "RedisURL", Err: err}
		}
	}
	return nil
}

// Deps are the scorer's collaborators that are not configuration.
type Deps struct {
	// Log receives the service's structured logs; nil discards them.
	Log *slog.Logger
	// Rules is the rule set in force until fraud-rules holds a newer
	// version; nil means the built-in default (rules.Default).
	Rules *event.RuleSet
	// Model replaces the model of Config.ModelFile; tests use it.
	Model *model.Model
}
