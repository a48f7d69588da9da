package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fraudstream/fraudstream/internal/platform/httpserver"
	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
)

// flags is a flag set whose flags fall back to environment variables: a flag
// given on the command line wins, then its variable, then its default. A bad
// value is reported with the name it came from.
type flags struct {
	fs     *flag.FlagSet
	env    map[string]string // flag name → environment variable
	fields map[string]string // a service's Config field ("HTTP.BodyTimeout") → flag name
	lists  []func()          // fill list flags after parsing
}

func newFlags(name string, stderr io.Writer) *flags {
	fs := flag.NewFlagSet("fraudstream "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &flags{fs: fs, env: map[string]string{}, fields: map[string]string{}}
}

// field records that flag fills the Config field named field, for named.
func (f *flags) field(field, flag string) { f.fields[field] = flag }

// setting is how a start-up message names a flag: its environment
// variable and the flag, e.g. "INGEST_MAX_SKEW (--max-skew)".
func (f *flags) setting(flag string) string {
	if env := f.env[flag]; env != "" {
		return env + " (--" + flag + ")"
	}
	return "--" + flag
}

// named rewrites an error from a service's Config validation that names a
// Config field (it has a ConfigField method, as ingest.ConfigError) to
// name the environment variable and flag the field came from, here and
// wherever the message mentions another field as "Config.Field".
func (f *flags) named(err error) error {
	var fe interface {
		error
		ConfigField() string
		Unwrap() error
	}
	if !errors.As(err, &fe) {
		return err
	}
	flag, ok := f.fields[fe.ConfigField()]
	if !ok {
		return err
	}
	fields := slices.Collect(maps.Keys(f.fields))
	// Longest first, so "Config.HTTP.BodyTimeout" is not read as "Config.HTTP".
	slices.SortFunc(fields, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(fields))
	for _, field := range fields {
		pairs = append(pairs, "Config."+field, f.setting(f.fields[field]))
	}
	msg := f.setting(flag) + ": " + strings.NewReplacer(pairs...).Replace(fe.Unwrap().Error())
	return &settingError{msg: msg, err: err}
}

// settingError is a Config error retold with the setting's names.
type settingError struct {
	msg string
	err error
}

func (e *settingError) Error() string { return e.msg }
func (e *settingError) Unwrap() error { return e.err }

func (f *flags) bind(name, env string) {
	if env != "" {
		f.env[name] = env
	}
}

func help(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

func (f *flags) String(name, env, def, usage string) *string {
	f.bind(name, env)
	return f.fs.String(name, def, help(usage, env))
}

func (f *flags) Int(name, env string, def int, usage string) *int {
	f.bind(name, env)
	return f.fs.Int(name, def, help(usage, env))
}

func (f *flags) Float(name, env string, def float64, usage string) *float64 {
	f.bind(name, env)
	return f.fs.Float64(name, def, help(usage, env))
}

func (f *flags) Bool(name, env string, def bool, usage string) *bool {
	f.bind(name, env)
	return f.fs.Bool(name, def, help(usage, env))
}

func (f *flags) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	f.bind(name, env)
	return f.fs.Duration(name, def, help(usage, env))
}

// Days is a duration flag that also takes days, weeks and years
// (365 days): "7d", "2w", "2y", besides Go durations such as "36h".
func (f *flags) Days(name, env string, def time.Duration, usage string) *time.Duration {
	f.bind(name, env)
	v := daysValue(def)
	f.fs.Var(&v, name, help(usage, env))
	return (*time.Duration)(&v)
}

type daysValue time.Duration

func (d *daysValue) String() string {
	t := time.Duration(*d)
	if t != 0 && t%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", t/(24*time.Hour))
	}
	return t.String()
}

func (d *daysValue) Set(s string) error {
	t, err := parseDays(s)
	if err != nil {
		return err
	}
	*d = daysValue(t)
	return nil
}

// parseDays parses "0", a Go duration, or a whole number of days (d),
// weeks (w) or 365-day years (y).
func parseDays(s string) (time.Duration, error) {
	units := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour, 'y': 365 * 24 * time.Hour}
	if n := len(s); n > 1 {
		if u, ok := units[s[n-1]]; ok {
			var v int64
			if _, err := fmt.Sscanf(s[:n-1], "%d", &v); err == nil && fmt.Sprint(v) == s[:n-1] && v >= 0 && v < 1000*365 {
				return time.Duration(v) * u, nil
			}
			return 0, fmt.Errorf("%q: want a whole number of days (7d), weeks (2w) or years (2y), or a duration such as 36h", s)
		}
	}
	t, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a whole number of days (7d), weeks (2w) or years (2y), or a duration such as 36h", s)
	}
	return t, nil
}

