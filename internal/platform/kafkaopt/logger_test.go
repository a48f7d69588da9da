package kafkaopt

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	l := Logger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if got := l.Level(); got != kgo.LogLevelWarn {
		t.Errorf("level at info: %v, want warn", got)
	}
	l.Log(kgo.LogLevelInfo, "joined group", "group", "g")
	l.Log(kgo.LogLevelWarn, "fetch failed", "err", "boom")
	l.Log(kgo.LogLevelError, "produce failed")
	out := buf.String()
	if strings.Contains(out, "joined group") {
		t.Errorf("info line logged at info level:\n%s", out)
	}
	for _, want := range []string{`level=WARN msg="kafka: fetch failed" err=boom`, `level=ERROR msg="kafka: produce failed"`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}

	buf.Reset()
	l = Logger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if got := l.Level(); got != kgo.LogLevelDebug {
		t.Errorf("level at debug: %v, want debug", got)
	}
	l.Log(kgo.LogLevelInfo, "joined group")
	if !strings.Contains(buf.String(), `level=DEBUG msg="kafka: joined group"`) {
		t.Errorf("info line not logged at debug:\n%s", buf.String())
	}
}
