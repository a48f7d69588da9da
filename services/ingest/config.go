package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/fraudstream/fraudstream/internal/platform/configfield"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
	"github.com/fraudstream/fraudstream/internal/platform/redisopt"
	"github.com/fraudstream/fraudstream/pkg/event"
)

// Defaults for Config, used by DefaultConfig. The environment variable each
// setting is read from in cmd/fraudstream is named in the Config field docs;
// Validate's errors name the field (ConfigError).
const (
	DefaultAddr               = "127.0.0.1:8081"
	DefaultMaxSkew            = 5 * time.Minute
	DefaultMaxBodyBytes       = 64 << 10 // one transaction; event.MaxRecordBytes
	DefaultMaxBatchBodyBytes  = 4 << 20
	DefaultMaxBatchItems      = 1000
	DefaultProduceTimeout     = 5 * time.Second
	DefaultMaxBufferedRecords = 10_000
	DefaultRedisTimeout       = 500 * time.Millisecond
	DefaultIdempotencyTTL     = 24 * time.Hour
	DefaultTransactionIDTTL   = 7 * 24 * time.Hour
	DefaultRateLimit          = 1000 // transactions per second per API key
	DefaultRateBurst          = 2000
)

// Config is everything ingest needs to run. Start from DefaultConfig: every
// duration and size must be positive, so a zero value is refused by Validate
// rather than silently meaning "unlimited".
type Config struct {
	// Addr is the HTTP listen address (INGEST_ADDR, default 127.0.0.1:8081).
	Addr string

	// Kafka is how to reach the brokers (KAFKA_BROKERS, KAFKA_TLS, …).
	Kafka kafkaopt.Config

	// HTTP bounds slow and silent clients and open connections
	// (INGEST_READ_HEADER_TIMEOUT, INGEST_BODY_TIMEOUT,
	// INGEST_IDLE_TIMEOUT, INGEST_MAX_HEADER_BYTES, INGEST_MAX_CONNS;
	// defaults in httpserver.DefaultLimits). Requests are authenticated
	// before any body byte is read.
	HTTP httpserver.Limits

	// MaxSkew is how far in the future an event_time may be, measured
	// against ingest's clock (INGEST_MAX_SKEW, default 5m).
	MaxSkew time.Duration

	// MaxBodyBytes limits the body of POST /v1/transactions; larger bodies
	// get 413 (INGEST_MAX_BODY_BYTES, default 64 KiB).
	MaxBodyBytes int64

	// MaxBatchBodyBytes limits the body of POST /v1/transactions/batch
	// (INGEST_MAX_BATCH_BODY_BYTES, default 4 MiB). Each item is still
	// limited to MaxBodyBytes.
	MaxBatchBodyBytes int64

	// MaxBatchItems limits the number of transactions in one batch; more
	// get 413 (INGEST_MAX_BATCH_ITEMS, default 1000).
	MaxBatchItems int

	// ProduceTimeout bounds how long a request waits for the brokers to
	// acknowledge its records before answering 503 with Retry-After
	// (INGEST_PRODUCE_TIMEOUT, default 5s).
	ProduceTimeout time.Duration

	// MaxBufferedRecords caps records waiting in the producer for an
	// acknowledgement. When it is reached new requests get 503 at once
	// instead of queueing behind a slow broker
	// (INGEST_MAX_BUFFERED_RECORDS, default 10000).
	MaxBufferedRecords int

	// APIKeys are the accepted API keys, comma-separated entries of
	//
	//	id:sha256hex[;rate=N][;burst=N][;scopes=S+S…]
	//
	// where the hex is the SHA-256 of the clear key (see HashKey). The id
	// names the key in logs and scopes its idempotency keys and rate limit;
	// the clear key is never stored or logged. rate and burst override
	// RateLimit and RateBurst for this key. scopes limits what the key may
	// do (default: all): transactions:write (POST /v1/transactions…),
	// profiles:read (GET …/profile), profiles:write (PUT …/profile); a
	// valid key used outside its scopes gets 403 (INGEST_API_KEYS).
	APIKeys []string

	// AllowAnonymous accepts requests without an Authorization header
	// (INGEST_ALLOW_ANONYMOUS, default false). A presented key must still
	// be valid. Without it and without APIKeys, Validate fails.
	AllowAnonymous bool

	// RedisURL locates the Redis that holds idempotency records, rate
	// limits and card profiles: redis://[user:password@]host:port/db, or
	// rediss:// for TLS (REDIS_URL, required). Every ingest replica must
	// share it.
	RedisURL string

	// RedisTimeout bounds each Redis round trip of a request
	// (INGEST_REDIS_TIMEOUT, default 500ms).
	RedisTimeout time.Duration

	// RedisFailOpen chooses what happens to POSTs when Redis fails
	// (INGEST_REDIS_FAIL_OPEN, default false). False (fail closed): 503
	// with Retry-After, because ingest can no longer promise that a retry
	// does not write a second record. True (fail open): transactions are
	// accepted without idempotency records and without rate limiting,
	// each failure counted in fraudstream_ingest_redis_errors_total and
	// logged; a retry may then be written twice and the scorer drops the
	// repeat by transaction_id. Profile routes always need Redis.
	RedisFailOpen bool

	// IdempotencyTTL is how long the first answer to an Idempotency-Key
	// is kept and replayed to retries (INGEST_IDEMPOTENCY_TTL, default 24h).
	IdempotencyTTL time.Duration

	// TransactionIDTTL is how long the transaction-id registry remembers
	// the contents first accepted under a transaction_id, refusing
	// another transaction reusing it with 409 from any API key
	// (INGEST_TRANSACTION_ID_TTL, default 7 days; at least
	// IdempotencyTTL). See docs/design/transaction-ids.md.
	TransactionIDTTL time.Duration

	// RateLimit is each API key's sustained rate in transactions per
	// second, counted by GCRA in Redis and so shared by all replicas; a
	// batch costs one per item, a profile request one
	// (INGEST_RATE_LIMIT, default 1000). Per-key override: ";rate=N".
	RateLimit int

	// RateBurst is how many transactions a key may send at once above the
	// sustained rate; a batch larger than its key's burst can never pass
	// and is refused with 413 (INGEST_RATE_BURST, default 2000).
	// Per-key override: ";burst=N".
	RateBurst int

	// Decisions configures POST /v1/decisions (decisions.go).
	Decisions DecisionConfig
}

