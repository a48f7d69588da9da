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
	"slices"
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
		if event.Broadcast(topic) {
			n = 1
		}
		if event.Compacted(topic) {
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

// ErrTopicsMissing is CheckTopics' error when some of the pipeline's topics
// do not exist yet: a setup step that has not run, not a bad layout.
var ErrTopicsMissing = errors.New("topics missing")

// LayoutError is CheckTopics' error for topics that exist but cannot
// serve the pipeline. Each problem names the topic, what it has and what
// it needs; retrying does not help, the topics must be changed.
type LayoutError struct {
	Problems []string
}

func (e *LayoutError) Error() string {
	return "Kafka topics are not laid out as fraudstream needs: " + strings.Join(e.Problems, "; ") +
		" (docs/operations.md, \"Topics\")"
}

// TopicLayout is what a topic looks like on the cluster.
type TopicLayout struct {
	Partitions    int
	Replicas      int    // of its first partition
	CleanupPolicy string // "delete", "compact" or "compact,delete"
}

// Layout holds the pipeline's topics that exist on a cluster, by name.
type Layout map[string]TopicLayout

// DescribeTopics reads the partitions, replication factor and cleanup
// policy of those of the pipeline's topics that exist.
func DescribeTopics(ctx context.Context, cl *kgo.Client) (Layout, error) {
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, event.Topics...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	layout := make(Layout)
	var names []string
	for _, topic := range event.Topics {
		d, ok := details[topic]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			continue
		case d.Err != nil:
			return nil, fmt.Errorf("describe topic %s: %w", topic, d.Err)
		}
		tl := TopicLayout{Partitions: len(d.Partitions), CleanupPolicy: "delete"} // Kafka's default policy
		for _, p := range d.Partitions {
			tl.Replicas = len(p.Replicas)
			break
		}
		layout[topic] = tl
		names = append(names, topic)
	}
	if len(names) == 0 {
		return layout, nil
	}
	configs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	for _, rc := range configs {
		if rc.Err != nil {
			return nil, fmt.Errorf("describe configs of %s: %w", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				tl := layout[rc.Name]
				tl.CleanupPolicy = *c.Value
				layout[rc.Name] = tl
			}
		}
	}
	return layout, nil
}

// Check tells whether the layout serves the pipeline as the scorer relies
// on: every topic exists, raw-transactions' co-partitioned topics have
// exactly its number of partitions (scored partition p holds input
// partition p, and scorer-state partition p is its task's changelog), and
// scorer-state and fraud-rules are compacted (with retention deleting
// instead, a restore would lose cards' state and the scorer the rule set
// in force). Missing topics give an error wrapping ErrTopicsMissing, a bad
// layout a *LayoutError.
func (l Layout) Check() error {
	var missing []string
	for _, topic := range event.Topics {
		if _, ok := l[topic]; !ok {
			missing = append(missing, topic)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (fraudstream topics creates them)", ErrTopicsMissing, strings.Join(missing, ", "))
	}

	var problems []string
	want := l[event.TopicRaw].Partitions
	for _, topic := range event.Topics {
		if topic == event.TopicRaw || event.Broadcast(topic) {
			continue
		}
		if n := l[topic].Partitions; n != want {
			problems = append(problems, fmt.Sprintf("%s has %d partitions, %s has %d: they must be equal (co-partitioned)",
				topic, n, event.TopicRaw, want))
		}
	}
	for _, topic := range event.Topics {
		if !event.Compacted(topic) {
			continue
		}
		if policy := l[topic].CleanupPolicy; !slices.Contains(strings.Split(policy, ","), "compact") {
			problems = append(problems, fmt.Sprintf("%s has cleanup.policy=%s: it must be compact", topic, policy))
		}
	}
	if n := l[event.TopicEntityFeatures].Partitions; n != 1 {
		problems = append(problems, fmt.Sprintf("%s has %d partitions: it must have 1 (a broadcast table read in order)", event.TopicEntityFeatures, n))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return &LayoutError{Problems: problems}
	}
	return nil
}

// CheckTopics describes the pipeline's topics on the cluster and checks
// their layout (Layout.Check); any other error is the broker's.
func CheckTopics(ctx context.Context, cl *kgo.Client) error {
	layout, err := DescribeTopics(ctx, cl)
	if err != nil {
		return err
	}
	return layout.Check()
}
