package eosverify_test

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/tools/eosverify"
)

var (
	records = flag.Int("eos.records", 20_000, "input records of TestVerifyEOS (make verify-eos: 200000)")
	kills   = flag.Int("eos.kills", 3, "scorer SIGKILLs of TestVerifyEOS (make verify-eos: 12)")
	feedFor = flag.Duration("eos.feed", 12*time.Second, "how long the crashed run's input keeps arriving")
	keep    = flag.String("eos.dir", "", "keep brokers' data and process logs in this directory")
)

// TestVerifyEOS builds the fraudstream binary and runs the exactly-once
// verification: a small one by default (part of make test), the large one
// with make verify-eos.
func TestVerifyEOS(t *testing.T) {
	bin := buildBinary(t)
	dir := *keep
	if dir == "" {
		dir = t.TempDir()
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	begin := time.Now()
	rep, err := eosverify.Run(ctx, eosverify.Config{
		Binary: bin, Dir: dir, Records: *records, Kills: *kills, FeedFor: *feedFor, Log: log,
	})
	if rep != nil {
		t.Logf("eosverify: %s (total %s)", rep, time.Since(begin).Round(time.Millisecond))
	}
	if err != nil {
		t.Fatalf("exactly-once verification failed (logs in %s):\n%v", dir, err)
	}
	if rep.Kills < *kills {
		t.Fatalf("only %d of %d kills happened", rep.Kills, *kills)
	}
	t.Logf("verified: every transaction exactly once, in partition order, byte-identical to the crash-free run; every poison record dead-lettered once")
}

// buildBinary builds cmd/fraudstream into the test's temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(t.TempDir(), "fraudstream")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/fraudstream")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
