package main

import (
	"context"
	"io"

	"github.com/fraudstream/fraudstream/tools/devbroker"
)

func runBroker(ctx context.Context, args []string, env func(string) string, _, stderr io.Writer) error {
	f := newFlags("broker", stderr)
	listen := f.String("listen", "BROKER_LISTEN", "127.0.0.1:9092", "host:port to listen on for the Kafka protocol")
	advertise := f.String("advertise", "BROKER_ADVERTISE", "", "host:port clients should connect to (default: the listen address)")
	dataDir := f.String("data-dir", "BROKER_DATA_DIR", "", "persist the log in this directory and reload it at start (default: in memory)")
	partitions := f.Int("partitions", "BROKER_PARTITIONS", 12, "partitions of raw-transactions and its co-partitioned topics")
	syncWrites := f.Bool("sync-writes", "BROKER_SYNC_WRITES", false, "fsync every written batch")
	log, err := f.parseLogged(args, env, stderr)
	if err != nil {
		return err
	}
	log.Warn("fraudstream broker is for development and tests only: it is franz-go's test broker (kfake), and a SIGKILL during an open transaction can hide committed records after its restart; run Apache Kafka in production")
	b, err := devbroker.Start(ctx, devbroker.Config{Listen: *listen, Advertise: *advertise, DataDir: *dataDir,
		Partitions: *partitions, SyncWrites: *syncWrites}, log)
	if err != nil {
		return err
	}
	return b.Run(ctx)
}
