// Package kafkaopt turns the Kafka settings every service shares (brokers,
// TLS, SASL) into franz-go client options, and creates the pipeline's topics.
package kafkaopt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Config is how a service reaches Kafka.
type Config struct {
	Brokers       []string // host:port seeds; required
	TLS           bool     // connect with TLS
	TLSCAFile     string   // PEM CA bundle; the system pool when empty
	SASLMechanism string   // "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512"
	SASLUser      string
	SASLPassword  string
}

// Validate names the first bad setting.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("KAFKA_BROKERS: at least one broker address is required")
	}
	for _, b := range c.Brokers {
		if i := strings.LastIndexByte(b, ':'); i <= 0 || i == len(b)-1 {
			return fmt.Errorf("KAFKA_BROKERS: %q is not host:port", b)
		}
	}
	switch c.SASLMechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASLUser == "" {
			return fmt.Errorf("KAFKA_SASL_USER: required with KAFKA_SASL_MECHANISM=%s", c.SASLMechanism)
		}
	default:
		return fmt.Errorf("KAFKA_SASL_MECHANISM: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
	if c.TLSCAFile != "" {
		if _, err := os.Stat(c.TLSCAFile); err != nil {
			return fmt.Errorf("KAFKA_TLS_CA_FILE: %w", err)
		}
	}
	return nil
}

// Opts returns the client options for c: seeds, TLS and SASL.
func (c Config) Opts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.TLS || c.TLSCAFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLSCAFile != "" {
			pem, err := os.ReadFile(c.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("read Kafka CA file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka CA file %s holds no PEM certificate", c.TLSCAFile)
			}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	auth := scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}
	switch c.SASLMechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(auth.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(auth.AsSha512Mechanism()))
	}
	return opts, nil
}

// EnsureTopics creates the pipeline's topics that do not exist yet:
// raw-transactions and its co-partitioned topics with partitions partitions,
// scorer-state and fraud-rules compacted, fraud-rules with one partition.
// Existing topics are left as they are.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int32, replication int16) error {
	adm := kadm.NewClient(cl)
	compact := "compact"
	for _, topic := range event.Topics {
		n, configs := partitions, map[string]*string{}
		switch topic {
		case event.TopicState:
			configs["cleanup.policy"] = &compact
		case event.TopicRules:
			n = 1
			configs["cleanup.policy"] = &compact
		}
		resp, err := adm.CreateTopic(ctx, n, replication, configs, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return nil
}
