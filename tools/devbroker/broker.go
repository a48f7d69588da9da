// Package devbroker runs kfake, franz-go's Kafka-protocol test broker, as
// the pipeline's Kafka for development and tests only: one broker with
// transactions, read_committed, consumer groups and on-disk persistence,
// seeded with the pipeline's topics. It serves `fraudstream broker`,
// `fraudstream dev` and the tests; kcat and every service connect to it
// exactly as to Kafka. It is not a production broker: use Apache Kafka.
//
// Stop it with Close (SIGTERM in the command): a SIGKILL during an open
// transaction can hide later committed records from read_committed readers
// after a restart (docs/architecture.md).
package devbroker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
)

// Config describes one embedded broker.
type Config struct {
	// Listen is the host:port to listen on; port 0 picks a free port.
	Listen string
	// Advertise is the host:port clients are told to connect to; Listen's
	// address when empty. Set it when listening on 0.0.0.0 in a container.
	Advertise string
	// DataDir persists the log there and reloads it at start; empty keeps
	// everything in memory.
	DataDir string
	// Partitions is the partition count of raw-transactions and of the
	// topics co-partitioned with it.
	Partitions int
	// SyncWrites fsyncs every written batch (slower, survives power loss).
	SyncWrites bool
}

// Validate names the first bad setting.
func (c Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %q is not host:port: %w", c.Listen, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" {
		return fmt.Errorf("--listen: %q needs a host and a numeric port", c.Listen)
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("--advertise: %q is not host:port: %w", c.Advertise, err)
		}
	} else if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("--advertise: required when listening on %s (clients cannot connect to it)", host)
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		return fmt.Errorf("--partitions: %d is not between 1 and 1024", c.Partitions)
	}
	return nil
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
}

// Start starts the broker and creates the pipeline's topics that do not
// exist yet (a reloaded data dir keeps its own).
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, portStr, _ := net.SplitHostPort(cfg.Listen)
	port, _ := strconv.Atoi(portStr)
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		// kfake always asks for 127.0.0.1:port; listen where we were told,
		// and advertise what clients should dial.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, net.JoinHostPort(host, portStr))
			if err != nil {
				return nil, fmt.Errorf("--listen %s: %w", cfg.Listen, err)
			}
			if cfg.Advertise == "" {
				return ln, nil
			}
			return advertised{ln, cfg.Advertise}, nil
		}),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	b := &Broker{cluster: cluster, addr: cluster.ListenAddrs()[0]}
	if err := b.ensureTopics(ctx, cfg.Partitions); err != nil {
		cluster.Close()
		return nil, err
	}
	log.Info("broker ready", "addr", b.addr, "partitions", cfg.Partitions, "data_dir", cfg.DataDir)
	return b, nil
}

func (b *Broker) ensureTopics(ctx context.Context, partitions int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return kafkaopt.EnsureTopics(ctx, cl, int32(partitions), 1)
}

// Addr is the host:port clients connect to.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, flushing its data dir.
func (b *Broker) Close() { b.cluster.Close() }

// Run blocks until ctx is done, then closes the broker.
func (b *Broker) Run(ctx context.Context) error {
	<-ctx.Done()
	b.Close()
	return nil
}

// advertised reports a different address than the one it listens on, which
// is what kfake puts in metadata responses.
type advertised struct {
	net.Listener
	addr string
}

func (a advertised) Addr() net.Addr { return advertAddr(a.addr) }

type advertAddr string

func (a advertAddr) Network() string { return "tcp" }
func (a advertAddr) String() string  { return string(a) }
