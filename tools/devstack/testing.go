package devstack

import (
	"context"
	"log/slog"
)

// TB is the part of testing.TB that StartForTest uses; declared here so
// that the fraudstream binary, which imports devstack, does not link the
// testing package.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// StartForTest starts a stack for a test and returns it once alerts is
// ready: in a temporary directory and on ephemeral ports unless cfg says
// otherwise, run until the test ends, when it is stopped and an error
// from Run fails the test. ctx bounds the start and the wait for alerts.
func StartForTest(t TB, ctx context.Context, cfg Config, log *slog.Logger) *Stack {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	for _, addr := range []*string{&cfg.BrokerListen, &cfg.IngestAddr, &cfg.ScorerAddr, &cfg.AlertsAddr} {
		if *addr == "" {
			*addr = "127.0.0.1:0"
		}
	}
	stack, err := Start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("devstack: %v", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	runErr := make(chan error, 1)
	go func() { runErr <- stack.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-runErr; err != nil {
			t.Errorf("devstack: Run: %v", err)
		}
	})
	select {
	case <-stack.Alerts().Ready():
	case <-ctx.Done():
		t.Fatalf("devstack: alerts never became ready: %v", context.Cause(ctx))
	}
	return stack
}