// DefaultConfig returns a Config with every default filled in. Kafka
// brokers and API keys have no default.
func DefaultConfig() Config {
	return Config{
		Addr:               DefaultAddr,
		HTTP:               httpserver.DefaultLimits(),
		MaxSkew:            DefaultMaxSkew,
		MaxBodyBytes:       DefaultMaxBodyBytes,
		MaxBatchBodyBytes:  DefaultMaxBatchBodyBytes,
		MaxBatchItems:      DefaultMaxBatchItems,
		ProduceTimeout:     DefaultProduceTimeout,
		MaxBufferedRecords: DefaultMaxBufferedRecords,
		RedisTimeout:       DefaultRedisTimeout,
		IdempotencyTTL:     DefaultIdempotencyTTL,
		TransactionIDTTL:   DefaultTransactionIDTTL,
		RateLimit:          DefaultRateLimit,
		RateBurst:          DefaultRateBurst,
		Decisions:          DefaultDecisionConfig(),
	}
}

// A ConfigError names the Config field Validate refused (configfield).
type ConfigError = configfield.Error

func fieldErr(field, msg string, args ...any) error {
	return configfield.New("ingest", field, msg, args...)
}

// Validate returns a *ConfigError naming the first bad field.
func (c Config) Validate() error {
	_, err := c.validate()
	return err
}

// settings is what validate derives from a Config; New keeps it, so the
// API keys and the Redis URL are parsed once.
type settings struct {
	keys  []apiKey
	redis *redis.Options
}

