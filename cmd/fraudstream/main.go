// Command fraudstream is the one binary of fraudstream: each subcommand runs
// one part of the pipeline. main only parses configuration and wires; the
// logic lives in services/ and pkg/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: it parses its own flags from args (with
// environment fallbacks) and runs until ctx is cancelled.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"broker":  {"development and tests only: a Kafka-protocol test broker (kfake) with the pipeline's topics; run Apache Kafka in production", runBroker},
	"ingest":  {"serve the ingest HTTP API and produce to raw-transactions", runIngest},
	"scorer":  {"score raw-transactions exactly once into scored-transactions", runScorer},
	"alerts":  {"sink scored transactions to the database and serve the dashboard", runAlerts},
	"dev":     {"run everything in one process with simulated traffic (make run)", runDev},
	"loadgen": {"send simulated transactions to an ingest endpoint", runLoadgen},
	"quality": {"measure detection on simulated populations: held-out PR-AUC, recall per pattern, false alerts on look-alikes", runQuality},
	"train":   {"fit the scorer's model on labeled transactions, with the scorer's feature code", runTrain},
	"topics":  {"create the pipeline's topics on a Kafka cluster and check their layout", runTopics},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "fraudstream:", err)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

func dispatch(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd.run(ctx, args[1:], env, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: fraudstream <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nEvery flag falls back to the environment variable named in its help: fraudstream <command> -h")
}

// service is what ingest, scorer and alerts build: it runs until ctx is
// cancelled.
type service interface {
	Run(ctx context.Context) error
}

// runService is the whole of a service's subcommand: register its flags,
// parse them with the logging flags (with environment fallbacks), build the
// logger, then build the service from its Config with start and run it.
func runService[C any](ctx context.Context, name string, args []string, env func(string) string, stderr io.Writer,
	register func(*flags) func() C, start func(C, *slog.Logger) (service, error)) error {
	f := newFlags(name, stderr)
	config := register(f)
	log, err := f.parseLogged(args, env, stderr)
	if err != nil {
		return err
	}
	svc, err := start(config(), log)
	if err != nil {
		return f.named(err)
	}
	return svc.Run(ctx)
}