// List is a comma-separated list flag.
func (f *flags) List(name, env, def, usage string) *[]string {
	s := f.String(name, env, def, usage)
	out := new([]string)
	f.lists = append(f.lists, func() { *out = splitList(*s) })
	return out
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parse parses args, then fills every flag not given on the command line
// from its environment variable.
func (f *flags) parse(args []string, env func(string) string) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errUsage
		}
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	given := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for name, variable := range f.env {
		if given[name] {
			continue
		}
		if v := env(variable); v != "" {
			if err := f.fs.Set(name, v); err != nil {
				return fmt.Errorf("%s=%q: %w", variable, v, err)
			}
		}
	}
	for _, fill := range f.lists {
		fill()
	}
	return nil
}

// parseLogged adds --log-level and --log-format, parses args (see parse) and
// builds the logger they describe. Register every other flag first.
func (f *flags) parseLogged(args []string, env func(string) string, stderr io.Writer) (*slog.Logger, error) {
	level := f.String("log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	format := f.String("log-format", "LOG_FORMAT", "text", "log format: text or json")
	if err := f.parse(args, env); err != nil {
		return nil, err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %q is not debug, info, warn or error", *level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch *format {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, fmt.Errorf("LOG_FORMAT: %q is not text or json", *format)
}

// kafka adds the shared Kafka flags and returns the config after parse.
func (f *flags) kafka() func() kafkaopt.Config {
	brokers := f.List("kafka-brokers", "KAFKA_BROKERS", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers")
	tls := f.Bool("kafka-tls", "KAFKA_TLS", false, "connect to Kafka with TLS")
	ca := f.String("kafka-tls-ca-file", "KAFKA_TLS_CA_FILE", "", "PEM CA bundle for Kafka TLS (system pool when empty)")
	mech := f.String("kafka-sasl-mechanism", "KAFKA_SASL_MECHANISM", "", "SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
	user := f.String("kafka-sasl-user", "KAFKA_SASL_USER", "", "SASL user name")
	pass := f.String("kafka-sasl-password", "KAFKA_SASL_PASSWORD", "", "SASL password")
	return func() kafkaopt.Config {
		return kafkaopt.Config{Brokers: *brokers, TLS: *tls, TLSCAFile: *ca,
			SASLMechanism: *mech, SASLUser: *user, SASLPassword: *pass}
	}
}

// httpLimits adds the HTTP server limits of a service whose variables
// start with prefix (INGEST, SCORER, ALERTS) and returns them after parse.
func (f *flags) httpLimits(prefix string, d httpserver.Limits) func() httpserver.Limits {
	header := f.Duration("read-header-timeout", prefix+"_READ_HEADER_TIMEOUT", d.ReadHeaderTimeout, "longest time to receive a request's headers")
	body := f.Duration("body-timeout", prefix+"_BODY_TIMEOUT", d.BodyTimeout, "longest time to receive a request's whole body, however it trickles in; slower requests get 408")
	idle := f.Duration("idle-timeout", prefix+"_IDLE_TIMEOUT", d.IdleTimeout, "how long a keep-alive connection may wait for its next request")
	headerBytes := f.Int("max-header-bytes", prefix+"_MAX_HEADER_BYTES", d.MaxHeaderBytes, "largest request line and headers; more get 431")
	conns := f.Int("max-conns", prefix+"_MAX_CONNS", d.MaxConns, "most HTTP connections open at once; more are closed as they are accepted")
	for field, flag := range map[string]string{"HTTP.ReadHeaderTimeout": "read-header-timeout", "HTTP.BodyTimeout": "body-timeout",
		"HTTP.IdleTimeout": "idle-timeout", "HTTP.MaxHeaderBytes": "max-header-bytes", "HTTP.MaxConns": "max-conns"} {
		f.field(field, flag)
	}
	return func() httpserver.Limits {
		return httpserver.Limits{ReadHeaderTimeout: *header, BodyTimeout: *body, IdleTimeout: *idle,
			MaxHeaderBytes: *headerBytes, MaxConns: *conns}
	}
}

func flagGiven(f *flags, name string) bool {
	given := false
	f.fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	return given
}