// redisPolicy is ingest's: one retry, so a stale pooled connection does
// not cost a client a 503, then fail fast (RedisFailOpen decides what
// failing means).
func redisPolicy(timeout time.Duration) redisopt.Policy {
	return redisopt.Policy{Timeout: timeout, Retries: 1}
}

func (c Config) validate() (settings, error) {
	var v settings
	if c.Addr == "" {
		return v, fieldErr("Addr", "a listen address such as 127.0.0.1:8081 is required")
	}
	if err := c.Kafka.Validate(); err != nil {
		return v, err // kafkaopt names the setting, as for every service
	}
	if err := c.HTTP.Check(); err != nil {
		var le *httpserver.LimitError
		if errors.As(err, &le) {
			return v, &ConfigError{Service: "ingest", Field: "HTTP." + le.Field, Err: le.Err}
		}
		return v, &ConfigError{Service: "ingest", Field: "HTTP", Err: err}
	}
	if c.MaxSkew <= 0 {
		return v, fieldErr("MaxSkew", "must be positive")
	}
	if c.MaxBodyBytes <= 0 {
		return v, fieldErr("MaxBodyBytes", "must be positive")
	}
	if c.MaxBodyBytes > event.MaxRecordBytes {
		// A bigger body could not become one record the scorer accepts.
		return v, fieldErr("MaxBodyBytes", "must be at most %d", event.MaxRecordBytes)
	}
	if c.MaxBatchBodyBytes < c.MaxBodyBytes {
		return v, fieldErr("MaxBatchBodyBytes", "must be at least Config.MaxBodyBytes (%d)", c.MaxBodyBytes)
	}
	if c.MaxBatchItems <= 0 {
		return v, fieldErr("MaxBatchItems", "must be positive")
	}
	if c.ProduceTimeout <= 0 {
		return v, fieldErr("ProduceTimeout", "must be positive")
	}
	if c.MaxBufferedRecords <= 0 {
		return v, fieldErr("MaxBufferedRecords", "must be positive")
	}
	if c.MaxBufferedRecords < c.MaxBatchItems {
		// Otherwise a full batch could never fit in the producer buffer.
		return v, fieldErr("MaxBufferedRecords", "must be at least Config.MaxBatchItems (%d)", c.MaxBatchItems)
	}
	if c.RedisURL == "" {
		return v, fieldErr("RedisURL", "required, e.g. redis://127.0.0.1:6379/0 (rediss:// for TLS)")
	}
	ropts, err := redisopt.Options(c.RedisURL, redisPolicy(c.RedisTimeout))
	if err != nil {
		return v, &ConfigError{Service: "ingest", Field: "RedisURL", Err: err}
	}
	if c.RedisTimeout <= 0 {
		return v, fieldErr("RedisTimeout", "must be positive")
	}
	if c.IdempotencyTTL < time.Second {
		return v, fieldErr("IdempotencyTTL", "must be at least 1s")
	}
	if c.TransactionIDTTL < c.IdempotencyTTL {
		// A reuse must be refused for at least as long as a retry is
		// replayed.
		return v, fieldErr("TransactionIDTTL", "must be at least Config.IdempotencyTTL (%s)", c.IdempotencyTTL)
	}
	if c.RateLimit <= 0 {
		return v, fieldErr("RateLimit", "must be a positive number of transactions per second")
	}
	if c.RateBurst <= 0 {
		return v, fieldErr("RateBurst", "must be positive")
	}
	keys, err := parseKeys(c.APIKeys, c.RateLimit, c.RateBurst)
	if err != nil {
		return v, &ConfigError{Service: "ingest", Field: "APIKeys", Err: err}
	}
	if len(c.APIKeys) == 0 && !c.AllowAnonymous {
		return v, fieldErr("APIKeys", "at least one key is required unless Config.AllowAnonymous is set")
	}
	if err := c.Decisions.Validate(); err != nil {
		return v, err
	}
	return settings{keys: keys, redis: ropts}, nil
}

