package devbroker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestKcat checks that a librdkafka client (kcat, read_committed by default)
// lists, produces to and consumes from the embedded broker as from Kafka.
func TestKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat not on PATH (apt-get install kcat)")
		}
		t.Skip("kcat not on PATH (apt-get install kcat)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, Config{Listen: "127.0.0.1:0", Partitions: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", b.Addr()}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	meta := run("", "-L")
	for _, topic := range event.Topics {
		if !strings.Contains(meta, `topic "`+topic+`"`) {
			t.Errorf("kcat -L does not list %s:\n%s", topic, meta)
		}
	}
	run("card-1:hello\n", "-P", "-t", event.TopicRaw, "-K", ":")
	got := run("", "-C", "-t", event.TopicRaw, "-e", "-q", "-f", "%k=%s\n")
	if strings.TrimSpace(got) != "card-1=hello" {
		t.Fatalf("kcat consumed %q, want card-1=hello", got)
	}
}