// HashKey returns the APIKeys entry for a clear key: "id:" followed by the
// hex SHA-256 of key. A plain hash is enough because keys are long random
// strings, not passwords a person chose.
func HashKey(id, key string) string {
	sum := sha256.Sum256([]byte(key))
	return id + ":" + hex.EncodeToString(sum[:])
}

// Scopes an API key may hold; a key without a scopes option holds all.
const (
	ScopeTransactionsWrite = "transactions:write"
	ScopeProfilesRead      = "profiles:read"
	ScopeProfilesWrite     = "profiles:write"
)

type scope uint8

const (
	scopeTransactionsWrite scope = 1 << iota
	scopeProfilesRead
	scopeProfilesWrite
	scopeAll = scopeTransactionsWrite | scopeProfilesRead | scopeProfilesWrite
)

var scopeNames = map[string]scope{
	ScopeTransactionsWrite: scopeTransactionsWrite,
	ScopeProfilesRead:      scopeProfilesRead,
	ScopeProfilesWrite:     scopeProfilesWrite,
}

func (s scope) String() string {
	for name, bit := range scopeNames {
		if s == bit {
			return name
		}
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// apiKey is one accepted key: its id, the SHA-256 of the clear key, its
// rate limit and its scopes.
type apiKey struct {
	id     string
	hash   [sha256.Size]byte
	rate   int
	burst  int
	scopes scope
}

// parseKeys parses APIKeys entries, giving each key the default rate and
// burst unless it overrides them. Errors name an entry by position and id,
// never by its hash, so a pasted clear key does not end up in a log.
func parseKeys(entries []string, rate, burst int) ([]apiKey, error) {
	keys := make([]apiKey, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		// ';' is in neither the id charset nor hex, so options are
		// unambiguous.
		e, opts, _ := strings.Cut(strings.TrimSpace(e), ";")
		// The id charset allows ':', so the hash is what follows the last one.
		j := strings.LastIndexByte(e, ':')
		if j < 0 {
			return nil, fmt.Errorf("entry %d is not id:sha256hex", i+1)
		}
		id, hexHash := e[:j], e[j+1:]
		if !event.ValidID(id) {
			return nil, fmt.Errorf("entry %d: id must be 1-64 characters from [A-Za-z0-9_.:-]", i+1)
		}
		if seen[id] {
			return nil, fmt.Errorf("entry %d: id %q appears twice", i+1, id)
		}
		seen[id] = true
		k := apiKey{id: id, rate: rate, burst: burst, scopes: scopeAll}
		if err := k.parseOptions(opts); err != nil {
			return nil, fmt.Errorf("entry %d (id %q): %w", i+1, id, err)
		}
		if len(hexHash) != 2*sha256.Size {
			return nil, fmt.Errorf("entry %d (id %q): want 64 hex digits of SHA-256 after the last ':'", i+1, id)
		}
		if _, err := hex.Decode(k.hash[:], []byte(hexHash)); err != nil {
			return nil, fmt.Errorf("entry %d (id %q): hash is not hex", i+1, id)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// parseOptions reads the ";"-separated options after an entry's hash.
func (k *apiKey) parseOptions(opts string) error {
	if opts == "" {
		return nil
	}
	for opt := range strings.SplitSeq(opts, ";") {
		name, val, ok := strings.Cut(strings.TrimSpace(opt), "=")
		if !ok {
			return fmt.Errorf("option %q is not name=value", opt)
		}
		switch name {
		case "rate", "burst":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return fmt.Errorf("%s=%q: want a positive integer", name, val)
			}
			if name == "rate" {
				k.rate = n
			} else {
				k.burst = n
			}
		case "scopes":
			k.scopes = 0
			for sc := range strings.SplitSeq(val, "+") {
				bit, ok := scopeNames[sc]
				if !ok {
					return fmt.Errorf("unknown scope %q (want %s, %s or %s joined by +)", sc,
						ScopeTransactionsWrite, ScopeProfilesRead, ScopeProfilesWrite)
				}
				k.scopes |= bit
			}
		default:
			return fmt.Errorf("unknown option %q (want rate, burst or scopes)", name)
		}
	}
	return nil
}
